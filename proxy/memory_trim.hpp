// MemoryTrim: decides when a worker gives memory back to the system, once its load has fallen.
//
// Allocators keep what a burst of connections freed: after 256 new TLS connections a second,
// both glibc's malloc and mimalloc (proxyd's, allocator.hpp) leave the process at about three
// times its idle size although nearly all of it is free. Giving it back
// (allocator::release_free_memory) costs a walk over free memory and the page faults of touching
// those pages again, so it runs only when a worker's live sessions fell to half of their peak
// over the last second (and by at least kMinDrop), at most once a second per worker, from the
// sweep. Steady load, however heavy, never trims.
#pragma once

#include <chrono>
#include <cstddef>

namespace proxyd {

class MemoryTrim {
 public:
  using Clock = std::chrono::steady_clock;

  static constexpr std::size_t kMinDrop = 32;
  static constexpr std::chrono::seconds kPeriod{1};

  // From the sweep, with the worker's live sessions: true when this period ended with sessions
  // at most half of the period's peak and at least kMinDrop below it, that is, time to trim.
  bool due(std::size_t sessions, Clock::time_point now) {
    if (sessions > peak_) peak_ = sessions;
    if (now < period_end_) return false;
    const bool fell = sessions * 2 <= peak_ && peak_ - sessions >= kMinDrop;
    peak_ = sessions;
    period_end_ = now + kPeriod;
    return fell;
  }

  // The last period ended with no session and none came since: due() cannot be true until
  // sessions come back, so the sweep may stop calling it. True at the first period end after
  // the last session (0 to kPeriod after it), once that period's fall was decided.
  bool settled() const { return peak_ == 0; }

 private:
  std::size_t peak_ = 0;
  Clock::time_point period_end_{};
};

}  // namespace proxyd
