#include "chunked.hpp"

#include <boost/asio/buffer.hpp>

#include <charconv>

namespace proxyd {

std::string_view chunk_size_line(std::size_t n, std::array<char, 20>& storage) {
  auto [end, ec] = std::to_chars(storage.data(), storage.data() + 16, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  return {storage.data(), static_cast<std::size_t>(end - storage.data())};
}

template <bool isRequest>
Decode decode_chunks(HeadParser<isRequest>& parser, ByteBuffer& in, std::size_t staged,
                     std::size_t stage_size, boost::system::error_code& ec) {
  for (;;) {
    if (parser.is_done()) return Decode::done;
    if (staged == stage_size) return Decode::flush;
    if (in.empty()) return Decode::need_more;
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

template Decode decode_chunks<true>(HeadParser<true>&, ByteBuffer&, std::size_t,
                                    std::size_t, boost::system::error_code&);
template Decode decode_chunks<false>(HeadParser<false>&, ByteBuffer&, std::size_t,
                                     std::size_t, boost::system::error_code&);

}  // namespace proxyd
