// One client connection, as a C++20 coroutine on its worker's thread. The phases of a request
// follow docs/architecture.md; each wait is preceded by arming the session's deadline with the
// named timeout that applies to it (rule 3), and each failure maps to one local reply.
#include "session.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <charconv>
#include <cstdio>
#include <span>

#include "access_log.hpp"
#include "header_transform.hpp"
#include "http_head.hpp"
#include "local_reply.hpp"
#include "router.hpp"
#include "server_pick.hpp"
#include "worker.hpp"

namespace proxyd {
namespace {

using namespace net::experimental::awaitable_operators;

// Decoded chunk bytes are staged here before being re-framed for the other side.
constexpr std::size_t kStageSize = 64 * 1024;
// A connection that moved this much without waiting yields to the others (docs/architecture.md,
// "Performance choices").
constexpr std::uint64_t kFairnessBytes = 256 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

std::optional<std::string_view> find_request_header(const void* ctx, std::string_view name) {
  for (const HeadField& f : static_cast<const RequestHead*>(ctx)->fields)
    if (iequals(f.name, name)) return f.value;
  return std::nullopt;
}

// "1f4\r\n": the chunk-size line for `n` bytes.
std::string_view chunk_size_line(std::size_t n, std::array<char, 20>& storage) {
  auto [end, ec] = std::to_chars(storage.data(), storage.data() + 16, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  return {storage.data(), static_cast<std::size_t>(end - storage.data())};
}

// One step of decoding a chunked body from `in` into the stage. Beast's parser, driven
// non-eagerly, reports "consumed nothing" both for a full sink and for an empty input, so both
// are checked here before calling it.
enum class Decode { flush, need_more, done, error };

template <bool isRequest>
Decode decode_chunks(HeadParser<isRequest>& parser, ByteBuffer& in, std::size_t staged,
                     error_code& ec) {
  for (;;) {
    if (parser.is_done()) return Decode::done;
    if (staged == kStageSize) return Decode::flush;
    if (in.empty()) return Decode::need_more;
    std::size_t before = in.size();
    std::size_t used = parser.put(net::buffer(in.data(), in.size()), ec);
    in.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      return Decode::need_more;
    }
    if (ec) return Decode::error;
    if (used == 0 && before == in.size()) return Decode::need_more;
  }
}

// Why a request ended without a complete relay; drives the reply, the log and reuse.
enum class Outcome {
  done,            // response relayed completely
  local_reply,     // proxyd answered itself
  client_gone,     // the client failed or timed out mid-request: nothing more to send
  upstream_broke,  // the upstream failed after the response head was sent: close the client
};

class Session {
 public:
  Session(Worker& worker, Socket socket, ListenerRuntime listener)
      : worker_(worker), client_(std::move(socket)), listener_(std::move(listener)),
        in_(client_buffer_size(*worker.snapshot()->config)) {
    out_.reserve(4096);
  }

  Task<void> run();

 private:
  static std::size_t client_buffer_size(const Config& config) {
    return std::max<std::size_t>(config.limits.max_header_bytes + 1024, 32 * 1024);
  }

  // --- phases ---
  Task<bool> read_request_head(bool first, std::size_t& header_len);
  Task<bool> handle_request(std::size_t header_len);
  Task<bool> connect(UpstreamConn& conn, const Server& server);
  Task<bool> send_body(UpstreamConn& conn, HeadParser<true>& parser, const RequestPlan& plan);
  Task<bool> client_body_failed();
  enum class HeadRead { ok, timeout, stale, bad };
  Task<HeadRead> read_response_head(UpstreamConn& conn, std::size_t& header_len);
  Task<Outcome> relay_response(UpstreamConn& conn, HeadParser<false>& parser,
                               const ResponsePlan& plan, BodyFraming framing);
  Task<void> tunnel(UpstreamConn& conn);
  Task<void> pump(Socket& from, Socket& to, ByteBuffer& buffer);

