// The pure half of `proxyctl fleet rollout` (docs/fleet.md, "Fleet rollout"): what the fleet must
// look like before a rollout starts, and the fleet's counts of one route's slots summed over every
// member's report. proxyctl.cpp runs the plan with these and rollout.hpp's rules; no I/O here.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "proxy/admin_types.hpp"
#include "proxy/window_counts.hpp"

namespace proxyd::control {

// The route a fleet rollout would run on: every registered member up, reporting `route` with the
// same live and passive pools, and two different pools. `error` says what is not so.
struct FleetRoute {
  std::string error;
  std::string live;
  std::string passive;
  std::size_t members = 0;
};
FleetRoute fleet_route(const FleetView& view, const std::string& route);

// The fleet's counts of one route's live and passive pools: the sum over every member of what its
// report says it counted since it started. Kept monotone, as a rollout's differences need: a
// member that restarted (a new `started_ms`) keeps what it had counted before in the sum, and a
// member whose report is gone (down) keeps its last counts. A member whose slot is bound to
// another pool than the rollout's (a --local change) adds nothing for that slot meanwhile.
// Owner: one fleet rollout in proxyctl. Single-threaded.
class FleetCounts {
 public:
  FleetCounts(std::string route, std::string live, std::string passive);

  // Takes every up member's report in `view`.
  void update(const FleetView& view);
  WindowCounts live() const;
  WindowCounts passive() const;

 private:
  struct Slot {
    WindowCounts before;  // counted by earlier runs of the member's proxyd
    WindowCounts last;    // as its latest report said
  };
  struct Member {
    std::int64_t started_ms = 0;
    Slot live;
    Slot passive;
  };
  WindowCounts total(Slot Member::*slot) const;

  std::string route_;
  std::string live_;
  std::string passive_;
  std::map<std::string, Member> members_;
};

}  // namespace proxyd::control
