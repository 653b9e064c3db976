// The configuration as plain structs: what the YAML file says, validated, with defaults applied.
// config.cpp is the only yaml-cpp user; nothing here includes Asio, Beast or yaml-cpp, so policy
// code and its tests compile fast.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/log.hpp"
#include "proxy/values.hpp"

namespace proxyd {

enum class SlotName { live, passive };

// One certificate of a TLS listener: a PEM file with the chain (leaf first) and its key.
struct TlsCertificate {
  std::string cert;
  std::string key;
  std::string ocsp;  // a DER OCSP response for `cert`, stapled to handshakes; "" = none
  std::string where;  // its dotted key path, for errors about its files: listeners[1].tls
  int line = 0;
};

enum class TlsVersion { v1_2, v1_3 };

// TLS termination on a listener (docs/configuration.md, "TLS"). The short form
// `{cert, key}` is one certificate; the long form lists several, chosen by SNI, the first
// the default.
struct TlsConfig {
  std::vector<TlsCertificate> certificates;
  TlsVersion min_version = TlsVersion::v1_2;
  std::string ciphers;  // TLS 1.2 cipher list, OpenSSL syntax; "" = proxyd's default
  // Read as the short form; moved into `certificates` once the block is read.
  TlsCertificate single;
  std::string where;  // its dotted key path: listeners[1].tls
  int line = 0;
};

// TLS to a pool's servers.
struct UpstreamTlsConfig {
  std::string ca;    // PEM file of the trusted CAs; "" = the system's trust store
  std::string sni;   // server name sent and verified; "" = each server's host
  bool verify = true;
  std::string where;  // dotted key path, for errors about the CA file
  int line = 0;
  bool operator==(const UpstreamTlsConfig&) const = default;
};

// A listener's HTTP/2 limits (`http2: {...}`, docs/configuration.md "HTTP/2"): what its
// connections announce in SETTINGS and enforce.
struct Http2Limits {
  std::uint32_t max_concurrent_streams = 128;         // SETTINGS_MAX_CONCURRENT_STREAMS
  std::optional<std::uint32_t> max_header_list_size;  // unset: limits.max_header_bytes
  std::uint32_t initial_window_size = 256 * 1024;     // per stream (SETTINGS_INITIAL_WINDOW_SIZE)

  bool operator==(const Http2Limits&) const = default;
};

struct ListenerConfig {
  std::string name;
  Endpoint address;
  std::optional<TlsConfig> tls;
  std::optional<SlotName> slot;  // set: every request here goes to that slot of its route
  // HTTP/2 to clients: on a TLS listener ALPN offers h2 before http/1.1 (on unless `http2:
  // false`); on a plaintext one, `http2: true` makes it speak HTTP/2 only, by prior knowledge
  // (h2c). Unset: on for TLS, off for plaintext (speaks_h2()).
  std::optional<bool> http2;
  Http2Limits http2_limits;  // the long form `http2: {...}` (which also means `http2: true`)
  int line = 0;

