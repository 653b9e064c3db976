// The proxyd status the control-plane tests share, unit and integration alike: one canonical
// picture (routes api and web over pools blue and green) and the same picture after runtime
// changes. Header-only and built on proxy/admin_api.hpp alone, so any control test can use it.
#pragma once

#include <utility>
#include <vector>

#include "proxy/admin_api.hpp"

namespace proxyd::control::test {

inline ServerStatus server_status(std::string name, Health health = Health::unchecked) {
  ServerStatus server;
  server.name = std::move(name);
  server.health = health;
  return server;
}

// Generation 7, config /etc/proxyd/proxyd.yaml. Routes: api (live blue, passive green, 0.5% to
// green set at runtime, sticky on cookie sessionid) and web (blue/blue, all from the config).
// Pools: blue (127.0.0.1:9001 and :9002, health not checked yet) and green (127.0.0.1:9011,
// healthy). A test changes the fields it is about on its own copy.
inline Status sample_status() {
  Status status;
  status.generation = 7;
  status.config_path = "/etc/proxyd/proxyd.yaml";
  RouteStatus api;
  api.name = "api";
  api.live = "blue";
  api.passive = "green";
  api.weight_ppm = 5000;
  api.weight_source = Source::runtime;
  api.sticky = "cookie sessionid";
  RouteStatus web;
  web.name = "web";
  web.live = "blue";
  web.passive = "blue";
  status.routes = {api, web};
  PoolStatus blue;
  blue.name = "blue";
  blue.servers = {server_status("127.0.0.1:9001"), server_status("127.0.0.1:9002")};
  PoolStatus green;
  green.name = "green";
  green.checked = true;
  green.servers = {server_status("127.0.0.1:9011", Health::healthy)};
  status.pools = {blue, green};
  return status;
}

// sample_status() after `flip api` and `server drain blue 127.0.0.1:9002`, with 9002 also failing
// its checks: every kind of runtime value (live, passive, weight, server state) and every health
// state (9001 unchecked, 9002 unhealthy, 9011 healthy) appear at least once.
inline Status status_after_runtime_changes() {
  Status status = sample_status();
  RouteStatus& api = status.routes[0];
  std::swap(api.live, api.passive);
  api.live_source = Source::runtime;
  api.passive_source = Source::runtime;
  ServerStatus& drained = status.pools[0].servers[1];
  drained.admin = ServerAdmin::draining;
  drained.admin_source = Source::runtime;
  drained.health = Health::unhealthy;
  return status;
}

// The stats of sample_status()'s routes over `window_seconds`: api's live blue with a few errors
// and its passive green at about its 0.5% weight, web's live blue with a p99 beyond the largest
// bucket and nothing on its passive slot.
inline Stats sample_stats(std::int64_t window_seconds = 60) {
  Stats stats;
  stats.generation = 7;
  stats.window_seconds = window_seconds;
  RouteStats api;
  api.name = "api";
  api.weight_ppm = 5000;
  api.slots = {SlotStats{"live", "blue", 11940, 3, Quantile{1.25, false}, Quantile{8.4, false}},
               SlotStats{"passive", "green", 60, 6, Quantile{1.4, false}, Quantile{9.875, false}}};
  RouteStats web;
  web.name = "web";
  web.slots = {SlotStats{"live", "blue", 300, 0, Quantile{0.8, false}, Quantile{10'000, true}},
               SlotStats{"passive", "blue", 0, 0, std::nullopt, std::nullopt}};
  stats.routes = {api, web};
  return stats;
}

// What a fake AdminApi reports a change touched, as proxyd does (proxy/runtime_state.hpp,
// touched_by): the routes and servers the operations name, flip_all naming every route of
// `status`.
inline Touched touched_by(const std::vector<Operation>& operations, const Status& status) {
  Touched touched;
  for (const Operation& op : operations) {
    if (op.kind == Operation::Kind::server_admin) {
      touched.servers.push_back(ServerRef{op.pool, op.server});
    } else if (op.kind == Operation::Kind::flip_all) {
      for (const RouteStatus& route : status.routes) touched.routes.push_back(route.name);
    } else {
      touched.routes.push_back(op.route);
    }
  }
  return touched;
}

}  // namespace proxyd::control::test
