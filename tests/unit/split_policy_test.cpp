// Split policy: the hash, the bucket mapping, split accuracy and the monotone-cohort promise.
// Every draw is seeded, so a failure reproduces exactly; bounds are five binomial standard
// deviations, so a correct policy fails them with probability below one in a million.
#include "proxy/split_policy.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace proxyd {
namespace {

constexpr std::uint32_t kHalfPercent = 5'000;
constexpr std::uint32_t kFivePercent = 50'000;
constexpr std::uint32_t kFiftyPercent = 500'000;

void expect_binomial(std::uint64_t observed, std::uint64_t trials, double p) {
  const double mean = static_cast<double>(trials) * p;
  const double sd = std::sqrt(static_cast<double>(trials) * p * (1 - p));
  EXPECT_LE(std::fabs(static_cast<double>(observed) - mean), 5 * sd)
      << "observed " << observed << " of " << trials << ", expected about " << mean;
}

std::vector<std::uint32_t> sticky_buckets(std::size_t count, std::uint64_t salt) {
  std::vector<std::uint32_t> buckets;
  buckets.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    buckets.push_back(sticky_bucket("user-" + std::to_string(i), salt));
  }
  return buckets;
}

TEST(SplitPolicy, Fnv1a64MatchesReferenceVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(SplitPolicy, DrawBucketCoversTheRangeWithoutLeavingIt) {
  EXPECT_EQ(draw_bucket(0), 0u);
  EXPECT_EQ(draw_bucket(~std::uint64_t{0}), kPpmMax - 1);
  EXPECT_EQ(draw_bucket(std::uint64_t{1} << 63), kPpmMax / 2);
  EXPECT_EQ(draw_bucket((std::uint64_t{1} << 63) - 1), kPpmMax / 2 - 1);
}

TEST(SplitPolicy, WeightZeroIsNeverPassiveAndFullIsAlwaysPassive) {
  for (const std::uint32_t bucket : {0u, 1u, kPpmMax / 2, kPpmMax - 1}) {
    EXPECT_EQ(choose_slot(0, bucket), SlotName::live);
    EXPECT_EQ(choose_slot(kPpmMax, bucket), SlotName::passive);
  }
  EXPECT_EQ(choose_slot(1, 0), SlotName::passive);
  EXPECT_EQ(choose_slot(1, 1), SlotName::live);
}

TEST(SplitPolicy, RandomSplitIsAccurate) {
  constexpr std::uint64_t kDraws = 1'000'000;
  for (const std::uint32_t weight : {kHalfPercent, kFivePercent, kFiftyPercent}) {
    SplitMix64 random(0x5eed0000 + weight);
    std::uint64_t passive = 0;
    for (std::uint64_t i = 0; i < kDraws; ++i) {
      passive += choose_slot(weight, draw_bucket(random.next())) == SlotName::passive;
    }
    SCOPED_TRACE(weight);
    expect_binomial(passive, kDraws, weight / double{kPpmMax});
  }
}

TEST(SplitPolicy, StickySplitOfDistinctKeysIsAccurate) {
  constexpr std::size_t kKeys = 1'000'000;
  const std::vector<std::uint32_t> buckets = sticky_buckets(kKeys, fnv1a64("api"));
  for (const std::uint32_t weight : {kHalfPercent, kFivePercent, kFiftyPercent}) {
    std::uint64_t passive = 0;
    for (const std::uint32_t bucket : buckets) {
      passive += choose_slot(weight, bucket) == SlotName::passive;
    }
    SCOPED_TRACE(weight);
    expect_binomial(passive, kKeys, weight / double{kPpmMax});
  }
}

// Sequential keys ("user1", "user2", ...) are what FNV alone maps to correlated values; after the
// finalizer their buckets must look uniform. Chi-square over 100 equal bins, 99 degrees of freedom:
// mean 99, standard deviation 14; 200 is beyond seven deviations.
TEST(SplitPolicy, StickyBucketsOfSimilarKeysAreUniform) {
  constexpr std::size_t kKeys = 1'000'000;
  constexpr std::size_t kBins = 100;
  for (const char* prefix : {"user", "10.0.", ""}) {
    std::vector<std::uint64_t> bins(kBins, 0);
    for (std::size_t i = 0; i < kKeys; ++i) {
      const std::uint32_t bucket = sticky_bucket(prefix + std::to_string(i), fnv1a64("web"));
      ASSERT_LT(bucket, kPpmMax);
      ++bins[bucket / (kPpmMax / kBins)];
    }
    const double expected = double{kKeys} / kBins;
    double chi_square = 0;
    for (const std::uint64_t count : bins) {
      chi_square += (static_cast<double>(count) - expected) *
                    (static_cast<double>(count) - expected) / expected;
    }
    EXPECT_LT(chi_square, 200.0) << "prefix '" << prefix << "'";
  }
}

TEST(SplitPolicy, SameKeyAlwaysGetsTheSameBucket) {
  const std::uint64_t salt = fnv1a64("api");
  const std::uint32_t bucket = sticky_bucket("sessionid-42", salt);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(sticky_bucket("sessionid-42", salt), bucket);
  EXPECT_NE(sticky_bucket("sessionid-43", salt), bucket);
}

TEST(SplitPolicy, CohortsAreMonotoneInTheWeight) {
  constexpr std::size_t kKeys = 100'000;
  const std::uint64_t salt = fnv1a64("api");
  const std::vector<std::uint32_t> steps = {0,       kHalfPercent,  kFivePercent,
                                            200'000, kFiftyPercent, kPpmMax};
  std::vector<bool> before(kKeys, false);
  for (const std::uint32_t weight : steps) {
    std::size_t passive = 0;
    for (std::size_t i = 0; i < kKeys; ++i) {
      // Recomputed at every step: the cohort comes from the key alone, not from stored state.
      const std::uint32_t bucket = sticky_bucket("user-" + std::to_string(i), salt);
      const bool on_passive = choose_slot(weight, bucket) == SlotName::passive;
      ASSERT_TRUE(on_passive || !before[i]) << "key " << i << " left passive at weight " << weight;
      before[i] = on_passive;
      passive += on_passive;
    }
    if (weight == 0) {
      EXPECT_EQ(passive, 0u);
    } else if (weight == kPpmMax) {
      EXPECT_EQ(passive, kKeys);
    } else {
      SCOPED_TRACE(weight);
      expect_binomial(passive, kKeys, weight / double{kPpmMax});
    }
  }
}

// Two routes split independently: being in one route's canary cohort says nothing about the other.
// For independent routes both at weight p the overlap is binomial with probability p * p, and the
// correlation of the two bucket sequences is near zero (standard deviation 1 / sqrt(N)).
TEST(SplitPolicy, RoutesWithDifferentSaltsHaveIndependentCohorts) {
  constexpr std::size_t kKeys = 200'000;
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> salt_pairs = {
      {fnv1a64("api"), fnv1a64("web")}, {fnv1a64("api"), fnv1a64("apj")}, {1, 2}, {0, 1}};
  for (const auto& [salt_a, salt_b] : salt_pairs) {
    SCOPED_TRACE(testing::Message() << salt_a << " vs " << salt_b);
    const std::vector<std::uint32_t> a = sticky_buckets(kKeys, salt_a);
    const std::vector<std::uint32_t> b = sticky_buckets(kKeys, salt_b);
    for (const std::uint32_t weight : {kFivePercent, kFiftyPercent}) {
      std::uint64_t both = 0;
      for (std::size_t i = 0; i < kKeys; ++i) both += a[i] < weight && b[i] < weight;
      const double p = weight / double{kPpmMax};
      expect_binomial(both, kKeys, p * p);
    }
    double sum_ab = 0, sum_a = 0, sum_b = 0, sum_aa = 0, sum_bb = 0;
    for (std::size_t i = 0; i < kKeys; ++i) {
      const double x = a[i], y = b[i];
      sum_a += x;
      sum_b += y;
      sum_ab += x * y;
      sum_aa += x * x;
      sum_bb += y * y;
    }
    const double n = kKeys;
    const double correlation =
        (n * sum_ab - sum_a * sum_b) /
        std::sqrt((n * sum_aa - sum_a * sum_a) * (n * sum_bb - sum_b * sum_b));
    EXPECT_LT(std::fabs(correlation), 5 / std::sqrt(n));
  }
}

}  // namespace
}  // namespace proxyd
