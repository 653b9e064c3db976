// HTTP/2 to clients, framed by nghttp2's server session (callbacks; nghttp2_session_mem_recv and
// mem_send driven by our own reads and writes on the worker's io_context): no codec of our own.
// One connection runs a read loop and a write loop; each request stream runs as one coroutine
// through the phases HTTP/1.1 requests go through (upstream_phases.hpp), to an HTTP/1.1 upstream
// connection from the worker's cache. Bodies stream both ways with HTTP/2 flow control as the
// back-pressure: request DATA is acknowledged on its stream (WINDOW_UPDATE) only once written
// upstream, on the connection as soon as it arrives (as nginx), and the
// response body is offered to nghttp2 one upstream read at a time (NGHTTP2_ERR_DEFERRED until
// the next read is in).
#include "h2_session.hpp"

#include <nghttp2/nghttp2.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "h2_frame_cursor.hpp"
#include "h2_request.hpp"
#include "relay.hpp"
#include "retry_policy.hpp"
#include "signal.hpp"
#include "stream.hpp"
#include "upstream_phases.hpp"

namespace proxyd {
namespace {

using namespace net::experimental::awaitable_operators;

// Limits (docs/architecture.md, "HTTP/2"). The listener's (Http2Limits): streams a client may
// have open at once (as nginx's http2_max_concurrent_streams), the header list, and the receive
// window per stream: what a client may send ahead of what we wrote upstream (what we hold for a
// stream). Stream coroutines alive at once, counting those of streams the client reset that are
// still unwinding (a rapid reset opens and resets streams faster than their upstream work ends),
// are at most twice max_concurrent_streams: beyond, new streams are refused (REFUSED_STREAM)
// until some end. The connection's window is given back as DATA arrives, so stalled uploads
// cannot block the connection's other streams; memory is bounded by streams x stream window.
constexpr std::int32_t kConnectionWindow = 4 * 1024 * 1024;
// RST_STREAM frames a client may send (CVE-2023-44487, rapid reset): a token bucket of
// kResetBurst refilled at kResetRate per second, then GOAWAY (ENHANCE_YOUR_CALM). Counted here:
// nghttp2 1.52's own limiter (set too) did not fire on a plain open-then-reset loop in our test.
constexpr std::uint64_t kResetBurst = 200;
constexpr std::uint64_t kResetRate = 33;  // per second
// DATA frames without payload and without END_STREAM a connection may send (an empty-frame
// flood costs us a callback each and moves nothing).
constexpr std::uint32_t kMaxEmptyFrames = 1024;
constexpr std::size_t kReadSize = 16 * 1024;
constexpr std::size_t kWriteBatch = 64 * 1024;
// Interim (1xx) responses relayed before the final one; past this, a 502 (as HTTP/1.1).
constexpr int kMaxInterimResponses = 16;
// Room for a typical head's fields, reserved once per stream instead of grown one doubling at a
// time (a request's and a response's field lists were seven allocations per stream).
constexpr std::size_t kFieldsReserved = 16;
constexpr std::size_t kStageSize = 16 * 1024;

// Who the client is, copied: stream outcomes are finished after the session's frame may be gone
// (a worker torn down with requests in flight).
struct Peer {
  std::string listener;
  std::optional<SlotName> slot;
  bool tls = false;
  std::string ip;
  std::string address;
  std::string_view tls_version;
  std::string_view tls_cipher;
  std::uint32_t max_concurrent_streams = 0;
  std::uint32_t max_header_list_size = 0;  // limits.max_header_bytes unless the listener says
  std::uint32_t stream_window = 0;
  bool preface_read = false;  // nghttp2 is not to expect the client's preface
};

class Connection;

// One request stream. Owner: shared by the connection's table of open streams and the stream's
// coroutine; worker thread only. nghttp2 holds a raw pointer (stream user data) while the stream
// is open in its state machine.
struct H2Stream {
  H2Stream(Worker& worker, std::int32_t id, SignalService& signals,
           std::shared_ptr<const Peer> peer)
      : worker(worker), id(id), signal(worker.executor(), signals), peer(std::move(peer)) {
    request.fields.reserve(kFieldsReserved);
    deadline.waiter = &signal;
    worker.link(deadline);
  }
  H2Stream(const H2Stream&) = delete;
  H2Stream& operator=(const H2Stream&) = delete;
  ~H2Stream() { worker.unlink(deadline); }

  Worker& worker;
  const std::int32_t id;
  Signal signal;  // the stream's coroutine waits here for the client's side (arm_client_wait)
  // sockets[1]: the upstream connection while one is held. Its firing also wakes `signal`.
  Deadline deadline;
  std::shared_ptr<const Peer> peer;

  H2RequestFields request;  // the request head as received
  bool started = false;
  // nghttp2 reset the stream for breaking RFC 9113's message rules (RST_STREAM PROTOCOL_ERROR
  // sent by nghttp2 itself, never by us): recorded as the 400 HTTP/1.1 would answer.
  bool rejected = false;

  // The request body: DATA received and not yet written upstream (bounded by the stream window).
  std::string body_in;
  std::string sending;
  std::uint64_t body_received = 0;
  bool request_ended = false;  // END_STREAM received

