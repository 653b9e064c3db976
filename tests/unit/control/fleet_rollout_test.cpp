// The pure half of `proxyctl fleet rollout`: when the fleet may start one, and the fleet's counts
// summed over the members' reports, monotone across a member's restart and a member going down.
#include "control/fleet_rollout.hpp"

#include <gtest/gtest.h>

namespace proxyd::control {
namespace {

// A slot of `pool` with `requests` requests, `errors` of them 5xx, all in the first bucket.
SlotCounts slot(std::string pool, std::int64_t requests, std::int64_t errors = 0) {
  SlotCounts out{std::move(pool), requests, errors,
                 std::vector<std::int64_t>(kDurationBuckets.size() + 1, 0)};
  out.buckets[0] = requests;
  return out;
}

FleetHost host(std::string name, std::int64_t started, RouteCounts api, bool up = true) {
  FleetHost out;
  out.host = std::move(name);
  out.member = true;
  out.up = up;
  out.started_ms = started;
  out.counts["api"] = std::move(api);
  return out;
}

TEST(FleetRoute, NeedsEveryMemberUpWithTheRouteOnTheSamePools) {
  FleetView view;
  view.hosts = {host("web-1", 1, {slot("blue", 0), slot("green", 0)}),
                host("web-2", 1, {slot("blue", 0), slot("green", 0)})};
  const FleetRoute ok = fleet_route(view, "api");
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.live, "blue");
  EXPECT_EQ(ok.passive, "green");
  EXPECT_EQ(ok.members, 2u);

  EXPECT_EQ(fleet_route(view, "web").error, "member web-1 has no route named web");
  FleetView down = view;
  down.hosts[1].up = false;
  EXPECT_EQ(fleet_route(down, "api").error,
            "member web-2 is down: a fleet rollout needs every member's counts (proxyctl fleet "
            "forget web-2 if it is gone for good)");
  FleetView drifted = view;
  drifted.hosts[1].counts["api"].passive.pool = "red";
  EXPECT_EQ(fleet_route(drifted, "api").error,
            "members disagree on route api's pools: live blue, passive green on some, live blue, "
            "passive red on web-2");
  FleetView same = view;
  for (FleetHost& h : same.hosts) h.counts["api"].passive.pool = "blue";
  EXPECT_EQ(fleet_route(same, "api").error,
            "route api has blue in both slots: bind the new version with proxyctl fleet "
            "set-passive first");
  EXPECT_EQ(fleet_route(FleetView{}, "api").error, "the fleet has no member yet");
  FleetView unread;
  unread.error = "cannot read the fleet from etcd: refused";
  EXPECT_EQ(fleet_route(unread, "api").error, "cannot read the fleet from etcd: refused");
}

TEST(FleetCounts, SumsTheMembersAndStaysMonotoneAcrossRestartsAndDownMembers) {
  FleetCounts counts("api", "blue", "green");
  FleetView view;
  view.hosts = {host("web-1", 100, {slot("blue", 50, 1), slot("green", 5, 2)}),
                host("web-2", 100, {slot("blue", 30), slot("green", 3)})};
  counts.update(view);
  EXPECT_EQ(counts.live().requests, 80);
  EXPECT_EQ(counts.live().errors, 1);
  EXPECT_EQ(counts.passive().requests, 8);
  EXPECT_EQ(counts.passive().errors, 2);
  EXPECT_EQ(counts.passive().buckets[0], 8);

  // web-2 restarted (its counts start over) and web-1 went down (its report is gone): what both
  // counted before stays in the sum.
  view.hosts = {host("web-1", 100, {slot("blue", 0), slot("green", 0)}, false),
                host("web-2", 200, {slot("blue", 4), slot("green", 1)})};
  counts.update(view);
  EXPECT_EQ(counts.live().requests, 50 + 30 + 4);
  EXPECT_EQ(counts.passive().requests, 5 + 3 + 1);
  EXPECT_EQ(counts.passive().errors, 2);

  // A member whose passive slot is bound elsewhere (a --local change) adds nothing meanwhile.
  view.hosts = {host("web-2", 200, {slot("blue", 10), slot("red", 90)})};
  counts.update(view);
  EXPECT_EQ(counts.live().requests, 50 + 30 + 10);
  EXPECT_EQ(counts.passive().requests, 5 + 3 + 1);

  // Counts with buckets of another build cannot be summed: left out, not misread.
  SlotCounts odd = slot("green", 1000);
  odd.buckets.pop_back();
  view.hosts = {host("web-2", 200, {slot("blue", 10), odd})};
  counts.update(view);
  EXPECT_EQ(counts.passive().requests, 5 + 3 + 1);
}

}  // namespace
}  // namespace proxyd::control
