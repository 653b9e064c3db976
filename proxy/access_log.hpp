// The access log: one line per request, formatted from its outcome record (outcome.hpp).
// Each worker formats lines into its own buffer and hands whole buffers to write() at least once
// per sweep (at most 100 ms), so lines from two workers never interleave and the request path
// makes no syscall for logging. A line carries the time the request ended; lines of one worker
// are in that order, and a line can follow a line of another worker that ended up to one sweep
// later (docs/configuration.md, "admin.access_log").
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include "proxy/config.hpp"
#include "proxy/outcome.hpp"

namespace proxyd {

class AccessLog {
 public:
  // `where`: "stdout", "off", or a file path (opened for append). Returns false with `error` set
  // when the file cannot be opened.
  bool open(const std::string& where, std::string& error, LogFormat format = LogFormat::text);
  ~AccessLog();

  bool enabled() const { return enabled_; }
  // Appends one formatted line to `buffer` (the worker's); `now` is the wall-clock time of the
  // request's end.
  static void format(std::string& buffer, const RequestOutcome& outcome,
                     std::chrono::system_clock::time_point now);
  // The same fields as one JSON object per line (admin.access_log_format: json): strings escaped,
  // null for what did not happen, `failed` an array of {"server", "end"}.
  static void format_json(std::string& buffer, const RequestOutcome& outcome,
                          std::chrono::system_clock::time_point now);
  bool json() const { return format_ == LogFormat::json; }
  // Writes and clears `buffer`.
  void write(std::string& buffer);
  // A file log opens its path again (after logrotate renamed it: SIGUSR1); the old file is closed
  // once the new one is open, and kept when it cannot be. stdout and off: nothing to do.
  bool reopen(std::string& error);
  const std::string& path() const { return path_; }

 private:
  std::FILE* out_ = nullptr;  // guarded by mutex_ once workers run (reopen swaps it)
  bool enabled_ = false;      // set by open(), before any worker runs
  LogFormat format_ = LogFormat::text;
  std::string path_;          // set for a file log
  bool owned_ = false;
  std::mutex mutex_;
};

}  // namespace proxyd
