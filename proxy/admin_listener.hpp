// The admin listener (`admin.metrics`): GET /metrics (Prometheus text), /healthz (the process is
// alive: always 200) and /ready (config loaded, listeners open, not draining: 200, else 503).
// Never reachable through a proxy listener, and on its own thread: a slow or hostile scraper
// costs that thread a connection slot, never a worker. Each connection gets one request and a
// 5 s deadline for the whole exchange; at most 64 connections at once, more are closed at accept.
// Owner: Proxy. Thread: its own (one io_context). Lifetime: start() binds and starts the thread;
// stop() or the destructor closes everything and joins it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "proxy/values.hpp"

namespace proxyd {

class AdminListener {
 public:
  // `metrics` renders /metrics; `ready` says whether /ready is 200. Both run on the admin thread.
  AdminListener(std::function<std::string()> metrics, std::function<bool()> ready);
  ~AdminListener();
  AdminListener(const AdminListener&) = delete;
  AdminListener& operator=(const AdminListener&) = delete;

  // Binds `address` (port 0: a kernel-chosen port) and starts serving; false with `error` set if
  // it cannot bind.
  bool start(const Endpoint& address, std::string& error);
  void stop();
  std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proxyd
