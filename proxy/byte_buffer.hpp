// A fixed-capacity byte buffer with a read and a write cursor. Sized once per connection so a read
// asks the kernel for as much as fits (docs/architecture.md, "Performance choices": a growing
// flat_buffer made ~2 KiB reads). An upstream connection's storage is lent while it is in use and
// returned while it idles (adopt/release). Owned by one session or one upstream connection; never
// shared between threads.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace proxyd {

class ByteBuffer {
 public:
  ByteBuffer() = default;  // no storage until adopt()
  explicit ByteBuffer(std::size_t capacity)
      : data_(new char[capacity]), capacity_(capacity) {}

  bool has_storage() const { return data_ != nullptr; }
  void adopt(std::unique_ptr<char[]> storage, std::size_t capacity) {
    data_ = std::move(storage);
    capacity_ = capacity;
    begin_ = end_ = 0;
  }
  // Gives the storage back; the buffer must be empty (nothing received may be dropped unseen).
  std::unique_ptr<char[]> release() {
    capacity_ = 0;
    begin_ = end_ = 0;
    return std::move(data_);
  }

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
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace proxyd
