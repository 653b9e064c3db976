// The health and max_step gate of runtime changes (change_gate.hpp).
#include "change_gate.hpp"

#include <algorithm>

#include "server_pick.hpp"
#include "values.hpp"

namespace proxyd {

namespace {

// The names joined with ", ", after "route " or "routes ".
std::string routes_phrase(const std::vector<std::string>& routes) {
  std::string out = routes.size() == 1 ? "route " : "routes ";
  for (std::size_t i = 0; i < routes.size(); ++i) out += (i == 0 ? "" : ", ") + routes[i];
  return out;
}

}  // namespace

std::uint32_t pool_share(const Route& route, std::uint32_t pool) {
  if (route.live_pool == route.passive_pool) return pool == route.live_pool ? kPpmMax : 0;
  if (pool == route.live_pool) return kPpmMax - route.weight_ppm;
  if (pool == route.passive_pool) return route.weight_ppm;
  return 0;
}

std::vector<TrafficGain> pools_gaining(const RoutingSnapshot& before, const RoutingSnapshot& after) {
  std::vector<TrafficGain> gains;
  for (const Pool& pool : after.pools) {
    const Pool* old_pool = before.find_pool(pool.name);
    TrafficGain gain{pool.name, {}};
    for (const Route& route : after.routes) {
      const Route* old_route = before.find_route(route.name);
      if (old_route == nullptr) continue;
      const std::uint32_t was = old_pool ? pool_share(*old_route, old_pool->index) : 0;
      if (pool_share(route, pool.index) > was) gain.routes.push_back(route.name);
    }
    if (!gain.routes.empty()) gains.push_back(std::move(gain));
  }
  return gains;
}

std::optional<std::string> step_too_large(const RoutingSnapshot& before,
                                          const RoutingSnapshot& after) {
  for (const Route& route : after.routes) {
    const Route* old_route = before.find_route(route.name);
    if (old_route == nullptr || !route.max_step_ppm || route.weight_ppm <= old_route->weight_ppm)
      continue;
    const std::uint32_t step = route.weight_ppm - old_route->weight_ppm;
    if (step <= *route.max_step_ppm) continue;
    return "route " + route.name + ": raising the weight from " +
           format_percent(old_route->weight_ppm) + "% to " + format_percent(route.weight_ppm) +
           "% is a step of " + format_percent(step) + "%, more than its max_step of " +
           format_percent(*route.max_step_ppm) + "%";
  }
  return std::nullopt;
}

bool has_server_taking_traffic(const Pool& pool, std::int64_t now_ns) {
  return std::any_of(pool.servers.begin(), pool.servers.end(),
                     [&](const Server& server) { return takes_traffic(server, now_ns); });
}

std::optional<std::string> gate_refusal(const RoutingSnapshot& before,
                                        const RoutingSnapshot& after, std::int64_t now_ns) {
  if (auto step = step_too_large(before, after)) return step;
  for (const TrafficGain& gain : pools_gaining(before, after)) {
    // The servers as the change leaves them: a batch may enable one and send traffic in one go.
    const Pool* pool = after.find_pool(gain.pool);
    if (has_server_taking_traffic(*pool, now_ns)) continue;
    return "pool " + gain.pool + " has no healthy server (" + routes_phrase(gain.routes) +
           " would send it more traffic)";
  }
  return std::nullopt;
}

}  // namespace proxyd