  // --- helpers ---
  Task<bool> write_client(std::span<const net::const_buffer> buffers);
  Task<bool> write_upstream(UpstreamConn& conn, std::span<const net::const_buffer> buffers);
  Task<void> reply_local(LocalReason reason, bool close);
  // A write to the upstream failed: it timed out, or the connection is gone.
  LocalReason upstream_write_failure() const {
    return deadline_.fired ? LocalReason::upstream_timeout : LocalReason::upstream_unavailable;
  }
  static LocalReason head_read_failure(HeadRead read) {
    return read == HeadRead::timeout ? LocalReason::upstream_timeout
                                     : LocalReason::bad_upstream_response;
  }
  Task<void> linger();
  Task<void> fairness(std::uint64_t& moved, std::size_t n);
  void log_request(Clock::time_point started);
  char* stage() {
    if (!stage_) stage_ = std::make_unique<char[]>(kStageSize);
    return stage_.get();
  }

  Worker& worker_;
  Socket client_;
  ListenerRuntime listener_;
  ByteBuffer in_;  // bytes from the client: request heads, then body bytes
  std::string out_;  // the head being written (upstream request or client response)
  RequestHead request_;
  ResponseHead response_;
  Deadline deadline_;
  std::unique_ptr<char[]> stage_;
  std::shared_ptr<const RoutingSnapshot> snapshot_;  // held for the request in flight
  const Config* config_ = nullptr;
  std::string client_ip_;
  std::string client_address_;

