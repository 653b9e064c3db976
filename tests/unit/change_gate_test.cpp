// The change gate: which pools a change sends more traffic (per command: set-weight up and down,
// set-live, set-passive, flip), max_step, and the refusal when a pool gaining traffic has no
// server taking it, read from the servers' shared health at one moment.
#include <gtest/gtest.h>

#include "proxy/change_gate.hpp"
#include "proxy/runtime_state.hpp"
#include "tests/unit/snapshot_helpers.hpp"

namespace proxyd {
namespace {

using test::numeric_only;
using test::op;
using test::server_op;

// blue (unchecked, two servers), green (checked, one server), red (checked, fail_open); route
// api blue -> green at 10% with max_step 20%, route web blue -> blue.
std::shared_ptr<const Config> gate_config() {
  auto config = std::make_shared<Config>();
  const auto add_pool = [&](const char* name, std::uint16_t port, int servers, bool checked) {
    PoolConfig pool;
    pool.name = name;
    for (int i = 0; i < servers; ++i)
      pool.servers.push_back({"127.0.0.1", static_cast<std::uint16_t>(port + i)});
    if (checked) pool.health.emplace();
    config->pools.push_back(pool);
  };
  add_pool("blue", 9001, 2, false);
  add_pool("green", 9011, 1, true);
  add_pool("red", 9021, 1, true);
  config->pools[2].fail_open = true;
  RouteConfig api;
  api.name = "api";
  api.live = "blue";
  api.passive = "green";
  api.weight_ppm = 100'000;
  api.max_step_ppm = 200'000;
  RouteConfig web;
  web.name = "web";
  web.live = "blue";
  web.passive = "blue";
  config->routes = {api, web};
  return config;
}

class ChangeGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SnapshotResult built = build_snapshot(gate_config(), 1, nullptr, &numeric_only);
    ASSERT_TRUE(built.errors.empty());
    base = built.snapshot;
    std::vector<std::string> warnings;
    before = with_runtime(*base, state, warnings);
    set_health("green", Health::healthy);
    set_health("red", Health::healthy);
  }

  // The snapshot the operations would publish, as the Proxy builds it for the gate.
  std::shared_ptr<const RoutingSnapshot> after(const std::vector<Operation>& ops) {
    RuntimeState next;
    EXPECT_EQ(apply_operations(*base, state, ops, next), std::nullopt);
    std::vector<std::string> warnings;
    return with_runtime(*base, next, warnings);
  }
  std::vector<TrafficGain> gains(const std::vector<Operation>& ops) {
    return pools_gaining(*before, *after(ops));
  }
  std::optional<std::string> refusal(const std::vector<Operation>& ops) {
    return gate_refusal(*before, *after(ops), kNow);
  }
  void set_health(const std::string& pool, Health health) {
    for (const Server& server : base->find_pool(pool)->servers) server.state->health = health;
  }

  static constexpr std::int64_t kNow = 1'000'000'000;
  std::shared_ptr<const RoutingSnapshot> base;
  std::shared_ptr<const RoutingSnapshot> before;
  RuntimeState state;
};

using Kind = Operation::Kind;

