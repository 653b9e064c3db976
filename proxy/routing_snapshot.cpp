// The validating builder of RoutingSnapshot and the system resolver it uses by default.
// Runs at startup, on reload and on every runtime change, never per request: it may allocate and
// block on DNS. A failed build returns errors and no snapshot, so the caller keeps the old one.
#include "routing_snapshot.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "split_policy.hpp"

namespace proxyd {

namespace {

ResolvedAddress from_v4(const in_addr& address, std::uint16_t port) {
  ResolvedAddress resolved;
  resolved.port = port;
  std::memcpy(resolved.bytes.data(), &address, 4);
  return resolved;
}

ResolvedAddress from_v6(const in6_addr& address, std::uint16_t port) {
  ResolvedAddress resolved;
  resolved.v6 = true;
  resolved.port = port;
  std::memcpy(resolved.bytes.data(), &address, 16);
  return resolved;
}

// The state a server had in the previous snapshot: same pool name, same server name, and the same
// occurrence of that name (a pool listing one address twice keeps two separate counters).
const Server* previous_server(const Pool* previous_pool, const std::string& name,
                              std::size_t occurrence) {
  if (previous_pool == nullptr) return nullptr;
  for (const Server& server : previous_pool->servers) {
    if (server.name == name && occurrence-- == 0) return &server;
  }
  return nullptr;
}

std::string server_key(const std::string& pool, std::size_t index) {
  return "pools." + pool + ".servers[" + std::to_string(index) + "]";
}

std::string route_key(std::size_t index, const char* field) {
  return "routes[" + std::to_string(index) + "]." + field;
}

}  // namespace

std::string ResolvedAddress::text() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof buffer);
  return Endpoint{buffer, port}.text();
}

const Pool* RoutingSnapshot::find_pool(const std::string& name) const {
  const auto it =
      std::find_if(pools.begin(), pools.end(), [&](const Pool& pool) { return pool.name == name; });
  return it == pools.end() ? nullptr : &*it;
}

const Route* RoutingSnapshot::find_route(const std::string& name) const {
  const auto it = std::find_if(routes.begin(), routes.end(),
                               [&](const Route& route) { return route.name == name; });
  return it == routes.end() ? nullptr : &*it;
}

std::vector<ResolvedAddress> resolve_system(const std::string& host, std::uint16_t port,
                                            std::string& error) {
  // Numeric addresses, the common case in these configs, never touch the resolver.
  std::string name = host;
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  in_addr v4{};
  if (inet_pton(AF_INET, name.c_str(), &v4) == 1) return {from_v4(v4, port)};
  in6_addr v6{};
  if (inet_pton(AF_INET6, name.c_str(), &v6) == 1) return {from_v6(v6, port)};

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address instead of one per socket type
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(name.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    error = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return {};
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);

  // Every address, in the resolver's preference order (RFC 6724), without duplicates.
  std::vector<ResolvedAddress> addresses;
  for (const addrinfo* info = found; info != nullptr; info = info->ai_next) {
    ResolvedAddress address;
    if (info->ai_family == AF_INET) {
      address = from_v4(reinterpret_cast<const sockaddr_in*>(info->ai_addr)->sin_addr, port);
    } else if (info->ai_family == AF_INET6) {
      address = from_v6(reinterpret_cast<const sockaddr_in6*>(info->ai_addr)->sin6_addr, port);
    } else {
      continue;
    }
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end())
      addresses.push_back(address);
  }
  if (addresses.empty()) error = "no IPv4 or IPv6 address";
  return addresses;
}