  // The response body offered to nghttp2: a view into the upstream buffer or the stage.
  const char* out = nullptr;
  std::size_t out_size = 0;
  bool out_eof = false;
  // The upstream's trailer fields (a chunked response), ready to send (lowercased, filtered):
  // after the last DATA, as a HEADERS frame with END_STREAM.
  std::vector<std::pair<std::string, std::string>> trailers;
  bool response_done = false;  // END_STREAM sent
  bool closed = false;         // closed in nghttp2's state machine (done, reset, or torn down)
  std::uint32_t close_code = NGHTTP2_NO_ERROR;

  // The request's snapshot, loaded once when it starts and held until its outcome is finished
  // (the outcome points into it).
  std::shared_ptr<const RoutingSnapshot> snapshot;
  RequestOutcome outcome;
};

// One HTTP/2 connection. Owner: run_h2_session (shared with its streams' coroutines, so it
// outlives the last of them). Worker thread only. `client` and `deadline` belong to the HTTP/1.1
// Session that accepted the connection, which waits for run() and closes it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Worker& worker, Stream& client, Deadline& deadline, std::shared_ptr<const Peer> peer)
      : worker_(worker),
        client_(client),
        deadline_(deadline),
        peer_(std::move(peer)),
        signals_(signal_service(worker.executor())),
        write_signal_(worker.executor(), signals_),
        done_signal_(worker.executor(), signals_),
        frames_(!peer_->preface_read) {}
  ~Connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Task<void> run();
  // The session's frame is gone (normally after run(), or torn down): streams ending later touch
  // neither the client socket nor its deadline.
  void detach() { detached_ = true; }

  Worker& worker() { return worker_; }
  nghttp2_session* session() { return session_; }
  void kick() { write_signal_.notify(); }
  // Wakes the write loop only if nghttp2 has something to send or the connection is closing: a
  // request's HEADERS and a stream's end usually leave nothing to say, and each needless wake-up
  // is a turn of the worker's queue.
  void kick_if_needed() {
    if (closing_ || nghttp2_session_want_write(session_) != 0) kick();
  }

  // Phases of one stream, in the order of its life.
  Task<void> serve(std::shared_ptr<H2Stream> stream);

 private:
  bool open_session();
  Task<void> read_loop();
  Task<void> write_loop();
  void rearm();
  void maybe_goaway();
  void start(const std::shared_ptr<H2Stream>& stream);
  void stream_finished();

  // The stream's phases (serve() sequences them).
  Task<void> proxy(H2Stream& s);
  Task<AttemptEnd> relay_request_body(H2Stream& s, UpstreamConn& conn, const Config& config,
                                      bool chunked);
  Task<void> relay_response(H2Stream& s, const Config& config, UpstreamLease& lease,
                            std::optional<HeadParser<false>>& parser, ResponseHead& response,
                            const ResponsePlan& plan, std::size_t header_len,
                            const RouteResult& routed);
  Task<void> reply(H2Stream& s, LocalReason reason);
  Task<bool> wait_response_sent(H2Stream& s, const Config& config);
  // Before a wait for the stream's client: arms its deadline, and says whether to wait.
  bool arm_client_wait(H2Stream& s, Duration timeout);
  void reset_stream(H2Stream& s, std::uint32_t code);
  bool submit_response(H2Stream& s, const std::vector<nghttp2_nv>& nva, bool body);

  // nghttp2 callbacks (user_data: the Connection).
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk_recv(nghttp2_session*, std::uint8_t flags, std::int32_t stream_id,
                                const std::uint8_t* data, std::size_t len, void* user);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t code,
                             void* user);
  static ssize_t read_body(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source* source,
                           void* user);

  Worker& worker_;
  Stream& client_;
  Deadline& deadline_;
  std::shared_ptr<const Peer> peer_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<H2Stream>> streams_;  // open, by id
  std::size_t running_ = 0;  // stream coroutines not yet ended
  SignalService& signals_;
  Signal write_signal_;
  Signal done_signal_;
  std::string out_;
  std::unique_ptr<std::uint8_t[]> in_;
  H2FrameCursor frames_;  // where the bytes read so far end: inside a frame or not
  // A response head's HTTP/2 fields, built and handed to nghttp2 (which copies them) without a
  // suspension in between, so one list serves every stream of the connection: no allocation per
  // response once it has grown.
  std::vector<nghttp2_nv> nv_list_;
  Clock::time_point last_active_{};
  Clock::time_point write_started_{};
  std::uint32_t empty_frames_ = 0;
  double reset_tokens_ = kResetBurst;
  Clock::time_point reset_refilled_{};
  bool writing_ = false;
  bool reading_done_ = false;
  bool closing_ = false;
  bool goaway_sent_ = false;
  bool detached_ = false;
};

std::optional<std::string_view> find_field(const void* ctx, std::string_view name) {
  for (const HeadField& f : static_cast<const RequestHead*>(ctx)->fields)
    if (iequals(f.name, name)) return f.value;
  return std::nullopt;
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  // nghttp2 copies names and values on submit (no NO_COPY flags): views into temporaries do.
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

// Response fields that do not exist in HTTP/2 (RFC 9113 8.2.2): dropped, with the fields a
// Connection field names. The parser already identified the six (in any case), so only the names
// a Connection field lists are compared as strings.
bool connection_specific(const HeadField& f, const ConnectionTokens& connection) {
  switch (f.id) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::te:
      return true;
    default:
      return connection.count != 0 && connection.names_field(f.name);
  }
}

