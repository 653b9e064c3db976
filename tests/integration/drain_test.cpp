// Draining through the real proxyd and proxyctl: a flip under load while a 100 MiB download and a
// WebSocket tunnel are open to the old pool loses nothing (the download completes, the tunnel
// keeps working; once the old pool leaves every slot the tunnel closes after the route's drain
// and idle connections to the pool are closed); `server drain` lets a running request finish while new ones go elsewhere, `disable`
// closes the server's idle connections, `enable` brings it back.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <chrono>
#include <map>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;

class DrainTest : public ::testing::Test {
 protected:
  CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock"});
    return run_program(args, 20s);
  }

  // Per pool: {requests in flight, tunnels open}, summed over its servers, from status --json.
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> load_by_pool() {
    const CommandResult status = ctl({"status", "--json"});
    EXPECT_EQ(status.exit_code, 0) << status.output;
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> out;
    const json::value parsed = json::parse(status.output);
    for (const json::value& pool : parsed.at("result").at("pools").as_array()) {
      auto& [in_flight, tunnels] = out[std::string(pool.at("name").as_string())];
      for (const json::value& server : pool.at("servers").as_array()) {
        in_flight += server.at("in_flight").to_number<std::int64_t>();
        tunnels += server.at("tunnels").to_number<std::int64_t>();
      }
    }
    return out;
  }

  std::unique_ptr<ProxydProcess> proxy_;
};

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// Reads the rest of a /bytes download whose first `got` bytes arrived; false on a wrong byte.
bool read_body_to_end(HttpClient& client, std::uint64_t& got, std::uint64_t total) {
  while (got < total) {
    const std::string piece = client.read_raw(std::min<std::uint64_t>(4 << 20, total - got));
    if (piece.empty()) return false;
    for (std::size_t i = 0; i < piece.size(); ++i) {
      if (piece[i] != pattern_byte(got + i)) return false;
    }
    got += piece.size();
  }
  return true;
}

