// One client connection, as C++20 coroutines on its worker's thread. handle_request() sequences
// the phases of a request in the names of docs/architecture.md ("Life of a request"); each phase
// is one function. Every wait is preceded by arming the session's deadline with the named timeout
// that applies to it, every failure maps to one local reply, and every request ends in exactly
// one outcome record (outcome.hpp), finished by a guard whichever way the request ends.
#include "session.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <span>

#include "header_transform.hpp"
#include "http_head.hpp"
#include "local_reply.hpp"
#include "outcome.hpp"
#include "relay.hpp"
#include "retry_policy.hpp"
#include "router.hpp"
#include "server_pick.hpp"
#include "tls.hpp"
#include "upstream_phases.hpp"
#include "h2_session.hpp"
#include "worker.hpp"

namespace proxyd {
namespace {

using namespace net::experimental::awaitable_operators;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Interim (1xx) responses relayed before the final one; past this, the upstream gets a 502.
// Real servers send one or two (100 Continue, 103 Early Hints).
constexpr int kMaxInterimResponses = 16;

std::optional<std::string_view> find_request_header(const void* ctx, std::string_view name) {
  for (const HeadField& f : static_cast<const RequestHead*>(ctx)->fields)
    if (iequals(f.name, name)) return f.value;
  return std::nullopt;
}

// A tunnel while it is open: its server's count of tunnels (proxyctl status) and the session
// deadline's tunnel fields (Worker::check_tunnel).
class TunnelOpen {
 public:
  TunnelOpen(Deadline& deadline, const Route* route, const Pool* pool, ServerState* server)
      : deadline_(deadline), server_(server) {
    deadline_.tunnel_route = route;
    deadline_.tunnel_pool = pool;
    deadline_.tunnel_checked = 0;
    if (server_ != nullptr) server_->tunnels.fetch_add(1, std::memory_order_relaxed);
  }
  ~TunnelOpen() {
    deadline_.tunnel_route = nullptr;
    deadline_.tunnel_pool = nullptr;
    deadline_.drain_at = Clock::time_point::max();
    if (server_ != nullptr) server_->tunnels.fetch_sub(1, std::memory_order_relaxed);
  }
  TunnelOpen(const TunnelOpen&) = delete;
  TunnelOpen& operator=(const TunnelOpen&) = delete;

 private:
  Deadline& deadline_;
  ServerState* server_;
};

// Everything one request owns, built fresh when its head is complete and dropped when it ends.
// The snapshot is loaded once, here: every phase of the request reads this one. Owner: the
// Session (context_); worker thread only.
struct RequestContext {
  RequestContext(Worker& worker, Deadline& deadline, RequestHead& head)
      : snapshot(worker.snapshot()),
        config(*snapshot->config),
        parser(head),
        lease(worker, deadline) {
    outcome.started = Clock::now();
  }

  std::shared_ptr<const RoutingSnapshot> snapshot;
  const Config& config;
  RequestOutcome outcome;

  HeadParser<true> parser;  // parses the head, then decodes a chunked body
  RequestPlan plan;
  bool head_request = false;
  unsigned client_version = 11;
  bool idempotent = false;
  std::size_t buffered_body = 0;  // body bytes already received, written with the head
  bool replayable = false;        // the whole body is buffered: it can be sent again
  bool sent_continue = false;
  std::optional<LocalReason> client_error;  // why the client's side failed during an attempt

  TriedSet tried;  // servers whose connect failed
  InFlight in_flight;
  UpstreamLease lease;

  std::optional<HeadParser<false>> response_parser;
  ResponsePlan response_plan;
  std::size_t response_header_len = 0;
  // The route's sticky cookie this client gets with the response (sticky.set), if it had none.
  std::array<char, 16> new_cookie{};
  bool set_cookie = false;
};

// What the upstream phases tell handle_request: a final response head to relay, a local reply
// to make, or a client that is gone (close without a word).
struct Forwarded {
  enum class Kind : std::uint8_t { response, reply, gone };
  Kind kind = Kind::response;
  LocalReason reason = LocalReason::bad_upstream_response;

  static Forwarded reply(LocalReason reason) { return {Kind::reply, reason}; }
  static Forwarded gone() { return {Kind::gone}; }
};

// How the read header phase ended.
struct HeadRead {
  enum class State : std::uint8_t { complete, closed, refused };
  State state = State::closed;
  std::size_t length = 0;             // complete: the head's bytes
  LocalReason refusal = LocalReason::bad_request;  // refused: the reply to make

