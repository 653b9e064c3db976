// Chunked transfer coding (RFC 9112 7.1), both ways: decoding a chunked body step by step into a
// stage with the message's own parser (Beast's, which checks the chunk grammar and the body
// limit), and the chunk-size line of a re-chunked piece. Pure: the relay (relay.hpp) and the
// HTTP/2 response path drive them around their reads and writes, and
// tests/fuzz/chunked_roundtrip.* checks them on any bytes.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "byte_buffer.hpp"
#include "http_head.hpp"

namespace proxyd {

// "1f4\r\n": the chunk-size line for `n` bytes.
std::string_view chunk_size_line(std::size_t n, std::array<char, 20>& storage);

// The last chunk, with no trailer fields: what ends a re-chunked body.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// One step of decoding a chunked body from `in` into a stage of `stage_size` bytes (the parser's
// sink, set_sink): flush the stage, read more, or the body is done. `staged` is the count the
// sink updates, read again after each put: a stage that fills mid-call is a flush, never a "read
// more" while `in` still holds bytes (that once held a body whose last bytes were already read
// until a timeout). Beast's parser, driven non-eagerly, reports "consumed nothing" both for a
// full sink and for an empty input, so both are checked before calling it (an early version spun
// a worker on exactly that).
enum class Decode { flush, need_more, done, error };

template <bool isRequest>
Decode decode_chunks(HeadParser<isRequest>& parser, ByteBuffer& in, const std::size_t& staged,
                     std::size_t stage_size, boost::system::error_code& ec);

}  // namespace proxyd
