// Routing through the real proxyd: the weighted split between live and passive, exact weights 0 and
// 100, a `slot: passive` preview listener, sticky cookies, host matching (first match wins) and
// the 404 for a request no route matches. The side a request reached is read from x-upstream.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <regex>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTimeouts =
    "client_header: 2s, client_idle: 10s, upstream_connect: 500ms, upstream_response: 5s, "
    "drain: 2s";

// Routes, first match wins: `hosted` (host only, all green), `api` (50%, sticky on cookie sid),
// `cohort` (50%, sticky on a cookie proxyd sets),
// `zero` (weight 0), `full` (weight 100), and the catch-all `web` (50%, no sticky key).
std::string split_config(const FakeUpstream& blue, const FakeUpstream& green) {
  return ConfigBuilder()
      .workers(2)
      .listener("public")
      .listener("preview", "slot: passive")
      .pool("blue", {blue.address()})
      .pool("green", {green.address()})
      .route_matching("hosted", "host: api.example.test", "green")
      .route("api", "/api/", "blue", "green", {"weight: 50", "sticky: {cookie: sid}"})
      .route("cohort", "/cohort/", "blue", "green",
             {"weight: 50", "sticky: {cookie: cohort, set: {max_age: 1h}}"})
      .route("zero", "/zero/", "blue", "green", {"weight: 0"})
      .route("full", "/full/", "blue", "green", {"weight: 100"})
      .route("web", "/", "blue", "green", {"weight: 50"})
      .timeouts(kTimeouts)
      .yaml();
}

class RoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy_ = ProxydProcess::start(split_config(blue_, green_));
    ASSERT_TRUE(proxy_);
    public_ = proxy_->port("public");
    preview_ = proxy_->port("preview");
    ASSERT_NE(public_, 0);
    ASSERT_NE(preview_, 0);
  }

  // Sends `n` GETs for `target` over one keep-alive connection; returns the count per x-upstream.
  std::map<std::string, int> tally(std::uint16_t port, const std::string& target, int n,
                                   const Headers& headers = {}) {
    std::map<std::string, int> seen;
    HttpClient client(port);
    EXPECT_TRUE(client.connected()) << client.connect_error();
    for (int i = 0; i < n; ++i) {
      Response r = client.get(target, headers);
      EXPECT_TRUE(r.ok()) << r.error;
      EXPECT_EQ(r.status, 200u);
      if (!r.ok()) break;
      ++seen[r.header("x-upstream")];
    }
    return seen;
  }

  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t public_ = 0;
  std::uint16_t preview_ = 0;
};

TEST_F(RoutingTest, WeightedSplitReachesBothSlots) {
  std::map<std::string, int> seen;
  for (int c = 0; c < 4; ++c) {
    for (const auto& [tag, n] : tally(public_, "/page?c=" + std::to_string(c), 50)) seen[tag] += n;
  }
  // 200 draws at 50%: mean 100, sd ~7; 60 is more than 5 sd away.
  EXPECT_EQ(seen["blue-1"] + seen["green-1"], 200);
  EXPECT_GE(seen["blue-1"], 60);
  EXPECT_GE(seen["green-1"], 60);
}

TEST_F(RoutingTest, WeightsZeroAndHundredAreExact) {
  EXPECT_EQ(tally(public_, "/zero/x", 50), (std::map<std::string, int>{{"blue-1", 50}}));
  EXPECT_EQ(tally(public_, "/full/x", 50), (std::map<std::string, int>{{"green-1", 50}}));
}

TEST_F(RoutingTest, PassiveListenerSendsEverythingToPassive) {
  EXPECT_EQ(tally(preview_, "/zero/x", 30), (std::map<std::string, int>{{"green-1", 30}}));
  EXPECT_EQ(tally(preview_, "/page", 30), (std::map<std::string, int>{{"green-1", 30}}));
  // The public listener still follows the weight.
  EXPECT_EQ(tally(public_, "/zero/x", 10), (std::map<std::string, int>{{"blue-1", 10}}));
}

TEST_F(RoutingTest, StickyCookieKeepsEachClientOnOneSide) {
  std::map<std::string, int> users_per_side;
  for (int user = 0; user < 40; ++user) {
    const Headers cookie{{"Cookie", "theme=dark; sid=user-" + std::to_string(user) + "; x=1"}};
    std::map<std::string, int> seen;
    // Fresh connections, so nothing but the cookie can hold the user on a side.
    for (int i = 0; i < 5; ++i) {
      Response r = fetch(public_, "/api/items", cookie);
      ASSERT_TRUE(r.ok()) << r.error;
      ASSERT_EQ(r.status, 200u);
      ++seen[r.header("x-upstream")];
    }
    EXPECT_EQ(seen.size(), 1u) << "user-" << user << " moved between sides";
    ++users_per_side[seen.begin()->first];
  }
  // At 50% both cohorts are populated (each side empty with probability 2^-40).
  EXPECT_GT(users_per_side["blue-1"], 0);
  EXPECT_GT(users_per_side["green-1"], 0);
}

