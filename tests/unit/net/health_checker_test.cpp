// The health checker's pure rules: reading a check's status line, matching it against `expect`,
// and the rise/fall transitions. The checks themselves run against real servers in
// tests/integration/health_test.cpp.
#include "proxy/health_checker.hpp"

#include <gtest/gtest.h>

namespace proxyd {
namespace {

TEST(HealthCheckStatus, ReadsTheStatusLine) {
  EXPECT_EQ(status_of("HTTP/1.1 200 OK\r\n\r\n"), 200u);
  EXPECT_EQ(status_of("HTTP/1.0 503 Service Unavailable\r\n"), 503u);
  EXPECT_EQ(status_of("HTTP/1.1 204\r\n"), 204u);      // no reason phrase
  EXPECT_EQ(status_of("HTTP/1.1 301 \r\n"), 301u);     // an empty one
  EXPECT_EQ(status_of("HTTP/2 200 OK\r\n"), std::nullopt);
  EXPECT_EQ(status_of("HTTP/1.1 2x0 what\r\n"), std::nullopt);
  EXPECT_EQ(status_of("HTTP/1.1 2000 OK\r\n"), std::nullopt);
  EXPECT_EQ(status_of("HTTP/1.1 099 Low\r\n"), std::nullopt);
  EXPECT_EQ(status_of("SSH-2.0-OpenSSH\r\n"), std::nullopt);
  EXPECT_EQ(status_of(""), std::nullopt);
}

TEST(HealthCheckStatus, ExpectRanges) {
  const std::vector<StatusRange> expect{{200, 299}, {301, 301}};
  EXPECT_TRUE(status_expected(200, expect));
  EXPECT_TRUE(status_expected(299, expect));
  EXPECT_TRUE(status_expected(301, expect));
  EXPECT_FALSE(status_expected(302, expect));
  EXPECT_FALSE(status_expected(199, expect));
  EXPECT_FALSE(status_expected(503, expect));
}

TEST(HealthCheckRiseFall, AnUncheckedOrUnhealthyServerNeedsRisePasses) {
  EXPECT_EQ(next_health(Health::unhealthy, 1, 0, 2, 3), Health::unhealthy);
  EXPECT_EQ(next_health(Health::unhealthy, 2, 0, 2, 3), Health::healthy);
  EXPECT_EQ(next_health(Health::unchecked, 2, 0, 2, 3), Health::healthy);
}

TEST(HealthCheckRiseFall, AHealthyServerNeedsFallFailures) {
  EXPECT_EQ(next_health(Health::healthy, 0, 2, 2, 3), Health::healthy);
  EXPECT_EQ(next_health(Health::healthy, 0, 3, 2, 3), Health::unhealthy);
  EXPECT_EQ(next_health(Health::healthy, 0, 1, 2, 1), Health::unhealthy);
  EXPECT_EQ(next_health(Health::unhealthy, 0, 7, 2, 3), Health::unhealthy);
}

}  // namespace
}  // namespace proxyd
