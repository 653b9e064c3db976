// The one place headers change : the intermediary policy applied to a
// parsed request (framing checks that close Beast 1.81's gaps, listed in docs/architecture.md,
// "Framing policy") and the rewrite of the
// request head sent upstream and the response head sent back (hop-by-hop removal per RFC 9110
// 7.6.1, X-Forwarded-*). Pure functions over views; the output goes into a reused string.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http_head.hpp"
#include "local_reply.hpp"

namespace proxyd {

enum class BodyFraming : std::uint8_t { none, length, chunked, until_close };

// The tokens of every Connection field of one message (bounded: more is a bad request).
struct ConnectionTokens {
  static constexpr std::size_t kMax = 16;
  std::array<std::string_view, kMax> names{};
  std::size_t count = 0;
  // Bit n set: a token of n bytes (bit 63: of 63 or more). Most fields are told apart from every
  // token by their length alone, without comparing a byte.
  std::uint64_t lengths = 0;
  bool close = false;
  bool keep_alive = false;
  bool upgrade = false;
  bool overflow = false;

  bool names_field(std::string_view field_name) const;
};

ConnectionTokens connection_tokens(const std::vector<HeadField>& fields);

// What the session needs to know about a request that passed the checks.
struct RequestPlan {
  BodyFraming framing = BodyFraming::none;  // none, length or chunked (never until_close)
  std::uint64_t length = 0;
  // The request-target in origin-form ("/path?query", or "*"): what routing matches and the
  // upstream gets. An absolute-form target ("http://host/path", RFC 9112 3.2.2) is split: its
  // authority is the host (`absolute`), its path this.
  std::string_view target;
  bool absolute = false;
  std::string_view host;
  std::string_view cookie;  // the first Cookie field
  std::string_view upgrade;  // the Upgrade value when the client asks for a protocol switch
  bool keep_alive = true;
  bool expect_continue = false;
  ConnectionTokens connection;
};

// Where a message head ends in the bytes received so far.
struct HeadScan {
  enum class State : std::uint8_t {
    incomplete,  // no CRLF CRLF yet: read more
    complete,    // `length` bytes, the final CRLF CRLF included
    bare_lf,     // a line ends in LF without CR: refused at once (RFC 9112 2.2 allows that),
                 // instead of waiting for a CRLF CRLF that may never come
    obs_fold,    // a line starts with SP or HTAB (obs-fold, RFC 9112 5.2), refused at once: Beast
                 // would join it silently (hiding, say, a Transfer-Encoding value) in a buffer
                 // the next folded field overwrites
  };
  State state = State::incomplete;
  std::size_t length = 0;
};

// Scans `bytes` from `scanned`, the count an earlier call on the same (grown) bytes returned
// through it, so each byte is examined once however the head arrives.
HeadScan scan_head(std::string_view bytes, std::size_t& scanned);

// RFC 9110 9.2.2: a request that may be sent twice with the effect of once. Only these are
// replayed on another connection when a kept-alive one turns out to be closed.
bool is_idempotent(http::verb method);

// Applies the request policy. On refusal returns the local reply reason (400, 413 or 431).
std::optional<LocalReason> check_request(const RequestHead& head, std::uint64_t max_body_bytes,
                                         RequestPlan& plan);

struct ForwardInfo {
  std::string_view client_ip;
  bool tls = false;
  // The Host of an HTTP/1.0 request that has none: the address the client connected to
  // ("127.0.0.1:8080"). The head goes upstream as HTTP/1.1, which requires Host (RFC 9112 3.2).
  std::string_view default_host;
};

// Serializes the head sent upstream: HTTP/1.1, hop-by-hop and Connection-named fields removed
// (Host stays even when named), framing re-stated, X-Forwarded-For appended, X-Forwarded-Proto
// and -Host set, and Host added (forward.default_host) to an HTTP/1.0 request that has none.
void write_upstream_request(const RequestHead& head, const RequestPlan& plan,
                            const ForwardInfo& forward, std::string& out);

// What the session needs to know about an upstream response.
struct ResponsePlan {
  BodyFraming framing = BodyFraming::none;
  std::uint64_t length = 0;
  // The upstream's Content-Length as one number (a list of equal values is one): what a bodyless
  // response (HEAD, 304) passes on, as one value.
  std::optional<std::uint64_t> content_length;
  bool upstream_keep_alive = true;  // the upstream allows reusing the connection
  std::string_view upgrade;
  ConnectionTokens connection;
};

// Applies the response policy: returns false on a response a proxy must not relay (a status
// outside 100..599, a 101 without Upgrade, a Transfer-Encoding other than exactly chunked, a bad
// Connection list).
// `has_length`/`chunked` come from the parser; `head_request` and status decide bodyless replies.
bool check_response(const ResponseHead& head, std::optional<std::uint64_t> length, bool chunked,
                    bool head_request, ResponsePlan& plan);

// The Content-Length a client gets with a checked response, over HTTP/1.1 and HTTP/2 alike: the
// body's when it is framed by length; a bodyless response's own (HEAD, 304) as one number; none
// on a 1xx or 204 (RFC 9110 8.6) or a body framed otherwise.
std::optional<std::uint64_t> client_content_length(const ResponseHead& head,
                                                   const ResponsePlan& plan);

// How the body is framed towards the client: a chunked or close-delimited upstream body is sent
// chunked to HTTP/1.1 clients (so their connection stays open) and close-delimited to HTTP/1.0.
BodyFraming client_framing(BodyFraming upstream, unsigned client_version);

// Serializes the head sent to the client. `keep_alive` says whether the client connection stays
// open after this response.
void write_client_response(const ResponseHead& head, const ResponsePlan& plan,
                           BodyFraming framing, bool keep_alive, unsigned client_version,
                           std::string& out);

// Field-name and token comparison, ASCII case-insensitive.
bool iequals(std::string_view a, std::string_view b);

}  // namespace proxyd
