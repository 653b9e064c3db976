// TLS contexts (docs/configuration.md, "TLS"): built from a validated config by build_tls(), in
// the thread that loads the config (startup, reload, --check), and never changed afterwards. A
// listener's contexts reach its workers inside the routing snapshot, so a reload swaps them for
// new handshakes while every open connection keeps the SSL object (and the SSL_CTX it holds a
// reference to) it was accepted with. Only OpenSSL's opaque types appear here: no Asio.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config.hpp"

using SSL_CTX = struct ssl_ctx_st;
using SSL = struct ssl_st;

namespace proxyd {

// One SSL_CTX, freed with its owner (SSL objects made from it hold their own reference).
class SslContext {
 public:
  explicit SslContext(SSL_CTX* ctx) : ctx_(ctx) {}
  ~SslContext();
  SslContext(const SslContext&) = delete;
  SslContext& operator=(const SslContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_;
};

// An OCSP response stapled to the handshakes of one certificate (docs/configuration.md, "TLS"):
// the file's bytes, checked when read to be a successful response about that certificate, with
// status good and current.
struct OcspStaple {
  std::string response;          // DER, as in the file
  std::int64_t next_update = 0;  // seconds since the epoch; 0: the response gives none
  // Whether it may be stapled at `now` (seconds since the epoch): before its nextUpdate.
  bool current(std::int64_t now) const { return next_update == 0 || now < next_update; }
};

// Reads `ocsp_file` and checks it, at `now` (seconds since the epoch), against the first
// certificate of the PEM chain in `cert_file`, whose issuer must follow it there. On failure the
// error says what is wrong (not naming `ocsp_file`). build_tls() does the same for each `ocsp`.
struct OcspRead {
  std::optional<OcspStaple> staple;
  std::string error;
};
OcspRead read_ocsp_staple(const std::string& ocsp_file, const std::string& cert_file,
                          std::int64_t now);

// A TLS listener's server side: one context per certificate, the first the default (clients
// without SNI or with a name no certificate has). The default context's servername callback
// switches a handshake to the context whose certificate names the client's SNI: an exact name
// first, then a wildcard (`*.example.com` covers one label), in the config's order.
// Immutable once built; shared by the workers (OpenSSL locks what its contexts share, such as
// the session cache).
class ServerTls {
 public:
  struct Certificate {
    std::shared_ptr<SslContext> context;
    std::vector<std::string> names;  // DNS names (subjectAltName, else the CN), lowercase
    std::shared_ptr<const OcspStaple> ocsp;  // stapled when a client asks; null: none
  };

  // A new SSL object for one accepted connection, on the default context. The ServerTls must
  // outlive its handshake (the session holds it).
  SSL* new_connection() const;
  // The context for server name `name` (no SNI: ""), never null.
  SSL_CTX* context_for(std::string_view name) const;
  const std::vector<Certificate>& certificates() const { return certificates_; }

 private:
  friend struct TlsBuilder;
  std::vector<Certificate> certificates_;
};

// A pool's client side: the context its connections are made from, the name to send as SNI
// and to verify (empty: each server's own host), and whether the server is verified.
struct ClientTls {
  std::shared_ptr<SslContext> context;
  std::string sni;
  bool verify = true;

  // A new SSL object for a connection to a server written `server_name` (host:port) in the
  // config, with SNI and (when verifying) the host name check set; null if OpenSSL fails.
  SSL* new_connection(std::string_view server_name) const;
};

// Every context one config makes.
struct TlsContexts {
  std::vector<std::shared_ptr<const ServerTls>> listeners;  // by listener index; null: plain
  std::vector<std::pair<std::string, std::shared_ptr<const ClientTls>>> pools;  // by pool name

  // Looked up per upstream attempt: a plain loop, no reference count touched, nothing at all when
  // no pool has tls.
  const ClientTls* pool(std::string_view name) const {
    for (const auto& [pool_name, tls] : pools)
      if (pool_name == name) return tls.get();
    return nullptr;
  }
  std::shared_ptr<const ClientTls> pool_shared(std::string_view name) const;
};

struct TlsBuild {
  std::shared_ptr<const TlsContexts> contexts;  // set when errors is empty
  std::vector<ConfigError> errors;  // `FILE:LINE: key: PATH: message`, one per bad file
};

// Reads every certificate, key, OCSP response and CA file the config names and checks them (a
// readable PEM chain, a key that matches it, an OCSP response for it, a cipher list OpenSSL
// accepts). Never throws.
TlsBuild build_tls(const Config& config);

// What a reload publishes: `next` (built from the new file) with its listeners mapped onto the
// ones proxyd runs, which are those of the config it started with (a listener change takes effect
// on restart): a running listener gets the new contexts of the listener of the same name when the
// new file still gives it `tls`, else it keeps the ones in use (`current`), so a reload can never
// leave a TLS listener without certificates.
std::shared_ptr<const TlsContexts> for_running_listeners(const Config& running,
                                                         const TlsContexts* current,
                                                         const Config& next_config,
                                                         const TlsContexts& next);

// The host part of a server written host:port ("[::1]:443" -> "::1").
std::string_view server_host(std::string_view server_name);

}  // namespace proxyd