SnapshotResult build_snapshot(std::shared_ptr<const Config> config, std::uint64_t generation,
                              const RoutingSnapshot* previous, Resolver resolve,
                              std::shared_ptr<const TlsContexts> tls) {
  SnapshotResult result;
  if (!config) {
    result.errors.push_back({"", 0, "", "no configuration to build a snapshot from"});
    return result;
  }
  auto snapshot = std::make_shared<RoutingSnapshot>();
  snapshot->generation = generation;
  snapshot->config = config;
  snapshot->tls = std::move(tls);
  const auto error = [&](int line, std::string key, std::string message) {
    result.errors.push_back({config->path, line, std::move(key), std::move(message)});
  };

  snapshot->pools.reserve(config->pools.size());
  for (const PoolConfig& pool_config : config->pools) {
    if (snapshot->find_pool(pool_config.name) != nullptr) {
      error(pool_config.line, "pools." + pool_config.name, "duplicate pool name");
      continue;
    }
    Pool pool;
    pool.name = pool_config.name;
    pool.index = static_cast<std::uint32_t>(snapshot->pools.size());
    pool.balance = pool_config.balance;
    pool.health = pool_config.health;
    pool.passive = pool_config.passive;
    pool.fail_open = pool_config.fail_open;
    const Pool* previous_pool = previous ? previous->find_pool(pool.name) : nullptr;

    pool.servers.reserve(pool_config.servers.size());
    for (std::size_t i = 0; i < pool_config.servers.size(); ++i) {
      const Endpoint& endpoint = pool_config.servers[i];
      Server server;
      // The name a server is known by in metrics and control commands: the config's host:port,
      // with an IPv6 literal bracketed as written ("[::1]:9001"), so the port stays unambiguous.
      server.name = endpoint.text();

      std::string reason;
      const std::vector<ResolvedAddress> addresses = resolve(endpoint.host, endpoint.port, reason);
      if (addresses.empty()) {
        error(pool_config.line, server_key(pool.name, i),
              "cannot resolve " + endpoint.host + ": " + (reason.empty() ? "no address" : reason));
        continue;
      }
      // A name that resolves to several addresses is still one server in metrics and control
      // commands; connecting tries its addresses in the resolver's order (RFC 6724), so
      // `localhost` works whether the backend listens on ::1 or on 127.0.0.1. List addresses as
      // separate servers to balance over them.
      server.address = addresses.front();
      server.fallback_addresses.assign(addresses.begin() + 1, addresses.end());

      const auto occurrence = static_cast<std::size_t>(
          std::count_if(pool.servers.begin(), pool.servers.end(),
                        [&](const Server& earlier) { return earlier.name == server.name; }));
      if (const Server* before = previous_server(previous_pool, server.name, occurrence)) {
        // In-flight counts and operator decisions (drain, disable) outlive a reload.
        server.state = before->state;
        server.admin = before->admin;
      }
      const bool known = server.state != nullptr;
      if (!known) server.state = std::make_shared<ServerState>();
      // Health: a new server of a checked pool starts unhealthy (it must pass `rise` checks
      // first). One already taking traffic when its pool gains a health block keeps taking it
      // until it fails `fall` checks: a reload must not take a serving pool out. A pool without
      // a block is unchecked. (The state is shared: this is the one place a build writes it.)
      Health health = server.state->health.load();
      if (!pool.health) {
        health = Health::unchecked;
      } else if (!known) {
        health = Health::unhealthy;
      } else if (health == Health::unchecked) {
        health = Health::healthy;
      }
      server.state->health.store(health);
      pool.servers.push_back(std::move(server));
    }
    snapshot->pools.push_back(std::move(pool));
  }

  snapshot->routes.reserve(config->routes.size());
  for (std::size_t r = 0; r < config->routes.size(); ++r) {
    const RouteConfig& route_config = config->routes[r];
    if (snapshot->find_route(route_config.name) != nullptr) {
      error(route_config.line, route_key(r, "name"), "duplicate route name " + route_config.name);
      continue;
    }
    Route route;
    route.name = route_config.name;
    route.index = static_cast<std::uint32_t>(snapshot->routes.size());
    route.host = route_config.host;
    route.path_prefix = route_config.path_prefix;
    route.weight_ppm = route_config.weight_ppm;
    route.sticky = route_config.sticky;
    route.preview_header = route_config.preview_header;
    route.sticky_salt = fnv1a64(route.name);
    if (route.sticky.set) route.set_cookie_attributes = route.sticky.set->attributes();
    route.max_step_ppm = route_config.max_step_ppm;
    route.drain = route_config.drain.value_or(config->timeouts.drain);

    const auto bind = [&](const std::string& pool_name, const char* field, std::uint32_t& index) {
      if (const Pool* pool = snapshot->find_pool(pool_name)) {
        index = pool->index;
      } else {
        error(route_config.line, route_key(r, field), "unknown pool " + pool_name);
      }
    };
    bind(route_config.live, "live", route.live_pool);
    bind(route_config.passive, "passive", route.passive_pool);
    if (route.weight_ppm > kPpmMax) {
      error(route_config.line, route_key(r, "weight"), "must be between 0 and 100 percent");
    }
    snapshot->routes.push_back(std::move(route));
  }

  if (result.errors.empty()) result.snapshot = std::move(snapshot);
  return result;
}

}  // namespace proxyd
