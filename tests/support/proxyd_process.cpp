// The proxyd process harness: fork/exec with piped output, one reader thread per pipe feeding line
// buffers under a mutex + condition variable, and a reaper thread that records the exit status.
// The reaper waits with WNOWAIT and reaps under the mutex, so signal() can never hit a reused pid.
#include "tests/support/proxyd_process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace proxyd::test {

namespace {

using Clock = std::chrono::steady_clock;

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

std::string with_dir(const std::string& yaml, const std::string& dir) {
  return substitute(yaml, {{"@DIR@", dir}});
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct Spawned {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout (and stderr when merged)
  int err = -1;  // read end of the child's stderr; -1 when merged
};

// fork + exec with stdin from /dev/null and output piped. Only async-signal-safe calls run in the
// child; everything it needs is prepared before fork().
Spawned spawn(const std::vector<std::string>& args, bool merge_output) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (!merge_output && ::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(merge_output ? out_pipe[1] : err_pipe[1], 2);
    // The test process may ignore or block signals; proxyd must start with the defaults.
    for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD}) {
      ::sigaction(sig, &default_action, nullptr);
    }
    ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
    // Fake upstream and client sockets of the test process must not leak into proxyd.
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(devnull);
  ::close(out_pipe[1]);
  if (!merge_output) ::close(err_pipe[1]);
  return {pid, out_pipe[0], merge_output ? -1 : err_pipe[0]};
}

// Reads `fd` to EOF, handing each complete line (without '\n') to on_line, then calls on_eof.
// Once `wake_fd` is readable (the child was reaped) it drains what is buffered and stops, so a
// grandchild that inherited the pipe cannot keep the harness waiting.
void read_lines(int fd, int wake_fd, const std::function<void(std::string)>& on_line,
                const std::function<void()>& on_eof) {
  std::string pending;
  char buf[4096];
  auto consume = [&](ssize_t n) {
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      on_line(pending.substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
  };
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      consume(n);
      continue;
    }
    if (fds[1].revents != 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) consume(n);
      break;
    }
  }
  if (!pending.empty()) on_line(pending);
  ::close(fd);
  on_eof();
}

long proc_status_kib(int pid, std::string_view key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() &&
        line[key.size()] == ':') {
      return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

// Waits for a child without reaping it (WNOWAIT), then reaps it under `mu` and records the status.
// `wake_fd`, if not -1, is an eventfd made readable once the child is reaped.
void reap(pid_t pid, std::mutex& mu, std::condition_variable& cv, bool& exited, int& exit_code,
          int wake_fd = -1) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  {
    std::lock_guard lock(mu);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    exited = true;
    exit_code = decode_status(status);
  }
  cv.notify_all();
  if (wake_fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }
}

}  // namespace

std::string make_temp_dir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + std::string(prefix) +
                     "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  }
  return tmpl;
}

std::string proxyd_binary() {
  const char* env = std::getenv("PROXYD_BINARY");
  return env && *env ? std::string(env) : std::string(proxyd_binary_path());
}

std::string substitute(std::string text,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> pairs) {
  for (const auto& [from, to] : pairs) {
    if (from.empty()) continue;
    for (auto pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + to.size())) {
      text.replace(pos, from.size(), to);
    }
  }
  return text;
}

// Owner: ProxydProcess. Everything below `mu` is guarded by it and signalled through `cv`.
struct ProxydProcess::Impl {
  std::string dir;
  std::string config_path;
  pid_t pid = -1;
  int wake_fd = -1;  // eventfd: readable once the child is reaped (stops the readers)

  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> err_lines;
  std::vector<std::string> out_lines;
  bool err_eof = false;
  bool out_eof = false;
  std::map<std::string, std::uint16_t, std::less<>> ports;
  bool exited = false;
  int exit_code = -1;

  std::thread err_reader;
  std::thread out_reader;
  std::thread reaper;

