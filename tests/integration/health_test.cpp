// Health through the real proxyd: active checks take a sick server out within fall x interval and
// bring it back after rise passes; a new server starts unhealthy; passive checks eject a failing
// server without any active check; a server frozen with SIGSTOP is taken out by the timeouts of
// its checks; a pool with no healthy server answers 503 no_healthy_server unless it fails open.
// Every wait is on a log line or a bounded request loop, never a sleep.
#include <gtest/gtest.h>

#include <chrono>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/backend_process.hpp"
#include "tests/support/config_builder.hpp"
#include "tests/support/descriptors.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kNoHealthy = "503 Service Unavailable (no_healthy_server)\n";

std::string health_line(const std::string& server, const std::string& health) {
  return "proxyd: health: pool blue server " + server + " is " + health;
}

// Waits for `server`'s move to `health` after line `from`; fails the test if it does not come.
bool wait_health(ProxydProcess& proxy, const std::string& server, const std::string& health,
                 std::size_t from = 0, std::chrono::milliseconds timeout = 10s) {
  const bool seen = proxy.wait_for_line(health_line(server, health), timeout, from).has_value();
  EXPECT_TRUE(seen) << server << " never became " << health << "\n" << proxy.stderr_text();
  return seen;
}

// `n` requests on fresh connections; the count of each x-upstream tag (or status, for others).
std::map<std::string, int> spread(std::uint16_t port, int n) {
  std::map<std::string, int> out;
  for (int i = 0; i < n; ++i) {
    Response r = fetch(port, "/r" + std::to_string(i));
    out[r.status == 200 ? r.header("x-upstream") : "status " + std::to_string(r.status)]++;
  }
  return out;
}

using Spread = std::map<std::string, int>;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

TEST(Health, AServerStartsUnhealthyAndTakesTrafficAfterRisePasses) {
  FakeUpstream blue("blue-1");
  blue.set_health_status(503);
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {blue.address()}, "health: {interval: 100ms, timeout: 100ms, rise: 2}")
          .route("web", "/", "blue")
          .yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(blue.wait_for_health_checks(2, 5s));
  Response r = fetch(proxy->port("public"), "/");
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.body, kNoHealthy);
  EXPECT_EQ(blue.requests_served(), blue.health_checks()) << "no client request reached it";

  blue.set_health_status(200);
  ASSERT_TRUE(wait_health(*proxy, blue.address(), "healthy (2 passed checks in a row, last: 200)"));
  r = fetch(proxy->port("public"), "/");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("x-upstream"), "blue-1");
}

TEST(Health, TheCheckSendsPathAndHostAndPassesOnlyExpectedStatuses) {
  FakeUpstream blue("blue-1");
  blue.set_health_status(302);
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {blue.address()},
                "health: {path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, "
                "expect: 200-299, host: health.test}")
          .route("web", "/", "blue")
          .yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(blue.wait_for_health_checks(3, 5s));
  EXPECT_EQ(blue.last_health_request(),
            "GET /healthz HTTP/1.1\r\nHost: health.test\r\nUser-Agent: proxyd-health-check\r\n"
            "Connection: close\r\n\r\n");
  EXPECT_EQ(fetch(proxy->port("public"), "/").status, 503u) << "302 is not in 200-299";
  blue.set_health_status(204);
  ASSERT_TRUE(wait_health(*proxy, blue.address(), "healthy (1 passed checks in a row, last: 204)"));
}