TEST_F(DrainTest, AFlipUnderLoadLetsTheOldPoolsDownloadAndTunnelFinish) {
  FakeUpstream blue("blue-1");
  FakeUpstream green("green-1");
  proxy_ = ProxydProcess::start(
      ConfigBuilder()
          .workers(2)
          .pool("blue", {blue.address()})
          .pool("green", {green.address()})
          .route("web", "/", "blue", "green", {"drain: 1s"})
          .timeouts("client_idle: 10s, upstream_response: 10s, drain: 5s")
          .access_log("off")
          .yaml());
  ASSERT_TRUE(proxy_);
  const std::uint16_t port = proxy_->port("public");

  // A 100 MiB download, its first MiB read.
  constexpr std::uint64_t kTotal = 100ull << 20;
  HttpClient download(port);
  ASSERT_TRUE(download.send_raw("GET /bytes?n=" + std::to_string(kTotal) +
                                " HTTP/1.1\r\nHost: test\r\n\r\n"));
  const std::string first = download.read_raw(1 << 20);
  const auto head_end = first.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  ASSERT_NE(first.find("x-upstream: blue-1\r\n"), std::string::npos) << first.substr(0, head_end);
  std::uint64_t got = first.size() - head_end - 4;

  // A WebSocket tunnel to blue.
  HttpClient ws(port);
  ASSERT_TRUE(ws.send_raw(
      "GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  ASSERT_EQ(ws.read_response().status, 101u);
  ASSERT_TRUE(ws.send_raw("before"));
  ASSERT_EQ(ws.read_raw(6), "before");

  const auto before = load_by_pool();
  EXPECT_EQ(before.at("blue").second, 1) << "one tunnel open to blue";
  EXPECT_EQ(before.at("blue").first, 2) << "the download and the tunnel's request";
  EXPECT_EQ(before.at("green"), (std::pair<std::int64_t, std::int64_t>{0, 0}));

  LoadLoop load(port, true);
  ASSERT_TRUE(blue.wait_for_requests(10, 10s));
  const CommandResult flip = ctl({"flip", "web"});
  ASSERT_EQ(flip.exit_code, 0) << flip.output;

  // The tunnel still works after the flip, and the download completes, byte for byte.
  ASSERT_TRUE(ws.send_raw("after"));
  EXPECT_EQ(ws.read_raw(5), "after");
  EXPECT_TRUE(read_body_to_end(download, got, kTotal));
  EXPECT_EQ(got, kTotal);

  ASSERT_TRUE(green.wait_for_requests(10, 10s));
  load.stop();
  EXPECT_EQ(load.failures(), std::vector<std::string>{});
  EXPECT_EQ(load.last_tag(), "green-1");

  // After the flip blue is the passive pool, still in a slot: the tunnel lives on. Once blue
  // leaves the route's slots (passive bound to green too) it closes after the route's drain (1s).
  ASSERT_TRUE(ws.send_raw("still"));
  EXPECT_EQ(ws.read_raw(5), "still");
  const auto left_at = Clock::now();
  const CommandResult leave = ctl({"set-passive", "web", "green"});
  ASSERT_EQ(leave.exit_code, 0) << leave.output;
  ASSERT_TRUE(ws.send_raw("draining"));
  EXPECT_EQ(ws.read_raw(8), "draining");
  ws.set_timeout(5s);
  EXPECT_TRUE(ws.is_closed_by_peer());
  EXPECT_GE(since(left_at), 1000ms);

  // Blue is in no slot: all its connections are closed, idle ones included.
  EXPECT_TRUE(blue.wait_for_closed(blue.connections_accepted(), 5s))
      << blue.connections_closed() << " of " << blue.connections_accepted();
  const auto after = load_by_pool();
  EXPECT_EQ(after.at("blue"), (std::pair<std::int64_t, std::int64_t>{0, 0}));
}

TEST_F(DrainTest, ServerDrainFinishesRunningRequestsAndDisableClosesIdleConnections) {
  FakeUpstream one("blue-1");
  FakeUpstream two("blue-2");
  proxy_ = ProxydProcess::start(ConfigBuilder()
                                    .pool("blue", {one.address(), two.address()})
                                    .route("web", "/", "blue")
                                    .access_log("off")
                                    .yaml());
  ASSERT_TRUE(proxy_);
  const std::uint16_t port = proxy_->port("public");

  // One worker, round robin from the first server: this slow request is blue-1's.
  HttpClient slow(port);
  ASSERT_TRUE(slow.send_raw("GET /delay?ms=1000 HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(one.wait_for_requests(1, 5s));
  const CommandResult drain = ctl({"server", "drain", "blue", one.address()});
  ASSERT_EQ(drain.exit_code, 0) << drain.output;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(fetch(port, "/").header("x-upstream"), "blue-2") << i;
  const Response finished = slow.read_response();
  EXPECT_EQ(finished.status, 200u) << finished.error;
  EXPECT_EQ(finished.header("x-upstream"), "blue-1");
  EXPECT_EQ(one.requests_served(), 1u);

  const CommandResult disable = ctl({"server", "disable", "blue", one.address()});
  ASSERT_EQ(disable.exit_code, 0) << disable.output;
  EXPECT_TRUE(one.wait_for_closed(one.connections_accepted(), 5s))
      << "the drained request's connection went idle, and disable closes it";
  EXPECT_EQ(two.connections_closed(), 0u) << "blue-2's idle connection stays";

  const CommandResult enable = ctl({"server", "enable", "blue", one.address()});
  ASSERT_EQ(enable.exit_code, 0) << enable.output;
  std::map<std::string, int> tags;
  for (int i = 0; i < 4; ++i) tags[fetch(port, "/").header("x-upstream")]++;
  EXPECT_EQ(tags, (std::map<std::string, int>{{"blue-1", 2}, {"blue-2", 2}}));
}

}  // namespace
}  // namespace proxyd::test
