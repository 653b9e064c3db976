// Server pick: round-robin order and wrap, skipping servers that are not enabled or were already
// tried, and least-request (P2C) preferring the server with fewer in-flight requests.
#include "proxy/server_pick.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "proxy/split_policy.hpp"

namespace proxyd {
namespace {

void expect_binomial(std::uint64_t observed, std::uint64_t trials, double p) {
  const double mean = static_cast<double>(trials) * p;
  const double sd = std::sqrt(static_cast<double>(trials) * p * (1 - p));
  EXPECT_LE(std::fabs(static_cast<double>(observed) - mean), 5 * sd)
      << "observed " << observed << " of " << trials << ", expected about " << mean;
}

Pool make_pool(Balance balance, std::vector<ServerAdmin> admins) {
  Pool pool;
  pool.name = "blue";
  pool.balance = balance;
  for (std::size_t i = 0; i < admins.size(); ++i) {
    Server server;
    server.name = "127.0.0.1:" + std::to_string(9001 + i);
    server.admin = admins[i];
    server.state = std::make_shared<ServerState>();
    pool.servers.push_back(std::move(server));
  }
  return pool;
}

Pool make_pool(Balance balance, std::size_t size) {
  return make_pool(balance, std::vector<ServerAdmin>(size, ServerAdmin::enabled));
}

void set_in_flight(Pool& pool, std::vector<std::int64_t> counts) {
  for (std::size_t i = 0; i < counts.size(); ++i) pool.servers[i].state->in_flight = counts[i];
}

std::vector<std::uint32_t> picks(const Pool& pool, std::uint64_t& cursor, int count,
                                 const TriedSet& tried = {}) {
  std::vector<std::uint32_t> order;
  for (int i = 0; i < count; ++i) {
    const auto index = pick_server(pool, tried, cursor, 0);
    if (!index) break;
    order.push_back(*index);
  }
  return order;
}

using Order = std::vector<std::uint32_t>;

TEST(ServerPick, TriedSetIsExactForAnyIndexAndBounded) {
  TriedSet tried{3, 63, 64, 70'000};
  EXPECT_TRUE(tried.contains(3));
  EXPECT_TRUE(tried.contains(63));
  EXPECT_TRUE(tried.contains(64));
  EXPECT_TRUE(tried.contains(70'000));
  EXPECT_FALSE(tried.contains(0));
  EXPECT_EQ(tried.size(), kMaxAttempts);
  tried.add(5);  // full: the request has used all its attempts
  EXPECT_FALSE(tried.contains(5));
  TriedSet twice{7, 7};
  EXPECT_EQ(twice.size(), 1u);
}

// A pool larger than any bitmask: the servers tried are skipped wherever they are.
TEST(ServerPick, RoundRobinSkipsTriedServersBeyondIndex64) {
  const Pool pool = make_pool(Balance::round_robin, 70);
  std::uint64_t cursor = 65;
  EXPECT_EQ(pick_server(pool, TriedSet{65, 66}, cursor, 0), 67u);
  EXPECT_EQ(cursor, 68u);
}

TEST(ServerPick, RoundRobinVisitsServersInOrderAndWraps) {
  const Pool pool = make_pool(Balance::round_robin, 3);
  std::uint64_t cursor = 0;
  EXPECT_EQ(picks(pool, cursor, 7), (Order{0, 1, 2, 0, 1, 2, 0}));
}

TEST(ServerPick, RoundRobinStartsAtCursorModuloSize) {
  const Pool pool = make_pool(Balance::round_robin, 3);
  std::uint64_t cursor = 7;
  EXPECT_EQ(picks(pool, cursor, 3), (Order{1, 2, 0}));
  cursor = ~std::uint64_t{0};  // 2^64 - 1 is 0 modulo 3
  EXPECT_EQ(picks(pool, cursor, 2), (Order{0, 1}));
}

TEST(ServerPick, RoundRobinSkipsDisabledAndDrainingServers) {
  const Pool pool = make_pool(Balance::round_robin, {ServerAdmin::enabled, ServerAdmin::disabled,
                                                     ServerAdmin::enabled, ServerAdmin::draining});
  std::uint64_t cursor = 0;
  EXPECT_EQ(picks(pool, cursor, 5), (Order{0, 2, 0, 2, 0}));
}

TEST(ServerPick, RoundRobinGivesEnabledServersEqualShares) {
  const Pool pool = make_pool(Balance::round_robin, {ServerAdmin::enabled, ServerAdmin::disabled,
                                                     ServerAdmin::enabled, ServerAdmin::enabled});
  std::uint64_t cursor = 0;
  std::vector<int> counts(4, 0);
  for (const std::uint32_t index : picks(pool, cursor, 300)) ++counts[index];
  EXPECT_EQ(counts, (std::vector<int>{100, 0, 100, 100}));
}

TEST(ServerPick, RoundRobinSkipsTriedServers) {
  const Pool pool = make_pool(Balance::round_robin, 3);
  std::uint64_t cursor = 0;
  EXPECT_EQ(pick_server(pool, TriedSet{0}, cursor, 0), 1u);
  cursor = 1;
  EXPECT_EQ(pick_server(pool, TriedSet{1, 2}, cursor, 0), 0u);
}

TEST(ServerPick, NothingLeftGivesNullopt) {
  for (const Balance balance : {Balance::round_robin, Balance::least_request}) {
    std::uint64_t cursor = 0;
    EXPECT_EQ(pick_server(make_pool(balance, 0), {}, cursor, 0), std::nullopt);
    const Pool off = make_pool(balance, {ServerAdmin::disabled, ServerAdmin::draining});
    EXPECT_EQ(pick_server(off, {}, cursor, 0), std::nullopt);
    const Pool pool = make_pool(balance, 2);
    EXPECT_EQ(pick_server(pool, TriedSet{0, 1}, cursor, 0), std::nullopt);
    const Pool mixed = make_pool(balance, {ServerAdmin::disabled, ServerAdmin::enabled});
    EXPECT_EQ(pick_server(mixed, TriedSet{1}, cursor, 0), std::nullopt);
  }
}

TEST(ServerPick, LeastRequestPrefersFewerInFlight) {
  Pool pool = make_pool(Balance::least_request, 2);
  set_in_flight(pool, {5, 1});
  SplitMix64 random(1);
  std::uint64_t cursor = 0;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(pick_server(pool, {}, cursor, random.next()), 1u);
  set_in_flight(pool, {0, 1});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(pick_server(pool, {}, cursor, random.next()), 0u);
}

// With three servers, P2C never picks the busiest (it always loses its comparison) and picks the
// idlest whenever it is a candidate: two pairs in three.
TEST(ServerPick, LeastRequestNeverPicksTheBusiestOfThree) {
  Pool pool = make_pool(Balance::least_request, 3);
  set_in_flight(pool, {0, 5, 10});
  SplitMix64 random(2);
  std::uint64_t cursor = 0;
  constexpr int kPicks = 30'000;
  std::vector<std::uint64_t> counts(3, 0);
  for (int i = 0; i < kPicks; ++i) ++counts[*pick_server(pool, {}, cursor, random.next())];
  EXPECT_EQ(counts[2], 0u);
  expect_binomial(counts[0], kPicks, 2.0 / 3);
}

TEST(ServerPick, LeastRequestSpreadsEvenlyWhenIdle) {
  Pool pool = make_pool(Balance::least_request, 4);
  SplitMix64 random(3);
  std::uint64_t cursor = 0;
  constexpr int kPicks = 40'000;
  std::vector<std::uint64_t> counts(4, 0);
  for (int i = 0; i < kPicks; ++i) ++counts[*pick_server(pool, {}, cursor, random.next())];
  for (const std::uint64_t count : counts) expect_binomial(count, kPicks, 0.25);
}

TEST(ServerPick, LeastRequestSkipsIneligibleServersWhateverTheirLoad) {
  Pool pool = make_pool(Balance::least_request,
                        {ServerAdmin::disabled, ServerAdmin::enabled, ServerAdmin::draining,
                         ServerAdmin::enabled, ServerAdmin::enabled});
  set_in_flight(pool, {0, 9, 0, 7, 0});
  SplitMix64 random(4);
  std::uint64_t cursor = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto index = pick_server(pool, TriedSet{4}, cursor, random.next());
    ASSERT_EQ(index, 3u);  // 4 was tried, 0 and 2 are not enabled; 3 beats 1
  }
}

TEST(ServerPick, LeastRequestWithOneEligibleServerPicksIt) {
  Pool pool = make_pool(Balance::least_request, {ServerAdmin::disabled, ServerAdmin::enabled});
  set_in_flight(pool, {0, 1000});
  std::uint64_t cursor = 0;
  for (const std::uint64_t random : {std::uint64_t{0}, ~std::uint64_t{0}}) {
    EXPECT_EQ(pick_server(pool, {}, cursor, random), 1u);
  }
}

TEST(ServerPick, LeastRequestDoesNotMoveTheCursor) {
  const Pool pool = make_pool(Balance::least_request, 3);
  std::uint64_t cursor = 5;
  pick_server(pool, {}, cursor, 12345);
  EXPECT_EQ(cursor, 5u);
}

// Health: a server failing its active checks, or ejected by passive ones until a moment not yet
// reached, takes no traffic; PickFrom::enabled (fail_open) ignores both.
TEST(ServerPick, UnhealthyAndEjectedServersAreSkipped) {
  const Pool pool = make_pool(Balance::round_robin, 4);
  pool.servers[0].state->health = Health::unhealthy;
  pool.servers[1].state->health = Health::healthy;
  pool.servers[2].state->ejected_until = 500;
  std::uint64_t cursor = 0;
  Order order;
  for (int i = 0; i < 4; ++i) order.push_back(*pick_server(pool, {}, cursor, 0, 400));
  EXPECT_EQ(order, (Order{1, 3, 1, 3}));
  EXPECT_FALSE(takes_traffic(pool.servers[0], 400));
  EXPECT_FALSE(takes_traffic(pool.servers[2], 499));
  EXPECT_TRUE(takes_traffic(pool.servers[2], 500));  // the ejection is over
  EXPECT_TRUE(takes_traffic(pool.servers[3], 400));  // unchecked
}

TEST(ServerPick, LeastRequestSkipsUnhealthyServersWhateverTheirLoad) {
  Pool pool = make_pool(Balance::least_request, 3);
  set_in_flight(pool, {0, 0, 50});
  pool.servers[0].state->health = Health::unhealthy;
  pool.servers[1].state->ejected_until = 1000;
  std::uint64_t cursor = 0;
  for (const std::uint64_t random : {std::uint64_t{0}, std::uint64_t{1} << 40, ~std::uint64_t{0}})
    EXPECT_EQ(pick_server(pool, {}, cursor, random, 10), 2u);
}

TEST(ServerPick, NoServerTakesTrafficUnlessPickingFromEveryEnabledOne) {
  Pool pool = make_pool(Balance::round_robin,
                        {ServerAdmin::enabled, ServerAdmin::disabled, ServerAdmin::enabled});
  for (const Server& server : pool.servers) server.state->health = Health::unhealthy;
  std::uint64_t cursor = 0;
  EXPECT_EQ(pick_server(pool, {}, cursor, 0, 0), std::nullopt);
  EXPECT_EQ(pick_server(pool, {}, cursor, 0, 0, PickFrom::enabled), 0u);
  EXPECT_EQ(pick_server(pool, {}, cursor, 0, 0, PickFrom::enabled), 2u);
  EXPECT_EQ(pick_server(pool, TriedSet{0, 2}, cursor, 0, 0, PickFrom::enabled), std::nullopt);
}

}  // namespace
}  // namespace proxyd
