// proxyd's stderr lines (proxy/log.hpp): one line per message, the journal's priority prefix only
// when stderr is journald's stream, and the level filter.
#include <gtest/gtest.h>

#include "proxy/log.hpp"

namespace proxyd {
namespace {

TEST(LogTest, PlainLinesAreTheTextAsIs) {
  EXPECT_EQ(log::format(LogLevel::info, "proxyd: ready workers=2 generation=1", false),
            "proxyd: ready workers=2 generation=1\n");
  EXPECT_EQ(log::format(LogLevel::error, "proxyd: reload failed: a\nb", false),
            "proxyd: reload failed: a\nb\n");
  EXPECT_EQ(log::format(LogLevel::warning, "proxyd: warning: x\n", false), "proxyd: warning: x\n");
}

TEST(LogTest, JournalLinesStartWithTheirSyslogPriority) {
  EXPECT_EQ(log::format(LogLevel::debug, "proxyd: d", true), "<7>proxyd: d\n");
  EXPECT_EQ(log::format(LogLevel::info, "proxyd: ready", true), "<6>proxyd: ready\n");
  EXPECT_EQ(log::format(LogLevel::warning, "proxyd: warning: w", true), "<4>proxyd: warning: w\n");
  EXPECT_EQ(log::format(LogLevel::error, "proxyd: e", true), "<3>proxyd: e\n");
  // Every line of a multi-line message is an entry of its own, with the same priority.
  EXPECT_EQ(log::format(LogLevel::error, "proxyd: reload failed: t.yaml:3: a\nt.yaml:4: b", true),
            "<3>proxyd: reload failed: t.yaml:3: a\n<3>t.yaml:4: b\n");
}

TEST(LogTest, JournalStreamMustNameThisVeryFile) {
  EXPECT_TRUE(log::is_journal_stream("8:12345", 8, 12345));
  EXPECT_FALSE(log::is_journal_stream("8:12345", 8, 12346));
  EXPECT_FALSE(log::is_journal_stream("9:12345", 8, 12345));
  EXPECT_FALSE(log::is_journal_stream(nullptr, 8, 12345));
  EXPECT_FALSE(log::is_journal_stream("", 8, 12345));
  EXPECT_FALSE(log::is_journal_stream("8:12345x", 8, 12345));
  EXPECT_FALSE(log::is_journal_stream("8", 8, 0));
}

TEST(LogTest, LevelFilter) {
  log::set_level(LogLevel::warning);
  EXPECT_FALSE(log::enabled(LogLevel::debug));
  EXPECT_FALSE(log::enabled(LogLevel::info));
  EXPECT_TRUE(log::enabled(LogLevel::warning));
  EXPECT_TRUE(log::enabled(LogLevel::error));
  log::set_level(LogLevel::debug);
  EXPECT_TRUE(log::enabled(LogLevel::debug));
  log::set_level(LogLevel::info);
  EXPECT_FALSE(log::enabled(LogLevel::debug));
  EXPECT_TRUE(log::enabled(LogLevel::info));
}

// The first line goes, then none until `every` has passed since the last one that went.
TEST(LogTest, AThrottleLetsALineThroughOncePerInterval) {
  using namespace std::chrono_literals;
  log::Throttle throttle(10s);
  const log::Throttle::Clock::time_point t0{};
  EXPECT_TRUE(throttle.allow(t0 + 1s));
  EXPECT_FALSE(throttle.allow(t0 + 1s));
  EXPECT_FALSE(throttle.allow(t0 + 10s));
  EXPECT_TRUE(throttle.allow(t0 + 11s));
  EXPECT_FALSE(throttle.allow(t0 + 20s));
  EXPECT_TRUE(throttle.allow(t0 + 21s));
}

}  // namespace
}  // namespace proxyd
