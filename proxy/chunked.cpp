#include "chunked.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/version.hpp>

#include <charconv>

namespace proxyd {
namespace {

#if BOOST_VERSION < 108600
// Whether `bytes` start with a chunk-size line of zeros only: the last chunk.
bool starts_last_chunk(std::string_view bytes) {
  const std::size_t eol = bytes.find("\r\n");
  return eol != std::string_view::npos && eol > 0 && bytes.find_first_not_of('0') == eol;
}
#endif

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
    if (parser.is_done()) return Decode::done;
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
    const std::size_t used = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
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
