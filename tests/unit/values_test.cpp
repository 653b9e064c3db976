// The value syntaxes shared by the config file and proxyctl: durations, sizes, percentages (exact,
// never through a double) and host:port addresses, with the messages that name a bad value.
#include "proxy/values.hpp"

#include <gtest/gtest.h>

namespace proxyd {
namespace {

using namespace std::chrono_literals;

TEST(ParseDurationTest, Accepts) {
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("2s"), 2s);
  EXPECT_EQ(parse_duration("1m"), 1min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("0s"), 0ms);  // the config refuses 0 where a timeout needs a value
  EXPECT_EQ(parse_duration("8760h"), Duration(8760LL * 3600 * 1000));
}

TEST(ParseDurationTest, Rejects) {
  for (const char* text : {"", "1.5s", "2", "s", "2S", "2 s", " 2s", "2s ", "-1s", "+1s", "1d",
                           "1sec", "8761h", "525601m", "99999999999999999999ms"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
  }
}

TEST(ParseSizeTest, Accepts) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("16384"), 16384u);
  EXPECT_EQ(parse_size("16KiB"), 16u * 1024);
  EXPECT_EQ(parse_size("100MiB"), 100u * 1024 * 1024);
  EXPECT_EQ(parse_size("1GiB"), 1024u * 1024 * 1024);
  EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse_size("17179869183GiB"), 17179869183ull << 30);
}

TEST(ParseSizeTest, Rejects) {
  for (const char* text : {"", "KiB", "1.5MiB", "10MB", "1kib", "1 KiB", "-1", "1TiB", "1B",
                           "18446744073709551616", "17179869184GiB"}) {
    EXPECT_EQ(parse_size(text), std::nullopt) << text;
  }
}

TEST(ParsePercentTest, Accepts) {
  EXPECT_EQ(parse_percent_ppm("0.5"), 5000u);
  EXPECT_EQ(parse_percent_ppm("0.5%"), 5000u);
  EXPECT_EQ(parse_percent_ppm("0.0001"), 1u);
  EXPECT_EQ(parse_percent_ppm("100"), 1'000'000u);
  EXPECT_EQ(parse_percent_ppm("100%"), 1'000'000u);
  EXPECT_EQ(parse_percent_ppm("100.0000"), 1'000'000u);
  EXPECT_EQ(parse_percent_ppm("0"), 0u);
  EXPECT_EQ(parse_percent_ppm("12.3456"), 123'456u);
  EXPECT_EQ(parse_percent_ppm("99.9999"), 999'999u);
  EXPECT_EQ(parse_percent_ppm("5"), 50'000u);
  // Exact, where a double holds 0.1000000000000000055511151231257827.
  EXPECT_EQ(parse_percent_ppm("0.1"), 1000u);
  EXPECT_EQ(parse_percent_ppm("007"), 70'000u);
}

TEST(ParsePercentTest, Rejects) {
  for (const char* text :
       {"",      "%",  "abc", "0.00001", "0.12345", "100.0001", "101",
        "1e2",   "-1", "+1",  " 1",      "1 ",      ".5",       "5.",
        "0.5%%", "%5", "1,5", "0x10",    "inf",     "nan",      "99999999999999999999999"}) {
    EXPECT_EQ(parse_percent_ppm(text), std::nullopt) << text;
  }
}

TEST(FormatPercentTest, ShortestForm) {
  EXPECT_EQ(format_percent(0), "0");
  EXPECT_EQ(format_percent(1), "0.0001");
  EXPECT_EQ(format_percent(100), "0.01");
  EXPECT_EQ(format_percent(5000), "0.5");
  EXPECT_EQ(format_percent(123'456), "12.3456");
  EXPECT_EQ(format_percent(500'000), "50");
  EXPECT_EQ(format_percent(1'000'000), "100");
}

TEST(FormatPercentTest, RoundTripsEveryStep) {
  for (std::uint32_t ppm = 0; ppm <= kPpmMax; ppm += 7) {
    ASSERT_EQ(parse_percent_ppm(format_percent(ppm)), ppm) << ppm;
  }
  EXPECT_EQ(parse_percent_ppm(format_percent(kPpmMax)), kPpmMax);
}

TEST(ParseEndpointTest, Accepts) {
  const std::optional<Endpoint> v4 = parse_endpoint("127.0.0.1:8080");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 8080);

  const std::optional<Endpoint> v6 = parse_endpoint("[::1]:9001");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9001);
  EXPECT_EQ(v6->text(), "[::1]:9001");

  EXPECT_EQ(parse_endpoint("localhost:0")->port, 0);
  EXPECT_EQ(parse_endpoint("app.internal:65535")->text(), "app.internal:65535");
  EXPECT_EQ(parse_endpoint("shop_web_1:80")->host, "shop_web_1");
  EXPECT_EQ(parse_endpoint("[2001:db8::1]:443")->text(), "[2001:db8::1]:443");
}

TEST(ParseEndpointTest, Rejects) {
  for (const char* text : {"", "8080", ":80", "host:", "host:65536", "host:-1", "host:8o",
                           "host: 80", "::1:80", "[::1]", "[::1]80", "[]:80", "[zz]:80", "a b:80",
                           "-a:80", "a..b:80", "a.:80", "host:99999999999999999999"}) {
    EXPECT_EQ(parse_endpoint(text), std::nullopt) << text;
  }
}

TEST(ValueErrorsTest, NameTheBadText) {
  std::string why;
  EXPECT_EQ(parse_duration("2x", &why), std::nullopt);
  EXPECT_EQ(why, "invalid duration \"2x\": expected a whole number and a unit (ms, s, m or h), "
                 "e.g. 500ms or 2s");
  EXPECT_EQ(parse_percent_ppm("101", &why), std::nullopt);
  EXPECT_EQ(why, "percentage \"101\" is above 100");
  EXPECT_EQ(parse_endpoint("host:0", 1, &why), std::nullopt);
  EXPECT_EQ(why, "invalid address \"host:0\": the port must be a number from 1 to 65535");
  EXPECT_EQ(parse_size("1TiB", &why), std::nullopt);
  EXPECT_EQ(why, "invalid size \"1TiB\": expected a whole number of bytes, optionally with KiB, "
                 "MiB or GiB, e.g. 16384 or 100MiB");
}

}  // namespace
}  // namespace proxyd

namespace proxyd {
namespace {

TEST(FormatDurationTest, TheLargestWholeUnit) {
  EXPECT_EQ(format_duration(Duration(250)), "250ms");
  EXPECT_EQ(format_duration(Duration(1500)), "1.5s");
  EXPECT_EQ(format_duration(Duration(90'000)), "90s");
  EXPECT_EQ(format_duration(Duration(60'000)), "1m");
  EXPECT_EQ(format_duration(Duration(300'000)), "5m");
  EXPECT_EQ(format_duration(Duration(7'200'000)), "2h");
  EXPECT_EQ(format_duration(Duration(0)), "0s");
  for (const char* text : {"250ms", "1m", "2h", "90s"})
    EXPECT_EQ(format_duration(*parse_duration(text)), text);
}

}  // namespace
}  // namespace proxyd