  static HeadRead complete_head(std::size_t length) { return {State::complete, length}; }
  static HeadRead closed_silently() { return {State::closed}; }
  static HeadRead refused_with(LocalReason reason) { return {State::refused, 0, reason}; }
};

// Why a client's handshake failed, from OpenSSL's reason (a plaintext request, a version or
// cipher in common missing) or the way the connection ended.
TlsFailure tls_failure(const error_code& ec, bool deadline_fired) {
  if (deadline_fired) return TlsFailure::timeout;
  if (ec == net::error::eof || ec == net::ssl::error::stream_truncated ||
      ec == net::error::connection_reset)
    return TlsFailure::closed;
  if (ec.category() != net::error::get_ssl_category()) return TlsFailure::malformed;
  switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      return TlsFailure::plain_http;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
      return TlsFailure::protocol_version;
    case SSL_R_NO_SHARED_CIPHER:
      return TlsFailure::no_shared_cipher;
    default:
      return TlsFailure::malformed;
  }
}

// One client connection. Owner: the coroutine frame of run_session(). Thread: its worker's, only.
// Lifetime: from the accept until the connection closes; at most one request in progress at a
// time (context_), so per-request state never outlives its request.
class Session {
 public:
  Session(Worker& worker, Socket socket, const tcp::endpoint& peer, ListenerRuntime listener)
      : worker_(worker),
        client_(std::move(socket)),
        listener_(std::move(listener)),
        in_(client_buffer_size(*worker.snapshot()->config)),
        pump_(worker, deadline_) {
    deadline_.sockets[0] = &client_.socket();
    worker_.link(deadline_);
    worker_.metrics().connections(listener_.index).add(1);
    client_ip_ = peer.address().to_string();
    client_address_ = client_ip_ + ":" + std::to_string(peer.port());
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    worker_.metrics().connections(listener_.index).add(-1);
    worker_.connection_closed();
    worker_.unlink(deadline_);
  }

  Task<void> run();

 private:
  static std::size_t client_buffer_size(const Config& config) {
    return std::max<std::size_t>(config.limits.max_header_bytes + 1024, 32 * 1024);
  }

  // The phases, in the order of a request's life.
  Task<HeadRead> read_request_head(bool first);                           // read header
  Task<bool> handle_request(const HeadRead& head);                        // the sequence
  std::optional<LocalReason> check(RequestContext& ctx, std::size_t header_len);  // check
  std::optional<LocalReason> route(RequestContext& ctx);                  // route
  void prepare_upstream_request(RequestContext& ctx, std::size_t header_len);
  Task<Forwarded> proxy_to_upstream(RequestContext& ctx);                 // pick .. read response
  Task<AttemptEnd> attempt(RequestContext& ctx, const Server& server);    // one server, once
  Task<AttemptEnd> relay_request_body(RequestContext& ctx);               // relay body
  Task<Forwarded> read_final_response(RequestContext& ctx);               // ... past any 1xx
  bool parse_response_head(RequestContext& ctx) {
    return proxyd::parse_response_head(ctx.response_parser, response_, ctx.lease.conn(),
                                       ctx.response_header_len, ctx.head_request,
                                       ctx.response_plan);
  }
  Task<bool> relay_response(RequestContext& ctx);
  // sticky.set: the new member's cookie goes into the client head, unless the upstream sets a
  // cookie of that name itself (the application wins).
  void add_sticky_cookie(const RequestContext& ctx);                         // relay
  Task<bool> tunnel(RequestContext& ctx);                                 // relay, after a 101
  void finish(RequestContext& ctx);                                       // log

  // Helpers.
  Task<bool> reply(RequestContext& ctx, LocalReason reason, bool keep_alive = false);
  Task<bool> write_client(std::span<const net::const_buffer> buffers);
  Task<void> linger();
  Task<bool> handshake();                                                 // TLS handshake
  // What the client speaks: ALPN's choice on TLS; on a plaintext listener with `http2: true`,
  // what its first bytes say (sniff_preface); HTTP/1.1 otherwise. Nothing when it left first.
  enum class Protocol : std::uint8_t { http1, h2, none };
  Task<Protocol> client_protocol();
  Task<Protocol> sniff_preface();
  bool negotiated_h2() {
    const unsigned char* protocol = nullptr;
    unsigned length = 0;
    SSL_get0_alpn_selected(client_.tls()->native_handle(), &protocol, &length);
    return length == 2 && std::memcmp(protocol, "h2", 2) == 0;
  }
  Task<void> close_notify();
  Task<void> pipe(Stream& from, Stream& to, ByteBuffer& buffer, std::uint64_t& moved);

