// Signals to the real proxyd: SIGHUP reloads the config under load without a failed request and the
// new routing is visible once `reload ok` is printed; a bad config on reload keeps the old one; and
// SIGTERM/SIGINT drain in-flight requests and exit 0.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// @WEIGHT@ is the share of the web route sent to green (passive).
constexpr const char* kSignalConfig = R"(workers: 2
listeners:
  - name: public
    address: 127.0.0.1:0
admin:
  control_socket: @DIR@/control.sock
  state_file: @DIR@/state.json
  access_log: stdout
pools:
  blue:
    servers: [@BLUE@]
  green:
    servers: [@GREEN@]
routes:
  - name: web
    match: {path_prefix: /}
    live: blue
    passive: green
    weight: @WEIGHT@
timeouts:
  client_header: 2s
  client_idle: 10s
  upstream_connect: 500ms
  upstream_response: 5s
  drain: 5s
)";

class SignalsTest : public ::testing::Test {
 protected:
  std::string config(const std::string& weight) const {
    return substitute(
        kSignalConfig,
        {{"@BLUE@", blue_.address()}, {"@GREEN@", green_.address()}, {"@WEIGHT@", weight}});
  }

  void start() {
    proxy_ = ProxydProcess::start(config("0"));
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
    ASSERT_NE(port_, 0);
  }

  // Sends SIGHUP and returns proxyd's answer line (`proxyd: reload ok ...` or `... failed ...`).
  std::string reload() {
    const auto mark = proxy_->line_count();
    EXPECT_TRUE(proxy_->signal(SIGHUP));
    return proxy_->wait_for_line("proxyd: reload", 5s, mark).value_or("(no reload line)");
  }

  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
};

TEST_F(SignalsTest, ReloadUnderLoadSwitchesRoutingWithoutFailures) {
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop kept(port_, true);
  LoadLoop fresh(port_, false);
  ASSERT_TRUE(blue_.wait_for_requests(200, 5s)) << "the load loops are not getting through";
  EXPECT_EQ(green_.requests_served(), 0u) << "weight 0 sends nothing to passive";

  proxy_->write_config(config("100"));
  const std::string answer = reload();
  EXPECT_NE(answer.find("proxyd: reload ok generation="), std::string::npos) << answer;

  // Both loops keep running well into the new routing, the old keep-alive connection included.
  const auto green_before = green_.requests_served();
  EXPECT_TRUE(green_.wait_for_requests(green_before + 500, 10s));
  kept.stop();
  fresh.stop();

  EXPECT_EQ(kept.failures(), std::vector<std::string>{});
  EXPECT_EQ(fresh.failures(), std::vector<std::string>{});
  EXPECT_EQ(kept.last_tag(), "green-1");
  EXPECT_EQ(fresh.last_tag(), "green-1");
  for (int i = 0; i < 10; ++i) {
    Response r = fetch(port_, "/after");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.header("x-upstream"), "green-1");
  }
}

TEST_F(SignalsTest, InvalidConfigOnReloadKeepsTheOldOne) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_EQ(client.get("/").header("x-upstream"), "blue-1");

  proxy_->write_config(config("150"));  // not a percentage
  const std::string answer = reload();
  EXPECT_NE(answer.find("proxyd: reload failed"), std::string::npos) << answer;

  proxy_->write_config(config("100\n    sticky: {cookie: sid, bogus: 1}"));  // unknown key
  const std::string second = reload();
  EXPECT_NE(second.find("proxyd: reload failed"), std::string::npos) << second;

  // Still serving, with the old routing, on old and new connections.
  for (int i = 0; i < 10; ++i) {
    Response r = client.get("/");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.header("x-upstream"), "blue-1");
    EXPECT_EQ(fetch(port_, "/").header("x-upstream"), "blue-1");
  }

  // And a good config after the bad ones still loads.
  proxy_->write_config(config("100"));
  const std::string third = reload();
  EXPECT_NE(third.find("proxyd: reload ok"), std::string::npos) << third;
  EXPECT_EQ(fetch(port_, "/").header("x-upstream"), "green-1");
}

// Runtime values win over the file until reset: proxyd's answer to SIGHUP says how many still do.
TEST_F(SignalsTest, ReloadSaysHowManyRuntimeValuesStillWin) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string socket = proxy_->dir() + "/control.sock";
  const auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", socket});
    return run_program(args, 20s).exit_code;
  };
  EXPECT_EQ(reload(), "proxyd: reload ok generation=2");
  ASSERT_EQ(ctl({"set-weight", "web", "20"}), 0);
  proxy_->write_config(config("100"));
  EXPECT_EQ(reload(),
            "proxyd: reload ok generation=4; 1 runtime value still wins over the file (proxyctl "
            "diff lists them, proxyctl reset drops them)");
  ASSERT_EQ(ctl({"server", "disable", "blue", blue_.address()}), 0);
  EXPECT_EQ(reload(),
            "proxyd: reload ok generation=6; 2 runtime values still win over the file (proxyctl "
            "diff lists them, proxyctl reset drops them)");
  ASSERT_EQ(ctl({"reset", "--all"}), 0);
  EXPECT_EQ(reload(), "proxyd: reload ok generation=8");
}

TEST_F(SignalsTest, SigtermCompletesTheInFlightRequestAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw("GET /delay?ms=500 HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(blue_.wait_for_requests(1, 5s));

  ASSERT_TRUE(proxy_->signal(SIGTERM));
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "blue-1\n");
  EXPECT_EQ(proxy_->wait_exit(10s), std::optional<int>(0));
}

TEST_F(SignalsTest, SigintWithAnIdleConnectionExitsZeroBeforeTheDrainTimeout) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_EQ(client.get("/").status, 200u);  // now idle, kept alive

  const auto start_time = Clock::now();
  ASSERT_TRUE(proxy_->signal(SIGINT));
  EXPECT_EQ(proxy_->wait_exit(10s), std::optional<int>(0));
  // drain is 5s: an idle connection has nothing to drain and must not hold the exit.
  EXPECT_LT(Clock::now() - start_time, 4s);
  EXPECT_TRUE(client.is_closed_by_peer());
}

}  // namespace
}  // namespace proxyd::test
