// Passive checks: which attempt ends count as a server's failure, the ejection after `failures`
// in a row, its doubling backoff up to max_ejection, the share of a pool that may be ejected, and
// what a success resets.
#include "proxy/passive_check.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace proxyd {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

Pool make_pool(std::size_t servers, int failures = 3) {
  Pool pool;
  pool.name = "blue";
  pool.passive.failures = failures;
  pool.passive.ejection = Duration(10'000);
  pool.passive.max_ejection = Duration(35'000);
  pool.passive.max_ejected_percent = 50;
  for (std::size_t i = 0; i < servers; ++i) {
    Server server;
    server.name = "127.0.0.1:" + std::to_string(9001 + i);
    server.state = std::make_shared<ServerState>();
    pool.servers.push_back(std::move(server));
  }
  return pool;
}

// A request that ended with one attempt on `server`.
RequestOutcome one_attempt(const Pool& pool, std::size_t server, AttemptEnd end,
                           unsigned status = 200) {
  RequestOutcome outcome;
  outcome.pool = &pool;
  outcome.server = &pool.servers[server];
  outcome.add_attempt({&pool.servers[server], false, end});
  if (end == AttemptEnd::ok) {
    outcome.status = status;
    outcome.end = RequestEnd::relayed;
  } else {
    outcome.status = 502;
    outcome.reason = LocalReason::upstream_unavailable;
    outcome.end = RequestEnd::local_reply;
  }
  return outcome;
}

const ServerState& state(const Pool& pool, std::size_t server) {
  return *pool.servers[server].state;
}

TEST(PassiveCheck, EjectsAfterFailuresInARowForTheFirstLength) {
  const Pool pool = make_pool(2);
  const std::int64_t now = 100 * kSecond;
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::connect_failed), now));
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), now));
  EXPECT_EQ(state(pool, 0).consecutive_failures.load(), 2u);
  const auto ejection = passive_check(one_attempt(pool, 0, AttemptEnd::timeout), now);
  ASSERT_TRUE(ejection);
  EXPECT_EQ(ejection->server, &pool.servers[0]);
  EXPECT_EQ(ejection->failures, 3u);
  EXPECT_EQ(ejection->length, Duration(10'000));
  EXPECT_EQ(state(pool, 0).ejected_until.load(), now + 10 * kSecond);
  EXPECT_EQ(state(pool, 0).ejections.load(), 1u);
  EXPECT_EQ(state(pool, 0).consecutive_failures.load(), 0u);
  EXPECT_EQ(ejection_text(*ejection),
            "pool blue server 127.0.0.1:9001 ejected for 10s after 3 failures in a row");
  EXPECT_EQ(state(pool, 1).ejected_until.load(), 0);
}

TEST(PassiveCheck, ASuccessBetweenFailuresStartsTheCountAgain) {
  const Pool pool = make_pool(2);
  passive_check(one_attempt(pool, 0, AttemptEnd::connect_timeout), kSecond);
  passive_check(one_attempt(pool, 0, AttemptEnd::bad_response), kSecond);
  passive_check(one_attempt(pool, 0, AttemptEnd::ok, 404), kSecond);  // a 4xx is an answer
  EXPECT_EQ(state(pool, 0).consecutive_failures.load(), 0u);
  passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond);
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_EQ(state(pool, 0).ejected_until.load(), 0);
}

TEST(PassiveCheck, A5xxRelayedIsAFailure) {
  const Pool pool = make_pool(2, 2);
  passive_check(one_attempt(pool, 1, AttemptEnd::ok, 503), kSecond);
  const auto ejection = passive_check(one_attempt(pool, 1, AttemptEnd::ok, 500), kSecond);
  ASSERT_TRUE(ejection);
  EXPECT_EQ(ejection->server, &pool.servers[1]);
}

TEST(PassiveCheck, ResponseTimeoutAndCutResponseAreFailures) {
  const Pool pool = make_pool(2, 2);
  RequestOutcome timed_out = one_attempt(pool, 0, AttemptEnd::ok);
  timed_out.reason = LocalReason::upstream_timeout;
  timed_out.status = 504;
  passive_check(timed_out, kSecond);
  RequestOutcome cut = one_attempt(pool, 0, AttemptEnd::ok);
  cut.end = RequestEnd::upstream_cut;
  EXPECT_TRUE(passive_check(cut, kSecond));
}

// A server whose TLS handshake fails (a certificate that does not verify) keeps failing every
// request: it is ejected like one that refuses connections.
TEST(PassiveCheck, AFailedTlsHandshakeIsAFailure) {
  const Pool pool = make_pool(2);
  const std::int64_t now = 100 * kSecond;
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::tls_failed), now));
  EXPECT_EQ(state(pool, 0).consecutive_failures.load(), 1u);
}

