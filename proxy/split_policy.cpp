// Sticky hashing for the split policy: a key and a route salt -> a stable bucket in [0, kPpmMax).
// Stable across runs, builds and hosts (no std::hash), so every proxyd on every host puts a user in
// the same cohort, and the cohort survives restarts and reloads.
#include "split_policy.hpp"

namespace proxyd {

namespace {

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

// The splitmix64 finalizer: a bijection on 64 bits with full avalanche. FNV-1a alone is a poor
// bucket source: keys that differ only in their last byte ("user1", "user2") differ only by a
// small multiple of the prime, mostly in the low bits, and multiply-shift reads the high bits.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed) {
  std::uint64_t hash = seed;
  for (const char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

std::uint32_t sticky_bucket(std::string_view key, std::uint64_t salt) {
  // The salt is mixed before it seeds FNV so that salts differing in a few bits (route names
  // "api" and "apj") still start from unrelated states; each FNV step is a bijection of the state,
  // so two salts never give two routes the same key-to-bucket map, and the finalizer spreads the
  // result over all 64 bits before multiply-shift takes the high ones.
  return draw_bucket(mix64(fnv1a64(key, kFnvOffset ^ mix64(salt))));
}

}  // namespace proxyd
