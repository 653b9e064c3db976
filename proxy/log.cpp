// One stderr line per message, with a level; see log.hpp.
#include "log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace proxyd::log {

namespace {

std::atomic<LogLevel> g_level{LogLevel::info};

// syslog(3) priorities, the numbers sd-daemon(3) prefixes.
char priority(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return '7';
    case LogLevel::info:
      return '6';
    case LogLevel::warning:
      return '4';
    case LogLevel::error:
      return '3';
  }
  return '6';
}

// Decided once: systemd sets JOURNAL_STREAM for a service whose stderr goes to journald, and a
// child that inherits the variable but writes elsewhere sees another device or inode.
bool stderr_is_journal() {
  static const bool journal = [] {
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return is_journal_stream(std::getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
  }();
  return journal;
}

}  // namespace

void set_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

bool enabled(LogLevel level) { return level >= g_level.load(std::memory_order_relaxed); }

std::string format(LogLevel level, std::string_view text, bool journal) {
  std::string out;
  out.reserve(text.size() + 8);
  bool line_start = true;
  for (const char c : text) {
    if (line_start && journal) {
      out += '<';
      out += priority(level);
      out += '>';
    }
    out += c;
    line_start = c == '\n';
  }
  if (!line_start || text.empty()) {
    if (text.empty() && journal) out += std::string("<") + priority(level) + ">";
    out += '\n';
  }
  return out;
}

bool is_journal_stream(const char* journal_stream, unsigned long long device,
                       unsigned long long inode) {
  if (journal_stream == nullptr) return false;
  unsigned long long d = 0;
  unsigned long long i = 0;
  char end = 0;
  return std::sscanf(journal_stream, "%llu:%llu%c", &d, &i, &end) == 2 && d == device &&
         i == inode;
}

void write(LogLevel level, std::string_view text) {
  if (!enabled(level)) return;
  const std::string line = format(level, text, stderr_is_journal());
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void debug(std::string_view text) { write(LogLevel::debug, "proxyd: " + std::string(text)); }
void info(std::string_view text) { write(LogLevel::info, "proxyd: " + std::string(text)); }
void warning(std::string_view text) {
  write(LogLevel::warning, "proxyd: warning: " + std::string(text));
}
void error(std::string_view text) { write(LogLevel::error, "proxyd: " + std::string(text)); }

}  // namespace proxyd::log