  // Per-request facts for the access log.
  std::string method_;
  std::string target_;
  unsigned status_ = 0;
  std::string_view reason_;
  const Route* route_ = nullptr;
  const Pool* pool_ = nullptr;
  const Server* server_ = nullptr;
  SlotName slot_ = SlotName::live;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
};

Task<void> Session::run() {
  deadline_.sockets[0] = &client_;
  worker_.link(deadline_);
  error_code ec;
  auto remote = client_.remote_endpoint(ec);
  if (!ec) {
    client_ip_ = remote.address().to_string();
    client_address_ = client_ip_ + ":" + std::to_string(remote.port());
  }
  for (bool first = true;; first = false) {
    std::size_t header_len = 0;
    if (!co_await read_request_head(first, header_len)) break;
    if (!co_await handle_request(header_len)) break;
    if (worker_.draining()) break;
  }
  client_.shutdown(tcp::socket::shutdown_both, ec);
  client_.close(ec);
  worker_.unlink(deadline_);
}

// Phase: read header. Reads until the end of the header block is in the buffer. Returns false
// when the connection should close (EOF, idle timeout, drain, or a local reply already sent).
Task<bool> Session::read_request_head(bool first, std::size_t& header_len) {
  // Limits and timeouts for the wait come from the newest snapshot; routing loads it again once
  // the head is here, so a change made while this connection idled applies to its next request.
  snapshot_ = worker_.snapshot();
  config_ = snapshot_->config.get();
  const std::size_t max_header = config_->limits.max_header_bytes;
  std::size_t scanned = 0;
  for (;;) {
    // Empty lines before a request line are tolerated (RFC 9112 2.2).
    while (in_.size() >= 2 && in_.data()[0] == '\r' && in_.data()[1] == '\n') {
      in_.consume(2);
      scanned = 0;
    }
    std::string_view view = in_.view();
    auto end = view.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
    if (end != std::string_view::npos) {
      header_len = end + 4;
      if (header_len > max_header) break;
      co_return true;
    }
    scanned = view.size();
    if (view.size() >= max_header) break;
    if (in_.writable() == 0) in_.compact();

    const bool idle = view.empty();
    if (idle && worker_.draining()) co_return false;
    deadline_.idle = idle;
    worker_.arm(deadline_, idle && !first ? config_->timeouts.client_idle
                                          : config_->timeouts.client_header);
    auto [ec, n] =
        co_await client_.async_read_some(net::buffer(in_.write_ptr(), in_.writable()), use_task);
    deadline_.idle = false;
    if (ec) {
      if (deadline_.fired && !idle) co_await reply_local(LocalReason::client_header_timeout, true);
      co_return false;  // EOF, reset, idle timeout or drain: close without a word
    }
    in_.commit(n);
  }
  co_await reply_local(LocalReason::header_too_large, true);
  co_return false;
}

// Phases check -> route -> pick server -> get connection -> write header -> relay body ->
// read response -> relay -> log. Returns whether the client connection stays open.
Task<bool> Session::handle_request(std::size_t header_len) {
  // The access log is the only reader of the start time and of method_/target_.
  const bool logging = worker_.access_log().enabled();
  const Clock::time_point started = logging ? Clock::now() : Clock::time_point{};
  snapshot_ = worker_.snapshot();  // one snapshot for the whole request, loaded as it starts
  config_ = snapshot_->config.get();
  status_ = 0;
  reason_ = {};
  route_ = nullptr;
  pool_ = nullptr;
  server_ = nullptr;
  bytes_in_ = bytes_out_ = 0;
  method_.clear();
  target_.clear();

  auto refuse = [&](LocalReason reason) -> Task<bool> {
    co_await reply_local(reason, true);
    log_request(started);
    co_return false;
  };

  // Check: syntax by Beast, intermediary policy by check_request().
  if (has_obs_fold(in_.view().substr(0, header_len))) co_return co_await refuse(LocalReason::bad_request);
  HeadParser<true> parser(request_);
  parser.header_limit(static_cast<std::uint32_t>(header_len + 1));
  parser.body_limit(config_->limits.max_body_bytes);
  error_code ec;
  parser.put(net::buffer(in_.data(), header_len), ec);
  if (ec == http::error::body_limit) co_return co_await refuse(LocalReason::body_too_large);
  if (ec || !parser.is_header_done()) co_return co_await refuse(LocalReason::bad_request);
  if (logging) {
    method_.assign(request_.method_text);
    target_.assign(request_.target);
  }
  RequestPlan plan;
  if (auto reason = check_request(request_, config_->limits.max_body_bytes, plan))
    co_return co_await refuse(*reason);
  const bool head_request = request_.method == http::verb::head;
  const unsigned client_version = request_.version;

  // Route: one draw.
  RequestView view;
  view.host = plan.host;
  view.path = request_.target;
  view.cookie_header = plan.cookie;
  view.client_ip = client_ip_;
  view.header = &find_request_header;
  view.header_ctx = &request_;
  Decision decision = decide(*snapshot_, view, listener_.config->slot, worker_.random());
  if (decision.route == nullptr) {
    // Without a body to skip, the connection can serve the next request.
    bool keep = plan.framing == BodyFraming::none && plan.keep_alive;
    in_.consume(header_len);
    co_await reply_local(LocalReason::no_route, !keep);
    log_request(started);
    co_return keep;
  }
  route_ = decision.route;
  pool_ = decision.pool;
  slot_ = decision.slot;

  write_upstream_request(request_, plan, ForwardInfo{client_ip_, listener_.config->tls.has_value()},
                         out_);
  in_.consume(header_len);  // request_ views are dead from here on

  // A request whose whole body is already buffered can be replayed on a fresh connection when a
  // reused one turns out to be closed by the server.
  const std::size_t first_body =
      plan.framing == BodyFraming::length ? static_cast<std::size_t>(
                                                std::min<std::uint64_t>(in_.size(), plan.length))
                                          : 0;
  const bool replayable = plan.framing == BodyFraming::none ||
                          (plan.framing == BodyFraming::length && first_body == plan.length);

  TriedSet tried = 0;
  int connect_attempts = 0;
  bool sent_continue = false;
  std::unique_ptr<UpstreamConn> conn;
  std::size_t response_header_len = 0;
  for (;;) {
    // Pick server -> get connection.
    auto index = pick_server(*pool_, tried, worker_.rr_cursor(*pool_), worker_.random());
    if (!index) {
      co_return co_await refuse(connect_attempts == 0 ? LocalReason::no_server
                                                      : LocalReason::upstream_unavailable);
    }
    server_ = &pool_->servers[*index];
    conn = worker_.upstreams().take(*server_);
    const bool reused = conn != nullptr;
    if (!conn) {
      ++connect_attempts;
      conn = std::make_unique<UpstreamConn>(worker_.executor());
      if (!co_await connect(*conn, *server_)) {
        tried = mark_tried(tried, *index);
        conn.reset();
        continue;
      }
    }
    deadline_.sockets[1] = &conn->socket;

    // Write header, with the body bytes already buffered in the same write (one syscall).
    std::array<net::const_buffer, 2> head{net::buffer(out_), net::buffer(in_.data(), first_body)};
    if (!co_await write_upstream(*conn, head)) {
      deadline_.sockets[1] = nullptr;
      if (reused && replayable && !deadline_.fired) continue;  // closed while idle: try fresh
      co_return co_await refuse(upstream_write_failure());
    }

    // Relay body (client -> upstream), answering 100-continue ourselves first.
    if (!replayable) {
      in_.consume(first_body);
      bytes_in_ = first_body;
      if (plan.expect_continue && client_version == 11 && !sent_continue) {
        sent_continue = true;
        std::array<net::const_buffer, 1> b{net::buffer(kContinue)};
        if (!co_await write_client(b)) co_return false;
      }
      if (!co_await send_body(*conn, parser, plan)) {
        deadline_.sockets[1] = nullptr;
        log_request(started);
        co_return false;  // send_body replied or the client is gone
      }
    }

    // Read response.
    HeadRead read = co_await read_response_head(*conn, response_header_len);
    if (read == HeadRead::stale && reused && replayable) {
      deadline_.sockets[1] = nullptr;
      continue;
    }
    if (read != HeadRead::ok) {
      deadline_.sockets[1] = nullptr;
      co_return co_await refuse(head_read_failure(read));
    }
    if (replayable) {
      in_.consume(first_body);
      bytes_in_ = first_body;
    }
    break;
  }

  // In-flight accounting for least-request, held until the response is relayed.
  struct InFlight {
    ServerState& s;
    explicit InFlight(ServerState& state) : s(state) { s.in_flight.fetch_add(1, std::memory_order_relaxed); }
    ~InFlight() { s.in_flight.fetch_sub(1, std::memory_order_relaxed); }
  } in_flight(*server_->state);

  // Interim responses (1xx other than 101) are passed on to HTTP/1.1 clients; then the final one.
  ResponsePlan response_plan;
  std::optional<HeadParser<false>> response_parser;
  for (;;) {
    response_parser.emplace(response_);
    response_parser->body_limit(boost::none);
    if (head_request) response_parser->skip(true);
    response_parser->put(net::buffer(conn->buffer.data(), response_header_len), ec);
    if (ec || !response_parser->is_header_done() ||
        !check_response(response_, response_parser->length(), response_parser->chunked(),
                        head_request, response_plan))
      co_return co_await refuse(LocalReason::bad_upstream_response);
    const bool interim = response_.status / 100 == 1 && response_.status != 101;
    if (!interim) break;
    if (client_version == 11 && !(response_.status == 100 && sent_continue)) {
      write_client_response(response_, response_plan, BodyFraming::none, true, client_version, out_);
      std::array<net::const_buffer, 1> b{net::buffer(out_)};
      if (!co_await write_client(b)) co_return false;
    }
    conn->buffer.consume(response_header_len);
    HeadRead read = co_await read_response_head(*conn, response_header_len);
    if (read != HeadRead::ok)
      co_return co_await refuse(head_read_failure(read));
  }
  status_ = response_.status;

  if (response_.status == 101) {
    if (plan.upgrade.empty()) co_return co_await refuse(LocalReason::bad_upstream_response);
    write_client_response(response_, response_plan, BodyFraming::none, true, client_version, out_);
    conn->buffer.consume(response_header_len);
    log_request(started);
    co_await tunnel(*conn);
    co_return false;
  }

  // Relay the response head and body.
  const BodyFraming framing = client_framing(response_plan.framing, client_version);
  const bool keep_alive = plan.keep_alive && !worker_.draining() &&
                          framing != BodyFraming::until_close;
  write_client_response(response_, response_plan, framing, keep_alive, client_version, out_);
  conn->buffer.consume(response_header_len);
  Outcome outcome = co_await relay_response(*conn, *response_parser, response_plan, framing);
  deadline_.sockets[1] = nullptr;
  log_request(started);

  // Reuse the upstream connection only when its framing ended cleanly with nothing left over.
  if (outcome == Outcome::done && response_plan.upstream_keep_alive && conn->buffer.empty() &&
      response_plan.framing != BodyFraming::until_close) {
    ++conn->requests;
    worker_.upstreams().put(std::move(conn), worker_.now(), config_->limits.upstream_idle_per_server);
  }
  co_return outcome == Outcome::done && keep_alive;
}

// Phase: get connection (new). Each of the server's addresses in turn, all within one
// timeouts.upstream_connect.
Task<bool> Session::connect(UpstreamConn& conn, const Server& server) {
  deadline_.sockets[1] = &conn.socket;
  worker_.arm(deadline_, config_->timeouts.upstream_connect);
  const std::size_t count = 1 + server.fallback_addresses.size();
  for (std::size_t i = 0; i < count && !deadline_.fired; ++i) {
    const ResolvedAddress& address = i == 0 ? server.address : server.fallback_addresses[i - 1];
    error_code ec;
    if (conn.socket.is_open()) conn.socket.close(ec);
    auto [connect_error] = co_await conn.socket.async_connect(to_endpoint(address), use_task);
    if (connect_error) continue;
    deadline_.sockets[1] = nullptr;
    conn.socket.set_option(tcp::no_delay(true), ec);
    conn.server = server.state;
    conn.address = address;
    co_return true;
  }
  deadline_.sockets[1] = nullptr;
  error_code ignored;
  conn.socket.close(ignored);
  co_return false;
}

// Phase: relay body, client -> upstream. Content-Length bodies are copied as read; chunked ones
// are decoded by the parser (which enforces the size limit) and re-framed. Returns false after
// replying or when the client is gone; the upstream connection is then not reused.
Task<bool> Session::send_body(UpstreamConn& conn, HeadParser<true>& parser,
                              const RequestPlan& plan) {
  std::uint64_t moved = 0;
  if (plan.framing == BodyFraming::length) {
    std::uint64_t remaining = plan.length - bytes_in_;
    while (remaining > 0) {
      in_.compact();
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(in_.writable(), remaining));
      worker_.arm(deadline_, config_->timeouts.client_body);
      auto [ec, n] = co_await client_.async_read_some(net::buffer(in_.write_ptr(), want), use_task);
      if (ec) co_return co_await client_body_failed();
      in_.commit(n);
      std::array<net::const_buffer, 1> b{net::buffer(in_.data(), n)};
      if (!co_await write_upstream(conn, b)) {
        co_await reply_local(upstream_write_failure(), true);
        co_return false;
      }
      in_.consume(n);
      remaining -= n;
      bytes_in_ += n;
      co_await fairness(moved, n);
    }
    co_return true;
  }

