#include "chunked.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/version.hpp>

#include <charconv>
#include <string>
#include <vector>

namespace proxyd {
namespace {

#if BOOST_VERSION < 108600
// Whether `bytes` start with a chunk-size line of zeros only: the last chunk.
bool starts_last_chunk(std::string_view bytes) {
  const std::size_t eol = bytes.find("\r\n");
  return eol != std::string_view::npos && eol > 0 && bytes.find_first_not_of('0') == eol;
}
#endif

// Beast checks a trailer section's fields as it checks a head's: a Content-Length or
// Transfer-Encoding there conflicts with the head's chunked coding and fails the message, its
// body already relayed whole. RFC 9110 6.5.1 forbids sending them in trailers (the chunked coding
// alone frames the body) and RFC 9112 7.1.2 lets a recipient discard trailer fields; nginx and
// HAProxy ignore them, and so does proxyd (reparse_trailer).
bool framing_field_refused(const boost::system::error_code& ec) {
  return ec == http::error::bad_content_length || ec == http::error::bad_transfer_encoding;
}

// By Beast's own name lookup, the one its do_field goes by.
bool is_framing_name(std::string_view name) {
  const http::field id = http::string_to_field({name.data(), name.size()});
  return id == http::field::content_length || id == http::field::transfer_encoding;
}

// The trailer section at `offset` in `in` (whole there: Beast found its end before it parsed a
// field) parsed again by a parser of its own, with each framing field renamed so that Beast checks
// its name and value as any other field's; the renamed ones are then taken out of the trailer
// sink. Done, with `in` holding what follows the message, or an error for what else is wrong with
// the section (what Beast would have said had it gone on).
template <bool isRequest>
Decode reparse_trailer(HeadParser<isRequest>& parser, ByteBuffer& in, std::size_t offset,
                       boost::system::error_code& ec) {
  const std::string_view rest = in.view().substr(offset);
  const std::size_t blank = rest.find("\r\n\r\n");
  if (blank == std::string_view::npos) return Decode::error;  // not reached: Beast found it
  std::string section = "0\r\n";
  std::vector<std::size_t> renamed;  // by the field's place in the section
  std::size_t fields = 0;
  for (std::string_view lines = rest.substr(0, blank + 2); !lines.empty();) {
    std::string_view line = lines.substr(0, lines.find("\r\n") + 2);
    lines.remove_prefix(line.size());
    if (line[0] != ' ' && line[0] != '\t') {  // a field line, not an obs-fold continuation
      const std::size_t colon = line.find(':');
      if (colon != std::string_view::npos && is_framing_name(line.substr(0, colon))) {
        renamed.push_back(fields);
        section += 'x';
        line.remove_prefix(colon);
      }
      ++fields;
    }
    section += line;
  }
  section += "\r\n";

  std::vector<std::pair<std::string, std::string>>* sink = parser.trailer_sink();
  if (sink != nullptr) sink->clear();  // the fields Beast had delivered before it refused one
  HeadParser<false> again(HeadParser<false>::BodyOnly{});
  again.prime_chunked();
  again.set_trailer_sink(sink);
  again.put(boost::asio::buffer(section), ec);
  if (!ec && !again.finished()) ec = http::error::bad_chunk;  // not reached: the section is whole
  if (ec) return Decode::error;
  if (sink != nullptr) {
    std::size_t place = 0;
    auto next = renamed.begin();
    std::erase_if(*sink, [&](const auto&) {
      const bool out = next != renamed.end() && *next == place++;
      if (out) ++next;
      return out;
    });
  }
  in.consume(offset + blank + 4);
  parser.set_trailer_reparsed();
  return Decode::done;
}

}  // namespace

std::string_view chunk_size_line(std::size_t n, std::array<char, 20>& storage) {
  auto [end, ec] = std::to_chars(storage.data(), storage.data() + 16, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  return {storage.data(), static_cast<std::size_t>(end - storage.data())};
}

template <bool isRequest>
Decode decode_chunks(HeadParser<isRequest>& parser, ByteBuffer& in, const std::size_t& staged,
                     std::size_t stage_size, boost::system::error_code& ec) {
  for (;;) {
    if (parser.finished()) return Decode::done;
    if (staged == stage_size) return Decode::flush;
    if (in.empty()) return Decode::need_more;
#if BOOST_VERSION < 108600
    // Beast before 1.86 asserts (in debug builds) that a body whose first chunk is the last one
    // comes back after its "need more" with at least 5 bytes; "0\r\n", then one more byte, breaks
    // that (boostorg/beast#2861). Under 5 bytes such a body can only need more: say so unasked.
    if (!parser.seen_chunk() && in.size() < 5 && starts_last_chunk(in.view()))
      return Decode::need_more;
#endif
    const std::size_t before = in.size();
    const char* const base = in.data();
    const std::size_t used = parser.put(boost::asio::buffer(base, before), ec);
    if (framing_field_refused(ec) && parser.trailer_begin() != nullptr)
      return reparse_trailer(parser, in, static_cast<std::size_t>(parser.trailer_begin() - base),
                             ec);
    in.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      return Decode::need_more;
    }
    if (ec) return Decode::error;
    if (used == 0 && before == in.size()) return Decode::need_more;
  }
}

template Decode decode_chunks<true>(HeadParser<true>&, ByteBuffer&, const std::size_t&,
                                    std::size_t, boost::system::error_code&);
template Decode decode_chunks<false>(HeadParser<false>&, ByteBuffer&, const std::size_t&,
                                     std::size_t, boost::system::error_code&);

}  // namespace proxyd
