// Kept-alive upstream connections are closed by proxyd once idle for timeouts.upstream_idle, and
// the next request opens a new one.
#include <gtest/gtest.h>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"(workers: 1
listeners:
  - {name: public, address: 127.0.0.1:0}
admin: {control_socket: "@DIR@/control.sock", state_file: "@DIR@/state.json", access_log: "off"}
pools:
  blue: {servers: ["@BLUE@"]}
routes:
  - {name: web, live: blue}
timeouts: {upstream_idle: 200ms}
)";

TEST(UpstreamIdle, IdleConnectionIsClosedAfterTheTimeoutAndReplaced) {
  FakeUpstream blue("blue-1");
  auto proxy = ProxydProcess::start(substitute(kConfig, {{"@BLUE@", blue.address()}}));
  ASSERT_TRUE(proxy);
  const auto port = proxy->port("public");
  EXPECT_EQ(fetch(port, "/").header("x-conn-seq"), "1");
  EXPECT_EQ(fetch(port, "/").header("x-conn-seq"), "1");  // reused while fresh
  EXPECT_EQ(blue.connections_closed(), 0u);

  // proxyd closes it on its own: the upstream sees the connection end, with no client around.
  ASSERT_TRUE(blue.wait_for_closed(1, 5s)) << "the idle upstream connection was never closed";
  EXPECT_EQ(blue.connections_accepted(), 1u);
  EXPECT_EQ(fetch(port, "/").header("x-conn-seq"), "2");
}

}  // namespace
}  // namespace proxyd::test
