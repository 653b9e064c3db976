// Pure split policy: which slot a request goes to, given the route's weight and a draw or a hash.
// No clock and no global RNG: the caller passes the value in, so tests are exact (rule 7).
#pragma once

#include <cstdint>
#include <string_view>

#include "config.hpp"

namespace proxyd {

// A value in [0, kPpmMax): either a uniform random draw or a sticky key's bucket.
// Passive iff bucket < weight_ppm, so for a fixed bucket the answer is monotone in the weight:
// whoever is on passive at weight w stays on passive at every weight above w.
constexpr SlotName choose_slot(std::uint32_t weight_ppm, std::uint32_t bucket) {
  return bucket < weight_ppm ? SlotName::passive : SlotName::live;
}

// Maps a sticky key (cookie value, header value, client address) to a bucket in [0, kPpmMax).
// The salt is per route, so a user's cohort in one route says nothing about another route.
std::uint32_t sticky_bucket(std::string_view key, std::uint64_t salt);

// Maps a 64-bit random value to a uniform bucket in [0, kPpmMax) without modulo bias worth noting
// (multiply-shift: floor(random * kPpmMax / 2^64)). Computed in two 32-bit halves, which is exact
// because kPpmMax < 2^32, so no __int128 (an extension that -Wpedantic rejects) is needed.
constexpr std::uint32_t draw_bucket(std::uint64_t random) {
  const std::uint64_t high = (random >> 32) * kPpmMax;
  const std::uint64_t low = ((random & 0xffff'ffffull) * kPpmMax) >> 32;
  return static_cast<std::uint32_t>((high + low) >> 32);
}

// A small, fast per-worker PRNG (splitmix64). Each worker owns one; never shared between threads.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// 64-bit FNV-1a, used for sticky keys and route salts (stable across runs and builds).
std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace proxyd
