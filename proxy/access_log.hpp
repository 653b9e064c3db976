// The access log: one line per request (route, slot, pool, server, status, duration, bytes).
// Each worker formats lines into its own buffer and hands whole buffers to write(), so lines from
// two workers never interleave and the request path makes no syscall for logging.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace proxyd {

struct AccessRecord {
  std::string_view listener;
  std::string_view client;
  std::string_view method;
  std::string_view target;
  unsigned status = 0;
  std::string_view route;  // "-" when none
  std::string_view slot;
  std::string_view pool;
  std::string_view server;
  std::string_view reason;  // local reply reason or upstream failure, "-" when none
  double duration_ms = 0;
  std::uint64_t bytes_in = 0;   // request body bytes received
  std::uint64_t bytes_out = 0;  // response body bytes sent
};

class AccessLog {
 public:
  // `where`: "stdout", "off", or a file path (opened for append). Returns false with `error` set
  // when the file cannot be opened.
  bool open(const std::string& where, std::string& error);
  ~AccessLog();

  bool enabled() const { return out_ != nullptr; }
  // Appends one formatted line to `buffer` (the worker's).
  static void format(std::string& buffer, const AccessRecord& record);
  // Writes and clears `buffer`.
  void write(std::string& buffer);

 private:
  std::FILE* out_ = nullptr;
  bool owned_ = false;
  std::mutex mutex_;
};

}  // namespace proxyd