// A response head as HTTP/2 fields: `:status`, then the upstream's fields without the
// connection-specific ones. Names go as the upstream spelled them: nghttp2 lowercases the names
// it copies (RFC 9113 8.2.1; nghttp2_nv_array_copy). content-length as an HTTP/1.1 client gets
// it (client_content_length): an HTTP/2 client refuses a stream whose content-length is a list,
// or is on a 1xx or 204 (RFC 9113 8.1.1). `nva` points into `response`, `status` and `length`.
void response_fields(const ResponseHead& response, const ResponsePlan& plan, std::string& status,
                     std::string& length, std::vector<nghttp2_nv>& nva) {
  nva.clear();
  nva.reserve(response.fields.size() + 2);
  status = std::to_string(response.status);
  nva.push_back(make_nv(":status", status));
  for (const HeadField& f : response.fields) {
    if (f.id != http::field::content_length && !connection_specific(f, plan.connection))
      nva.push_back(make_nv(f.name, f.value));
  }
  if (const std::optional<std::uint64_t> n = client_content_length(response, plan)) {
    length = std::to_string(*n);
    nva.push_back(make_nv("content-length", length));
  }
}

// Trailer fields as HTTP/2 sends them: without the connection-specific ones and those a trailer
// may not carry (RFC 9110 6.5.1: framing, routing); nghttp2 lowercases the names as it copies them.
void prepare_trailers(std::vector<std::pair<std::string, std::string>>& trailers,
                      const ConnectionTokens& connection) {
  std::erase_if(trailers, [&](const auto& field) {
    const std::string_view name = field.first;
    const http::field id = http::string_to_field(name);
    return connection_specific(HeadField{id, name, {}}, connection) ||
           id == http::field::content_length || id == http::field::host ||
           id == http::field::trailer || name.starts_with(':');
  });
}

bool Connection::open_session() {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0) {
    nghttp2_session_callbacks_del(callbacks);
    return false;
  }
  // Stream WINDOW_UPDATEs only for what went upstream: the flow control is the back-pressure.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_stream_reset_rate_limit(option, kResetBurst, kResetRate);
  // The defaults, stated: CONTINUATION frames per header block (CVE-2024-27316's flood),
  // SETTINGS entries per frame, and SETTINGS/PING acknowledgements queued unsent (a client that
  // floods them and does not read) before nghttp2 closes the session.
  nghttp2_option_set_max_continuations(option, 8);
  nghttp2_option_set_max_settings(option, 32);
  nghttp2_option_set_max_outbound_ack(option, 1000);
  if (peer_->preface_read) nghttp2_option_set_no_recv_client_magic(option, 1);
  const int rv = nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return false;

  const std::array<nghttp2_settings_entry, 3> settings{{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, peer_->max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, peer_->stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, peer_->max_header_list_size},
  }};
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size()) != 0)
    return false;
  return nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                               kConnectionWindow) == 0;
}

Task<void> Connection::run() {
  if (!open_session()) co_return;
  in_ = std::make_unique_for_overwrite<std::uint8_t[]>(kReadSize);
  last_active_ = worker_.now();
  co_await (read_loop() && write_loop());
  // The connection is done: streams still running are cut, and waited for (each finishes its
  // outcome), so none outlives what it uses of the session.
  for (auto& [id, stream] : streams_) {
    stream->closed = true;
    stream->close_code = NGHTTP2_CANCEL;
    cancel_side(stream->deadline, 1);
    stream->signal.notify();
  }
  streams_.clear();
  while (running_ > 0) {
    if (done_signal_.consume()) continue;
    co_await done_signal_.wait();
    done_signal_.consume();  // the notify that woke it
  }
}

// The connection's deadline: a write in progress has client_idle to finish; with no stream
// running, the connection may idle for client_idle; otherwise the streams' own deadlines govern.
// Outside a write the deadline is `idle` whether streams run or not: a drain then ends the read
// after its grace, which sends GOAWAY (read_loop), and reading resumes for the streams in flight.
void Connection::rearm() {
  if (detached_) return;
  maybe_goaway();
  const Duration idle_timeout = worker_.snapshot()->config->timeouts.client_idle;
  const bool idle = running_ == 0;
  deadline_.idle = !writing_;
  if (writing_) {
    // Once the reading is over (the client left, or broke the protocol), what is still to say
    // gets a second at most: a client that does not read cannot hold the connection.
    const Duration write_timeout =
        reading_done_ ? std::min<Duration>(idle_timeout, std::chrono::seconds(1)) : idle_timeout;
    worker_.arm_until(deadline_, write_started_ + write_timeout);
  } else if (idle) {
    worker_.arm_until(deadline_, last_active_ + idle_timeout);
  } else {
    worker_.arm_until(deadline_, Clock::time_point::max());
  }
}

// Draining (proxyd stops or hands over): GOAWAY with the last stream we took, once; the streams
// up to it finish, then the connection closes.
void Connection::maybe_goaway() {
  if (goaway_sent_ || !worker_.draining()) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  if (running_ == 0) closing_ = true;
  kick();
}

