// Round-trip properties of the head transform (proxy/header_transform.hpp), checked on any bytes:
// what proxyd writes to the other side must parse again to the same message with the same
// framing, and must not carry what it promised to remove. Used by the libFuzzer harnesses in this
// directory and, on a fixed-seed stream of mutated heads, by the unit test
// tests/unit/net/head_roundtrip_test.cpp.
#pragma once

#include <random>
#include <string>
#include <string_view>

#include "proxy/header_transform.hpp"

namespace proxyd::test {

// `bytes` as a client's request: scanned, parsed by Beast, checked, rewritten for the upstream.
// Returns "" when the request is refused on the way or every property holds; otherwise what broke.
// `rewritten`, when given, says whether the request got as far as the rewrite.
std::string request_roundtrip_fault(std::string_view bytes, bool* rewritten = nullptr);

// `request`, which passed check_request with `plan`, written for the upstream into `out`, which
// must parse again (into `again`, whose views point into `out`) to the same request line, framing
// and Host, without the fields proxyd promised to remove. "" or what broke.
std::string upstream_head_fault(const RequestHead& request, const RequestPlan& plan,
                                std::string& out, RequestHead& again);

// `bytes` as an upstream's response to a request (HEAD when `head_request`) from a client of
// HTTP/1.`client_minor` that wants its connection kept when `keep_alive`: parsed by proxyd and by
// Beast (same verdict and head), checked, rewritten for the client. "" or what broke.
std::string response_roundtrip_fault(std::string_view bytes, bool head_request,
                                     unsigned client_minor, bool keep_alive,
                                     bool* rewritten = nullptr);

// One to three random edits of `head` from `rng`: bytes replaced (mostly by the characters that
// matter to the grammar), inserted or deleted, a line duplicated, ",chunked" inserted. For the
// fixed-seed tests that stand in for the fuzzers in the test suite.
std::string mutate(std::string head, std::mt19937& rng);

}  // namespace proxyd::test
