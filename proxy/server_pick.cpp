// Server choice inside a pool: round robin or least-request by power of two choices (P2C).
// Pure and allocation-free: called on the worker thread for each attempt of each request.
#include "server_pick.hpp"

namespace proxyd {

namespace {

// What one pick may choose from, with the moment it is made.
struct Filter {
  const TriedSet& tried;
  std::int64_t now_ns;
  PickFrom from;
};

bool eligible(const Pool& pool, const Filter& f, std::uint32_t index) {
  const Server& server = pool.servers[index];
  if (f.tried.contains(index)) return false;
  return f.from == PickFrom::enabled ? server.admin == ServerAdmin::enabled
                                     : takes_traffic(server, f.now_ns);
}

std::int64_t in_flight(const Server& server) {
  // Relaxed: the count steers load, it orders nothing; a stale read only costs balance.
  return server.state ? server.state->in_flight.load(std::memory_order_relaxed) : 0;
}

// The index of the `rank`-th eligible server (rank < number of eligible servers).
std::uint32_t nth_eligible(const Pool& pool, const Filter& filter, std::uint32_t rank) {
  const auto count = static_cast<std::uint32_t>(pool.servers.size());
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!eligible(pool, filter, i)) continue;
    if (rank == 0) return i;
    --rank;
  }
  return count;
}

// Multiply-shift of 32 random bits onto [0, bound): no division, bias below 2^-32 * bound.
std::uint32_t scale(std::uint32_t random, std::uint32_t bound) {
  return static_cast<std::uint32_t>((std::uint64_t{random} * bound) >> 32);
}

std::optional<std::uint32_t> pick_round_robin(const Pool& pool, const Filter& filter,
                                              std::uint64_t& cursor) {
  const std::uint64_t count = pool.servers.size();
  const std::uint64_t start = cursor % count;
  for (std::uint64_t step = 0; step < count; ++step) {
    const auto index = static_cast<std::uint32_t>((start + step) % count);
    if (!eligible(pool, filter, index)) continue;
    // The cursor moves past the server picked, not just by one: otherwise the server after a
    // disabled one would take the disabled one's turns too and get double its share.
    cursor = index + 1;
    return index;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> pick_least_request(const Pool& pool, const Filter& filter,
                                                std::uint64_t random) {
  std::uint32_t count = 0;
  for (std::uint32_t i = 0; i < pool.servers.size(); ++i) count += eligible(pool, filter, i);
  if (count == 0) return std::nullopt;
  if (count == 1) return nth_eligible(pool, filter, 0);

  // Two distinct candidates: the second is drawn from the count - 1 others, so a pool of two
  // always compares both servers instead of sometimes comparing one with itself.
  const std::uint32_t first_rank = scale(static_cast<std::uint32_t>(random), count);
  std::uint32_t second_rank = scale(static_cast<std::uint32_t>(random >> 32), count - 1);
  if (second_rank >= first_rank) ++second_rank;
  const std::uint32_t first = nth_eligible(pool, filter, first_rank);
  const std::uint32_t second = nth_eligible(pool, filter, second_rank);
  // A tie keeps the first candidate, which is itself random, so idle pools still spread evenly.
  return in_flight(pool.servers[second]) < in_flight(pool.servers[first]) ? second : first;
}

}  // namespace

bool takes_traffic(const Server& server, std::int64_t now_ns) {
  if (server.admin != ServerAdmin::enabled) return false;
  const ServerState* state = server.state.get();
  // Relaxed: health steers traffic, it orders nothing; a stale read costs one request at most.
  return state == nullptr ||
         (state->health.load(std::memory_order_relaxed) != Health::unhealthy &&
          state->ejected_until.load(std::memory_order_relaxed) <= now_ns);
}

std::optional<std::uint32_t> pick_server(const Pool& pool, const TriedSet& tried, std::uint64_t& cursor,
                                         std::uint64_t random, std::int64_t now_ns, PickFrom from) {
  if (pool.servers.empty()) return std::nullopt;
  const Filter filter{tried, now_ns, from};
  switch (pool.balance) {
    case Balance::round_robin:
      return pick_round_robin(pool, filter, cursor);
    case Balance::least_request:
      return pick_least_request(pool, filter, random);
  }
  return std::nullopt;
}

}  // namespace proxyd
