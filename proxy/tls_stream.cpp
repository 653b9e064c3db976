// The OpenSSL calls of tls_stream.hpp, and how their results become a TlsStep.
#include "tls_stream.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace proxyd {
namespace {

// OpenSSL asks to be called with an empty error queue: SSL_get_error() reads it. Looking costs
// a third of clearing, which resets all 16 slots (about 870 instructions, callgrind), and the
// queue is nearly always empty already.
void before_call() {
  if (ERR_peek_error() != 0) ERR_clear_error();
  errno = 0;
}

TlsStep done(error_code ec, std::size_t bytes = 0) { return {TlsStep::Want::done, ec, bytes}; }

// The outcome of an OpenSSL call that returned `ret` (1 is success), errno as it left it.
TlsStep step_result(SSL* ssl, int ret, int sys_errno, std::size_t bytes) {
  if (ret > 0) return done({}, bytes);
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return {TlsStep::Want::read, {}, 0};
    case SSL_ERROR_WANT_WRITE:
      return {TlsStep::Want::write, {}, 0};
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      return done(net::error::eof);
    case SSL_ERROR_SYSCALL:
    case SSL_ERROR_SSL: {
      const unsigned long code = ERR_get_error();
      if (code == 0) {
        if (sys_errno != 0) return done(error_code(sys_errno, boost::system::system_category()));
        return done(net::ssl::error::stream_truncated);
      }
      if (ERR_GET_LIB(code) == ERR_LIB_SYS)
        return done(error_code(ERR_GET_REASON(code), boost::system::system_category()));
      // OpenSSL 3 says a TCP close without close_notify this way; Asio calls it stream_truncated.
      if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
          ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return done(net::ssl::error::stream_truncated);
      return done(error_code(static_cast<int>(code), net::error::get_ssl_category()));
    }
    case SSL_ERROR_NONE:
      return done({}, bytes);
    default:  // a callback asked to be called again (none of proxyd's does): as Asio reports it
      return done(net::ssl::error::unexpected_result);
  }
}

}  // namespace

TlsStream::TlsStream(Socket& socket, SSL* ssl) : socket_(socket), ssl_(ssl) {
  // An accepted connection is non-blocking already (accept_connection): no ioctl again.
  error_code ignored;
  if (!socket_.non_blocking()) socket_.non_blocking(true, ignored);
  // Reads through the inbox BIO, whose method is made once for the process (a BIO_METHOD is
  // shared and read-only); writes through a socket BIO that does not close the descriptor (the
  // Socket owns it). Failing (out of memory) leaves the SSL without a BIO: its handshake fails.
  static BIO_METHOD* const inbox_method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "proxyd inbox");
    if (m != nullptr) {
      BIO_meth_set_read(m, &TlsStream::bio_read);
      BIO_meth_set_ctrl(m, &TlsStream::bio_ctrl);
    }
    return m;
  }();
  const int fd = static_cast<int>(socket_.native_handle());
  BIO* read_bio = inbox_method != nullptr ? BIO_new(inbox_method) : nullptr;
  if (read_bio != nullptr) {
    BIO_set_data(read_bio, this);
    BIO_set_init(read_bio, 1);
  }
  SSL_set_bio(ssl_, read_bio, BIO_new_socket(fd, BIO_NOCLOSE));
  // A retried write may come from another address (the staging buffer is refilled each time).
  SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One recv() takes what is there, not a record header and then its body.
  SSL_set_read_ahead(ssl_, 1);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

bool TlsStream::has_pending() const {
  return inbox_begin_ != inbox_end_ || SSL_has_pending(ssl_) == 1;
}

void TlsStream::begin_step() {
  before_call();
  found_empty_ = false;
}

bool TlsStream::inbox_read_at_once() {
  const bool asked = std::exchange(next_read_at_once_, false);
  if (found_empty_) return false;
  // Part of a header is read-ahead data OpenSSL has not processed (SSL_has_pending); a whole
  // header is taken out of that count, and the record layer then says it reads the body ("RB").
  // During the handshake a record may end where its message does not, and a short read says
  // nothing of a reset that came in the same event: one recv() more per handshake.
  return asked || SSL_has_pending(ssl_) == 1 ||
         std::strcmp(SSL_rstate_string(ssl_), "RB") == 0 || SSL_in_init(ssl_) == 1;
}

