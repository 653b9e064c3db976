// Where a client's HTTP/2 byte stream stands against its framing (RFC 9113 3.4 and 4.1): whether
// the bytes read so far end inside the client preface or a frame. The HTTP/2 read loop asks it
// how its next read should wait: after a read that ended inside a frame, the rest of the frame
// comes next, or the reset of a client that gave up, and that reset's event may have been spent
// with the bytes (docs/architecture.md, "Reads that leave a socket empty"). nghttp2 keeps the same
// state to itself and has no call that tells it. Only lengths are read: a frame nghttp2 refuses
// ends the connection anyway.
// Owner: one HTTP/2 connection. Thread: its worker's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace proxyd {

class H2FrameCursor {
 public:
  static constexpr std::uint32_t kPrefaceSize = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  static constexpr std::uint32_t kHeaderSize = 9;    // length (3), type, flags, stream id (4)

  // `preface`: the client preface is still to come through the loop's reads (it was not taken
  // off the socket before, as a plaintext listener's sniffing does).
  explicit H2FrameCursor(bool preface) : preface_left_(preface ? kPrefaceSize : 0) {}

  // Steps over the next `n` bytes of the stream.
  void advance(const std::uint8_t* data, std::size_t n) {
    const std::size_t preface = std::min<std::size_t>(preface_left_, n);
    preface_left_ -= static_cast<std::uint32_t>(preface);
    data += preface;
    n -= preface;
    while (n > 0) {
      if (left_ > 0) {  // inside a frame's payload
        const std::size_t step = std::min<std::size_t>(left_, n);
        left_ -= static_cast<std::uint32_t>(step);
        data += step;
        n -= step;
        continue;
      }
      // A frame header: its first three bytes are the payload's length.
      if (header_taken_ == 0 && n >= kHeaderSize) {
        left_ = std::uint32_t{data[0]} << 16 | std::uint32_t{data[1]} << 8 | data[2];
        data += kHeaderSize;
        n -= kHeaderSize;
        continue;
      }
      // One split between reads, a byte at a time.
      while (n > 0 && header_taken_ < kHeaderSize) {
        if (header_taken_ < 3) length_ = (length_ << 8) | *data;
        ++header_taken_;
        ++data;
        --n;
      }
      if (header_taken_ == kHeaderSize) {
        left_ = length_;
        length_ = 0;
        header_taken_ = 0;
      }
    }
  }

  // The bytes so far end inside the preface, a frame header or a frame's payload (not before the
  // preface: the first read begins something new, as a read at a frame's boundary does).
  bool mid_frame() const {
    return (preface_left_ > 0 && preface_left_ < kPrefaceSize) || left_ > 0 || header_taken_ > 0;
  }

 private:
  std::uint32_t preface_left_;     // bytes of the preface still to come
  std::uint32_t left_ = 0;         // bytes of the current payload still to come
  std::uint32_t length_ = 0;       // the length read so far from a header begun
  std::uint32_t header_taken_ = 0;  // bytes of the current frame header taken
};

}  // namespace proxyd
