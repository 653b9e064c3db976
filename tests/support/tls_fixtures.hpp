// TLS for integration tests: certificates made during the run with the openssl command line (no
// private key is ever committed), and a small blocking TLS client over OpenSSL with timeouts on
// every socket wait, so a test never hangs. Plain headers: OpenSSL stays in the .cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/http_client.hpp"

namespace proxyd::test {

// The bytes of a file (an OCSP response, say), "" if it cannot be read.
std::string file_bytes(const std::string& path);

// A certificate and its key, as files.
struct CertFiles {
  std::string cert;  // PEM: the leaf, then the CA that signed it (the chain proxyd serves)
  std::string key;
};

// A test CA (ECDSA P-256) in a fresh temp dir, and the leaf certificates it signs.
// Owner: the test. Lifetime: files stay until destruction, which removes the directory.
class TestPki {
 public:
  explicit TestPki(std::string name = "proxyd test CA");
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& ca() const { return ca_cert_; }  // PEM file of the CA certificate

  // A leaf for `cn` with subjectAltName DNS:`dns`... and IP:127.0.0.1, written to
  // DIR/FILE.pem and DIR/FILE.key (overwritten if they exist: a reload test renews in place).
  // Throws std::runtime_error with openssl's output if a command fails.
  CertFiles issue(const std::string& file, const std::string& cn,
                  const std::vector<std::string>& dns = {"localhost"});

  // An OCSP response about the leaf of `files`, signed by the CA with `openssl ocsp` (status good
  // or revoked, nextUpdate `valid_minutes` ahead), written to DIR/FILE (replaced whole if it
  // exists). Returns its path.
  enum class OcspStatus { good, revoked };
  std::string ocsp(const CertFiles& files, const std::string& file,
                   OcspStatus status = OcspStatus::good, int valid_minutes = 60);

 private:
  std::string dir_;
  std::string ca_cert_;
  std::string ca_key_;
};

struct TlsOptions {
  std::string ca;   // trusted CA file; "" = do not verify the server
  std::string sni;  // "" = send none
  int max_version = 0;  // e.g. TLS1_1_VERSION (0x0302) to act as an old client; 0 = any
  std::string alpn;     // offered protocol, e.g. "http/1.1"; "" = none
  std::shared_ptr<void> session;  // TlsClient::session() of an earlier connection: resume it
  bool ocsp = false;  // ask for the server's stapled OCSP response (status_request)
};

// One TLS client connection to 127.0.0.1:port, handshake done in the constructor.
// Owner: one test thread. Lifetime: closed in the destructor.
class TlsClient {
 public:
  TlsClient(std::uint16_t port, TlsOptions options = {},
            std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool ok() const;                   // connected and the handshake succeeded
  const std::string& error() const;  // why not
  std::string peer_cn() const;       // the server certificate's CN
  std::string version() const;       // "TLSv1.3"
  std::string alpn() const;          // the protocol the server chose, "" = none
  bool resumed() const;
  // The OCSP response the server stapled (DER); "" if none (or none was asked for).
  std::string ocsp_response() const;
  // The TLS session to resume later (TLS 1.3 tickets arrive after the handshake: take it after a
  // response was read); null if there is none.
  std::shared_ptr<void> session() const;
  // The ticket a session() carries, as bytes; "" if it has none.
  static std::string ticket(const std::shared_ptr<void>& session);

  bool send(std::string_view bytes);
  // One response to a request (Content-Length or chunked body, or none for 1xx/204/304).
  Response read_response();
  Response get(std::string_view target, const Headers& headers = {});
  // Up to n bytes, whatever arrives first; "" on EOF, error or timeout.
  std::string read_some(std::size_t n);
  // Waits for the server to close (close_notify, EOF or reset): true if it did.
  bool is_closed_by_peer();
  // Gives up: closes the connection with a reset (SO_LINGER 0) and no close_notify.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The value of one sample (`name{labels}` exactly as exposed) from GET /metrics on the admin
// port; -1 when it is not there.
double metric_value(std::uint16_t admin_port, const std::string& sample);
// Polls /metrics until `sample` reaches `want` or 5 s pass (a count lands just after what it
// counts, e.g. a connection's close); its last value.
double wait_metric(std::uint16_t admin_port, const std::string& sample, double want);
// The same for a gauge that falls: until `sample` is `want` or less.
double wait_metric_down(std::uint16_t admin_port, const std::string& sample, double want);

}  // namespace proxyd::test
