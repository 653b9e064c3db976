// The retry policy: which failed attempts are tried again, and never more than kMaxAttempts.
#include "proxy/retry_policy.hpp"

#include <gtest/gtest.h>

namespace proxyd {
namespace {

RetryInput failed(AttemptEnd end) {
  RetryInput in;
  in.end = end;
  in.attempts = 1;
  return in;
}

TEST(RetryPolicy, AFailedConnectIsRetriedForAnyRequest) {
  // A failed TLS handshake with the server is part of the connect: nothing was sent either.
  for (AttemptEnd end :
       {AttemptEnd::connect_failed, AttemptEnd::connect_timeout, AttemptEnd::tls_failed}) {
    RetryInput in = failed(end);  // not idempotent, body not in hand: nothing was sent
    EXPECT_TRUE(retry_allowed(in)) << attempt_end_name(end);
  }
}

TEST(RetryPolicy, AKeptAliveConnectionClosedIsRetriedOnlyWhenSafe) {
  RetryInput in = failed(AttemptEnd::closed);
  in.reused = true;
  in.idempotent = true;
  in.replayable = true;
  EXPECT_TRUE(retry_allowed(in));
  RetryInput post = in;
  post.idempotent = false;
  EXPECT_FALSE(retry_allowed(post)) << "a POST is never sent twice";
  RetryInput streamed = in;
  streamed.replayable = false;
  EXPECT_FALSE(retry_allowed(streamed)) << "the body is gone";
  RetryInput fresh = in;
  fresh.reused = false;
  EXPECT_FALSE(retry_allowed(fresh)) << "a new connection closed: the server means it";
}

// no_socket: proxyd had no descriptor (memory, local port) for the connect; the next server
// would not get one either.
TEST(RetryPolicy, NoRetryAfterTheRequestMayHaveBeenProcessedOrWhenProxydHasNoSocket) {
  for (AttemptEnd end : {AttemptEnd::reset, AttemptEnd::timeout, AttemptEnd::bad_response,
                         AttemptEnd::client_gone, AttemptEnd::ok, AttemptEnd::no_socket}) {
    RetryInput in = failed(end);
    in.reused = in.idempotent = in.replayable = true;
    EXPECT_FALSE(retry_allowed(in)) << attempt_end_name(end);
  }
}

TEST(RetryPolicy, AttemptsAreBounded) {
  RetryInput in = failed(AttemptEnd::connect_failed);
  in.attempts = kMaxAttempts - 1;
  EXPECT_TRUE(retry_allowed(in));
  in.attempts = kMaxAttempts;
  EXPECT_FALSE(retry_allowed(in));
  EXPECT_EQ(kMaxAttempts, 4u);
}

}  // namespace
}  // namespace proxyd
