// Building the TLS contexts of tls.hpp from the config: files read and checked, server and client
// settings, SNI selection, ALPN, session resumption.
#include "proxy/tls.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>

namespace proxyd {
namespace {

// Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. TLS 1.3 suites are
// OpenSSL's (all AEAD); `ciphers:` replaces this list.
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// ALPN, wire format: the protocols proxyd speaks to clients, in its order of preference. A
// listener with HTTP/2 offers both; one without, http/1.1 alone (kAlpnHttp11 is the tail).
constexpr unsigned char kAlpnH2Http11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr const unsigned char* kAlpnHttp11 = kAlpnH2Http11 + 3;
constexpr unsigned kAlpnHttp11Size = sizeof kAlpnH2Http11 - 3;

// OpenSSL's reason for the last failure, cleared from this thread's queue.
std::string openssl_reason() {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return "unknown OpenSSL error";
  const char* reason = ERR_reason_error_string(last);
  return reason != nullptr ? reason : "OpenSSL error " + std::to_string(last);
}

// Whether `path` can be opened for reading; `why` says why not (a missing file and a file
// OpenSSL cannot parse are different mistakes, and the message should say which).
bool readable(const std::string& path, std::string& why) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The DNS names a certificate is for: its subjectAltName DNS entries, else its CN.
std::vector<std::string> dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* dns = name->d.dNSName;
      names.push_back(lowercase(std::string_view(reinterpret_cast<const char*>(dns->data),
                                                 static_cast<std::size_t>(dns->length))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
      names.push_back(lowercase(cn));
  }
  return names;
}

// RFC 6125 6.4.3: a wildcard stands for exactly one leftmost label.
bool wildcard_matches(std::string_view pattern, std::string_view name) {
  if (!pattern.starts_with("*.")) return false;
  const std::string_view suffix = pattern.substr(1);  // ".example.com"
  if (name.size() <= suffix.size() || !name.ends_with(suffix)) return false;
  return name.substr(0, name.size() - suffix.size()).find('.') == std::string_view::npos;
}

// --- Session resumption. Tickets (stateless, shared by every worker and every reload) are
// encrypted with keys derived from one process-wide random secret and the current hour: a
// ticket is accepted during the hour it was issued and the next one (then renewed), so the keys
// rotate every hour without a timer or a lock. The server-side session cache of the default
// context serves clients that do not take tickets.

constexpr std::int64_t kTicketPeriodSeconds = 3600;

const std::array<unsigned char, 32>& ticket_secret() {
  static const std::array<unsigned char, 32> secret = [] {
    std::array<unsigned char, 32> s{};
    if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1) std::abort();
    return s;
  }();
  return secret;
}

struct TicketKeys {
  std::array<unsigned char, 16> name;
  std::array<unsigned char, 32> aes;
  std::array<unsigned char, 32> hmac;
};

TicketKeys derive_ticket_keys(std::int64_t period) {
  const auto derive = [&](char label, unsigned char* out) {
    unsigned char input[1 + sizeof period];
    input[0] = static_cast<unsigned char>(label);
    std::memcpy(input + 1, &period, sizeof period);
    std::size_t length = 0;
    char digest[] = "SHA256";
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest, nullptr, ticket_secret().data(),
                  ticket_secret().size(), input, sizeof input, out, 32, &length) == nullptr)
      std::abort();
  };
  TicketKeys keys{};
  std::array<unsigned char, 32> name{};
  derive('n', name.data());
  std::memcpy(keys.name.data(), name.data(), keys.name.size());
  derive('a', keys.aes.data());
  derive('h', keys.hmac.data());
  return keys;
}

// The keys of one period, derived once per thread and period: a TLS 1.3 handshake issues two
// tickets, and deriving (three HMACs, each fetching its algorithm from OpenSSL's providers) for
// each would cost every full handshake tens of microseconds. Per thread, so no lock.
const TicketKeys& ticket_keys(std::int64_t period) {
  struct Cached {
    std::int64_t period = -1;
    TicketKeys keys{};
  };
  thread_local std::array<Cached, 2> cache;  // the current and the previous period
  Cached& slot = cache[static_cast<std::size_t>(period & 1)];
  if (slot.period != period) {
    slot.keys = derive_ticket_keys(period);
    slot.period = period;
  }
  return slot.keys;
}

