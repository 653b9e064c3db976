// Pure: whether a failed upstream attempt is tried again (Envoy's retry state and Pingora's
// `fail_to_proxy` decision, in one function). No I/O, so every rule is unit-tested.
#pragma once

#include <cstddef>

#include "proxy/outcome.hpp"
#include "proxy/server_pick.hpp"

namespace proxyd {

struct RetryInput {
  AttemptEnd end = AttemptEnd::ok;  // how the attempt that just failed ended
  bool reused = false;              // it ran on a kept-alive connection
  bool idempotent = false;          // the request's method is idempotent (RFC 9110 9.2.2)
  bool replayable = false;          // the whole request body is still in hand
  std::size_t attempts = 0;         // attempts made so far, the failed one included
};

// A connect (or its TLS handshake) that failed sent nothing: any request may go to another server. A kept-alive
// connection closed before a byte of the response may or may not have delivered the request, so
// only an idempotent request with its whole body in hand is sent again (a POST is never sent
// twice). Never after a timeout, a bad response, a reset mid-request or a body already streamed;
// never beyond kMaxAttempts.
constexpr bool retry_allowed(const RetryInput& in) {
  if (in.attempts >= kMaxAttempts) return false;
  switch (in.end) {
    case AttemptEnd::connect_failed:
    case AttemptEnd::connect_timeout:
    case AttemptEnd::tls_failed:  // the handshake failed: nothing of the request went out
      return true;
    case AttemptEnd::closed:
      return in.reused && in.idempotent && in.replayable;
    default:
      return false;
  }
}

}  // namespace proxyd
