// Chunked bodies (proxy/chunked.hpp) checked on any bytes: decode_chunks, driven as the relay
// drives it (an input buffer filled in pieces, a stage flushed when full, the parser set up as the
// session and the upstream phases set it up), must reach the verdict Beast's own string_body parser
// reaches on the whole message at once, with the same decoded bytes and the same bytes left over
// after the body, and the same trailer fields; and the body proxyd re-chunks from the stage must
// parse back to those bytes. A Content-Length or Transfer-Encoding in the trailer section, which
// Beast refuses and proxyd ignores, is renamed in the message Beast gets. Used by the libFuzzer
// harness fuzz_chunked_body and, on fixed-seed mutations, by
// tests/unit/net/chunked_roundtrip_test.cpp.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace proxyd::test {

// How one body ended.
enum class ChunkedVerdict {
  done,        // the last chunk and its trailer section were read
  error,       // the parser refused the framing (or the body limit)
  incomplete,  // the input ended first
  too_long,    // a line or trailer section did not fit in the input buffer (bad_body)
};

struct ChunkedShape {
  bool request = false;          // the client's body (limits as the session sets them) or not
  std::size_t stage_size = 1;    // at least 1
  std::size_t buffer_size = 1;   // at least 1
  std::span<const std::size_t> pieces;  // the sizes the input arrives in, cycled; 0 = all at once
};

// `body`: the bytes after a chunked head. "" when every property holds, else what broke.
std::string chunked_fault(std::string_view body, const ChunkedShape& shape,
                          ChunkedVerdict* verdict = nullptr);

// From fuzz bytes: the first says the side and the stage size, the second the buffer size, the
// third and fourth two piece sizes; the rest is the body.
std::string chunked_fault_from_bytes(std::string_view bytes, ChunkedVerdict* verdict = nullptr);

}  // namespace proxyd::test
