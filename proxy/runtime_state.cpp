// Runtime overrides applied to snapshots, and the validation of control operations.
#include "runtime_state.hpp"

#include <algorithm>
#include <set>

namespace proxyd {
namespace {

const Server* find_server(const Pool& pool, const std::string& name) {
  for (const Server& s : pool.servers)
    if (s.name == name) return &s;
  return nullptr;
}

std::string sticky_text(const StickyConfig& sticky) {
  switch (sticky.kind) {
    case StickyConfig::Kind::cookie:
      return "cookie " + sticky.name;
    case StickyConfig::Kind::header:
      return "header " + sticky.name;
    case StickyConfig::Kind::client_ip:
      return "client_ip";
    case StickyConfig::Kind::none:
      break;
  }
  return "";
}

}  // namespace

std::shared_ptr<const RoutingSnapshot> with_runtime(const RoutingSnapshot& base,
                                                    RuntimeState& state,
                                                    std::vector<std::string>& warnings) {
  auto next = std::make_shared<RoutingSnapshot>(base);
  next->generation = state.generation;

  for (auto it = state.routes.begin(); it != state.routes.end();) {
    const std::string& name = it->first;
    RouteOverride& o = it->second;
    const Route* route = base.find_route(name);
    if (route == nullptr) {
      warnings.push_back("route " + name + " no longer exists; its runtime state is dropped");
      it = state.routes.erase(it);
      continue;
    }
    auto keep_pool = [&](std::optional<std::string>& pool, const char* slot) {
      if (pool && base.find_pool(*pool) == nullptr) {
        warnings.push_back("route " + name + ": " + slot + " pool " + *pool +
                           " no longer exists; the config's " + slot + " pool is used");
        pool.reset();
      }
    };
    keep_pool(o.live, "live");
    keep_pool(o.passive, "passive");
    Route& r = next->routes[route->index];
    if (o.live) r.live_pool = base.find_pool(*o.live)->index;
    if (o.passive) r.passive_pool = base.find_pool(*o.passive)->index;
    if (o.weight_ppm) r.weight_ppm = *o.weight_ppm;
    it = o.empty() ? state.routes.erase(it) : std::next(it);
  }

  for (auto it = state.rollouts.begin(); it != state.rollouts.end();) {
    const Route* route = base.find_route(it->first);
    if (route == nullptr) {
      warnings.push_back("route " + it->first + " no longer exists; its rollout is dropped");
      it = state.rollouts.erase(it);
      continue;
    }
    next->routes[route->index].sticky_salt = route->sticky_salt ^ it->second.salt;
    ++it;
  }

  for (Pool& pool : next->pools)
    for (Server& server : pool.servers) server.admin = ServerAdmin::enabled;
  for (auto it = state.servers.begin(); it != state.servers.end();) {
    const auto& [pool_name, server_name] = it->first;
    const Pool* pool = base.find_pool(pool_name);
    const Server* server = pool ? find_server(*pool, server_name) : nullptr;
    if (server == nullptr) {
      warnings.push_back("server " + server_name + " of pool " + pool_name +
                         " no longer exists; its runtime state is dropped");
      it = state.servers.erase(it);
      continue;
    }
    Pool& target = next->pools[pool->index];
    target.servers[static_cast<std::size_t>(server - pool->servers.data())].admin = it->second;
    ++it;
  }
  return next;
}

std::optional<Refusal> apply_operations(const RoutingSnapshot& base, const RuntimeState& state,
                                        const std::vector<Operation>& operations,
                                        RuntimeState& next) {
  if (operations.empty()) return Refusal{"no operation given", std::nullopt};
  next = state;
  // Effective slots as operations go, from the file's value and the override built so far: a
  // flip after a set-live sees the new live pool.
  const auto live_of = [&](const Route& route, const RouteOverride& o) {
    return o.live.value_or(base.pools[route.live_pool].name);
  };
  const auto passive_of = [&](const Route& route, const RouteOverride& o) {
    return o.passive.value_or(base.pools[route.passive_pool].name);
  };
  std::set<std::string> flipped;
  const auto flip = [&](const Route& route) -> std::optional<std::string> {
    if (!flipped.insert(route.name).second) {
      return "route " + in_quotes(route.name) +
             " is flipped twice in one change (the flips would cancel out)";
    }
    RouteOverride& o = next.routes[route.name];
    std::string live = live_of(route, o);
    o.live = passive_of(route, o);
    o.passive = std::move(live);
    o.weight_ppm = 0;
    return std::nullopt;
  };
  // Why one operation cannot be applied, or nullopt once it is.
  const auto apply = [&](const Operation& op) -> std::optional<std::string> {
    if (op.kind == Operation::Kind::server_admin) {
      const Pool* pool = base.find_pool(op.pool);
      if (pool == nullptr) return "no pool named " + op.pool;
      if (find_server(*pool, op.server) == nullptr)
        return "pool " + op.pool + " has no server " + op.server;
      next.servers[{op.pool, op.server}] = op.admin;
      return std::nullopt;
    }
    if (op.kind == Operation::Kind::flip_all) {
      if (base.routes.empty()) return "there are no routes to flip";
      for (const Route& route : base.routes)
        if (auto refusal = flip(route)) return refusal;
      return std::nullopt;
    }
    if (op.kind == Operation::Kind::reset_all) {
      next.routes.clear();
      next.servers.clear();
      return std::nullopt;
    }
    const Route* route = base.find_route(op.route);
    if (route == nullptr) return "no route named " + op.route;
    switch (op.kind) {
      case Operation::Kind::set_weight:
        if (op.weight_ppm > kPpmMax) return "weight must be between 0 and 100 percent";
        next.routes[op.route].weight_ppm = op.weight_ppm;
        break;
      case Operation::Kind::set_live:
        if (base.find_pool(op.pool) == nullptr) return "no pool named " + op.pool;
        next.routes[op.route].live = op.pool;
        break;
      case Operation::Kind::set_passive:
        if (base.find_pool(op.pool) == nullptr) return "no pool named " + op.pool;
        next.routes[op.route].passive = op.pool;
        break;
      case Operation::Kind::flip:
        return flip(*route);
      case Operation::Kind::reset:
        // A route without runtime values is fine: there is nothing to drop.
        next.routes.erase(op.route);
        break;
      case Operation::Kind::flip_all:
      case Operation::Kind::server_admin:
      case Operation::Kind::reset_all:
        break;
    }
    return std::nullopt;
  };

  for (std::size_t i = 0; i < operations.size(); ++i)
    if (auto message = apply(operations[i])) return Refusal{std::move(*message), i};
  next.generation = state.generation + 1;
  return std::nullopt;
}

Touched touched_by(const RoutingSnapshot& base, const RuntimeState& state,
                   const std::vector<Operation>& operations) {
  Touched touched;
  const auto add_route = [&](const std::string& name) {
    if (std::find(touched.routes.begin(), touched.routes.end(), name) == touched.routes.end())
      touched.routes.push_back(name);
  };
  const auto add_server = [&](ServerRef server) {
    if (std::find(touched.servers.begin(), touched.servers.end(), server) ==
        touched.servers.end())
      touched.servers.push_back(std::move(server));
  };
  for (const Operation& op : operations) {
    switch (op.kind) {
      case Operation::Kind::flip_all:
        for (const Route& route : base.routes) add_route(route.name);
        break;
      case Operation::Kind::reset_all:
        for (const Route& route : base.routes) add_route(route.name);
        for (const auto& [key, admin] : state.servers) add_server({key.first, key.second});
        break;
      case Operation::Kind::server_admin:
        add_server({op.pool, op.server});
        break;
      case Operation::Kind::set_weight:
      case Operation::Kind::set_live:
      case Operation::Kind::set_passive:
      case Operation::Kind::flip:
      case Operation::Kind::reset:
        add_route(op.route);
        break;
    }
  }
  return touched;
}

RuntimeDiff runtime_diff(const RoutingSnapshot& base, const RuntimeState& state) {
  RuntimeDiff diff;
  diff.generation = state.generation;
  for (const Route& route : base.routes) {
    const auto it = state.routes.find(route.name);
    if (it == state.routes.end()) continue;
    const RouteOverride& o = it->second;
    const auto add = [&](const char* key, std::string file,
                         const std::optional<std::string>& runtime) {
      if (runtime && *runtime != file)
        diff.routes.push_back({route.name, key, std::move(file), *runtime});
    };
    add("live", base.pools[route.live_pool].name, o.live);
    add("passive", base.pools[route.passive_pool].name, o.passive);
    add("weight", format_percent(route.weight_ppm),
        o.weight_ppm ? std::optional(format_percent(*o.weight_ppm)) : std::nullopt);
  }
  for (const Pool& pool : base.pools)
    for (const Server& server : pool.servers) {
      const auto it = state.servers.find({pool.name, server.name});
      if (it != state.servers.end() && it->second != server.admin)
        diff.servers.push_back({pool.name, server.name, server.admin, it->second});
    }
  return diff;
}

Touched changed_between(const Status& before, const Status& after) {
  Touched changed;
  const auto find_route = [](const Status& status, const std::string& name) -> const RouteStatus* {
    for (const RouteStatus& route : status.routes)
      if (route.name == name) return &route;
    return nullptr;
  };
  // Each pass adds what `status` has and `other` lacks, and with `compare` what differs.
  const auto routes_changed = [&](const Status& status, const Status& other, bool compare) {
    for (const RouteStatus& route : status.routes) {
      const RouteStatus* o = find_route(other, route.name);
      if (o == nullptr || (compare && (o->live != route.live || o->passive != route.passive ||
                                       o->weight_ppm != route.weight_ppm)))
        changed.routes.push_back(route.name);
    }
  };
  routes_changed(after, before, true);
  routes_changed(before, after, false);

  const auto find_server = [](const Status& status, const ServerRef& ref) -> const ServerStatus* {
    for (const PoolStatus& pool : status.pools)
      if (pool.name == ref.pool)
        for (const ServerStatus& server : pool.servers)
          if (server.name == ref.server) return &server;
    return nullptr;
  };
  const auto servers_changed = [&](const Status& status, const Status& other, bool compare) {
    for (const PoolStatus& pool : status.pools)
      for (const ServerStatus& server : pool.servers) {
        ServerRef ref{pool.name, server.name};
        const ServerStatus* o = find_server(other, ref);
        if (o == nullptr || (compare && o->admin != server.admin))
          changed.servers.push_back(std::move(ref));
      }
  };
  servers_changed(after, before, true);
  servers_changed(before, after, false);
  return changed;
}

Moment Moment::now() {
  Moment m;
  m.steady = std::chrono::steady_clock::now();
  m.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  return m;
}

Status make_status(const RoutingSnapshot& snapshot, const RuntimeState& state, const Moment& now,
                   const CheckRecords* records) {
  Status status;
  status.generation = snapshot.generation;
  if (snapshot.config) status.config_path = snapshot.config->path;
  for (const Route& route : snapshot.routes) {
    RouteStatus r;
    r.name = route.name;
    r.live = snapshot.pools[route.live_pool].name;
    r.passive = snapshot.pools[route.passive_pool].name;
    r.weight_ppm = route.weight_ppm;
    r.sticky = sticky_text(route.sticky);
    r.max_step_ppm = route.max_step_ppm;
    if (auto it = state.routes.find(route.name); it != state.routes.end()) {
      if (it->second.live) r.live_source = Source::runtime;
      if (it->second.passive) r.passive_source = Source::runtime;
      if (it->second.weight_ppm) r.weight_source = Source::runtime;
    }
    status.routes.push_back(std::move(r));
    if (auto it = state.rollouts.find(route.name); it != state.rollouts.end())
      status.rollouts.push_back(it->second);
  }
  for (const Pool& pool : snapshot.pools) {
    PoolStatus p;
    p.name = pool.name;
    p.checked = pool.health.has_value();
    p.fail_open = pool.fail_open;
    const auto steady_ns = now.steady.time_since_epoch().count();
    for (const Server& server : pool.servers) {
      ServerStatus s;
      s.name = server.name;
      s.admin = server.admin;
      if (state.servers.count({pool.name, server.name}) != 0) s.admin_source = Source::runtime;
      if (const ServerState* shared = server.state.get()) {
        s.health = shared->health.load(std::memory_order_relaxed);
        s.in_flight = shared->in_flight.load(std::memory_order_relaxed);
        s.tunnels = shared->tunnels.load(std::memory_order_relaxed);
        const std::int64_t until = shared->ejected_until.load(std::memory_order_relaxed);
        if (until > steady_ns) s.ejected_until = now.unix_ms + (until - steady_ns) / 1'000'000;
        if (records != nullptr) {
          if (auto it = records->find(shared); it != records->end()) {
            s.last_check = it->second.last_check;
            s.last_check_at = it->second.last_check_at;
            s.health_since = it->second.health_since;
          }
        }
      }
      p.servers.push_back(std::move(s));
    }
    status.pools.push_back(std::move(p));
  }
  return status;
}

}  // namespace proxyd