  void on_err_line(std::string line) {
    static constexpr std::string_view kListening = "proxyd: listening ";
    {
      std::lock_guard lock(mu);
      if (line.compare(0, kListening.size(), kListening) == 0) {
        // "proxyd: listening NAME HOST:PORT"
        std::istringstream in(line.substr(kListening.size()));
        std::string name, address;
        in >> name >> address;
        auto colon = address.rfind(':');
        if (!name.empty() && colon != std::string::npos) {
          ports[name] =
              static_cast<std::uint16_t>(std::strtoul(address.c_str() + colon + 1, nullptr, 10));
        }
      }
      err_lines.push_back(std::move(line));
    }
    cv.notify_all();
  }
};

ProxydProcess::ProxydProcess(const std::string& yaml, std::vector<std::string> extra_args,
                             const std::string& binary)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = make_temp_dir();
  impl_->config_path = impl_->dir + "/proxyd.yaml";
  write_config(yaml);
  std::vector<std::string> args{binary.empty() ? proxyd_binary() : binary, "-c",
                                impl_->config_path};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC);
  if (impl_->wake_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  Spawned child = spawn(args, false);
  impl_->pid = child.pid;
  Impl* impl = impl_.get();
  impl_->reaper = std::thread([impl] {
    reap(impl->pid, impl->mu, impl->cv, impl->exited, impl->exit_code, impl->wake_fd);
  });
  impl_->err_reader = std::thread([impl, fd = child.err] {
    read_lines(
        fd, impl->wake_fd, [impl](std::string line) { impl->on_err_line(std::move(line)); },
        [impl] {
          {
            std::lock_guard lock(impl->mu);
            impl->err_eof = true;
          }
          impl->cv.notify_all();
        });
  });
  impl_->out_reader = std::thread([impl, fd = child.out] {
    read_lines(
        fd, impl->wake_fd,
        [impl](std::string line) {
          {
            std::lock_guard lock(impl->mu);
            impl->out_lines.push_back(std::move(line));
          }
          impl->cv.notify_all();
        },
        [impl] {
          {
            std::lock_guard lock(impl->mu);
            impl->out_eof = true;
          }
          impl->cv.notify_all();
        });
  });
}

ProxydProcess::~ProxydProcess() {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->exited) ::kill(impl_->pid, SIGKILL);
  }
  impl_->reaper.join();
  impl_->err_reader.join();
  impl_->out_reader.join();
  ::close(impl_->wake_fd);
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- proxyd stderr (" << impl_->config_path << ", exit " << impl_->exit_code
              << ") ----\n";
    for (const auto& line : impl_->err_lines) std::cerr << line << '\n';
    const auto& out = impl_->out_lines;
    const std::size_t first = out.size() > 20 ? out.size() - 20 : 0;
    std::cerr << "---- proxyd stdout, last " << out.size() - first << " of " << out.size()
              << " lines ----\n";
    for (std::size_t i = first; i < out.size(); ++i) std::cerr << out[i] << '\n';
  }
  std::error_code ec;
  std::filesystem::remove_all(impl_->dir, ec);
}

const std::string& ProxydProcess::dir() const { return impl_->dir; }
const std::string& ProxydProcess::config_path() const { return impl_->config_path; }

void ProxydProcess::write_config(const std::string& yaml) {
  write_file_atomically(impl_->config_path, with_dir(yaml, impl_->dir));
}

bool ProxydProcess::wait_ready(std::chrono::milliseconds timeout) {
  return wait_for_line("proxyd: ready", timeout).has_value();
}

std::optional<std::string> ProxydProcess::wait_for_line(std::string_view needle,
                                                        std::chrono::milliseconds timeout,
                                                        std::size_t from) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(impl_->mu);
  std::size_t i = from;
  for (;;) {
    for (; i < impl_->err_lines.size(); ++i) {
      if (impl_->err_lines[i].find(needle) != std::string::npos) return impl_->err_lines[i];
    }
    if (impl_->err_eof) return std::nullopt;
    if (impl_->cv.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (; i < impl_->err_lines.size(); ++i) {
        if (impl_->err_lines[i].find(needle) != std::string::npos) return impl_->err_lines[i];
      }
      return std::nullopt;
    }
  }
}