Task<void> Connection::read_loop() {
  for (;;) {
    rearm();
    // The rest of a frame: the read that took its first part may have taken a client's reset
    // with it (read_readiness.hpp, read_at_once), so this one tries the socket first.
    if (frames_.mid_frame()) client_.read_next_at_once();
    auto [ec, n] = co_await client_.async_read_some_tracked(net::buffer(in_.get(), kReadSize),
                                                           use_task);
    if (!ec && deadline_.closed_for_room) worker_.survived_room_close(deadline_);
    if (ec) {
      if (worker_.draining()) {
        // The drain's grace ended the wait: GOAWAY, then keep reading (WINDOW_UPDATE, resets)
        // while the streams it lets finish run.
        maybe_goaway();
        if (ec == net::error::operation_aborted && running_ > 0 && !closing_) continue;
      } else if (deadline_.fired && !closing_ && !goaway_sent_) {
        // Idle for client_idle: GOAWAY, then close.
        goaway_sent_ = true;
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                              nullptr, 0);
      }
      break;
    }
    frames_.advance(in_.get(), n);
    const ssize_t used = nghttp2_session_mem_recv(session_, in_.get(), n);
    if (used < 0) {
      // A fatal error (a flood, too many CONTINUATIONs, not the HTTP/2 preface): GOAWAY with
      // why, unless nghttp2 queued one already, and close.
      const bool abuse = used == NGHTTP2_ERR_FLOODED || used == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
      nghttp2_session_terminate_session(session_,
                                        abuse ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
      break;
    }
    maybe_goaway();
    kick_if_needed();
    if (closing_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)))
      break;
  }
  reading_done_ = true;
  rearm();  // the last words get a short deadline
  kick();
}

Task<void> Connection::write_loop() {
  for (;;) {
    out_.clear();
    bool failed = false;
    while (out_.size() < kWriteBatch) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        failed = true;
        break;
      }
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (!out_.empty()) {
      writing_ = true;
      write_started_ = worker_.now();
      rearm();
      auto [ec, n] = co_await client_.write_all(net::buffer(out_));
      writing_ = false;
      rearm();
      if (ec) break;
      continue;
    }
    const bool finished =
        !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
    if (failed || reading_done_ || closing_ || finished) break;
    if (write_signal_.consume()) continue;
    co_await write_signal_.wait();
    write_signal_.consume();  // the notify that woke it: the next turn sends what it was for
  }
  // Everything said: end the read loop's wait too.
  closing_ = true;
  if (!reading_done_) {
    error_code ignored;
    client_.socket().cancel(ignored);
  }
}

void Connection::start(const std::shared_ptr<H2Stream>& stream) {
  stream->started = true;
  ++running_;
  rearm();
  net::co_spawn(worker_.executor(), serve(stream),
                [keep = shared_from_this()](std::exception_ptr) {});
}

void Connection::stream_finished() {
  --running_;
  if (detached_) return;
  last_active_ = worker_.now();
  maybe_goaway();
  if (running_ == 0 && goaway_sent_) closing_ = true;
  rearm();
  kick_if_needed();
  done_signal_.notify();
}

// --- nghttp2 callbacks ---

int Connection::on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame,
                                 void* user) {
  auto& c = *static_cast<Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (c.running_ >= 2 * std::size_t{c.peer_->max_concurrent_streams}) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  auto stream = std::make_shared<H2Stream>(c.worker_, frame->hd.stream_id, c.signals_,
                                           c.peer_);
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream.get());
  c.streams_.emplace(frame->hd.stream_id, std::move(stream));
  return 0;
}

int Connection::on_header(nghttp2_session* session, const nghttp2_frame* frame,
                          const std::uint8_t* name, std::size_t namelen,
                          const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                          void* user) {
  auto& c = *static_cast<Connection*>(user);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  // Trailers are dropped, as the HTTP/1.1 path drops them (they would follow a head already sent).
  if (s == nullptr || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  // The same limit as an HTTP/1.1 head, on the decoded list.
  s->request.add(std::string_view(reinterpret_cast<const char*>(name), namelen),
                 std::string_view(reinterpret_cast<const char*>(value), valuelen),
                 c.peer_->max_header_list_size);
  return 0;
}

int Connection::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto& c = *static_cast<Connection*>(user);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (s == nullptr) return 0;
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->request_ended = true;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && !s->started) {
        auto it = c.streams_.find(frame->hd.stream_id);
        if (it != c.streams_.end()) c.start(it->second);
      }
      s->signal.notify();
      return 0;
    case NGHTTP2_RST_STREAM: {
      const Clock::time_point now = Clock::now();
      if (c.reset_refilled_ != Clock::time_point{}) {
        const double seconds = std::chrono::duration<double>(now - c.reset_refilled_).count();
        c.reset_tokens_ = std::min<double>(kResetBurst, c.reset_tokens_ + seconds * kResetRate);
      }
      c.reset_refilled_ = now;
      if (c.reset_tokens_ < 1) return nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
      c.reset_tokens_ -= 1;
      return 0;
    }
    case NGHTTP2_DATA:
      if (frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
          ++c.empty_frames_ > kMaxEmptyFrames)
        return nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
      if (s != nullptr && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        s->request_ended = true;
        s->signal.notify();
      }
      return 0;
    default:
      return 0;
  }
}

int Connection::on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                   const std::uint8_t* data, std::size_t len, void*) {
  // The connection's window comes back at once: what a stream holds is bounded by its own window
  // (given back only once written upstream), and a stalled one does not hold up the others.
  nghttp2_session_consume_connection(session, len);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s == nullptr) return 0;  // a stream we refused or already answered: its bytes go nowhere
  s->body_in.append(reinterpret_cast<const char*>(data), len);
  s->body_received += len;
  s->signal.notify();
  return 0;
}

