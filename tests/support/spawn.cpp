// spawn_logged() of spawn.hpp.
#include "tests/support/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace proxyd::test {

int spawn_logged(const std::vector<std::string>& args, const std::string& log_path,
                 std::string& error) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Appended, so a retry's (or a restart's) log follows the run before it.
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || devnull < 0) {
    error = std::string("cannot open the log: ") + std::strerror(errno);
    if (log_fd >= 0) ::close(log_fd);
    if (devnull >= 0) ::close(devnull);
    return -1;
  }
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
    ::close_range(3, ~0U, 0);  // the test's sockets stay in the test
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(devnull);
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return -1;
  }
  return pid;
}

}  // namespace proxyd::test
