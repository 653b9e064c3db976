// proxyd scraped by a real Prometheus (Debian's, started on loopback by the test): after traffic
// where the canary (passive) answers 503 to everything, the counts Prometheus holds equal what the
// clients saw, and docs/metrics.md's "passive's error ratio minus live's" query answers 1 for the
// route: the canary fails every request, live none.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/prometheus_process.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

// docs/metrics.md, "Passive's error ratio minus live's", for one window.
constexpr const char* kCanaryMinusLive = R"((
      sum by (route) (rate(proxyd_requests_total{slot="passive", code=~"5.."}[5m]))
    or
      sum by (route) (rate(proxyd_requests_total{slot="passive"}[5m])) * 0
  )
  / sum by (route) (rate(proxyd_requests_total{slot="passive"}[5m]))
-
  (
      sum by (route) (rate(proxyd_requests_total{slot="live", code=~"5.."}[5m]))
    or
      sum by (route) (rate(proxyd_requests_total{slot="live"}[5m])) * 0
  )
  / sum by (route) (rate(proxyd_requests_total{slot="live"}[5m])))";

TEST(Prometheus, TheCanaryQueryComparesPassiveWithLive) {
  FakeUpstream blue("blue");
  FakeUpstream green("green");
  green.set_every_status(503);
  auto proxy = ProxydProcess::start(ConfigBuilder()
                                        .metrics()
                                        .pool("blue", {blue.address()})
                                        .pool("green", {green.address()})
                                        .route("web", "/", "blue", "green", {"weight: 50"})
                                        .access_log("off")
                                        .yaml());
  ASSERT_TRUE(proxy);
  const std::uint16_t port = proxy->port("public");
  auto prometheus =
      PrometheusProcess::start("127.0.0.1:" + std::to_string(proxy->port("admin.metrics")));
  ASSERT_TRUE(prometheus);
  ASSERT_TRUE(prometheus->wait_for_scrape(20s)) << prometheus->query(R"(up{job="proxyd"})");

  // Two rounds, each seen by a scrape, so rate() has an increase to work on.
  int ok = 0;
  int failed = 0;
  for (int round = 1; round <= 2; ++round) {
    for (int i = 0; i < 100; ++i) {
      const unsigned status = fetch(port, "/r" + std::to_string(i)).status;
      (status == 200 ? ok : failed) += 1;
      ASSERT_TRUE(status == 200 || status == 503) << status;
    }
    ASSERT_TRUE(prometheus->wait_for_value("sum(proxyd_requests_total)", 100.0 * round, 20s))
        << prometheus->query("proxyd_requests_total");
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(failed, 0);
  EXPECT_EQ(prometheus->query_value(R"(sum(proxyd_requests_total{slot="live",code="200"}))"), ok);
  EXPECT_EQ(prometheus->query_value(R"(sum(proxyd_requests_total{slot="passive",code="503"}))"),
            failed);
  EXPECT_EQ(prometheus->query_value(kCanaryMinusLive), 1.0) << prometheus->query(kCanaryMinusLive);
}

}  // namespace
}  // namespace proxyd::test
