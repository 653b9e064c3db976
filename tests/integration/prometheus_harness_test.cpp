// The Prometheus harness (tests/support/prometheus_process.hpp) against a fixed exposition served
// by a FakeUpstream's /metrics: a real Prometheus starts, scrapes it, answers PromQL with the
// exposed values and follows a change; a target nobody listens on reads as up == 0. proxyd's own
// metrics are tested through the same harness.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/prometheus_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

// A few lines in the shape of the contract (docs/metrics.md).
std::string exposition(int passive_errors) {
  return "# HELP proxyd_requests_total Requests that were routed.\n"
         "# TYPE proxyd_requests_total counter\n"
         "proxyd_requests_total{route=\"api\",slot=\"live\",pool=\"blue\",code=\"200\"} 90\n"
         "proxyd_requests_total{route=\"api\",slot=\"passive\",pool=\"green\",code=\"503\"} " +
         std::to_string(passive_errors) +
         "\n"
         "# TYPE proxyd_route_weight_ratio gauge\n"
         "proxyd_route_weight_ratio{route=\"api\"} 0.05\n";
}

TEST(PrometheusHarness, ScrapesTheTargetAndAnswersQueries) {
  FakeUpstream target("metrics");
  target.set_metrics_text(exposition(7));
  auto prometheus = PrometheusProcess::start(target.address());
  ASSERT_TRUE(prometheus);
  ASSERT_TRUE(prometheus->wait_for_scrape(20s)) << prometheus->query(R"(up{job="proxyd"})");

  EXPECT_EQ(prometheus->query_value(R"(proxyd_requests_total{slot="passive",code="503"})"), 7);
  EXPECT_EQ(prometheus->query_value(R"(proxyd_route_weight_ratio{route="api"})"), 0.05);
  // The raw answer carries the labels, and the target's address as `instance`.
  const auto body = prometheus->query(R"(proxyd_requests_total{code="503"})");
  EXPECT_NE(body.find(R"("status":"success")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("pool":"green")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("instance":")" + target.address() + "\""), std::string::npos) << body;
  // An expression with spaces, quotes, braces and a regex survives the URL encoding.
  EXPECT_EQ(prometheus->query_value(R"(sum by (route) (proxyd_requests_total{code=~"5.."}))"), 7);
  // A query Prometheus refuses yields no value rather than a bogus one.
  EXPECT_EQ(prometheus->query_value("sum by ("), std::nullopt);

  // Later scrapes follow the target: the next one sees the new value.
  target.set_metrics_text(exposition(9));
  EXPECT_TRUE(prometheus->wait_for_value(R"(proxyd_requests_total{code="503"})", 9, 20s))
      << prometheus->query(R"(proxyd_requests_total{code="503"})");
}

TEST(PrometheusHarness, AnUnreachableTargetIsDown) {
  auto prometheus = PrometheusProcess::start("127.0.0.1:" + std::to_string(unused_port()));
  ASSERT_TRUE(prometheus);
  // Scraped (a sample of `up` exists) and found down: 0, and wait_for_scrape does not say yes.
  EXPECT_TRUE(prometheus->wait_for_value(R"(up{job="proxyd"})", 0, 20s))
      << prometheus->query(R"(up{job="proxyd"})");
  EXPECT_FALSE(prometheus->wait_for_scrape(1500ms));
}

TEST(PrometheusHarness, UrlEncodesQueryText) {
  EXPECT_EQ(url_encode(R"(up{job="proxyd"} > 0.5)"), "up%7Bjob%3D%22proxyd%22%7D%20%3E%200.5");
  EXPECT_EQ(url_encode("a-b_c.d~e"), "a-b_c.d~e");
}

}  // namespace
}  // namespace proxyd::test