int ticket_key_callback(SSL* ssl, unsigned char key_name[16], unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::int64_t period = now / kTicketPeriodSeconds;
  const auto set_mac = [&](const TicketKeys& keys) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                          const_cast<unsigned char*>(keys.hmac.data()),
                                          keys.hmac.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    return EVP_MAC_CTX_set_params(mac, params) == 1;
  };
  if (encrypt == 1) {
    const TicketKeys& keys = ticket_keys(period);
    std::memcpy(key_name, keys.name.data(), keys.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys.aes.data(), iv) != 1) return -1;
    return set_mac(keys) ? 1 : -1;
  }
  for (const std::int64_t p : {period, period - 1}) {
    const TicketKeys& keys = ticket_keys(p);
    if (std::memcmp(key_name, keys.name.data(), keys.name.size()) != 0) continue;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys.aes.data(), iv) != 1) return -1;
    if (!set_mac(keys)) return -1;
    // 2: accepted, and a new ticket is issued. TLS 1.3 clients should use a ticket once
    // (RFC 8446, C.4), so a resumption that issued none left such a client's next connection a
    // full handshake (wrk: a third to a half of them). HAProxy and nginx issue one per
    // resumption too. TLS 1.2 tickets are reused until the keys of their period retire.
    return p == period && SSL_version(ssl) < TLS1_3_VERSION ? 1 : 2;
  }
  return 0;  // unknown key: a full handshake
}

// ALPN: our first protocol the client offers (h2, if the listener speaks it, then http/1.1);
// a client offering none of them gets no ALPN answer rather than a failed handshake, and speaks
// HTTP/1.1 or leaves. `arg` is non-null on a listener with HTTP/2.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                unsigned int in_length, void* arg) {
  unsigned char* selected = nullptr;
  const bool h2 = arg != nullptr;
  if (SSL_select_next_proto(&selected, out_length, h2 ? kAlpnH2Http11 : kAlpnHttp11,
                            h2 ? sizeof kAlpnH2Http11 : kAlpnHttp11Size, in,
                            in_length) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int select_certificate(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;
  SSL_CTX* chosen = static_cast<const ServerTls*>(arg)->context_for(name);
  if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
  return SSL_TLSEXT_ERR_OK;
}

// --- OCSP stapling. A response file is checked once, when read: it must be a successful basic
// response with a single response about the certificate (matched by certificate ID, with the
// hash the responder used), status good, thisUpdate not ahead of the clock (5 minutes of skew
// allowed) and nextUpdate, when given, still ahead. Its signature is not verified: the file is the
// operator's, and `openssl ocsp`, which fetches it, verifies it. A handshake staples it only while
// it is current.

constexpr std::int64_t kOcspClockSkewSeconds = 300;

struct OcspResponseFree {
  void operator()(OCSP_RESPONSE* r) const { OCSP_RESPONSE_free(r); }
};
struct OcspBasicFree {
  void operator()(OCSP_BASICRESP* r) const { OCSP_BASICRESP_free(r); }
};
struct OcspIdFree {
  void operator()(OCSP_CERTID* id) const { OCSP_CERTID_free(id); }
};

bool read_whole(const std::string& path, std::string& out, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    why = std::string("cannot read: ") + std::strerror(errno);
    return false;
  }
  return true;
}

