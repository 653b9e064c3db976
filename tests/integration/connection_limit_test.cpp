// limits.max_connections through the real proxyd: at the limit a new connection waits in the
// backlog, unanswered, until a connection ends (on either worker) or a reload raises the limit;
// idle connections are closed to make room for it, the one nearest its idle timeout first; and
// the default follows from the descriptor limit, which proxyd raises to its hard value.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/h2_client.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"
#include "tests/support/tls_fixtures.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

const std::string kReached = "proxyd_connection_limit_reached_total";
const std::string kClosedForRoom = "proxyd_connections_closed_for_room_total";
const std::string kActive = "proxyd_connections_active{listener=\"public\"}";

std::string config(const FakeUpstream& upstream, int workers, const std::string& limits) {
  return ConfigBuilder()
      .workers(workers)
      .pool("blue", {upstream.address()})
      .route("web", "/", "blue")
      .limits(limits)
      .metrics()
      .yaml();
}

// A client whose request the upstream holds unanswered (its connection is busy, not idle).
std::unique_ptr<HttpClient> busy_client(std::uint16_t port) {
  auto client = std::make_unique<HttpClient>(port);
  client->send_raw("GET /stall HTTP/1.1\r\nHost: t\r\n\r\n");
  return client;
}

class ConnectionLimitTest : public ::testing::Test {
 protected:
  void start(const std::string& yaml) {
    proxy_ = ProxydProcess::start(yaml);
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
    admin_ = proxy_->port("admin.metrics");
  }

  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_ = 0;
};