int Connection::on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void*) {
  // We reset streams with other codes (reset_stream, REFUSED_STREAM): PROTOCOL_ERROR on a stream
  // is nghttp2's own verdict on the client's message (forbidden or malformed fields, bad
  // pseudo-header fields, DATA against content-length).
  if (frame->hd.type == NGHTTP2_RST_STREAM && frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR) {
    auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (s != nullptr) s->rejected = true;
    return 0;
  }
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (s != nullptr) {
    s->response_done = true;
    s->signal.notify();
  }
  return 0;
}

int Connection::on_stream_close(nghttp2_session*, std::int32_t stream_id,
                                std::uint32_t code, void* user) {
  auto& c = *static_cast<Connection*>(user);
  auto it = c.streams_.find(stream_id);
  if (it == c.streams_.end()) return 0;
  std::shared_ptr<H2Stream> s = std::move(it->second);
  c.streams_.erase(it);
  // Rejected before its head was complete: it runs only to be recorded (serve()).
  if (s->rejected && !s->started && !c.detached_) c.start(s);
  s->closed = true;
  s->close_code = code;
  s->body_in.clear();
  // Cut short (a reset, or the response not all sent): its upstream work stops now.
  if (!s->response_done) cancel_side(s->deadline, 1);
  s->signal.notify();
  return 0;
}

ssize_t Connection::read_body(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf,
                              std::size_t length, std::uint32_t* flags,
                              nghttp2_data_source* source, void*) {
  auto& s = *static_cast<H2Stream*>(source->ptr);
  const std::size_t n = std::min(length, s.out_size);
  if (n > 0) std::memcpy(buf, s.out, n);
  s.out += n;
  s.out_size -= n;
  s.outcome.bytes_out += n;
  if (s.out_size == 0) {
    if (s.out_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s.trailers.empty()) {
        std::vector<nghttp2_nv> nva;
        nva.reserve(s.trailers.size());
        for (const auto& [name, value] : s.trailers) nva.push_back(make_nv(name, value));
        // The trailers' HEADERS carries END_STREAM instead of this DATA frame.
        if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        s.trailers.clear();
      }
      return static_cast<ssize_t>(n);
    }
    s.signal.notify();  // the stream reads more from its upstream
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// --- one stream ---

// The phases of one stream: check -> route -> (pick server -> get connection -> write header ->
// relay body -> read response) -> relay -> log, exactly as an HTTP/1.1 request.
Task<void> Connection::serve(std::shared_ptr<H2Stream> stream) {
  H2Stream& s = *stream;
  struct FinishOnExit {
    Connection& c;
    H2Stream& s;
    ~FinishOnExit() {
      s.outcome.total = Clock::now() - s.outcome.started;
      c.worker_.finish(s.outcome);
      c.stream_finished();
    }
  } finish_on_exit{*this, s};
  s.outcome.started = Clock::now();
  s.outcome.protocol = ClientProtocol::h2;
  s.outcome.listener = s.peer->listener;
  s.outcome.client = s.peer->address;
  s.outcome.tls_version = s.peer->tls_version;
  s.outcome.tls_cipher = s.peer->tls_cipher;
  if (!s.rejected) co_await proxy(s);
  // nghttp2 rejected the stream (the client got RST_STREAM PROTOCOL_ERROR), before or while it
  // was proxied: recorded as a 400 bad_request local reply, unless a response was already under
  // way.
  if (s.rejected && s.outcome.status == 0) {
    if (worker_.logging() && s.outcome.method.empty()) {
      s.outcome.method = s.request.method;
      s.outcome.target = s.request.path;
    }
    local_reply_counters().add(LocalReason::bad_request);
    s.outcome.status = local_reply_info(LocalReason::bad_request).status;
    s.outcome.reason = LocalReason::bad_request;
    s.outcome.end = RequestEnd::local_reply;
  }
}

void Connection::reset_stream(H2Stream& s, std::uint32_t code) {
  if (!s.closed) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, code);
  kick();
}

bool Connection::submit_response(H2Stream& s, const std::vector<nghttp2_nv>& nva, bool body) {
  if (s.closed) return false;
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = read_body;
  const int rv = nghttp2_submit_response(session_, s.id, nva.data(), nva.size(),
                                         body ? &provider : nullptr);
  kick();
  return rv == 0;
}

// Arms the stream's deadline for a wait for its client, `timeout` from now; its firing wakes
// the stream's signal. True when the caller is to wait for the signal, false when a notify came
// since the last wait. After the wait, s.signal.consume() is false when only the deadline ended
// it: a notify in the same turn counts as the client's progress.
bool Connection::arm_client_wait(H2Stream& s, Duration timeout) {
  worker_.arm_until(s.deadline, worker_.now() + timeout);
  return !s.signal.consume();
}

// Waits until the response's END_STREAM went out or the stream closed; the client has
// client_idle to make room (flow control) between two pieces.
Task<bool> Connection::wait_response_sent(H2Stream& s, const Config& config) {
  while (!s.response_done && !s.closed) {
    if (!arm_client_wait(s, config.timeouts.client_idle)) continue;
    co_await s.signal.wait();
    if (!s.signal.consume()) {
      reset_stream(s, NGHTTP2_CANCEL);
      co_return false;
    }
  }
  co_return s.response_done;
}

