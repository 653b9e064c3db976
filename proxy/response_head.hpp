// An upstream response's head, parsed in one pass with character tables instead of Beast's
// byte-at-a-time field loop (docs/benchmarks.md, "Where a request's instructions go": Beast's
// parse was a quarter of an HTTP/1.1 request's instructions).
//
// It accepts what Beast 1.81's basic_parser<false> accepts for a complete head, with the same
// fields, values and framing (tests/unit/net/response_head_test.cpp compares the two on
// hand-written heads and on 20,000 mutated ones), except for the size limit: the whole head at
// most kMaxResponseHead bytes, where Beast's limit moved with the status line's length. Requests
// stay with Beast: they come from clients, and their parser also decodes chunked request bodies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "http_head.hpp"

namespace proxyd {

// What the head says about the body, before the proxy's policy (check_response) applies.
struct ResponseFraming {
  std::optional<std::uint64_t> length;  // Content-Length (all its values agree)
  bool chunked = false;                 // Transfer-Encoding ends with chunked
};

// The largest response head relayed; a larger one is a bad response, 502 (nginx answers 502
// "upstream sent too big header" above its 4-8 KiB proxy_buffer_size; Beast's limit was about
// this size).
inline constexpr std::size_t kMaxResponseHead = 8192;

// Parses `bytes`, one complete head (from the status line through the empty line that ends it,
// with CRLF line ends and no obs-fold: scan_head checked both), into `head` (views into `bytes`)
// and `framing`. False on a malformed head: a bad status line, HTTP version other than 1.0 and
// 1.1, a field name that is not a token, a control character in a value, a bad Connection list,
// a bad or conflicting Content-Length, Transfer-Encoding after Content-Length or twice chunked.
bool parse_response(std::string_view bytes, ResponseHead& head, ResponseFraming& framing);

}  // namespace proxyd