  Worker& worker_;
  Stream client_;
  // A TLS listener's contexts as of the accept: held until the handshake is done with them.
  std::shared_ptr<const ServerTls> server_tls_;
  std::string_view tls_version_;  // OpenSSL's static names, for the access log
  std::string_view tls_cipher_;
  bool close_notify_sent_ = false;
  ListenerRuntime listener_;
  ByteBuffer in_;  // bytes from the client: request heads, then body bytes
  RequestHead request_;    // views into in_, valid until the head is consumed
  ResponseHead response_;  // views into the upstream connection's buffer
  Deadline deadline_;
  BodyPump pump_;
  std::string upstream_head_;  // the request head sent upstream (kept for a retry)
  std::string client_head_;    // the response head sent to the client
  std::string client_ip_;
  std::string client_address_;
  std::string log_method_;  // copies for the access log, which outlives the head's bytes
  std::string log_target_;
  bool linger_on_close_ = false;  // a local reply closes the connection: drain what follows
  std::optional<RequestContext> context_;  // the request in progress (handle_request)
  // Set by sniff_preface: the first request head's deadline (from the accept), and whether the
  // HTTP/2 preface was taken off the socket.
  std::optional<Clock::time_point> first_head_deadline_;
  bool preface_read_ = false;
};

Task<void> Session::run() {
  if (!listener_.config->tls || co_await handshake()) {
    const Protocol protocol = co_await client_protocol();
    if (protocol == Protocol::h2) {
      co_await run_h2_session(worker_, client_, deadline_,
                              H2Client{listener_.name, listener_.index, listener_.config->slot,
                                       listener_.config->tls.has_value(), client_ip_,
                                       client_address_, tls_version_, tls_cipher_,
                                       listener_.config->http2_limits, preface_read_});
    }
    for (bool first = true; protocol == Protocol::http1; first = false) {
      const HeadRead head = co_await read_request_head(first);
      if (head.state == HeadRead::State::closed) break;
      // Draining, a response said Connection: close, unless the drain began after it went
      // out: then the next request (within the grace) is read and answered with it.
      if (!co_await handle_request(head)) break;
    }
    if (linger_on_close_) co_await linger();
    co_await close_notify();
  }
  error_code ec;
  client_.socket().shutdown(tcp::socket::shutdown_both, ec);
  deadline_.tls[0] = nullptr;
  client_.close();
}

Task<Session::Protocol> Session::client_protocol() {
  if (client_.tls() != nullptr) co_return negotiated_h2() ? Protocol::h2 : Protocol::http1;
  if (!listener_.config->speaks_h2()) co_return Protocol::http1;
  co_return co_await sniff_preface();
}

// A plaintext listener with `http2: true` serves HTTP/2 by prior knowledge and HTTP/1.1 on the
// same port, told apart by the first bytes as nginx and HAProxy do: a connection that begins
// with HTTP/2's client preface (RFC 9113 3.4) is h2c, any other HTTP/1.1 (no request line
// begins "PRI * HTTP/2.0"; most differ at the first byte). The first bytes are peeked
// (MSG_PEEK), so the usual ones decide at once and stay for the chosen protocol to read. A piece
// of the preface is taken off the socket instead: bytes left there would end every wait for more
// at once (the reactor re-arms a readable socket), and the rest is waited for. The pieces taken
// go to the chosen protocol: HTTP/1.1's buffer, or nghttp2 told the preface was read. The client
// has client_header from the accept for its first request head, sniffing included; one that
// leaves or stays silent is closed without a word, as an idle one.
Task<Session::Protocol> Session::sniff_preface() {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::array<char, kPreface.size()> bytes{};
  std::size_t taken = 0;  // bytes of a piece of the preface, taken off the socket
  const Clock::time_point now = worker_.now();
  first_head_deadline_ = now + worker_.snapshot()->config->timeouts.client_header;
  deadline_.idle = true;
  worker_.arm_until(deadline_, worker_.draining()
                                   ? std::min(*first_head_deadline_, now + kDrainIdleGrace)
                                   : *first_head_deadline_);
  const int fd = client_.socket().native_handle();
  for (;;) {
    const ssize_t n =
        taken == 0
            ? ::recv(fd, bytes.data(), bytes.size(), MSG_PEEK | MSG_DONTWAIT)
            : ::recv(fd, bytes.data() + taken, bytes.size() - taken, MSG_DONTWAIT);
    if (n > 0) {
      const std::size_t seen = taken + static_cast<std::size_t>(n);
      const std::string_view got(bytes.data(), seen);
      const bool h2 = got == kPreface;
      if (h2 || !kPreface.starts_with(got)) {
        if (taken > 0) taken = seen;  // this read took its bytes too
        deadline_.idle = false;
        read_at_once(client_.socket());  // bytes may be left for the first read
        if (h2) {
          preface_read_ = taken > 0;
          co_return Protocol::h2;
        }
        std::memcpy(in_.write_ptr(), bytes.data(), taken);
        in_.commit(taken);
        co_return Protocol::http1;
      }
      if (taken == 0) {  // the bytes peeked, taken now
        const ssize_t took = ::recv(fd, bytes.data(), static_cast<std::size_t>(n), MSG_DONTWAIT);
        if (took <= 0) co_return Protocol::none;
        taken = static_cast<std::size_t>(took);
      } else {
        taken = seen;
      }
      deadline_.idle = false;  // a request of some kind is on its way
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      co_return Protocol::none;
    }
    if (n < 0 && errno == EINTR) continue;
    auto [ec] = co_await client_.socket().async_wait(Socket::wait_read, use_task);
    if (ec) co_return Protocol::none;
    if (deadline_.closed_for_room) worker_.survived_room_close(deadline_);
  }
}

// Phase: TLS handshake (a TLS listener's connections only), with the contexts of the snapshot
// current at the accept, within timeouts.tls_handshake from the accept. A client that stalls,
// sends plaintext or garbage, or offers nothing in common is counted by reason and closed; the
// handshake is asynchronous like every other wait, so it never holds up the worker.
Task<bool> Session::handshake() {
  struct Ended {
    Worker& worker;
    ~Ended() { worker.handshake_ended(); }
  } ended{worker_};  // the accept loop counted this connection in
  const RoutingSnapshot& snapshot = *worker_.snapshot();
  TlsCounts& counts = worker_.metrics().tls(listener_.index);
  if (snapshot.tls) server_tls_ = snapshot.tls->listeners[listener_.index];
  SSL* ssl = server_tls_ ? server_tls_->new_connection() : nullptr;
  if (ssl == nullptr) {
    counts.failures[static_cast<std::size_t>(TlsFailure::malformed)].add(1);
    co_return false;
  }
  client_.start_tls(ssl);
  deadline_.tls[0] = client_.tls();
  worker_.arm(deadline_, snapshot.config->timeouts.tls_handshake);
  auto [ec] = co_await client_.tls()->async_handshake(TlsStream::Role::server, use_task);
  server_tls_.reset();  // the SSL object holds the context it ended on
  if (ec) {
    counts.failures[static_cast<std::size_t>(tls_failure(ec, deadline_.fired))].add(1);
    close_notify_sent_ = true;  // nothing to say goodbye to
    co_return false;
  }
  counts.handshakes.add(1);
  tls_version_ = SSL_get_version(ssl);
  tls_cipher_ = SSL_get_cipher_name(ssl);
  co_return true;
}

// A TLS connection's close_notify, sent without waiting for the client's (as nginx does): the
// client can tell a complete response from a cut one.
Task<void> Session::close_notify() {
  if (client_.tls() == nullptr || close_notify_sent_) co_return;
  close_notify_sent_ = true;
  SSL_set_shutdown(client_.tls()->native_handle(), SSL_RECEIVED_SHUTDOWN);
  worker_.arm(deadline_, std::chrono::milliseconds(1000));
  co_await client_.tls()->async_shutdown(use_task);
}

// Phase: read header. Reads until the end of the header block is in the buffer. The header's
// deadline runs from its first byte (from the accept for a connection's first request) and is not
// moved by the bytes that follow, so a client sending a line now and then (slowloris) gets its
// 408 on time; between requests the connection may idle for client_idle.
Task<HeadRead> Session::read_request_head(bool first) {
  // Limits and timeouts for the wait come from the newest snapshot; the request loads it again
  // once its head is here, so a change made while this connection idled applies to it.
  const Config& config = *worker_.snapshot()->config;
  const std::size_t max_header = config.limits.max_header_bytes;
  std::optional<Clock::time_point> header_deadline;
  if (first)
    header_deadline = first_head_deadline_.value_or(worker_.now() + config.timeouts.client_header);
  std::size_t scanned = 0;
  for (;;) {
    // Empty lines before a request line are tolerated (RFC 9112 2.2).
    while (in_.size() >= 2 && in_.data()[0] == '\r' && in_.data()[1] == '\n') {
      in_.consume(2);
      scanned = 0;
    }
    if (!in_.empty()) {
      if (!header_deadline) header_deadline = worker_.now() + config.timeouts.client_header;
      const HeadScan scan = scan_head(in_.view(), scanned);
      if (scan.state == HeadScan::State::bare_lf || scan.state == HeadScan::State::obs_fold)
        co_return HeadRead::refused_with(LocalReason::bad_request);
      if (scan.state == HeadScan::State::complete) {
        if (scan.length > max_header) co_return HeadRead::refused_with(LocalReason::header_too_large);
        co_return HeadRead::complete_head(scan.length);
      }
      if (in_.size() >= max_header) co_return HeadRead::refused_with(LocalReason::header_too_large);
    }
    if (in_.writable() == 0) in_.compact();

    const bool idle = in_.empty();
    deadline_.idle = idle;
    if (!idle) client_.read_next_at_once();  // the rest of a head begun (read_readiness.hpp)
    if (idle && worker_.draining()) {
      // One more request may be on its way; it gets an answer with Connection: close.
      worker_.arm(deadline_, std::min<std::chrono::milliseconds>(
                                 kDrainIdleGrace, first ? config.timeouts.client_header
                                                        : config.timeouts.client_idle));
    } else if (idle && !first) {
      worker_.arm(deadline_, config.timeouts.client_idle);
    } else {
      worker_.arm_until(deadline_, *header_deadline);
    }
    auto [ec, n] = co_await client_.async_read_some_tracked(
        net::buffer(in_.write_ptr(), in_.writable()), use_task);
    deadline_.idle = false;
    if (!ec && deadline_.closed_for_room) worker_.survived_room_close(deadline_);
    if (ec) {
      // A header begun and not finished in time gets its 408; EOF, a reset, an idle timeout or
      // a drain close the connection without a word.
      if (deadline_.fired && !idle) co_return HeadRead::refused_with(LocalReason::client_header_timeout);
      co_return HeadRead::closed_silently();
    }
    in_.commit(n);
  }
}

// The phases of one request: check -> route -> (pick server -> get connection -> write header ->
// relay body -> read response, per attempt) -> relay -> log. Returns whether the client
// connection stays open.
Task<bool> Session::handle_request(const HeadRead& head) {
  // The context lives in the session, not in this coroutine's frame: its parsers are several KiB,
  // and a frame that large is allocated afresh for every request (Asio recycles small ones).
  RequestContext& ctx = context_.emplace(worker_, deadline_, request_);
  struct FinishOnExit {
    Session& session;
    ~FinishOnExit() {
      session.finish(*session.context_);
      session.context_.reset();
    }
  } finish_on_exit{*this};
  ctx.outcome.listener = listener_.name;
  ctx.outcome.client = client_address_;
  ctx.outcome.tls_version = tls_version_;
  ctx.outcome.tls_cipher = tls_cipher_;

  if (head.state == HeadRead::State::refused) co_return co_await reply(ctx, head.refusal);
  if (auto refusal = check(ctx, head.length)) co_return co_await reply(ctx, *refusal);
  if (auto refusal = route(ctx)) {
    // Without a body to skip, the connection can serve the next request.
    const bool keep = ctx.plan.framing == BodyFraming::none && ctx.plan.keep_alive &&
                      *refusal == LocalReason::no_route;
    in_.consume(head.length);
    co_return co_await reply(ctx, *refusal, keep);
  }
  prepare_upstream_request(ctx, head.length);

  const Forwarded forwarded = co_await proxy_to_upstream(ctx);
  if (forwarded.kind == Forwarded::Kind::gone) {
    ctx.outcome.end = RequestEnd::client_gone;
    co_return false;
  }
  if (forwarded.kind == Forwarded::Kind::reply) co_return co_await reply(ctx, forwarded.reason);
  if (response_.status == 101) co_return co_await tunnel(ctx);
  co_return co_await relay_response(ctx);
}

// Phase: check. Syntax by Beast, intermediary policy by check_request() (header_transform.hpp).
std::optional<LocalReason> Session::check(RequestContext& ctx, std::size_t header_len) {
  HeadParser<true>& parser = ctx.parser;
  parser.header_limit(static_cast<std::uint32_t>(header_len + 1));
  parser.body_limit(ctx.config.limits.max_body_bytes);
  error_code ec;
  parser.put(net::buffer(in_.data(), header_len), ec);
  if (ec == http::error::body_limit) return LocalReason::body_too_large;
  if (ec || !parser.is_header_done()) return LocalReason::bad_request;
  if (worker_.logging()) {
    log_method_.assign(request_.method_text);
    log_target_.assign(request_.target);
    ctx.outcome.method = log_method_;
    ctx.outcome.target = log_target_;
  }
  if (auto reason = check_request(request_, ctx.config.limits.max_body_bytes, ctx.plan))
    return reason;
  ctx.head_request = request_.method == http::verb::head;
  ctx.client_version = request_.version;
  if (request_.version == 10) ctx.outcome.protocol = ClientProtocol::http1_0;
  ctx.idempotent = is_idempotent(request_.method);
  return std::nullopt;
}

// Phase: route. One decision from the request's snapshot: route, slot, pool.
std::optional<LocalReason> Session::route(RequestContext& ctx) {
  RequestView view;
  view.host = ctx.plan.host;
  view.path = ctx.plan.target;
  view.cookie_header = ctx.plan.cookie;
  view.client_ip = client_ip_;
  view.header = &find_request_header;
  view.header_ctx = &request_;
  const RouteResult result =
      route_request(worker_, *ctx.snapshot, view, listener_.config->slot, ctx.outcome);
  ctx.set_cookie = result.set_cookie;
  ctx.new_cookie = result.new_cookie;
  return result.refusal;
}

// The head for the upstream, serialized once (a retry sends the same bytes), and how much of the
// body is already here: a request whose whole body is buffered can be sent again.
void Session::prepare_upstream_request(RequestContext& ctx, std::size_t header_len) {
  std::string local;  // only for an HTTP/1.0 request without Host (rare): one getsockname
  if (ctx.plan.host.empty()) {
    error_code ec;
    const tcp::endpoint here = client_.socket().local_endpoint(ec);
    if (!ec) {
      const std::string ip = here.address().to_string();
      local = (here.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(here.port());
    }
  }
  write_upstream_request(request_, ctx.plan,
                         ForwardInfo{client_ip_, listener_.config->tls.has_value(), local},
                         upstream_head_);
  in_.consume(header_len);  // request_'s views are dead from here on
  const RequestPlan& plan = ctx.plan;
  if (plan.framing == BodyFraming::length)
    ctx.buffered_body =
        static_cast<std::size_t>(std::min<std::uint64_t>(in_.size(), plan.length));
  ctx.replayable = plan.framing == BodyFraming::none ||
                   (plan.framing == BodyFraming::length && ctx.buffered_body == plan.length);
}

// Phases pick server -> get connection -> write header -> relay body -> read response, tried on
// one server after another as the retry policy allows; then the interim responses.
Task<Forwarded> Session::proxy_to_upstream(RequestContext& ctx) {
  const Pool& pool = *ctx.outcome.pool;
  AttemptEnd last = AttemptEnd::ok;
  for (;;) {
    // Phase: pick server.
    const std::optional<std::uint32_t> index = pick_upstream(worker_, pool, ctx.tried);
    if (!index) co_return Forwarded::reply(no_server_left(pool, ctx.outcome, last));
    const Server& server = pool.servers[*index];
    last = co_await attempt(ctx, server);
    const AttemptRecord& record = ctx.outcome.attempts[ctx.outcome.attempt_count - 1];
    const AfterAttempt next = after_attempt(
        last, *index,
        RetryInput{last, record.reused, ctx.idempotent, ctx.replayable, ctx.outcome.attempt_count},
        ctx.tried);
    if (next == AfterAttempt::answered) break;
    if (next == AfterAttempt::client_gone) {
      if (ctx.client_error) co_return Forwarded::reply(*ctx.client_error);
      co_return Forwarded::gone();
    }
    if (next == AfterAttempt::give_up) co_return Forwarded::reply(failure_reason(last));
  }
  // The buffered body went out with the head of the attempt that answered.
  if (ctx.replayable) {
    in_.consume(ctx.buffered_body);
    ctx.outcome.bytes_in = ctx.buffered_body;
  }
  // The usual response has no interim one before it: parsed here, without another coroutine.
  if (!parse_response_head(ctx)) co_return Forwarded::reply(LocalReason::bad_upstream_response);
  if (response_.status / 100 != 1 || response_.status == 101) co_return Forwarded{};
  co_return co_await read_final_response(ctx);
}

// One attempt on one server: get connection (an idle one, else a new one) -> write header ->
// relay body -> read response head. Recorded in the outcome, whatever its end.
Task<AttemptEnd> Session::attempt(RequestContext& ctx, const Server& server) {
  AttemptRecord record{&server};
  ctx.outcome.server = &server;
  ctx.in_flight.track(server.state.get());
  AttemptEnd end = AttemptEnd::ok;
  const ClientTls* tls = pool_tls(*ctx.snapshot, ctx.outcome);
  if (!take_idle(worker_, ctx.lease, server, tls, record))
    end = co_await connect_new(worker_, deadline_, ctx.lease, server, tls,
                               ctx.config.timeouts.upstream_connect, ctx.outcome);
  if (end == AttemptEnd::ok) {
    // Phase: write header, with the body bytes already here in the same write (one syscall). A
    // write that fails on a kept-alive connection means the server had closed it: `closed`,
    // which the retry policy may try again.
    std::array<net::const_buffer, 2> head{net::buffer(upstream_head_),
                                          net::buffer(in_.data(), ctx.buffered_body)};
    worker_.arm(deadline_, ctx.config.timeouts.upstream_response);
    auto [ec, n] = co_await ctx.lease.conn().stream.write_all(head);
    if (ec) end = deadline_.fired ? AttemptEnd::timeout
                  : record.reused ? AttemptEnd::closed
                                  : AttemptEnd::reset;
  }
  if (end == AttemptEnd::ok && !ctx.replayable) end = co_await relay_request_body(ctx);
  if (end == AttemptEnd::ok)
    end = co_await proxyd::read_response_head(worker_, deadline_, ctx.lease.conn(),
                                      ctx.config.timeouts.upstream_response, record.reused,
                                      ctx.outcome, ctx.response_header_len);
  record.end = end;
  ctx.outcome.add_attempt(record);
  if (end != AttemptEnd::ok) ctx.lease.reset();
  co_return end;
}

// Phase: relay body (client -> upstream) for a body not yet all here, answering 100-continue
// first. The head and the bytes already here have gone out.
Task<AttemptEnd> Session::relay_request_body(RequestContext& ctx) {
  in_.consume(ctx.buffered_body);
  ctx.outcome.bytes_in = ctx.buffered_body;
  if (ctx.plan.expect_continue && ctx.client_version == 11 && !ctx.sent_continue) {
    ctx.sent_continue = true;
    std::array<net::const_buffer, 1> b{net::buffer(kContinue)};
    if (!co_await write_client(b)) co_return AttemptEnd::client_gone;
  }
  const PumpEnd end = co_await pump_.relay(
      ctx.parser,
      PumpEnds{client_, in_, ctx.config.timeouts.client_body, ctx.lease.conn().stream,
               ctx.config.timeouts.upstream_response},
      PumpFraming{ctx.plan.framing, ctx.plan.length - ctx.buffered_body, ctx.plan.framing}, {},
      ctx.outcome.bytes_in);
  switch (end) {
    case PumpEnd::done:
      co_return AttemptEnd::ok;
    case PumpEnd::read_failed:
      co_return AttemptEnd::client_gone;
    case PumpEnd::read_timeout:
      ctx.client_error = LocalReason::client_body_timeout;
      co_return AttemptEnd::client_gone;
    case PumpEnd::bad_body:
      ctx.client_error = LocalReason::bad_request;
      co_return AttemptEnd::client_gone;
    case PumpEnd::too_large:
      ctx.client_error = LocalReason::body_too_large;
      co_return AttemptEnd::client_gone;
    case PumpEnd::write_timeout:
      co_return AttemptEnd::timeout;
    case PumpEnd::write_failed:
      break;
  }
  co_return AttemptEnd::reset;
}

// Phase: read response, continued: the head is parsed and checked; an interim (1xx) response
// goes to HTTP/1.1 clients (our own 100 Continue is not repeated) and the next head is read, at
// most kMaxInterimResponses times.
Task<Forwarded> Session::read_final_response(RequestContext& ctx) {
  for (int interim = 0;; ++interim) {
    if (!parse_response_head(ctx)) co_return Forwarded::reply(LocalReason::bad_upstream_response);
    const bool is_interim = response_.status / 100 == 1 && response_.status != 101;
    if (!is_interim) co_return Forwarded{};
    if (interim == kMaxInterimResponses) co_return Forwarded::reply(LocalReason::bad_upstream_response);
    if (ctx.client_version == 11 && !(response_.status == 100 && ctx.sent_continue)) {
      write_client_response(response_, ctx.response_plan, BodyFraming::none, true,
                            ctx.client_version, client_head_);
      std::array<net::const_buffer, 1> b{net::buffer(client_head_)};
      if (!co_await write_client(b)) co_return Forwarded::gone();
    }
    ctx.lease.conn().buffer.consume(ctx.response_header_len);
    const AttemptEnd end = co_await proxyd::read_response_head(
        worker_, deadline_, ctx.lease.conn(), ctx.config.timeouts.upstream_response, false,
        ctx.outcome, ctx.response_header_len);
    if (end != AttemptEnd::ok) co_return Forwarded::reply(failure_reason(end));
  }
}

// Phase: relay (upstream -> client). The head goes out with the first body bytes in one write.
// The upstream connection is reused only when its framing ended cleanly with nothing left over.
Task<bool> Session::relay_response(RequestContext& ctx) {
  UpstreamConn& conn = ctx.lease.conn();
  const ResponsePlan& plan = ctx.response_plan;
  const BodyFraming framing = client_framing(plan.framing, ctx.client_version);
  const bool keep_alive = ctx.plan.keep_alive && !worker_.draining() &&
                          framing != BodyFraming::until_close;
  write_client_response(response_, plan, framing, keep_alive, ctx.client_version, client_head_);
  if (ctx.set_cookie) add_sticky_cookie(ctx);
  conn.buffer.consume(ctx.response_header_len);  // response_'s views are dead from here on
  ctx.outcome.status = response_.status;
  const Duration upstream_timeout = ctx.config.timeouts.upstream_response;
  const PumpEnd end = co_await pump_.relay(
      *ctx.response_parser,
      PumpEnds{conn.stream, conn.buffer, upstream_timeout, client_, ctx.config.timeouts.client_idle,
               &worker_.upstreams()},
      PumpFraming{plan.framing, plan.length, framing}, client_head_, ctx.outcome.bytes_out);
  switch (end) {
    case PumpEnd::done:
      ctx.outcome.end = RequestEnd::relayed;
      break;
    case PumpEnd::write_failed:
    case PumpEnd::write_timeout:
      ctx.outcome.end = RequestEnd::client_gone;
      co_return false;
    default:
      // Nothing reached the client yet (a chunked body that failed before its first byte, which
      // the head waits for): it gets the reply a failed head would get.
      if (!pump_.prefix_written()) {
        const LocalReason reason = end == PumpEnd::read_timeout
                                       ? LocalReason::upstream_timeout
                                       : LocalReason::bad_upstream_response;
        co_return co_await reply(ctx, reason, ctx.plan.keep_alive && !worker_.draining());
      }
      ctx.outcome.end = RequestEnd::upstream_cut;
      co_return false;
  }
  // Phase: keep-alive or close.
  if (plan.upstream_keep_alive && conn.buffer.empty() && plan.framing != BodyFraming::until_close)
    ctx.lease.release_for_reuse(ctx.config.limits.upstream_idle_per_server);
  co_return keep_alive;
}

void Session::add_sticky_cookie(const RequestContext& ctx) {
  const Route& route = *ctx.outcome.route;
  if (response_sets_cookie(response_, route)) return;
  std::string field = "Set-Cookie: " + sticky_cookie(route, ctx.new_cookie) + "\r\n";
  client_head_.insert(client_head_.size() - 2, field);  // before the blank line
}

// Phase: relay, after a 101: bytes flow both ways until either side closes or stays silent for
// client_idle. The connection is never reused.
Task<bool> Session::tunnel(RequestContext& ctx) {
  // A 101 the client did not ask for cannot be relayed: the client would not expect a tunnel.
  // (One without an Upgrade field never gets here: check_response refuses it.)
  if (ctx.plan.upgrade.empty()) co_return co_await reply(ctx, LocalReason::bad_upstream_response);
  ctx.outcome.status = 101;
  ctx.outcome.end = RequestEnd::tunnel;
  UpstreamConn& conn = ctx.lease.conn();
  write_client_response(response_, ctx.response_plan, BodyFraming::none, true, ctx.client_version,
                        client_head_);
  conn.buffer.consume(ctx.response_header_len);
  std::array<net::const_buffer, 2> first{net::buffer(client_head_), net::buffer(conn.buffer.view())};
  if (!co_await write_client(first)) co_return false;
  ctx.outcome.bytes_out += conn.buffer.size();
  conn.buffer.clear();
  // Open from here: counted on its server for status, and watched by the sweep, which ends it
  // once its pool has left the route's slots for the route's drain.
  TunnelOpen open(deadline_, ctx.outcome.route, ctx.outcome.pool,
                  ctx.outcome.server != nullptr ? ctx.outcome.server->state.get() : nullptr);
  if (!in_.empty()) {
    worker_.arm(deadline_, ctx.config.timeouts.client_idle);
    auto [ec, n] = co_await conn.stream.write_all(net::buffer(in_.view()));
    if (ec) co_return false;
    ctx.outcome.bytes_in += in_.size();
    in_.clear();
  }
  co_await (pipe(client_, conn.stream, in_, ctx.outcome.bytes_in) ||
            pipe(conn.stream, client_, conn.buffer, ctx.outcome.bytes_out));
  co_return false;
}

Task<void> Session::pipe(Stream& from, Stream& to, ByteBuffer& buffer, std::uint64_t& moved) {
  const Duration idle = worker_.snapshot()->config->timeouts.client_idle;
  for (;;) {
    buffer.clear();
    worker_.arm(deadline_, idle);
    auto [ec, n] = co_await from.async_read_some(net::buffer(buffer.write_ptr(), buffer.writable()),
                                                 use_task);
    if (ec) co_return;
    worker_.arm(deadline_, idle);
    auto [wec, wn] = co_await to.write_all(net::buffer(buffer.write_ptr(), n));
    if (wec) co_return;
    moved += n;
  }
}

// Phase: log. Exactly once per request (FinishOnExit in handle_request).
void Session::finish(RequestContext& ctx) {
  ctx.outcome.total = Clock::now() - ctx.outcome.started;
  worker_.finish(ctx.outcome);
}

Task<bool> Session::reply(RequestContext& ctx, LocalReason reason, bool keep_alive) {
  const LocalReplyInfo& info = local_reply_info(reason);
  local_reply_counters().add(reason);
  ctx.outcome.status = info.status;
  ctx.outcome.reason = reason;
  ctx.outcome.end = RequestEnd::local_reply;
  std::array<net::const_buffer, 1> b{net::buffer(local_reply_bytes(reason, !keep_alive))};
  const bool written = co_await write_client(b);
  // The lingering close waits for the client, after the request's outcome is finished.
  linger_on_close_ = written && !keep_alive;
  co_return written && keep_alive;
}

Task<bool> Session::write_client(std::span<const net::const_buffer> buffers) {
  worker_.arm(deadline_, worker_.snapshot()->config->timeouts.client_idle);
  auto [ec, n] = co_await client_.write_all(buffers);
  co_return !ec;
}

// Lingering close: stop sending, then read and drop what the client still sends for a moment, so
// our reply is not destroyed by a reset triggered by unread input.
Task<void> Session::linger() {
  co_await close_notify();
  error_code ec;
  client_.socket().shutdown(tcp::socket::shutdown_send, ec);
  in_.clear();
  const Duration header = worker_.snapshot()->config->timeouts.client_header;
  worker_.arm(deadline_, std::min(header, Duration(2000)));
  // The raw socket: what is dropped need not be decrypted, and a TLS read after our close_notify
  // would end at once.
  for (std::size_t dropped = 0; dropped < 1024 * 1024;) {
    auto [rec, n] = co_await client_.socket().async_read_some(
        net::buffer(in_.write_ptr(), in_.writable()), use_task);
    if (rec) break;
    dropped += n;
  }
  in_.clear();
}

}  // namespace

Task<void> run_session(Worker& worker, Socket socket, tcp::endpoint peer,
                       ListenerRuntime listener) {
  Session session(worker, std::move(socket), peer, std::move(listener));
  co_await session.run();
}

}  // namespace proxyd
