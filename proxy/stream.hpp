// A connection's byte stream, plain TCP or TLS over it (TlsStream), for both sides of a session
// (client connections of a TLS listener, upstream connections of a pool with `tls`). Each read and
// write picks its path with one branch on a pointer, no virtual call and no allocation, and the
// session and the body pump stay one non-template piece of code (docs/architecture.md, "TLS").
// The TCP socket stays where it is when TLS starts (the TLS stream holds a reference to it), so a
// deadline's pointer to it stays valid and cancelling it aborts a pending TLS read or write as it
// does a plain one.
// Owner: a Session (client side) or an UpstreamConn; its worker's thread only. Not movable.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>

#include <array>
#include <cerrno>
#include <memory>
#include <tuple>
#include <utility>

#include "net.hpp"
#include "read_readiness.hpp"
#include "tls_stream.hpp"

namespace proxyd {

class Stream {
 public:
  using executor_type = Executor;
  using Tls = TlsStream;

  explicit Stream(Socket socket) : socket_(std::move(socket)) {}
  explicit Stream(Executor executor) : socket_(executor) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  Socket& socket() { return socket_; }
  // The TLS layer, or null on a plain connection.
  Tls* tls() { return tls_.get(); }
  const Tls* tls() const { return tls_.get(); }

  // Puts TLS over the socket with `ssl` (owned from here on); the handshake is the caller's.
  void start_tls(SSL* ssl) { tls_ = std::make_unique<Tls>(socket_, ssl); }
  // Back to a bare socket, which is closed: a TLS connection is never reused as plain.
  void close() {
    tls_.reset();
    error_code ignored;
    socket_.close(ignored);
  }

  // Both layers return the same type for the tokens proxyd uses (as_tuple(use_awaitable) in the
  // session, a concrete handler inside async_write), so each call is passed straight to one of
  // them: no initiation of its own (measured: a wrapping async_initiate cost ~500 instructions
  // per proxied request, callgrind; this costs a branch).
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return socket_.async_read_some(buffers, std::forward<Token>(token));
  }

  // As async_read_some, for a read whose socket may well be empty when the read is over (a client
  // connection's next request): a plain socket's read tells Asio's reactor when it left the
  // socket empty, so that the next read waits for an event without a recv() that finds nothing
  // (read_readiness.hpp); TLS reads its inbox that way itself.
  template <class Token>
  auto async_read_some_tracked(net::mutable_buffer buffer, Token&& token) {
    if (tls_) return tls_->async_read_some(buffer, std::forward<Token>(token));
    return proxyd::async_read_some_tracked(socket_, buffer, std::forward<Token>(token));
  }

  // The next read continues something begun (the rest of a head, a body, an HTTP/2 frame): it
  // tries the socket at once rather than wait for its next event, so that a reset that came with
  // the bytes read last is found now, not at a timeout (read_readiness.hpp, read_at_once). Over
  // TLS only if that read needs the socket (TlsStream::read_next_at_once).
  void read_next_at_once() {
    if (tls_)
      tls_->read_next_at_once();
    else
      read_at_once(socket_);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

  // All of `buffers`, as net::async_write does, but with the composed write running on the socket
  // or the TLS layer itself: a plain connection's write is then exactly what it was before TLS
  // (a composed write over Stream cost ~300 instructions per proxied request, callgrind).
  template <class ConstBuffers, class Token>
  auto async_write_all(const ConstBuffers& buffers, Token&& token) {
    if (tls_) return net::async_write(*tls_, buffers, std::forward<Token>(token));
    return net::async_write(socket_, buffers, std::forward<Token>(token));
  }

  // All of `buffers`, as async_write_all, except that what the connection takes at once goes out
  // here and now. Asio completes even a write done at once through a post, a turn of the worker's
  // queue; a response head or a small body nearly always fits the socket buffer, so only what is
  // left (a full socket) waits. Completes with (error_code, bytes).
  template <class ConstBuffers>
  Task<std::tuple<error_code, std::size_t>> write_all(const ConstBuffers& buffers) {
    error_code ec;
    const std::size_t now = write_now(buffers, ec);
    if (ec || now == net::buffer_size(buffers)) co_return std::tuple{ec, now};
    boost::beast::buffers_suffix<ConstBuffers> rest(buffers);
    rest.consume(now);
    auto [rest_ec, n] = co_await async_write_all(rest, use_task);
    co_return std::tuple{rest_ec, now + n};
  }

  // One non-blocking write: the bytes the connection took (0 when it is full), `ec` if it failed.
  template <class ConstBuffers>
  std::size_t write_now(const ConstBuffers& buffers, error_code& ec) {
    if (tls_) return tls_->write_now(buffers, ec);
    std::array<iovec, 8> iov;
    std::size_t count = 0;
    const auto end = net::buffer_sequence_end(buffers);
    for (auto it = net::buffer_sequence_begin(buffers); it != end && count < iov.size(); ++it) {
      const net::const_buffer b = *it;
      if (b.size() != 0) iov[count++] = {const_cast<void*>(b.data()), b.size()};
    }
    if (count == 0) return 0;
    msghdr message{};
    message.msg_iov = iov.data();
    message.msg_iovlen = count;
    ssize_t n;
    do n = ::sendmsg(socket_.native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec.assign(errno, boost::system::system_category());
    return 0;
  }

 private:
  Socket socket_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace proxyd