  // Chunked: decode into the stage, write each staged piece as one chunk.
  std::size_t staged = 0;
  parser.set_sink(stage(), kStageSize, &staged);
  for (;;) {
    error_code ec;
    Decode step = decode_chunks(parser, in_, staged, ec);
    if (step == Decode::error) {
      co_await reply_local(ec == http::error::body_limit ? LocalReason::body_too_large
                                                         : LocalReason::bad_request, true);
      co_return false;
    }
    if (staged > 0) {
      std::array<char, 20> line;
      std::array<net::const_buffer, 3> b{net::buffer(chunk_size_line(staged, line)),
                                         net::buffer(stage(), staged), net::buffer("\r\n", 2)};
      if (!co_await write_upstream(conn, b)) {
        co_await reply_local(upstream_write_failure(), true);
        co_return false;
      }
      bytes_in_ += staged;
      co_await fairness(moved, staged);
      staged = 0;
    }
    if (step == Decode::done) break;
    if (step == Decode::need_more) {
      in_.compact();
      if (in_.writable() == 0) {  // a chunk header line longer than the buffer
        co_await reply_local(LocalReason::bad_request, true);
        co_return false;
      }
      worker_.arm(deadline_, config_->timeouts.client_body);
      auto [ec, n] =
          co_await client_.async_read_some(net::buffer(in_.write_ptr(), in_.writable()), use_task);
      if (ec) co_return co_await client_body_failed();
      in_.commit(n);
    }
  }
  std::array<net::const_buffer, 1> last{net::buffer(kLastChunk)};
  if (!co_await write_upstream(conn, last)) {
    co_await reply_local(LocalReason::upstream_unavailable, true);
    co_return false;
  }
  co_return true;
}

// The client stopped sending its body: a 408 if it is merely slow (nothing of the response has
// been sent yet), nothing if it went away.
Task<bool> Session::client_body_failed() {
  if (deadline_.fired) co_await reply_local(LocalReason::client_body_timeout, true);
  co_return false;
}

// Phase: read response (head). `stale`: the connection closed before sending a single byte,
// which on a reused connection means the server dropped it while idle.
Task<Session::HeadRead> Session::read_response_head(UpstreamConn& conn, std::size_t& header_len) {
  std::size_t scanned = 0;
  bool got_bytes = false;
  for (;;) {
    std::string_view view = conn.buffer.view();
    auto end = view.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
    if (end != std::string_view::npos) {
      header_len = end + 4;
      co_return HeadRead::ok;
    }
    scanned = view.size();
    conn.buffer.compact();
    if (conn.buffer.writable() == 0) co_return HeadRead::bad;  // head larger than 64 KiB
    worker_.arm(deadline_, config_->timeouts.upstream_response);
    auto [ec, n] = co_await conn.socket.async_read_some(
        net::buffer(conn.buffer.write_ptr(), conn.buffer.writable()), use_task);
    if (ec) {
      if (deadline_.fired) co_return HeadRead::timeout;
      co_return got_bytes || !conn.buffer.empty() ? HeadRead::bad : HeadRead::stale;
    }
    got_bytes = true;
    conn.buffer.commit(n);
  }
}

// Phase: relay (upstream -> client). The head goes out with the first body bytes in one write.
Task<Outcome> Session::relay_response(UpstreamConn& conn, HeadParser<false>& parser,
                                      const ResponsePlan& plan, BodyFraming framing) {
  std::uint64_t moved = 0;
  ByteBuffer& up = conn.buffer;
  bool head_sent = false;

  // Sends `body` framed for the client, prefixed by the head on the first write.
  auto send = [&](std::string_view body) -> Task<bool> {
    std::array<char, 20> line;
    std::array<net::const_buffer, 4> b{};
    std::size_t count = 0;
    if (!head_sent) b[count++] = net::buffer(out_);
    if (!body.empty()) {
      if (framing == BodyFraming::chunked) {
        b[count++] = net::buffer(chunk_size_line(body.size(), line));
        b[count++] = net::buffer(body);
        b[count++] = net::buffer("\r\n", 2);
      } else {
        b[count++] = net::buffer(body);
      }
    }
    head_sent = true;
    bytes_out_ += body.size();
    co_return co_await write_client(std::span(b.data(), count));
  };
  auto read_upstream = [&](std::size_t limit) -> Task<error_code> {
    up.compact();
    std::size_t want = std::min(up.writable(), limit);
    worker_.arm(deadline_, config_->timeouts.upstream_response);
    auto [ec, n] = co_await conn.socket.async_read_some(net::buffer(up.write_ptr(), want), use_task);
    up.commit(n);
    co_return ec;
  };

  switch (plan.framing) {
    case BodyFraming::none:
      co_return co_await send({}) ? Outcome::done : Outcome::client_gone;

    case BodyFraming::length: {
      std::uint64_t remaining = plan.length;
      for (;;) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(up.size(), remaining));
        if (n > 0 || !head_sent) {
          if (!co_await send({up.data(), n})) co_return Outcome::client_gone;
          up.consume(n);
          remaining -= n;
          co_await fairness(moved, n);
        }
        if (remaining == 0) co_return Outcome::done;
        error_code ec = co_await read_upstream(static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining, UpstreamConn::kBufferSize)));
        if (ec) co_return Outcome::upstream_broke;
      }
    }

    case BodyFraming::until_close: {
      for (;;) {
        if (!up.empty() || !head_sent) {
          std::size_t n = up.size();
          if (!co_await send(up.view())) co_return Outcome::client_gone;
          up.consume(n);
          co_await fairness(moved, n);
        }
        error_code ec = co_await read_upstream(UpstreamConn::kBufferSize);
        if (ec == net::error::eof) break;
        if (ec) co_return Outcome::upstream_broke;
      }
      break;
    }

    case BodyFraming::chunked: {
      std::size_t staged = 0;
      parser.set_sink(stage(), kStageSize, &staged);
      for (;;) {
        error_code ec;
        Decode step = decode_chunks(parser, up, staged, ec);
        if (step == Decode::error) co_return Outcome::upstream_broke;
        if (staged > 0 || !head_sent) {
          if (!co_await send({stage(), staged})) co_return Outcome::client_gone;
          co_await fairness(moved, staged);
          staged = 0;
        }
        if (step == Decode::done) break;
        if (step == Decode::need_more) {
          up.compact();
          if (up.writable() == 0) co_return Outcome::upstream_broke;
          error_code ec = co_await read_upstream(UpstreamConn::kBufferSize);
          if (ec) co_return Outcome::upstream_broke;
        }
      }
      break;
    }
  }
  if (framing == BodyFraming::chunked) {
    std::array<net::const_buffer, 1> last{net::buffer(kLastChunk)};
    if (!co_await write_client(last)) co_return Outcome::client_gone;
  }
  co_return Outcome::done;
}

