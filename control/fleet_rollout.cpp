// The fleet rollout's view of the fleet and its summed counts: see fleet_rollout.hpp.
#include "control/fleet_rollout.hpp"

#include <utility>

namespace proxyd::control {

FleetRoute fleet_route(const FleetView& view, const std::string& route) {
  FleetRoute out;
  if (!view.error.empty()) {
    out.error = view.error;
    return out;
  }
  for (const FleetHost& host : view.hosts) {
    if (!host.member) continue;
    if (!host.up) {
      out.error = "member " + host.host +
                  " is down: a fleet rollout needs every member's counts (proxyctl fleet forget " +
                  host.host + " if it is gone for good)";
      return out;
    }
    const auto found = host.counts.find(route);
    if (found == host.counts.end()) {
      out.error = "member " + host.host + " has no route named " + route;
      return out;
    }
    const RouteCounts& counts = found->second;
    if (out.members == 0) {
      out.live = counts.live.pool;
      out.passive = counts.passive.pool;
    } else if (counts.live.pool != out.live || counts.passive.pool != out.passive) {
      out.error = "members disagree on route " + route + "'s pools: live " + out.live +
                  ", passive " + out.passive + " on some, live " + counts.live.pool +
                  ", passive " + counts.passive.pool + " on " + host.host;
      return out;
    }
    ++out.members;
  }
  if (out.members == 0) {
    out.error = "the fleet has no member yet";
  } else if (out.live == out.passive) {
    out.error = "route " + route + " has " + out.live +
                " in both slots: bind the new version with proxyctl fleet set-passive first";
  }
  return out;
}

FleetCounts::FleetCounts(std::string route, std::string live, std::string passive)
    : route_(std::move(route)), live_(std::move(live)), passive_(std::move(passive)) {}

void FleetCounts::update(const FleetView& view) {
  for (const FleetHost& host : view.hosts) {
    if (!host.up) continue;
    const auto found = host.counts.find(route_);
    if (found == host.counts.end()) continue;
    Member& member = members_[host.host];
    const bool restarted = member.started_ms != 0 && member.started_ms != host.started_ms;
    member.started_ms = host.started_ms;
    const auto take = [&](Slot& slot, const SlotCounts& counts, const std::string& pool) {
      if (restarted) {
        slot.before = plus(slot.before, slot.last);
        slot.last = WindowCounts{};
      }
      if (counts.pool != pool) return;
      if (const std::optional<WindowCounts> now = window_counts(counts)) slot.last = *now;
    };
    take(member.live, found->second.live, live_);
    take(member.passive, found->second.passive, passive_);
  }
}

WindowCounts FleetCounts::total(Slot Member::*slot) const {
  WindowCounts out;
  for (const auto& [name, member] : members_) {
    const Slot& s = member.*slot;
    out = plus(out, plus(s.before, s.last));
  }
  return out;
}

WindowCounts FleetCounts::live() const { return total(&Member::live); }
WindowCounts FleetCounts::passive() const { return total(&Member::passive); }

}  // namespace proxyd::control