// Nor is proxyd's own shortage of descriptors (no_socket): with `failures: 1` it would eject.
TEST(PassiveCheck, AClosedIdleConnectionOrAClientThatLeftIsNobodysFailure) {
  const Pool pool = make_pool(2, 1);
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::closed), kSecond));
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::client_gone), kSecond));
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::no_socket), kSecond));
  EXPECT_EQ(state(pool, 0).consecutive_failures.load(), 0u);
}

TEST(PassiveCheck, EveryAttemptOfARetriedRequestCounts) {
  const Pool pool = make_pool(2, 1);
  RequestOutcome outcome;
  outcome.pool = &pool;
  outcome.add_attempt({&pool.servers[0], false, AttemptEnd::connect_failed});
  outcome.add_attempt({&pool.servers[1], false, AttemptEnd::ok});
  outcome.server = &pool.servers[1];
  outcome.status = 200;
  outcome.end = RequestEnd::relayed;
  pool.servers[1].state->consecutive_failures.store(1);
  const auto ejection = passive_check(outcome, kSecond);
  ASSERT_TRUE(ejection);
  EXPECT_EQ(ejection->server, &pool.servers[0]);
  EXPECT_EQ(state(pool, 1).consecutive_failures.load(), 0u);
}

TEST(PassiveCheck, EjectionDoublesWhileTheServerKeepsFailingUpToTheLongest) {
  const Pool pool = make_pool(2, 1);
  std::int64_t now = kSecond;
  std::vector<Duration> lengths;
  for (int i = 0; i < 4; ++i) {
    const auto ejection = passive_check(one_attempt(pool, 0, AttemptEnd::reset), now);
    ASSERT_TRUE(ejection) << i;
    lengths.push_back(ejection->length);
    now = state(pool, 0).ejected_until.load();  // its ejection is over: it fails again at once
  }
  EXPECT_EQ(lengths, (std::vector<Duration>{Duration(10'000), Duration(20'000), Duration(35'000),
                                            Duration(35'000)}));
  // A success once the ejection is over: the next one starts from the first length.
  passive_check(one_attempt(pool, 0, AttemptEnd::ok), now);
  EXPECT_EQ(state(pool, 0).ejections.load(), 0u);
  const auto again = passive_check(one_attempt(pool, 0, AttemptEnd::reset), now);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->length, Duration(10'000));
}

TEST(PassiveCheck, FailuresDuringAnEjectionDoNotExtendIt) {
  const Pool pool = make_pool(2, 1);
  ASSERT_TRUE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), 2 * kSecond));
  EXPECT_EQ(state(pool, 0).ejected_until.load(), 11 * kSecond);
}

TEST(PassiveCheck, NeverMoreThanTheSharePoolMayLose) {
  const Pool pool = make_pool(4, 1);  // 50% of 4: two at once
  EXPECT_TRUE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_TRUE(passive_check(one_attempt(pool, 1, AttemptEnd::reset), kSecond));
  EXPECT_FALSE(passive_check(one_attempt(pool, 2, AttemptEnd::reset), kSecond));
  EXPECT_EQ(state(pool, 2).ejected_until.load(), 0);
  // Once the first two are back, the third may go.
  EXPECT_TRUE(passive_check(one_attempt(pool, 2, AttemptEnd::reset), 20 * kSecond));
}

TEST(PassiveCheck, APoolOfOneIsNeverEjected) {
  const Pool pool = make_pool(1, 1);
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_EQ(state(pool, 0).ejected_until.load(), 0);
}

TEST(PassiveCheck, OffCountsNothing) {
  Pool pool = make_pool(2, 1);
  pool.passive.enabled = false;
  EXPECT_FALSE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_EQ(state(pool, 0).consecutive_failures.load(), 0u);
}

TEST(PassiveCheck, AnEjectedServerOfACheckedPoolIsAlsoUnhealthy) {
  Pool pool = make_pool(2, 1);
  pool.health.emplace();
  pool.servers[0].state->health = Health::healthy;
  ASSERT_TRUE(passive_check(one_attempt(pool, 0, AttemptEnd::reset), kSecond));
  EXPECT_EQ(state(pool, 0).health.load(), Health::unhealthy);
  Pool unchecked = make_pool(2, 1);
  ASSERT_TRUE(passive_check(one_attempt(unchecked, 0, AttemptEnd::reset), kSecond));
  EXPECT_EQ(state(unchecked, 0).health.load(), Health::unchecked);
}

TEST(PassiveCheck, ARequestThatNeverReachedAServerCountsNothing) {
  const Pool pool = make_pool(2, 1);
  RequestOutcome outcome;
  outcome.pool = &pool;
  outcome.reason = LocalReason::no_healthy_server;
  EXPECT_FALSE(passive_check(outcome, kSecond));
  RequestOutcome unrouted;
  EXPECT_FALSE(passive_check(unrouted, kSecond));
}

}  // namespace
}  // namespace proxyd
