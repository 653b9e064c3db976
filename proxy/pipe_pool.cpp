// The splice pipes of pipe_pool.hpp.
#include "pipe_pool.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>

namespace proxyd {

namespace {

// Pipes open in the whole process, in use or idle in a pool.
std::atomic<std::size_t> open_pipes{0};

std::size_t max_pipes() {
  static const std::size_t limit = [] {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return std::size_t{0};
    return static_cast<std::size_t>(r.rlim_cur / 8);  // a quarter of the descriptors: 2 a pipe
  }();
  return limit;
}

void close_pipe(const Pipe& pipe) {
  ::close(pipe.read);
  ::close(pipe.write);
  open_pipes.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

PipePool::~PipePool() {
  for (const Pipe& pipe : idle_) close_pipe(pipe);
}

Pipe PipePool::take() {
  if (!idle_.empty()) {
    const Pipe pipe = idle_.back();
    idle_.pop_back();
    return pipe;
  }
  if (open_pipes.fetch_add(1, std::memory_order_relaxed) >= max_pipes()) {
    open_pipes.fetch_sub(1, std::memory_order_relaxed);
    return {};
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    open_pipes.fetch_sub(1, std::memory_order_relaxed);
    return {};
  }
  return Pipe{fds[0], fds[1]};
}

void PipePool::give(Pipe pipe, bool empty) {
  if (empty && idle_.size() < kIdleMax) {
    idle_.push_back(pipe);
    return;
  }
  close_pipe(pipe);
}

}  // namespace proxyd
