// Passive health checks: see passive_check.hpp.
#include "proxy/passive_check.hpp"

#include <algorithm>
#include <chrono>

namespace proxyd {
namespace {

enum class Verdict { failed, answered, neither };

Verdict verdict_of(const RequestOutcome& outcome, std::size_t attempt) {
  const AttemptRecord& a = outcome.attempts[attempt];
  switch (a.end) {
    case AttemptEnd::connect_failed:
    case AttemptEnd::connect_timeout:
    case AttemptEnd::reset:
    case AttemptEnd::timeout:
    case AttemptEnd::bad_response:
    case AttemptEnd::tls_failed:
      return Verdict::failed;
    case AttemptEnd::closed:  // the server dropped an idle connection: its right
    case AttemptEnd::client_gone:
    case AttemptEnd::no_socket:  // proxyd's own shortage
      return Verdict::neither;
    case AttemptEnd::ok:
      break;
  }
  // The attempt that answered: its response decides (and only a relayed one is the server's).
  if (outcome.end == RequestEnd::upstream_cut) return Verdict::failed;
  if (outcome.reason == LocalReason::bad_upstream_response) return Verdict::failed;
  if (outcome.reason == LocalReason::upstream_timeout) return Verdict::failed;
  if (!outcome.reason && outcome.status >= 500) return Verdict::failed;
  return Verdict::answered;
}

std::int64_t nanoseconds(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// Ejects `server` unless its pool already has its share ejected (or it is ejected already).
std::optional<Ejection> eject(const Pool& pool, const Server& server, std::uint32_t failures,
                              std::int64_t now_ns) {
  ServerState& state = *server.state;
  const PassiveConfig& passive = pool.passive;
  std::size_t ejected = 0;
  for (const Server& other : pool.servers) {
    if (other.state && other.state->ejected_until.load(std::memory_order_relaxed) > now_ns)
      ++ejected;
  }
  // Rounded down, so a pool of one server is never ejected: sending to it is all there is.
  const std::size_t allowed =
      pool.servers.size() * static_cast<std::size_t>(passive.max_ejected_percent) / 100;
  if (ejected + 1 > allowed) return std::nullopt;
  const std::uint32_t previous = state.ejections.load(std::memory_order_relaxed);
  const Duration length = std::min<Duration>(
      passive.ejection * (std::uint64_t{1} << std::min<std::uint32_t>(previous, 20)),
      passive.max_ejection);
  // One worker wins when several see the last failure at once.
  std::int64_t until = state.ejected_until.load(std::memory_order_relaxed);
  if (until > now_ns) return std::nullopt;
  if (!state.ejected_until.compare_exchange_strong(until, now_ns + nanoseconds(length),
                                                   std::memory_order_relaxed))
    return std::nullopt;
  state.ejections.fetch_add(1, std::memory_order_relaxed);
  state.consecutive_failures.store(0, std::memory_order_relaxed);
  if (pool.health) state.health.store(Health::unhealthy, std::memory_order_relaxed);
  return Ejection{&pool, &server, length, failures};
}

}  // namespace

std::optional<Ejection> passive_check(const RequestOutcome& outcome, std::int64_t now_ns) {
  const Pool* pool = outcome.pool;
  if (pool == nullptr || !pool->passive.enabled) return std::nullopt;
  std::optional<Ejection> made;
  for (std::size_t i = 0; i < outcome.attempt_count; ++i) {
    const Server* server = outcome.attempts[i].server;
    if (server == nullptr || !server->state) continue;
    ServerState& state = *server->state;
    switch (verdict_of(outcome, i)) {
      case Verdict::neither:
        break;
      case Verdict::answered:
        // Loads first: a store on every request would bounce the line between the workers.
        if (state.consecutive_failures.load(std::memory_order_relaxed) != 0)
          state.consecutive_failures.store(0, std::memory_order_relaxed);
        // A success after its ejection ended: the next ejection starts from the first length.
        if (state.ejections.load(std::memory_order_relaxed) != 0 &&
            state.ejected_until.load(std::memory_order_relaxed) <= now_ns)
          state.ejections.store(0, std::memory_order_relaxed);
        break;
      case Verdict::failed: {
        const std::uint32_t failures =
            state.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
        if (failures >= static_cast<std::uint32_t>(pool->passive.failures)) {
          if (auto ejection = eject(*pool, *server, failures, now_ns)) made = ejection;
        }
        break;
      }
    }
  }
  return made;
}

std::string ejection_text(const Ejection& e) {
  return "pool " + e.pool->name + " server " + e.server->name + " ejected for " +
         format_duration(e.length) + " after " + std::to_string(e.failures) +
         " failures in a row";
}

}  // namespace proxyd
