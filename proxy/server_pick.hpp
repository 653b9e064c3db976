// Pure server choice inside a pool: round robin or least-request (power of two choices).
// The caller owns the round-robin cursor (one per worker and pool) and passes the random value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>

#include "routing_snapshot.hpp"

namespace proxyd {

// A request tries at most this many servers (one attempt each: a refused or timed-out connect,
// or a kept-alive connection the server had closed, moves on to the next). HAProxy's default is
// `retries 3`: four attempts in all.
inline constexpr std::size_t kMaxAttempts = 4;

// The servers a request has tried, by index in Pool::servers. At most kMaxAttempts, so a short
// list is exact for a pool of any size.
class TriedSet {
 public:
  TriedSet() = default;
  TriedSet(std::initializer_list<std::uint32_t> indexes) {
    for (std::uint32_t index : indexes) add(index);
  }
  bool contains(std::uint32_t index) const {
    for (std::size_t i = 0; i < count_; ++i)
      if (indexes_[i] == index) return true;
    return false;
  }
  // Ignored once kMaxAttempts are recorded: the caller stops trying before that.
  void add(std::uint32_t index) {
    if (count_ < kMaxAttempts && !contains(index)) indexes_[count_++] = index;
  }
  std::size_t size() const { return count_; }

 private:
  std::array<std::uint32_t, kMaxAttempts> indexes_{};
  std::size_t count_ = 0;
};

// Which servers a pick may choose: those that take traffic (enabled, not failing their active
// checks, not ejected by passive ones at `now`), or, for a fail_open pool with none of those,
// every enabled one.
enum class PickFrom : std::uint8_t { healthy, enabled };

// Whether `server` takes traffic at `now` (steady clock, nanoseconds since its epoch).
bool takes_traffic(const Server& server, std::int64_t now_ns);

// Picks a server not yet tried; nullopt when none is left. Round robin advances `cursor`;
// least-request draws two candidates from `random` and keeps the one with fewer in-flight requests.
std::optional<std::uint32_t> pick_server(const Pool& pool, const TriedSet& tried, std::uint64_t& cursor,
                                         std::uint64_t random, std::int64_t now_ns = 0,
                                         PickFrom from = PickFrom::healthy);

}  // namespace proxyd
