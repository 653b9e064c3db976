// Request metrics, per worker: what every finished request adds to the Prometheus series of
// docs/metrics.md. Each worker owns its counters and is their only writer, so a count is a relaxed
// load and store (no locked instruction, no shared cache line); the scrape, on the admin thread,
// reads them with relaxed loads and sums the workers. A series is found through a handle resolved
// when the worker sees a new snapshot (route index and slot -> series), never by label lookup on
// the request path. Series are keyed by names, not by snapshot positions, and never removed, so
// counters survive flips, weight changes and reloads.
// Owner: Worker. Thread: counting on the worker's thread only; visit() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "outcome.hpp"
#include "routing_snapshot.hpp"
#include "window_counts.hpp"

namespace proxyd {

// A counter or gauge with one writer: relaxed load and store, no read-modify-write.
class WorkerCount {
 public:
  void add(std::int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::int64_t get() const { return value_.load(std::memory_order_relaxed); }
  void set(std::int64_t n) { value_.store(n, std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// The seconds a series keeps for `proxyctl stats` (docs/control-protocol.md): its longest window.
inline constexpr std::int64_t kWindowSeconds = 300;
inline constexpr std::int64_t kNoSecond = std::numeric_limits<std::int64_t>::min();

// One second of one series: the requests that finished in it, the errors among them (status >=
// 500) and their durations by bucket. A ring of these (index: second % kWindowSeconds) is reused
// as time goes on; `second` says which second a slot holds, and works as a sequence lock: the
// writer (the worker, alone) marks the slot kNoSecond, resets the counts, then stores the new
// second with release; a reader (window_counts, stats.hpp) loads `second` with acquire, reads the
// counts, and keeps them only if `second` is still the same after an acquire fence.
struct SecondSlot {
  std::atomic<std::int64_t> second{kNoSecond};
  WorkerCount requests;
  WorkerCount errors;
  std::array<WorkerCount, kDurationBuckets.size() + 1> buckets{};  // per bucket, not cumulative
};

// One route, slot and pool's requests in one worker.
struct RequestSeries {
  static constexpr std::size_t kCodes = 600;  // index = status sent; 0 = none was sent

  std::string route;
  SlotName slot = SlotName::live;
  std::string pool;
  std::array<WorkerCount, kCodes> by_code{};
  std::array<WorkerCount, kDurationBuckets.size() + 1> buckets{};  // per bucket, not cumulative
  WorkerCount duration_ns;
  WorkerCount in_flight;
  std::array<SecondSlot, kWindowSeconds> seconds{};  // the last 5 minutes, for proxyctl stats
};

// Adds a finished request to `series`'s slot for `second` (the writer's side of SecondSlot;
// single writer, no lock, no allocation).
inline void count_second(RequestSeries& series, std::int64_t second, bool error,
                         std::size_t bucket) {
  SecondSlot& slot = series.seconds[static_cast<std::size_t>(second % kWindowSeconds)];
  if (slot.second.load(std::memory_order_relaxed) != second) {
    // A reader that sees any reset count also sees kNoSecond (the fence orders the mark before
    // the resets), so it never takes the old second's slot half reset.
    slot.second.store(kNoSecond, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    slot.requests.set(0);
    slot.errors.set(0);
    for (WorkerCount& b : slot.buckets) b.set(0);
    slot.second.store(second, std::memory_order_release);
  }
  slot.requests.add(1);
  if (error) slot.errors.add(1);
  slot.buckets[bucket].add(1);
}

// One server's failed upstream attempts in one worker, by how they ended.
struct FailureSeries {
  // AttemptEnd values up to tls_failed (no_socket, after it, is proxyd's shortage: never counted)
  static constexpr std::size_t kEnds = 9;

  std::string pool;
  std::string server;
  std::array<WorkerCount, kEnds> by_end{};
};

// Why a client's TLS handshake failed (proxyd_tls_handshake_failures_total's `reason`).
enum class TlsFailure : std::uint8_t {
  timeout,           // not done within timeouts.tls_handshake (a stalled client)
  closed,            // the client closed or reset the connection during the handshake
  plain_http,        // plaintext HTTP sent to the TLS port
  protocol_version,  // no TLS version in common (a TLS 1.1 client)
  no_shared_cipher,  // no cipher in common
  malformed,         // anything else: garbage, a bad record, an alert from the client
  count_,
};

std::string_view tls_failure_name(TlsFailure reason);

// One TLS listener's handshakes in one worker.
struct TlsCounts {
  WorkerCount handshakes;  // completed
  std::array<WorkerCount, static_cast<std::size_t>(TlsFailure::count_)> failures{};
};

class WorkerMetrics {
 public:
  WorkerMetrics() = default;
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // A new snapshot: the series each route's slots count into from now on.
  void follow(const RoutingSnapshot& snapshot);

  // The series of a request routed to `route`'s `slot` in `snapshot` (the handle when `snapshot`
  // is the one followed last, else a lookup by name, rare: a request that began before a change).
  RequestSeries& series(const RoutingSnapshot& snapshot, const Route& route, SlotName slot);

  // A finished request: its status (0: none sent) and duration, finished at `now` (the worker's
  // cached clock; its whole seconds since the clock's epoch pick the window slot).
  static void count(RequestSeries& series, unsigned status, Clock::duration total,
                    Clock::time_point now);

  // A failed attempt on `server` of `pool` (rare: a lookup, and an insertion the first time).
  void count_failure(const Pool& pool, const Server& server, AttemptEnd end);

  // Before the worker starts: room for listener `index`'s connection count.
  void add_listener(std::size_t index) {
    std::lock_guard lock(mutex_);
    if (index >= connections_.size()) connections_ = std::vector<WorkerCount>(index + 1);
    if (index >= tls_.size()) tls_ = std::vector<TlsCounts>(index + 1);
  }
  WorkerCount& connections(std::size_t listener) { return connections_[listener]; }
  // A finished request, by the protocol its client spoke (proxyd_requests_by_protocol_total).
  void count_protocol(ClientProtocol protocol) {
    by_protocol_[static_cast<std::size_t>(protocol)].add(1);
  }
  std::int64_t requests_by_protocol(ClientProtocol protocol) const {
    return by_protocol_[static_cast<std::size_t>(protocol)].get();
  }
  TlsCounts& tls(std::size_t listener) { return tls_[listener]; }
  // An accept loop found limits.max_connections reached with a connection waiting.
  void count_limit_reached() { limit_reached_.add(1); }
  // A session closed to make room at that limit ended.
  void count_closed_for_room() { closed_for_room_.add(1); }
  std::int64_t limit_reached() const { return limit_reached_.get(); }
  std::int64_t closed_for_room() const { return closed_for_room_.get(); }

  // Calls tls(index, const TlsCounts&) for every listener (plain ones count nothing).
  template <class OnTls>
  void visit_tls(OnTls&& tls) const {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < tls_.size(); ++i) tls(i, tls_[i]);
  }

  // Calls request(const RequestSeries&), failure(const FailureSeries&) and
  // connections(index, count) for everything this worker counted, under its lock (taken by the
  // worker only when a series is created).
  template <class OnRequest, class OnFailure, class OnConnections>
  void visit(OnRequest&& request, OnFailure&& failure, OnConnections&& connections) const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, s] : series_) request(*s);
    for (const auto& [key, f] : failures_) failure(*f);
    for (std::size_t i = 0; i < connections_.size(); ++i) connections(i, connections_[i].get());
  }

 private:
  RequestSeries& find_or_add(const std::string& route, SlotName slot, const std::string& pool);

  mutable std::mutex mutex_;  // guards the maps' structure, never a count
  std::map<std::tuple<std::string, SlotName, std::string>, std::unique_ptr<RequestSeries>> series_;
  std::unordered_map<const ServerState*, std::unique_ptr<FailureSeries>> failures_;
  std::vector<WorkerCount> connections_;  // by listener index
  std::vector<TlsCounts> tls_;            // by listener index
  std::array<WorkerCount, static_cast<std::size_t>(ClientProtocol::count_)> by_protocol_{};
  WorkerCount limit_reached_;
  WorkerCount closed_for_room_;
  // Handles for the snapshot followed last: [route index * 2 + slot].
  const RoutingSnapshot* followed_ = nullptr;
  std::vector<RequestSeries*> handles_;
};

}  // namespace proxyd
