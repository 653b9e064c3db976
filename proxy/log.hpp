// proxyd's messages on stderr (ready, listening, reloads, health changes, ejections, warnings,
// errors): one line each, each with a level. admin.log_level drops the lines below it. Under
// journald (systemd's JOURNAL_STREAM names our stderr) each line starts with its syslog priority,
// "<3>" to "<7>" as sd-daemon(3) describes, so `journalctl -p warning` works and journald strips
// the prefix; anywhere else the text is written as is. Plain: no Asio, usable from every thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace proxyd {

enum class LogLevel { debug, info, warning, error };

namespace log {

// Lines below `level` are dropped from now on (admin.log_level; info until set).
void set_level(LogLevel level);
// Whether a line at `level` is written: build costly debug text only when it is.
bool enabled(LogLevel level);

// Writes `text` as is, one write per call, so lines of different threads never mix; each line of
// a multi-line text gets the journal prefix of `level`.
void write(LogLevel level, std::string_view text);

// "proxyd: TEXT" at each level; warnings read "proxyd: warning: TEXT".
void debug(std::string_view text);
void info(std::string_view text);
void warning(std::string_view text);
void error(std::string_view text);

// Lets a line through at most once per `every`, for a warning whose cause can come back with
// every request or retry (proxyd out of descriptors): a line every `every`, not a flood. The
// lines say so: "the next 10 s of these are not logged". One per thread that logs (a worker,
// the health checker, the control thread); no lock.
class Throttle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Throttle(Clock::duration every) : every_(every) {}
  // Whether a line may go now; if so, the next one waits `every` from `now`.
  bool allow(Clock::time_point now) {
    if (last_ && now - *last_ < every_) return false;
    last_ = now;
    return true;
  }

 private:
  Clock::duration every_;
  std::optional<Clock::time_point> last_;
};

// The bytes write() sends: `text` ending in a newline, each line prefixed "<N>" when `journal`.
// Pure, for the tests.
std::string format(LogLevel level, std::string_view text, bool journal);

// Whether `journal_stream` (the JOURNAL_STREAM variable, "DEVICE:INODE") names the file with this
// device and inode: stderr is then connected to journald. Pure, for the tests.
bool is_journal_stream(const char* journal_stream, unsigned long long device,
                       unsigned long long inode);

}  // namespace log
}  // namespace proxyd