// After a 101: bytes flow both ways until either side closes or stays silent for client_idle.
Task<void> Session::tunnel(UpstreamConn& conn) {
  std::array<net::const_buffer, 2> first{net::buffer(out_), net::buffer(conn.buffer.view())};
  if (!co_await write_client(first)) co_return;
  conn.buffer.clear();
  if (!in_.empty()) {
    std::array<net::const_buffer, 1> b{net::buffer(in_.view())};
    if (!co_await write_upstream(conn, b)) co_return;
    in_.clear();
  }
  co_await (pump(client_, conn.socket, in_) || pump(conn.socket, client_, conn.buffer));
  deadline_.sockets[1] = nullptr;
}

Task<void> Session::pump(Socket& from, Socket& to, ByteBuffer& buffer) {
  for (;;) {
    buffer.clear();
    worker_.arm(deadline_, config_->timeouts.client_idle);
    auto [ec, n] = co_await from.async_read_some(net::buffer(buffer.write_ptr(), buffer.writable()),
                                                 use_task);
    if (ec) co_return;
    worker_.arm(deadline_, config_->timeouts.client_idle);
    auto [wec, wn] = co_await net::async_write(to, net::buffer(buffer.write_ptr(), n), use_task);
    if (wec) co_return;
  }
}

Task<bool> Session::write_client(std::span<const net::const_buffer> buffers) {
  worker_.arm(deadline_, config_->timeouts.client_idle);
  auto [ec, n] = co_await net::async_write(client_, buffers, use_task);
  co_return !ec;
}

