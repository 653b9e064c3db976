// Runs the real proxyd binary for integration tests: writes the config to a fresh temp dir, spawns
// `proxyd -c FILE` with stdout and stderr piped and captured line by line, and exposes the contract
// lines (`proxyd: listening NAME ADDR`, `proxyd: ready`, `proxyd: reload ...`), signals, exit code
// and memory. Every wait takes a timeout and is woken by a condition variable, never by polling.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxyd::test {

// The proxyd executable: $PROXYD_BINARY if set, else proxyd_binary_path().
std::string proxyd_binary();
// Defined by the test executable (which has the PROXYD_BINARY compile definition), so this library
// does not need it.
const char* proxyd_binary_path();

// Replaces every `from` with `to`, in order: substitute(yaml, {{"{blue}", blue.address()}}).
std::string substitute(std::string text,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> pairs);

// A fresh directory under $TMPDIR (or /tmp) named PREFIX-XXXXXX; throws if it cannot be made.
std::string make_temp_dir(std::string_view prefix = "proxyd-it");

struct CommandResult {
  int exit_code = -1;       // 128+N when killed by signal N; -1 if it could not run or timed out
  std::string output;       // stdout and stderr, interleaved as written
  std::string config_path;  // for check(): the file that was checked
};

// Runs argv[0] with the rest as arguments, no standard input, and collects its output until it
// exits or `timeout` passes (then it is killed and exit_code is -1). `started`, if set, is given
// the child's pid once it is forked (to signal it while it runs; it is reaped before this returns).
CommandResult run_program(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10),
                          const std::function<void(int pid)>& started = {});

// One proxyd process.
// Owner: the test. Threads: two reader threads (stdout, stderr) and a reaper thread, all internal;
// public members may be called from any thread. Lifetime: started by the constructor; the
// destructor SIGKILLs it if still running, reaps it, joins the threads and removes the temp dir
// (if the test failed, it first prints the captured stderr to help diagnose).
// The child gets PR_SET_PDEATHSIG(SIGKILL) tied to the constructing thread: construct it on the
// test's own thread.
class ProxydProcess {
 public:
  // Every "@DIR@" in `yaml` becomes the temp dir (use it for control_socket, state_file and the
  // like). Runs `proxyd -c DIR/proxyd.yaml` followed by extra_args; `binary`, if not empty, is
  // run instead of proxyd_binary() (a wrapper that starts it).
  explicit ProxydProcess(const std::string& yaml, std::vector<std::string> extra_args = {},
                         const std::string& binary = {});
  ~ProxydProcess();
  ProxydProcess(const ProxydProcess&) = delete;
  ProxydProcess& operator=(const ProxydProcess&) = delete;

  const std::string& dir() const;
  const std::string& config_path() const;
  // Rewrites the config file (with @DIR@ substituted) for a reload test; does not signal.
  void write_config(const std::string& yaml);

  // Waits for `proxyd: ready`; false on timeout or if proxyd exits first.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The first stderr line at index >= from containing `needle`; nullopt on timeout or stderr EOF.
  // Take `from` from line_count() before the action whose answer you wait for.
  std::optional<std::string> wait_for_line(std::string_view needle,
                                           std::chrono::milliseconds timeout, std::size_t from = 0);
  std::size_t line_count() const;  // stderr lines so far
  std::vector<std::string> stderr_lines() const;
  std::string stderr_text() const;
  std::vector<std::string> stdout_lines() const;  // the access log when admin.access_log: stdout
  // Waits until stdout has at least n lines; false on timeout or EOF.
  bool wait_for_stdout_lines(std::size_t n, std::chrono::milliseconds timeout);

  // The port from `proxyd: listening NAME 127.0.0.1:PORT`; 0 if that line was not seen.
  std::uint16_t port(std::string_view listener) const;
  int pid() const;
  bool running() const;
  // Sends a signal; false if the process has already exited.
  bool signal(int sig);
  // The exit code (128+N if killed by signal N); nullopt if still running after the timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  // VmRSS / VmHWM from /proc/PID/status in KiB; -1 if unavailable (e.g. already exited).
  long rss_kib() const;
  long hwm_kib() const;

  // Starts proxyd and waits for `proxyd: ready`; on failure records a test failure (with proxyd's
  // stderr) and returns null, so tests write `auto proxy = ProxydProcess::start(yaml);
  // ASSERT_TRUE(proxy);`.
  static std::unique_ptr<ProxydProcess> start(
      const std::string& yaml, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // `proxyd --check -c FILE` on `yaml` (with @DIR@ substituted) in a temp dir.
  static CommandResult check(const std::string& yaml,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // proxyd with arbitrary arguments, to completion (killed after the timeout).
  static CommandResult run(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proxyd::test
