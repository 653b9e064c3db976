// The rules of a rollout: the step wait and the canary analysis. See rollout.hpp.
#include "rollout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "values.hpp"

namespace proxyd {
namespace {

std::string percent_text(std::int64_t part, std::int64_t whole) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%",
                whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0);
  return text;
}

std::string ms_text(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", ms);
  return text;
}

std::string ratio_text(const char* slot, const WindowCounts& counts) {
  return std::string(slot) + " " + std::to_string(counts.errors) + "/" +
         std::to_string(counts.requests) + " (" + percent_text(counts.errors, counts.requests) +
         ")";
}

}  // namespace

Bounds wilson(std::int64_t successes, std::int64_t trials, double z) {
  if (trials <= 0) return {};
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(std::clamp<std::int64_t>(successes, 0, trials)) / n;
  const double z2 = z * z;
  const double denominator = 1 + z2 / n;
  const double center = p + z2 / (2 * n);
  const double margin = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return {std::max(0.0, (center - margin) / denominator),
          std::min(1.0, (center + margin) / denominator)};
}

double slower_than(const WindowCounts& counts, double seconds) {
  double slow = 0;
  for (std::size_t i = 0; i < counts.buckets.size(); ++i) {
    const double in_bucket = static_cast<double>(counts.buckets[i]);
    if (i == kDurationBuckets.size()) {  // +Inf: everything in it is slower than any bound
      slow += in_bucket;
      break;
    }
    const double lower = i == 0 ? 0.0 : kDurationBuckets[i - 1];
    const double upper = kDurationBuckets[i];
    if (seconds <= lower) {
      slow += in_bucket;
    } else if (seconds < upper) {
      slow += in_bucket * (upper - seconds) / (upper - lower);
    }
  }
  return slow;
}

double binomial_tail(std::int64_t k, std::int64_t n, double p) {
  if (k <= 0) return 1;
  if (k > n || p <= 0) return 0;
  if (p >= 1) return 1;
  const double log_p = std::log(p);
  const double log_q = std::log1p(-p);
  const double log_n = std::lgamma(static_cast<double>(n) + 1);
  const double mode = static_cast<double>(n) * p;
  double tail = 0;
  // Terms rise up to the mode and fall after it; past it, stop once they no longer count.
  for (std::int64_t i = k; i <= n; ++i) {
    const double x = static_cast<double>(i);
    const double term = std::exp(log_n - std::lgamma(x + 1) -
                                 std::lgamma(static_cast<double>(n - i) + 1) + x * log_p +
                                 static_cast<double>(n - i) * log_q);
    tail += term;
    if (x > mode && term < tail * 1e-15) break;
  }
  return std::min(1.0, tail);
}

Verdict analyze(const WindowCounts& live, const WindowCounts& passive, const RolloutPlan& plan) {
  Verdict verdict;
  if (passive.requests <= 0) return verdict;

  const double live_high = live.requests > 0 ? wilson(live.errors, live.requests).upper : 0.0;
  const double tolerated = std::min(1.0, live_high + plan.max_error_ratio);
  // At or below the tolerated count the test cannot reject: skip the sum.
  if (static_cast<double>(passive.errors) > tolerated * static_cast<double>(passive.requests) &&
      binomial_tail(passive.errors, passive.requests, tolerated) < kRolloutAlpha) {
    verdict.abort = true;
    verdict.code = "error_ratio";
    verdict.reason = "error ratio: " + ratio_text("passive", passive) + " against " +
                     ratio_text("live", live) + ", worse by more than " +
                     format_percent(static_cast<std::uint32_t>(
                         std::lround(plan.max_error_ratio * kPpmMax))) +
                     "% (binomial test, p < 0.001)";
    return verdict;
  }

  if (live.requests < kLatencyMinReference) return verdict;
  const std::optional<Quantile> live_p99 = quantile(live, 0.99);
  if (!live_p99 || live_p99->over) return verdict;  // no finite reference to multiply
  const double limit_ms =
      std::max(live_p99->ms * plan.max_latency_ratio, live_p99->ms + kLatencyFloorMs);
  const auto slow = static_cast<std::int64_t>(std::floor(slower_than(passive, limit_ms / 1000.0)));
  if (static_cast<double>(slow) > kSlowShare * static_cast<double>(passive.requests) &&
      binomial_tail(slow, passive.requests, kSlowShare) < kRolloutAlpha) {
    const std::optional<Quantile> passive_p99 = quantile(passive, 0.99);
    verdict.abort = true;
    verdict.code = "latency";
    verdict.reason = "latency: passive p99 " +
                     (passive_p99 ? std::string(passive_p99->over ? ">" : "").append(
                                        ms_text(passive_p99->ms))
                                  : std::string("-")) +
                     " against live p99 " + ms_text(live_p99->ms) + " (limit " +
                     ms_text(limit_ms) + "): " + std::to_string(slow) + " of " +
                     std::to_string(passive.requests) + " passive requests slower";
  }
  return verdict;
}

SlotFigures figures(const WindowCounts& counts) {
  return {counts.requests, counts.errors, quantile(counts, 0.99)};
}

std::string format_duration_ms(std::int64_t ms) {
  std::int64_t seconds = std::max<std::int64_t>(0, (ms + 999) / 1000);
  const std::int64_t hours = seconds / 3600;
  const std::int64_t minutes = seconds / 60 % 60;
  seconds %= 60;
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h";
  // Appended piece by piece: GCC 12 at -O3 reports `"" + std::string` here as an overlapping
  // memcpy (a -Wrestrict false positive that breaks the Release build).
  const auto add = [&](std::int64_t value, char unit) {
    if (!out.empty()) out += ' ';
    out += std::to_string(value);
    out += unit;
  };
  if (minutes > 0) add(minutes, 'm');
  if (seconds > 0 || out.empty()) add(seconds, 's');
  return out;
}

StepWait step_wait(const RolloutPlan& plan, std::int64_t held_ms, std::int64_t passive_requests) {
  StepWait wait;
  const std::int64_t time_left = plan.interval_ms - held_ms;
  const std::int64_t requests_left = plan.min_requests - passive_requests;
  if (time_left > 0) wait.waiting_for = format_duration_ms(time_left);
  if (requests_left > 0) {
    wait.waiting_for += (wait.waiting_for.empty() ? "" : " and ") +
                        std::to_string(requests_left) + " more request" +
                        (requests_left == 1 ? "" : "s");
  }
  wait.done = wait.waiting_for.empty();
  return wait;
}

StepJudgement judge_step(const StepCounts& counts, const RolloutPlan& plan, std::int64_t held_ms) {
  StepJudgement out;
  const WindowCounts passive = minus(counts.passive_now, counts.passive_at_step);
  const WindowCounts live_step = minus(counts.live_now, counts.live_at_step);
  const WindowCounts live = live_step.requests >= kLatencyMinReference
                                ? live_step
                                : minus(counts.live_now, counts.live_at_start);
  out.live = figures(live_step);
  out.passive = figures(passive);
  out.verdict = analyze(live, passive, plan);
  if (!out.verdict.abort) out.wait = step_wait(plan, held_ms, passive.requests);
  return out;
}

}  // namespace proxyd
