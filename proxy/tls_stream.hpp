// TlsStream: TLS over a connection's socket, with OpenSSL reading and writing the socket itself.
//
// Asio's ssl::stream runs OpenSSL over a BIO pair: every record is copied from the socket into a
// 17 KiB buffer of Asio's, then into the BIO pair, then decrypted out of OpenSSL's own buffer,
// and the same three hops on the way out; the two Asio buffers are zero-filled for every
// connection. Here OpenSSL writes with send() on the non-blocking socket, as in nginx and HAProxy,
// and a write that would block waits for the socket's readiness through Asio (async_wait).
//
// Reads go through a BIO of ours. While the socket has bytes, OpenSSL's reads recv() straight
// into its own buffer. Once a recv() comes back short (the socket is drained), the next read that
// needs bytes does not try again: it is a tracked read (read_readiness.hpp) of up to 4 KiB into
// the stream's inbox, and OpenSSL then reads the inbox first. Such a read waits on the
// descriptor's input edges, which it registered once; async_wait, which this stream used before,
// re-arms the descriptor with an EPOLL_CTL_MOD at every wait, and OpenSSL's read() that found
// nothing came before it. A keep-alive request on a client connection (whose socket reports what
// it still holds) now costs one recv() and no epoll_ctl, against three system calls; elsewhere
// two recv() (Asio's read tries one before it waits). A recv() of OpenSSL's that found nothing
// at all tells the reactor not to try once more before the next event: a new connection's
// handshake, begun before its ClientHello came, costs one recv() before it waits, not two.
// Either way a cancel on the socket ends the wait, as it ends a plain read or write.
//
// Reads and writes may be pending at the same time (HTTP/2, a tunnel): each is one OpenSSL call
// retried after a wait, on the worker's one thread, so they never run at once. One inbox read at a
// time: an operation that needs bytes while another's inbox read is pending waits with async_wait.
// A write of several small buffers (a response head and a short body) goes out as one TLS record
// and one send(), as with Asio's stream: they are gathered, up to a record's 16 KiB, in a
// per-thread staging buffer.
//
// Errors are reported as Asio's ssl::stream reports them: OpenSSL's error code in Asio's SSL
// category, net::ssl::error::stream_truncated for a peer that closed without close_notify,
// net::error::eof after its close_notify, and the errno of a failed recv() or send().
// Owner: a Stream (stream.hpp). Thread: its worker's only.
#pragma once

#include <boost/asio/append.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/post.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "net.hpp"
#include "read_readiness.hpp"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace proxyd {

// What one non-blocking OpenSSL call ended with: done (with an error or a byte count), or the
// socket readiness to wait for before calling again.
struct TlsStep {
  enum class Want : std::uint8_t { done, read, write };
  Want want = Want::done;
  error_code ec;
  std::size_t bytes = 0;
};

namespace detail {
template <class Step, class Handler, bool kBytes>
class TlsOp;
}  // namespace detail

class TlsStream {
 public:
  using executor_type = Executor;
  enum class Role : std::uint8_t { client, server };

  // The largest plaintext of one TLS record: the most a gathered write sends at once.
  static constexpr std::size_t kRecordSize = 16384;
  // The most one wait's read takes: a request's records, or the first bytes of a larger burst
  // (OpenSSL reads the rest itself).
  static constexpr std::size_t kInboxSize = 4096;

  // Takes `ssl` (freed with the stream) and makes the socket non-blocking.
  TlsStream(Socket& socket, SSL* ssl);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  SSL* native_handle() const { return ssl_; }
  // Whether bytes read from the socket are not yet handed out (in the inbox, or read ahead by
  // OpenSSL).
  bool has_pending() const;
  // The next read continues something begun in the layer above (a request's head or body, an
  // HTTP/2 frame): if it waits for the socket, it tries it at once first, as a plain socket's
  // read after read_at_once() does. Bytes OpenSSL read ahead are served without the socket, and
  // the request then lapses, so that it does not make a later read try an empty socket.
  void read_next_at_once() { next_read_at_once_ = true; }
  // The socket's pending operations were cancelled (a deadline fired, the session was closed for
  // room): an operation between two of its waits (its last one completed, its next not started)
  // ends with operation_aborted too, as one in a wait does. Without it, a partial record read in
  // that gap started a new wait that nothing cancelled, with no deadline left to end it.
  void cancelled() { ++cancels_; }
  executor_type get_executor() { return socket_.get_executor(); }

