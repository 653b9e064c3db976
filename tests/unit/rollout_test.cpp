// The rollout rules without proxyd: Wilson bounds against reference values, the error and latency
// verdicts at the sample sizes that matter (a canary answering 500 stopped after 3 requests, one
// as good as live never stopped on noise however the errors fall), the step wait's text, and the
// sticky salt a rollout mixes into its route.
#include <gtest/gtest.h>

#include <cmath>

#include "proxy/rollout.hpp"
#include "proxy/config.hpp"
#include "proxy/split_policy.hpp"
#include "proxy/runtime_state.hpp"
#include "tests/unit/snapshot_helpers.hpp"

namespace proxyd {
namespace {

// Counts with every request in one latency bucket (index into kDurationBuckets; its size: +Inf).
WindowCounts counts(std::int64_t requests, std::int64_t errors, std::size_t bucket = 0) {
  WindowCounts c;
  c.requests = requests;
  c.errors = errors;
  c.buckets[bucket] = requests;
  return c;
}

TEST(RolloutWilson, MatchesReferenceValues) {
  // Reference values from the closed form, z = 3.09 (computed apart, in Python).
  const Bounds none = wilson(0, 0);
  EXPECT_EQ(none.lower, 0.0);
  EXPECT_EQ(none.upper, 1.0);
  const Bounds all3 = wilson(3, 3);
  EXPECT_NEAR(all3.lower, 3.0 / (3.0 + 3.09 * 3.09), 1e-12);
  EXPECT_NEAR(all3.upper, 1.0, 1e-12);
  const Bounds zero1000 = wilson(0, 1000);
  EXPECT_NEAR(zero1000.lower, 0.0, 1e-12);
  EXPECT_NEAR(zero1000.upper, (3.09 * 3.09 / 1000) / (1 + 3.09 * 3.09 / 1000), 1e-12);
  const Bounds tenth = wilson(100, 1000);
  EXPECT_NEAR(tenth.lower, 0.074364, 1e-6);
  EXPECT_NEAR(tenth.upper, 0.133203, 1e-6);
}

TEST(RolloutBinomial, TailMatchesReferenceValues) {
  EXPECT_DOUBLE_EQ(binomial_tail(0, 10, 0.3), 1.0);
  EXPECT_DOUBLE_EQ(binomial_tail(11, 10, 0.3), 0.0);
  EXPECT_NEAR(binomial_tail(1, 1, 0.5), 0.5, 1e-12);
  EXPECT_NEAR(binomial_tail(2, 10, 0.1), 1 - std::pow(0.9, 10) - std::pow(0.9, 9), 1e-12);
  EXPECT_NEAR(binomial_tail(3, 3, 0.02), 8e-6, 1e-15);
  // Far in the tail of a large count: P(X >= 150 | 10000, 1%) is about 1.5e-6.
  EXPECT_GT(binomial_tail(150, 10'000, 0.01), 1e-7);
  EXPECT_LT(binomial_tail(150, 10'000, 0.01), 1e-5);
}

TEST(RolloutAnalysis, ACanaryAnswering500IsAbortedAfterTwoRequests) {
  const RolloutPlan plan;  // max_error_ratio 1%
  for (const WindowCounts& live : {counts(2000, 0), counts(5000, 50)}) {
    EXPECT_FALSE(analyze(live, counts(1, 1), plan).abort);  // one error proves nothing
    EXPECT_TRUE(analyze(live, counts(2, 2), plan).abort);
  }
  const Verdict verdict = analyze(counts(2000, 0), counts(3, 3), plan);
  EXPECT_TRUE(verdict.abort);
  EXPECT_EQ(verdict.code, "error_ratio");
  EXPECT_EQ(verdict.reason,
            "error ratio: passive 3/3 (100.00%) against live 0/2000 (0.00%), worse by more than "
            "1% (binomial test, p < 0.001)");
}

TEST(RolloutAnalysis, OnePercentAgainstOnePercentIsNeverAbortedOnNoise) {
  const RolloutPlan plan;
  // Live at 1% over a step; the canary at 1% too but with its errors bunched as badly as a
  // binomial draw plausibly bunches them at each small count (mean + 3 sd, at least 1).
  const WindowCounts live = counts(5000, 50);
  for (std::int64_t n = 1; n <= 2000; ++n) {
    const double mean = n * 0.01;
    const auto errors = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::ceil(mean + 3 * std::sqrt(mean * 0.99))));
    EXPECT_FALSE(analyze(live, counts(n, std::min(errors, n)), plan).abort)
        << errors << " errors in " << n;
  }
}

TEST(RolloutAnalysis, ErrorsClearlyAboveLiveAreAbortedOnceConclusive) {
  const RolloutPlan plan;
  const WindowCounts live = counts(5000, 50);  // 1%
  EXPECT_FALSE(analyze(live, counts(20, 2), plan).abort);  // 10% of 20: not yet conclusive
  EXPECT_TRUE(analyze(live, counts(400, 40), plan).abort);  // 10% of 400: it is
  // Without live requests (a quiet route) passive is held to the ratio alone.
  EXPECT_TRUE(analyze(counts(0, 0), counts(400, 40), plan).abort);
  EXPECT_FALSE(analyze(counts(0, 0), counts(400, 0), plan).abort);
}

TEST(RolloutAnalysis, APassiveP99FiveTimesLivesIsAbortedOnLatency) {
  const RolloutPlan plan;  // max_latency_ratio 1.5
  // Live: 1000 requests in (5 ms, 10 ms] (p99 9.95 ms); passive: every request in (25, 50 ms].
  const WindowCounts live = counts(1000, 0, 3);
  EXPECT_FALSE(analyze(live, counts(1, 0, 5), plan).abort);
  const Verdict verdict = analyze(live, counts(10, 0, 5), plan);
  EXPECT_TRUE(verdict.abort);
  EXPECT_EQ(verdict.code, "latency");
  EXPECT_EQ(verdict.reason,
            "latency: passive p99 49.8 ms against live p99 10.0 ms (limit 20.0 ms): 10 of 10 "
            "passive requests slower");
  // Below live's p99 + 10 ms nothing is too slow: live within 1 ms, passive within 5 ms.
  EXPECT_FALSE(analyze(counts(1000, 0, 0), counts(1000, 0, 2), plan).abort);
  // Past the floor it is: live within 1 ms, passive in (10 ms, 25 ms].
  EXPECT_TRUE(analyze(counts(1000, 0, 0), counts(10, 0, 4), plan).abort);
  // The same latency as live is never too slow.
  EXPECT_FALSE(analyze(live, counts(1000, 0, 3), plan).abort);
  // Live needs kLatencyMinReference requests before its p99 is a reference.
  EXPECT_FALSE(analyze(counts(99, 0, 0), counts(50, 0, 5), plan).abort);
}

TEST(RolloutAnalysis, SlowerThanInterpolatesInsideTheBucket) {
  WindowCounts c;
  c.requests = 100;
  c.buckets[1] = 100;  // (1 ms, 2.5 ms]
  EXPECT_DOUBLE_EQ(slower_than(c, 0.001), 100);
  EXPECT_DOUBLE_EQ(slower_than(c, 0.00175), 50);
  EXPECT_DOUBLE_EQ(slower_than(c, 0.0025), 0);
  c.buckets[kDurationBuckets.size()] = 7;  // beyond 10 s: slower than any bound
  EXPECT_DOUBLE_EQ(slower_than(c, 20.0), 7);
}

TEST(RolloutStep, WaitsForTimeAndRequests) {
  RolloutPlan plan;
  plan.interval_ms = 250'000;
  plan.min_requests = 100;
  StepWait wait = step_wait(plan, 0, 0);
  EXPECT_FALSE(wait.done);
  EXPECT_EQ(wait.waiting_for, "4m 10s and 100 more requests");
  wait = step_wait(plan, 249'500, 99);
  EXPECT_EQ(wait.waiting_for, "1s and 1 more request");
  wait = step_wait(plan, 250'000, 40);
  EXPECT_EQ(wait.waiting_for, "60 more requests");
  wait = step_wait(plan, 260'000, 100);
  EXPECT_TRUE(wait.done);
  EXPECT_EQ(wait.waiting_for, "");
  EXPECT_EQ(format_duration_ms(3'723'000), "1h 2m 3s");
  EXPECT_EQ(format_duration_ms(0), "0s");
}

TEST(RolloutStep, JudgesTheStepsCountsAgainstLiveOfTheStepOrSinceTheStart) {
  RolloutPlan plan;
  plan.interval_ms = 1000;
  plan.min_requests = 10;
  // Live slow (every request in (10, 25 ms]) before the step, fast (within 1 ms) in it: 1000
  // requests of the step are the reference, and passive in (10, 25 ms] is then too slow.
  StepCounts c;
  c.live_at_step = counts(500, 0, 4);
  c.live_now = plus(c.live_at_step, counts(1000, 0, 0));
  c.passive_at_step = counts(7, 7);  // before the step: not the step's
  c.passive_now = plus(c.passive_at_step, counts(20, 0, 4));
  StepJudgement judged = judge_step(c, plan, 5000);
  EXPECT_TRUE(judged.verdict.abort);
  EXPECT_EQ(judged.verdict.code, "latency");
  EXPECT_EQ(judged.passive.requests, 20);
  EXPECT_EQ(judged.passive.errors, 0);
  EXPECT_EQ(judged.live.requests, 1000);
  EXPECT_FALSE(judged.wait.done);  // not judged once the verdict is to abort
  // Fewer than kLatencyMinReference live requests in the step: live since the start is the
  // reference (p99 ~25 ms, limit ~37 ms), and the same passive is not too slow; the step is done.
  c.live_now = plus(c.live_at_step, counts(99, 0, 0));
  judged = judge_step(c, plan, 5000);
  EXPECT_FALSE(judged.verdict.abort) << judged.verdict.reason;
  EXPECT_TRUE(judged.wait.done);
  EXPECT_EQ(judged.live.requests, 99);
  // Held too briefly: still waiting.
  judged = judge_step(c, plan, 400);
  EXPECT_FALSE(judged.wait.done);
  EXPECT_EQ(judged.wait.waiting_for, "1s");
}

TEST(RolloutCohorts, EachRolloutDrawsItsOwnStickyCohort) {
  ConfigResult loaded = load_config_text(R"(
listeners: [{name: public, address: 127.0.0.1:0}]
pools:
  blue: {servers: [127.0.0.1:9001]}
  green: {servers: [127.0.0.1:9011]}
routes:
  - {name: api, match: {path_prefix: /}, live: blue, passive: green, sticky: {cookie: sid}}
)", "cohorts.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().text();
  const SnapshotResult built = build_snapshot(
      std::make_shared<const Config>(std::move(*loaded.config)), 1, nullptr, &test::numeric_only);
  ASSERT_TRUE(built.errors.empty());
  const auto& base = built.snapshot;
  const auto salt_with = [&](std::uint64_t rollout_salt) {
    RuntimeState state;
    RolloutStatus rollout;
    rollout.route = "api";
    rollout.salt = rollout_salt;
    state.rollouts["api"] = rollout;
    std::vector<std::string> warnings;
    return with_runtime(*base, state, warnings)->routes[0].sticky_salt;
  };
  const std::uint64_t file_salt = base->routes[0].sticky_salt;
  EXPECT_EQ(salt_with(0), file_salt);
  EXPECT_EQ(salt_with(0x1234), file_salt ^ 0x1234);

  // Of 2000 users, those on passive at 10% under two rollouts' salts: about 200 each, and
  // different users (independent draws share about 10% of them: ~20).
  int first = 0, second = 0, both = 0;
  for (int user = 0; user < 2000; ++user) {
    const std::string key = "user-" + std::to_string(user);
    const bool a = sticky_bucket(key, salt_with(0x1111'2222'3333'4444ull)) < 100'000;
    const bool b = sticky_bucket(key, salt_with(0x9999'8888'7777'6666ull)) < 100'000;
    first += a;
    second += b;
    both += a && b;
  }
  EXPECT_GT(first, 140);
  EXPECT_LT(first, 260);
  EXPECT_GT(second, 140);
  EXPECT_LT(second, 260);
  EXPECT_LT(both, 60);
}

}  // namespace
}  // namespace proxyd
