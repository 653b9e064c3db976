// Router: host and path matching, Cookie parsing, and decide() end to end over a hand-built
// snapshot (forced slot, preview header, sticky keys, random fallback, split accuracy, cohorts).
#include "proxy/router.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "proxy/split_policy.hpp"

namespace proxyd {
namespace {

constexpr std::uint64_t kAllOnes = ~std::uint64_t{0};

void expect_binomial(std::uint64_t observed, std::uint64_t trials, double p) {
  const double mean = static_cast<double>(trials) * p;
  const double sd = std::sqrt(static_cast<double>(trials) * p * (1 - p));
  EXPECT_LE(std::fabs(static_cast<double>(observed) - mean), 5 * sd)
      << "observed " << observed << " of " << trials << ", expected about " << mean;
}

Route make_route(std::string name, std::string host, std::string path_prefix,
                 std::uint32_t live_pool, std::uint32_t passive_pool, std::uint32_t weight_ppm) {
  Route route;
  route.name = std::move(name);
  route.host = std::move(host);
  route.path_prefix = std::move(path_prefix);
  route.live_pool = live_pool;
  route.passive_pool = passive_pool;
  route.weight_ppm = weight_ppm;
  route.sticky_salt = fnv1a64(route.name);
  return route;
}

// Pools blue (0) and green (1); routes are added by each test, in config order.
RoutingSnapshot make_snapshot(std::vector<Route> routes) {
  RoutingSnapshot snapshot;
  for (const char* name : {"blue", "green"}) {
    Pool pool;
    pool.name = name;
    pool.index = static_cast<std::uint32_t>(snapshot.pools.size());
    snapshot.pools.push_back(std::move(pool));
  }
  for (Route& route : routes) {
    route.index = static_cast<std::uint32_t>(snapshot.routes.size());
    snapshot.routes.push_back(std::move(route));
  }
  return snapshot;
}

// A request's header fields, looked up the way the session's adapter does (case-insensitive).
struct Headers {
  std::vector<std::pair<std::string_view, std::string_view>> fields;

