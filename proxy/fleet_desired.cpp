// The desired-state document of fleet_desired.hpp.
#include "proxy/fleet_desired.hpp"

#include <boost/json.hpp>

#include <algorithm>

#include "proxy/json_parse.hpp"

namespace proxyd {
namespace {

namespace json = boost::json;

const RouteStatus* find_route(const Status& status, std::string_view name) {
  for (const RouteStatus& route : status.routes)
    if (route.name == name) return &route;
  return nullptr;
}

bool has_pool(const Status& status, std::string_view name) {
  return std::any_of(status.pools.begin(), status.pools.end(),
                     [&](const PoolStatus& pool) { return pool.name == name; });
}

bool has_server(const Status& status, std::string_view pool, std::string_view server) {
  for (const PoolStatus& p : status.pools) {
    if (p.name != pool) continue;
    return std::any_of(p.servers.begin(), p.servers.end(),
                       [&](const ServerStatus& s) { return s.name == server; });
  }
  return false;
}

}  // namespace

std::string encode_desired(const Desired& desired) {
  json::object routes;
  for (const auto& [name, route] : desired.routes) {
    json::object r;
    if (route.live) r["live"] = *route.live;
    if (route.passive) r["passive"] = *route.passive;
    if (route.weight_ppm) r["weight_ppm"] = *route.weight_ppm;
    routes[name] = std::move(r);
  }
  json::object servers;
  for (const auto& [key, admin] : desired.servers)
    servers[key.first + "/" + key.second] = std::string(admin_name(admin));
  return json::serialize(json::object{{"routes", std::move(routes)},
                                      {"servers", std::move(servers)},
                                      {"force", desired.force},
                                      {"command", desired.command}});
}

std::optional<Desired> decode_desired(std::string_view text, std::string& error) {
  auto fail = [&](std::string message) -> std::optional<Desired> {
    error = std::move(message);
    return std::nullopt;
  };
  json::error_code ec;
  const json::value root = parse_json(text, ec);
  if (ec) return fail("not JSON: " + ec.message());
  const json::object* obj = root.if_object();
  if (obj == nullptr) return fail("not a JSON object");
  Desired desired;
  for (const auto& [key, value] : *obj) {
    if (key == "routes" && value.is_object()) {
      for (const auto& [name, v] : value.get_object()) {
        const json::object* r = v.if_object();
        if (r == nullptr) return fail("route " + std::string(name) + " is not an object");
        DesiredRoute route;
        for (const auto& [field, f] : *r) {
          if ((field == "live" || field == "passive") && f.is_string()) {
            (field == "live" ? route.live : route.passive) = std::string(f.get_string());
          } else if (field == "weight_ppm" && f.is_int64() && f.as_int64() >= 0 &&
                     f.as_int64() <= 1'000'000) {
            route.weight_ppm = static_cast<std::uint32_t>(f.as_int64());
          } else {
            return fail("route " + std::string(name) + ": bad key " + std::string(field));
          }
        }
        desired.routes[std::string(name)] = std::move(route);
      }
    } else if (key == "servers" && value.is_object()) {
      for (const auto& [name, v] : value.get_object()) {
        const std::string_view text_name = name;
        const auto slash = text_name.find('/');
        const std::optional<ServerAdmin> admin =
            v.is_string() ? parse_admin(v.get_string()) : std::nullopt;
        if (slash == std::string_view::npos || !admin)
          return fail("server " + std::string(name) + ": expected \"POOL/SERVER\": \"enabled\", "
                      "\"draining\" or \"disabled\"");
        desired.servers[{std::string(text_name.substr(0, slash)),
                         std::string(text_name.substr(slash + 1))}] = *admin;
      }
    } else if (key == "force" && value.is_bool()) {
      desired.force = value.get_bool();
    } else if (key == "command" && value.is_string()) {
      desired.command = std::string(value.get_string());
    } else {
      return fail("bad key " + std::string(key));
    }
  }
  return desired;
}

std::vector<Operation> desired_operations(const Desired& desired) {
  std::vector<Operation> out;
  const auto add = [&](Operation::Kind kind) -> Operation& {
    Operation& op = out.emplace_back();
    op.kind = kind;
    return op;
  };
  for (const auto& [name, route] : desired.routes) {
    if (route.live) {
      Operation& op = add(Operation::Kind::set_live);
      op.route = name;
      op.pool = *route.live;
    }
    if (route.passive) {
      Operation& op = add(Operation::Kind::set_passive);
      op.route = name;
      op.pool = *route.passive;
    }
    if (route.weight_ppm) {
      Operation& op = add(Operation::Kind::set_weight);
      op.route = name;
      op.weight_ppm = *route.weight_ppm;
    }
  }
  for (const auto& [key, admin] : desired.servers) {
    Operation& op = add(Operation::Kind::server_admin);
    op.pool = key.first;
    op.server = key.second;
    op.admin = admin;
  }
  return out;
}

std::optional<std::string> edit_desired(Desired& desired, const std::vector<Operation>& operations,
                                        const Status& local) {
  const auto route_of = [&](const std::string& name) -> std::optional<std::string> {
    if (find_route(local, name) == nullptr) return "no route named " + name;
    return std::nullopt;
  };
  const auto flip = [&](const RouteStatus& route) {
    DesiredRoute& d = desired.routes[route.name];
    const std::string live = d.live.value_or(route.live);
    const std::string passive = d.passive.value_or(route.passive);
    d.live = passive;
    d.passive = live;
    d.weight_ppm = 0;
  };
  for (const Operation& op : operations) {
    switch (op.kind) {
      case Operation::Kind::set_weight:
        if (auto error = route_of(op.route)) return error;
        desired.routes[op.route].weight_ppm = op.weight_ppm;
        break;
      case Operation::Kind::set_live:
      case Operation::Kind::set_passive:
        if (auto error = route_of(op.route)) return error;
        if (!has_pool(local, op.pool)) return "no pool named " + op.pool;
        (op.kind == Operation::Kind::set_live ? desired.routes[op.route].live
                                              : desired.routes[op.route].passive) = op.pool;
        break;
      case Operation::Kind::flip:
        if (auto error = route_of(op.route)) return error;
        flip(*find_route(local, op.route));
        break;
      case Operation::Kind::flip_all:
        for (const RouteStatus& route : local.routes) flip(route);
        break;
      case Operation::Kind::server_admin:
        if (!has_server(local, op.pool, op.server))
          return "no server " + op.server + " in pool " + op.pool;
        desired.servers[{op.pool, op.server}] = op.admin;
        break;
      case Operation::Kind::reset:
      case Operation::Kind::reset_all:
        return "reset is not a fleet command: the fleet has no file values to go back to; set "
               "the values you want";
    }
  }
  return std::nullopt;
}

}  // namespace proxyd
