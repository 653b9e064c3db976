// Sliding-window stats from the workers' per-second counts: see stats.hpp.
#include "proxy/stats.hpp"

#include <atomic>
#include <map>
#include <string>
#include <tuple>

namespace proxyd {

void add_window(const RequestSeries& series, std::int64_t now_second, std::int64_t window,
                WindowCounts& out) {
  for (const SecondSlot& slot : series.seconds) {
    const std::int64_t second = slot.second.load(std::memory_order_acquire);
    if (second == kNoSecond || second > now_second || second <= now_second - window) continue;
    WindowCounts counts;
    counts.requests = slot.requests.get();
    counts.errors = slot.errors.get();
    for (std::size_t i = 0; i < counts.buckets.size(); ++i) {
      counts.buckets[i] = slot.buckets[i].get();
    }
    // The counts are this second's only if the worker did not start reusing the slot meanwhile.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.second.load(std::memory_order_relaxed) != second) continue;
    out.requests += counts.requests;
    out.errors += counts.errors;
    for (std::size_t i = 0; i < counts.buckets.size(); ++i) out.buckets[i] += counts.buckets[i];
  }
}

namespace {

std::string_view slot_text(SlotName slot) { return slot == SlotName::live ? "live" : "passive"; }

SlotStats slot_stats(std::string_view slot, const std::string& pool, const WindowCounts& counts) {
  SlotStats out;
  out.slot = std::string(slot);
  out.pool = pool;
  out.requests = counts.requests;
  out.errors = counts.errors;
  out.p50 = quantile(counts, 0.5);
  out.p99 = quantile(counts, 0.99);
  return out;
}

}  // namespace

Stats window_stats(const RoutingSnapshot& snapshot, const std::vector<const RequestSeries*>& series,
                   std::int64_t now_second, std::int64_t window) {
  // (route, slot, pool) -> the counts of every worker's series for it.
  std::map<std::tuple<std::string, SlotName, std::string>, WindowCounts> merged;
  for (const RequestSeries* s : series) {
    add_window(*s, now_second, window, merged[std::make_tuple(s->route, s->slot, s->pool)]);
  }
  Stats stats;
  stats.generation = snapshot.generation;
  stats.window_seconds = window;
  for (const Route& route : snapshot.routes) {
    RouteStats out;
    out.name = route.name;
    out.weight_ppm = route.weight_ppm;
    const std::string& live = snapshot.pools[route.live_pool].name;
    const std::string& passive = snapshot.pools[route.passive_pool].name;
    const WindowCounts none;
    for (const auto& [slot, pool] : {std::pair{SlotName::live, live},
                                     std::pair{SlotName::passive, passive}}) {
      const auto found = merged.find(std::make_tuple(route.name, slot, pool));
      out.slots.push_back(
          slot_stats(slot_text(slot), pool, found == merged.end() ? none : found->second));
    }
    // Pools the slots were bound to earlier in the window.
    for (const auto& [key, counts] : merged) {
      const auto& [name, slot, pool] = key;
      if (name != route.name || counts.requests == 0) continue;
      if (pool == (slot == SlotName::live ? live : passive)) continue;
      out.slots.push_back(slot_stats(slot_text(slot), pool, counts));
    }
    stats.routes.push_back(std::move(out));
  }
  return stats;
}

}  // namespace proxyd
