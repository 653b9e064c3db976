// Runtime state on top of the config: operations (validation, all-or-nothing, flip), overrides
// applied to snapshots (and dropped when their route, pool or server is gone), status sources.
#include <gtest/gtest.h>

#include "proxy/runtime_state.hpp"
#include "tests/unit/snapshot_helpers.hpp"

namespace proxyd {
namespace {

using test::numeric_only;
using test::op;
using test::server_op;

std::shared_ptr<const Config> two_routes_config() {
  auto config = std::make_shared<Config>();
  config->path = "test.yaml";
  for (const char* name : {"blue", "green", "red"}) {
    PoolConfig pool;
    pool.name = name;
    pool.servers.push_back({"127.0.0.1", static_cast<std::uint16_t>(9000 + pool.name.size())});
    pool.servers.push_back({"127.0.0.1", static_cast<std::uint16_t>(9100 + pool.name.size())});
    config->pools.push_back(pool);
  }
  RouteConfig api;
  api.name = "api";
  api.path_prefix = "/api/";
  api.live = "blue";
  api.passive = "green";
  api.weight_ppm = 5000;
  RouteConfig web;
  web.name = "web";
  web.live = "blue";
  web.passive = "blue";
  config->routes = {api, web};
  return config;
}

std::shared_ptr<const RoutingSnapshot> base_snapshot(std::shared_ptr<const Config> config) {
  SnapshotResult built = build_snapshot(std::move(config), 1, nullptr, &numeric_only);
  EXPECT_TRUE(built.errors.empty());
  return built.snapshot;
}

const Route& route(const RoutingSnapshot& s, const std::string& name) { return *s.find_route(name); }
std::string live_of(const RoutingSnapshot& s, const std::string& r) {
  return s.pools[route(s, r).live_pool].name;
}
std::string passive_of(const RoutingSnapshot& s, const std::string& r) {
  return s.pools[route(s, r).passive_pool].name;
}

class RuntimeStateTest : public ::testing::Test {
 protected:
  std::shared_ptr<const RoutingSnapshot> base = base_snapshot(two_routes_config());
  RuntimeState state;