// A sick server under load: out within fall x interval, and afterwards no request reaches it;
// back after it recovers.
TEST(Health, ASickServerIsTakenOutWithinFallTimesIntervalAndComesBack) {
  FakeUpstream one("blue-1");
  FakeUpstream two("blue-2");
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {one.address(), two.address()},
                "health: {interval: 200ms, timeout: 100ms, rise: 2, fall: 3}\n    passive: off")
          .route("web", "/", "blue")
          .access_log("off")
          .yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(wait_health(*proxy, one.address(), "healthy"));
  ASSERT_TRUE(wait_health(*proxy, two.address(), "healthy"));
  const std::uint16_t port = proxy->port("public");
  EXPECT_EQ(spread(port, 10), (Spread{{"blue-1", 5}, {"blue-2", 5}}));

  LoadLoop load(port, true);
  const std::size_t mark = proxy->line_count();
  const auto sick_at = Clock::now();
  two.set_every_status(503);
  ASSERT_TRUE(wait_health(*proxy, two.address(),
                          "unhealthy (3 failed checks in a row, last: 503)", mark));
  // fall x interval, plus the interval the first failing check may wait for, plus slack for a
  // loaded machine.
  EXPECT_LE(since(sick_at), 600ms + 200ms + 1000ms);
  load.stop();
  EXPECT_GT(load.requests(), 0);

  const std::uint64_t reached = two.requests_served() - two.health_checks();
  EXPECT_EQ(spread(port, 50), (Spread{{"blue-1", 50}}));
  EXPECT_EQ(two.requests_served() - two.health_checks(), reached);

  const std::size_t recovered_mark = proxy->line_count();
  two.set_every_status(0);
  ASSERT_TRUE(wait_health(*proxy, two.address(), "healthy (2 passed checks in a row, last: 200)",
                          recovered_mark));
  EXPECT_EQ(spread(port, 10), (Spread{{"blue-1", 5}, {"blue-2", 5}}));
}

// Passive checks alone: five 5xx in a row eject the server; while ejected it gets nothing; at
// the end of the ejection it takes traffic again.
TEST(Health, PassiveChecksEjectAFailingServerWithoutActiveChecks) {
  FakeUpstream one("blue-1");
  FakeUpstream two("blue-2");
  two.set_every_status(500);
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {one.address(), two.address()},
                "passive: {failures: 3, ejection: 1s, max_ejection: 1s}")
          .route("web", "/", "blue")
          .access_log("off")
          .yaml());
  ASSERT_TRUE(proxy);
  const std::uint16_t port = proxy->port("public");
  // Round robin: requests 2, 4 and 6 reach blue-2 and relay its 500s; the third ejects it.
  const auto before = Clock::now();
  EXPECT_EQ(spread(port, 6), (Spread{{"blue-1", 3}, {"status 500", 3}}));
  const auto ejected = proxy->wait_for_line("proxyd: passive: ", 5s);
  ASSERT_TRUE(ejected);
  EXPECT_EQ(*ejected, "proxyd: passive: pool blue server " + two.address() +
                          " ejected for 1s after 3 failures in a row");
  EXPECT_EQ(spread(port, 20), (Spread{{"blue-1", 20}}));
  EXPECT_EQ(two.requests_served(), 3u);

  two.set_every_status(0);
  // Back once the second is over: requests until blue-2 answers, bounded.
  bool back = false;
  while (!back && since(before) < 10s)
    back = fetch(port, "/").header("x-upstream") == "blue-2";
  EXPECT_TRUE(back);
  // The ejection lasts 1s on the worker's clock, which the deadline sweep advances (every 100 ms
  // at most with these timeouts): it may read up to one sweep behind when the ejection starts.
  EXPECT_GE(since(before), 900ms) << "the ejection lasts 1s, less at most one sweep period";
}

// SIGSTOP: the server's socket still accepts, nothing answers. Its checks time out and take it
// out within fall x interval (plus one timeout); then every request succeeds on the other one.
TEST(Health, AFrozenServerIsTakenOutAndThroughputRecovers) {
  const std::string a = "127.0.0.1:" + std::to_string(unused_port());
  const std::string b = "127.0.0.1:" + std::to_string(unused_port());
  BackendProcess one(DEMO_BACKEND_BINARY, "blue-1", a);
  BackendProcess two(DEMO_BACKEND_BINARY, "blue-2", b);
  ASSERT_TRUE(one.ready());
  ASSERT_TRUE(two.ready());
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {a, b}, "health: {interval: 200ms, timeout: 150ms, rise: 1, fall: 2}")
          .route("web", "/", "blue")
          .timeouts("upstream_connect: 200ms, upstream_response: 1s, drain: 2s")
          .access_log("off")
          .yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(wait_health(*proxy, a, "healthy"));
  ASSERT_TRUE(wait_health(*proxy, b, "healthy"));
  const std::uint16_t port = proxy->port("public");

  LoadLoop load(port, false);
  const std::size_t mark = proxy->line_count();
  const auto frozen_at = Clock::now();
  two.freeze();
  ASSERT_TRUE(wait_health(*proxy, b, "unhealthy (2 failed checks in a row, last: timeout)", mark));
  EXPECT_LE(since(frozen_at), 400ms + 200ms + 1000ms);
  load.stop();

  // Afterwards: every request answered at once by blue-1 (the client's own timeout is 2 s,
  // shorter than a frozen server would hold it).
  std::map<std::string, int> after;
  for (int i = 0; i < 100; ++i) {
    Response r = fetch(port, "/after" + std::to_string(i), {}, 2s);
    after[r.ok() ? r.header("x-upstream") : r.error]++;
  }
  EXPECT_EQ(after, (Spread{{"blue-1", 100}}));
  two.thaw();
}

