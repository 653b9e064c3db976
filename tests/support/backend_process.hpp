// The demo backend (proxyd-demo-backend) as a child process, for tests that must freeze a server
// the way an overloaded or stopped host does: SIGSTOP leaves its listening socket open, so the
// kernel still completes connections, but nothing is ever answered. An in-process fake cannot do
// that without also freezing the test. Header-only: fork, exec and a pipe.
// Owner: the test. Lifetime: started and listening once the constructor returns (it waits for the
// backend's "listening" line); the destructor resumes it if stopped, SIGKILLs and reaps it.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace proxyd::test {

class BackendProcess {
 public:
  // Runs `binary --name NAME --listen ADDRESS`; `ready()` says whether it got to listen within
  // the timeout.
  BackendProcess(const std::string& binary, const std::string& name, const std::string& address,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      execl(binary.c_str(), binary.c_str(), "--name", name.c_str(), "--listen", address.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    err_ = fds[0];
    if (pid_ < 0) return;
    // Reads its stderr until the "listening" line (or EOF, or the timeout).
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string seen;
    while (seen.find(" listening ") == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{err_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
      char buffer[256];
      const ssize_t n = read(err_, buffer, sizeof buffer);
      if (n <= 0) return;
      seen.append(buffer, static_cast<std::size_t>(n));
    }
    ready_ = true;
  }
  ~BackendProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGCONT);
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (err_ >= 0) close(err_);
  }
  BackendProcess(const BackendProcess&) = delete;
  BackendProcess& operator=(const BackendProcess&) = delete;

  bool ready() const { return ready_; }
  void freeze() { kill(pid_, SIGSTOP); }
  void thaw() { kill(pid_, SIGCONT); }

 private:
  pid_t pid_ = -1;
  int err_ = -1;
  bool ready_ = false;
};

}  // namespace proxyd::test