  static std::optional<std::string_view> lookup(const void* ctx, std::string_view name) {
    for (const auto& [field, value] : static_cast<const Headers*>(ctx)->fields) {
      if (field.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < name.size() && same; ++i) {
        same = std::tolower(static_cast<unsigned char>(field[i])) ==
               std::tolower(static_cast<unsigned char>(name[i]));
      }
      if (same) return value;
    }
    return std::nullopt;
  }
};

RequestView make_request(std::string_view host, std::string_view path,
                         const Headers* headers = nullptr) {
  RequestView request;
  request.host = host;
  request.path = path;
  if (headers != nullptr) {
    request.header = &Headers::lookup;
    request.header_ctx = headers;
  }
  return request;
}

TEST(Router, HostMatchesExactNameIgnoringCaseAndPort) {
  EXPECT_TRUE(host_matches("api.example.com", "api.example.com"));
  EXPECT_TRUE(host_matches("api.example.com", "API.Example.COM"));
  EXPECT_TRUE(host_matches("API.example.com", "api.example.com:8080"));
  EXPECT_TRUE(host_matches("api.example.com", "api.example.com."));
  EXPECT_FALSE(host_matches("api.example.com", "www.example.com"));
  EXPECT_FALSE(host_matches("api.example.com", "api.example.com.evil"));
  EXPECT_FALSE(host_matches("api.example.com", "xapi.example.com"));
  EXPECT_FALSE(host_matches("api.example.com", ""));
}

TEST(Router, HostMatchesIpLiterals) {
  EXPECT_TRUE(host_matches("127.0.0.1", "127.0.0.1:8080"));
  EXPECT_TRUE(host_matches("[::1]", "[::1]:8080"));
  EXPECT_TRUE(host_matches("::1", "[::1]:8080"));
  EXPECT_TRUE(host_matches("[::1]", "[::1]"));
  EXPECT_TRUE(host_matches("[2001:DB8::1]", "[2001:db8::1]:443"));
  EXPECT_FALSE(host_matches("[::1]", "[::2]:8080"));
  EXPECT_FALSE(host_matches("::1", "::"));
}

TEST(Router, HostMatchesWildcardSubdomainsButNotTheApex) {
  EXPECT_TRUE(host_matches("*.example.com", "a.example.com"));
  EXPECT_TRUE(host_matches("*.example.com", "a.b.example.com"));
  EXPECT_TRUE(host_matches("*.example.com", "A.EXAMPLE.com:8443"));
  EXPECT_FALSE(host_matches("*.example.com", "example.com"));
  EXPECT_FALSE(host_matches("*.example.com", ".example.com"));
  EXPECT_FALSE(host_matches("*.example.com", "aexample.com"));
  EXPECT_FALSE(host_matches("*.example.com", "a.example.org"));
}

TEST(Router, EmptyHostPatternMatchesAnything) {
  EXPECT_TRUE(host_matches("", "anything.example"));
  EXPECT_TRUE(host_matches("", ""));
  EXPECT_TRUE(host_matches("", "[::1]:80"));
}

TEST(Router, PathMatchesPlainPrefix) {
  EXPECT_TRUE(path_matches("/api/", "/api/users"));
  EXPECT_TRUE(path_matches("/api/", "/api/"));
  EXPECT_FALSE(path_matches("/api/", "/api"));
  EXPECT_FALSE(path_matches("/api/", "/API/users"));
  EXPECT_FALSE(path_matches("/api/", "/"));
  EXPECT_TRUE(path_matches("/", "/anything?q=1"));
  EXPECT_TRUE(path_matches("", ""));
  EXPECT_TRUE(path_matches("", "/x"));
}

TEST(Router, MatchRouteTakesTheFirstMatchInConfigOrder) {
  const RoutingSnapshot snapshot = make_snapshot({
      make_route("admin", "admin.example.com", "", 0, 0, 0),
      make_route("api", "", "/api/", 0, 1, 0),
      make_route("wild", "*.example.com", "/", 1, 1, 0),
      make_route("web", "", "/", 0, 0, 0),
  });
  const auto name = [&](std::string_view host, std::string_view path) -> std::string {
    const Route* route = match_route(snapshot, host, path);
    return route ? route->name : "(none)";
  };
  EXPECT_EQ(name("admin.example.com", "/api/x"), "admin");
  EXPECT_EQ(name("Admin.Example.com:443", "/"), "admin");
  EXPECT_EQ(name("shop.example.com", "/api/x"), "api");
  EXPECT_EQ(name("shop.example.com", "/cart"), "wild");
  EXPECT_EQ(name("example.com", "/cart"), "web");
  EXPECT_EQ(name("other.org", "/cart"), "web");
  EXPECT_EQ(name("other.org", "*"), "(none)");
}

TEST(Router, NoMatchingRouteGivesNullRouteAndPool) {
  const RoutingSnapshot snapshot =
      make_snapshot({make_route("api", "api.example.com", "/", 0, 1, 0)});
  const Decision decision = decide(snapshot, make_request("www.example.com", "/"), std::nullopt, 0);
  EXPECT_EQ(decision.route, nullptr);
  EXPECT_EQ(decision.pool, nullptr);
  EXPECT_FALSE(decision.sticky_hit);
  EXPECT_EQ(decide(RoutingSnapshot{}, make_request("a", "/"), SlotName::passive, 0).route, nullptr);
}

TEST(Router, FindCookie) {
  EXPECT_EQ(find_cookie("a=1; b=2", "a"), "1");
  EXPECT_EQ(find_cookie("a=1; b=2", "b"), "2");
  EXPECT_EQ(find_cookie("a=1;b=2", "b"), "2");
  EXPECT_EQ(find_cookie("  a = 1 ;\tb=2\t", "a"), "1");
  EXPECT_EQ(find_cookie("sid=\"x y\"; a=1", "sid"), "\"x y\"");
  EXPECT_EQ(find_cookie("a=b=c", "a"), "b=c");
  EXPECT_EQ(find_cookie("xa=1; a=2", "a"), "2");
  EXPECT_EQ(find_cookie("a=1; a=2", "a"), "1");
  EXPECT_EQ(find_cookie("flag; a=1", "a"), "1");
  EXPECT_EQ(find_cookie("a=", "a"), "");
  EXPECT_EQ(find_cookie("a=1;;; b=2;", "b"), "2");
  EXPECT_EQ(find_cookie("A=1", "a"), std::nullopt);
  EXPECT_EQ(find_cookie("a=1; b=2", "c"), std::nullopt);
  EXPECT_EQ(find_cookie("", "a"), std::nullopt);
  EXPECT_EQ(find_cookie("=1", ""), std::nullopt);
}

TEST(Router, SlotSelectsTheRoutesPool) {
  const RoutingSnapshot snapshot = make_snapshot({make_route("api", "", "/", 1, 0, 0)});
  const Decision live = decide(snapshot, make_request("h", "/"), SlotName::live, 0);
  ASSERT_NE(live.route, nullptr);
  EXPECT_EQ(live.slot, SlotName::live);
  EXPECT_EQ(live.pool, &snapshot.pools[1]);
  const Decision passive = decide(snapshot, make_request("h", "/"), SlotName::passive, 0);
  EXPECT_EQ(passive.slot, SlotName::passive);
  EXPECT_EQ(passive.pool, &snapshot.pools[0]);
}

TEST(Router, WeightZeroNeverPassiveAndFullAlwaysPassive) {
  for (const std::uint64_t random : {std::uint64_t{0}, std::uint64_t{1} << 63, kAllOnes}) {
    const RoutingSnapshot none = make_snapshot({make_route("api", "", "/", 0, 1, 0)});
    EXPECT_EQ(decide(none, make_request("h", "/"), std::nullopt, random).slot, SlotName::live);
    const RoutingSnapshot all = make_snapshot({make_route("api", "", "/", 0, 1, kPpmMax)});
    EXPECT_EQ(decide(all, make_request("h", "/"), std::nullopt, random).slot, SlotName::passive);
  }
}

TEST(Router, ForcedSlotWinsOverWeightPreviewAndSticky) {
  Route route = make_route("api", "", "/", 0, 1, kPpmMax);
  route.preview_header = "X-Preview";
  route.sticky = {StickyConfig::Kind::client_ip, "", std::nullopt};
  const RoutingSnapshot snapshot = make_snapshot({route});
  const Headers headers{{{"x-preview", "1"}}};
  RequestView request = make_request("h", "/", &headers);
  request.client_ip = "192.0.2.1";
  const Decision decision = decide(snapshot, request, SlotName::live, 0);
  EXPECT_EQ(decision.slot, SlotName::live);
  EXPECT_EQ(decision.pool, &snapshot.pools[0]);
  EXPECT_FALSE(decision.sticky_hit);
}

TEST(Router, PreviewHeaderSendsToPassive) {
  Route route = make_route("api", "", "/", 0, 1, 0);
  route.preview_header = "X-Preview";
  const RoutingSnapshot snapshot = make_snapshot({route});
  const Headers with{{{"x-preview", ""}}};
  const Headers without{{{"x-other", "1"}}};
  for (const std::uint64_t random : {std::uint64_t{0}, kAllOnes}) {
    const Decision preview = decide(snapshot, make_request("h", "/", &with), std::nullopt, random);
    EXPECT_EQ(preview.slot, SlotName::passive);
    EXPECT_EQ(preview.pool, &snapshot.pools[1]);
    EXPECT_EQ(decide(snapshot, make_request("h", "/", &without), std::nullopt, random).slot,
              SlotName::live);
    EXPECT_EQ(decide(snapshot, make_request("h", "/"), std::nullopt, random).slot, SlotName::live);
  }
}

TEST(Router, PreviewHeaderIgnoredWhenRouteHasNone) {
  const RoutingSnapshot snapshot = make_snapshot({make_route("api", "", "/", 0, 1, 0)});
  const Headers headers{{{"x-preview", "1"}, {"", "1"}}};
  EXPECT_EQ(decide(snapshot, make_request("h", "/", &headers), std::nullopt, 0).slot,
            SlotName::live);
}

// Sticky by cookie, header and client address: the slot follows the key's bucket, whatever the
// draw, and equals the policy's answer for that key and the route's salt.
TEST(Router, StickyKeyDecidesTheSlotRegardlessOfRandom) {
  struct Case {
    StickyConfig sticky;
    const char* cookie;
    const char* header_value;
    const char* client_ip;
    const char* key;
  };
  const std::vector<Case> cases = {
      {{StickyConfig::Kind::cookie, "sessionid", std::nullopt}, "theme=dark; sessionid=abc123", "", "", "abc123"},
      {{StickyConfig::Kind::header, "X-User-Id", std::nullopt}, "", "user-77", "", "user-77"},
      {{StickyConfig::Kind::client_ip, "", std::nullopt}, "", "", "198.51.100.7", "198.51.100.7"},
  };
  for (const Case& c : cases) {
    for (const std::uint32_t weight : {5'000u, 500'000u, 990'000u}) {
      Route route = make_route("api", "", "/", 0, 1, weight);
      route.sticky = c.sticky;
      const RoutingSnapshot snapshot = make_snapshot({route});
      const Headers headers{{{"x-user-id", c.header_value}}};
      RequestView request = make_request("h", "/", &headers);
      request.cookie_header = c.cookie;
      request.client_ip = c.client_ip;
      const SlotName expected = choose_slot(weight, sticky_bucket(c.key, fnv1a64("api")));
      SplitMix64 random(weight);
      for (int i = 0; i < 200; ++i) {
        const Decision decision = decide(snapshot, request, std::nullopt, random.next());
        ASSERT_TRUE(decision.sticky_hit) << c.key;
        ASSERT_EQ(decision.slot, expected) << c.key << " at weight " << weight;
      }
    }
  }
}

TEST(Router, MissingStickyKeyFallsBackToTheDraw) {
  const std::vector<StickyConfig> stickies = {{StickyConfig::Kind::none, "", std::nullopt},
                                              {StickyConfig::Kind::cookie, "sessionid", std::nullopt},
                                              {StickyConfig::Kind::header, "X-User-Id", std::nullopt},
                                              {StickyConfig::Kind::client_ip, "", std::nullopt}};
  for (const StickyConfig& sticky : stickies) {
    Route route = make_route("api", "", "/", 0, 1, 500'000);
    route.sticky = sticky;
    const RoutingSnapshot snapshot = make_snapshot({route});
    // Cookie present but for another name, or empty; header absent; no client address.
    const Headers headers{{{"x-other", "1"}}};
    for (const char* cookie : {"", "other=1", "sessionid="}) {
      RequestView request = make_request("h", "/", &headers);
      request.cookie_header = cookie;
      const Decision low = decide(snapshot, request, std::nullopt, 0);
      EXPECT_FALSE(low.sticky_hit);
      EXPECT_EQ(low.slot, SlotName::passive);
      const Decision high = decide(snapshot, request, std::nullopt, kAllOnes);
      EXPECT_FALSE(high.sticky_hit);
      EXPECT_EQ(high.slot, SlotName::live);
    }
  }
}

TEST(Router, AClientWithoutTheCookieGetsOneThatDecidesNowAndLater) {
  Route route = make_route("api", "", "/", 0, 1, 500'000);
  route.sticky = {StickyConfig::Kind::cookie, "cohort", CookieSet{}};
  const RoutingSnapshot snapshot = make_snapshot({route});
  int passive = 0;
  for (const std::uint64_t random : std::vector<std::uint64_t>{0x0123'4567'89ab'cdef, 0, kAllOnes,
                                                             0x5555'0000'aaaa'1111}) {
    const Decision fresh = decide(snapshot, make_request("h", "/"), std::nullopt, random);
    ASSERT_TRUE(fresh.set_cookie);
    EXPECT_FALSE(fresh.sticky_hit);
    const std::string value(fresh.new_cookie.data(), fresh.new_cookie.size());
    // The value is the draw in hex, lowest nibble first; its hash decided the slot.
    std::string expected;
    for (int i = 0; i < 16; ++i) expected += "0123456789abcdef"[(random >> (4 * i)) & 0xf];
    EXPECT_EQ(value, expected);
    EXPECT_EQ(fresh.slot, choose_slot(500'000, sticky_bucket(value, route.sticky_salt)));
    // Back with the cookie: the same side, whatever the draw, and no new cookie.
    RequestView again = make_request("h", "/");
    const std::string cookie = "cohort=" + value;
    again.cookie_header = cookie;
    for (const std::uint64_t draw : std::vector<std::uint64_t>{0, kAllOnes}) {
      const Decision next = decide(snapshot, again, std::nullopt, draw);
      EXPECT_TRUE(next.sticky_hit);
      EXPECT_FALSE(next.set_cookie);
      EXPECT_EQ(next.slot, fresh.slot);
    }
    passive += fresh.slot == SlotName::passive;
  }
  EXPECT_GT(passive, 0);  // with these four draws, both sides (hashes checked above)
  EXPECT_LT(passive, 4);
}

TEST(Router, HeaderStickyWithoutHeaderLookupFallsBackToTheDraw) {
  Route route = make_route("api", "", "/", 0, 1, 500'000);
  route.sticky = {StickyConfig::Kind::header, "X-User-Id", std::nullopt};
  const RoutingSnapshot snapshot = make_snapshot({route});
  const Decision decision = decide(snapshot, make_request("h", "/"), std::nullopt, kAllOnes);
  EXPECT_FALSE(decision.sticky_hit);
  EXPECT_EQ(decision.slot, SlotName::live);
}

TEST(Router, RandomSplitThroughDecideIsAccurate) {
  constexpr std::uint64_t kRequests = 1'000'000;
  for (const std::uint32_t weight : {5'000u, 50'000u, 500'000u}) {
    const RoutingSnapshot snapshot = make_snapshot({make_route("api", "", "/api/", 0, 1, weight)});
    const RequestView request = make_request("h", "/api/users");
    SplitMix64 random(0xdec1de + weight);
    std::uint64_t passive = 0;
    for (std::uint64_t i = 0; i < kRequests; ++i) {
      const Decision decision = decide(snapshot, request, std::nullopt, random.next());
      passive += decision.slot == SlotName::passive;
    }
    SCOPED_TRACE(weight);
    expect_binomial(passive, kRequests, weight / double{kPpmMax});
  }
}

TEST(Router, StickySplitThroughDecideIsAccurate) {
  constexpr std::size_t kUsers = 200'000;
  for (const std::uint32_t weight : {5'000u, 50'000u, 500'000u}) {
    Route route = make_route("api", "", "/", 0, 1, weight);
    route.sticky = {StickyConfig::Kind::cookie, "sessionid", std::nullopt};
    const RoutingSnapshot snapshot = make_snapshot({route});
    std::uint64_t passive = 0;
    for (std::size_t i = 0; i < kUsers; ++i) {
      const std::string cookie = "sessionid=user-" + std::to_string(i);
      RequestView request = make_request("h", "/");
      request.cookie_header = cookie;
      passive += decide(snapshot, request, std::nullopt, 0).slot == SlotName::passive;
    }
    SCOPED_TRACE(weight);
    expect_binomial(passive, kUsers, weight / double{kPpmMax});
  }
}

// The canary steps of a risky deploy: whoever is on passive stays there as the weight grows.
TEST(Router, StickyCohortsAreMonotoneAcrossWeightSteps) {
  constexpr std::size_t kUsers = 100'000;
  std::vector<std::string> ips;
  ips.reserve(kUsers);
  for (std::size_t i = 0; i < kUsers; ++i) {
    ips.push_back("10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                  std::to_string(i & 255));
  }
  std::vector<bool> before(kUsers, false);
  for (const std::uint32_t weight : {0u, 5'000u, 50'000u, 200'000u, 500'000u, kPpmMax}) {
    Route route = make_route("web", "", "/", 0, 1, weight);
    route.sticky = {StickyConfig::Kind::client_ip, "", std::nullopt};
    const RoutingSnapshot snapshot = make_snapshot({route});
    SplitMix64 random(weight);
    std::size_t passive = 0;
    for (std::size_t i = 0; i < kUsers; ++i) {
      RequestView request = make_request("h", "/");
      request.client_ip = ips[i];
      const bool on_passive =
          decide(snapshot, request, std::nullopt, random.next()).slot == SlotName::passive;
      ASSERT_TRUE(on_passive || !before[i]) << ips[i] << " left passive at weight " << weight;
      before[i] = on_passive;
      passive += on_passive;
    }
    if (weight == 0) {
      EXPECT_EQ(passive, 0u);
    } else if (weight == kPpmMax) {
      EXPECT_EQ(passive, kUsers);
    }
  }
}

TEST(Router, TwoRoutesSplitTheSameUserIndependently) {
  Route api = make_route("api", "", "/api/", 0, 1, 500'000);
  Route web = make_route("web", "", "/", 0, 1, 500'000);
  api.sticky = web.sticky = {StickyConfig::Kind::cookie, "sessionid", std::nullopt};
  const RoutingSnapshot snapshot = make_snapshot({api, web});
  constexpr std::size_t kUsers = 100'000;
  std::uint64_t same = 0;
  for (std::size_t i = 0; i < kUsers; ++i) {
    const std::string cookie = "sessionid=" + std::to_string(i);
    RequestView api_request = make_request("h", "/api/x");
    RequestView web_request = make_request("h", "/page");
    api_request.cookie_header = web_request.cookie_header = cookie;
    const Decision a = decide(snapshot, api_request, std::nullopt, 0);
    const Decision w = decide(snapshot, web_request, std::nullopt, 0);
    ASSERT_EQ(a.route, &snapshot.routes[0]);
    ASSERT_EQ(w.route, &snapshot.routes[1]);
    same += a.slot == w.slot;
  }
  // Independent halves agree half of the time; identical salts would agree every time.
  expect_binomial(same, kUsers, 0.5);
}

}  // namespace
}  // namespace proxyd
