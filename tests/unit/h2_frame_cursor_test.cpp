// H2FrameCursor: after any bytes of a client's stream (the preface, then frames), whether they end
// inside the preface or a frame, however the stream is cut into reads.
#include "proxy/h2_frame_cursor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>

namespace proxyd {
namespace {

const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A frame of `length` payload bytes (type, flags and stream id are not looked at).
std::string frame(std::uint32_t length, std::uint8_t type) {
  std::string out;
  out += static_cast<char>(length >> 16);
  out += static_cast<char>((length >> 8) & 0xff);
  out += static_cast<char>(length & 0xff);
  out += static_cast<char>(type);
  out += std::string(5, '\0');
  out += std::string(length, 'x');
  return out;
}

struct Stream {
  std::string bytes;
  std::set<std::size_t> boundaries;  // offsets where neither the preface nor a frame is cut
};

// The preface (if `preface`), then frames of these lengths: empty, short, a length whose middle
// byte is set (300), and one over 65,535 (its first byte is set).
Stream client_stream(bool preface) {
  Stream s;
  s.boundaries.insert(0);  // nothing begun yet
  if (preface) s.bytes = kPreface;
  s.boundaries.insert(s.bytes.size());
  for (std::uint32_t length : {0u, 5u, 300u, 0u, 70000u, 8u}) {
    s.bytes += frame(length, 0x0);
    s.boundaries.insert(s.bytes.size());
  }
  return s;
}

const std::uint8_t* at(const std::string& bytes, std::size_t offset) {
  return reinterpret_cast<const std::uint8_t*>(bytes.data() + offset);
}

// Cut into reads of `size` bytes (the last one shorter): after each read the cursor says whether
// the stream so far ends inside something.
void expect_after_each_read(bool preface, std::size_t size) {
  const Stream s = client_stream(preface);
  H2FrameCursor cursor(preface);
  EXPECT_FALSE(cursor.mid_frame());  // the preface (if any) still to come, none of it read
  for (std::size_t offset = 0; offset < s.bytes.size(); offset += size) {
    const std::size_t n = std::min(size, s.bytes.size() - offset);
    cursor.advance(at(s.bytes, offset), n);
    const std::size_t end = offset + n;
    EXPECT_EQ(cursor.mid_frame(), s.boundaries.count(end) == 0)
        << "reads of " << size << ", after " << end << " bytes";
  }
  EXPECT_FALSE(cursor.mid_frame());
}

TEST(H2FrameCursor, ReadsOfAnySizeEndInsideAFrameExactlyWhereTheyCutOne) {
  for (std::size_t size : {1u, 2u, 3u, 7u, 8u, 9u, 10u, 17u, 24u, 33u, 4096u, 16384u, 100000u}) {
    expect_after_each_read(true, size);
    expect_after_each_read(false, size);
  }
}

// One cut at every offset of the stream (two reads), against where the frames end.
TEST(H2FrameCursor, TwoReadsCutAtEveryOffsetOfTheSmallFrames) {
  const Stream s = client_stream(true);
  const std::size_t small_end = kPreface.size() + 4 * H2FrameCursor::kHeaderSize + 305;
  for (std::size_t cut = 0; cut <= small_end; ++cut) {
    H2FrameCursor cursor(true);
    cursor.advance(at(s.bytes, 0), cut);
    EXPECT_EQ(cursor.mid_frame(), s.boundaries.count(cut) == 0) << "cut at " << cut;
    cursor.advance(at(s.bytes, cut), small_end - cut);
    EXPECT_FALSE(cursor.mid_frame()) << "cut at " << cut;
  }
}

// The payload length is the header's first three bytes, big-endian: 70,000 bytes are awaited
// after its header, however the header was split.
TEST(H2FrameCursor, ALengthOverSixtyFourKibIsReadFromThreeBytes) {
  const std::string header = frame(70000, 0x0).substr(0, H2FrameCursor::kHeaderSize);
  for (std::size_t cut = 0; cut <= header.size(); ++cut) {
    H2FrameCursor cursor(false);
    cursor.advance(at(header, 0), cut);
    cursor.advance(at(header, cut), header.size() - cut);
    const std::string payload(70000, 'x');
    cursor.advance(at(payload, 0), 69999);
    EXPECT_TRUE(cursor.mid_frame()) << "cut at " << cut;
    cursor.advance(at(payload, 69999), 1);
    EXPECT_FALSE(cursor.mid_frame()) << "cut at " << cut;
  }
}

}  // namespace
}  // namespace proxyd
