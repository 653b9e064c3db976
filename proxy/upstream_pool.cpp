// Per-worker idle upstream connections: LIFO reuse, bounded per server, swept when idle too long.
#include "upstream_pool.hpp"

#include <algorithm>
#include <cstring>

namespace proxyd {

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

std::unique_ptr<UpstreamConn> UpstreamCache::take(const Server& server) {
  auto it = idle_.find(server.state.get());
  if (it == idle_.end()) return nullptr;
  auto& conns = it->second;
  while (!conns.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(conns.back());
    conns.pop_back();
    // A reload may have re-resolved the server's name to other addresses.
    const auto& fallbacks = server.fallback_addresses;
    if (conn->address == server.address ||
        std::find(fallbacks.begin(), fallbacks.end(), conn->address) != fallbacks.end())
      return conn;
  }
  return nullptr;
}

void UpstreamCache::put(std::unique_ptr<UpstreamConn> conn, Clock::time_point now,
                        std::uint32_t max_per_server) {
  auto& conns = idle_[conn->server.get()];
  if (conns.size() >= max_per_server) return;  // dropping `conn` closes it
  conn->idle_since = now;
  conns.push_back(std::move(conn));
}

void UpstreamCache::sweep(Clock::time_point now, Clock::duration idle_timeout) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& conns = it->second;
    // Oldest first: conns is ordered by idle_since because put() appends.
    auto fresh = std::find_if(conns.begin(), conns.end(), [&](const auto& c) {
      return now - c->idle_since < idle_timeout;
    });
    conns.erase(conns.begin(), fresh);
    it = conns.empty() ? idle_.erase(it) : std::next(it);
  }
}

std::size_t UpstreamCache::idle_count() const {
  std::size_t n = 0;
  for (const auto& [key, conns] : idle_) n += conns.size();
  return n;
}

}  // namespace proxyd
