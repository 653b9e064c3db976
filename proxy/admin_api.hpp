// The narrow interface the control plane uses to read and change proxyd's runtime state. Nothing
// else of proxy/ is visible to control/ (docs/architecture.md, "The control boundary"); control
// tests use a fake of this interface. Plain types only (admin_types.hpp): no Asio, Beast, JSON,
// yaml-cpp or snapshot.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/admin_types.hpp"

namespace proxyd {

class AdminApi {
 public:
  virtual ~AdminApi() = default;

  virtual Status status() const = 0;

  // Requests, errors and latency per route, slot and pool over the last `window` (one of
  // kStatsWindows), merged from every worker's per-second counts.
  virtual Stats stats(std::chrono::seconds window) const = 0;

  // Validates every operation against the current state, builds one new snapshot, saves the
  // runtime state durably, publishes, appends to the audit log. Refused (ok=false, nothing
  // changed, still audited) on any invalid operation, a generation mismatch or a failed save.
  virtual ChangeResult apply(const ChangeRequest& request) = 0;

  // Re-reads the config file (the same path as SIGHUP). On error, `error` carries every
  // `FILE:LINE: key: message` and the running config stays. Refused, and audited, when
  // `if_generation` is set and the generation has moved. Runtime values still win over the new
  // file until reset; `overrides` lists those that differ from it.
  virtual ChangeResult reload(const Caller& caller, std::optional<std::uint64_t> if_generation) = 0;

  // The runtime values that differ from the config file's and win over them.
  virtual RuntimeDiff diff() const = 0;

  // Starts, pauses, resumes or aborts `command.route`'s rollout (docs/deploy.md). Start checks the
  // plan, refuses while a rollout of the route is active, and sets the first step's weight through
  // the change gate (the passive pool must take traffic); abort sets the weight to 0. Each is one
  // change: durable before the reply, audited, refused with nothing changed. The result carries
  // the rollout as it is after the command.
  virtual ChangeResult rollout(const RolloutCommand& command) = 0;

  // The last `max_entries` audit-log entries, oldest first, each one JSON object (one line).
  virtual std::vector<std::string> history(std::size_t max_entries) const = 0;

  // Fleet mode (docs/fleet.md), through this proxyd's etcd client. Refused without a fleet
  // section (the defaults here, so fakes need not implement them). fleet_view: every member and
  // its report, and the desired state's revision. fleet_write: edits the desired state with a
  // compare-and-swap on its revision; it does not wait for the members (proxyctl does, polling
  // fleet_view). fleet_forget: drops a member's registration.
  virtual FleetView fleet_view() { return FleetView{std::string(kNotAFleetMember), 0, {}, {}}; }
  virtual FleetWriteResult fleet_write(const FleetWrite&) {
    return FleetWriteResult{std::string(kNotAFleetMember), 0};
  }
  virtual FleetWriteResult fleet_forget(const std::string&) {
    return FleetWriteResult{std::string(kNotAFleetMember), 0};
  }
  static constexpr std::string_view kNotAFleetMember =
      "this proxyd is not a fleet member (its config has no fleet section)";
};

}  // namespace proxyd