std::int64_t epoch_seconds(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string utc_text(std::int64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The issuer of `leaf` among `chain` (the certificates after it in its file), or null.
X509* issuer_of(X509* leaf, STACK_OF(X509)* chain) {
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* candidate = sk_X509_value(chain, i);
    if (X509_check_issued(candidate, leaf) == X509_V_OK) return candidate;
  }
  return nullptr;
}

// Checks `der` against `leaf` (issued by one of `chain`, from `cert_file`) at `now`; sets
// `next_update`. Returns what is wrong, or "".
std::string check_staple(const std::string& der, X509* leaf, STACK_OF(X509)* chain,
                         const std::string& cert_file, std::int64_t now,
                         std::int64_t& next_update) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = bytes;
  std::unique_ptr<OCSP_RESPONSE, OcspResponseFree> response(
      d2i_OCSP_RESPONSE(nullptr, &end, static_cast<long>(der.size())));
  ERR_clear_error();
  if (response == nullptr || end != bytes + der.size()) return "not a DER-encoded OCSP response";
  const int status = OCSP_response_status(response.get());
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL)
    return std::string("the responder answered \"") + OCSP_response_status_str(status) + "\"";
  std::unique_ptr<OCSP_BASICRESP, OcspBasicFree> basic(OCSP_response_get1_basic(response.get()));
  if (basic == nullptr) return "not a basic OCSP response";
  X509* issuer = issuer_of(leaf, chain);
  if (issuer == nullptr) return "the certificate's issuer must follow it in " + cert_file;
  for (int i = 0; i < OCSP_resp_count(basic.get()); ++i) {
    OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
    const OCSP_CERTID* id = OCSP_SINGLERESP_get0_id(single);
    ASN1_OBJECT* hash = nullptr;
    OCSP_id_get0_info(nullptr, &hash, nullptr, nullptr, const_cast<OCSP_CERTID*>(id));
    const EVP_MD* md = hash != nullptr ? EVP_get_digestbyobj(hash) : nullptr;
    if (md == nullptr) continue;
    std::unique_ptr<OCSP_CERTID, OcspIdFree> mine(OCSP_cert_to_id(md, leaf, issuer));
    if (mine == nullptr || OCSP_id_cmp(mine.get(), id) != 0) continue;
    int reason = 0;
    ASN1_GENERALIZEDTIME* revoked = nullptr;
    ASN1_GENERALIZEDTIME* this_update = nullptr;
    ASN1_GENERALIZEDTIME* next = nullptr;
    const int cert_status =
        OCSP_single_get0_status(single, &reason, &revoked, &this_update, &next);
    if (cert_status == V_OCSP_CERTSTATUS_REVOKED) return "says the certificate is revoked";
    if (cert_status != V_OCSP_CERTSTATUS_GOOD) return "says the certificate's status is unknown";
    if (this_update != nullptr && epoch_seconds(this_update) > now + kOcspClockSkewSeconds)
      return "is not valid yet: its thisUpdate is " + utc_text(epoch_seconds(this_update));
    next_update = next != nullptr ? epoch_seconds(next) : 0;
    if (next != nullptr && next_update <= now)
      return "is out of date: its nextUpdate, " + utc_text(next_update) + ", has passed";
    return "";
  }
  return "is not about the certificate in " + cert_file;
}

// The status callback of a context with a staple: the response, copied into OpenSSL's memory
// (the handshake frees it), while it is current; else nothing is stapled.
int staple_ocsp(SSL* ssl, void* arg) {
  const auto* staple = static_cast<const OcspStaple*>(arg);
  if (staple == nullptr || !staple->current(static_cast<std::int64_t>(std::time(nullptr))))
    return SSL_TLSEXT_ERR_NOACK;
  void* copy = OPENSSL_memdup(staple->response.data(), staple->response.size());
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  SSL_set_tlsext_status_ocsp_resp(ssl, static_cast<unsigned char*>(copy),
                                  static_cast<long>(staple->response.size()));
  return SSL_TLSEXT_ERR_OK;
}

int min_version(TlsVersion version) {
  return version == TlsVersion::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

}  // namespace

OcspRead read_ocsp_staple(const std::string& ocsp_file, const std::string& cert_file,
                          std::int64_t now) {
  OcspRead out;
  OcspStaple staple;
  if (!read_whole(ocsp_file, staple.response, out.error)) return out;
  if (!readable(cert_file, out.error)) {
    out.error = cert_file + ": " + out.error;
    return out;
  }
  BIO* in = BIO_new_file(cert_file.c_str(), "r");
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = sk_X509_new_null();
  if (in != nullptr) {
    leaf = PEM_read_bio_X509(in, nullptr, nullptr, nullptr);
    while (X509* next = PEM_read_bio_X509(in, nullptr, nullptr, nullptr)) sk_X509_push(chain, next);
    BIO_free(in);
  }
  ERR_clear_error();
  if (leaf == nullptr) {
    out.error = cert_file + ": not a PEM certificate chain";
  } else {
    out.error = check_staple(staple.response, leaf, chain, cert_file, now, staple.next_update);
    if (out.error.empty()) out.staple = std::move(staple);
  }
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  return out;
}

SslContext::~SslContext() { SSL_CTX_free(ctx_); }

SSL* ServerTls::new_connection() const { return SSL_new(certificates_.front().context->get()); }