Task<bool> Session::write_upstream(UpstreamConn& conn, std::span<const net::const_buffer> buffers) {
  worker_.arm(deadline_, config_->timeouts.upstream_response);
  auto [ec, n] = co_await net::async_write(conn.socket, buffers, use_task);
  co_return !ec;
}

Task<void> Session::reply_local(LocalReason reason, bool close) {
  const LocalReplyInfo& info = local_reply_info(reason);
  local_reply_counters().add(reason);
  status_ = info.status;
  reason_ = info.name;
  std::array<net::const_buffer, 1> b{net::buffer(local_reply_bytes(reason, close))};
  if (co_await write_client(b) && close) co_await linger();
}

// Lingering close: stop sending, then read and drop what the client still sends for a moment, so
// our reply is not destroyed by a reset triggered by unread input.
Task<void> Session::linger() {
  error_code ec;
  client_.shutdown(tcp::socket::shutdown_send, ec);
  in_.clear();
  worker_.arm(deadline_, std::min(config_->timeouts.client_header, std::chrono::milliseconds(2000)));
  for (std::size_t dropped = 0; dropped < 1024 * 1024;) {
    auto [rec, n] =
        co_await client_.async_read_some(net::buffer(in_.write_ptr(), in_.writable()), use_task);
    if (rec) break;
    dropped += n;
  }
  in_.clear();
}