TEST_F(ChangeGateTest, SetWeightUpFeedsThePassivePoolAndDownTheLivePool) {
  EXPECT_EQ(gains({op(Kind::set_weight, "api", "", 150'000)}),
            (std::vector<TrafficGain>{{"green", {"api"}}}));
  EXPECT_EQ(gains({op(Kind::set_weight, "api", "", 0)}),
            (std::vector<TrafficGain>{{"blue", {"api"}}}));
  EXPECT_EQ(gains({op(Kind::set_weight, "api", "", 100'000)}), std::vector<TrafficGain>{});
  // One pool in both slots: the weight moves nothing between pools.
  EXPECT_EQ(gains({op(Kind::set_weight, "web", "", 500'000)}), std::vector<TrafficGain>{});
}

TEST_F(ChangeGateTest, SetLiveOrSetPassiveFeedsThePoolOnlyWhenItsSlotHasAShare) {
  EXPECT_EQ(gains({op(Kind::set_live, "api", "red")}),
            (std::vector<TrafficGain>{{"red", {"api"}}}));
  EXPECT_EQ(gains({op(Kind::set_passive, "api", "red")}),
            (std::vector<TrafficGain>{{"red", {"api"}}}));
  // Passive at 0%: the new passive pool gets no share (only the preview listener and header).
  EXPECT_EQ(gains({op(Kind::set_weight, "api", "", 0), op(Kind::set_passive, "api", "red")}),
            (std::vector<TrafficGain>{{"blue", {"api"}}}));
  // Live at 100%... of nothing: the weight sends everything to passive.
  EXPECT_EQ(gains({op(Kind::set_weight, "api", "", 1'000'000), op(Kind::set_live, "api", "red")}),
            (std::vector<TrafficGain>{{"green", {"api"}}}));
}

TEST_F(ChangeGateTest, FlipFeedsThePoolBecomingLiveAndFlipAllNamesEveryRoute) {
  EXPECT_EQ(gains({op(Kind::flip, "api")}), (std::vector<TrafficGain>{{"green", {"api"}}}));
  EXPECT_EQ(gains({op(Kind::set_passive, "web", "green"), op(Kind::set_weight, "web", "", 50'000),
                   op(Kind::flip_all, "")}),
            (std::vector<TrafficGain>{{"green", {"api", "web"}}}));
}

TEST_F(ChangeGateTest, MaxStepRefusesALargerIncreaseOnly) {
  EXPECT_EQ(step_too_large(*before, *after({op(Kind::set_weight, "api", "", 300'000)})),
            std::nullopt);  // +20%: exactly the step
  EXPECT_EQ(step_too_large(*before, *after({op(Kind::set_weight, "api", "", 300'001)})),
            "route api: raising the weight from 10% to 30.0001% is a step of 20.0001%, more than "
            "its max_step of 20%");
  EXPECT_EQ(step_too_large(*before, *after({op(Kind::set_weight, "api", "", 0)})), std::nullopt);
  EXPECT_EQ(step_too_large(*before, *after({op(Kind::set_weight, "web", "", 1'000'000)})),
            std::nullopt)
      << "web has no max_step";
  // One change is one step, however many lines a batch spreads it over.
  EXPECT_NE(step_too_large(*before, *after({op(Kind::set_weight, "api", "", 250'000),
                                            op(Kind::set_weight, "api", "", 400'000)})),
            std::nullopt);
  EXPECT_EQ(refusal({op(Kind::set_weight, "api", "", 500'000)}),
            "route api: raising the weight from 10% to 50% is a step of 40%, more than its "
            "max_step of 20%");
}

TEST_F(ChangeGateTest, APoolGainingTrafficNeedsAServerThatTakesIt) {
  EXPECT_EQ(refusal({op(Kind::set_weight, "api", "", 200'000)}), std::nullopt);
  set_health("green", Health::unhealthy);
  EXPECT_EQ(refusal({op(Kind::set_weight, "api", "", 200'000)}),
            "pool green has no healthy server (route api would send it more traffic)");
  EXPECT_EQ(refusal({op(Kind::flip, "api")}),
            "pool green has no healthy server (route api would send it more traffic)");
  // Less traffic to a sick pool is always fine: that is the rollback.
  EXPECT_EQ(refusal({op(Kind::set_weight, "api", "", 0)}), std::nullopt);
}

TEST_F(ChangeGateTest, EjectedDisabledAndFailOpenDoNotCount) {
  base->find_pool("green")->servers[0].state->ejected_until = kNow + 1;
  EXPECT_NE(refusal({op(Kind::flip, "api")}), std::nullopt);
  base->find_pool("green")->servers[0].state->ejected_until = kNow;
  EXPECT_EQ(refusal({op(Kind::flip, "api")}), std::nullopt) << "the ejection is over";

  set_health("red", Health::unhealthy);
  EXPECT_EQ(refusal({op(Kind::set_live, "api", "red")}),
            "pool red has no healthy server (route api would send it more traffic)")
      << "fail_open is no exemption";

  // The servers as the change leaves them: disabling green's only server in the same batch.
  EXPECT_NE(refusal({server_op("green", "127.0.0.1:9011", ServerAdmin::disabled),
                     op(Kind::flip, "api")}),
            std::nullopt);
}

TEST_F(ChangeGateTest, AnUncheckedPoolCountsAsUpWhileAServerIsEnabledAndNotEjected) {
  EXPECT_EQ(refusal({op(Kind::set_weight, "api", "", 0)}), std::nullopt);
  state.servers[{"blue", "127.0.0.1:9001"}] = ServerAdmin::disabled;
  state.servers[{"blue", "127.0.0.1:9002"}] = ServerAdmin::draining;
  std::vector<std::string> warnings;
  before = with_runtime(*base, state, warnings);
  EXPECT_EQ(refusal({op(Kind::set_weight, "api", "", 0)}),
            "pool blue has no healthy server (route api would send it more traffic)");
  EXPECT_EQ(refusal({server_op("blue", "127.0.0.1:9002", ServerAdmin::enabled),
                     op(Kind::set_weight, "api", "", 0)}),
            std::nullopt);
}

TEST_F(ChangeGateTest, SeveralRoutesFeedingOnePoolAreNamedTogether) {
  set_health("red", Health::unhealthy);
  EXPECT_EQ(refusal({op(Kind::set_live, "api", "red"), op(Kind::set_live, "web", "red")}),
            "pool red has no healthy server (routes api, web would send it more traffic)");
}

}  // namespace
}  // namespace proxyd
