// A slot's request counts over some span (a stats window, a rollout step, a fleet's sum) and the
// latency quantile estimated from their duration buckets. Plain types and pure functions, no
// metrics machinery: proxyd's stats and rollouts and proxyctl's fleet rollout all use them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "admin_types.hpp"

namespace proxyd {

// Upper bounds of proxyd_request_duration_seconds's buckets, in seconds (then +Inf).
inline constexpr std::array<double, 13> kDurationBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// One series' counts over a span.
struct WindowCounts {
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::array<std::int64_t, kDurationBuckets.size() + 1> buckets{};  // per bucket, not cumulative

  bool operator==(const WindowCounts&) const = default;
};

// The counts between two readings of the same counters: `now` minus `then`.
WindowCounts minus(const WindowCounts& now, const WindowCounts& then);
// Both added: the sum of two members' counts.
WindowCounts plus(const WindowCounts& a, const WindowCounts& b);

// As a fleet member's report publishes a slot's counts, and back: nullopt when the buckets do not
// match this build's (a member of another version with other buckets cannot be summed).
SlotCounts slot_counts(std::string pool, const WindowCounts& counts);
std::optional<WindowCounts> window_counts(const SlotCounts& counts);

// The q-quantile (0 < q < 1) of the durations counted in `counts`, in milliseconds, as
// Prometheus' histogram_quantile estimates it: linear interpolation inside the bucket the rank
// falls in (the first bucket starts at 0); in the +Inf bucket, the largest finite bound, marked
// `over`. None without requests.
std::optional<Quantile> quantile(const WindowCounts& counts, double q);

}  // namespace proxyd
