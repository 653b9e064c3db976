// The immutable routing state a request reads: routes, pools, servers, slots and weights.
// Built from a Config by the validating builder, then published through SnapshotStore and never
// mutated; every change makes a new snapshot. Plain structs, no Asio.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/admin_types.hpp"
#include "proxy/config.hpp"

namespace proxyd {

struct TlsContexts;  // proxy/tls.hpp: OpenSSL contexts, built by the data plane

// A numeric socket address, resolved when the snapshot is built (no DNS on the request path).
struct ResolvedAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // v4 uses the first 4
  std::uint16_t port = 0;
  std::string text() const;  // "127.0.0.1:9001" or "[::1]:9001"
  bool operator==(const ResolvedAddress&) const = default;
};

// What every worker and every snapshot generation share for one server (matched by pool and
// server name across snapshots): its load and its health. Atomics only: the request path reads
// them without a lock, the health checker and the workers' passive checks write them.
struct ServerState {
  std::atomic<std::int64_t> in_flight{0};  // requests on their way to it (least-request)
  std::atomic<std::int64_t> tunnels{0};    // upgraded connections open to it
  // Active checks: unchecked for a pool without a health block.
  std::atomic<Health> health{Health::unchecked};
  // Passive checks: failures in a row seen by the workers, and the ejection they led to.
  std::atomic<std::uint32_t> consecutive_failures{0};
  std::atomic<std::uint32_t> ejections{0};  // in a row, without a success between: the backoff
  std::atomic<std::int64_t> ejected_until{0};  // steady clock, nanoseconds; 0: not ejected
};

struct Server {
  std::string name;  // as written in the config: "127.0.0.1:9001" or "app.internal:80"
  ResolvedAddress address;  // the resolver's first choice
  std::vector<ResolvedAddress> fallback_addresses;  // a host name's other addresses, in order
  ServerAdmin admin = ServerAdmin::enabled;
  std::shared_ptr<ServerState> state;
};

struct Pool {
  std::string name;
  std::uint32_t index = 0;  // position in RoutingSnapshot::pools
  Balance balance = Balance::round_robin;
  std::optional<HealthConfig> health;  // set: active checks decide which servers take traffic
  PassiveConfig passive;
  bool fail_open = false;
  std::vector<Server> servers;
};

struct Route {
  std::string name;
  std::uint32_t index = 0;  // position in RoutingSnapshot::routes
  std::string host;         // "" any, "api.example.com" exact, "*.example.com" any subdomain
  std::string path_prefix;  // "" any
  std::uint32_t live_pool = 0;
  std::uint32_t passive_pool = 0;
  std::uint32_t weight_ppm = 0;
  StickyConfig sticky;
  std::string preview_header;
  std::uint64_t sticky_salt = 0;  // per route, so cohorts of two routes are independent
  // sticky.set: what follows "NAME=VALUE" in the Set-Cookie given to a client without the cookie.
  std::string set_cookie_attributes;
  std::optional<std::uint32_t> max_step_ppm;  // the largest weight increase without --force
  Duration drain{30'000};  // tunnels to a pool that left the route's slots close after this
};

struct RoutingSnapshot {
  std::uint64_t generation = 0;
  std::vector<Pool> pools;
  std::vector<Route> routes;
  std::shared_ptr<const Config> config;  // timeouts, limits, listeners: read per request too
  // The listeners' and pools' TLS contexts built from `config` (null without TLS): new
  // handshakes use the ones of the snapshot they find, so a reload swaps them.
  std::shared_ptr<const TlsContexts> tls;

  const Pool* find_pool(const std::string& name) const;
  const Route* find_route(const std::string& name) const;
};

struct SnapshotResult {
  std::shared_ptr<const RoutingSnapshot> snapshot;  // set when errors is empty
  std::vector<ConfigError> errors;
};

// Resolves host names (getaddrinfo; numeric addresses skip DNS). Injected so tests stay offline.
// Returns every address in the resolver's preference order (empty + `error` set on failure); a
// snapshot's server uses only the first one, so a name is one server, not one per address.
using Resolver = std::vector<ResolvedAddress> (*)(const std::string& host, std::uint16_t port,
                                                  std::string& error);
std::vector<ResolvedAddress> resolve_system(const std::string& host, std::uint16_t port,
                                            std::string& error);

// Builds a snapshot from a validated config. `previous`, when given, lends its ServerState objects
// to servers that still exist, so counters survive a reload. A host that does not resolve is an
// error naming the pool's line.
// `tls`: the contexts build_tls() made from the same config, carried by the snapshot.
SnapshotResult build_snapshot(std::shared_ptr<const Config> config, std::uint64_t generation,
                              const RoutingSnapshot* previous, Resolver resolve = resolve_system,
                              std::shared_ptr<const TlsContexts> tls = nullptr);

}  // namespace proxyd