Task<void> Connection::reply(H2Stream& s, LocalReason reason) {
  const LocalReplyInfo& info = local_reply_info(reason);
  local_reply_counters().add(reason);
  s.outcome.status = info.status;
  s.outcome.reason = reason;
  s.outcome.end = RequestEnd::local_reply;
  const std::string_view body = local_reply_body(reason);
  const std::string status = std::to_string(info.status);
  const std::string length = std::to_string(body.size());
  const std::vector<nghttp2_nv> nva{make_nv(":status", status),
                                    make_nv("content-type", "text/plain"),
                                    make_nv("content-length", length)};
  s.out = body.data();
  s.out_size = body.size();
  s.out_eof = true;
  const std::uint64_t before = s.outcome.bytes_out;
  if (!submit_response(s, nva, true)) {
    s.outcome.end = RequestEnd::client_gone;
    co_return;
  }
  const bool sent = co_await wait_response_sent(s, *worker_.snapshot()->config);
  if (!sent) s.outcome.end = RequestEnd::client_gone;
  // The reply is the stream's answer: a body still on its way is not wanted (RFC 9113 8.1).
  if (sent && !s.request_ended) reset_stream(s, NGHTTP2_NO_ERROR);
  s.outcome.bytes_out = before + body.size() - s.out_size;
}

Task<void> Connection::proxy(H2Stream& s) {
  s.snapshot = worker_.snapshot();
  const RoutingSnapshot& snapshot = *s.snapshot;
  const Config& config = *snapshot.config;
  if (worker_.logging()) {
    s.outcome.method = s.request.method;
    s.outcome.target = s.request.path;
  }

  // Phase: check (h2_request.hpp).
  RequestHead head;
  std::string cookie;
  RequestPlan plan;
  if (auto refusal = check_h2_request(s.request, s.request_ended, config.limits.max_body_bytes,
                                      head, cookie, plan))
    co_return co_await reply(s, *refusal);

  // Phase: route.
  RequestView view;
  view.host = plan.host;
  view.path = plan.target;
  view.cookie_header = plan.cookie;
  view.client_ip = s.peer->ip;
  view.header = &find_field;
  view.header_ctx = &head;
  const RouteResult routed = route_request(worker_, snapshot, view, s.peer->slot, s.outcome);
  if (routed.refusal) co_return co_await reply(s, *routed.refusal);
  std::string upstream_head;
  // No default Host: a stream without :authority or host was refused above (as HTTP/1.1).
  write_upstream_request(head, plan, ForwardInfo{s.peer->ip, s.peer->tls, {}}, upstream_head);

  // Phases pick server -> get connection -> write header -> relay body -> read response, tried
  // on one server after another as the retry policy allows (a request without a body may be
  // sent again).
  const Pool& pool = *s.outcome.pool;
  const bool replayable = plan.framing == BodyFraming::none;
  const bool idempotent = is_idempotent(head.method);
  const bool head_request = head.method == http::verb::head;
  TriedSet tried;
  InFlight in_flight;
  UpstreamLease lease(worker_, s.deadline);
  std::optional<LocalReason> client_error;
  std::size_t header_len = 0;
  AttemptEnd last = AttemptEnd::ok;
  for (;;) {
    const std::optional<std::uint32_t> index = pick_upstream(worker_, pool, tried);
    if (!index) co_return co_await reply(s, no_server_left(pool, s.outcome, last));
    const Server& server = pool.servers[*index];
    AttemptRecord record{&server};
    s.outcome.server = &server;
    in_flight.track(server.state.get());
    const ClientTls* tls = pool_tls(snapshot, s.outcome);
    last = AttemptEnd::ok;
    if (!take_idle(worker_, lease, server, tls, record))
      last = co_await connect_new(worker_, s.deadline, lease, server, tls,
                                  config.timeouts.upstream_connect, s.outcome);
    if (last == AttemptEnd::ok) {
      worker_.arm(s.deadline, config.timeouts.upstream_response);
      auto [ec, n] =
          co_await lease.conn().stream.write_all(net::buffer(upstream_head));
      if (ec) last = s.deadline.fired ? AttemptEnd::timeout
                     : record.reused  ? AttemptEnd::closed
                                      : AttemptEnd::reset;
    }
    if (last == AttemptEnd::ok && !replayable) {
      last = co_await relay_request_body(s, lease.conn(), config,
                                         plan.framing == BodyFraming::chunked);
      if (last == AttemptEnd::client_gone && s.body_received > config.limits.max_body_bytes)
        client_error = LocalReason::body_too_large;
      else if (last == AttemptEnd::client_gone && !s.closed)
        client_error = LocalReason::client_body_timeout;
    }
    // Closed while the last step's completion was on its way: on_stream_close's cancel found no
    // upstream wait to end, so none may start now (it would last upstream_response).
    if (last == AttemptEnd::ok && s.closed) last = AttemptEnd::client_gone;
    if (last == AttemptEnd::ok)
      last = co_await read_response_head(worker_, s.deadline, lease.conn(),
                                         config.timeouts.upstream_response, record.reused,
                                         s.outcome, header_len);
    // The client reset the stream meanwhile: not the server's failure.
    if (last != AttemptEnd::ok && s.closed) last = AttemptEnd::client_gone;
    record.end = last;
    s.outcome.add_attempt(record);
    const AfterAttempt next = after_attempt(
        last, *index, RetryInput{last, record.reused, idempotent, replayable, s.outcome.attempt_count},
        tried);
    if (next == AfterAttempt::answered) break;
    lease.reset();
    if (next == AfterAttempt::client_gone) {
      if (client_error && !s.closed) co_return co_await reply(s, *client_error);
      s.outcome.end = RequestEnd::client_gone;
      co_return;
    }
    if (next == AfterAttempt::give_up) co_return co_await reply(s, failure_reason(last));
  }

  // Phase: read response, continued: interim (1xx) responses go to the client as HEADERS
  // without END_STREAM (a 100 Continue apart: the upstream's answer to our own Expect handling),
  // at most kMaxInterimResponses as HTTP/1.1; a 101 cannot be (no Upgrade in HTTP/2).
  std::optional<HeadParser<false>> parser;
  ResponseHead response;
  response.fields.reserve(kFieldsReserved);
  ResponsePlan response_plan;
  for (int interim = 0;; ++interim) {
    if (!parse_response_head(parser, response, lease.conn(), header_len, head_request,
                             response_plan) ||
        response.status == 101)
      co_return co_await reply(s, LocalReason::bad_upstream_response);
    if (response.status / 100 != 1) break;
    // As HTTP/1.1: 16 interim responses pass, a 17th is a 502 (a final one after 16 was one
    // too many before).
    if (interim == kMaxInterimResponses)
      co_return co_await reply(s, LocalReason::bad_upstream_response);
    if (response.status != 100 && !s.closed) {
      std::string status, length;
      response_fields(response, response_plan, status, length, nv_list_);
      nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, s.id, nullptr, nv_list_.data(),
                             nv_list_.size(), nullptr);
      kick();
    }
    lease.conn().buffer.consume(header_len);
    AttemptEnd end = AttemptEnd::client_gone;  // as above: no new upstream wait once closed
    if (!s.closed)
      end = co_await read_response_head(worker_, s.deadline, lease.conn(),
                                        config.timeouts.upstream_response, false, s.outcome,
                                        header_len);
    if (end != AttemptEnd::ok) {
      if (s.closed) {
        s.outcome.end = RequestEnd::client_gone;
        co_return;
      }
      co_return co_await reply(s, failure_reason(end));
    }
  }
  co_await relay_response(s, config, lease, parser, response, response_plan, header_len, routed);
}