  bool speaks_h2() const { return http2.value_or(tls.has_value()); }
};

enum class LogFormat { text, json };

struct AdminConfig {
  std::string control_socket = "/run/proxyd/control.sock";
  std::optional<Endpoint> metrics;  // GET /metrics, /healthz, /ready
  std::string state_file = "/var/lib/proxyd/state.json";
  std::string access_log = "stdout";  // "stdout", "off", or a path
  LogFormat access_log_format = LogFormat::text;  // logfmt-style key=value, or one JSON object
  LogLevel log_level = LogLevel::info;  // stderr messages below this level are dropped
  std::string audit_log;  // JSON lines, one per mutating command; "" = beside state_file
  std::uint32_t control_mode = 0600;  // file mode of the control socket
  std::string control_group;          // group owning the socket ("" = proxyd's own)
  std::vector<std::int64_t> control_allow_uids;  // besides root and proxyd's own user
  std::vector<std::int64_t> control_allow_gids;  // peers whose primary group is one of these
  std::vector<std::int64_t> control_read_uids;   // may read (status, history, diff) only
  std::vector<std::int64_t> control_read_gids;   // ... by primary or supplementary group
};

// A range of HTTP status codes, both ends included.
struct StatusRange {
  unsigned first = 200;
  unsigned last = 399;
  bool operator==(const StatusRange&) const = default;
};

// Active checks: an HTTP/1.1 GET of `path` on each server every `interval`.
struct HealthConfig {
  std::string path = "/healthz";
  Duration interval{2000};
  Duration timeout{1000};  // for the whole check: connect, request, response head
  int rise = 2;            // passes in a row that make a server healthy
  int fall = 3;            // failures in a row that make it unhealthy
  std::vector<StatusRange> expect{StatusRange{}};  // a pass; default 200-399
  std::string host;  // the Host header; "" = the server's own host:port
  bool operator==(const HealthConfig&) const = default;
};

// Passive checks (outlier detection): a server whose real requests keep failing is ejected for a
// while, longer each time it keeps failing.
struct PassiveConfig {
  bool enabled = true;
  int failures = 5;              // consecutive failed requests or attempts that eject it
  Duration ejection{30'000};     // the first ejection; doubled each time, up to max_ejection
  Duration max_ejection{300'000};
  int max_ejected_percent = 50;  // never more of the pool at once (a pool of one: never)
  bool operator==(const PassiveConfig&) const = default;
};

enum class Balance { round_robin, least_request };

struct PoolConfig {
  std::string name;
  std::vector<Endpoint> servers;
  Balance balance = Balance::round_robin;
  std::optional<HealthConfig> health;
  PassiveConfig passive;
  bool fail_open = false;  // with no healthy server, send to every enabled one anyway
  std::optional<UpstreamTlsConfig> tls;
  int line = 0;
};

// `sticky: {cookie: NAME, set: ...}`: proxyd gives a client without the cookie one, so that it
// too stays on one side. The attributes of its Set-Cookie, defaults as browsers expect of a
// first-party cookie no script needs.
struct CookieSet {
  enum class SameSite : std::uint8_t { lax, strict, none };
  std::string path = "/";
  std::string domain;               // empty: the request's host (no Domain attribute)
  std::optional<Duration> max_age;  // none: a session cookie
  bool secure = false;
  bool http_only = true;
  SameSite same_site = SameSite::lax;

  // "; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax": what follows NAME=VALUE.
  std::string attributes() const;
};

struct StickyConfig {
  enum class Kind { none, cookie, header, client_ip };
  Kind kind = Kind::none;
  std::string name;  // the cookie or header name
  std::optional<CookieSet> set;  // cookie only: set one on clients without it
};

struct RouteConfig {
  std::string name;
  std::string host;         // empty: any host; "*.example.com": any subdomain
  std::string path_prefix;  // empty: any path
  std::string live;
  std::string passive;
  std::uint32_t weight_ppm = 0;
  StickyConfig sticky;
  std::string preview_header;  // optional: a request carrying this header goes to passive
  std::optional<std::uint32_t> max_step_ppm;  // the largest weight increase without --force
  std::optional<Duration> drain;  // tunnels to a pool that left the route close after this
  int line = 0;
};

struct TimeoutsConfig {
  Duration client_header{10'000};
  Duration client_idle{60'000};
  Duration client_body{60'000};  // between two reads of a request body
  Duration upstream_connect{2'000};
  Duration upstream_response{60'000};
  Duration upstream_idle{30'000};  // an idle kept-alive upstream connection is closed after this
  Duration tls_handshake{10'000};  // a client's TLS handshake, from the accept
  Duration drain{30'000};
  // The running proxyd's wait for a new one taking over (an upgrade) to say it serves.
  Duration takeover{60'000};
};

struct LimitsConfig {
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_body_bytes = 100ull * 1024 * 1024;
  // Idle connections kept per server per worker. It must cover the requests a worker has in
  // flight to one server at peak: below that, returning connections are closed and the next
  // requests reconnect, which measured as a 4x longer p99 at 256 connections (benchmarks.md).
  std::uint32_t upstream_idle_per_server = 1024;
  // Client connections open at once in the whole process (HAProxy's maxconn). At the limit a new
  // connection waits in the kernel's backlog and idle keep-alive connections are closed to make
  // room (docs/architecture.md, "Connection limit"). Unset: derived from the descriptor limit
  // (default_max_connections, worker.hpp).
  std::optional<std::uint32_t> max_connections;
};

// `fleet:` (docs/fleet.md): the desired routing state lives in etcd under `prefix`; this proxyd
// applies it and reports as `host`. etcd is reached through its v3 JSON gateway over HTTP, or
// HTTPS when the URLs are https:// (all or none; `ca`, `cert`, `key` only then), as etcd user
// `user` when set (etcd's auth).
struct FleetConfig {
  std::vector<Endpoint> etcd;  // client URLs, http(s)://HOST:PORT, tried in turn
  bool tls = false;            // the URLs are https://
  std::string ca;              // PEM: the CAs etcd's certificate is checked against ("": system's)
  std::string cert;            // PEM: this client's certificate, for --client-cert-auth; with key
  std::string key;
  std::string prefix;          // "/proxyd/prod": starts with /, no trailing /
  std::string host;            // this member's name; default: the hostname
  std::string user;            // etcd user ("": etcd without auth); set with password
  std::string password;
};

struct Config {
  std::string path;  // the file it was read from
  int workers = 0;   // 0 = auto (one per core)
  std::vector<ListenerConfig> listeners;
  AdminConfig admin;
  std::vector<PoolConfig> pools;
  std::vector<RouteConfig> routes;
  TimeoutsConfig timeouts;
  LimitsConfig limits;
  std::optional<FleetConfig> fleet;  // unset: a standalone proxyd
};

// One problem found in a config file, printed as `FILE:LINE: key: message`. Line 0 (the file as a
// whole: unreadable, empty) prints as `FILE: message`; an empty key (a YAML syntax error) as
// `FILE:LINE: message`.
struct ConfigError {
  std::string file;
  int line = 0;
  std::string key;  // dotted path, e.g. routes[1].weight
  std::string message;
  std::string text() const;
  std::string warning_text() const;  // `FILE:LINE: key: warning: message`, as --check prints it
};

struct ConfigResult {
  std::optional<Config> config;     // set when errors is empty
  std::vector<ConfigError> errors;  // every problem found, in file order
  // Keys that are accepted and checked but do nothing yet, in file order. They never make the
  // file invalid: existing configs keep loading, and say what they are missing.
  std::vector<ConfigError> warnings;
};

// Reads and validates a config file. Never throws.
ConfigResult load_config_file(const std::string& path);
// Same, from text; `file` is only used in error messages.
ConfigResult load_config_text(const std::string& text, const std::string& file);

}  // namespace proxyd
