// Signals to the real proxyd: SIGHUP reloads the config under load without a failed request and the
// new routing is visible once `reload ok` is printed; a bad config on reload keeps the old one; and
// SIGTERM/SIGINT drain in-flight requests and exit 0.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
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
timeouts: {client_header: 2s, client_idle: 10s, upstream_connect: 500ms, upstream_response: 5s, drain: 5s}
)";

class SignalsTest : public ::testing::Test {
 protected:
  std::string config(const std::string& weight) const {
    return substitute(kSignalConfig, {{"@BLUE@", blue_.address()},
                                      {"@GREEN@", green_.address()},
                                      {"@WEIGHT@", weight}});
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

// A client loop on its own thread: keep-alive or a connection per request, bounded by a request
// count and a deadline, recording failures and the tag of its latest response.
class LoadLoop {
 public:
  LoadLoop(std::uint16_t port, bool keep_alive) {
    thread_ = std::thread([this, port, keep_alive] { run(port, keep_alive); });
  }
  ~LoadLoop() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int requests() const { return requests_; }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mu_);
    return failures_;
  }
  std::string last_tag() const {
    std::lock_guard lock(mu_);
    return last_tag_;
  }

 private:
  void run(std::uint16_t port, bool keep_alive) {
    const auto deadline = Clock::now() + 20s;
    std::unique_ptr<HttpClient> client;
    for (int i = 0; i < 20000 && !stop_ && Clock::now() < deadline; ++i) {
      if (!keep_alive || !client) client = std::make_unique<HttpClient>(port);
      Response r = client->get("/r" + std::to_string(i));
      ++requests_;
      std::lock_guard lock(mu_);
      if (!r.ok() || r.status != 200) {
        failures_.push_back("request " + std::to_string(i) + ": status " +
                            std::to_string(r.status) + " " + r.error);
        client.reset();
      } else {
        last_tag_ = r.header("x-upstream");
        if (!r.keep_alive) client.reset();  // proxyd may retire a connection, gracefully
      }
    }
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::vector<std::string> failures_;
  std::string last_tag_;
};

TEST_F(SignalsTest, ReloadUnderLoadSwitchesRoutingWithoutFailures) {
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop kept(port_, true);
  LoadLoop fresh(port_, false);
  ASSERT_TRUE(blue_.wait_for_requests(50, 5s)) << "the load loops are not getting through";
  EXPECT_EQ(green_.requests_served(), 0u) << "weight 0 sends nothing to passive";

  proxy_->write_config(config("100"));
  const std::string answer = reload();
  EXPECT_NE(answer.find("proxyd: reload ok generation="), std::string::npos) << answer;

  // Both loops keep running into the new routing: the old keep-alive connection included.
  const auto green_before = green_.requests_served();
  EXPECT_TRUE(green_.wait_for_requests(green_before + 50, 5s));
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
