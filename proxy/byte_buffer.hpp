// A fixed-capacity byte buffer with a read and a write cursor. Sized once per connection so a read
// asks the kernel for as much as fits (docs/architecture.md, "Performance choices": a growing
// flat_buffer made ~2 KiB reads). Owned by one session or one upstream connection; never shared between threads.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace proxyd {

class ByteBuffer {
 public:
  explicit ByteBuffer(std::size_t capacity)
      : data_(new char[capacity]), capacity_(capacity) {}

  // Bytes received and not yet consumed.
  const char* data() const { return data_.get() + begin_; }
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::string_view view() const { return {data(), size()}; }

  // Free space after the unread bytes; compacts first when that makes room.
  char* write_ptr() { return data_.get() + end_; }
  std::size_t writable() const { return capacity_ - end_; }
  void commit(std::size_t n) { end_ += n; }
  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void compact() {
    if (begin_ == 0) return;
    std::memmove(data_.get(), data(), size());
    end_ -= begin_;
    begin_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  std::size_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t capacity_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace proxyd
