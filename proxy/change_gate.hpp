// The gate a runtime change passes before proxyd makes it: no route may send more of its traffic
// to a pool that has no server taking traffic, and no route's weight may grow by more than its
// max_step in one change. Pure: it compares the snapshot before the change with the one the
// change would publish, reading the servers' shared health at one moment. `--force` skips it
// (the Proxy records that it did). Called under the Proxy's change lock, so the health read and
// the change are one step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing_snapshot.hpp"

namespace proxyd {

// The share of `route`'s new requests that the pool at `pool` (an index into the snapshot's
// pools) gets, in ppm: live gets what the weight leaves, passive the weight, both when they are
// one pool.
std::uint32_t pool_share(const Route& route, std::uint32_t pool);

// A pool that a change sends more traffic, and the routes that do it (in the snapshot's order).
struct TrafficGain {
  std::string pool;
  std::vector<std::string> routes;

  bool operator==(const TrafficGain&) const = default;
};

// The pools whose share of some route grows from `before` to `after`, in the order of `after`'s
// pools. Routes and pools are matched by name; a route `before` lacks gains nothing (a reload adds
// routes, a change does not).
std::vector<TrafficGain> pools_gaining(const RoutingSnapshot& before, const RoutingSnapshot& after);

// Why the weight of a route with max_step grows by more than that from `before` to `after`, for
// the first such route; nullopt when none does. Decreases are always allowed.
std::optional<std::string> step_too_large(const RoutingSnapshot& before,
                                          const RoutingSnapshot& after);

// Whether any server of `pool` takes traffic at `now_ns` (steady clock): enabled, not failing its
// active checks, not ejected. A pool without a health block is assumed up, so an enabled server
// that is not ejected counts; fail_open does not: a pool that only fails open serves no one well.
bool has_server_taking_traffic(const Pool& pool, std::int64_t now_ns);

// What a refusal by the gate ends with.
inline constexpr std::string_view kForceHint = "; --force to override";

// Why the change from `before` to `after` is refused without --force (max_step first, then
// health); nullopt when it may go ahead. The refusal adds kForceHint.
std::optional<std::string> gate_refusal(const RoutingSnapshot& before,
                                        const RoutingSnapshot& after, std::int64_t now_ns);

}  // namespace proxyd