  // Completes with (error_code).
  template <class Token>
  auto async_handshake(Role role, Token&& token) {
    set_role(role);
    return start<false>([](TlsStream& s) { return s.handshake_step(); },
                        std::forward<Token>(token));
  }

  // Sends close_notify; waits for the peer's too unless SSL_set_shutdown said it came already.
  // Completes with (error_code).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return start<false>([](TlsStream& s) { return s.shutdown_step(); },
                        std::forward<Token>(token));
  }

  // Into the first non-empty buffer, as Asio's streams do. Completes with (error_code, bytes).
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    net::mutable_buffer first;
    const auto end = net::buffer_sequence_end(buffers);
    for (auto it = net::buffer_sequence_begin(buffers); it != end && first.size() == 0; ++it)
      first = *it;
    return start<true>([first](TlsStream& s) { return s.read_step(first.data(), first.size()); },
                       std::forward<Token>(token));
  }

  // The first buffer when it is a record or more, else the buffers gathered up to one record.
  // Completes with (error_code, bytes).
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return start<true>([buffers](TlsStream& s) { return s.gathered_write(buffers); },
                       std::forward<Token>(token));
  }

  // The same write as async_write_some's first, without waiting: the bytes written, 0 when the
  // socket is full (async_write_some then retries the same bytes, as OpenSSL requires), `ec`
  // when it failed.
  template <class ConstBuffers>
  std::size_t write_now(const ConstBuffers& buffers, error_code& ec) {
    const TlsStep step = gathered_write(buffers);
    if (step.want != TlsStep::Want::done) return 0;
    ec = step.ec;
    return step.bytes;
  }

 private:
  template <class Step, class Handler, bool kBytes>
  friend class detail::TlsOp;

  // Each makes one OpenSSL call, after begin_step(): an empty error queue and errno, and no
  // recv() of this step's yet (found_empty_).
  void begin_step();
  TlsStep handshake_step();
  TlsStep shutdown_step();
  TlsStep read_step(void* data, std::size_t size);
  TlsStep write_step(const void* data, std::size_t size);
  void set_role(Role role);
  static unsigned char* staging_buffer();
  // The inbox read of a wait ended: its bytes, or the EOF or error OpenSSL's next read returns.
  void filled(const error_code& ec, std::size_t bytes);
  // Whether the inbox read about to start tries the socket at once rather than wait for its
  // next event: it continues something begun, the rest of a record OpenSSL holds part of or what
  // read_next_at_once() asked for, and the read that took the part may have taken a reset's
  // event with it (read_readiness.hpp, read_at_once). Not when this step's own recv() found the
  // socket empty: a reset there would have failed it, and a later one raises an event.
  bool inbox_read_at_once();
  // The read BIO's calls (tls_stream.cpp).
  static int bio_read(BIO* bio, char* out, int size);
  static long bio_ctrl(BIO* bio, int command, long number, void* pointer);

  template <class ConstBuffers>
  TlsStep gathered_write(const ConstBuffers& buffers) {
    auto it = net::buffer_sequence_begin(buffers);
    const auto end = net::buffer_sequence_end(buffers);
    while (it != end && net::const_buffer(*it).size() == 0) ++it;
    if (it == end) return TlsStep{};
    const net::const_buffer first = *it;
    if (first.size() >= kRecordSize || std::next(it) == end)
      return write_step(first.data(), first.size());
    unsigned char* staging = staging_buffer();
    std::size_t staged = 0;
    for (; it != end && staged < kRecordSize; ++it)
      staged += net::buffer_copy(net::buffer(staging + staged, kRecordSize - staged), *it);
    return write_step(staging, staged);
  }

  template <bool kBytes, class Step, class Token>
  auto start(Step step, Token&& token);

  Socket& socket_;
  SSL* ssl_;
  // The read side's state. The socket had nothing more when last read (a short recv() or an
  // inbox read shorter than the inbox): reads wait for the reactor rather than try it again.
  bool drained_ = false;
  bool reading_ = false;  // an inbox read is pending
  bool eof_ = false;      // the peer's FIN was read
  bool found_empty_ = false;        // this step's own recv() found the socket empty
  bool next_read_at_once_ = false;  // read_next_at_once() asked it of the next inbox read
  int read_errno_ = 0;    // a read failed with this errno
  std::uint32_t cancels_ = 0;  // cancelled() calls: operations begun before one end
  std::uint16_t inbox_begin_ = 0;
  std::uint16_t inbox_end_ = 0;
  std::array<unsigned char, kInboxSize> inbox_;
};