SSL_CTX* ServerTls::context_for(std::string_view name) const {
  const std::string wanted = lowercase(name);
  for (const Certificate& c : certificates_)
    if (std::find(c.names.begin(), c.names.end(), wanted) != c.names.end()) return c.context->get();
  for (const Certificate& c : certificates_)
    for (const std::string& pattern : c.names)
      if (wildcard_matches(pattern, wanted)) return c.context->get();
  return certificates_.front().context->get();
}

std::string_view server_host(std::string_view server_name) {
  if (server_name.starts_with('[')) {
    const std::size_t close = server_name.find(']');
    return close == std::string_view::npos ? server_name.substr(1) : server_name.substr(1, close - 1);
  }
  return server_name.substr(0, server_name.rfind(':'));
}

SSL* ClientTls::new_connection(std::string_view server_name) const {
  SSL* ssl = SSL_new(context->get());
  if (ssl == nullptr) return nullptr;
  const std::string host(sni.empty() ? server_host(server_name) : std::string_view(sni));
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  const bool is_ip = ip != nullptr;
  ASN1_OCTET_STRING_free(ip);
  bool ok = true;
  // SNI carries host names only (RFC 6066 3); an IP address is verified against the
  // certificate's IP entries instead.
  if (!is_ip) ok = SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
  if (ok && verify) {
    ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
               : SSL_set1_host(ssl, host.c_str()) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    return nullptr;
  }
  return ssl;
}

std::shared_ptr<const ClientTls> TlsContexts::pool_shared(std::string_view name) const {
  for (const auto& [pool_name, tls] : pools)
    if (pool_name == name) return tls;
  return nullptr;
}

// Builds the contexts of one config, collecting an error per bad file or setting.
struct TlsBuilder {
  const Config& config;
  std::vector<ConfigError>& errors;

  void error(int line, const std::string& key, const std::string& file, const std::string& message) {
    errors.push_back({config.path, line, key, file.empty() ? message : file + ": " + message});
  }