// Yields to the other sessions of this worker after kFairnessBytes moved in one go.
Task<void> Session::fairness(std::uint64_t& moved, std::size_t n) {
  moved += n;
  if (moved < kFairnessBytes) co_return;
  moved = 0;
  co_await net::post(worker_.executor(), net::use_awaitable_t<Executor>{});
}

void Session::log_request(Clock::time_point started) {
  if (!worker_.access_log().enabled()) return;
  AccessRecord r;
  r.listener = listener_.name;
  r.client = client_address_;
  r.method = method_;
  r.target = target_;
  r.status = status_;
  r.route = route_ ? std::string_view(route_->name) : std::string_view();
  r.slot = route_ ? (slot_ == SlotName::live ? "live" : "passive") : "";
  r.pool = pool_ ? std::string_view(pool_->name) : std::string_view();
  r.server = server_ ? std::string_view(server_->name) : std::string_view();
  r.reason = reason_;
  r.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  std::string& buffer = worker_.log_buffer();
  AccessLog::format(buffer, r);
  if (buffer.size() > 32 * 1024) worker_.access_log().write(buffer);
}

}  // namespace

Task<void> run_session(Worker& worker, Socket socket, ListenerRuntime listener) {
  Session session(worker, std::move(socket), std::move(listener));
  co_await session.run();
}

}  // namespace proxyd
