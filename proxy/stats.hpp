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
#include "window_counts.hpp"

namespace proxyd {

// Adds to `out` the slots of `series` whose second is in (now_second - window, now_second]. A slot
// the worker is reusing for a newer second while it is read is skipped.
void add_window(const RequestSeries& series, std::int64_t now_second, std::int64_t window,
                WindowCounts& out);

// Every route of `snapshot`, in its order, with its current weight and a row per slot (current
// pools first, then any other pool with requests in the window), from `series`: every worker's
// series, several per (route, slot, pool) (one per worker).
Stats window_stats(const RoutingSnapshot& snapshot, const std::vector<const RequestSeries*>& series,
                   std::int64_t now_second, std::int64_t window);

}  // namespace proxyd
