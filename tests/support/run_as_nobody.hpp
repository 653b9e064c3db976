// Runs a program as uid/gid 65534 (nobody) from a forked child that drops root, collecting its
// output: for the tests of who may use the control socket. Header-only; needs root to do anything
// (tests skip themselves otherwise).
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace proxyd::test {

inline constexpr int kNobody = 65534;

struct NobodyResult {
  int exit_code = -1;  // 126: could not drop root; 127: could not run the program
  std::string out;
  std::string err;
};

// argv[0] is the program's path. No environment, no standard input.
inline NobodyResult run_as_nobody(std::vector<std::string> argv) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return {};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return {};
  }
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  char* envp[] = {nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Raw syscalls: async-signal-safe in the child of a multi-threaded process.
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
        ::syscall(SYS_setresgid, kNobody, kNobody, kNobody) != 0 ||
        ::syscall(SYS_setresuid, kNobody, kNobody, kNobody) != 0) {
      ::_exit(126);
    }
    ::execve(args[0], args.data(), envp);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  NobodyResult result;
  char chunk[4096];
  for (ssize_t n; (n = ::read(out_pipe[0], chunk, sizeof(chunk))) > 0;) result.out.append(chunk, n);
  for (ssize_t n; (n = ::read(err_pipe[0], chunk, sizeof(chunk))) > 0;) result.err.append(chunk, n);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace proxyd::test
