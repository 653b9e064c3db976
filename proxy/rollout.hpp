// The rules of `proxyctl rollout` (docs/deploy.md, "The canary analysis"): when a step has held
// long enough, and when the evidence says the canary (the passive slot) is worse than live.
// Pure: the caller passes both slots' counts over the current step and how long it has held, so
// the unit tests construct them. Proxy (rollouts.cpp) runs these every tick and makes the changes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "admin_types.hpp"
#include "window_counts.hpp"

namespace proxyd {

// The confidence of every verdict: a one-sided test at 0.1%. Checked twice a second over a step,
// a level this strict keeps a canary as good as live from being aborted on noise, and still aborts
// one answering 500 to everything after 2 or 3 requests.
inline constexpr double kRolloutAlpha = 0.001;
// z of the same one-sided 99.9%, for live's upper bound (Wilson).
inline constexpr double kRolloutZ = 3.09;
// The live requests of a step before live's p99 is a reference for the latency rule: below 100,
// a p99 is just the slowest request.
inline constexpr std::int64_t kLatencyMinReference = 100;
// The least latency limit above live's p99, in ms: below it, scheduling noise on a busy host
// (a few ms) is larger than any effect worth a rollback, so sub-millisecond services are not
// aborted for a p99 of 3 ms against 1 ms.
inline constexpr double kLatencyFloorMs = 10;
// The share of passive requests slower than the limit that makes passive's p99 exceed it.
inline constexpr double kSlowShare = 0.01;

// Wilson score interval of `successes` out of `trials` at `z` (trials 0: [0, 1]).
struct Bounds {
  double lower = 0;
  double upper = 1;
};
Bounds wilson(std::int64_t successes, std::int64_t trials, double z = kRolloutZ);

// P(X >= k) for X ~ Binomial(n, p): the chance of k or more events in n tries at rate p.
double binomial_tail(std::int64_t k, std::int64_t n, double p);

// The requests of `counts` slower than `seconds`, interpolating linearly inside the bucket it
// falls in (as quantile() does); a bound beyond the last bucket counts the +Inf bucket whole.
double slower_than(const WindowCounts& counts, double seconds);

// The analysis of one step: passive against live, each rule an exact one-sided binomial test
// at kRolloutAlpha (Clopper-Pearson), which stays honest at the handful of requests a 0.5% step
// starts with, where normal approximations (Wilson's lower bound included) abort on one error.
//   errors:  the tolerated error ratio is live's (its Wilson upper bound, z 3.09; 0 without live
//            requests) plus plan.max_error_ratio; abort when passive's errors would happen with
//            less than 0.1% probability at that ratio.
//   latency: once live has kLatencyMinReference requests, the limit is max_latency_ratio x live's
//            p99, and at least live's p99 + kLatencyFloorMs; abort when passive's requests slower than that would happen with less than 0.1%
//            probability were only 1% of them slower (passive's p99 within the limit).
struct Verdict {
  bool abort = false;
  std::string code;    // error_ratio or latency
  std::string reason;  // the figures, for the audit log and rollout status
};
Verdict analyze(const WindowCounts& live, const WindowCounts& passive, const RolloutPlan& plan);

// What status shows of a slot's counts.
SlotFigures figures(const WindowCounts& counts);

// Whether a step is done: it held plan.interval_ms and the passive slot served
// plan.min_requests; else what it waits for ("4m 10s", "87 more requests", or both with "and").
struct StepWait {
  bool done = false;
  std::string waiting_for;
};
StepWait step_wait(const RolloutPlan& plan, std::int64_t held_ms, std::int64_t passive_requests);

// One step of a rollout judged: the counters of both slots as they are now, at the step's start,
// and (live) at the rollout's start, whatever sums them (one proxyd's workers, or every fleet
// member's report). At 100% (or on a quiet route) live serves too few in the step to compare
// with: then live since the rollout began is the reference.
struct StepCounts {
  WindowCounts live_now;
  WindowCounts live_at_step;
  WindowCounts live_at_start;
  WindowCounts passive_now;
  WindowCounts passive_at_step;
};
struct StepJudgement {
  Verdict verdict;       // abort?
  StepWait wait;         // done? (judged only when the verdict is not to abort)
  SlotFigures live;      // the step's figures, for status and the audit detail
  SlotFigures passive;
};
StepJudgement judge_step(const StepCounts& counts, const RolloutPlan& plan, std::int64_t held_ms);

// A duration as rollout status writes it: "4m 10s", "45s", "1h 2m".
std::string format_duration_ms(std::int64_t ms);

}  // namespace proxyd