namespace detail {

// One operation: the step, then a wait for the readiness it asks for and the step again, until
// done. A step done at once completes through a post, never inside the initiating call.
// Cancellation through the handler's slot (the `||` of a tunnel's two pipes) is remembered in the
// operation's own state, as Asio's composed operations do: a cancel that lands after a wait
// completed but before this operation ran again would otherwise be lost, and a partial record
// would start a new wait that nobody cancels.
template <class Step, class Handler, bool kBytes>
class TlsOp {
 public:
  TlsOp(TlsStream& stream, Step step, Handler handler)
      : stream_(&stream),
        step_(std::move(step)),
        handler_(std::move(handler)),
        cancellation_(net::get_associated_cancellation_slot(handler_),
                      net::enable_total_cancellation()),
        cancels_(stream.cancels_) {}

  void start() {
    const TlsStep result = step_(*stream_);
    if (result.want != TlsStep::Want::done) return wait(result.want);
    const auto executor = net::get_associated_executor(handler_, stream_->get_executor());
    if constexpr (kBytes)
      net::post(executor, net::append(std::move(handler_), result.ec, result.bytes));
    else
      net::post(executor, net::append(std::move(handler_), result.ec));
  }

  // An async_wait ended: for readiness to read, the socket has bytes again.
  void operator()(error_code ec) {
    if (!ec && waited_to_read_) stream_->drained_ = false;
    resume(ec);
  }

  // An inbox read ended. Its bytes are the stream's before a cancel is looked at: a cancel that
  // came after the read took them must not lose them.
  void operator()(error_code ec, std::size_t bytes) {
    stream_->filled(ec, bytes);
    resume(ec == net::error::operation_aborted ? ec : error_code{});
  }

  const Handler& handler() const { return handler_; }

 private:
  void complete(const error_code& ec, std::size_t bytes) {
    if constexpr (kBytes)
      std::move(handler_)(ec, bytes);
    else
      std::move(handler_)(ec);
  }

  void resume(error_code ec) {
    if (!ec && (cancellation_.cancelled() != net::cancellation_type::none ||
                stream_->cancels_ != cancels_))
      ec = net::error::operation_aborted;
    if (ec) return complete(ec, 0);
    const TlsStep result = step_(*stream_);
    if (result.want != TlsStep::Want::done) return wait(result.want);
    complete(result.ec, result.bytes);
  }

  void wait(TlsStep::Want want) {
    TlsStream& stream = *stream_;
    const auto slot = cancellation_.slot();
    waited_to_read_ = want == TlsStep::Want::read;
    if (waited_to_read_ && !stream.reading_) {
      stream.reading_ = true;
      if (stream.inbox_read_at_once()) read_at_once(stream.socket_);
      async_read_some_tracked(stream.socket_, net::buffer(stream.inbox_),
                              net::bind_cancellation_slot(slot, std::move(*this)));
      return;
    }
    stream.socket_.async_wait(waited_to_read_ ? Socket::wait_read : Socket::wait_write,
                              net::bind_cancellation_slot(slot, std::move(*this)));
  }

  TlsStream* stream_;
  Step step_;
  Handler handler_;
  net::cancellation_state cancellation_;
  std::uint32_t cancels_;  // the stream's count when this operation began
  bool waited_to_read_ = false;
};

}  // namespace detail

template <bool kBytes, class Step, class Token>
auto TlsStream::start(Step step, Token&& token) {
  using Signature = std::conditional_t<kBytes, void(error_code, std::size_t), void(error_code)>;
  return net::async_initiate<Token, Signature>(
      [this](auto handler, Step s) {
        using Handler = std::decay_t<decltype(handler)>;
        detail::TlsOp<Step, Handler, kBytes>(*this, std::move(s), std::move(handler)).start();
      },
      token, std::move(step));
}

}  // namespace proxyd

// The handler's executor, allocator and cancellation slot are the operation's.
template <template <class, class> class Associator, class Step, class Handler, bool kBytes,
          class Default>
struct boost::asio::associator<Associator, proxyd::detail::TlsOp<Step, Handler, kBytes>, Default>
    : Associator<Handler, Default> {
  using Op = proxyd::detail::TlsOp<Step, Handler, kBytes>;
  static typename Associator<Handler, Default>::type get(const Op& op) noexcept {
    return Associator<Handler, Default>::get(op.handler());
  }
  static auto get(const Op& op, const Default& d) noexcept
      -> decltype(Associator<Handler, Default>::get(op.handler(), d)) {
    return Associator<Handler, Default>::get(op.handler(), d);
  }
};
