// Running a proxyd out of file descriptors, for the tests of what it does then: its open
// descriptors counted from /proc, its soft RLIMIT_NOFILE lowered (prlimit(2)) and put back.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/http_client.hpp"

namespace proxyd::test {

// Whether proxyd (built with the tests) runs under the sanitizers. A sanitized proxyd cannot be
// run out of descriptors: UBSan's type checks find out whether memory is readable by writing it
// to a pipe, and with no descriptor left for the pipe they report false errors and stop proxyd.
// The tests that do it skip in that build (the plain build runs them).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
inline constexpr const char* kSanitizedSkip =
    "the sanitizers need descriptors of their own (tests/support/descriptors.hpp)";

// The descriptors process `pid` has open.
inline std::size_t open_fds(int pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

// The first line of a file (a /proc entry), or "" if it cannot be read.
inline std::string first_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Polls `done` every 10 ms until it holds or `timeout` passes; whether it held.
template <class Done>
bool poll_until(Done done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// The CPU time (user and system, in clock ticks) of `pid`'s thread named `name`; -1 if none is.
inline long thread_cpu_ticks(int pid, const std::string& name) {
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(task.path() / "comm");
    std::string thread;
    if (!std::getline(comm, thread) || thread != name) continue;
    std::ifstream stat(task.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields 14 and 15 (utime, stime), counted after the ")" that ends the name (field 2).
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stol(field);
      if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
  }
  return -1;
}

// The CPU ticks `pid`'s thread `name` spends in the next 500 ms (100 ticks a second: a thread
// spinning on one CPU spends about 50); -1 if no thread takes that name within 5 s. The 500 ms
// are a measurement window, not a wait for an event.
inline long thread_cpu_ticks_in_half_a_second(int pid, const std::string& name) {
  // A thread takes its name once it runs (pthread_setname_np on itself): until then it is called
  // as the thread that started it. Wait, bounded, until one answers to the name.
  long before = -1;
  poll_until([&] { return (before = thread_cpu_ticks(pid, name)) >= 0; });
  if (before < 0) return -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return thread_cpu_ticks(pid, name) - before;
}

// Sets `pid`'s soft RLIMIT_NOFILE to `soft` (the hard limit stays) for the object's life.
class LoweredFileLimit {
 public:
  LoweredFileLimit(int pid, rlim_t soft) : pid_(pid) {
    ok_ = ::prlimit(pid_, RLIMIT_NOFILE, nullptr, &before_) == 0;
    const rlimit lowered{soft, before_.rlim_max};
    ok_ = ok_ && ::prlimit(pid_, RLIMIT_NOFILE, &lowered, nullptr) == 0;
  }
  ~LoweredFileLimit() { restore(); }
  LoweredFileLimit(const LoweredFileLimit&) = delete;
  LoweredFileLimit& operator=(const LoweredFileLimit&) = delete;

  bool ok() const { return ok_; }
  bool restore() {
    if (!ok_) return false;
    ok_ = false;
    return ::prlimit(pid_, RLIMIT_NOFILE, &before_, nullptr) == 0;
  }

 private:
  int pid_;
  rlimit before_{};
  bool ok_ = false;
};

// proxyd `pid` out of descriptors for the object's life: its soft limit lowered to what it has
// open plus `spare`, then idle client connections to `port` until it has accepted `spare` of them
// and has none left (the other connections wait in its listen backlog).
class OutOfDescriptors {
 public:
  OutOfDescriptors(int pid, std::uint16_t port, std::size_t spare = 2)
      : full_(open_fds(pid) + spare), limit_(pid, static_cast<rlim_t>(full_)) {
    for (std::size_t i = 0; i < spare + 6; ++i) idle_.push_back(std::make_unique<HttpClient>(port));
    ok_ = limit_.ok() && poll_until([&] { return open_fds(pid) == full_; });
  }
  // Whether the limit was lowered and every descriptor taken (within 5 s).
  bool ok() const { return ok_; }
  // The idle connections closed and the limit put back; whether that worked.
  bool end() {
    idle_.clear();
    return limit_.restore();
  }

 private:
  std::size_t full_;  // the lowered limit: descriptors open when none is left
  LoweredFileLimit limit_;
  std::vector<std::unique_ptr<HttpClient>> idle_;
  bool ok_ = false;
};

}  // namespace proxyd::test
