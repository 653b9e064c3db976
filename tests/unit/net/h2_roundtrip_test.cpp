// The HTTP/2 request translation (proxy/h2_request.hpp) on generated header lists, through a real
// nghttp2 client and server session (tests/fuzz/h2_roundtrip.hpp): the fixed-seed stand-in for
// the fuzz_h2_request harness in the suite.
#include <gtest/gtest.h>

#include <random>

#include "proxy/h2_request.hpp"
#include "tests/fuzz/h2_roundtrip.hpp"

namespace proxyd::test {
namespace {

std::string describe(const H2Fields& fields, bool body) {
  std::string s = body ? "(body follows)\n" : "(END_STREAM)\n";
  for (const auto& [n, v] : fields) s += n + ": " + v + "\n";
  return s;
}

// The cases the generator is built around, each with the verdict it must get.
TEST(H2RoundTrip, KnownListsGetTheirVerdicts) {
  const H2Fields base = {
      {":method", "GET"}, {":path", "/"}, {":scheme", "http"}, {":authority", "localhost"}};
  auto with = [&](H2Fields extra) {
    H2Fields f = base;
    f.insert(f.end(), extra.begin(), extra.end());
    return f;
  };
  struct Case {
    H2Fields fields;
    bool body;
    H2Verdict verdict;
  };
  const Case cases[] = {
      {base, false, H2Verdict::rewritten},
      {base, true, H2Verdict::rewritten},  // no content-length: chunked upstream
      {with({{"cookie", "a=1"}, {"x-a", "1"}, {"cookie", "b=2"}}), false, H2Verdict::rewritten},
      {with({{"host", "LOCALHOST"}}), false, H2Verdict::rewritten},
      {with({{"host", "other.example"}}), false, H2Verdict::refused_by_proxyd},
      // nghttp2 counts host as an authority too: two of them, or neither, are its errors.
      {with({{"host", "localhost"}, {"host", "localhost"}}), false, H2Verdict::refused_by_nghttp2},
      {with({{"content-length", "5"}}), true, H2Verdict::rewritten},
      {with({{"connection", "close"}}), false, H2Verdict::refused_by_nghttp2},
      {with({{"te", "trailers"}, {"x-forwarded-for", "192.0.2.7"}}), false, H2Verdict::rewritten},
      {with({{"X-Upper", "1"}}), false, H2Verdict::refused_by_nghttp2},
      {{{":method", "GET"}, {":path", "/"}, {":scheme", "http"}}, false,
       H2Verdict::refused_by_nghttp2},
      {with({{"host", "a b"}}), false, H2Verdict::refused_by_nghttp2},
      {{{":method", "GET"}, {":path", "/"}, {":scheme", "http"}, {"host", "localhost"}}, false,
       H2Verdict::rewritten},  // host without :authority (RFC 9113 8.3.1 allows it)
      {with({{"content-length", "104857600000"}}), true, H2Verdict::refused_by_proxyd},  // 413
      // :path in absolute-form (HTTP/1.1 accepts it): nghttp2 refuses it first (and proxyd would,
      // below), so no authority but :authority's ever routes a stream.
      {{{":method", "GET"}, {":path", "http://evil.example/x"}, {":scheme", "http"},
        {":authority", "localhost"}},
       false, H2Verdict::refused_by_nghttp2},
      {{{":method", "CONNECT"}, {":authority", "localhost:443"}}, true,
       H2Verdict::refused_by_proxyd},
  };
  for (const Case& c : cases) {
    H2Verdict verdict{};
    EXPECT_EQ(h2_request_fault(c.fields, c.body, &verdict), "") << describe(c.fields, c.body);
    EXPECT_EQ(verdict, c.verdict) << describe(c.fields, c.body);
  }
}

// check_h2_request on its own, past nghttp2: an absolute-form :path is refused, not split into an
// authority that would win over :authority as it does over Host in HTTP/1.1.
TEST(H2RoundTrip, AnAbsoluteFormPathIsRefusedByProxydToo) {
  H2RequestFields in;
  in.method = "GET";
  in.path = "http://evil.example/x";
  in.authority = "localhost";
  RequestHead head;
  std::string cookie;
  RequestPlan plan;
  EXPECT_EQ(check_h2_request(in, true, 1024, head, cookie, plan), LocalReason::bad_request);
  in.path = "/x";
  EXPECT_EQ(check_h2_request(in, true, 1024, head, cookie, plan), std::nullopt);
  EXPECT_EQ(plan.host, "localhost");
}

// Twenty thousand generated lists: every one that reaches the upstream is the client's request.
TEST(H2RoundTrip, TwentyThousandGeneratedListsKeepTheirMeaning) {
  std::mt19937 rng(20261201);
  int counts[3] = {};
  for (int i = 0; i < 20000; ++i) {
    bool body = false;
    const H2Fields fields = random_h2_fields(rng, body);
    H2Verdict verdict{};
    const std::string fault = h2_request_fault(fields, body, &verdict);
    ASSERT_EQ(fault, "") << describe(fields, body);
    ++counts[static_cast<int>(verdict)];
  }
  // The stream exercises all three outcomes, each in numbers (13,620, 847 and 5,533 when written).
  const std::string seen = std::to_string(counts[0]) + " refused by nghttp2, " +
                           std::to_string(counts[1]) + " by proxyd, " +
                           std::to_string(counts[2]) + " rewritten";
  EXPECT_GT(counts[static_cast<int>(H2Verdict::refused_by_nghttp2)], 2000) << seen;
  EXPECT_GT(counts[static_cast<int>(H2Verdict::refused_by_proxyd)], 400) << seen;
  EXPECT_GT(counts[static_cast<int>(H2Verdict::rewritten)], 2000) << seen;
}

}  // namespace
}  // namespace proxyd::test
