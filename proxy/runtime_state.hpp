// Runtime state: what the control socket changed on top of the config (slots, weights, server
// admin states) and the generation. It is what the state file stores. A published snapshot is
// always "config + runtime state"; these functions are pure so every rule is unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "admin_api.hpp"
#include "routing_snapshot.hpp"

namespace proxyd {

struct RouteOverride {
  std::optional<std::string> live;
  std::optional<std::string> passive;
  std::optional<std::uint32_t> weight_ppm;

  bool empty() const { return !live && !passive && !weight_ppm; }
  bool operator==(const RouteOverride&) const = default;
};

struct RuntimeState {
  std::uint64_t generation = 1;
  std::map<std::string, RouteOverride> routes;                            // by route name
  std::map<std::pair<std::string, std::string>, ServerAdmin> servers;    // (pool, server)
  // Each route's latest rollout (active or ended), by route name. Its salt re-draws the route's
  // sticky cohorts: each release canaries other users.
  std::map<std::string, RolloutStatus> rollouts;
  // Fleet mode (docs/fleet.md): the revision of the desired state last applied (0: none), so a
  // restarted member never goes back to an older one; drift: a --local change since then.
  std::int64_t fleet_revision = 0;
  bool fleet_drift = false;

  bool operator==(const RuntimeState&) const = default;
};

// A snapshot with the state's overrides applied to `base` (built from the config, servers
// resolved), and each rollout's salt mixed into its route's sticky salt. Entries naming a route,
// pool or server that no longer exists are removed from `state`, each with a warning; the result
// carries state.generation.
std::shared_ptr<const RoutingSnapshot> with_runtime(const RoutingSnapshot& base,
                                                    RuntimeState& state,
                                                    std::vector<std::string>& warnings);

// Why a change was refused and, when one operation is to blame, its index in the list (so
// proxyctl can name the line of a batch it came from).
struct Refusal {
  std::string message;
  std::optional<std::size_t> operation;

  bool operator==(const Refusal&) const = default;
};

// Applies `operations` in order to a copy of `state`, checking each against `base` (the snapshot
// of the config alone, which `state` overrides); flip_all flips every route of `base`. Returns the
// refusal, or nullopt with `next` set (generation + 1). A route flipped twice in one change is
// refused: the flips would cancel out, surely not what was meant.
std::optional<Refusal> apply_operations(const RoutingSnapshot& base, const RuntimeState& state,
                                        const std::vector<Operation>& operations,
                                        RuntimeState& next);

// What `operations` name, for the reply and the audit record: routes and servers in the order
// first named (also names that do not exist, so a refusal shows what was asked); flip_all names
// every route of `base`, reset_all every route of `base` and every server `state` overrides.
Touched touched_by(const RoutingSnapshot& base, const RuntimeState& state,
                   const std::vector<Operation>& operations);

// The values of `state` that differ from `base`'s (the config file's) and so win over them.
RuntimeDiff runtime_diff(const RoutingSnapshot& base, const RuntimeState& state);

// What a reload changed: the routes whose slots or weight differ between `before` and `after`
// (or that only one of them has), and likewise the servers' admin states; by name, in the order
// of `after` then `before`.
Touched changed_between(const Status& before, const Status& after);

// What `proxyctl status` shows: effective values and where each comes from.
// A moment on both clocks: the steady one the data plane keeps time in, the wall clock status
// reports in (Unix milliseconds).
struct Moment {
  std::chrono::steady_clock::time_point steady;
  std::int64_t unix_ms = 0;
  static Moment now();
};

// What the health checker knows of a checked server beyond its shared state: its last check and
// since when its health is what it is (Unix milliseconds).
struct CheckRecord {
  std::string last_check;  // "200", "503", "timeout", "connect refused", ...
  std::int64_t last_check_at = 0;
  std::int64_t health_since = 0;
};
using CheckRecords = std::unordered_map<const ServerState*, CheckRecord>;

// Health, ejection and load come from each server's shared state as they are at `now`; the last
// check from `records`, when given.
Status make_status(const RoutingSnapshot& snapshot, const RuntimeState& state,
                   const Moment& now = Moment::now(), const CheckRecords* records = nullptr);

}  // namespace proxyd
