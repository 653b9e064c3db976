// Every reply proxyd makes itself, in one table: reason -> status -> counter (each local reply has one
// reason, one status and one counter). Sessions name a reason; nothing else picks a
// status for a local reply.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace proxyd {

enum class LocalReason : std::uint8_t {
  bad_request,            // 400: malformed or ambiguous framing, bad Host, bad target
  no_route,               // 404: no route matches
  client_header_timeout,  // 408: the client was too slow to send its header
  client_body_timeout,    // 408: the client stopped sending its request body
  body_too_large,         // 413: request body above limits.max_body_bytes
  header_too_large,       // 431: request header above limits.max_header_bytes
  upstream_unavailable,   // 502: every server refused or timed out the connection
  bad_upstream_response,  // 502: malformed, reset or truncated upstream response
  no_server,              // 503: the pool has no enabled server
  no_healthy_server,      // 503: the pool has enabled servers, none healthy (not fail_open)
  upstream_timeout,       // 504: the upstream did not answer within upstream_response
  upstream_tls,           // 502: the TLS handshake with every server tried failed (verification)
  no_socket,              // 503: proxyd could not open an upstream socket (out of descriptors,
                          // memory or local ports)
  count_
};

struct LocalReplyInfo {
  LocalReason reason;
  std::string_view name;  // metric label and access-log field
  unsigned status;
  std::string_view status_text;
};

inline constexpr std::array<LocalReplyInfo, static_cast<std::size_t>(LocalReason::count_)>
    kLocalReplies{{
        {LocalReason::bad_request, "bad_request", 400, "Bad Request"},
        {LocalReason::no_route, "no_route", 404, "Not Found"},
        {LocalReason::client_header_timeout, "client_header_timeout", 408, "Request Timeout"},
        {LocalReason::client_body_timeout, "client_body_timeout", 408, "Request Timeout"},
        {LocalReason::body_too_large, "body_too_large", 413, "Content Too Large"},
        {LocalReason::header_too_large, "header_too_large", 431,
         "Request Header Fields Too Large"},
        {LocalReason::upstream_unavailable, "upstream_unavailable", 502, "Bad Gateway"},
        {LocalReason::bad_upstream_response, "bad_upstream_response", 502, "Bad Gateway"},
        {LocalReason::no_server, "no_server", 503, "Service Unavailable"},
        {LocalReason::no_healthy_server, "no_healthy_server", 503, "Service Unavailable"},
        {LocalReason::upstream_timeout, "upstream_timeout", 504, "Gateway Timeout"},
        {LocalReason::upstream_tls, "upstream_tls", 502, "Bad Gateway"},
        {LocalReason::no_socket, "no_socket", 503, "Service Unavailable"},
    }};

constexpr const LocalReplyInfo& local_reply_info(LocalReason reason) {
  return kLocalReplies[static_cast<std::size_t>(reason)];
}

// Process-wide counters, one per reason (relaxed atomics; exported as
// proxyd_local_replies_total{reason}).
class LocalReplyCounters {
 public:
  void add(LocalReason reason) {
    counts_[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t get(LocalReason reason) const {
    return counts_[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(LocalReason::count_)> counts_{};
};

LocalReplyCounters& local_reply_counters();

// The full HTTP/1.1 response bytes for a local reply: status line, Content-Type text/plain,
// Content-Length, `Connection: close` when `close` is set, and a one-line body naming the reason.
// Built once per reason at startup; the returned view stays valid for the process lifetime.
std::string_view local_reply_bytes(LocalReason reason, bool close);

// Its body alone (an HTTP/2 stream's local reply carries the same text).
std::string_view local_reply_body(LocalReason reason);

}  // namespace proxyd
