// Active health checks: every server of a pool with a `health:` block gets an HTTP/1.1 GET of
// the block's path every interval, on a connection of its own (never a client's). `rise` passes in
// a row make it healthy, `fall` failures in a row unhealthy; the verdict goes into the server's
// shared state (ServerState::health), which the request path reads without waiting for anything.
// The checks of one pool are spread over its interval, so a thousand servers are not checked at
// once. It follows the published snapshot: servers added by a reload are checked, removed ones
// are not.
// Owner: Proxy. Thread: its own (one io_context), never a worker's; update(), records() and
// stop() may be called from any thread. Lifetime: start() once; stop() or the destructor ends
// every check and joins the thread.
#pragma once

#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "proxy/routing_snapshot.hpp"
#include "proxy/runtime_state.hpp"

namespace proxyd {

class HealthChecker {
 public:
  HealthChecker();
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void start();
  void stop();

  // Checks what `snapshot` asks for from now on: new servers of checked pools, servers whose
  // pool's health settings changed (their checks restart); no longer those gone or unchecked.
  void update(std::shared_ptr<const RoutingSnapshot> snapshot);

  // What status shows beyond the shared state: each checked server's last check.
  CheckRecords records() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The result of one check as status and the log say it: "200", "503", "timeout", "connect
// refused"; and whether it passed.
struct CheckResult {
  bool passed = false;
  std::string text;
  // Not run: proxyd could not open a socket for want of its own resources (descriptors, memory,
  // local ports). Neither a pass nor a failure: proxyd's shortage must not mark servers down.
  bool skipped = false;
};

// Whether `status` is one `expect` accepts.
bool status_expected(unsigned status, const std::vector<StatusRange>& expect);

// Reads the status code of a response head ("HTTP/1.1 503 Service Unavailable\r\n..."); nullopt
// when it is not an HTTP/1.x status line.
std::optional<unsigned> status_of(std::string_view head);

// The health a server moves to after `result`, given its passes and failures in a row (already
// counting this result), and `rise` and `fall`. Pure: the checker's transition rule.
Health next_health(Health current, int passes, int failures, int rise, int fall);

}  // namespace proxyd
