// Per-worker idle upstream connections: LIFO reuse, bounded per server, watched while idle,
// checked when taken, swept when idle too long; relay buffers made only for bytes that came.
#include "upstream_pool.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "read_readiness.hpp"

namespace proxyd {
namespace {

// True when nothing arrived on the connection and it is still open: a non-blocking peek that
// finds neither data nor EOF nor an error, one recv() that returns EAGAIN in the usual case. On a
// TLS connection, bytes that OpenSSL read ahead past the last response are no longer in the
// socket: the stream is asked too.
bool quiet(UpstreamConn& conn) {
  const TlsStream* tls = conn.stream.tls();
  if (tls != nullptr && tls->has_pending()) return false;
  char byte = 0;
  const int fd = conn.stream.socket().native_handle();
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool serves(const Server& server, const ResolvedAddress& address) {
  // A reload may have re-resolved the server's name to other addresses.
  const auto& fallbacks = server.fallback_addresses;
  return address == server.address ||
         std::find(fallbacks.begin(), fallbacks.end(), address) != fallbacks.end();
}

}  // namespace

tcp::endpoint to_endpoint(const ResolvedAddress& address) {
  if (address.v6) {
    net::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), address.bytes.data(), bytes.size());
    return {net::ip::address_v6(bytes), address.port};
  }
  net::ip::address_v4::bytes_type bytes;
  std::memcpy(bytes.data(), address.bytes.data(), bytes.size());
  return {net::ip::address_v4(bytes), address.port};
}

std::unique_ptr<UpstreamConn> UpstreamCache::fresh(Executor executor) {
  return std::make_unique<UpstreamConn>(executor);
}

std::unique_ptr<UpstreamConn> UpstreamCache::take(const Server& server, bool tls) {
  auto it = idle_.find(server.state.get());
  if (it == idle_.end()) return nullptr;
  auto& conns = it->second;
  while (!conns.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(conns.back());
    conns.pop_back();
    if (conn->idle_id != 0) {
      error_code ignored;
      conn->stream.socket().cancel(ignored);  // ends the watch; its handler sees operation_aborted
      conn->idle_id = 0;
    }
    if (!serves(server, conn->address) || (conn->stream.tls() != nullptr) != tls) continue;
    // Whether watched or not (a watch's completion may be queued but not yet run), the connection
    // itself says whether anything arrived (its socket, and OpenSSL for a TLS connection).
    if (!quiet(*conn)) {
      ++closed_while_idle_;
      continue;
    }
    // Nothing is there to read, as of the peek just made in this same turn of the worker's loop:
    // the read for the response can wait for the event its bytes raise, which comes after this,
    // rather than first try a recv() that cannot find them yet (read_readiness.hpp). A TLS stream
    // reads through its own inbox.
    if (conn->stream.tls() == nullptr) read_on_next_event(conn->stream.socket());
    return conn;
  }
  return nullptr;
}

void UpstreamCache::put(std::unique_ptr<UpstreamConn> conn, Clock::time_point now,
                        std::uint32_t max_per_server) {
  auto& conns = idle_[conn->server.get()];
  if (conns.size() >= max_per_server) {
    discard(std::move(conn));
    return;
  }
  return_buffer(conn->buffer);
  conn->idle_since = now;
  conns.push_back(std::move(conn));
}

void UpstreamCache::discard(std::unique_ptr<UpstreamConn> conn) {
  if (conn) return_buffer(conn->buffer);
}

void UpstreamCache::watch(UpstreamConn& conn) {
  conn.idle_id = ++next_idle_id_;
  conn.stream.socket().async_wait(
      Socket::wait_read, [this, key = conn.server.get(), id = conn.idle_id](error_code ec) {
        // Aborted: the connection was taken (the watch cancelled) or closed; nothing to do.
        if (ec != net::error::operation_aborted) on_readable_while_idle(key, id);
      });
}

void UpstreamCache::on_readable_while_idle(const ServerState* key, std::uint64_t idle_id) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return;
  auto& conns = it->second;
  // Ids are never reused, so a connection taken and put back since is not mistaken for this one.
  auto found = std::find_if(conns.begin(), conns.end(),
                            [&](const auto& c) { return c->idle_id == idle_id; });
  if (found == conns.end()) return;
  conns.erase(found);  // closes it: whatever arrived is dropped with it
  ++closed_while_idle_;
}

void UpstreamCache::sweep(Clock::time_point now, Clock::duration idle_timeout) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& conns = it->second;
    // Oldest first: conns is ordered by idle_since because put() appends.
    auto fresh = std::find_if(conns.begin(), conns.end(), [&](const auto& c) {
      return now - c->idle_since < idle_timeout;
    });
    conns.erase(conns.begin(), fresh);
    // Newest last: once a watched connection is met, the older ones are watched too.
    for (auto c = conns.end(); c != conns.begin();) {
      --c;
      if ((*c)->idle_id != 0) break;
      if (now - (*c)->idle_since < kWatchAfter) continue;
      // A peek first: bytes that came before the wait starts would not wake it.
      if (!quiet(**c)) {
        c = conns.erase(c);
        ++closed_while_idle_;
        continue;
      }
      watch(**c);
    }
    it = conns.empty() ? idle_.erase(it) : std::next(it);
  }
}

