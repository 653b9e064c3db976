// Publishes the current RoutingSnapshot to every worker. A worker keeps its own reference and
// compares one atomic version number per request (an acquire load, no lock, no refcount traffic);
// only when the version moved does it take the mutex to copy the new pointer. Writers (reload,
// later the control socket and health checks) serialize on the same mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "routing_snapshot.hpp"

namespace proxyd {

class SnapshotStore {
 public:
  explicit SnapshotStore(std::shared_ptr<const RoutingSnapshot> initial)
      : current_(std::move(initial)) {}

  void publish(std::shared_ptr<const RoutingSnapshot> next) {
    std::lock_guard lock(mutex_);
    current_ = std::move(next);
    version_.fetch_add(1, std::memory_order_release);
  }

  std::shared_ptr<const RoutingSnapshot> load() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

  // The version to compare against a worker's cached one: one acquire load per request.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const RoutingSnapshot> current_;
  std::atomic<std::uint64_t> version_{1};
};

}  // namespace proxyd
