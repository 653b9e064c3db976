// Upstream connections and the per-worker cache of idle ones (Envoy's thread-local cluster):
// each worker reuses its own kept-alive connections, so the request path takes no lock.
// Owner: one Worker; used only on that worker's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "byte_buffer.hpp"
#include "net.hpp"
#include "routing_snapshot.hpp"

namespace proxyd {

using Clock = std::chrono::steady_clock;

// One connection to one server. The read buffer is sized once (64 KiB) so a large response is
// read in few, large recv calls (docs/architecture.md, "Performance choices").
struct UpstreamConn {
  static constexpr std::size_t kBufferSize = 64 * 1024;

  explicit UpstreamConn(Executor executor) : socket(executor), buffer(kBufferSize) {}

  Socket socket;
  ByteBuffer buffer;
  std::shared_ptr<ServerState> server;  // keeps the cache key alive while the connection lives
  ResolvedAddress address;
  Clock::time_point idle_since{};
  std::uint64_t requests = 0;  // requests served on this connection
};

tcp::endpoint to_endpoint(const ResolvedAddress& address);

class UpstreamCache {
 public:
  // The most recently used idle connection to `server` (warm in cache and in the peer), or null.
  std::unique_ptr<UpstreamConn> take(const Server& server);

  // Keeps `conn` for reuse unless `max_per_server` are already idle for that server.
  void put(std::unique_ptr<UpstreamConn> conn, Clock::time_point now,
           std::uint32_t max_per_server);

  // Closes connections idle for longer than `idle_timeout`.
  void sweep(Clock::time_point now, Clock::duration idle_timeout);

  void clear() { idle_.clear(); }
  std::size_t idle_count() const;

 private:
  std::unordered_map<const ServerState*, std::vector<std::unique_ptr<UpstreamConn>>> idle_;
};

}  // namespace proxyd