// A check proxyd cannot run for want of a descriptor (its RLIMIT_NOFILE lowered to what it has
// open, the rest taken by idle clients) is neither a pass nor a failure: with `fall: 1` a failure
// would take the server out, and `rise: 5` would keep it out for half a second after.
TEST(Health, ACheckProxydHasNoSocketForChangesNothing) {
  if (kSanitized) GTEST_SKIP() << kSanitizedSkip;
  FakeUpstream blue("blue-1");
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {blue.address()},
                "health: {interval: 100ms, timeout: 100ms, rise: 5, fall: 1}")
          .route("web", "/", "blue")
          .yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(wait_health(*proxy, blue.address(), "healthy"));
  const std::size_t lines = proxy->line_count();
  OutOfDescriptors out(proxy->pid(), proxy->port("public"));
  ASSERT_TRUE(out.ok()) << std::strerror(errno);
  const auto line = proxy->wait_for_line("proxyd: health: pool blue server " + blue.address() +
                                             ": check not run: cannot open a socket: Too many "
                                             "open files; health unchanged",
                                         5s, lines);
  EXPECT_TRUE(line) << proxy->stderr_text();

  ASSERT_TRUE(out.end()) << std::strerror(errno);
  const Response r = fetch(proxy->port("public"), "/");
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.header("x-upstream"), "blue-1");
  EXPECT_EQ(proxy->stderr_text().find(" is unhealthy"), std::string::npos) << proxy->stderr_text();
}

TEST(Health, NoHealthyServerGets503UnlessThePoolFailsOpen) {
  FakeUpstream one("blue-1");
  FakeUpstream two("blue-2");
  one.set_health_status(500);
  two.set_health_status(500);
  ConfigBuilder config;
  config.pool("blue", {one.address(), two.address()},
              "health: {interval: 100ms, timeout: 100ms, fall: 1}")
      .route("web", "/", "blue");
  auto proxy = ProxydProcess::start(config.yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(one.wait_for_health_checks(2, 5s));
  ASSERT_TRUE(two.wait_for_health_checks(2, 5s));
  Response r = fetch(proxy->port("public"), "/");
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.body, kNoHealthy);
  const auto logged = proxy->wait_for_stdout_lines(1, 5s);
  ASSERT_TRUE(logged);
  EXPECT_NE(proxy->stdout_lines().back().find("reason=no_healthy_server"), std::string::npos)
      << proxy->stdout_lines().back();

  ConfigBuilder open;
  open.pool("blue", {one.address(), two.address()},
            "health: {interval: 100ms, timeout: 100ms, fall: 1}\n    fail_open: true")
      .route("web", "/", "blue");
  proxy->write_config(open.yaml());
  const std::size_t mark = proxy->line_count();
  ASSERT_TRUE(proxy->signal(SIGHUP));
  const auto reloaded = proxy->wait_for_line("proxyd: reload", 5s, mark);
  ASSERT_TRUE(reloaded);
  EXPECT_NE(reloaded->find("reload ok"), std::string::npos) << *reloaded;
  EXPECT_EQ(spread(proxy->port("public"), 4), (Spread{{"blue-1", 2}, {"blue-2", 2}}));
}

}  // namespace
}  // namespace proxyd::test
