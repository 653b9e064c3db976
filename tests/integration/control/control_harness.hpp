// Test harness for the control plane: a FakeAdminApi (records every call, answers as scripted), a
// temp dir, a raw Unix-socket client with bounded reads, and a runner for the real proxyctl binary.
// Header-only because the control tests are the only users; every wait takes a deadline. The
// statuses a test shows through the fake come from tests/support/control_fixtures.hpp.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/control_server.hpp"
#include "proxy/admin_api.hpp"
#include "tests/support/control_fixtures.hpp"

extern char** environ;

namespace proxyd::control::test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Called on the control server's thread, inspected from the test's: every member is under mutex_.
class FakeAdminApi : public AdminApi {
 public:
  Status status() const override {
    std::lock_guard lock(mutex_);
    ++status_calls_;
    return status_;
  }
  ChangeResult apply(const ChangeRequest& request) override {
    std::lock_guard lock(mutex_);
    applied_.push_back(request);
    if (!apply_results_.empty()) {
      ChangeResult result = apply_results_.front();
      apply_results_.erase(apply_results_.begin());
      return result;
    }
    status_.generation += 1;
    ChangeResult result = ChangeResult::accepted(status_.generation);
    result.touched = touched_by(request.operations, status_);
    return result;
  }
  ChangeResult reload(const Caller& caller, std::optional<std::uint64_t> if_generation) override {
    std::lock_guard lock(mutex_);
    if (if_generation && *if_generation != status_.generation)
      return ChangeResult::refused("the generation is " + std::to_string(status_.generation) +
                                       ", not " + std::to_string(*if_generation) +
                                       "; nothing was reloaded",
                                   status_.generation);
    reloads_.push_back(caller);
    if (reload_result_.ok) status_.generation = reload_result_.generation;
    return reload_result_;
  }
  ChangeResult rollout(const RolloutCommand& command) override {
    std::lock_guard lock(mutex_);
    return ChangeResult::refused("no rollouts in this fake (" + command.route + ")",
                                 status_.generation);
  }
  std::vector<std::string> history(std::size_t max_entries) const override {
    std::lock_guard lock(mutex_);
    history_limits_.push_back(max_entries);
    return history_;
  }
  RuntimeDiff diff() const override {
    std::lock_guard lock(mutex_);
    RuntimeDiff diff = diff_;
    diff.generation = status_.generation;
    return diff;
  }

  Stats stats(std::chrono::seconds window) const override {
    std::lock_guard lock(mutex_);
    Stats stats = test::sample_stats(window.count());
    stats.generation = status_.generation;
    return stats;
  }

  void set_status(Status status) {
    std::lock_guard lock(mutex_);
    status_ = std::move(status);
  }
  void refuse_next_apply(std::string why, std::optional<std::size_t> operation = std::nullopt) {
    std::lock_guard lock(mutex_);
    apply_results_.push_back(ChangeResult::refused(std::move(why), status_.generation));
    apply_results_.back().failed_operation = operation;
  }
  void set_reload_result(ChangeResult result) {
    std::lock_guard lock(mutex_);
    reload_result_ = std::move(result);
  }
  void set_diff(RuntimeDiff diff) {
    std::lock_guard lock(mutex_);
    diff_ = std::move(diff);
  }
  void set_history(std::vector<std::string> lines) {
    std::lock_guard lock(mutex_);
    history_ = std::move(lines);
  }
  std::vector<ChangeRequest> applied() const {
    std::lock_guard lock(mutex_);
    return applied_;
  }
  std::vector<Caller> reloads() const {
    std::lock_guard lock(mutex_);
    return reloads_;
  }
  std::vector<std::size_t> history_limits() const {
    std::lock_guard lock(mutex_);
    return history_limits_;
  }
  int status_calls() const {
    std::lock_guard lock(mutex_);
    return status_calls_;
  }

 private:
  mutable std::mutex mutex_;
  Status status_;
  mutable int status_calls_ = 0;
  std::vector<ChangeRequest> applied_;
  std::vector<ChangeResult> apply_results_;
  std::vector<Caller> reloads_;
  ChangeResult reload_result_ = ChangeResult::accepted(0);
  std::vector<std::string> history_;
  mutable std::vector<std::size_t> history_limits_;
  RuntimeDiff diff_;
};

// A fresh directory from mkdtemp (mode 0700), removed with everything in it by the destructor.
// Owner: one test, on its thread.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "proxyd-control-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A raw client connection for socket-level tests; connects in the constructor, closes in the
// destructor. Owner: one test, on its thread. Every read takes a deadline.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    connected_ =
        ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Ends the request stream, as `printf ... | socat` does at the end of its input.
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // The next line (without newline); nullopt on EOF or when `timeout` passes first.
  std::optional<std::string> read_line(milliseconds timeout = milliseconds(5000)) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (const std::size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  // True when the server closes the connection (EOF) before `timeout`; unread data is dropped.
  bool closed_within(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (fill(deadline)) buffer_.clear();
    return eof_;
  }

 private:
  bool fill(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

struct RunResult {
  int exit_code = -1;  // -1: did not finish within the deadline (then killed)
  std::string out;
  std::string err;
};

// Runs the proxyctl binary with `args`, feeding `input` on stdin. The environment is this
// process's without PROXYD_SOCKET and PROXYCTL_TIMEOUT, plus `env`.
inline RunResult run_proxyctl(const std::vector<std::string>& args, const std::string& input = "",
                              const std::map<std::string, std::string>& env = {},
                              milliseconds timeout = milliseconds(30'000)) {
  std::vector<std::string> argv_storage{PROXYCTL_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (entry.starts_with("PROXYD_SOCKET=") || entry.starts_with("PROXYCTL_TIMEOUT=")) continue;
    env_storage.push_back(entry);
  }
  for (const auto& [key, value] : env) env_storage.push_back(key + "=" + value);
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_pipe[2];
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return {};
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the test process has other threads.
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  // A batch is small; it fits in the pipe without waiting for the child to read it.
  if (!input.empty()) {
    [[maybe_unused]] const ssize_t written = ::write(in_pipe[1], input.data(), input.size());
  }
  ::close(in_pipe[1]);

  RunResult result;
  const auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(fds[i].fd, chunk, sizeof(chunk));
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(chunk, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = timed_out           ? -1
                     : WIFEXITED(status) ? WEXITSTATUS(status)
                                         : 128 + WTERMSIG(status);
  return result;
}

}  // namespace proxyd::control::test
