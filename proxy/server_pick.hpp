// Pure server choice inside a pool: round robin or least-request (power of two choices).
// The caller owns the round-robin cursor (one per worker and pool) and passes the random value.
#pragma once

#include <cstdint>
#include <optional>

#include "routing_snapshot.hpp"

namespace proxyd {

// Servers already tried for this request, by index in Pool::servers (pools above 64 servers only
// track the first 64; the rest are treated as untried).
using TriedSet = std::uint64_t;

inline bool was_tried(TriedSet tried, std::uint32_t index) {
  return index < 64 && (tried >> index) & 1u;
}
inline TriedSet mark_tried(TriedSet tried, std::uint32_t index) {
  return index < 64 ? tried | (std::uint64_t{1} << index) : tried;
}

// Picks an enabled server not yet tried; nullopt when none is left. Round robin advances `cursor`;
// least-request draws two candidates from `random` and keeps the one with fewer in-flight requests.
std::optional<std::uint32_t> pick_server(const Pool& pool, TriedSet tried, std::uint64_t& cursor,
                                         std::uint64_t random);

}  // namespace proxyd
