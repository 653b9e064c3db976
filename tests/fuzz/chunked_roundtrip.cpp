#include "tests/fuzz/chunked_roundtrip.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <array>
#include <cctype>
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
  std::vector<std::pair<std::string, std::string>> trailers;  // when done
};

// `body` with each Content-Length and Transfer-Encoding field of the trailer section that starts
// at `trailer` renamed "x", and the places of those fields among the section's: what proxyd makes
// of such a section (proxy/chunked.cpp), spelled out here line by line.
std::string rename_framing_trailers(std::string_view body, std::size_t trailer,
                                    std::vector<std::size_t>& renamed) {
  std::string out(body.substr(0, trailer));
  std::string_view rest = body.substr(trailer);
  for (std::size_t place = 0;;) {
    const std::size_t eol = rest.find("\r\n");
    if (eol == 0 || eol == std::string_view::npos) break;
    std::string_view line = rest.substr(0, eol + 2);
    rest.remove_prefix(eol + 2);
    const std::string name(line.substr(0, line.find(':')));
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool field = line[0] != ' ' && line[0] != '\t';  // not an obs-fold continuation
    if (field && name.size() < line.size() &&
        (lower == "content-length" || lower == "transfer-encoding")) {
      renamed.push_back(place);
      out += 'x';
      line.remove_prefix(name.size());
    }
    place += field ? 1 : 0;
    out += line;
  }
  out += rest;
  return out;
}

// Beast's basic_parser on a whole message, recording the trailer fields in the order they came:
// the string_body parser's message keeps fields of one name together, whatever came between.
template <bool isRequest>
class TrailerRecorder : public http::basic_parser<isRequest> {
 public:
  std::vector<std::pair<std::string, std::string>> trailers;

 private:
  using string_view = boost::beast::string_view;
  using error_code = boost::system::error_code;
  void on_request_impl(http::verb, string_view, string_view, int, error_code&) override {}
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_field_impl(http::field, string_view name, string_view value, error_code&) override {
    if (last_chunk_) trailers.emplace_back(std::string(name), std::string(value));
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
  std::size_t on_body_impl(string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t size, string_view, error_code&) override {
    last_chunk_ = size == 0;
  }
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  bool last_chunk_ = false;
};

// Beast's own parser with a string_body on the whole message: the reference. The request side has
// the session's limits: the head's size + 1 as header limit (which also bounds a trailer
// section), the body limit. A framing field in the trailer section is what proxyd ignores, where
// Beast fails the message: the reference is then Beast's verdict with those fields renamed.
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
  const char* trailer = nullptr;  // where the trailer section starts, once the last chunk is read
  auto on_chunk = [&](std::uint64_t size, boost::beast::string_view ext,
                      boost::system::error_code&) {
    if (size == 0) trailer = ext.data() + ext.size() + 2;
  };
  parser.on_chunk_header(on_chunk);
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
  if ((o.ec == http::error::bad_content_length || o.ec == http::error::bad_transfer_encoding) &&
      trailer != nullptr) {
    const std::size_t at = static_cast<std::size_t>(trailer - message.data()) - head.size();
    std::vector<std::size_t> places;
    const std::string renamed = rename_framing_trailers(body, at, places);
    if (!places.empty()) {
      Outcome again = beast_reference<isRequest>(renamed);
      for (auto place = places.rbegin(); place != places.rend(); ++place) {
        if (*place < again.trailers.size())
          again.trailers.erase(again.trailers.begin() + static_cast<std::ptrdiff_t>(*place));
      }
      return again;
    }
  }
  o.verdict = o.ec ? ChunkedVerdict::error
                   : parser.is_done() ? ChunkedVerdict::done : ChunkedVerdict::incomplete;
  o.decoded = parser.get().body();
  o.left = message.size() - used;
  if (o.verdict == ChunkedVerdict::done) {  // the trailer fields (those renamed above go later)
    TrailerRecorder<isRequest> recorder;
    recorder.eager(true);
    recorder.body_limit(boost::none);
    boost::system::error_code ec;
    recorder.put(boost::asio::buffer(message), ec);
    o.trailers = std::move(recorder.trailers);
  }
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
  Outcome o;
  std::vector<char> stage(shape.stage_size);
  std::size_t staged = 0;
  parser->set_sink(stage.data(), stage.size(), &staged);
  parser->set_trailer_sink(&o.trailers);
  ByteBuffer in(shape.buffer_size);
  std::size_t fed = 0, piece = 0;
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
  if (got.trailers != want.trailers) return "the trailer fields differ from Beast's";
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