  // Applies operations and returns the published snapshot, as the Proxy does.
  // `refusal` gets the refusal's message, `failed` the index of the operation to blame.
  std::shared_ptr<const RoutingSnapshot> change(const std::vector<Operation>& ops,
                                                std::optional<std::string>* refusal = nullptr,
                                                std::optional<std::size_t>* failed = nullptr) {
    std::vector<std::string> warnings;
    RuntimeState next;
    auto error = apply_operations(*base, state, ops, next);
    if (refusal) *refusal = error ? std::optional(error->message) : std::nullopt;
    if (failed) *failed = error ? error->operation : std::nullopt;
    if (!error) state = next;
    return with_runtime(*base, state, warnings);
  }
};

TEST_F(RuntimeStateTest, SetWeightAndSlots) {
  auto s = change({op(Operation::Kind::set_weight, "api", "", 200000),
                   op(Operation::Kind::set_passive, "web", "red")});
  EXPECT_EQ(route(*s, "api").weight_ppm, 200000u);
  EXPECT_EQ(passive_of(*s, "web"), "red");
  EXPECT_EQ(s->generation, 2u);
  s = change({op(Operation::Kind::set_live, "api", "red")});
  EXPECT_EQ(live_of(*s, "api"), "red");
  EXPECT_EQ(route(*s, "api").weight_ppm, 200000u);  // untouched values stay
  EXPECT_EQ(s->generation, 3u);
}

TEST_F(RuntimeStateTest, FlipSwapsSlotsAndResetsWeight) {
  change({op(Operation::Kind::set_weight, "api", "", 500000)});
  auto s = change({op(Operation::Kind::flip, "api")});
  EXPECT_EQ(live_of(*s, "api"), "green");
  EXPECT_EQ(passive_of(*s, "api"), "blue");
  EXPECT_EQ(route(*s, "api").weight_ppm, 0u);
  s = change({op(Operation::Kind::flip, "api")});  // and back: a rollback
  EXPECT_EQ(live_of(*s, "api"), "blue");
  EXPECT_EQ(passive_of(*s, "api"), "green");
}

TEST_F(RuntimeStateTest, OperationsSeeEarlierOnesOfTheSameCommand) {
  auto s = change({op(Operation::Kind::set_passive, "api", "red"), op(Operation::Kind::flip, "api")});
  EXPECT_EQ(live_of(*s, "api"), "red");
  EXPECT_EQ(passive_of(*s, "api"), "blue");
}

TEST_F(RuntimeStateTest, FlipAllFlipsEveryRouteOfTheSnapshotBeingChanged) {
  change({op(Operation::Kind::set_passive, "web", "red"), op(Operation::Kind::set_weight, "api", "", 500000)});
  auto s = change({op(Operation::Kind::flip_all, "")});
  EXPECT_EQ(live_of(*s, "api"), "green");
  EXPECT_EQ(passive_of(*s, "api"), "blue");
  EXPECT_EQ(route(*s, "api").weight_ppm, 0u);
  EXPECT_EQ(live_of(*s, "web"), "red");
  EXPECT_EQ(passive_of(*s, "web"), "blue");
  EXPECT_EQ(s->generation, 3u);  // one change

  // A route the config added since (a reload) is flipped too: the routes come from `base`.
  auto config = std::make_shared<Config>(*two_routes_config());
  RouteConfig shop;
  shop.name = "shop";
  shop.path_prefix = "/shop/";
  shop.live = "red";
  shop.passive = "green";
  config->routes.insert(config->routes.begin(), shop);
  base = base_snapshot(config);
  s = change({op(Operation::Kind::flip_all, "")});
  EXPECT_EQ(live_of(*s, "shop"), "green");
  EXPECT_EQ(live_of(*s, "api"), "blue");  // flipped back
}

TEST_F(RuntimeStateTest, ARouteFlippedTwiceInOneChangeIsRefused) {
  const RuntimeState before = state;
  std::optional<std::string> refusal;
  const std::string twice =
      "route \"web\" is flipped twice in one change (the flips would cancel out)";
  change({op(Operation::Kind::flip, "web"), op(Operation::Kind::flip_all, "")}, &refusal);
  EXPECT_EQ(refusal, twice);
  change({op(Operation::Kind::flip_all, ""), op(Operation::Kind::flip, "web")}, &refusal);
  EXPECT_EQ(refusal, twice);
  change({op(Operation::Kind::flip, "web"), op(Operation::Kind::flip, "web")}, &refusal);
  EXPECT_EQ(refusal, twice);
  change({op(Operation::Kind::flip_all, ""), op(Operation::Kind::flip_all, "")}, &refusal);
  EXPECT_EQ(refusal, "route \"api\" is flipped twice in one change (the flips would cancel out)");
  EXPECT_EQ(state, before);
}

TEST_F(RuntimeStateTest, FlipAllWithoutRoutesIsRefused) {
  RoutingSnapshot empty;
  RuntimeState next;
  EXPECT_EQ(apply_operations(empty, state, {op(Operation::Kind::flip_all, "")}, next),
            (Refusal{"there are no routes to flip", 0}));
}

TEST_F(RuntimeStateTest, TouchedNamesWhatTheOperationsName) {
  const Touched touched = touched_by(
      *base, state, {op(Operation::Kind::set_weight, "web", "", 5), server_op("blue", "x:1", ServerAdmin::draining),
              op(Operation::Kind::flip, "nope"), op(Operation::Kind::flip_all, ""),
              server_op("blue", "x:1", ServerAdmin::enabled), op(Operation::Kind::set_live, "web", "red")});
  EXPECT_EQ(touched.routes, (std::vector<std::string>{"web", "nope", "api"}));
  EXPECT_EQ(touched.servers, (std::vector<ServerRef>{{"blue", "x:1"}}));
}

TEST_F(RuntimeStateTest, ResetDropsARoutesRuntimeValuesSoTheFilesApply) {
  const std::string server = base->pools[0].servers[1].name;
  change({op(Operation::Kind::flip, "api"), op(Operation::Kind::set_weight, "web", "", 300000),
          server_op("blue", server, ServerAdmin::draining)});
  // A route without runtime values is fine; the servers' states stay.
  auto s = change({op(Operation::Kind::reset, "api"), op(Operation::Kind::reset, "api")});
  EXPECT_EQ(live_of(*s, "api"), "blue");
  EXPECT_EQ(passive_of(*s, "api"), "green");
  EXPECT_EQ(route(*s, "api").weight_ppm, 5000u);  // the config's 0.5%
  EXPECT_EQ(route(*s, "web").weight_ppm, 300000u);
  EXPECT_EQ(state.routes.count("api"), 0u);
  EXPECT_EQ(s->find_pool("blue")->servers[1].admin, ServerAdmin::draining);
  EXPECT_EQ(s->generation, 3u);  // one change, audited like any other
  // Operations after a reset start from the file's values.
  s = change({op(Operation::Kind::reset, "web"), op(Operation::Kind::flip, "web")});
  EXPECT_EQ(live_of(*s, "web"), "blue");
  EXPECT_EQ(route(*s, "web").weight_ppm, 0u);

  std::optional<std::string> refusal;
  std::optional<std::size_t> failed;
  const RuntimeState before = state;
  change({op(Operation::Kind::reset, "web"), op(Operation::Kind::reset, "shop")}, &refusal, &failed);
  EXPECT_EQ(refusal, "no route named shop");
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(state, before);
}

TEST_F(RuntimeStateTest, ResetAllDropsEveryRouteAndServerValue) {
  const std::string server = base->pools[0].servers[1].name;
  change({op(Operation::Kind::flip_all, ""), server_op("blue", server, ServerAdmin::disabled)});
  const Touched touched = touched_by(*base, state, {op(Operation::Kind::reset_all, "")});
  EXPECT_EQ(touched.routes, (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(touched.servers, (std::vector<ServerRef>{{"blue", server}}));
  auto s = change({op(Operation::Kind::reset_all, "")});
  EXPECT_TRUE(state.routes.empty());
  EXPECT_TRUE(state.servers.empty());
  EXPECT_EQ(live_of(*s, "api"), "blue");
  EXPECT_EQ(s->find_pool("blue")->servers[1].admin, ServerAdmin::enabled);
  EXPECT_EQ(s->generation, 3u);
  // Later operations of the same change apply on top of the file's values.
  s = change({op(Operation::Kind::reset_all, ""), op(Operation::Kind::set_weight, "web", "", 7)});
  EXPECT_EQ(route(*s, "web").weight_ppm, 7u);
  EXPECT_EQ(state.routes.size(), 1u);
}

TEST_F(RuntimeStateTest, DiffListsTheRuntimeValuesThatDifferFromTheFile) {
  EXPECT_EQ(runtime_diff(*base, state).size(), 0u);
  const std::string drained = base->pools[0].servers[1].name;
  const std::string enabled = base->pools[0].servers[0].name;
  change({op(Operation::Kind::set_weight, "web", "", 500000), op(Operation::Kind::flip, "api"),
          server_op("blue", drained, ServerAdmin::draining),
          server_op("blue", enabled, ServerAdmin::enabled)});
  // A runtime value equal to the file's wins over nothing; it is not listed.
  change({op(Operation::Kind::set_passive, "web", "blue")});
  const RuntimeDiff diff = runtime_diff(*base, state);
  EXPECT_EQ(diff.generation, 3u);
  EXPECT_EQ(diff.routes, (std::vector<RouteDiff>{{"api", "live", "blue", "green"},
                                                 {"api", "passive", "green", "blue"},
                                                 {"api", "weight", "0.5", "0"},
                                                 {"web", "weight", "0", "50"}}));
  EXPECT_EQ(diff.servers, (std::vector<ServerDiff>{
                              {"blue", drained, ServerAdmin::enabled, ServerAdmin::draining}}));
  EXPECT_EQ(diff.size(), 5u);
}

TEST_F(RuntimeStateTest, RefusalsNameTheProblemAndChangeNothing) {
  const RuntimeState before = state;
  std::optional<std::string> refusal;
  change({op(Operation::Kind::set_weight, "api", "", 1000), op(Operation::Kind::set_live, "nope", "blue")},
         &refusal);
  EXPECT_EQ(refusal, "no route named nope");
  EXPECT_EQ(state, before);
  change({op(Operation::Kind::set_live, "api", "purple")}, &refusal);
  EXPECT_EQ(refusal, "no pool named purple");
  change({op(Operation::Kind::set_weight, "api", "", 1'000'001)}, &refusal);
  EXPECT_EQ(refusal, "weight must be between 0 and 100 percent");
  change({server_op("blue", "127.0.0.1:1", ServerAdmin::draining)}, &refusal);
  EXPECT_EQ(refusal, "pool blue has no server 127.0.0.1:1");
  change({server_op("pink", "127.0.0.1:1", ServerAdmin::draining)}, &refusal);
  EXPECT_EQ(refusal, "no pool named pink");
  change({}, &refusal);
  EXPECT_EQ(refusal, "no operation given");
  EXPECT_EQ(state, before);
}

TEST_F(RuntimeStateTest, ARefusalNamesTheOperationToBlame) {
  std::optional<std::string> refusal;
  std::optional<std::size_t> failed;
  change({op(Operation::Kind::set_weight, "api", "", 1000), op(Operation::Kind::flip, "web"),
          op(Operation::Kind::set_live, "nope", "blue"), op(Operation::Kind::flip, "api")},
         &refusal, &failed);
  EXPECT_EQ(refusal, "no route named nope");
  EXPECT_EQ(failed, 2u);
  change({op(Operation::Kind::flip, "web"), op(Operation::Kind::flip_all, "")}, &refusal, &failed);
  EXPECT_EQ(failed, 1u);
  // Nothing to blame on one operation when there is none.
  change({}, &refusal, &failed);
  EXPECT_EQ(refusal, "no operation given");
  EXPECT_EQ(failed, std::nullopt);
}

TEST_F(RuntimeStateTest, ServerAdminStates) {
  const std::string server = base->pools[0].servers[1].name;
  auto s = change({server_op("blue", server, ServerAdmin::draining)});
  EXPECT_EQ(s->find_pool("blue")->servers[1].admin, ServerAdmin::draining);
  EXPECT_EQ(s->find_pool("blue")->servers[0].admin, ServerAdmin::enabled);
  s = change({server_op("blue", server, ServerAdmin::enabled)});
  EXPECT_EQ(s->find_pool("blue")->servers[1].admin, ServerAdmin::enabled);
}

TEST_F(RuntimeStateTest, EntriesForVanishedRoutesPoolsAndServersAreDroppedWithWarnings) {
  state.routes["gone"].weight_ppm = 5;
  state.routes["api"].live = "purple";
  state.routes["api"].weight_ppm = 7;
  state.servers[{"blue", "10.0.0.1:80"}] = ServerAdmin::disabled;
  std::vector<std::string> warnings;
  auto s = with_runtime(*base, state, warnings);
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0], "route api: live pool purple no longer exists; the config's live pool is used");
  EXPECT_EQ(warnings[1], "route gone no longer exists; its runtime state is dropped");
  EXPECT_EQ(warnings[2],
            "server 10.0.0.1:80 of pool blue no longer exists; its runtime state is dropped");
  EXPECT_EQ(live_of(*s, "api"), "blue");
  EXPECT_EQ(route(*s, "api").weight_ppm, 7u);  // what still applies, applies
  EXPECT_EQ(state.routes.count("gone"), 0u);
  EXPECT_TRUE(state.servers.empty());
}

TEST_F(RuntimeStateTest, StatusSaysWhereEachValueComesFrom) {
  change({op(Operation::Kind::set_weight, "api", "", 50000)});
  std::vector<std::string> warnings;
  Status status = make_status(*with_runtime(*base, state, warnings), state);
  ASSERT_EQ(status.routes.size(), 2u);
  EXPECT_EQ(status.routes[0].name, "api");
  EXPECT_EQ(status.routes[0].weight_source, Source::runtime);
  EXPECT_EQ(status.routes[0].live_source, Source::config);
  EXPECT_EQ(status.routes[1].weight_source, Source::config);
  EXPECT_EQ(status.generation, 2u);
  EXPECT_EQ(status.config_path, "test.yaml");
}

// Health, ejection and load come from the servers' shared state, times on the wall clock.
TEST_F(RuntimeStateTest, StatusReadsHealthEjectionAndLoadFromTheSharedState) {
  std::vector<std::string> warnings;
  const auto snapshot = with_runtime(*base, state, warnings);
  ServerState& first = *snapshot->pools[0].servers[0].state;
  first.health = Health::unhealthy;
  first.in_flight = 4;
  first.tunnels = 2;
  Moment now;
  now.steady = std::chrono::steady_clock::time_point(std::chrono::seconds(1000));
  now.unix_ms = 1'800'000'000'000;
  first.ejected_until = (now.steady + std::chrono::milliseconds(2500)).time_since_epoch().count();
  ServerState& second = *snapshot->pools[0].servers[1].state;
  second.ejected_until = (now.steady - std::chrono::seconds(1)).time_since_epoch().count();
  const Status status = make_status(*snapshot, state, now);
  const ServerStatus& a = status.pools[0].servers[0];
  EXPECT_EQ(a.health, Health::unhealthy);
  EXPECT_EQ(a.in_flight, 4);
  EXPECT_EQ(a.tunnels, 2);
  EXPECT_EQ(a.ejected_until, 1'800'000'002'500);
  EXPECT_EQ(status.pools[0].servers[1].ejected_until, 0) << "an ejection that has ended";
  EXPECT_FALSE(takes_traffic(a, now.unix_ms));
  EXPECT_TRUE(takes_traffic(status.pools[0].servers[1], now.unix_ms));
}

TEST_F(RuntimeStateTest, ChangedBetweenComparesByName) {
  std::vector<std::string> warnings;
  const Status before = make_status(*with_runtime(*base, state, warnings), state);
  Status after = before;
  EXPECT_TRUE(changed_between(before, after).routes.empty());
  EXPECT_TRUE(changed_between(before, after).servers.empty());
  // A new route in front (as a reload may add one), api's weight changed, web removed, a server
  // drained, one removed and one added.
  after.routes.insert(after.routes.begin(), RouteStatus{});
  after.routes[0].name = "shop";
  after.routes[1].weight_ppm += 1;
  after.routes.pop_back();
  after.pools[0].servers[0].admin = ServerAdmin::draining;
  after.pools[1].servers.pop_back();
  ServerStatus added;
  added.name = "10.0.0.9:80";
  after.pools[2].servers.push_back(added);
  const Touched changed = changed_between(before, after);
  EXPECT_EQ(changed.routes, (std::vector<std::string>{"shop", "api", "web"}));
  const std::string blue_server = before.pools[0].servers[0].name;
  const std::string green_server = before.pools[1].servers[1].name;
  EXPECT_EQ(changed.servers, (std::vector<ServerRef>{{"blue", blue_server}, {"red", "10.0.0.9:80"},
                                                     {"green", green_server}}));
}

TEST(AdminNames, RoundTrip) {
  for (ServerAdmin a : {ServerAdmin::enabled, ServerAdmin::draining, ServerAdmin::disabled})
    EXPECT_EQ(parse_admin(admin_name(a)), a);
  EXPECT_FALSE(parse_admin("paused"));
}

}  // namespace
}  // namespace proxyd
