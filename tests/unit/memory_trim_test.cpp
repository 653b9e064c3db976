// MemoryTrim's decision: trim once a worker's sessions fell to half of the last period's peak,
// by at least kMinDrop, at most once a period; never under steady load; settled once a period
// ended without sessions.
#include "proxy/memory_trim.hpp"

#include <gtest/gtest.h>

namespace proxyd {
namespace {

using namespace std::chrono_literals;
using Clock = MemoryTrim::Clock;

TEST(MemoryTrim, TrimsOnceWhenSessionsFallToHalfOfThePeriodsPeak) {
  MemoryTrim trim;
  const Clock::time_point t0{1h};
  EXPECT_FALSE(trim.due(0, t0));  // the first call opens a period
  EXPECT_FALSE(trim.due(256, t0 + 100ms));
  EXPECT_FALSE(trim.due(256, t0 + 900ms));
  EXPECT_FALSE(trim.due(10, t0 + 950ms));  // fallen, but the period is not over
  EXPECT_TRUE(trim.due(10, t0 + 1000ms));  // period over: peak 256, now 10
  // The next period's peak starts from 10: no second trim for the same fall.
  EXPECT_FALSE(trim.due(10, t0 + 2000ms));
  EXPECT_FALSE(trim.due(0, t0 + 3000ms));
}

TEST(MemoryTrim, SteadyOrRisingLoadNeverTrims) {
  MemoryTrim trim;
  const Clock::time_point t0{1h};
  for (int i = 0; i <= 20; ++i) {
    EXPECT_FALSE(trim.due(1000, t0 + i * 500ms)) << i;
  }
  EXPECT_FALSE(trim.due(2000, t0 + 11s));
  EXPECT_FALSE(trim.due(1001, t0 + 12s));  // down from 2000, but not to half
}

TEST(MemoryTrim, ASmallFallDoesNotTrimHoweverLargeItsRatio) {
  MemoryTrim trim;
  const Clock::time_point t0{1h};
  EXPECT_FALSE(trim.due(0, t0));
  EXPECT_FALSE(trim.due(MemoryTrim::kMinDrop - 1, t0 + 500ms));
  EXPECT_FALSE(trim.due(0, t0 + 1s));  // 31 -> 0: below kMinDrop
  EXPECT_FALSE(trim.due(MemoryTrim::kMinDrop, t0 + 1500ms));
  EXPECT_TRUE(trim.due(0, t0 + 2s));  // 32 -> 0
}

// The sweep of a worker without sessions may stop once due() cannot be true any more: at the
// first period end after its last session, where the trim a fall called for was decided.
TEST(MemoryTrim, SettlesAfterAWholePeriodWithoutSessions) {
  MemoryTrim trim;
  const Clock::time_point t0{1h};
  EXPECT_TRUE(trim.settled());  // a worker that never had a session
  EXPECT_FALSE(trim.due(64, t0));
  EXPECT_FALSE(trim.settled());
  EXPECT_FALSE(trim.due(0, t0 + 500ms));
  EXPECT_FALSE(trim.settled()) << "the fall from 64 is not decided yet";
  EXPECT_TRUE(trim.due(0, t0 + 1s));  // the period ends: 64 -> 0
  EXPECT_TRUE(trim.settled());
  EXPECT_FALSE(trim.due(3, t0 + 1100ms));
  EXPECT_FALSE(trim.settled());
  EXPECT_FALSE(trim.due(0, t0 + 2s));  // the period of the 3 ends with none: nothing to trim
  EXPECT_TRUE(trim.settled());
}

}  // namespace
}  // namespace proxyd
