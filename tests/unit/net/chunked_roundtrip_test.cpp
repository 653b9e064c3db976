// Chunked bodies through decode_chunks as the relay drives it, against Beast's own parser on the
// whole message (tests/fuzz/chunked_roundtrip.hpp): the fixed-seed stand-in for the
// fuzz_chunked_body harness in the suite.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "proxy/byte_buffer.hpp"
#include "proxy/chunked.hpp"
#include "tests/fuzz/chunked_roundtrip.hpp"
#include "tests/fuzz/head_roundtrip.hpp"

namespace proxyd::test {
namespace {

// Seeds and the verdict each gets when the input buffer holds it whole.
struct Seed {
  std::string body;
  ChunkedVerdict verdict;
};
const std::vector<Seed> kSeeds = {
    {"5\r\nhello\r\n0\r\n\r\n", ChunkedVerdict::done},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
     ChunkedVerdict::done},  // a pipelined request after the body is left unread
    {"A;name=value\r\n0123456789\r\n0\r\n\r\n", ChunkedVerdict::done},
    {"a; q=\"x\"\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n", ChunkedVerdict::done},
    {"1\r\nx\r\n0\r\nX-Trailer: a\r\nX-Other: b\r\n\r\n", ChunkedVerdict::done},
    {"0000000003\r\nabc\r\n0\r\n\r\n", ChunkedVerdict::done},
    {"3\r\nabcde\r\n0\r\n\r\n", ChunkedVerdict::error},  // data longer than its size
    {"-1\r\nx\r\n0\r\n\r\n", ChunkedVerdict::error},
    {"fffffffffffffffff\r\n", ChunkedVerdict::error},  // 2^68 - 1
    {"3\r\nabc\r\n", ChunkedVerdict::incomplete},   // no last chunk
    {"3\nabc\n0\n\n", ChunkedVerdict::incomplete},  // a bare LF ends no line: CRLF awaited
    {"0\r\n\r\n", ChunkedVerdict::done},
    // One chunk larger than every stage below, read whole: the stage fills mid-call.
    {"2710\r\n" + std::string(10000, 'z') + "\r\n0\r\n\r\n", ChunkedVerdict::done},
    // Framing fields in a trailer section are ignored (Beast alone refuses them); the fields
    // around them, folded lines and what follows the message are as Beast has them.
    {"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", ChunkedVerdict::done},
    {"1\r\nx\r\n0\r\nX-A: 1\r\ncontent-length: 99\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n"
     "GET /next HTTP/1.1\r\n\r\n",
     ChunkedVerdict::done},
    {"1\r\nx\r\n0\r\nContent-Length: 5\r\n 6\r\nX-A: 1\r\n\r\n", ChunkedVerdict::done},
    {"1\r\nx\r\n0;a=\"b\"\r\nContent-Length: 1\r\nX: y\r\n\r\nNEXT", ChunkedVerdict::done},
    // ... but every field is still checked: a bad name, or a bad value in a framing field that
    // comes after the one Beast refused.
    {"1\r\nx\r\n0\r\nContent-Length: 1\r\nBad Name: x\r\n\r\n", ChunkedVerdict::error},
    {"1\r\nx\r\n0\r\nContent-Length: 1\r\nTransfer-Encoding: \x7f\r\n\r\n", ChunkedVerdict::error},
};

// Each seed in each shape: Beast's verdict, the same decoded bytes and leftovers, and with a
// buffer that holds the seed, the verdict listed. A smaller buffer may be too small for a line or
// a trailer section (too_long, checked against a roomy buffer by chunked_fault).
TEST(ChunkedRoundTrip, SeedsInEveryShapeGetBeastsVerdict) {
  const std::array<std::size_t, 3> pieces = {1, 3, 0};
  for (const Seed& seed : kSeeds) {
    for (bool request : {false, true}) {
      for (std::size_t stage : {1u, 2u, 7u, 65536u}) {
        for (std::size_t buffer : {4u, 64u, 65536u}) {
          ChunkedShape shape{request, stage, buffer, pieces};
          ChunkedVerdict verdict{};
          EXPECT_EQ(chunked_fault(seed.body, shape, &verdict), "")
              << seed.body << " request " << request << " stage " << stage << " buffer " << buffer;
          if (buffer > seed.body.size()) {
            EXPECT_EQ(verdict, seed.verdict) << seed.body << " stage " << stage;
          }
        }
      }
    }
  }
}

// The verdicts that matter, spelled out: the pipelined request after a body is left unread.
TEST(ChunkedRoundTrip, KnownBodiesEndWhereTheyShould) {
  ChunkedShape shape{true, 4, 64, {}};
  ChunkedVerdict verdict{};
  EXPECT_EQ(chunked_fault(kSeeds[1].body, shape, &verdict), "");
  EXPECT_EQ(verdict, ChunkedVerdict::done);
  EXPECT_EQ(chunked_fault("3\r\nabcde\r\n0\r\n\r\n", shape, &verdict), "");
  EXPECT_EQ(verdict, ChunkedVerdict::error);
  EXPECT_EQ(chunked_fault("3\r\nabc\r\n", shape, &verdict), "");
  EXPECT_EQ(verdict, ChunkedVerdict::incomplete);
  // An empty body as "0\r\n", then "\r", then "\n": done, and Beast 1.81's debug assertion on
  // that split (see proxy/chunked.cpp) is never reached.
  const std::array<std::size_t, 2> split = {3, 1};
  for (bool request : {false, true}) {
    EXPECT_EQ(chunked_fault("0\r\n\r\n", ChunkedShape{request, 4, 64, split}, &verdict), "");
    EXPECT_EQ(verdict, ChunkedVerdict::done);
  }
  // A chunk size past the body limit is refused before its data comes.
  EXPECT_EQ(chunked_fault("200000\r\nabc", shape, &verdict), "");
  EXPECT_EQ(verdict, ChunkedVerdict::error);
}

// A trailer section's Content-Length and Transfer-Encoding are left out of what the HTTP/2 path
// relays, the other fields kept in order; the body ends where its section does, and the bytes
// after it stay for the next message.
TEST(ChunkedRoundTrip, FramingFieldsInATrailerSectionAreLeftOut) {
  const std::string body =
      "5\r\nhello\r\n0\r\nX-Sum: 1\r\nContent-Length: 5\r\n  7\r\nX-Count: 2\r\n"
      "TRANSFER-ENCODING: gzip\r\nX-Last: 3\r\n\r\nHTTP/1.1 200 OK\r\n";
  HeadParser<false> parser(HeadParser<false>::BodyOnly{});
  parser.prime_chunked();
  std::array<char, 64> stage{};
  std::size_t staged = 0;
  std::vector<std::pair<std::string, std::string>> trailers;
  parser.set_sink(stage.data(), stage.size(), &staged);
  parser.set_trailer_sink(&trailers);
  ByteBuffer in(4096);
  std::memcpy(in.write_ptr(), body.data(), body.size());
  in.commit(body.size());
  boost::system::error_code ec;
  Decode step = Decode::need_more;
  for (int i = 0; i < 8 && step != Decode::done && step != Decode::error; ++i)
    step = decode_chunks(parser, in, staged, stage.size(), ec);
  ASSERT_EQ(step, Decode::done) << ec.message();
  EXPECT_EQ(std::string(stage.data(), staged), "hello");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"X-Sum", "1"}, {"X-Count", "2"}, {"X-Last", "3"}};
  EXPECT_EQ(trailers, want);
  EXPECT_EQ(in.view(), "HTTP/1.1 200 OK\r\n");
  EXPECT_TRUE(parser.finished());
  EXPECT_EQ(decode_chunks(parser, in, staged, stage.size(), ec), Decode::done);
}

