// Passive health checks (outlier detection, after Envoy's): every finished request's outcome
// record says which servers failed it and which answered; a server that fails `failures` times
// in a row is ejected for a while, longer each time it keeps failing, never more than a set share
// of its pool at once. Pure over the outcome and the servers' shared state (atomics): the
// request path calls it once per request, without a lock.
#pragma once

#include <cstdint>
#include <string>

#include "proxy/outcome.hpp"

namespace proxyd {

// One ejection, for the log: which server, for how long, after how many failures.
struct Ejection {
  const Pool* pool = nullptr;
  const Server* server = nullptr;
  Duration length{0};
  std::uint32_t failures = 0;
};

// Counts the outcome's attempts against their servers at `now_ns` (steady clock, nanoseconds).
// Failures: a connect refused or timed out, a reset, a timeout, a malformed response, a response
// cut short, a 5xx. A kept-alive connection that the server had closed is not the server's
// failure, nor is a client that went away. Returns the ejection it made, if any (at most one:
// only the last attempt can both fail and be the one that answered).
// A server ejected from a checked pool is also marked unhealthy: its active checks bring it back
// once the ejection is over.
std::optional<Ejection> passive_check(const RequestOutcome& outcome, std::int64_t now_ns);

std::string ejection_text(const Ejection& ejection);  // for the log

}  // namespace proxyd