  // Settings every context of a listener shares: versions, ciphers, ALPN, resumption.
  SSL_CTX* server_context(const TlsConfig& tls, bool h2) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) return nullptr;
    SSL_CTX_set_min_proto_version(ctx, min_version(tls.min_version));
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    // Idle keep-alive connections give their read and write buffers back (~34 KiB each), as
    // nginx and HAProxy do.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    static constexpr char kH2[] = "h2";
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, h2 ? const_cast<char*>(kH2) : nullptr);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_callback);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    static constexpr unsigned char kSessionContext[] = "proxyd";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    return ctx;
  }

  // The certificate's OCSP response, read and checked against the chain `ctx` loaded; null
  // after an error naming the file.
  std::shared_ptr<const OcspStaple> staple(const TlsCertificate& certificate, SSL_CTX* ctx) {
    auto out = std::make_shared<OcspStaple>();
    std::string why;
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    if (read_whole(certificate.ocsp, out->response, why))
      why = check_staple(out->response, SSL_CTX_get0_certificate(ctx), chain, certificate.cert,
                         static_cast<std::int64_t>(std::time(nullptr)), out->next_update);
    if (why.empty()) return out;
    error(certificate.line, certificate.where + ".ocsp", certificate.ocsp, why);
    return nullptr;
  }

  std::shared_ptr<const ServerTls> listener(const ListenerConfig& listener) {
    const TlsConfig& tls = *listener.tls;
    auto out = std::make_shared<ServerTls>();
    const std::string ciphers = tls.ciphers.empty() ? kDefaultCiphers : tls.ciphers;
    bool ciphers_checked = false;
    for (const TlsCertificate& certificate : tls.certificates) {
      auto context = std::make_shared<SslContext>(server_context(tls, listener.speaks_h2()));
      SSL_CTX* ctx = context->get();
      if (ctx == nullptr) {
        error(certificate.line, certificate.where, "", "cannot make a TLS context: " + openssl_reason());
        return nullptr;
      }
      ERR_clear_error();
      if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
        if (!ciphers_checked)
          error(tls.line, tls.where + ".ciphers", "", "no usable cipher in " + in_quotes(ciphers));
        ciphers_checked = true;
        continue;
      }
      ciphers_checked = true;
      std::string why;
      const std::string cert_key = certificate.where + ".cert";
      const std::string key_key = certificate.where + ".key";
      if (!readable(certificate.cert, why)) {
        error(certificate.line, cert_key, certificate.cert, why);
        continue;
      }
      if (SSL_CTX_use_certificate_chain_file(ctx, certificate.cert.c_str()) != 1) {
        error(certificate.line, cert_key, certificate.cert,
              "not a PEM certificate chain (" + openssl_reason() + ")");
        continue;
      }
      if (!readable(certificate.key, why)) {
        error(certificate.line, key_key, certificate.key, why);
        continue;
      }
      if (SSL_CTX_use_PrivateKey_file(ctx, certificate.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        // OpenSSL checks the pair as it loads the key: a mismatch fails here already.
        const std::string reason = openssl_reason();
        error(certificate.line, key_key, certificate.key,
              reason == "key values mismatch"
                  ? "does not match the certificate " + certificate.cert
                  : "not a PEM private key (" + reason + ")");
        continue;
      }
      if (SSL_CTX_check_private_key(ctx) != 1) {
        error(certificate.line, key_key, certificate.key,
              "does not match the certificate " + certificate.cert);
        continue;
      }
      std::shared_ptr<const OcspStaple> ocsp;
      if (!certificate.ocsp.empty()) {
        ocsp = staple(certificate, ctx);
        if (ocsp == nullptr) continue;
        SSL_CTX_set_tlsext_status_cb(ctx, staple_ocsp);
        SSL_CTX_set_tlsext_status_arg(ctx, const_cast<OcspStaple*>(ocsp.get()));
      }
      out->certificates_.push_back({context, dns_names(SSL_CTX_get0_certificate(ctx)), ocsp});
    }
    if (out->certificates_.size() != tls.certificates.size()) return nullptr;
    // SNI is read on the default context: the handshake starts there.
    SSL_CTX* first = out->certificates_.front().context->get();
    SSL_CTX_set_tlsext_servername_callback(first, select_certificate);
    SSL_CTX_set_tlsext_servername_arg(first, const_cast<ServerTls*>(out.get()));
    return out;
  }

  std::shared_ptr<const ClientTls> pool(const PoolConfig& pool) {
    const UpstreamTlsConfig& tls = *pool.tls;
    auto out = std::make_shared<ClientTls>();
    out->context = std::make_shared<SslContext>(SSL_CTX_new(TLS_client_method()));
    out->sni = tls.sni;
    out->verify = tls.verify;
    SSL_CTX* ctx = out->context->get();
    if (ctx == nullptr) {
      error(tls.line, tls.where, "", "cannot make a TLS context: " + openssl_reason());
      return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, kAlpnHttp11Size);
    if (!tls.verify) return out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    ERR_clear_error();
    if (tls.ca.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        error(tls.line, tls.where + ".ca", "", "cannot load the system's CAs: " + openssl_reason());
        return nullptr;
      }
      return out;
    }
    std::string why;
    if (!readable(tls.ca, why)) {
      error(tls.line, tls.where + ".ca", tls.ca, why);
      return nullptr;
    }
    if (SSL_CTX_load_verify_locations(ctx, tls.ca.c_str(), nullptr) != 1) {
      error(tls.line, tls.where + ".ca", tls.ca, "not a PEM CA file (" + openssl_reason() + ")");
      return nullptr;
    }
    return out;
  }
};

std::shared_ptr<const TlsContexts> for_running_listeners(const Config& running,
                                                         const TlsContexts* current,
                                                         const Config& next_config,
                                                         const TlsContexts& next) {
  auto out = std::make_shared<TlsContexts>();
  out->pools = next.pools;
  for (std::size_t i = 0; i < running.listeners.size(); ++i) {
    std::shared_ptr<const ServerTls> chosen;
    for (std::size_t j = 0; j < next_config.listeners.size(); ++j) {
      if (next_config.listeners[j].name == running.listeners[i].name && j < next.listeners.size())
        chosen = next.listeners[j];
    }
    if (!chosen && current != nullptr && i < current->listeners.size())
      chosen = current->listeners[i];
    out->listeners.push_back(std::move(chosen));
  }
  return out;
}

TlsBuild build_tls(const Config& config) {
  TlsBuild result;
  auto contexts = std::make_shared<TlsContexts>();
  TlsBuilder builder{config, result.errors};
  for (const ListenerConfig& listener : config.listeners)
    contexts->listeners.push_back(listener.tls ? builder.listener(listener) : nullptr);
  for (const PoolConfig& pool : config.pools)
    if (pool.tls) contexts->pools.emplace_back(pool.name, builder.pool(pool));
  if (result.errors.empty()) result.contexts = std::move(contexts);
  return result;
}

}  // namespace proxyd
