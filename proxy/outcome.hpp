// The outcome record: what happened to one request, filled in by the phases of its life
// (docs/architecture.md, "Life of a request") and finished exactly once when the request ends,
// whichever way it ends. Its consumers read it there: the access log today; metrics, passive
// health checks and the rollout's analysis next. Plain data: no Asio, no allocation, no lock.
// The views and pointers stay valid until the record is finished (they point into the request's
// snapshot and the session's buffers).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proxy/config.hpp"
#include "proxy/local_reply.hpp"
#include "proxy/routing_snapshot.hpp"
#include "proxy/server_pick.hpp"

namespace proxyd {

struct RequestSeries;

using Clock = std::chrono::steady_clock;

// How one attempt on one server ended.
enum class AttemptEnd : std::uint8_t {
  ok,                // a response head arrived
  connect_failed,    // refused, unreachable, reset while connecting
  connect_timeout,   // timeouts.upstream_connect passed
  closed,            // a kept-alive connection was closed before a byte of the response
  reset,             // the connection failed after part of the request or response
  timeout,           // timeouts.upstream_response passed while writing or waiting for the head
  bad_response,      // the response head was malformed or refused by the framing policy
  client_gone,       // the client went away while its body was being relayed
  tls_failed,        // the TLS handshake with the server failed (verification included)
  no_socket,         // proxyd could not open a socket (out_of_local_resources): not the server's
};

std::string_view attempt_end_name(AttemptEnd end);

struct AttemptRecord {
  const Server* server = nullptr;
  bool reused = false;  // on a kept-alive connection
  AttemptEnd end = AttemptEnd::ok;
};

// How the request ended, for the consumers that care beyond the status.
enum class RequestEnd : std::uint8_t {
  relayed,       // the upstream's response went out in full
  local_reply,   // proxyd answered itself (`reason` says why)
  client_gone,   // the client went away or stalled after the response began (or before a reply)
  upstream_cut,  // the upstream failed after the response head was sent: the client is closed
  tunnel,        // a 101 tunnel, ended by either side
  aborted,       // proxyd stopped (drain timeout) before the request ended
};

std::string_view request_end_name(RequestEnd end);

// The protocol the client spoke for the request (the access log's `proto`, the metrics'
// `protocol`): three values, so the label stays small.
enum class ClientProtocol : std::uint8_t { http1_0, http1_1, h2, count_ };

std::string_view client_protocol_name(ClientProtocol protocol);  // "HTTP/1.1", "HTTP/2"

struct RequestOutcome {
  // Who and what.
  std::string_view listener;
  std::string_view client;  // "ip:port"
  std::string_view method;  // empty when the head was not parsed; set only for the access log
  std::string_view target;
  std::string_view tls_version;  // the client connection's TLS version ("TLSv1.3"); empty: plain
  std::string_view tls_cipher;
  ClientProtocol protocol = ClientProtocol::http1_1;

  // Where it went (null until routed).
  const Route* route = nullptr;
  SlotName slot = SlotName::live;
  const Pool* pool = nullptr;
  const Server* server = nullptr;  // the server of the last attempt
  RequestSeries* series = nullptr;  // the worker's metrics for route, slot and pool (set with them)

  // How it ended.
  unsigned status = 0;  // the status sent to the client; 0 when none was
  std::optional<LocalReason> reason;  // set when proxyd answered itself
  RequestEnd end = RequestEnd::aborted;

  // Bytes of body, each way.
  std::uint64_t bytes_in = 0;   // request body received from the client
  std::uint64_t bytes_out = 0;  // response body sent to the client

  // Times. `started` is when the request's head was complete; the others are durations from it.
  Clock::time_point started{};
  Clock::duration total{};
  std::optional<Clock::duration> upstream_connect;  // the last new connection's connect time
  std::optional<Clock::duration> first_byte;        // until the first response byte arrived

  // Attempts, in order; the last one is the one that answered, if any did.
  std::array<AttemptRecord, kMaxAttempts> attempts{};
  std::uint8_t attempt_count = 0;

  void add_attempt(const AttemptRecord& attempt) {
    if (attempt_count < attempts.size()) attempts[attempt_count++] = attempt;
  }
};

}  // namespace proxyd
