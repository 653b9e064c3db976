// Test certificates (openssl command line) and the blocking TLS client of tls_fixtures.hpp.
#include "tests/support/tls_fixtures.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/beast_response.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// Runs openssl with `args`; its output. Throws if it fails.
std::string openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = run_program(argv, std::chrono::seconds(20));
  if (r.exit_code != 0) {
    std::string command;
    for (const auto& a : argv) command += a + " ";
    throw std::runtime_error(command + "failed: " + r.output);
  }
  return r.output;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string last_ssl_error() {
  unsigned long code = ERR_get_error();
  std::string out;
  while (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    out = text;
    code = ERR_get_error();
  }
  return out.empty() ? "TLS error" : out;
}

}  // namespace

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TestPki::TestPki(std::string name) : dir_(make_temp_dir("proxyd-pki")) {
  ca_cert_ = dir_ + "/ca.pem";
  ca_key_ = dir_ + "/ca.key";
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", ca_key_, "-out", ca_cert_, "-days", "2", "-subj", "/CN=" + name});
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

CertFiles TestPki::issue(const std::string& file, const std::string& cn,
                         const std::vector<std::string>& dns) {
  const std::string base = dir_ + "/" + file;
  const std::string csr = base + ".csr";
  const std::string ext = base + ".ext";
  const std::string leaf = base + ".leaf.pem";
  std::string san = "subjectAltName=IP:127.0.0.1";
  for (const std::string& name : dns) san += ",DNS:" + name;
  std::ofstream(ext) << san << "\n";
  // Written next to the final names first, then renamed: a reload never reads half a file.
  openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
           base + ".key.new", "-out", csr, "-subj", "/CN=" + cn});
  openssl({"x509", "-req", "-in", csr, "-CA", ca_cert_, "-CAkey", ca_key_, "-CAcreateserial",
           "-out", leaf, "-days", "2", "-extfile", ext});
  {
    std::ofstream chain(base + ".pem.new");
    chain << std::ifstream(leaf).rdbuf() << std::ifstream(ca_cert_).rdbuf();
  }
  std::filesystem::rename(base + ".pem.new", base + ".pem");
  std::filesystem::rename(base + ".key.new", base + ".key");
  return {base + ".pem", base + ".key"};
}

std::string TestPki::ocsp(const CertFiles& files, const std::string& file, OcspStatus status,
                          int valid_minutes) {
  const std::string base = dir_ + "/" + file;
  // The responder's database (`openssl ca`'s index format) lists the certificate by serial.
  std::string serial = openssl({"x509", "-in", files.cert, "-noout", "-serial"});
  serial = serial.substr(serial.find('=') + 1);
  serial.erase(serial.find_last_not_of("\r\n") + 1);
  std::ofstream(base + ".index")
      << (status == OcspStatus::good ? "V\t301231235959Z\t\t" : "R\t301231235959Z\t260101000000Z\t")
      << serial << "\tunknown\t/CN=test\n";
  openssl({"ocsp", "-issuer", ca_cert_, "-cert", files.cert, "-no_nonce", "-reqout",
           base + ".req"});
  openssl({"ocsp", "-index", base + ".index", "-rsigner", ca_cert_, "-rkey", ca_key_, "-CA",
           ca_cert_, "-reqin", base + ".req", "-respout", base + ".new", "-nmin",
           std::to_string(valid_minutes)});
  std::filesystem::rename(base + ".new", base);
  return base;
}

// A blocking SyncStream over the SSL object, for Beast's http::read.
struct SslSyncStream {
  SSL* ssl = nullptr;

  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    ec = {};
    auto b = *boost::asio::buffer_sequence_begin(buffers);
    const int n = SSL_read(ssl, b.data(), static_cast<int>(b.size()));
    if (n > 0) return static_cast<std::size_t>(n);
    const int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN) {
      ec = boost::asio::error::eof;
    } else {
      ec = boost::asio::error::connection_reset;
    }
    return 0;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    return read_some(buffers, ec);
  }
};

struct TlsClient::Impl {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  std::string error;
  bool ok = false;
  beast::flat_buffer buffer;

