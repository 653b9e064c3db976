// The head transform's round-trip properties (tests/fuzz/head_roundtrip.hpp) on hand-written
// heads, on the inputs the fuzzers found, and on fixed-seed streams of mutated heads: the part of
// the fuzzing that runs with every build.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/fuzz/head_roundtrip.hpp"

namespace proxyd::test {
namespace {

const std::vector<std::string> kRequests = {
    "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
    "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive, X-Foo\r\n"
    "X-Foo: 1\r\n\r\nhello",
    "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n0\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: x\r\nX-Forwarded-For: 1.2.3.4\r\nCookie: a=b\r\n\r\n",
    // Found by the request fuzzer: Connection naming Host once stripped it from the upstream head.
    "T /x HTTP/1.1\r\nHost:o\r\nConnection:, ve, Host, v, XF2\r\n\r\n",
};

const std::vector<std::string> kResponses = {
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n"
    "Connection: keep-alive\r\nX-Upstream: blue\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n"
    "Connection: Keep-Alive, X-A\r\nX-A: 1\r\n\r\n",
    "HTTP/1.0 404 Not Found\r\nSet-Cookie: a=b\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 20\r\n\r\n",
    // Found by the response fuzzer: a three-digit status below 100 went out as two digits, and a
    // 101 without an Upgrade field went out with an empty one.
    "HTTP/1.1 010 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUVpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
};

void expect_response_holds(const std::string& bytes) {
  for (int flags = 0; flags < 8; ++flags) {
    EXPECT_EQ(response_roundtrip_fault(bytes, flags & 1, (flags & 2) ? 0 : 1, flags & 4), "")
        << "flags " << flags << ":\n" << bytes;
  }
}

TEST(HeadRoundTrip, HoldsForTheSeedsAndTheFoundCases) {
  for (const std::string& r : kRequests) EXPECT_EQ(request_roundtrip_fault(r), "") << r;
  for (const std::string& r : kResponses) expect_response_holds(r);
}

TEST(HeadRoundTrip, HoldsForTwentyThousandMutatedRequests) {
  std::mt19937 rng(20261201);
  int rewritten = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string s = mutate(kRequests[rng() % kRequests.size()], rng);
    bool got_there = false;
    ASSERT_EQ(request_roundtrip_fault(s, &got_there), "") << s;
    rewritten += got_there;
  }
  // Enough of the stream must reach the rewrite, or it proves little.
  EXPECT_GT(rewritten, 3000);
}

TEST(HeadRoundTrip, HoldsForTwentyThousandMutatedResponses) {
  std::mt19937 rng(20261201);
  int rewritten = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string s = mutate(kResponses[rng() % kResponses.size()], rng);
    const unsigned flags = rng() % 8;
    bool got_there = false;
    ASSERT_EQ(response_roundtrip_fault(s, flags & 1, (flags & 2) ? 0 : 1, flags & 4, &got_there),
              "")
        << s;
    rewritten += got_there;
  }
  EXPECT_GT(rewritten, 3000);
}

}  // namespace
}  // namespace proxyd::test
