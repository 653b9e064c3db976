// Kernel pipes for splice(2): a large Content-Length body between two plain TCP sockets moves
// socket -> pipe -> socket inside the kernel, never copied into proxyd's memory (HAProxy's
// kernel splicing; docs/architecture.md, "Performance choices"). One pool per worker keeps the
// pipes bodies gave back, so a body does not pay for pipe2() and two close()s.
//
// Pipes cost descriptors, which clients and upstreams need too: all pools together open at most
// a quarter of RLIMIT_NOFILE's soft limit (HAProxy's default maxpipes is a quarter of maxconn).
// Past that, or when pipe2() fails, take() returns nothing and the body is copied as before.
// Owner: a Worker; its thread only (the process-wide count is atomic).
#pragma once

#include <cstddef>
#include <vector>

namespace proxyd {

struct Pipe {
  int read = -1;
  int write = -1;
  explicit operator bool() const { return read >= 0; }
};

class PipePool {
 public:
  PipePool() = default;
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;
  ~PipePool();

  // An empty pipe, both ends non-blocking, or none (see above).
  Pipe take();
  // Back into the pool if `empty` (nothing left in it) and the pool holds fewer than kIdleMax;
  // otherwise closed. A pipe with bytes left in it would hand them to the next body.
  void give(Pipe pipe, bool empty);

  // Pipes kept open between bodies, per worker.
  // Few, so that idle pipes in one worker's pool do not keep a busy worker from the
  // process-wide cap; a body past them pays for pipe2() and two close()s, next to 1 MiB or more.
  static constexpr std::size_t kIdleMax = 16;

 private:
  std::vector<Pipe> idle_;
};

// A pipe taken for one body, given back (or closed) when the body is done with it.
class PipeLease {
 public:
  explicit PipeLease(PipePool& pool) : pool_(pool), pipe_(pool.take()) {}
  PipeLease(const PipeLease&) = delete;
  PipeLease& operator=(const PipeLease&) = delete;
  ~PipeLease() {
    if (pipe_) pool_.give(pipe_, held == 0);
  }

  explicit operator bool() const { return static_cast<bool>(pipe_); }
  const Pipe& pipe() const { return pipe_; }
  std::size_t held = 0;  // bytes in the pipe, not yet spliced out

 private:
  PipePool& pool_;
  Pipe pipe_;
};

}  // namespace proxyd
