// The server's command table and the checks every request passes before its handler runs: the
// command exists, the caller's access covers it, and it carries only the fields it uses. Each
// handler turns one request into AdminApi calls and a reply.
#include "control/server_commands.hpp"

#include "proxy/rollout_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "proxy/log.hpp"

namespace proxyd::control {

namespace json = boost::json;
using error_code = boost::system::error_code;

namespace {

std::string names_of(const std::vector<RouteStatus>& routes) {
  std::string out;
  for (const RouteStatus& route : routes) out += (out.empty() ? "" : ", ") + route.name;
  return out;
}

// The pools the given routes use, in the order of `status.pools`.
std::vector<PoolStatus> pools_used(const Status& status, const std::vector<RouteStatus>& routes,
                                   const std::set<std::string>& also) {
  std::set<std::string> wanted = also;
  for (const RouteStatus& route : routes) {
    wanted.insert(route.live);
    wanted.insert(route.passive);
  }
  std::vector<PoolStatus> out;
  for (const PoolStatus& pool : status.pools) {
    if (wanted.count(pool.name) != 0) out.push_back(pool);
  }
  return out;
}

// The first of `names` (in their order) that none of `routes` is called; nullopt if all are.
template <class Names, class Routes>
std::optional<std::string> unknown_route(const Names& names, const Routes& routes) {
  for (const std::string& name : names) {
    const bool known = std::any_of(routes.begin(), routes.end(),
                                   [&](const auto& route) { return route.name == name; });
    if (!known) return name;
  }
  return std::nullopt;
}

// Keeps, in their order, the entries whose route `wanted` names.
template <class Routes, class Name>
void keep_routes(Routes& routes, const std::set<std::string>& wanted, Name name) {
  std::erase_if(routes, [&](const auto& route) { return wanted.count(name(route)) == 0; });
}
template <class Routes>
void keep_routes(Routes& routes, const std::set<std::string>& wanted) {
  keep_routes(routes, wanted, [](const auto& route) { return route.name; });
}

Response run_status(AdminApi& api, const Request& request, const Caller&) {
  Status status = api.status();
  if (!request.routes.empty()) {
    const std::set<std::string> wanted(request.routes.begin(), request.routes.end());
    if (const auto name = unknown_route(wanted, status.routes)) {
      return error_response(ErrorKind::refused, "unknown route " + in_quotes(*name) +
                                                    " (routes: " + names_of(status.routes) + ")",
                            status.generation);
    }
    std::vector<RouteStatus> routes = status.routes;
    keep_routes(routes, wanted);
    status.pools = pools_used(status, routes, {});
    status.routes = std::move(routes);
  }
  return ok_response(status.generation, status_to_json(status));
}

// The window's counts of every route, or of the routes named (in the order of proxyd's routes).
Response run_stats(AdminApi& api, const Request& request, const Caller&) {
  Stats stats = api.stats(std::chrono::seconds(request.window.value_or(kDefaultStatsWindow)));
  if (const auto name = unknown_route(request.routes, stats.routes))
    return error_response(ErrorKind::refused, "no route named " + *name, stats.generation);
  if (!request.routes.empty())
    keep_routes(stats.routes, std::set<std::string>(request.routes.begin(), request.routes.end()));
  return ok_response(stats.generation, stats_to_json(stats));
}

Response run_history(AdminApi& api, const Request& request, const Caller&) {
  json::array entries;
  for (const std::string& line : api.history(request.limit.value_or(kDefaultHistoryLimit))) {
    error_code ec;
    json::value entry = json::parse(line, ec);
    // A damaged audit line is passed on as text rather than hidden.
    if (ec) {
      entries.emplace_back(line);
    } else {
      entries.push_back(std::move(entry));
    }
  }
  json::object result;
  result["entries"] = std::move(entries);
  return ok_response(std::nullopt, std::move(result));
}

Response run_reload(AdminApi& api, const Request& request, const Caller& caller) {
  // The generation check happens inside the reload, under proxyd's change lock, so a SIGHUP
  // cannot slip in between, and a refusal is audited like any other.
  const ChangeResult result = api.reload(caller, request.if_generation);
  if (!result.ok) return error_response(ErrorKind::refused, result.error, result.generation);
  // The runtime values that still win over the file just read: a reload must not look as if
  // every edit took effect when some are masked.
  return ok_response(result.generation, diff_to_json(result.overrides));
}

Response run_diff(AdminApi& api, const Request&, const Caller&) {
  const RuntimeDiff diff = api.diff();
  return ok_response(diff.generation, diff_to_json(diff));
}

// Every change is one AdminApi::apply: proxyd validates the operations, resolves flip_all and
// checks if_generation under its change lock, so nothing here reads state to prepare the change.
Response run_change(AdminApi& api, const Request& request, const Caller& caller) {
  ChangeRequest change;
  change.operations = request.operations;
  change.if_generation = request.if_generation;
  change.caller = caller;
  change.command = request.text.empty() ? request.command : request.text;
  change.force = request.force;
  change.local = request.local;
  const ChangeResult result = api.apply(change);
  if (!result.ok) {
    Response refused = error_response(ErrorKind::refused, result.error, result.generation);
    refused.error.operation = result.failed_operation;
    return refused;
  }

  // The reply shows the operations and the routes and pools proxyd says they touched, as they
  // are now.
  const std::set<std::string> routes_touched(result.touched.routes.begin(),
                                             result.touched.routes.end());
  std::set<std::string> pools_touched;
  for (const ServerRef& server : result.touched.servers) pools_touched.insert(server.pool);
  Status after = api.status();
  std::erase_if(after.routes,
                [&](const RouteStatus& route) { return routes_touched.count(route.name) == 0; });
  std::erase_if(after.pools,
                [&](const PoolStatus& pool) { return pools_touched.count(pool.name) == 0; });
  json::object body = status_to_json(after);
  body.erase("config_path");
  json::array operations;
  for (const Operation& op : request.operations) operations.push_back(to_json(op));
  body["operations"] = std::move(operations);
  // What --force went past, so the caller sees it as well as the audit log.
  if (!result.overridden.empty()) body["overridden"] = result.overridden;
  return ok_response(result.generation, std::move(body));
}

// The one route a rollout command is about: routes[0], and nothing else.
std::optional<Response> one_route(const Request& request) {
  if (request.routes.size() == 1) return std::nullopt;
  return error_response(ErrorKind::bad_request,
                        in_quotes(request.command) + " takes exactly one route in \"routes\"");
}

// rollout, rollout pause|resume|abort: one AdminApi::rollout; the reply is the rollout after it.
Response run_rollout(AdminApi& api, const Request& request, const Caller& caller) {
  if (auto bad = one_route(request)) return *bad;
  RolloutCommand command;
  command.route = request.routes.front();
  command.caller = caller;
  command.command = request.text.empty() ? request.command : request.text;
  command.if_generation = request.if_generation;
  command.local = request.local;
  if (request.command == "rollout") {
    command.kind = RolloutCommand::Kind::start;
    if (!request.plan) return error_response(ErrorKind::bad_request, "rollout needs a \"plan\"");
    command.plan = *request.plan;
  } else if (request.command == "rollout pause") {
    command.kind = RolloutCommand::Kind::pause;
  } else if (request.command == "rollout resume") {
    command.kind = RolloutCommand::Kind::resume;
  } else {
    command.kind = RolloutCommand::Kind::abort;
  }
  const ChangeResult result = api.rollout(command);
  if (!result.ok) return error_response(ErrorKind::refused, result.error, result.generation);
  json::object body;
  if (result.rollout) body["rollout"] = rollout_to_json(*result.rollout);
  return ok_response(result.generation, std::move(body));
}

// rollout status: every route's latest rollout, or those of the routes named.
Response run_rollout_status(AdminApi& api, const Request& request, const Caller&) {
  Status status = api.status();
  if (const auto name = unknown_route(request.routes, status.routes))
    return error_response(ErrorKind::refused, "no route named " + *name, status.generation);
  if (!request.routes.empty()) {
    keep_routes(status.rollouts, std::set<std::string>(request.routes.begin(), request.routes.end()),
                [](const RolloutStatus& r) { return r.route; });
  }
  json::object body;
  body["rollouts"] = rollouts_to_json(status.rollouts);
  return ok_response(status.generation, std::move(body));
}

// fleet status: every member, its report and the desired state's revision, read from etcd by
// proxyd's own client.
Response run_fleet_status(AdminApi& api, const Request&, const Caller&) {
  const FleetView view = api.fleet_view();
  if (!view.error.empty()) return error_response(ErrorKind::refused, view.error);
  return ok_response(std::nullopt, fleet_view_to_json(view));
}

// fleet set-weight|set-live|set-passive|flip|apply: the operations go into the desired state with
// a compare-and-swap; the reply is the new revision (proxyctl then waits for the members).
Response run_fleet_write(AdminApi& api, const Request& request, const Caller& caller) {
  FleetWrite write;
  write.operations = request.operations;
  write.if_revision = request.if_revision;
  write.force = request.force;
  write.caller = caller;
  write.command = request.text.empty() ? request.command : request.text;
  const FleetWriteResult result = api.fleet_write(write);
  if (!result.error.empty()) return error_response(ErrorKind::refused, result.error);
  return ok_response(std::nullopt, json::object{{"revision", result.revision}});
}

Response run_fleet_forget(AdminApi& api, const Request& request, const Caller&) {
  if (request.host.empty()) return error_response(ErrorKind::bad_request, "fleet forget needs \"host\"");
  const FleetWriteResult result = api.fleet_forget(request.host);
  if (!result.error.empty()) return error_response(ErrorKind::refused, result.error);
  return ok_response(std::nullopt, json::object{{"host", request.host}});
}

// Every command that changes routes or servers: a list of operations, optionally conditional.
// Each may be forced past the health gate and max_step (server commands never meet the gate, but
// a batch may carry them, and one rule for every change is simpler to explain).
// On a fleet member they are refused unless "local" (docs/fleet.md).
constexpr Accepts kChange{.operations = true, .if_generation = true, .force = true, .local = true};
// The fleet's changes are conditional on the desired state's revision, not a generation.
constexpr Accepts kFleetChange{.operations = true, .force = true, .if_revision = true};
// A rollout command names its one route in "routes"; start also carries the plan, and on a fleet
// member "local" (a start changes weights; pause, resume and abort act on a started rollout).
constexpr Accepts kRolloutControl{.if_generation = true, .routes = true};
constexpr Accepts kRolloutStart{.if_generation = true, .routes = true, .plan = true, .local = true};

// The rows. To add a command: write its handler above, add its row here (name, access, fields),
// add the proxyctl row that sends it (control/commands.cpp) and its line in
// docs/control-protocol.md; tests/unit/control/command_tables_test.cpp fails until all three
// agree. A new request field also needs its line in kFields below and in protocol.cpp.
constexpr std::array kCommands{
    ServerCommand{"status", Access::read, {.routes = true}, run_status},
    ServerCommand{"stats", Access::read, {.routes = true, .window = true}, run_stats},
    ServerCommand{"history", Access::read, {.limit = true}, run_history},
    ServerCommand{"diff", Access::read, {}, run_diff},
    ServerCommand{"set-weight", Access::change, kChange, run_change},
    ServerCommand{"set-live", Access::change, kChange, run_change},
    ServerCommand{"set-passive", Access::change, kChange, run_change},
    ServerCommand{"flip", Access::change, kChange, run_change},
    ServerCommand{"server drain", Access::change, kChange, run_change},
    ServerCommand{"server enable", Access::change, kChange, run_change},
    ServerCommand{"server disable", Access::change, kChange, run_change},
    ServerCommand{"apply", Access::change, kChange, run_change},
    ServerCommand{"reset", Access::change, kChange, run_change},
    ServerCommand{"reload", Access::change, {.if_generation = true}, run_reload},
    ServerCommand{"rollout", Access::change, kRolloutStart, run_rollout},
    ServerCommand{"rollout status", Access::read, {.routes = true}, run_rollout_status},
    ServerCommand{"rollout pause", Access::change, kRolloutControl, run_rollout},
    ServerCommand{"rollout resume", Access::change, kRolloutControl, run_rollout},
    ServerCommand{"rollout abort", Access::change, kRolloutControl, run_rollout},
    ServerCommand{"fleet status", Access::read, {}, run_fleet_status},
    ServerCommand{"fleet set-weight", Access::change, kFleetChange, run_fleet_write},
    ServerCommand{"fleet set-live", Access::change, kFleetChange, run_fleet_write},
    ServerCommand{"fleet set-passive", Access::change, kFleetChange, run_fleet_write},
    ServerCommand{"fleet flip", Access::change, kFleetChange, run_fleet_write},
    ServerCommand{"fleet apply", Access::change, kFleetChange, run_fleet_write},
    ServerCommand{"fleet forget", Access::change, {.host = true}, run_fleet_forget},
};

// The optional request fields, each with how to tell that a request carries it and which rows
// accept it.
struct Field {
  std::string_view name;
  bool Accepts::*accepted;
  bool (*present)(const Request& request);
};

constexpr std::array kFields{
    Field{"operations", &Accepts::operations,
          [](const Request& r) { return !r.operations.empty(); }},
    Field{"if_generation", &Accepts::if_generation,
          [](const Request& r) { return r.if_generation.has_value(); }},
    Field{"routes", &Accepts::routes, [](const Request& r) { return !r.routes.empty(); }},
    Field{"limit", &Accepts::limit, [](const Request& r) { return r.limit.has_value(); }},
    Field{"force", &Accepts::force, [](const Request& r) { return r.force; }},
    Field{"window", &Accepts::window, [](const Request& r) { return r.window.has_value(); }},
    Field{"plan", &Accepts::plan, [](const Request& r) { return r.plan.has_value(); }},
    Field{"local", &Accepts::local, [](const Request& r) { return r.local; }},
    Field{"if_revision", &Accepts::if_revision,
          [](const Request& r) { return r.if_revision.has_value(); }},
    Field{"host", &Accepts::host, [](const Request& r) { return !r.host.empty(); }},
};

// The names of the rows that pass `keep`, joined with ", ".
template <typename Keep>
std::string command_names(Keep keep) {
  std::string out;
  for (const ServerCommand& row : kCommands) {
    if (!keep(row)) continue;
    if (!out.empty()) out += ", ";
    out += row.name;
  }
  return out;
}

// Why `request` does not fit `row`, or "".
std::string misfit(const ServerCommand& row, const Request& request) {
  for (const Field& field : kFields) {
    if (field.present(request) && !(row.accepts.*field.accepted)) {
      return in_quotes(field.name) + " is only for " +
             command_names([&](const ServerCommand& r) { return r.accepts.*field.accepted; });
    }
  }
  if (row.accepts.operations && request.operations.empty()) {
    return "\"operations\" is empty: " + in_quotes(request.command) +
           " needs at least one operation";
  }
  return "";
}

std::string forbidden_message(const ServerCommand& row, const Caller& caller, Access granted) {
  if (granted == Access::none) {
    return "uid " + std::to_string(caller.uid) + " may not use the control socket";
  }
  return "uid " + std::to_string(caller.uid) + " may only read (" +
         command_names([](const ServerCommand& r) { return r.access == Access::read; }) + "); " +
         std::string(row.name) + " changes something";
}

Response dispatch(AdminApi& api, const Request& request, const Caller& caller, Access granted) {
  const ServerCommand* row = find_server_command(request.command);
  if (row == nullptr) {
    const auto all = [](const ServerCommand&) { return true; };
    return error_response(ErrorKind::bad_request, "unknown command " + in_quotes(request.command) +
                                                      " (proxyd's commands: " +
                                                      command_names(all) + ")");
  }
  // Access first: a caller who may not run the command learns nothing more about its request.
  if (granted < row->access) {
    std::string message = forbidden_message(*row, caller, granted);
    log_line("refused " + std::string(row->name) + " from uid=" + std::to_string(caller.uid) +
             " pid=" + std::to_string(caller.pid) + ": " + message);
    return error_response(ErrorKind::forbidden, std::move(message));
  }
  if (std::string why = misfit(*row, request); !why.empty()) {
    return error_response(ErrorKind::bad_request, std::move(why));
  }
  return row->run(api, request, caller);
}

}  // namespace

void log_line(std::string_view text) { log::info("control: " + std::string(text)); }

std::span<const ServerCommand> server_commands() { return kCommands; }

const ServerCommand* find_server_command(std::string_view name) {
  for (const ServerCommand& row : kCommands) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

Response execute(AdminApi& api, const Request& request, const Caller& caller, Access granted) {
  try {
    return dispatch(api, request, caller, granted);
  } catch (const std::exception& e) {
    log_line("internal error in " + request.command + ": " + e.what());
    return error_response(ErrorKind::internal, "internal error in " + request.command + ": " +
                                                   e.what() + "; check `proxyctl status`");
  } catch (...) {
    log_line("internal error in " + request.command);
    return error_response(ErrorKind::internal,
                          "internal error in " + request.command + "; check `proxyctl status`");
  }
}

}  // namespace proxyd::control
