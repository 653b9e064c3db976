// The protocol-independent phases of a request: see upstream_phases.hpp.
#include "upstream_phases.hpp"

#include <algorithm>

#include "local_resources.hpp"
#include "response_head.hpp"
#include "tls.hpp"

namespace proxyd {
namespace {

bool has_enabled_server(const Pool& pool) {
  return std::any_of(pool.servers.begin(), pool.servers.end(),
                     [](const Server& s) { return s.admin == ServerAdmin::enabled; });
}

// Phase: get connection (new), continued: the TLS handshake with the server of a pool with
// `tls`, within the same timeouts.upstream_connect. A certificate that fails verification (or
// any other handshake failure) is `tls_failed`: nothing was sent, another server may be tried.
Task<AttemptEnd> upstream_handshake(Deadline& deadline, UpstreamConn& conn, const ClientTls& tls,
                                    const Server& server) {
  SSL* ssl = tls.new_connection(server.name);
  if (ssl == nullptr) co_return AttemptEnd::tls_failed;
  conn.stream.start_tls(ssl);
  deadline.tls[1] = conn.stream.tls();  // the lease's connection: cancelled with its socket
  auto [ec] = co_await conn.stream.tls()->async_handshake(TlsStream::Role::client, use_task);
  if (!ec) co_return AttemptEnd::ok;
  if (deadline.fired) co_return AttemptEnd::connect_timeout;
  co_return AttemptEnd::tls_failed;
}

// Phase: get connection (new). Each of the server's addresses in turn, all within one
// timeouts.upstream_connect.
Task<AttemptEnd> connect(Worker& worker, Deadline& deadline, UpstreamConn& conn,
                         const Server& server, const ClientTls* tls, Duration connect_timeout,
                         RequestOutcome& outcome) {
  const Clock::time_point start = Clock::now();
  worker.arm(deadline, connect_timeout);
  const std::size_t count = 1 + server.fallback_addresses.size();
  for (std::size_t i = 0; i < count && !deadline.fired; ++i) {
    const ResolvedAddress& address = i == 0 ? server.address : server.fallback_addresses[i - 1];
    error_code ec;
    conn.stream.close();
    auto [connect_error] =
        co_await conn.stream.socket().async_connect(to_endpoint(address), use_task);
    if (out_of_local_resources(connect_error)) {
      worker.warn_out_of_resources(Worker::Shortage::upstream,
                                   "cannot open a socket to " + server.name + " (503 no_socket)",
                                   connect_error);
      co_return AttemptEnd::no_socket;
    }
    if (connect_error) continue;
    conn.stream.socket().set_option(tcp::no_delay(true), ec);
    conn.server = server.state;
    conn.address = address;
    if (tls != nullptr) {
      const AttemptEnd end = co_await upstream_handshake(deadline, conn, *tls, server);
      if (end != AttemptEnd::ok) co_return end;
    }
    outcome.upstream_connect = Clock::now() - start;
    co_return AttemptEnd::ok;
  }
  co_return deadline.fired ? AttemptEnd::connect_timeout : AttemptEnd::connect_failed;
}

}  // namespace

RouteResult route_request(Worker& worker, const RoutingSnapshot& snapshot, const RequestView& view,
                          std::optional<SlotName> listener_slot, RequestOutcome& outcome) {
  RouteResult result;
  const Decision decision = decide(snapshot, view, listener_slot, worker.random());
  if (decision.route == nullptr) {
    result.refusal = LocalReason::no_route;
    return result;
  }
  outcome.route = decision.route;
  outcome.slot = decision.slot;
  result.set_cookie = decision.set_cookie;
  result.new_cookie = decision.new_cookie;
  // The builder guarantees valid pool indexes; decide() leaves the pool null if one is not.
  if (decision.pool == nullptr) {
    result.refusal = LocalReason::no_server;
    return result;
  }
  outcome.pool = decision.pool;
  outcome.series = &worker.metrics().series(snapshot, *decision.route, decision.slot);
  outcome.series->in_flight.add(1);
  return result;
}

std::optional<std::uint32_t> pick_upstream(Worker& worker, const Pool& pool, const TriedSet& tried) {
  const std::int64_t now_ns = worker.now().time_since_epoch().count();
  std::uint64_t& cursor = worker.rr_cursor(pool);
  if (auto index = pick_server(pool, tried, cursor, worker.random(), now_ns)) return index;
  const bool none_takes_traffic =
      std::none_of(pool.servers.begin(), pool.servers.end(),
                   [&](const Server& s) { return takes_traffic(s, now_ns); });
  if (!pool.fail_open || !none_takes_traffic) return std::nullopt;
  return pick_server(pool, tried, cursor, worker.random(), now_ns, PickFrom::enabled);
}

LocalReason no_pick_reason(const Pool& pool) {
  return has_enabled_server(pool) ? LocalReason::no_healthy_server : LocalReason::no_server;
}

LocalReason failure_reason(AttemptEnd end) {
  switch (end) {
    case AttemptEnd::connect_failed:
    case AttemptEnd::connect_timeout:
      return LocalReason::upstream_unavailable;
    case AttemptEnd::timeout:
      return LocalReason::upstream_timeout;
    case AttemptEnd::tls_failed:
      return LocalReason::upstream_tls;
    case AttemptEnd::no_socket:
      return LocalReason::no_socket;
    default:
      return LocalReason::bad_upstream_response;
  }
}

const ClientTls* pool_tls(const RoutingSnapshot& snapshot, const RequestOutcome& outcome) {
  if (!outcome.pool || !snapshot.tls) return nullptr;
  return snapshot.tls->pool(outcome.pool->name);
}

bool take_idle(Worker& worker, UpstreamLease& lease, const Server& server, const ClientTls* tls,
               AttemptRecord& record) {
  std::unique_ptr<UpstreamConn> idle = worker.upstreams().take(server, tls != nullptr);
  if (!idle) return false;
  record.reused = true;
  lease.hold(std::move(idle));
  return true;
}

Task<AttemptEnd> connect_new(Worker& worker, Deadline& deadline, UpstreamLease& lease,
                             const Server& server, const ClientTls* tls, Duration connect_timeout,
                             RequestOutcome& outcome) {
  lease.hold(worker.upstreams().fresh(worker.executor()));
  co_return co_await connect(worker, deadline, lease.conn(), server, tls, connect_timeout, outcome);
}

// A read for a response head takes at most this much. A head is at most kMaxResponseHead, so a
// response of up to 16 KiB still comes in one read with its head; past that, the first read
// leaves the rest of the 64 KiB buffer untouched, and a spliced body (relay.hpp) never touches
// it: a buffer that served 1 MiB responses keeps 32 KiB resident, not 64.
constexpr std::size_t kHeadReadMax = 32 * 1024;

Task<AttemptEnd> read_response_head(Worker& worker, Deadline& deadline, UpstreamConn& conn,
                                    Duration timeout, bool reused, RequestOutcome& outcome,
                                    std::size_t& header_len) {
  // Watched by the sweep for a client that hangs up meanwhile (Deadline::head_wait_since).
  struct Waiting {
    Deadline& d;
    ~Waiting() { d.head_wait_since = Clock::time_point::max(); }
  } waiting{deadline};
  deadline.head_wait_since = worker.now();
  deadline.client_left = false;
  std::size_t scanned = 0;
  bool got_bytes = false;
  for (;;) {
    ByteBuffer& up = conn.buffer;
    if (!up.empty()) {
      if (!outcome.first_byte) outcome.first_byte = Clock::now() - outcome.started;
      const HeadScan scan = scan_head(up.view(), scanned);
      if (scan.state == HeadScan::State::complete) {
        header_len = scan.length;
        co_return header_len <= kMaxResponseHead ? AttemptEnd::ok : AttemptEnd::bad_response;
      }
      // Bare LF, obs-fold (RFC 9112 5.2 lets a proxy answer 502 instead of unfolding), a head
      // that did not end within the limit.
      if (scan.state == HeadScan::State::bare_lf || scan.state == HeadScan::State::obs_fold ||
          up.size() > kMaxResponseHead)
        co_return AttemptEnd::bad_response;
      up.compact();
    }
    worker.arm(deadline, timeout);
    // Lent a buffer while waiting only within UpstreamCache::read_some's bound.
    auto [ec, n] = co_await worker.upstreams().read_some(conn, kHeadReadMax);
    if (ec) {
      if (deadline.client_left) co_return AttemptEnd::client_gone;
      if (deadline.fired) co_return AttemptEnd::timeout;
      if (got_bytes || !up.empty()) co_return AttemptEnd::bad_response;
      co_return reused ? AttemptEnd::closed : AttemptEnd::reset;
    }
    got_bytes = true;
    up.commit(n);
  }
}

bool parse_response_head(std::optional<HeadParser<false>>& parser, ResponseHead& head,
                         UpstreamConn& conn, std::size_t header_len, bool head_request,
                         ResponsePlan& plan) {
  ResponseFraming framing;
  HeadParser<false>& body = parser.emplace(HeadParser<false>::BodyOnly{});
  if (!parse_response(std::string_view(conn.buffer.data(), header_len), head, framing) ||
      !check_response(head, framing.length, framing.chunked, head_request, plan))
    return false;
  if (plan.framing == BodyFraming::chunked) body.prime_chunked();
  return true;
}

bool response_sets_cookie(const ResponseHead& response, const Route& route) {
  for (const HeadField& f : response.fields) {
    if (iequals(f.name, "set-cookie") && f.value.starts_with(route.sticky.name) &&
        f.value.substr(route.sticky.name.size()).starts_with('='))
      return true;
  }
  return false;
}

std::string sticky_cookie(const Route& route, const std::array<char, 16>& value) {
  std::string out = route.sticky.name + "=";
  out.append(value.data(), value.size());
  out += route.set_cookie_attributes;
  return out;
}

}  // namespace proxyd