std::size_t ProxydProcess::line_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->err_lines.size();
}

std::vector<std::string> ProxydProcess::stderr_lines() const {
  std::lock_guard lock(impl_->mu);
  return impl_->err_lines;
}

std::string ProxydProcess::stderr_text() const {
  std::lock_guard lock(impl_->mu);
  std::string text;
  for (const auto& line : impl_->err_lines) text += line + "\n";
  return text;
}

std::vector<std::string> ProxydProcess::stdout_lines() const {
  std::lock_guard lock(impl_->mu);
  return impl_->out_lines;
}

bool ProxydProcess::wait_for_stdout_lines(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, timeout, [&] { return impl_->out_lines.size() >= n || impl_->out_eof; });
  return impl_->out_lines.size() >= n;
}

std::uint16_t ProxydProcess::port(std::string_view listener) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->ports.find(listener);
  return it == impl_->ports.end() ? 0 : it->second;
}

int ProxydProcess::pid() const { return impl_->pid; }

bool ProxydProcess::running() const {
  std::lock_guard lock(impl_->mu);
  return !impl_->exited;
}

bool ProxydProcess::signal(int sig) {
  std::lock_guard lock(impl_->mu);
  return !impl_->exited && ::kill(impl_->pid, sig) == 0;
}

std::optional<int> ProxydProcess::wait_exit(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  if (!impl_->cv.wait_for(lock, timeout, [&] { return impl_->exited; })) return std::nullopt;
  return impl_->exit_code;
}

long ProxydProcess::rss_kib() const {
  std::lock_guard lock(impl_->mu);
  return impl_->exited ? -1 : proc_status_kib(impl_->pid, "VmRSS");
}

long ProxydProcess::hwm_kib() const {
  std::lock_guard lock(impl_->mu);
  return impl_->exited ? -1 : proc_status_kib(impl_->pid, "VmHWM");
}

std::unique_ptr<ProxydProcess> ProxydProcess::start(const std::string& yaml,
                                                    std::chrono::milliseconds timeout) {
  auto proxy = std::make_unique<ProxydProcess>(yaml);
  if (!proxy->wait_ready(timeout)) {
    ADD_FAILURE() << "proxyd did not become ready within " << timeout.count() << " ms";
    return nullptr;
  }
  return proxy;
}

CommandResult ProxydProcess::check(const std::string& yaml, std::chrono::milliseconds timeout) {
  const std::string dir = make_temp_dir();
  const std::string path = dir + "/proxyd.yaml";
  write_file_atomically(path, with_dir(yaml, dir));
  CommandResult result = run({"--check", "-c", path}, timeout);
  result.config_path = path;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return result;
}

CommandResult ProxydProcess::run(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{proxyd_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, timeout);
}

CommandResult run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::function<void(int pid)>& started) {
  Spawned child = spawn(argv, true);
  if (started) started(child.pid);

  std::mutex mu;
  std::condition_variable cv;
  bool exited = false;
  int exit_code = -1;
  std::thread reaper([&] { reap(child.pid, mu, cv, exited, exit_code); });

  // Collect output until EOF or the deadline; poll() bounds every wait.
  CommandResult result;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{child.out, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;
    ssize_t n = ::read(child.out, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(child.out);
  {
    std::unique_lock lock(mu);
    if (timed_out || !cv.wait_until(lock, deadline, [&] { return exited; })) {
      timed_out = true;
      if (!exited) ::kill(child.pid, SIGKILL);
    }
  }
  reaper.join();
  result.exit_code = timed_out ? -1 : exit_code;
  return result;
}

}  // namespace proxyd::test