TEST_F(RoutingTest, HostMatchIsCaseInsensitiveIgnoresPortAndFirstMatchWins) {
  // `hosted` is listed before `zero`, so its host wins even on a /zero/ path.
  EXPECT_EQ(tally(public_, "/zero/x", 5, {{"Host", "api.example.test"}}),
            (std::map<std::string, int>{{"green-1", 5}}));
  EXPECT_EQ(tally(public_, "/zero/x", 5, {{"Host", "API.Example.Test:8080"}}),
            (std::map<std::string, int>{{"green-1", 5}}));
  EXPECT_EQ(tally(public_, "/zero/x", 5, {{"Host", "other.example.test"}}),
            (std::map<std::string, int>{{"blue-1", 5}}));
}

// An absolute-form target (RFC 9112 3.2.2) routes on its own authority and path, whatever Host
// says; the upstream gets the origin-form, with that authority as Host.
TEST_F(RoutingTest, AnAbsoluteFormTargetRoutesOnItsAuthority) {
  EXPECT_EQ(tally(public_, "http://api.example.test/zero/x", 5, {{"Host", "other.example.test"}}),
            (std::map<std::string, int>{{"green-1", 5}}));
  EXPECT_EQ(tally(public_, "http://other.example.test/zero/x", 5, {{"Host", "api.example.test"}}),
            (std::map<std::string, int>{{"blue-1", 5}}));
  HttpClient client(public_);
  Response r = client.get("http://api.example.test/headers", {{"Host", "other.example.test"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NE(r.body.find("GET /headers HTTP/1.1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\nHost: api.example.test\n"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("other.example.test"), std::string::npos) << r.body;
  // Nothing after the authority: accepted (the path is "/", as the unit tests show byte for
  // byte) and routed on the authority.
  Response root = client.get("http://api.example.test", {{"Host", "other.example.test"}});
  ASSERT_TRUE(root.ok()) << root.error;
  EXPECT_EQ(root.status, 200u);
  EXPECT_EQ(root.header("x-upstream"), "green-1");
}

TEST(RoutingNoRoute, RequestNoRouteMatchesGets404) {
  FakeUpstream blue("blue-1");
  auto proxy = ProxydProcess::start(ConfigBuilder()
                                        .pool("blue", {blue.address()})
                                        .route("api", "/api/", "blue")
                                        .timeouts(kTimeouts)
                                        .yaml());
  ASSERT_TRUE(proxy);
  HttpClient client(proxy->port("public"));
  ASSERT_TRUE(client.connected()) << client.connect_error();

  Response r = client.get("/other");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 404u);
  EXPECT_FALSE(r.has("x-upstream"));
  EXPECT_EQ(blue.requests_served(), 0u);

  // A 404 is not a framing error: if proxyd kept the connection, it must still work.
  if (r.keep_alive) {
    Response next = client.get("/api/x");
    ASSERT_TRUE(next.ok()) << next.error;
    EXPECT_EQ(next.status, 200u);
    EXPECT_EQ(next.header("x-upstream"), "blue-1");
  }
}

// sticky.set: a client without the cookie gets one with its first response, and that cookie keeps
// it on the side the first request went to; a client that has one gets none; an upstream that sets
// the cookie itself wins.
TEST_F(RoutingTest, AStickyCookieIsSetForClientsWithoutOne) {
  HttpClient client(public_);
  std::map<std::string, int> sides;
  for (int i = 0; i < 40; ++i) {
    const Response first = client.get("/cohort/x");
    ASSERT_EQ(first.status, 200);
    const std::string set_cookie = first.header("set-cookie");
    ASSERT_TRUE(std::regex_match(
        set_cookie, std::regex("cohort=[0-9a-f]{16}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax")))
        << set_cookie;
    const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
    const std::string side = first.header("x-upstream");
    ++sides[side];
    for (int again = 0; again < 5; ++again) {
      const Response next = client.get("/cohort/x", {{"Cookie", cookie}});
      EXPECT_EQ(next.header("x-upstream"), side) << cookie;
      EXPECT_EQ(next.header("set-cookie"), "");
    }
  }
  // 40 new clients at 50%: both sides get some (all on one side: 2 in 10^12).
  EXPECT_EQ(sides.size(), 2u);

  // The application's own cookie of that name wins: proxyd adds none. Another name does not.
  const Response app = client.get("/cohort/set-cookie?v=cohort=app");
  EXPECT_EQ(app.status, 200);
  EXPECT_EQ(app.headers.count("set-cookie"), 1u);
  EXPECT_EQ(app.header("set-cookie"), "cohort=app");
  const Response other = client.get("/cohort/set-cookie?v=theme=dark");
  EXPECT_EQ(other.headers.count("set-cookie"), 2u);
}

}  // namespace
}  // namespace proxyd::test