void TlsStream::filled(const error_code& ec, std::size_t bytes) {
  reading_ = false;
  if (ec == net::error::operation_aborted) return;
  if (ec == net::error::eof) {
    eof_ = true;
  } else if (ec) {
    read_errno_ = ec.category() == boost::system::system_category() ? ec.value() : EIO;
  } else {
    // OpenSSL asked for bytes only once the inbox was empty.
    inbox_begin_ = 0;
    inbox_end_ = static_cast<std::uint16_t>(bytes);
    drained_ = bytes < inbox_.size();
  }
}

// What the socket BIO's read does (a FIN is an EOF that BIO_eof reports, an error leaves its
// errno), except that bytes come from the inbox first and a drained socket is not read again.
int TlsStream::bio_read(BIO* bio, char* out, int size) {
  TlsStream& s = *static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (size <= 0) return 0;
  if (s.inbox_begin_ != s.inbox_end_) {
    const int n = std::min(size, s.inbox_end_ - s.inbox_begin_);
    std::memcpy(out, s.inbox_.data() + s.inbox_begin_, static_cast<std::size_t>(n));
    s.inbox_begin_ = static_cast<std::uint16_t>(s.inbox_begin_ + n);
    return n;
  }
  if (s.read_errno_ != 0) {
    errno = s.read_errno_;
    return -1;
  }
  if (s.eof_) return 0;
  if (!s.drained_) {
    ssize_t n;
    do n = ::recv(s.socket_.native_handle(), out, static_cast<std::size_t>(size), 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      s.drained_ = n < size;
      return static_cast<int>(n);
    }
    if (n == 0) {
      s.eof_ = true;
      return 0;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      s.read_errno_ = errno;
      return -1;
    }
    // Found empty: the inbox read that follows waits for the socket's next event instead of
    // trying recv() once more at once (a new connection's handshake, before its ClientHello).
    s.drained_ = true;
    s.found_empty_ = true;
    read_on_next_event(s.socket_);
  }
  BIO_set_retry_read(bio);
  return -1;
}

long TlsStream::bio_ctrl(BIO* bio, int command, long, void*) {
  const TlsStream& s = *static_cast<const TlsStream*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_EOF:
      return s.eof_ && s.inbox_begin_ == s.inbox_end_ ? 1 : 0;
    case BIO_CTRL_PENDING:
      return s.inbox_end_ - s.inbox_begin_;
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

void TlsStream::set_role(Role role) {
  if (role == Role::server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

unsigned char* TlsStream::staging_buffer() {
  alignas(64) thread_local unsigned char staging[kRecordSize];
  return staging;
}

TlsStep TlsStream::handshake_step() {
  begin_step();
  const int ret = SSL_do_handshake(ssl_);
  return step_result(ssl_, ret, errno, 0);
}

TlsStep TlsStream::shutdown_step() {
  begin_step();
  int ret = SSL_shutdown(ssl_);
  // 0: ours is sent and the peer's not yet read; the second call reads it (as Asio does).
  if (ret == 0) ret = SSL_shutdown(ssl_);
  return step_result(ssl_, ret, errno, 0);
}

TlsStep TlsStream::read_step(void* data, std::size_t size) {
  if (size == 0) return {};
  begin_step();
  std::size_t read = 0;
  const int ret = SSL_read_ex(ssl_, data, size, &read);
  if (ret > 0) next_read_at_once_ = false;  // served without waiting: the request lapses
  return step_result(ssl_, ret, errno, read);
}

TlsStep TlsStream::write_step(const void* data, std::size_t size) {
  if (size == 0) return {};
  begin_step();
  std::size_t written = 0;
  const int ret = SSL_write_ex(ssl_, data, size, &written);
  return step_result(ssl_, ret, errno, written);
}

}  // namespace proxyd
