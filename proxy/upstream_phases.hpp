// The phases of a request that do not depend on the protocol the client speaks, shared by the
// HTTP/1.1 session (session.cpp) and the HTTP/2 one (h2_session.cpp): route, pick server, get
// connection (an idle one or a new one, TLS included), read response (the head) and its parse,
// and the sticky cookie a response gets. docs/architecture.md, "Life of a request", names them.
// Each takes the worker, the request's deadline and the pieces of the request it touches, so a
// session keeps its own per-request context. Data plane only (Asio and Beast inside).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "header_transform.hpp"
#include "http_head.hpp"
#include "local_reply.hpp"
#include "outcome.hpp"
#include "retry_policy.hpp"
#include "router.hpp"
#include "server_pick.hpp"
#include "worker.hpp"

namespace proxyd {

struct ClientTls;

// Counts a request in its server's in-flight number (least-request reads it) from the moment a
// server is picked until the request lets go of it.
class InFlight {
 public:
  InFlight() = default;
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() { track(nullptr); }

  void track(ServerState* state) {
    if (state_ != nullptr) state_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    state_ = state;
    if (state_ != nullptr) state_->in_flight.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  ServerState* state_ = nullptr;
};

// The upstream connection a request holds. While held, its socket is the request deadline's
// second socket (the sweep cancels it when the deadline passes). Dropped (reset or destruction):
// closed, its relay buffer kept by the worker; released: back to the idle cache for reuse.
class UpstreamLease {
 public:
  UpstreamLease(Worker& worker, Deadline& deadline) : worker_(worker), deadline_(deadline) {}
  UpstreamLease(const UpstreamLease&) = delete;
  UpstreamLease& operator=(const UpstreamLease&) = delete;
  ~UpstreamLease() { reset(); }

  void hold(std::unique_ptr<UpstreamConn> conn) {
    reset();
    conn_ = std::move(conn);
    deadline_.sockets[1] = &conn_->stream.socket();
    deadline_.tls[1] = conn_->stream.tls();  // a reused TLS connection's; a new one's is set later
  }
  bool held() const { return conn_ != nullptr; }
  UpstreamConn& conn() { return *conn_; }

  void reset() {
    if (!conn_) return;
    deadline_.sockets[1] = nullptr;
    deadline_.tls[1] = nullptr;
    worker_.upstreams().discard(std::move(conn_));
  }

  void release_for_reuse(std::uint32_t max_idle_per_server) {
    deadline_.sockets[1] = nullptr;
    deadline_.tls[1] = nullptr;
    ++conn_->requests;
    worker_.upstreams().put(std::move(conn_), worker_.now(), max_idle_per_server);
  }

 private:
  Worker& worker_;
  Deadline& deadline_;
  std::unique_ptr<UpstreamConn> conn_;
};

// What the route phase decided beyond the outcome's route, slot and pool: the sticky cookie a
// new member of the route's cohort gets with its response (sticky.set).
struct RouteResult {
  std::optional<LocalReason> refusal;
  bool set_cookie = false;
  std::array<char, 16> new_cookie{};
};

// Phase: route. One decision from the request's snapshot: route, slot, pool into `outcome` (and
// its metrics series, counted in flight from here until the outcome is finished).
RouteResult route_request(Worker& worker, const RoutingSnapshot& snapshot, const RequestView& view,
                          std::optional<SlotName> listener_slot, RequestOutcome& outcome);

// Phase: pick server. A server that takes traffic (enabled, healthy, not ejected) and was not
// tried yet; in a fail_open pool where none takes traffic, any enabled one.
std::optional<std::uint32_t> pick_upstream(Worker& worker, const Pool& pool, const TriedSet& tried);

// The local reply when no server can be picked for a request's first attempt.
LocalReason no_pick_reason(const Pool& pool);

// The local reply for an upstream attempt that failed and is not retried.
LocalReason failure_reason(AttemptEnd end);

// The retry loop's step after an attempt on the server at `index` ended `end` (the HTTP/1.1 and
// HTTP/2 sessions' loops, pick server .. read response): a server that could not be reached is
// never picked again for this request; the retry policy decides whether another attempt follows.
enum class AfterAttempt : std::uint8_t {
  answered,     // the response head is in
  client_gone,  // the client went away (or its body failed): not the server's failure
  retry,        // pick another server (or the same one, for a reused connection that closed)
  give_up,      // reply failure_reason(end)
};
inline AfterAttempt after_attempt(AttemptEnd end, std::uint32_t index, const RetryInput& retry,
                                  TriedSet& tried) {
  if (end == AttemptEnd::ok) return AfterAttempt::answered;
  if (end == AttemptEnd::client_gone) return AfterAttempt::client_gone;
  if (end == AttemptEnd::connect_failed || end == AttemptEnd::connect_timeout ||
      end == AttemptEnd::tls_failed)
    tried.add(index);
  return retry_allowed(retry) ? AfterAttempt::retry : AfterAttempt::give_up;
}

// The local reply when no server is left to pick: the last failure's, or why none could be
// picked for a first attempt.
inline LocalReason no_server_left(const Pool& pool, const RequestOutcome& outcome,
                                  AttemptEnd last) {
  return outcome.attempt_count > 0 ? failure_reason(last) : no_pick_reason(pool);
}

// The TLS client contexts of the request's pool, or null for a plain pool.
const ClientTls* pool_tls(const RoutingSnapshot& snapshot, const RequestOutcome& outcome);

// Phase: get connection. An idle connection to `server`, taken without a wait (no coroutine on
// the usual path): true and `record.reused` when there was one; the lease holds it.
bool take_idle(Worker& worker, UpstreamLease& lease, const Server& server, const ClientTls* tls,
               AttemptRecord& record);

// Phase: get connection (new): each of the server's addresses in turn, then the TLS handshake of
// a pool with `tls`, all within timeouts.upstream_connect. The lease holds it from here.
Task<AttemptEnd> connect_new(Worker& worker, Deadline& deadline, UpstreamLease& lease,
                             const Server& server, const ClientTls* tls, Duration connect_timeout,
                             RequestOutcome& outcome);

// Phase: read response (one head). EOF before a byte is `closed`: on a kept-alive connection, the
// server closed it while it idled. A line ending in a bare LF, obs-fold and a head over
// kMaxResponseHead (8 KiB) are refused at once. On `ok`,
// `header_len` is the head's length in conn.buffer.
Task<AttemptEnd> read_response_head(Worker& worker, Deadline& deadline, UpstreamConn& conn,
                                    Duration timeout, bool reused, RequestOutcome& outcome,
                                    std::size_t& header_len);

// The response head just read (`header_len` bytes of conn.buffer), parsed into `head`
// (parse_response) and checked by the framing policy into `plan`; `parser` becomes the body's
// chunk decoder, primed when the body is chunked.
bool parse_response_head(std::optional<HeadParser<false>>& parser, ResponseHead& head,
                         UpstreamConn& conn, std::size_t header_len, bool head_request,
                         ResponsePlan& plan);

// sticky.set: whether the upstream's response sets the route's sticky cookie itself (the
// application wins), and the `name=value; attributes` of the one proxyd sets otherwise.
bool response_sets_cookie(const ResponseHead& response, const Route& route);
std::string sticky_cookie(const Route& route, const std::array<char, 16>& value);

}  // namespace proxyd
