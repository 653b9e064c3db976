// `proxyctl stats`: the per-second counts every worker keeps per route, slot and pool
// (metrics.hpp, SecondSlot) merged over a sliding window, and latency quantiles estimated from
// their duration buckets. Pure: the caller passes the series and the current second, so the unit
// tests construct both.
// Owner: Proxy::stats. Thread: any; reads the workers' counts while they write them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "admin_types.hpp"
#include "metrics.hpp"
#include "routing_snapshot.hpp"

namespace proxyd {

// One series' counts over a window.
struct WindowCounts {
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::array<std::int64_t, kDurationBuckets.size() + 1> buckets{};  // per bucket, not cumulative
};

// Adds to `out` the slots of `series` whose second is in (now_second - window, now_second]. A slot
// the worker is reusing for a newer second while it is read is skipped.
void add_window(const RequestSeries& series, std::int64_t now_second, std::int64_t window,
                WindowCounts& out);

// The q-quantile (0 < q < 1) of the durations counted in `counts`, in milliseconds, as
// Prometheus' histogram_quantile estimates it: linear interpolation inside the bucket the rank
// falls in (the first bucket starts at 0); in the +Inf bucket, the largest finite bound, marked
// `over`. None without requests.
std::optional<Quantile> quantile(const WindowCounts& counts, double q);

// Every route of `snapshot`, in its order, with its current weight and a row per slot (current
// pools first, then any other pool with requests in the window), from `series`: every worker's
// series, several per (route, slot, pool) (one per worker).
Stats window_stats(const RoutingSnapshot& snapshot, const std::vector<const RequestSeries*>& series,
                   std::int64_t now_second, std::int64_t window);

}  // namespace proxyd