// Phase: relay body (client -> upstream): DATA as it arrives, acknowledged to the client's flow
// control only once written upstream; chunked when the client gave no content-length.
Task<AttemptEnd> Connection::relay_request_body(H2Stream& s, UpstreamConn& conn,
                                                const Config& config, bool chunked) {
  std::array<char, 20> line;
  for (;;) {
    if (s.body_received > config.limits.max_body_bytes) co_return AttemptEnd::client_gone;
    if (!s.body_in.empty()) {
      // What arrives while this write is out goes to body_in: the two swap.
      std::swap(s.body_in, s.sending);
      std::array<net::const_buffer, 3> b{};
      std::size_t count = 0;
      if (chunked) b[count++] = net::buffer(chunk_size_line(s.sending.size(), line));
      b[count++] = net::buffer(s.sending);
      if (chunked) b[count++] = net::buffer("\r\n", 2);
      worker_.arm(s.deadline, config.timeouts.upstream_response);
      auto [ec, n] = co_await conn.stream.write_all(std::span(b.data(), count));
      if (ec) co_return s.deadline.fired ? AttemptEnd::timeout : AttemptEnd::reset;
      // The stream's window opens by what went upstream: the client may send that much more.
      if (!s.closed) nghttp2_session_consume_stream(session_, s.id, s.sending.size());
      kick();
      s.outcome.bytes_in += s.sending.size();
      s.sending.clear();
      continue;
    }
    // Closed first: a reset that came in the same read as the body's end leaves both set.
    if (s.closed) co_return AttemptEnd::client_gone;
    if (s.request_ended) break;
    if (!arm_client_wait(s, config.timeouts.client_body)) continue;
    co_await s.signal.wait();
    if (!s.signal.consume()) co_return AttemptEnd::client_gone;
  }
  if (chunked) {
    worker_.arm(s.deadline, config.timeouts.upstream_response);
    auto [ec, n] = co_await conn.stream.write_all(net::buffer(kLastChunk));
    if (ec) co_return s.deadline.fired ? AttemptEnd::timeout : AttemptEnd::reset;
  }
  co_return AttemptEnd::ok;
}

