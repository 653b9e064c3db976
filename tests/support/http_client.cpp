// The blocking test client. Sockets are plain file descriptors with SO_RCVTIMEO/SO_SNDTIMEO, read
// by Beast through a minimal SyncReadStream (FdStream): Asio's own sync sockets would turn the
// timeout (EAGAIN) into an unbounded poll(), which is exactly the hang this client exists to avoid.
#include "tests/support/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "tests/support/beast_response.hpp"
#include "tests/support/fake_upstream.hpp"

namespace proxyd::test {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

constexpr std::size_t kPiece = 64 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

beast::error_code errno_code(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) return net::error::timed_out;
  return beast::error_code(err, beast::system_category());
}

// A SyncReadStream/SyncWriteStream over a blocking fd whose timeouts are socket options.
class FdStream {
 public:
  explicit FdStream(int& fd) : fd_(fd) {}

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    ec = {};
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      net::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      for (;;) {
        ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
        if (n > 0) return static_cast<std::size_t>(n);
        if (n == 0) {
          ec = net::error::eof;
          return 0;
        }
        if (errno == EINTR) continue;
        ec = errno_code(errno);
        return 0;
      }
    }
    return 0;
  }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    auto n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, beast::error_code& ec) {
    ec = {};
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it) {
      net::const_buffer b = *it;
      if (b.size() == 0) continue;
      for (;;) {
        ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno == EINTR) continue;
        ec = errno_code(errno);
        return 0;
      }
    }
    return 0;
  }

  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    beast::error_code ec;
    auto n = write_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  int& fd_;
};

template <class Fields>
std::multimap<std::string, std::string> lower_headers(const Fields& fields) {
  std::multimap<std::string, std::string> out;
  for (const auto& f : fields) out.emplace(lower(f.name_string()), std::string(f.value()));
  return out;
}

}  // namespace

bool Response::has(std::string_view name) const { return headers.count(lower(name)) > 0; }

std::string Response::header(std::string_view name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::size_t Response::count(std::string_view name) const { return headers.count(lower(name)); }

// Owner: HttpClient. `buffer` holds bytes read past the end of the last response.
struct HttpClient::Impl {
  int fd = -1;
  std::string connect_error;
  beast::flat_buffer buffer;
  FdStream stream{fd};
  std::uint16_t port = 0;

  void set_timeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }

  bool send_all(const char* data, std::size_t size) {
    while (size > 0) {
      ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }
};

HttpClient::HttpClient(std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->port = port;
  impl_->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl_->fd < 0) {
    impl_->connect_error = std::strerror(errno);
    return;
  }
  impl_->set_timeout(timeout);
  int one = 1;
  ::setsockopt(impl_->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(impl_->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    impl_->connect_error = std::strerror(errno);
    ::close(impl_->fd);
    impl_->fd = -1;
  }
}

HttpClient::~HttpClient() { close(); }

bool HttpClient::connected() const { return impl_->fd >= 0; }
const std::string& HttpClient::connect_error() const { return impl_->connect_error; }
void HttpClient::set_timeout(std::chrono::milliseconds timeout) { impl_->set_timeout(timeout); }

bool HttpClient::send_raw(std::string_view bytes) {
  return connected() && impl_->send_all(bytes.data(), bytes.size());
}

bool HttpClient::send_urgent(char byte) {
  return connected() && ::send(impl_->fd, &byte, 1, MSG_OOB | MSG_NOSIGNAL) == 1;
}

bool HttpClient::send_pattern(std::uint64_t n, std::uint64_t offset) {
  if (!connected()) return false;
  std::vector<char> block(kPiece + 26);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = pattern_byte(i);
  for (std::uint64_t sent = 0; sent < n;) {
    auto len = static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, n - sent));
    if (!impl_->send_all(block.data() + (offset + sent) % 26, len)) return false;
    sent += len;
  }
  return true;
}

bool HttpClient::send_chunked_pattern(std::uint64_t n, std::size_t chunk) {
  if (!connected() || chunk == 0) return false;
  for (std::uint64_t sent = 0; sent < n;) {
    auto len = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, n - sent));
    char line[32];
    int m = std::snprintf(line, sizeof line, "%zx\r\n", len);
    if (!impl_->send_all(line, static_cast<std::size_t>(m))) return false;
    if (!send_pattern(len, sent)) return false;
    if (!impl_->send_all("\r\n", 2)) return false;
    sent += len;
  }
  return impl_->send_all("0\r\n\r\n", 5);
}

