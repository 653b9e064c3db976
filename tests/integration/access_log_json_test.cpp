// admin.access_log_format: json through the real proxyd: every line is one JSON object that
// parses back with the request's fields, a retried request's failed attempts included.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <chrono>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

TEST(AccessLogJson, EveryLineParsesBackWithTheRequestsFields) {
  FakeUpstream blue("blue");
  const RefusingPort refusing;
  const std::string refused = refusing.address();
  const std::string yaml = substitute(ConfigBuilder()
                                          .pool("blue", {refused, blue.address()})
                                          .route("web", "/", "blue")
                                          .yaml(),
                                      {{"  access_log: \"stdout\"\n",
                                        "  access_log: \"stdout\"\n  access_log_format: json\n"}});
  auto proxy = ProxydProcess::start(yaml);
  ASSERT_TRUE(proxy);
  // Round robin from the first server: the first request is refused there and retried on blue.
  ASSERT_EQ(fetch(proxy->port("public"), "/first?q=\"x\"").status, 200u);
  ASSERT_EQ(fetch(proxy->port("public"), "/second").status, 200u);
  ASSERT_TRUE(proxy->wait_for_stdout_lines(2, 5s));
  const auto lines = proxy->stdout_lines();
  const json::object first = json::parse(lines[0]).as_object();
  EXPECT_EQ(first.at("target").as_string(), "/first?q=\"x\"");
  EXPECT_EQ(first.at("status").to_number<int>(), 200);
  EXPECT_EQ(first.at("route").as_string(), "web");
  EXPECT_EQ(first.at("slot").as_string(), "live");
  EXPECT_EQ(first.at("server").as_string(), blue.address());
  EXPECT_EQ(first.at("attempts").to_number<int>(), 2);
  const json::array& failed = first.at("failed").as_array();
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].at("server").as_string(), refused);
  EXPECT_EQ(failed[0].at("end").as_string(), "connect_failed");
  EXPECT_TRUE(first.at("reason").is_null());
  EXPECT_EQ(first.at("end").as_string(), "relayed");
  const json::object second = json::parse(lines[1]).as_object();
  EXPECT_EQ(second.at("target").as_string(), "/second");
  EXPECT_EQ(second.at("status").to_number<int>(), 200);
}

}  // namespace
}  // namespace proxyd::test