// Phase: relay (upstream -> client). The head goes to nghttp2 at once; the body is offered one
// upstream read (or one decoded stage of chunks) at a time, and the next read waits until
// nghttp2 took it all, which it does as the client's flow-control window allows.
Task<void> Connection::relay_response(H2Stream& s, const Config& config, UpstreamLease& lease,
                                      std::optional<HeadParser<false>>& parser,
                                      ResponseHead& response, const ResponsePlan& plan,
                                      std::size_t header_len, const RouteResult& routed) {
  UpstreamConn& conn = lease.conn();
  s.outcome.status = response.status;
  {
    std::string status, length;
    response_fields(response, plan, status, length, nv_list_);
    std::string cookie;
    if (routed.set_cookie && !response_sets_cookie(response, *s.outcome.route)) {
      cookie = sticky_cookie(*s.outcome.route, routed.new_cookie);
      nv_list_.push_back(make_nv("set-cookie", cookie));
    }
    const bool body = plan.framing != BodyFraming::none;
    conn.buffer.consume(header_len);  // response's views are dead from here on
    if (!submit_response(s, nv_list_, body)) {
      s.outcome.end = RequestEnd::client_gone;
      co_return;
    }
  }

  std::uint64_t remaining = plan.length;
  std::size_t view_len = 0;  // bytes of conn.buffer the current view covers (length, until_close)
  std::unique_ptr<char[]> stage;
  std::size_t staged = 0;
  if (plan.framing == BodyFraming::chunked) {
    stage = std::make_unique_for_overwrite<char[]>(kStageSize);
    parser->set_sink(stage.get(), kStageSize, &staged);
    parser->set_trailer_sink(&s.trailers);
  }
  // The next piece of the body into s.out; false when the upstream failed.
  const auto fill = [&]() -> Task<bool> {
    for (;;) {
      ByteBuffer& up = conn.buffer;
      if (plan.framing == BodyFraming::chunked) {
        staged = 0;
        error_code ec;
        const Decode step = decode_chunks(*parser, up, staged, kStageSize, ec);
        if (step == Decode::error) co_return false;
        s.out = stage.get();
        s.out_size = staged;
        s.out_eof = step == Decode::done;
        if (s.out_eof) prepare_trailers(s.trailers, plan.connection);
        if (staged > 0 || s.out_eof) co_return true;
        up.compact();
        if (up.writable() == 0) co_return false;
      } else {
        up.consume(view_len);
        view_len = 0;
        if (plan.framing == BodyFraming::length && remaining == 0) {
          s.out_size = 0;
          s.out_eof = true;
          co_return true;
        }
        if (!up.empty()) {
          view_len = plan.framing == BodyFraming::length
                         ? static_cast<std::size_t>(std::min<std::uint64_t>(up.size(), remaining))
                         : up.size();
          if (plan.framing == BodyFraming::length) remaining -= view_len;
          s.out = up.data();
          s.out_size = view_len;
          s.out_eof = plan.framing == BodyFraming::length && remaining == 0;
          co_return true;
        }
        up.compact();
      }
      // Never read past this body: what follows belongs to no one.
      std::size_t want = up.writable();
      if (plan.framing == BodyFraming::length)
        want = static_cast<std::size_t>(std::min<std::uint64_t>(want, remaining));
      worker_.arm(s.deadline, config.timeouts.upstream_response);
      auto [ec, n] = co_await conn.stream.async_read_some(net::buffer(up.write_ptr(), want),
                                                          use_task);
      up.commit(n);
      if (ec) {
        if (plan.framing == BodyFraming::until_close && ec == net::error::eof && !s.closed) {
          s.out_size = 0;
          s.out_eof = true;
          co_return true;
        }
        co_return false;
      }
    }
  };

  if (plan.framing != BodyFraming::none) {
    for (;;) {
      if (s.closed || s.response_done) break;
      if (s.out_size == 0 && !s.out_eof) {
        const bool filled = co_await fill();
        if (!filled) {
          if (s.closed) break;
          // The head went out: the client learns of the cut from a reset, not a short body.
          s.outcome.end = RequestEnd::upstream_cut;
          reset_stream(s, NGHTTP2_INTERNAL_ERROR);
          co_return;
        }
        nghttp2_session_resume_data(session_, s.id);
        kick();
        continue;
      }
      if (!arm_client_wait(s, config.timeouts.client_idle)) continue;
      co_await s.signal.wait();
      if (!s.signal.consume()) {
        reset_stream(s, NGHTTP2_CANCEL);
        break;
      }
    }
  }
  const bool sent = co_await wait_response_sent(s, config);
  if (!sent) {
    s.outcome.end = RequestEnd::client_gone;
    co_return;
  }
  // The last view was taken whole: its bytes leave the buffer, which must end empty for reuse.
  if (plan.framing != BodyFraming::chunked) conn.buffer.consume(view_len);
  s.outcome.end = RequestEnd::relayed;
  // A body still on its way from the client is not wanted once the response is complete.
  if (!s.request_ended) reset_stream(s, NGHTTP2_NO_ERROR);
  // Phase: keep-alive or close (the upstream connection).
  if (plan.upstream_keep_alive && conn.buffer.empty() && plan.framing != BodyFraming::until_close &&
      s.request_ended)
    lease.release_for_reuse(config.limits.upstream_idle_per_server);
}

}  // namespace

Task<void> run_h2_session(Worker& worker, Stream& client, Deadline& deadline, const H2Client& who) {
  auto peer = std::make_shared<Peer>();
  peer->listener = who.listener;
  peer->slot = who.slot;
  peer->tls = who.tls;
  peer->ip = who.ip;
  peer->address = who.address;
  peer->tls_version = who.tls_version;
  peer->tls_cipher = who.tls_cipher;
  peer->max_concurrent_streams = who.limits.max_concurrent_streams;
  peer->max_header_list_size = who.limits.max_header_list_size.value_or(
      static_cast<std::uint32_t>(worker.snapshot()->config->limits.max_header_bytes));
  peer->stream_window = who.limits.initial_window_size;
  peer->preface_read = who.preface_read;
  auto connection = std::make_shared<Connection>(worker, client, deadline, std::move(peer));
  struct Detach {
    Connection& c;
    ~Detach() { c.detach(); }
  } detach{*connection};
  co_await connection->run();
}

}  // namespace proxyd
