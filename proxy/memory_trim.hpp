// MemoryTrim: gives memory back to the system once a worker's load has fallen.
//
// glibc's allocator keeps what a burst of connections freed (TLS handshakes in particular leave
// their per-thread arenas fragmented), so after 256 new TLS connections a second the process
// stays at about three times its idle size although nearly all of it is free. malloc_trim(0)
// returns the free pages of every arena. It costs a walk over the free chunks and the page
// faults of touching those pages again, so it runs only when a worker's live sessions fell to
// half of their peak over the last second (and by at least kMinDrop), at most once a second per
// worker, from the sweep. Steady load, however heavy, never trims.
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

  // Returns free memory of every arena to the system (glibc); nothing elsewhere.
  static void trim();

 private:
  std::size_t peak_ = 0;
  Clock::time_point period_end_{};
};

}  // namespace proxyd
