#include "tests/fuzz/chunked_roundtrip.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "proxy/byte_buffer.hpp"
#include "proxy/chunked.hpp"

namespace proxyd::test {
namespace {

constexpr std::uint64_t kMaxBody = 1 << 20;  // the request side's body limit
constexpr std::string_view kRequestHead =
    "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
constexpr std::string_view kResponseHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

struct Outcome {
  ChunkedVerdict verdict = ChunkedVerdict::incomplete;
  boost::system::error_code ec;
  std::string decoded;
  std::size_t left = 0;  // input bytes after the body, not consumed
};

// Beast's own parser with a string_body on the whole message: the reference. The request side has
// the session's limits: the head's size + 1 as header limit (which also bounds a trailer
// section), the body limit.
template <bool isRequest>
Outcome beast_reference(std::string_view body) {
  const std::string_view head = isRequest ? kRequestHead : kResponseHead;
  const std::string message = std::string(head) + std::string(body);
  http::parser<isRequest, http::string_body> parser;
  parser.eager(true);
  if (isRequest) {
    parser.header_limit(static_cast<std::uint32_t>(head.size() + 1));
    parser.body_limit(kMaxBody);
  } else {
    parser.body_limit(boost::none);
  }
  Outcome o;
  std::size_t used = 0;
  while (used < message.size() && !parser.is_done()) {
    const std::size_t n = parser.put(boost::asio::buffer(message.data() + used, message.size() - used), o.ec);
    used += n;
    if (o.ec == http::error::need_more) {
      o.ec = {};
      break;
    }
    if (o.ec) break;
    if (n == 0) break;
  }
  o.verdict = o.ec ? ChunkedVerdict::error
                   : parser.is_done() ? ChunkedVerdict::done : ChunkedVerdict::incomplete;
  o.decoded = parser.get().body();
  o.left = message.size() - used;
  return o;
}

// decode_chunks driven as BodyPump::relay drives it; `rechunked` gets what proxyd writes.
template <bool isRequest>
Outcome proxyd_decode(std::string_view body, const ChunkedShape& shape, std::string& rechunked) {
  using Parser = HeadParser<isRequest>;
  std::unique_ptr<Parser> parser;
  typename Parser::Head head;
  if constexpr (isRequest) {
    parser = std::make_unique<Parser>(head);
    parser->header_limit(static_cast<std::uint32_t>(kRequestHead.size() + 1));
    parser->body_limit(kMaxBody);
    boost::system::error_code ec;
    parser->put(boost::asio::buffer(kRequestHead.data(), kRequestHead.size()), ec);
  } else {
    parser = std::make_unique<Parser>(typename Parser::BodyOnly{});
    parser->prime_chunked();
  }
  std::vector<char> stage(shape.stage_size);
  std::size_t staged = 0;
  parser->set_sink(stage.data(), stage.size(), &staged);
  ByteBuffer in(shape.buffer_size);
  std::size_t fed = 0, piece = 0;
  Outcome o;
  for (;;) {
    const Decode step = decode_chunks(*parser, in, staged, stage.size(), o.ec);
    if (step == Decode::error) {
      o.verdict = ChunkedVerdict::error;
      break;
    }
    if (staged > 0) {
      std::array<char, 20> line;
      rechunked.append(chunk_size_line(staged, line));
      rechunked.append(stage.data(), staged);
      rechunked.append("\r\n");
      o.decoded.append(stage.data(), staged);
      staged = 0;
    }
    if (step == Decode::done) {
      o.verdict = ChunkedVerdict::done;
      rechunked.append(kLastChunk);
      break;
    }
    if (step == Decode::need_more) {
      in.compact();
      if (in.writable() == 0) {
        o.verdict = ChunkedVerdict::too_long;
        break;
      }
      if (fed == body.size()) {
        o.verdict = ChunkedVerdict::incomplete;
        break;
      }
      std::size_t n = std::min(in.writable(), body.size() - fed);
      if (!shape.pieces.empty() && shape.pieces[piece % shape.pieces.size()] > 0)
        n = std::min(n, shape.pieces[piece % shape.pieces.size()]);
      ++piece;
      std::memcpy(in.write_ptr(), body.data() + fed, n);
      in.commit(n);
      fed += n;
    }
  }
  o.left = in.size() + (body.size() - fed);
  return o;
}

const char* name(ChunkedVerdict v) {
  switch (v) {
    case ChunkedVerdict::done: return "done";
    case ChunkedVerdict::error: return "error";
    case ChunkedVerdict::incomplete: return "incomplete";
    case ChunkedVerdict::too_long: return "too_long";
  }
  return "?";
}

template <bool isRequest>
std::string fault(std::string_view body, const ChunkedShape& shape, ChunkedVerdict* verdict) {
  const Outcome want = beast_reference<isRequest>(body);
  std::string rechunked;
  const Outcome got = proxyd_decode<isRequest>(body, shape, rechunked);
  if (verdict != nullptr) *verdict = got.verdict;
  if (got.verdict == ChunkedVerdict::too_long) {
    // Only a buffer smaller than the input can be too small, and a buffer that holds it all must
    // then give Beast's verdict.
    if (shape.buffer_size > body.size()) return "too_long with a buffer larger than the input";
    ChunkedShape roomy = shape;
    roomy.buffer_size = body.size() + 1;
    return fault<isRequest>(body, roomy, nullptr);
  }
  // proxyd refuses chunk extensions over 256 bytes (http_head.hpp), which Beast does not bound.
  if (got.verdict == ChunkedVerdict::error && got.ec == http::error::bad_chunk_extension &&
      want.ec != http::error::bad_chunk_extension)
    return {};
  if (got.verdict != want.verdict)
    return std::string("verdict ") + name(got.verdict) + ", Beast's " + name(want.verdict) +
           " (" + got.ec.message() + " / " + want.ec.message() + ")";
  if (got.verdict == ChunkedVerdict::error) {
    if (got.ec != want.ec) return "error " + got.ec.message() + ", Beast's " + want.ec.message();
    return {};
  }
  if (got.decoded != want.decoded) return "the decoded bytes differ from Beast's";
  if (got.verdict != ChunkedVerdict::done) return {};
  if (got.left != want.left)
    return "left " + std::to_string(got.left) + " bytes after the body, Beast " +
           std::to_string(want.left);
  // What proxyd writes parses back to the same bytes, exactly to its end.
  const Outcome again = beast_reference<false>(rechunked);
  if (again.verdict != ChunkedVerdict::done || again.decoded != got.decoded || again.left != 0)
    return "the re-chunked body does not parse back to the decoded bytes";
  return {};
}

}  // namespace

std::string chunked_fault(std::string_view body, const ChunkedShape& shape,
                          ChunkedVerdict* verdict) {
  return shape.request ? fault<true>(body, shape, verdict) : fault<false>(body, shape, verdict);
}

std::string chunked_fault_from_bytes(std::string_view bytes, ChunkedVerdict* verdict) {
  if (bytes.size() < 4) return {};
  const auto b = [&](std::size_t i) { return std::size_t{static_cast<unsigned char>(bytes[i])}; };
  static constexpr std::size_t kSizes[] = {1, 2, 3, 5, 7, 16, 64, 300, 4096, 65536};
  const std::array<std::size_t, 2> pieces = {b(2) % 17, b(3)};
  ChunkedShape shape;
  shape.request = (b(0) & 0x80) != 0;
  shape.stage_size = kSizes[(b(0) & 0x7f) % std::size(kSizes)];
  shape.buffer_size = kSizes[b(1) % std::size(kSizes)];
  shape.pieces = pieces;
  return chunked_fault(bytes.substr(4), shape, verdict);
}

}  // namespace proxyd::test