Response HttpClient::read_response(bool head_request) {
  Response out;
  if (!connected()) {
    out.error = "not connected";
    return out;
  }
  http::response_parser<http::string_body> parser;
  parser.header_limit(1024 * 1024);
  parser.body_limit(256ull * 1024 * 1024);
  if (head_request) parser.skip(true);
  beast::error_code ec;
  http::read(impl_->stream, impl_->buffer, parser, ec);
  return response_from(parser, ec);
}

StreamedResponse HttpClient::read_response_streaming(bool head_request) {
  StreamedResponse out;
  if (!connected()) {
    out.error = "not connected";
    return out;
  }
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(1024 * 1024);
  parser.body_limit(boost::none);
  if (head_request) parser.skip(true);
  beast::error_code ec;
  http::read_header(impl_->stream, impl_->buffer, parser, ec);
  if (ec) {
    out.error = ec.message();
    return out;
  }
  out.status = parser.get().result_int();
  out.headers = lower_headers(parser.get());
  std::vector<char> storage(kPiece);
  while (!parser.is_done()) {
    parser.get().body().data = storage.data();
    parser.get().body().size = storage.size();
    http::read(impl_->stream, impl_->buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    // Counted also when the read failed: the bytes before a cut are part of what arrived.
    const std::size_t got = storage.size() - parser.get().body().size;
    for (std::size_t i = 0; i < got && out.pattern_ok; ++i) {
      if (storage[i] != pattern_byte(out.body_bytes + i)) out.pattern_ok = false;
    }
    out.body_bytes += got;
    if (ec) {
      out.error = ec.message();
      return out;
    }
  }
  return out;
}

Response HttpClient::request(std::string_view method, std::string_view target,
                             const Headers& headers, std::string_view body) {
  bool has_host = false;
  bool has_framing = false;
  std::string req = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n";
  for (const auto& [name, value] : headers) {
    const auto n = lower(name);
    has_host = has_host || n == "host";
    has_framing = has_framing || n == "content-length" || n == "transfer-encoding";
    req += name + ": " + value + "\r\n";
  }
  if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(impl_->port) + "\r\n";
  if (!has_framing && (!body.empty() || method == "POST" || method == "PUT")) {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  if (!send_raw(req)) {
    Response out;
    out.error = connected() ? std::string("send failed: ") + std::strerror(errno) : "not connected";
    return out;
  }
  for (;;) {
    Response r = read_response(method == "HEAD");
    if (!r.ok() || r.status >= 200 || r.status == 101) return r;
  }
}

std::string HttpClient::read_raw(std::size_t n) {
  std::string out;
  const auto buffered = std::min(n, impl_->buffer.size());
  if (buffered > 0) {
    const auto* p = static_cast<const char*>(impl_->buffer.data().data());
    out.assign(p, buffered);
    impl_->buffer.consume(buffered);
  }
  std::array<char, 16 * 1024> storage{};
  while (out.size() < n && connected()) {
    beast::error_code ec;
    auto got = impl_->stream.read_some(
        net::buffer(storage.data(), std::min(storage.size(), n - out.size())), ec);
    if (ec) break;
    out.append(storage.data(), got);
  }
  return out;
}

bool HttpClient::is_closed_by_peer() {
  if (!connected()) return true;
  if (impl_->buffer.size() > 0) return false;
  std::array<char, 4096> storage{};
  beast::error_code ec;
  auto got = impl_->stream.read_some(net::buffer(storage), ec);
  if (!ec) {
    // Data, not a close: keep it for the next read.
    auto dst = impl_->buffer.prepare(got);
    std::memcpy(dst.data(), storage.data(), got);
    impl_->buffer.commit(got);
    return false;
  }
  return ec == net::error::eof || ec == beast::errc::connection_reset;
}

void HttpClient::shutdown_write() {
  if (connected()) ::shutdown(impl_->fd, SHUT_WR);
}

void HttpClient::close() {
  if (impl_ && impl_->fd >= 0) {
    ::close(impl_->fd);
    impl_->fd = -1;
  }
}

void HttpClient::reset() {
  if (impl_ && impl_->fd >= 0) {
    const linger abort{1, 0};
    ::setsockopt(impl_->fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  close();
}

Response fetch(std::uint16_t port, std::string_view target, const Headers& headers,
               std::chrono::milliseconds timeout) {
  HttpClient client(port, timeout);
  if (!client.connected()) {
    Response out;
    out.error = "connect: " + client.connect_error();
    return out;
  }
  return client.get(target, headers);
}

}  // namespace proxyd::test