  ~Impl() {
    // A close_notify first: OpenSSL will not resume a session whose connection ended without one.
    if (ssl != nullptr && ok) SSL_shutdown(ssl);
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
};

TlsClient::TlsClient(std::uint16_t port, TlsOptions options, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    s.error = std::string("connect: ") + std::strerror(errno);
    return;
  }
  s.ctx = SSL_CTX_new(TLS_client_method());
  if (options.max_version != 0) {
    // An old client, as old clients are: OpenSSL 3 refuses TLS 1.1 at its default level.
    SSL_CTX_set_security_level(s.ctx, 0);
    SSL_CTX_set_min_proto_version(s.ctx, 0);
    SSL_CTX_set_max_proto_version(s.ctx, options.max_version);
    SSL_CTX_set_cipher_list(s.ctx, "DEFAULT:@SECLEVEL=0");
  }
  if (!options.ca.empty()) {
    SSL_CTX_load_verify_locations(s.ctx, options.ca.c_str(), nullptr);
    SSL_CTX_set_verify(s.ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!options.alpn.empty()) {
    std::string wire(1, static_cast<char>(options.alpn.size()));
    wire += options.alpn;
    SSL_CTX_set_alpn_protos(s.ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
  }
  s.ssl = SSL_new(s.ctx);
  if (!options.sni.empty()) SSL_set_tlsext_host_name(s.ssl, options.sni.c_str());
  if (options.session) SSL_set_session(s.ssl, static_cast<SSL_SESSION*>(options.session.get()));
  if (options.ocsp) SSL_set_tlsext_status_type(s.ssl, TLSEXT_STATUSTYPE_ocsp);
  SSL_set_fd(s.ssl, s.fd);
  if (SSL_connect(s.ssl) != 1) {
    s.error = "handshake: " + last_ssl_error();
    return;
  }
  s.ok = true;
}

TlsClient::~TlsClient() = default;

bool TlsClient::ok() const { return impl_->ok; }
const std::string& TlsClient::error() const { return impl_->error; }

std::string TlsClient::peer_cn() const {
  if (!impl_->ok) return "";
  X509* cert = SSL_get1_peer_certificate(impl_->ssl);
  if (cert == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  return cn;
}

std::string TlsClient::version() const { return impl_->ok ? SSL_get_version(impl_->ssl) : ""; }

std::string TlsClient::alpn() const {
  const unsigned char* data = nullptr;
  unsigned length = 0;
  if (impl_->ok) SSL_get0_alpn_selected(impl_->ssl, &data, &length);
  return std::string(reinterpret_cast<const char*>(data), data ? length : 0);
}

std::shared_ptr<void> TlsClient::session() const {
  SSL_SESSION* session = impl_->ok ? SSL_get1_session(impl_->ssl) : nullptr;
  if (session == nullptr) return nullptr;
  return std::shared_ptr<void>(session, [](void* p) { SSL_SESSION_free(static_cast<SSL_SESSION*>(p)); });
}

std::string TlsClient::ticket(const std::shared_ptr<void>& session) {
  if (!session) return "";
  const unsigned char* data = nullptr;
  std::size_t length = 0;
  SSL_SESSION_get0_ticket(static_cast<const SSL_SESSION*>(session.get()), &data, &length);
  return std::string(reinterpret_cast<const char*>(data), data ? length : 0);
}

std::string TlsClient::ocsp_response() const {
  const unsigned char* data = nullptr;
  const long length = impl_->ok ? SSL_get_tlsext_status_ocsp_resp(impl_->ssl, &data) : -1;
  if (data == nullptr || length <= 0) return "";
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(length));
}

bool TlsClient::resumed() const { return impl_->ok && SSL_session_reused(impl_->ssl) == 1; }

bool TlsClient::send(std::string_view bytes) {
  if (!impl_->ok) return false;
  while (!bytes.empty()) {
    const int n = SSL_write(impl_->ssl, bytes.data(), static_cast<int>(bytes.size()));
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

Response TlsClient::read_response() {
  Response out;
  if (!impl_->ok) {
    out.error = "not connected: " + impl_->error;
    return out;
  }
  SslSyncStream stream{impl_->ssl};
  http::response_parser<http::string_body> parser;
  parser.body_limit(64ull * 1024 * 1024);
  boost::system::error_code ec;
  http::read(stream, impl_->buffer, parser, ec);
  return response_from(parser, ec);
}

Response TlsClient::get(std::string_view target, const Headers& headers) {
  std::string request = "GET " + std::string(target) + " HTTP/1.1\r\n";
  bool host = false;
  for (const auto& [name, value] : headers) {
    request += name + ": " + value + "\r\n";
    host = host || lower(name) == "host";
  }
  if (!host) request += "Host: localhost\r\n";
  request += "\r\n";
  if (!send(request)) {
    Response out;
    out.error = "send failed: " + impl_->error;
    return out;
  }
  return read_response();
}

std::string TlsClient::read_some(std::size_t n) {
  if (!impl_->ok) return "";
  if (impl_->buffer.size() > 0) {
    const std::size_t take = std::min(n, impl_->buffer.size());
    std::string out(static_cast<const char*>(impl_->buffer.data().data()), take);
    impl_->buffer.consume(take);
    return out;
  }
  std::string out(n, '\0');
  const int got = SSL_read(impl_->ssl, out.data(), static_cast<int>(n));
  out.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return out;
}

void TlsClient::reset() {
  if (impl_->fd < 0) return;
  const linger abort{1, 0};
  ::setsockopt(impl_->fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  ::close(impl_->fd);
  impl_->fd = -1;
  impl_->ok = false;  // no close_notify from the destructor
}

bool TlsClient::is_closed_by_peer() {
  if (!impl_->ok) return true;
  char byte = 0;
  const int n = SSL_read(impl_->ssl, &byte, 1);
  if (n > 0) return false;
  const int err = SSL_get_error(impl_->ssl, n);
  if (err == SSL_ERROR_ZERO_RETURN) return true;
  // A timeout shows as a syscall error with EAGAIN; EOF or a reset as a closed connection.
  return !(err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK));
}

double metric_value(std::uint16_t admin_port, const std::string& sample) {
  const Response r = fetch(admin_port, "/metrics");
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  }
  return -1;
}

namespace {

// Polls /metrics every 20 ms until `reached(value)` or 5 s pass; the last value.
template <class Reached>
double poll_metric(std::uint16_t admin_port, const std::string& sample, Reached reached) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  double value = metric_value(admin_port, sample);
  while (!reached(value) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    value = metric_value(admin_port, sample);
  }
  return value;
}

}  // namespace

double wait_metric(std::uint16_t admin_port, const std::string& sample, double want) {
  return poll_metric(admin_port, sample, [want](double value) { return value >= want; });
}

double wait_metric_down(std::uint16_t admin_port, const std::string& sample, double want) {
  return poll_metric(admin_port, sample,
                     [want](double value) { return value >= 0 && value <= want; });
}

}  // namespace proxyd::test
