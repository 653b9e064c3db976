// The OpenSSL calls of tls_stream.hpp, and how their results become a TlsStep.
#include "tls_stream.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>

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
  error_code ignored;
  socket_.non_blocking(true, ignored);
  // A socket BIO that does not close the descriptor: the Socket owns it. Failing (out of memory)
  // leaves the SSL without a BIO, and its handshake fails.
  SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));
  // A retried write may come from another address (the staging buffer is refilled each time).
  SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One recv() takes what is there, not a record header and then its body.
  SSL_set_read_ahead(ssl_, 1);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

bool TlsStream::has_pending() const { return SSL_has_pending(ssl_) == 1; }

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
  before_call();
  const int ret = SSL_do_handshake(ssl_);
  return step_result(ssl_, ret, errno, 0);
}

TlsStep TlsStream::shutdown_step() {
  before_call();
  int ret = SSL_shutdown(ssl_);
  // 0: ours is sent and the peer's not yet read; the second call reads it (as Asio does).
  if (ret == 0) ret = SSL_shutdown(ssl_);
  return step_result(ssl_, ret, errno, 0);
}

TlsStep TlsStream::read_step(void* data, std::size_t size) {
  if (size == 0) return {};
  before_call();
  std::size_t read = 0;
  const int ret = SSL_read_ex(ssl_, data, size, &read);
  return step_result(ssl_, ret, errno, read);
}

TlsStep TlsStream::write_step(const void* data, std::size_t size) {
  if (size == 0) return {};
  before_call();
  std::size_t written = 0;
  const int ret = SSL_write_ex(ssl_, data, size, &written);
  return step_result(ssl_, ret, errno, written);
}

}  // namespace proxyd
