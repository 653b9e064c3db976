// Per-worker request metrics: see metrics.hpp.
#include "proxy/metrics.hpp"

namespace proxyd {
namespace {

// The buckets' upper bounds in the clock's own unit, so a request is placed without floating point.
const std::array<Clock::rep, kDurationBuckets.size()>& bucket_bounds() {
  static const auto bounds = [] {
    std::array<Clock::rep, kDurationBuckets.size()> b{};
    for (std::size_t i = 0; i < b.size(); ++i) {
      b[i] = std::chrono::duration_cast<Clock::duration>(
                 std::chrono::duration<double>(kDurationBuckets[i]))
                 .count();
    }
    return b;
  }();
  return bounds;
}

const Pool& slot_pool(const RoutingSnapshot& snapshot, const Route& route, SlotName slot) {
  return snapshot.pools[slot == SlotName::live ? route.live_pool : route.passive_pool];
}

}  // namespace

std::string_view tls_failure_name(TlsFailure reason) {
  switch (reason) {
    case TlsFailure::timeout: return "timeout";
    case TlsFailure::closed: return "closed";
    case TlsFailure::plain_http: return "plain_http";
    case TlsFailure::protocol_version: return "protocol_version";
    case TlsFailure::no_shared_cipher: return "no_shared_cipher";
    case TlsFailure::malformed: return "malformed";
    case TlsFailure::count_: break;
  }
  return "malformed";
}

void WorkerMetrics::follow(const RoutingSnapshot& snapshot) {
  std::vector<RequestSeries*> handles(snapshot.routes.size() * 2);
  for (const Route& route : snapshot.routes) {
    for (const SlotName slot : {SlotName::live, SlotName::passive}) {
      handles[route.index * 2 + static_cast<std::size_t>(slot)] =
          &find_or_add(route.name, slot, slot_pool(snapshot, route, slot).name);
    }
  }
  handles_ = std::move(handles);
  followed_ = &snapshot;
}

RequestSeries& WorkerMetrics::series(const RoutingSnapshot& snapshot, const Route& route,
                                     SlotName slot) {
  if (&snapshot == followed_) return *handles_[route.index * 2 + static_cast<std::size_t>(slot)];
  return find_or_add(route.name, slot, slot_pool(snapshot, route, slot).name);
}

RequestSeries& WorkerMetrics::find_or_add(const std::string& route, SlotName slot,
                                          const std::string& pool) {
  std::lock_guard lock(mutex_);
  auto& entry = series_[std::make_tuple(route, slot, pool)];
  if (!entry) {
    entry = std::make_unique<RequestSeries>();
    entry->route = route;
    entry->slot = slot;
    entry->pool = pool;
  }
  return *entry;
}

void WorkerMetrics::count(RequestSeries& series, unsigned status, Clock::duration total,
                          Clock::time_point now) {
  series.by_code[status < RequestSeries::kCodes ? status : 0].add(1);
  const auto& bounds = bucket_bounds();
  std::size_t bucket = 0;
  while (bucket < bounds.size() && total.count() > bounds[bucket]) ++bucket;
  series.buckets[bucket].add(1);
  series.duration_ns.add(std::chrono::duration_cast<std::chrono::nanoseconds>(total).count());
  const auto second =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  count_second(series, second, status >= 500, bucket);
}

void WorkerMetrics::count_failure(const Pool& pool, const Server& server, AttemptEnd end) {
  const auto index = static_cast<std::size_t>(end);
  if (index >= FailureSeries::kEnds || !server.state) return;
  std::unique_lock lock(mutex_);
  auto& entry = failures_[server.state.get()];
  if (!entry) {
    entry = std::make_unique<FailureSeries>();
    entry->pool = pool.name;
    entry->server = server.name;
  }
  FailureSeries& failures = *entry;
  lock.unlock();  // the maps' structure is all the lock guards
  failures.by_end[index].add(1);
}

}  // namespace proxyd