// Two busy connections fill a limit of 2. In each of six rounds a new client connects and sends
// its request: proxyd sees it waiting (the reached counter grows) and does not take it, so the
// upstream gets nothing more; once the oldest busy client hangs up, the new one is answered, and
// then becomes busy itself. Connections are spread over both workers, so the connection that ends
// and the one that waits are on different workers in some rounds: the wake-up crosses workers.
TEST_F(ConnectionLimitTest, ANewConnectionWaitsUntilOneEnds) {
  FakeUpstream upstream("blue");
  start(config(upstream, 2, "max_connections: 2"));
  EXPECT_EQ(metric_value(admin_, "proxyd_max_connections"), 2);
  std::vector<std::unique_ptr<HttpClient>> busy;
  busy.push_back(busy_client(port_));
  busy.push_back(busy_client(port_));
  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));

  for (int round = 1; round <= 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto waiting = std::make_unique<HttpClient>(port_, 10s);
    ASSERT_TRUE(waiting->send_raw("GET /next HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(wait_metric(admin_, kReached, round), round);
    EXPECT_EQ(upstream.requests_served(), static_cast<std::uint64_t>(2 * round));
    EXPECT_EQ(metric_value(admin_, kActive), 2);

    busy.front()->close();  // proxyd notices within a second (its hung-up check) and ends it
    busy.erase(busy.begin());
    const Response r = waiting->read_response();
    ASSERT_EQ(r.status, 200u) << r.error;
    EXPECT_EQ(r.body, "blue\n");
    ASSERT_TRUE(waiting->send_raw("GET /stall HTTP/1.1\r\nHost: t\r\n\r\n"));
    busy.push_back(std::move(waiting));
    ASSERT_TRUE(upstream.wait_for_requests(2 * round + 2, 5s));
  }
  // Busy connections are never closed to make room.
  EXPECT_EQ(metric_value(admin_, kClosedForRoom), 0);
  EXPECT_TRUE(proxy_->wait_for_line("limits.max_connections (2) reached", 1s).has_value());
}

// At a limit of 2 held by a kept-alive connection (one request done) and a silent one (connected,
// nothing sent), a third client is answered: the silent connection, nearer its timeout
// (client_header 10 s against client_idle 60 s), is closed for it; the kept-alive one still works.
TEST_F(ConnectionLimitTest, IdleConnectionsAreClosedToMakeRoomNearestTimeoutFirst) {
  FakeUpstream upstream("blue");
  start(config(upstream, 1, "max_connections: 2"));
  HttpClient kept(port_);
  ASSERT_EQ(kept.get("/first").status, 200u);
  HttpClient silent(port_);
  ASSERT_EQ(wait_metric(admin_, kActive, 2), 2);

  HttpClient third(port_);
  const Response r = third.get("/third");
  ASSERT_EQ(r.status, 200u) << r.error;
  EXPECT_TRUE(silent.is_closed_by_peer());
  EXPECT_EQ(metric_value(admin_, kReached), 1);
  EXPECT_EQ(metric_value(admin_, kClosedForRoom), 1);
  // The kept-alive connection was not closed: it is answered (the limit counts it already).
  const Response again = kept.get("/again");
  EXPECT_EQ(again.status, 200u) << again.error;
  EXPECT_EQ(upstream.requests_served(), 3u);
}

// One worker, two listeners, a connection waiting on each at a limit of 2: each listener's accept
// loop waits for room once, and each freed place lets one of them in. (The loops used to cancel
// each other's wait over and over, spinning and closing every idle connection.) The first place
// wakes both loops; the one that loses the race waits again: 3 waits in all. The two stall too,
// so that no connection is idle and none is closed for room.
TEST_F(ConnectionLimitTest, TwoListenersWaitingOnOneWorkerEachGetAPlace) {
  FakeUpstream upstream("blue");
  start(ConfigBuilder()
            .listener("public")
            .listener("second")
            .pool("blue", {upstream.address()})
            .route("web", "/", "blue")
            .limits("max_connections: 2")
            .metrics()
            .yaml());
  std::vector<std::unique_ptr<HttpClient>> busy;
  busy.push_back(busy_client(port_));
  busy.push_back(busy_client(port_));
  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));
  HttpClient first(port_, 10s);
  ASSERT_TRUE(first.send_raw("GET /stall HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(wait_metric(admin_, kReached, 1), 1);
  HttpClient second(proxy_->port("second"), 10s);
  ASSERT_TRUE(second.send_raw("GET /stall HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(wait_metric(admin_, kReached, 2), 2);

  busy[0]->close();
  ASSERT_TRUE(upstream.wait_for_requests(3, 5s));  // one of the two got in, and stalls
  EXPECT_EQ(wait_metric(admin_, kReached, 3), 3);
  busy[1]->close();
  ASSERT_TRUE(upstream.wait_for_requests(4, 5s));  // and the other
  EXPECT_EQ(metric_value(admin_, kReached), 3);
  EXPECT_EQ(metric_value(admin_, kActive), 1);
  EXPECT_EQ(metric_value(admin_, "proxyd_connections_active{listener=\"second\"}"), 1);
  EXPECT_EQ(metric_value(admin_, kClosedForRoom), 0);
}

// An idle HTTP/2 connection (its stream done) is closed for room too, with a GOAWAY, and counted
// once it ended, though it re-arms its deadline while it says goodbye.
TEST_F(ConnectionLimitTest, AnIdleHttp2ConnectionIsClosedForRoomWithAGoaway) {
  FakeUpstream upstream("blue");
  start(ConfigBuilder()
            .listener("public", "http2: true")
            .pool("blue", {upstream.address()})
            .route("web", "/", "blue")
            .limits("max_connections: 1")
            .metrics()
            .yaml());
  H2TestClient h2(port_);
  const std::int32_t id = h2.request("GET", "/first");
  ASSERT_TRUE(h2.wait_closed(id, 5s));
  EXPECT_EQ(h2.result(id).status, 200u);

  HttpClient next(port_);  // HTTP/1.1 on the same listener
  const Response r = next.get("/next");
  ASSERT_EQ(r.status, 200u) << r.error;
  ASSERT_TRUE(h2.run_until([&] { return h2.goaway(); }, 5s));
  EXPECT_EQ(h2.goaway_error(), 0u);  // NO_ERROR
  EXPECT_EQ(wait_metric(admin_, kClosedForRoom, 1), 1);
  EXPECT_EQ(metric_value(admin_, kReached), 1);
}

// A reload that raises the limit lets the waiting connection in, with nothing closed.
TEST_F(ConnectionLimitTest, AReloadRaisingTheLimitLetsAWaitingConnectionIn) {
  FakeUpstream upstream("blue");
  start(config(upstream, 1, "max_connections: 1"));
  auto held = busy_client(port_);
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  HttpClient waiting(port_, 10s);
  ASSERT_TRUE(waiting.send_raw("GET /next HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(wait_metric(admin_, kReached, 1), 1);
  EXPECT_EQ(upstream.requests_served(), 1u);

  proxy_->write_config(config(upstream, 1, "max_connections: 2"));
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  const Response r = waiting.read_response();
  ASSERT_EQ(r.status, 200u) << r.error;
  EXPECT_EQ(metric_value(admin_, "proxyd_max_connections"), 2);
  EXPECT_EQ(metric_value(admin_, kClosedForRoom), 0);
}

// The soft and hard RLIMIT_NOFILE of a running proxyd, from /proc.
std::pair<long, long> open_files_limits(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    long soft = 0, hard = 0;
    fields >> soft >> hard;
    return {soft, hard};
  }
  return {-1, -1};
}

// Unset, the limit is (descriptors - 64) x 3/8 of the soft limit, raised to the hard one.
TEST_F(ConnectionLimitTest, TheDefaultFollowsTheRaisedDescriptorLimit) {
  FakeUpstream upstream("blue");
  start(ConfigBuilder().pool("blue", {upstream.address()}).route("web", "/", "blue").metrics().yaml());
  const auto [soft, hard] = open_files_limits(proxy_->pid());
  ASSERT_GT(hard, 64);
  EXPECT_EQ(soft, hard);
  EXPECT_EQ(metric_value(admin_, "proxyd_max_connections"), (hard - 64) * 3 / 8);
}

}  // namespace
}  // namespace proxyd::test
