// An HTTP/2 request's head as nghttp2 hands it over, field by field, and its translation into the
// HTTP/1.1 head the upstream gets (RFC 9113 8.3), checked as an HTTP/1.1 head is. Pure, without
// nghttp2's headers: h2_session.cpp feeds it from its callbacks, and the fuzz harness
// (tests/fuzz/h2_request_fuzz.cpp) from a real nghttp2 server session without sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "header_transform.hpp"

namespace proxyd {

// The request fields of one stream as received: the three pseudo-header fields proxyd uses
// apart (nghttp2 already refused unknown, repeated or misplaced ones), the others in order.
struct H2RequestFields {
  std::string method, path, authority;
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t bytes = 0;    // the list's size so far, as RFC 9113 6.5.2 counts it
  bool too_large = false;   // past the limit: the fields are dropped, the answer is a 431

  // One decoded field of the request's header block. Past `limit` bytes in all (name, value and
  // 32 per field), the list is dropped, so an HPACK bomb ends in a 431, not in memory.
  void add(std::string_view name, std::string_view value, std::size_t limit);
};

// The check phase of a stream: `in` rebuilt as the HTTP/1.1 head for the upstream in `head`
// (views into `in` and `cookie`): cookie fields joined with "; " into `cookie` (RFC 9113 8.2.3),
// :authority as Host when there is no host field, a host field naming another authority than
// :authority refused (RFC 9113 8.3.1); then check_request. `ended`: the head came with
// END_STREAM (a body without content-length goes upstream chunked). nullopt with `plan` filled,
// or the local reply's reason.
std::optional<LocalReason> check_h2_request(const H2RequestFields& in, bool ended,
                                            std::uint64_t max_body_bytes, RequestHead& head,
                                            std::string& cookie, RequestPlan& plan);

}  // namespace proxyd
