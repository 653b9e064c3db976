// Upstream connections and the per-worker cache of idle ones (Envoy's thread-local cluster): each
// worker reuses its own kept-alive connections, so the request path takes no lock.
//
// Nothing an upstream sends outside a request may reach a client (an unsolicited `408` + close is
// the common case): a connection is checked without blocking when taken, and one that received
// anything (data or EOF) while idle is closed instead. A connection idle for kWatchAfter is also
// watched, from the next sweep (so within 200 ms of going idle): a wait for readability is pending
// on it, and data or EOF closes it at once. A connection reused sooner, the usual case under load,
// is never watched: the watch (a wait, its cancellation and the aborted handler) would cost ~1000
// instructions for a close that the check when taken already ensures.
// A connection holds a relay buffer from its first read until it idles or its body is spliced;
// waiting for a response, only a bounded number take one (read_some), so that a worker with many
// requests in flight keeps few buffers.
// Owner: one Worker; used only on that worker's thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "byte_buffer.hpp"
#include "net.hpp"
#include "routing_snapshot.hpp"
#include "stream.hpp"

namespace proxyd {

using Clock = std::chrono::steady_clock;

// One connection to one server, plain or TLS (a pool with `tls`). Its read buffer (kBufferSize, so
// a large response is read in few, large recv calls: docs/architecture.md, "Performance choices")
// is lent by its worker's cache for reads (UpstreamCache::read_some) and given back when it idles.
struct UpstreamConn {
  static constexpr std::size_t kBufferSize = 64 * 1024;

  explicit UpstreamConn(Executor executor) : stream(executor) {}

  Stream stream;
  ByteBuffer buffer;
  // A response's first bytes, read while no buffer is lent (UpstreamCache::read_some).
  std::array<char, 1024> first_bytes;
  // The last read that waited without a buffer came back short of its `max`: how the next one
  // waits (UpstreamCache::read_some).
  bool small_responses = false;
  std::shared_ptr<ServerState> server;  // keeps the cache key alive while the connection lives
  ResolvedAddress address;
  Clock::time_point idle_since{};
  std::uint64_t idle_id = 0;   // the idle period its watch belongs to (0: not watched)
  std::uint64_t requests = 0;  // requests served on this connection
};

tcp::endpoint to_endpoint(const ResolvedAddress& address);

class UpstreamCache {
 public:
  // Spare relay buffers kept for reuse beyond the ones in use: enough that a busy worker does not
  // allocate per request, few enough to stay small (64 x 64 KiB = 4 MiB per worker).
  static constexpr std::size_t kMaxSpareBuffers = 64;

  // At most this many reads waiting for a response hold a buffer (read_some).
  static constexpr std::size_t kMaxLentWaits = 64;

  static constexpr Clock::duration kWatchAfter = std::chrono::milliseconds(100);

  UpstreamCache() = default;
  UpstreamCache(const UpstreamCache&) = delete;
  UpstreamCache& operator=(const UpstreamCache&) = delete;

  // A new, unconnected connection, on `executor` (no relay buffer yet).
  std::unique_ptr<UpstreamConn> fresh(Executor executor);

  // The most recently used idle connection to `server` (warm in cache and in the peer) that
  // received nothing while idle and speaks TLS iff `tls` (the pool's setting may have changed
  // with a reload), without a relay buffer; null if there is none. The first read on a plain one
  // waits for the next readiness event without a recv() first (read_readiness.hpp).
  std::unique_ptr<UpstreamConn> take(const Server& server, bool tls);

  // Keeps `conn` (which must have nothing unread) for reuse and starts watching it, unless
  // `max_per_server` are already idle for that server; then it is closed.
  void put(std::unique_ptr<UpstreamConn> conn, Clock::time_point now,
           std::uint32_t max_per_server);

  // Closes a connection that is not reused, keeping its relay buffer for the next one.
  void discard(std::unique_ptr<UpstreamConn> conn);

  // Closes connections idle for longer than `idle_timeout`, and those that received anything;
  // starts watching those idle for kWatchAfter.
  void sweep(Clock::time_point now, Clock::duration idle_timeout);

  // Closes the idle connections to every server not in `keep` (a pool that left every route's
  // slots, a disabled or removed server); returns how many it closed.
  std::size_t close_unless(const std::unordered_set<const ServerState*>& keep);

  void clear() { idle_.clear(); }
  std::size_t idle_count() const;
  // Idle connections closed because they became readable (data or EOF) while idle or were found
  // so when taken.
  std::uint64_t closed_while_idle() const { return closed_while_idle_; }
  std::size_t spare_buffers() const { return spare_buffers_.size(); }

  // Reads what the server sent into `conn.buffer`, at most `max` bytes at its write end. A
  // connection waiting for a response without a buffer takes a spare one and reads as usual, as
  // long as fewer than kMaxLentWaits such waits hold one. Past that, or with none spare, a plain
  // connection waits without one, and is lent one only when bytes come: a thousand requests
  // waiting for their responses hold at most kMaxLentWaits buffers, not a thousand (HAProxy
  // allocates its buffers the same way), and the spares stay for the bytes that arrive. It waits
  // by reading its first_bytes once its responses were seen to be small, else by a wait for
  // readability (the definition says why). A TLS connection is lent one at once: OpenSSL may
  // already hold the bytes.
  Task<std::tuple<error_code, std::size_t>> read_some(UpstreamConn& conn, std::size_t max);

  // A connection's read buffer goes back to the spares while the connection does not need it:
  // when it idles, and while a response body is spliced (relay.hpp). It is lent again, empty,
  // by the next read that finds bytes; a connection without one holds no bytes.
  void return_buffer(ByteBuffer& buffer);
  // Gives `buffer` a 64 KiB storage (a spare one, or a new one) unless it has one.
  void lend_buffer(ByteBuffer& buffer);

 private:
  void watch(UpstreamConn& conn);
  void on_readable_while_idle(const ServerState* key, std::uint64_t idle_id);

  std::unordered_map<const ServerState*, std::vector<std::unique_ptr<UpstreamConn>>> idle_;
  std::vector<std::unique_ptr<char[]>> spare_buffers_;
  std::size_t waits_lent_ = 0;  // reads waiting for a response with a buffer (read_some)
  std::uint64_t next_idle_id_ = 0;
  std::uint64_t closed_while_idle_ = 0;
};

}  // namespace proxyd
