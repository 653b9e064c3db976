// Running a proxyd out of file descriptors, for the tests of what it does then: its open
// descriptors counted from /proc, its soft RLIMIT_NOFILE lowered (prlimit(2)) and put back.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <thread>

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

}  // namespace proxyd::test