// Twenty thousand mutations of the seeds in random shapes.
TEST(ChunkedRoundTrip, TwentyThousandMutatedBodiesAgreeWithBeast) {
  std::mt19937 rng(20261201);
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  int counts[4] = {};
  for (int i = 0; i < 20000; ++i) {
    const std::string body = mutate(kSeeds[pick(kSeeds.size())].body, rng);
    const std::array<std::size_t, 2> pieces = {pick(9), 1 + pick(64)};
    const ChunkedShape shape{pick(2) == 0, 1 + pick(16), 1 + pick(128), pieces};
    ChunkedVerdict verdict{};
    ASSERT_EQ(chunked_fault(body, shape, &verdict), "") << body;
    ++counts[static_cast<int>(verdict)];
  }
  const std::string seen = std::to_string(counts[0]) + " done, " + std::to_string(counts[1]) +
                           " error, " + std::to_string(counts[2]) + " incomplete, " +
                           std::to_string(counts[3]) + " too long";
  // Each verdict comes up by the thousand (1,934, 12,150, 2,586 and 3,330 when written).
  EXPECT_GT(counts[0], 1000) << seen;
  EXPECT_GT(counts[1], 5000) << seen;
  EXPECT_GT(counts[2], 1000) << seen;
  EXPECT_GT(counts[3], 1000) << seen;
}

}  // namespace
}  // namespace proxyd::test
