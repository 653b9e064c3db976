// The HTTP/2 request path's translation (proxy/h2_request.hpp) checked on any header list: a
// real nghttp2 client session encodes the list into a HEADERS frame (HPACK), a real nghttp2
// server session with its message checks decodes it and hands the fields over as it does in
// proxyd, then proxyd's check and rewrite run; what the upstream gets must be the request the
// client sent. Used by the libFuzzer harness fuzz_h2_request and, on a fixed-seed stream of
// generated lists, by tests/unit/net/h2_roundtrip_test.cpp.
#pragma once

#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxyd::test {

using H2Fields = std::vector<std::pair<std::string, std::string>>;

// How far one header list went.
enum class H2Verdict {
  refused_by_nghttp2,  // a stream or connection error: never reaches proxyd's callbacks
  refused_by_proxyd,   // a local reply (400, 431, 413)
  rewritten,           // sent upstream
};

// `fields` (pseudo-header fields included, in the order given) as one request stream, with
// END_STREAM on its HEADERS unless `body`. "" when every property holds, else what broke;
// `verdict`, when given, says how far it went.
std::string h2_request_fault(const H2Fields& fields, bool body, H2Verdict* verdict = nullptr);

// A header list from fuzz bytes: the first byte's low bit is `body`, its second bit leaves out
// the default pseudo-header fields (GET, /, http, localhost); the rest is lines split at '\n',
// each a name and a value split at its first '=' after the first byte.
H2Fields h2_fields_from_bytes(std::string_view bytes, bool& body);

// A random header list for the fixed-seed test: the default pseudo-header fields (some left out,
// replaced or repeated) and up to eight fields whose names are mostly those proxyd treats apart
// (host, cookie, content-length, te, x-forwarded-*, connection, expect) and whose values are
// drawn from host names, numbers, lists and bytes that matter to the grammar.
H2Fields random_h2_fields(std::mt19937& rng, bool& body);

}  // namespace proxyd::test