std::size_t UpstreamCache::close_unless(const std::unordered_set<const ServerState*>& keep) {
  std::size_t closed = 0;
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (keep.contains(it->first)) {
      ++it;
      continue;
    }
    closed += it->second.size();
    it = idle_.erase(it);
  }
  return closed;
}

std::size_t UpstreamCache::idle_count() const {
  std::size_t n = 0;
  for (const auto& [key, conns] : idle_) n += conns.size();
  return n;
}

Task<std::tuple<error_code, std::size_t>> UpstreamCache::read_some(UpstreamConn& conn,
                                                                   std::size_t max) {
  ByteBuffer& buffer = conn.buffer;
  const auto read = [&] {
    return conn.stream.async_read_some(
        net::buffer(buffer.write_ptr(), std::min(buffer.writable(), max)), use_task);
  };
  if (buffer.has_storage() || conn.stream.tls() != nullptr) {
    lend_buffer(buffer);
    co_return co_await read();
  }
  if (waits_lent_ < kMaxLentWaits && !spare_buffers_.empty()) {
    lend_buffer(buffer);
    ++waits_lent_;
    struct Release {
      std::size_t& count;
      ~Release() { --count; }  // also when the frame is destroyed mid-wait
    } release{waits_lent_};
    co_return co_await read();
  }
  // Past the bound the wait holds no buffer, and is lent one when bytes come. How it waits
  // depends on the connection's earlier responses (docs/benchmarks.md, runs 47 and 48):
  // - Once one was small, with an Asio read of at most first_bytes, which waits without
  //   re-arming epoll (Asio tries it at once first, unless take() said not to). When the bytes
  //   fill first_bytes, the rest is read at once, so that a response of a few KiB still leaves in
  //   one write.
  // - Before that (a new connection) and after a large one (the read filled `max`), with a wait
  //   for readability, which costs the EPOLL_CTL_MOD Asio makes for every async_wait (2.5 us
  //   with a thousand descriptors on the worker). Reading the first bytes as they came on a new
  //   connection cost every later 1 MiB response on it: 15% of their requests/s at 1000
  //   connections, with the same system calls, for a reason in the kernel not traced further.
  Socket& socket = conn.stream.socket();
  const auto recv_more = [&](std::size_t have) {
    return ::recv(socket.native_handle(), buffer.write_ptr() + have,
                  std::min(buffer.writable(), max) - have, MSG_DONTWAIT);
  };
  std::size_t n = 0;
  if (conn.small_responses) {
    const std::size_t want = std::min(conn.first_bytes.size(), max);
    auto [ec, got] =
        co_await conn.stream.async_read_some(net::buffer(conn.first_bytes.data(), want), use_task);
    if (ec) co_return std::tuple{ec, std::size_t{0}};
    lend_buffer(buffer);
    std::memcpy(buffer.write_ptr(), conn.first_bytes.data(), got);
    n = got;
    // Whatever else this finds (nothing yet, EOF, an error), the caller's next read finds too
    // (an error as EOF).
    if (n == want && n < max)
      if (const ssize_t more = recv_more(n); more > 0) n += static_cast<std::size_t>(more);
  } else {
    auto [ec] = co_await socket.async_wait(Socket::wait_read, use_task);
    if (ec) co_return std::tuple{ec, std::size_t{0}};
    lend_buffer(buffer);
    const ssize_t got = recv_more(0);
    if (got <= 0) {
      const int error = errno;
      if (got == 0 || (error != EAGAIN && error != EWOULDBLOCK)) {
        return_buffer(buffer);
        co_return std::tuple{got == 0 ? error_code(net::error::eof)
                                      : error_code(error, boost::system::system_category()),
                             std::size_t{0}};
      }
      // Woken with nothing to read after all: wait again, with the buffer.
      co_return co_await read();
    }
    n = static_cast<std::size_t>(got);
  }
  conn.small_responses = n < max;
  co_return std::tuple{error_code(), n};
}

void UpstreamCache::lend_buffer(ByteBuffer& buffer) {
  if (buffer.has_storage()) return;
  if (spare_buffers_.empty()) {
    buffer.adopt(std::make_unique_for_overwrite<char[]>(UpstreamConn::kBufferSize),
                 UpstreamConn::kBufferSize);
    return;
  }
  buffer.adopt(std::move(spare_buffers_.back()), UpstreamConn::kBufferSize);
  spare_buffers_.pop_back();
}

void UpstreamCache::return_buffer(ByteBuffer& buffer) {
  if (!buffer.has_storage()) return;
  std::unique_ptr<char[]> storage = buffer.release();
  if (spare_buffers_.size() < kMaxSpareBuffers) spare_buffers_.push_back(std::move(storage));
}

}  // namespace proxyd
