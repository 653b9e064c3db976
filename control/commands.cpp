// The proxyctl command table and everything generated from it: argument parsing (also for the
// lines of an `apply` batch), help, and the text rendering of replies. Every usage error message
// is produced here, so tests/unit/control can pin each one without running a process.
#include "control/commands.hpp"

#include "proxy/rollout_json.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <utility>

namespace proxyd::control {

namespace json = boost::json;

namespace {

// Most servers one wait-healthy can ask for; far above any real pool, low enough to be a typo.
constexpr std::uint64_t kMaxMinHealthy = 1'000'000;

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

// Decimal digits only, no sign or blanks (std::from_chars alone stops at the first non-digit).
std::optional<std::uint64_t> parse_whole(std::string_view text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// --- options ------------------------------------------------------------------------------------

struct OptionSpec {
  std::string_view name;  // "--min", "-n", "--all"
  bool takes_value = false;
};

struct SplitArgs {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // in the order given
  std::string error;

  const std::string* get(std::string_view name) const {
    for (const auto& [key, value] : options) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

// "--x" and "-x" (a letter) are options; "-", "-5" and "-0.5" are positional, so a negative
// number reaches its parser and gets a message about the value rather than "unknown option".
bool looks_like_option(const std::string& arg) {
  if (arg.size() < 2 || arg[0] != '-') return false;
  const char c = arg[1];
  return c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Splits a row's arguments into positionals and its own options: `--name VALUE`, `--name=VALUE`,
// `-n VALUE`, `-nVALUE`; `--` ends the options. Anything else that looks like an option is an
// error, so a misspelt option is never taken as a route name.
SplitArgs split_args(const std::vector<std::string>& args,
                     std::initializer_list<OptionSpec> specs) {
  SplitArgs out;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || !looks_like_option(arg)) {
      out.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> value;
    if (arg[1] == '-') {
      if (const std::size_t eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
      }
    } else if (arg.size() > 2) {
      name = arg.substr(0, 2);
      value = arg.substr(2);
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) {
      out.error = "unknown option " + (arg[1] == '-' ? name : arg);
      return out;
    }
    if (!spec->takes_value && value) {
      out.error = name + " takes no value";
      return out;
    }
    if (spec->takes_value && !value) {
      if (i + 1 >= args.size()) {
        out.error = name + " needs a value";
        return out;
      }
      value = args[++i];
    }
    if (out.get(name) != nullptr) {
      out.error = name + " given twice";
      return out;
    }
    out.options.emplace_back(name, value.value_or(""));
  }
  return out;
}

// Exactly these positionals, named as in the usage line.
std::string expect_positionals(const std::vector<std::string>& given,
                               std::initializer_list<std::string_view> names) {
  const std::vector<std::string_view> expected(names);
  if (given.size() < expected.size()) return "missing " + std::string(expected[given.size()]);
  if (given.size() > expected.size()) {
    return "unexpected argument " + in_quotes(given[expected.size()]);
  }
  return "";
}

// --force: go ahead where the health gate or a route's max_step would refuse.
constexpr OptionSpec kForce{"--force", false};

void take_force(const SplitArgs& split, Invocation& out) {
  out.request.force = split.get("--force") != nullptr;
}

// --- rendering ----------------------------------------------------------------------------------

constexpr std::string_view kRuntimeMarker = "*";
constexpr std::string_view kLegend =
    "* changed at runtime (proxyctl or the state file); unmarked values come from the config file";

std::string marked(std::string value, Source source, bool& any_marker) {
  if (source == Source::runtime) {
    any_marker = true;
    value += kRuntimeMarker;
  }
  return value;
}

// A time of status, or "-" for none (0).
std::string time_or_dash(std::int64_t unix_ms) { return unix_ms == 0 ? "-" : clock_time(unix_ms); }

// The routes table, the servers table and the pools' load (each left out when empty) and the
// legend.
std::string render_tables(const Status& status) {
  bool any_marker = false;
  std::string out;
  if (!status.routes.empty()) {
    std::vector<std::vector<std::string>> rows{{"ROUTE", "LIVE", "PASSIVE", "WEIGHT", "STICKY"}};
    for (const RouteStatus& route : status.routes) {
      rows.push_back({route.name, marked(route.live, route.live_source, any_marker),
                      marked(route.passive, route.passive_source, any_marker),
                      marked(format_percent(route.weight_ppm) + "%", route.weight_source,
                             any_marker),
                      route.sticky.empty() ? "-" : route.sticky});
    }
    out += "\n" + format_table(rows);
  }
  if (!status.pools.empty()) {
    std::vector<std::vector<std::string>> rows{
        {"POOL", "SERVER", "STATE", "HEALTH", "LAST CHECK", "SINCE"}};
    std::vector<std::vector<std::string>> load{{"POOL", "CHECKED", "IN FLIGHT", "TUNNELS"}};
    for (const PoolStatus& pool : status.pools) {
      if (pool.servers.empty()) rows.push_back({pool.name, "-", "-", "-", "-", "-"});
      std::int64_t in_flight = 0;
      std::int64_t tunnels = 0;
      for (const ServerStatus& server : pool.servers) {
        rows.push_back({pool.name, server.name,
                        marked(std::string(admin_name(server.admin)), server.admin_source,
                               any_marker),
                        health_text(server),
                        server.last_check.empty() ? "-" : server.last_check,
                        time_or_dash(server.health_since)});
        in_flight += server.in_flight;
        tunnels += server.tunnels;
      }
      load.push_back({pool.name, pool.checked ? "yes" : "no", std::to_string(in_flight),
                      std::to_string(tunnels)});
    }
    out += "\n" + format_table(rows) + "\n" + format_table(load);
  }
  if (any_marker) out += "\n" + std::string(kLegend) + "\n";
  return out;
}

std::string render_status_reply(const Response& response) {
  return render_status(status_from_json(response.result, response.generation.value_or(0)));
}

// A change: the new generation, then the routes and pools it touched as they are now.
std::string render_change_reply(const Response& response) {
  const Status after = status_from_json(response.result, response.generation.value_or(0));
  std::string out = "changed; generation is now " + std::to_string(after.generation) + "\n";
  // --force went past the gate: say what it went past.
  if (const json::value* overridden = response.result.if_contains("overridden");
      overridden != nullptr && overridden->is_string()) {
    out += "forced past: " + std::string(overridden->get_string()) + "\n";
  }
  return out + render_tables(after);
}

// A reload: the new generation, then the runtime values that still win over the file just read.
std::string render_reload_reply(const Response& response) {
  const RuntimeDiff diff = diff_from_json(response.result, response.generation.value_or(0));
  std::string out = "reloaded the config; generation is now " +
                    std::to_string(response.generation.value_or(0)) + "\n";
  if (diff.size() == 0) return out;
  return out + "these runtime values still win over the file:\n\n" + render_diff(diff);
}

std::string render_diff_reply(const Response& response) {
  return render_diff(diff_from_json(response.result, response.generation.value_or(0)));
}

std::string render_stats_reply(const Response& response) {
  return render_stats(stats_from_json(response.result, response.generation.value_or(0)));
}

std::string render_history_reply(const Response& response) {
  const json::value* entries = response.result.if_contains("entries");
  if (entries == nullptr || !entries->is_array()) return render_history(json::array());
  return render_history(entries->get_array());
}

// A rollout command's reply: the rollout as it is after it.
std::string render_rollout_reply(const Response& response) {
  const std::vector<RolloutStatus> rollouts = [&] {
    json::array one;
    if (const json::value* rollout = response.result.if_contains("rollout")) one.push_back(*rollout);
    json::value value = std::move(one);
    return rollouts_from_json(&value);
  }();
  return render_rollouts(rollouts);
}

std::string render_fleet_reply(const Response& response) {
  return render_fleet(fleet_view_from_json(response.result));
}

std::string render_fleet_write_reply(const Response& response) {
  const json::value* revision = response.result.if_contains("revision");
  return "written; the desired state is at revision " +
         (revision != nullptr ? json::serialize(*revision) : std::string("?")) + "\n";
}

std::string render_forget_reply(const Response& response) {
  const json::value* host = response.result.if_contains("host");
  return "forgot member " +
         (host != nullptr && host->is_string() ? std::string(host->get_string()) : "?") + "\n";
}

std::string render_rollout_status_reply(const Response& response) {
  return render_rollouts(rollouts_from_json(response.result.if_contains("rollouts")));
}

// --- row parsers --------------------------------------------------------------------------------

std::string parse_status(const CommandRow&, const std::vector<std::string>& args, Invocation& out) {
  const SplitArgs split = split_args(args, {});
  if (!split.error.empty()) return split.error;
  out.request.routes = split.positional;
  return "";
}

std::string parse_stats(const CommandRow&, const std::vector<std::string>& args, Invocation& out) {
  const SplitArgs split = split_args(args, {{"--window", true}});
  if (!split.error.empty()) return split.error;
  out.request.routes = split.positional;
  out.request.window = kDefaultStatsWindow;
  if (const std::string* window = split.get("--window")) {
    out.request.window = parse_window(*window);
    if (!out.request.window) return "--window needs 10s, 1m or 5m, got " + in_quotes(*window);
  }
  return "";
}

std::string parse_set_weight(const CommandRow&, const std::vector<std::string>& args,
                             Invocation& out) {
  const SplitArgs split = split_args(args, {kForce});
  if (!split.error.empty()) return split.error;
  take_force(split, out);
  if (std::string error = expect_positionals(split.positional, {"ROUTE", "PERCENT"});
      !error.empty()) {
    return error;
  }
  const std::optional<std::uint32_t> ppm = parse_percent_ppm(split.positional[1]);
  if (!ppm) {
    return "invalid PERCENT " + in_quotes(split.positional[1]) +
           ": expected a number from 0 to 100 with at most 4 decimals, e.g. 0.5, 0.5% or 100";
  }
  Operation op;
  op.kind = Operation::Kind::set_weight;
  op.route = split.positional[0];
  op.weight_ppm = *ppm;
  out.request.operations.push_back(op);
  return "";
}

std::string parse_set_slot(const CommandRow& row, const std::vector<std::string>& args,
                           Invocation& out) {
  const SplitArgs split = split_args(args, {kForce});
  if (!split.error.empty()) return split.error;
  take_force(split, out);
  if (std::string error = expect_positionals(split.positional, {"ROUTE", "POOL"});
      !error.empty()) {
    return error;
  }
  Operation op;
  op.kind = row.words[0] == "set-live" ? Operation::Kind::set_live
                                       : Operation::Kind::set_passive;
  op.route = split.positional[0];
  op.pool = split.positional[1];
  out.request.operations.push_back(op);
  return "";
}

// flip and reset: ROUTE... as one operation per route, or --all as one operation for every route.
std::string parse_routes_or_all(const CommandRow& row, const std::vector<std::string>& args,
                                Invocation& out) {
  const bool flip = row.words[0] == "flip";
  const Operation::Kind one = flip ? Operation::Kind::flip : Operation::Kind::reset;
  const Operation::Kind all = flip ? Operation::Kind::flip_all : Operation::Kind::reset_all;
  const SplitArgs split = split_args(args, {{"--all", false}, kForce});
  if (!split.error.empty()) return split.error;
  take_force(split, out);
  const bool every = split.get("--all") != nullptr;
  if (every && !split.positional.empty()) return "--all cannot be combined with route names";
  if (every) {
    Operation op;
    op.kind = all;
    out.request.operations.push_back(op);
    return "";
  }
  if (split.positional.empty()) return "missing ROUTE (or --all)";
  for (std::size_t i = 0; i < split.positional.size(); ++i) {
    const std::string& route = split.positional[i];
    // A route named twice is a slip at best (two flips of one route would cancel out).
    if (std::find(split.positional.begin(), split.positional.begin() + static_cast<long>(i),
                  route) != split.positional.begin() + static_cast<long>(i)) {
      return "route " + in_quotes(route) + " given twice";
    }
    Operation op;
    op.kind = one;
    op.route = route;
    out.request.operations.push_back(op);
  }
  return "";
}

std::string parse_wait_healthy(const CommandRow&, const std::vector<std::string>& args,
                               Invocation& out) {
  const SplitArgs split = split_args(args, {{"--min", true}, {"--timeout", true}});
  if (!split.error.empty()) return split.error;
  if (std::string error = expect_positionals(split.positional, {"POOL"}); !error.empty()) {
    return error;
  }
  out.action = Action::wait_healthy;
  out.pool = split.positional[0];
  if (const std::string* min = split.get("--min")) {
    const std::optional<std::uint64_t> n = parse_whole(*min);
    if (!n || *n < 1 || *n > kMaxMinHealthy) {
      return "--min needs a whole number of at least 1, got " + in_quotes(*min);
    }
    out.min_healthy = static_cast<std::uint32_t>(*n);
  }
  if (const std::string* timeout = split.get("--timeout")) {
    const std::optional<std::chrono::milliseconds> duration = parse_timeout(*timeout);
    if (!duration) {
      return "--timeout needs seconds (e.g. 30) or a duration (500ms, 90s, 2m), got " +
             in_quotes(*timeout);
    }
    out.timeout = *duration;
  }
  out.request.command = "status";
  return "";
}

std::string parse_server(const CommandRow& row, const std::vector<std::string>& args,
                         Invocation& out) {
  const SplitArgs split = split_args(args, {});
  if (!split.error.empty()) return split.error;
  if (std::string error = expect_positionals(split.positional, {"POOL", "SERVER"});
      !error.empty()) {
    return error;
  }
  Operation op;
  op.kind = Operation::Kind::server_admin;
  op.pool = split.positional[0];
  op.server = split.positional[1];
  op.admin = row.words[1] == "drain"    ? ServerAdmin::draining
             : row.words[1] == "enable" ? ServerAdmin::enabled
                                        : ServerAdmin::disabled;
  out.request.operations.push_back(op);
  return "";
}

std::string parse_no_args(const CommandRow&, const std::vector<std::string>& args, Invocation&) {
  const SplitArgs split = split_args(args, {});
  if (!split.error.empty()) return split.error;
  return expect_positionals(split.positional, {});
}

std::string parse_history(const CommandRow&, const std::vector<std::string>& args,
                          Invocation& out) {
  const SplitArgs split = split_args(args, {{"-n", true}});
  if (!split.error.empty()) return split.error;
  if (std::string error = expect_positionals(split.positional, {}); !error.empty()) return error;
  out.request.limit = kDefaultHistoryLimit;
  if (const std::string* n = split.get("-n")) {
    const std::optional<std::uint64_t> limit = parse_whole(*n);
    if (!limit || *limit < 1 || *limit > kMaxHistoryLimit) {
      return "-n needs a whole number from 1 to " + std::to_string(kMaxHistoryLimit) + ", got " +
             in_quotes(*n);
    }
    out.request.limit = static_cast<std::size_t>(*limit);
  }
  return "";
}

std::string parse_apply(const CommandRow&, const std::vector<std::string>& args, Invocation& out) {
  const SplitArgs split = split_args(args, {kForce});
  if (!split.error.empty()) return split.error;
  take_force(split, out);
  if (split.positional.empty()) return "missing FILE (or - for standard input)";
  if (std::string error = expect_positionals(split.positional, {"FILE"}); !error.empty()) {
    return error;
  }
  out.action = Action::apply_batch;
  out.batch_source = split.positional[0];
  return "";
}

// fleet set-weight|set-live|set-passive|flip|apply: the local command's arguments, parsed by its
// own row, plus --if-revision N and --timeout D.
std::string parse_fleet_change(const CommandRow& row, const std::vector<std::string>& args,
                               Invocation& out) {
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "--if-revision" && args[i] != "--timeout") {
      rest.push_back(args[i]);
      continue;
    }
    if (i + 1 >= args.size()) return args[i] + " needs a value";
    const std::string& value = args[++i];
    if (args[i - 1] == "--if-revision") {
      const std::optional<std::uint64_t> revision = parse_whole(value);
      if (!revision || *revision > static_cast<std::uint64_t>(INT64_MAX))
        return "--if-revision needs a whole number, got " + in_quotes(value);
      out.request.if_revision = static_cast<std::int64_t>(*revision);
    } else {
      const std::optional<std::chrono::milliseconds> timeout = parse_timeout(value);
      if (!timeout)
        return "--timeout needs seconds (e.g. 30) or a duration (500ms, 90s, 2m), got " +
               in_quotes(value);
      out.timeout = *timeout;
    }
  }
  const CommandRow* local = find_command(row.words[1]);
  if (std::string error = local->parse(*local, rest, out); !error.empty()) return error;
  if (row.words[1] == "rollout") {
    // proxyctl runs a fleet rollout itself: there is nothing to detach from.
    if (out.action != Action::rollout) return "--detach: a fleet rollout runs in proxyctl itself";
    out.action = Action::fleet_rollout;
    return "";
  }
  if (out.action != Action::apply_batch) out.action = Action::fleet_write;
  return "";
}

std::string parse_forget(const CommandRow&, const std::vector<std::string>& args, Invocation& out) {
  const SplitArgs split = split_args(args, {});
  if (!split.error.empty()) return split.error;
  if (std::string error = expect_positionals(split.positional, {"HOST"}); !error.empty())
    return error;
  out.request.host = split.positional[0];
  return "";
}

// The rows `help WORDS...` names: one exact command, or every row of a group (`help server`).
std::string parse_rollout(const CommandRow&, const std::vector<std::string>& args,
                          Invocation& out) {
  const SplitArgs split = split_args(args, {{"--steps", true},
                                            {"--interval", true},
                                            {"--min-requests", true},
                                            {"--max-error-ratio", true},
                                            {"--max-latency-ratio", true},
                                            {"--then", true},
                                            {"--detach", false}});
  if (!split.error.empty()) return split.error;
  if (std::string error = expect_positionals(split.positional, {"ROUTE"}); !error.empty()) {
    return error;
  }
  out.request.routes = split.positional;
  out.action = split.get("--detach") != nullptr ? Action::send : Action::rollout;
  RolloutPlan plan;
  if (const std::string* steps = split.get("--steps")) {
    std::string error;
    const auto parsed = parse_steps(*steps, error);
    if (!parsed) return "--steps: " + error;
    plan.steps_ppm = *parsed;
  }
  if (const std::string* interval = split.get("--interval")) {
    const auto parsed = parse_duration(*interval);
    if (!parsed || parsed->count() <= 0)
      return "--interval needs a duration such as 30s or 5m, got " + in_quotes(*interval);
    plan.interval_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*parsed).count();
  }
  if (const std::string* min = split.get("--min-requests")) {
    const auto parsed = parse_whole(*min);
    if (!parsed || *parsed > 1'000'000'000)
      return "--min-requests needs a whole number, got " + in_quotes(*min);
    plan.min_requests = static_cast<std::int64_t>(*parsed);
  }
  const auto ratio = [&](const char* name, double& target) -> std::string {
    const std::string* text = split.get(name);
    if (text == nullptr) return "";
    double value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || !std::isfinite(value))
      return std::string(name) + " needs a number, got " + in_quotes(*text);
    target = value;
    return "";
  };
  if (std::string error = ratio("--max-error-ratio", plan.max_error_ratio); !error.empty())
    return error;
  if (std::string error = ratio("--max-latency-ratio", plan.max_latency_ratio); !error.empty())
    return error;
  if (const std::string* then = split.get("--then")) {
    const auto parsed = parse_then(*then);
    if (!parsed) return "--then needs flip or hold, got " + in_quotes(*then);
    plan.then = *parsed;
  }
  if (std::string error = plan_error(plan); !error.empty()) return error;
  out.request.plan = plan;
  return "";
}

std::string parse_one_route(const CommandRow&, const std::vector<std::string>& args,
                            Invocation& out) {
  const SplitArgs split = split_args(args, {});
  if (!split.error.empty()) return split.error;
  if (std::string error = expect_positionals(split.positional, {"ROUTE"}); !error.empty()) {
    return error;
  }
  out.request.routes = split.positional;
  return "";
}

std::vector<const CommandRow*> rows_named(const std::vector<std::string>& words) {
  if (const CommandRow* row = find_command(join(words, " "))) return {row};
  std::vector<const CommandRow*> group;
  if (words.size() == 1) {
    for (const CommandRow& row : command_table()) {
      if (row.words.size() > 1 && row.words[0] == words[0]) group.push_back(&row);
    }
  }
  return group;
}

std::string parse_help(const CommandRow&, const std::vector<std::string>& args, Invocation& out) {
  out.action = Action::help;
  if (args.empty()) return "";
  out.help_rows = rows_named(args);
  if (out.help_rows.empty()) return "unknown command " + in_quotes(join(args, " "));
  return "";
}

std::vector<CommandRow> make_table() {
  std::vector<CommandRow> rows;
  rows.push_back({{"status"},
                  "status [ROUTE...] [--json]",
                  "routes, slots, weights, the generation; health and load",
                  "With ROUTE names, only those routes and the pools they use.\n"
                  "Per server: its STATE, HEALTH (healthy, unhealthy, unchecked, or ejected\n"
                  "until HH:MM:SS UTC), the LAST CHECK's result and SINCE when its health is\n"
                  "what it is (UTC); per pool: CHECKED (has a health block), the requests IN\n"
                  "FLIGHT and the TUNNELS open.\n"
                  "A * marks a value changed at runtime (proxyctl or the state file);\n"
                  "unmarked values come from the config file.",
                  false, false, parse_status, render_status_reply});
  rows.push_back({{"stats"},
                  "stats [ROUTE...] [--window 10s|1m|5m] [--json]",
                  "requests, share, errors and latency per route and slot, over a window",
                  "Over the last 10s, 1m (the default) or 5m, per route and slot (and pool):\n"
                  "the REQUESTS that finished, REQ/S, their SHARE of the route's requests beside\n"
                  "the WEIGHT configured now (live: 100% minus the passive weight), the ERRORS\n"
                  "(status 5xx, proxyd's own 502/503/504 included) and ERROR%, and the P50 and\n"
                  "P99 latency in milliseconds, estimated from the duration histogram (>10000:\n"
                  "beyond its last bucket). A pool a slot left within the window has a row of its\n"
                  "own. proxyd keeps the counts per worker, per second, for 5 minutes.",
                  false, false, parse_stats, render_stats_reply});
  rows.push_back({{"set-weight"},
                  "set-weight ROUTE PERCENT [--force]",
                  "send PERCENT of ROUTE's requests to its passive slot",
                  "PERCENT is a number from 0 to 100 with at most 4 decimals (a resolution of\n"
                  "0.0001%): 0.5, 0.5% and 100 are all valid. With sticky routes, users already\n"
                  "on the passive side stay there as the weight grows.",
                  true, true, parse_set_weight, render_change_reply, true});
  rows.push_back({{"set-live"},
                  "set-live ROUTE POOL [--force]",
                  "bind ROUTE's live slot to POOL",
                  "",
                  true, true, parse_set_slot, render_change_reply, true});
  rows.push_back({{"set-passive"},
                  "set-passive ROUTE POOL [--force]",
                  "bind ROUTE's passive slot to POOL",
                  "",
                  true, true, parse_set_slot, render_change_reply, true});
  rows.push_back({{"flip"},
                  "flip ROUTE... | --all [--force]",
                  "swap live and passive, weight 0, all in one step",
                  "--all flips every route; proxyd reads the list of routes at the moment of\n"
                  "the change, so routes added by a reload a second earlier are included.",
                  true, true, parse_routes_or_all, render_change_reply, true});
  rows.push_back({{"wait-healthy"},
                  "wait-healthy POOL [--min N] [--timeout SECONDS]",
                  "wait until every server of POOL (or N of them) is healthy",
                  "N defaults to every server of the pool and the timeout to 30 seconds;\n"
                  "SECONDS may also be a duration: 500ms, 90s, 2m. Asks proxyd for its status\n"
                  "every half second. A server counts when its active health checks prove it\n"
                  "healthy and it takes traffic: draining, disabled and ejected servers do not.\n"
                  "Exits 0 as soon as N servers count; 1 when the timeout passes, naming each\n"
                  "server that does not count and its last check; 1 at once when the pool has\n"
                  "fewer than N servers or no health block (nothing could prove it healthy).",
                  false, false, parse_wait_healthy, nullptr});
  rows.push_back({{"server", "drain"},
                  "server drain POOL SERVER",
                  "no new requests to SERVER; in-flight ones finish",
                  "SERVER is written as in the config, e.g. 127.0.0.1:9001.",
                  true, true, parse_server, render_change_reply});
  rows.push_back({{"server", "enable"},
                  "server enable POOL SERVER",
                  "put SERVER back into rotation",
                  "SERVER is written as in the config, e.g. 127.0.0.1:9001.",
                  true, true, parse_server, render_change_reply});
  rows.push_back({{"server", "disable"},
                  "server disable POOL SERVER",
                  "take SERVER out of rotation",
                  "SERVER is written as in the config, e.g. 127.0.0.1:9001.",
                  true, true, parse_server, render_change_reply});
  rows.push_back({{"reload"},
                  "reload",
                  "re-read the config file; errors keep the old one",
                  "Errors are printed as FILE:LINE: key: message. Runtime changes (weights,\n"
                  "slots, server states) are kept for routes and pools that still exist and win\n"
                  "over the file until `proxyctl reset`; reload lists those that differ from it.",
                  true, false, parse_no_args, render_reload_reply});
  rows.push_back({{"diff"},
                  "diff [--json]",
                  "runtime values that win over the config file",
                  "Each route value (live, passive, weight) and server state set at runtime\n"
                  "(proxyctl, or the state file after a restart) that differs from the config\n"
                  "file. Such values win over the file, through reloads and restarts, until\n"
                  "`proxyctl reset` drops them.",
                  false, false, parse_no_args, render_diff_reply});
  rows.push_back({{"reset"},
                  "reset ROUTE... | --all [--force]",
                  "drop runtime overrides: the file's values apply",
                  "With ROUTEs, drops their runtime live, passive and weight (a route without\n"
                  "any is fine); --all drops those of every route and every server state set\n"
                  "at runtime. One change: one new generation, on record in history.",
                  true, true, parse_routes_or_all, render_change_reply, true});
  rows.push_back({{"history"},
                  "history [-n N]",
                  "the last N changes in the audit log (default 20)",
                  "Every accepted or refused change, oldest first: when, by whom (the caller's\n"
                  "uid and pid, or `signal` for a reload by SIGHUP), the generation after it,\n"
                  "the result and the command as typed.",
                  false, false, parse_history, render_history_reply});
  rows.push_back({{"apply"},
                  "apply FILE|- [--force]",
                  "apply a batch of changes, all or nothing",
                  "FILE - reads standard input. One command per line, written as on the\n"
                  "command line without `proxyctl`: set-weight, set-live, set-passive, flip,\n"
                  "server drain|enable|disable and reset.\n"
                  "Blank lines and # comments are ignored. All lines become one change: one new\n"
                  "snapshot and one generation, or nothing at all if any line is refused; the\n"
                  "error names the line (apply: FILE line 3: no route named x).",
                  true, false, parse_apply, render_change_reply, true});
  rows.push_back({{"rollout"},
                  "rollout ROUTE [--steps LIST] [--interval D] [--min-requests N] "
                  "[--max-error-ratio R] [--max-latency-ratio R] [--then flip|hold] [--detach]",
                  "run the canary plan on ROUTE inside proxyd; abort on the evidence",
                  "Defaults: --steps 0.5,5,20,50,100 (percent) --interval 5m --min-requests 100\n"
                  "--max-error-ratio 0.01 --max-latency-ratio 1.5 --then flip.\n"
                  "Each step sets the passive weight, then holds for --interval and until the\n"
                  "passive slot served --min-requests in it; the passive pool must be healthy\n"
                  "before each step.\n"
                  "Analysis: twice a second proxyd compares the passive slot with the live slot\n"
                  "over the current step, and aborts (weight 0) as soon as an exact one-sided\n"
                  "binomial test (p < 0.001) shows passive's error ratio above live's by more\n"
                  "than --max-error-ratio, or more than 1% of passive's requests slower than\n"
                  "--max-latency-ratio times live's p99. The test weighs the sample sizes, so a\n"
                  "canary failing every request stops after 2 or 3 of them while a few errors\n"
                  "as frequent as live's never stop it.\n"
                  "After the last step: flip (the default: the passive pool becomes live) or\n"
                  "hold (the weight stays). The plan runs in proxyd: proxyctl follows it and\n"
                  "exits 0 when it completes, 1 when it aborts; --detach returns at once.\n"
                  "While it runs, set-weight, set-live, set-passive, flip and reset of ROUTE\n"
                  "are refused; --force on them aborts the rollout. Sticky users are drawn\n"
                  "anew per rollout, so each release canaries another cohort.",
                  true, false, parse_rollout, render_rollout_reply});
  rows.push_back({{"rollout", "status"},
                  "rollout status [ROUTE...] [--json]",
                  "each route's latest rollout: phase, step, what it waits for, figures",
                  "PHASE is running, paused, aborted or completed; WAITING FOR the time and the\n"
                  "passive requests the step still needs; PASSIVE and LIVE the requests, errors\n"
                  "and p99 of the current step. An aborted rollout says why, with the figures.",
                  false, false, parse_status, render_rollout_status_reply});
  rows.push_back({{"rollout", "pause"},
                  "rollout pause ROUTE",
                  "hold ROUTE's rollout at its step (the analysis goes on)",
                  "The weight stays; the canary is still judged, and aborted on the evidence.",
                  true, false, parse_one_route, render_rollout_reply});
  rows.push_back({{"rollout", "resume"},
                  "rollout resume ROUTE",
                  "go on with a paused rollout: its step starts again",
                  "The step's interval and its passive requests are counted anew. A rollout\n"
                  "that was running when proxyd stopped comes back paused.",
                  true, false, parse_one_route, render_rollout_reply});
  rows.push_back({{"rollout", "abort"},
                  "rollout abort ROUTE",
                  "stop ROUTE's rollout: its weight goes to 0 in one change",
                  "",
                  true, false, parse_one_route, render_rollout_reply});
  // Fleet mode (docs/fleet.md): the same changes, written to the fleet's desired state in etcd.
  constexpr std::string_view kFleetDetails =
      "Written to the fleet's desired state in etcd with a compare-and-swap on its revision\n"
      "(--if-revision N: only if it is still at N), through this proxyd's etcd client; then\n"
      "proxyctl waits until every member reports that it applied the new revision. Exits 0\n"
      "when all have; 4 after --timeout (default 30s), naming the members that have not\n"
      "(the write stays in force: they apply it when they can); 1 when refused.";
  rows.push_back({{"fleet", "status"},
                  "fleet status [--json]",
                  "every fleet member: up or down, applied revision, lag, drift, health",
                  "Read from etcd by this proxyd. LAG is how many revisions of the desired\n"
                  "state a member is behind; DRIFT yes: it made a --local change since.",
                  false, false, parse_no_args, render_fleet_reply});
  rows.push_back({{"fleet", "set-weight"},
                  "fleet set-weight ROUTE PERCENT [--force] [--if-revision N] [--timeout D]",
                  "set ROUTE's passive weight on every fleet member",
                  kFleetDetails, true, false, parse_fleet_change, render_fleet_write_reply, true});
  rows.push_back({{"fleet", "set-live"},
                  "fleet set-live ROUTE POOL [--force] [--if-revision N] [--timeout D]",
                  "bind ROUTE's live slot to POOL on every fleet member",
                  kFleetDetails, true, false, parse_fleet_change, render_fleet_write_reply, true});
  rows.push_back({{"fleet", "set-passive"},
                  "fleet set-passive ROUTE POOL [--force] [--if-revision N] [--timeout D]",
                  "bind ROUTE's passive slot to POOL on every fleet member",
                  kFleetDetails, true, false, parse_fleet_change, render_fleet_write_reply, true});
  rows.push_back({{"fleet", "flip"},
                  "fleet flip ROUTE... | --all [--force] [--if-revision N] [--timeout D]",
                  "flip routes on every fleet member, in one revision",
                  kFleetDetails, true, false, parse_fleet_change, render_fleet_write_reply, true});
  rows.push_back({{"fleet", "apply"},
                  "fleet apply FILE|- [--force] [--if-revision N] [--timeout D]",
                  "a batch of changes as one revision of the fleet's desired state",
                  kFleetDetails, true, false, parse_fleet_change, render_fleet_write_reply, true});
  rows.push_back({{"fleet", "rollout"},
                  "fleet rollout ROUTE [--steps LIST] [--interval D] [--min-requests N] "
                  "[--max-error-ratio R] [--max-latency-ratio R] [--then flip|hold] "
                  "[--if-revision N] [--timeout D]",
                  "run the canary plan on ROUTE fleet-wide, judged on every member's counts",
                  "The plan and its analysis are those of `proxyctl rollout` (same options and\n"
                  "defaults), run by proxyctl itself: each step is written to the desired state\n"
                  "as `fleet set-weight` writes it (the first only at --if-revision N, when\n"
                  "given; each next one only at the revision the previous step made), and its\n"
                  "interval starts once every member reports it applied. Passive is judged\n"
                  "against live on the sum of every member's counts (each member publishes\n"
                  "them in its report), polled twice a second. On the evidence, a step not\n"
                  "applied by every member within --timeout (default 30s), or another change\n"
                  "of the desired state meanwhile, proxyctl writes weight 0 for the fleet\n"
                  "(forced) and exits 1 with the reason; 0 once the last step held and the\n"
                  "flip (or hold) is applied everywhere. Every member must be up to start.\n"
                  "If proxyctl stops, the weight stays at the last step written.",
                  true, false, parse_fleet_change, nullptr});
  rows.push_back({{"fleet", "forget"},
                  "fleet forget HOST",
                  "drop a member that is gone for good: fleet commands stop waiting for it",
                  "A member registers itself when it connects to etcd and stays registered\n"
                  "when it stops (so it shows as down). A running member registers again the\n"
                  "next time it connects to etcd.",
                  true, false, parse_forget, render_forget_reply});
  rows.push_back({{"help"},
                  "help [COMMAND]",
                  "this list, or the details of one command",
                  "",
                  false, false, parse_help, nullptr});
  return rows;
}

std::string batchable_list() {
  std::vector<std::string> names;
  for (const CommandRow& row : command_table()) {
    if (!row.batchable) continue;
    if (row.words.size() > 1 && !names.empty() && names.back().starts_with(row.words[0])) {
      names.back() += "|" + std::string(row.words[1]);
    } else {
      names.push_back(command_name(row));
    }
  }
  return join(names, ", ");
}

// Splits a batch line into words; a word starting with # starts a comment.
std::vector<std::string> batch_words(std::string_view line) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= line.size() || line[i] == '#') break;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    words.emplace_back(line.substr(start, i - start));
  }
  return words;
}

std::string parse_if_generation(const CommandRow& row, const std::optional<std::string>& text,
                                Request& request) {
  if (!text) return "";
  if (!row.mutates) return "--if-generation applies only to commands that change something";
  if (row.words[0] == "fleet") return "fleet commands take --if-revision, not --if-generation";
  const std::optional<std::uint64_t> generation = parse_whole(*text);
  if (!generation) return "--if-generation needs a whole number, got " + in_quotes(*text);
  request.if_generation = generation;
  return "";
}

}  // namespace

std::span<const CommandRow> command_table() {
  static const std::vector<CommandRow> rows = make_table();
  return rows;
}

const CommandRow* find_command(std::string_view name) {
  for (const CommandRow& row : command_table()) {
    if (command_name(row) == name) return &row;
  }
  return nullptr;
}

std::string command_name(const CommandRow& row) {
  std::string out;
  for (const std::string_view word : row.words) {
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

Parsed parse_command_line(const std::vector<std::string>& args,
                          const std::optional<std::string>& if_generation) {
  Parsed out;
  if (args.empty()) {
    out.error = "missing COMMAND";
    return out;
  }
  // The longest row whose words start the arguments ("server drain" before a bare "server").
  const CommandRow* row = nullptr;
  for (const CommandRow& candidate : command_table()) {
    if (candidate.words.size() > args.size()) continue;
    if (!std::equal(candidate.words.begin(), candidate.words.end(), args.begin())) continue;
    if (row == nullptr || candidate.words.size() > row->words.size()) row = &candidate;
  }
  if (row == nullptr) {
    std::vector<const CommandRow*> group = rows_named({args[0]});
    if (group.empty()) {
      out.error = "unknown command " + in_quotes(args[0]);
      return out;
    }
    std::vector<std::string> choices;
    for (const CommandRow* member : group) choices.emplace_back(member->words[1]);
    out.error = args[0] + ": expected " +
                join({choices.begin(), choices.end() - 1}, ", ") + " or " + choices.back();
    if (args.size() > 1) out.error += ", got " + in_quotes(args[1]);
    out.usage_rows = group;
    return out;
  }

  Invocation& invocation = out.invocation;
  invocation.row = row;
  invocation.request.command = command_name(*row);
  const std::vector<std::string> rest(args.begin() + static_cast<long>(row->words.size()),
                                      args.end());
  std::string error = row->parse(*row, rest, invocation);
  if (error.empty()) error = parse_if_generation(*row, if_generation, invocation.request);
  if (!error.empty()) {
    out.error = command_name(*row) + ": " + error;
    out.usage_rows = {row};
    return out;
  }
  invocation.request.text = join(args, " ");
  return out;
}

Parsed parse_batch(std::string_view text, std::string_view source,
                   const std::optional<std::string>& if_generation) {
  Parsed out;
  const CommandRow* apply = find_command("apply");
  out.invocation.row = apply;
  out.invocation.request.command = command_name(*apply);
  std::vector<std::string> lines_done;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    const std::vector<std::string> words = batch_words(line);
    if (words.empty()) continue;

    const std::string where =
        "apply: " + std::string(source) + " line " + std::to_string(line_number) + ": ";
    const Parsed parsed = parse_command_line(words);
    if (!parsed.ok()) {
      out.error = where + parsed.error;
      out.usage_rows = parsed.usage_rows.empty() ? std::vector{apply} : parsed.usage_rows;
      return out;
    }
    const CommandRow& row = *parsed.invocation.row;
    if (parsed.invocation.request.force) {
      out.error = where + "--force applies to the whole batch: proxyctl apply FILE --force";
      out.usage_rows = {apply};
      return out;
    }
    if (!row.batchable) {
      out.error = where + command_name(row) + " cannot be part of a batch (only " +
                  batchable_list() + " can)";
      out.usage_rows = {apply};
      return out;
    }
    for (const Operation& op : parsed.invocation.request.operations) {
      out.invocation.request.operations.push_back(op);
      out.invocation.operation_lines.push_back(line_number);
    }
    lines_done.push_back(join(words, " "));
  }
  if (lines_done.empty()) {
    out.error = "apply: " + std::string(source) + " has no commands";
    out.usage_rows = {apply};
    return out;
  }
  if (std::string error = parse_if_generation(*apply, if_generation, out.invocation.request);
      !error.empty()) {
    out.error = "apply: " + error;
    out.usage_rows = {apply};
    return out;
  }
  out.invocation.request.text = "apply: " + join(lines_done, "; ");
  out.invocation.batch_name = std::string(source);
  return out;
}

std::string error_text(const Invocation& invocation, const Error& error) {
  const auto& lines = invocation.operation_lines;
  if (!error.operation || *error.operation >= lines.size()) return error.message;
  return "apply: " + invocation.batch_name + " line " + std::to_string(lines[*error.operation]) +
         ": " + error.message;
}

std::string usage_message(const Parsed& parsed) {
  std::string out = "proxyctl: " + parsed.error + "\n";
  if (parsed.usage_rows.empty()) {
    return out + "run `proxyctl help` for the list of commands\n";
  }
  for (std::size_t i = 0; i < parsed.usage_rows.size(); ++i) {
    out += (i == 0 ? "usage: proxyctl " : "       proxyctl ") +
           std::string(parsed.usage_rows[i]->usage) + "\n";
  }
  return out;
}

namespace {

// `proxyctl help` fits an 80-column terminal: a usage longer than that goes on over more lines,
// each break before an argument ("[--then flip|hold]" stays whole), the continuation lines lined
// up under the first argument, as in a manual page's synopsis.
constexpr std::size_t kHelpWidth = 80;

std::string wrapped_usage(const CommandRow& row) {
  const std::size_t indent = 2 + command_name(row).size() + 1;
  std::string out = "  ";
  std::size_t column = 2;
  std::size_t depth = 0;  // inside how many [ ]
  std::size_t start = 0;
  const std::string_view usage = row.usage;
  for (std::size_t i = 0; i <= usage.size(); ++i) {
    if (i < usage.size()) {
      if (usage[i] == '[') ++depth;
      if (usage[i] == ']' && depth > 0) --depth;
      if (usage[i] != ' ' || depth > 0) continue;
    }
    const std::string_view word = usage.substr(start, i - start);
    if (start > 0 && column + 1 + word.size() > kHelpWidth && column > indent) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
    } else if (start > 0) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    start = i + 1;
  }
  return out + "\n";
}

}  // namespace

std::string help_text() {
  std::string out =
      "usage: proxyctl [-s PATH] [--json] [--if-generation N] [--local]\n"
      "                COMMAND [ARGS...]\n";
  out += "\ncommands:\n";
  for (const CommandRow& row : command_table()) {
    out += wrapped_usage(row) + "      " + std::string(row.summary) + "\n";
  }
  out +=
      "\noptions:\n"
      "  -s, --socket PATH   the control socket; default: $" +
      std::string(kSocketEnv) + ",\n                      else " +
      std::string(kDefaultSocketPath) +
      "\n"
      "  --json              print proxyd's reply as one line of JSON instead of tables\n"
      "  --if-generation N   with a command that changes something: refuse unless the\n"
      "                      generation is still N (see status)\n"
      "  --local             on a fleet member: make a change (or start a rollout) on\n"
      "                      this host alone, reported as drift until the fleet's next\n"
      "                      revision\n"
      "  -h, --help          this text; `proxyctl help COMMAND` for one command\n"
      "\nenvironment:\n"
      "  PROXYD_SOCKET       the control socket when -s is not given\n"
      "  PROXYCTL_TIMEOUT    seconds to wait for proxyd's reply (default 60)\n"
      "\nexit codes: 0 done, 1 refused (the message says why; nothing changed),\n"
      "            2 usage error, 3 cannot reach proxyd, 4 a fleet change written but\n"
      "            not applied by every member in time (it stays in force)\n";
  return out;
}

// What `help COMMAND` says of every command the gate checks (docs/control-protocol.md, "Gates").
constexpr std::string_view kGateHelp =
    "Refused when a pool would get more of a route's traffic while none of its\n"
    "servers takes traffic, or when a route's weight would grow by more than its\n"
    "max_step. --force goes ahead anyway; the audit log records that it was forced.\n";

std::string help_text(const std::vector<const CommandRow*>& rows) {
  std::string out;
  for (const CommandRow* row : rows) {
    if (!out.empty()) out += "\n";
    out += "usage: proxyctl " + std::string(row->usage) + "\n\n" + std::string(row->summary) +
           "\n";
    if (!row->details.empty()) out += std::string(row->details) + "\n";
    if (row->mutates) {
      out += "Takes --if-generation N: refused unless the generation is still N.\n";
    }
    if (row->gated) out += std::string(kGateHelp);
    if (row->batchable) out += "May be a line of an `apply` batch.\n";
  }
  return out;
}

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    // Empty trailing cells would leave padding behind.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string render_diff(const RuntimeDiff& diff) {
  if (diff.size() == 0) return "no runtime value differs from the file\n";
  std::vector<std::string> tables;
  if (!diff.routes.empty()) {
    std::vector<std::vector<std::string>> rows{{"ROUTE", "KEY", "FILE", "RUNTIME"}};
    for (const RouteDiff& route : diff.routes) {
      const std::string unit = route.key == "weight" ? "%" : "";
      rows.push_back({route.route, route.key, route.file + unit, route.runtime + unit});
    }
    tables.push_back(format_table(rows));
  }
  if (!diff.servers.empty()) {
    std::vector<std::vector<std::string>> rows{{"POOL", "SERVER", "FILE", "RUNTIME"}};
    for (const ServerDiff& server : diff.servers) {
      rows.push_back({server.pool, server.server, std::string(admin_name(server.file)),
                      std::string(admin_name(server.runtime))});
    }
    tables.push_back(format_table(rows));
  }
  return join(tables, "\n") +
         "\nRuntime values win over the file until reset: `proxyctl reset ROUTE...` drops a\n"
         "route's, `proxyctl reset --all` every route's and every server's.\n";
}

std::string render_status(const Status& status) {
  std::string out = "generation " + std::to_string(status.generation);
  if (!status.config_path.empty()) out += " (config " + status.config_path + ")";
  out += "\n";
  // A fleet member: whether etcd is reached, and which revision of the desired state it serves.
  if (const auto& fleet = status.fleet) {
    out += "fleet member " + fleet->host + " of " + fleet->prefix + ": ";
    if (fleet->connected) {
      out += "connected to etcd " + fleet->endpoint + ", revision " +
             std::to_string(fleet->applied_revision) + " applied";
      if (!fleet->error.empty()) out += "; not applied: " + fleet->error;
    } else {
      out += "NOT connected to etcd (" + fleet->error + "); serving revision " +
             std::to_string(fleet->applied_revision) + ", the last applied";
    }
    if (fleet->drift) out += "; drift: changed with --local since";
    out += "\n";
  }
  return out + render_tables(status);
}

std::string render_fleet(const FleetView& view) {
  std::string out = view.desired_revision == 0
                        ? std::string("no desired state written yet\n")
                        : "desired state at revision " + std::to_string(view.desired_revision) + "\n";
  if (view.hosts.empty()) return out + "no members\n";
  std::vector<std::vector<std::string>> rows{
      {"HOST", "STATE", "REVISION", "LAG", "GENERATION", "DRIFT", "POOLS"}};
  std::string errors;
  for (const FleetHost& host : view.hosts) {
    const std::string state = !host.up ? "down" : host.member ? "up" : "up (forgotten)";
    if (!host.up) {
      rows.push_back({host.host, state, "-", "-", "-", "-", "-"});
      continue;
    }
    rows.push_back({host.host, state, std::to_string(host.revision),
                    std::to_string(std::max<std::int64_t>(0, view.desired_revision - host.revision)),
                    std::to_string(host.generation), host.drift ? "yes" : "no",
                    host.pools.empty() ? "-" : host.pools});
    if (!host.error.empty()) errors += host.host + ": " + host.error + "\n";
  }
  out += "\n" + format_table(rows);
  if (!errors.empty()) out += "\n" + errors;
  return out;
}

std::vector<std::string> fleet_laggards(const FleetView& view, std::int64_t revision) {
  std::vector<std::string> out;
  for (const FleetHost& host : view.hosts) {
    if (!host.member) continue;  // forgotten: nobody waits for it
    if (!host.up) {
      out.push_back(host.host + " (down)");
    } else if (host.revision < revision) {
      out.push_back(host.host + " (at revision " + std::to_string(host.revision) +
                    (host.error.empty() ? "" : ": " + host.error) + ")");
    }
  }
  return out;
}

std::string render_history(const json::array& entries) {
  if (entries.empty()) return "no changes recorded\n";
  // A field missing from a record (one from an older proxyd) shows as "-".
  const auto cell = [](const json::object& entry, std::string_view key) -> std::string {
    const json::value* value = entry.if_contains(key);
    if (value == nullptr || value->is_null()) return "-";
    if (value->is_string()) return std::string(value->get_string());
    return json::serialize(*value);
  };
  // "by" is {"uid":..,"pid":..} for the control socket, "signal" for a SIGHUP reload.
  const auto by = [&](const json::object& entry) -> std::string {
    const json::value* value = entry.if_contains("by");
    if (value == nullptr || !value->is_object()) return cell(entry, "by");
    return "uid " + cell(value->get_object(), "uid") + " pid " + cell(value->get_object(), "pid");
  };
  const auto first_line = [](std::string text) {
    if (const std::size_t nl = text.find('\n'); nl != std::string::npos) {
      text = text.substr(0, nl) + " ...";
    }
    return text;
  };
  std::vector<std::vector<std::string>> rows{{"TIME", "BY", "GEN", "RESULT", "COMMAND"}};
  bool any_reason = false;
  for (const json::value& value : entries) {
    if (!value.is_object()) {
      // A line proxyd could not parse as JSON is shown as it is rather than dropped.
      rows.push_back(
          {"-", "-", "-", "-", value.is_string() ? std::string(value.get_string()) : "-"});
      continue;
    }
    const json::object& entry = value.get_object();
    // A change made with --force says so: it went, or may have gone, past the gate.
    const json::value* forced = entry.if_contains("forced");
    const bool was_forced = forced != nullptr && forced->is_bool() && forced->get_bool();
    std::vector<std::string> row{cell(entry, "time"), by(entry), cell(entry, "generation"),
                                 cell(entry, "result") + (was_forced ? " (forced)" : ""),
                                 cell(entry, "command")};
    if (entry.contains("reason")) {
      any_reason = true;
      row.push_back(first_line(cell(entry, "reason")));
    }
    rows.push_back(std::move(row));
  }
  if (any_reason) rows[0].push_back("REASON");
  return format_table(rows);
}

std::optional<std::int64_t> parse_window(std::string_view text) {
  if (text == "10s") return 10;
  if (text == "1m") return 60;
  if (text == "5m") return 300;
  return std::nullopt;
}

namespace {

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

std::string quantile_text(const std::optional<Quantile>& q) {
  if (!q) return "-";
  if (q->over) return ">" + fixed(q->ms, 0);
  return fixed(q->ms, 1);
}

}  // namespace

std::string render_stats(const Stats& stats) {
  std::string out = "window " + window_name(stats.window_seconds) + " (" +
                    std::to_string(stats.window_seconds) + " s)\n";
  std::vector<std::vector<std::string>> rows{{"ROUTE", "SLOT", "POOL", "REQUESTS", "REQ/S", "SHARE",
                                              "WEIGHT", "ERRORS", "ERROR%", "P50 MS", "P99 MS"}};
  const double window = static_cast<double>(std::max<std::int64_t>(stats.window_seconds, 1));
  for (const RouteStats& route : stats.routes) {
    std::int64_t total = 0;
    for (const SlotStats& slot : route.slots) total += slot.requests;
    for (std::size_t i = 0; i < route.slots.size(); ++i) {
      const SlotStats& slot = route.slots[i];
      // The first live and passive rows are the slots' current pools; others are earlier ones.
      std::string weight = "-";
      if (i == 0 && slot.slot == "live") weight = format_percent(kPpmMax - route.weight_ppm) + "%";
      if (i == 1 && slot.slot == "passive") weight = format_percent(route.weight_ppm) + "%";
      rows.push_back(
          {route.name, slot.slot, slot.pool, std::to_string(slot.requests),
           fixed(static_cast<double>(slot.requests) / window, 1),
           total > 0 ? fixed(100.0 * static_cast<double>(slot.requests) /
                                 static_cast<double>(total), 1) + "%"
                     : "-",
           weight, std::to_string(slot.errors),
           slot.requests > 0 ? fixed(100.0 * static_cast<double>(slot.errors) /
                                         static_cast<double>(slot.requests), 2) + "%"
                             : "-",
           quantile_text(slot.p50), quantile_text(slot.p99)});
    }
  }
  return out + format_table(rows);
}

std::string clock_time(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[16];
  std::snprintf(text, sizeof(text), "%02d:%02d:%02d", utc.tm_hour, utc.tm_min, utc.tm_sec);
  return text;
}

std::string health_text(const ServerStatus& server) {
  // Status sets ejected_until only while the ejection lasts.
  if (server.ejected_until != 0) return "ejected until " + clock_time(server.ejected_until);
  return std::string(health_name(server.health));
}

HealthCount count_healthy(const Status& status, std::string_view pool) {
  HealthCount count;
  for (const PoolStatus& p : status.pools) {
    if (p.name != pool) continue;
    count.found = true;
    count.checked = p.checked;
    count.total = p.servers.size();
    for (const ServerStatus& server : p.servers) {
      const bool enabled = server.admin == ServerAdmin::enabled;
      if (enabled && server.health == Health::healthy && server.ejected_until == 0) {
        ++count.healthy;
        continue;
      }
      const std::string state = enabled ? health_text(server) : std::string(admin_name(server.admin));
      count.not_healthy.push_back(
          server.name + " " + state +
          (server.last_check.empty() ? " (no check yet)" : " (last check: " + server.last_check + ")"));
    }
  }
  return count;
}

std::string wait_healthy_met(std::string_view pool, const HealthCount& count, std::uint32_t min) {
  return "pool " + std::string(pool) + ": " + std::to_string(count.healthy) + " of " +
         std::to_string(count.total) + " servers healthy (need " + std::to_string(min) + ")";
}

std::string wait_healthy_timed_out(std::string_view pool, const HealthCount& count,
                                   std::uint32_t min, std::chrono::milliseconds waited) {
  std::string out = "wait-healthy: timed out after " + format_duration(waited) + ": pool " +
                    std::string(pool) + " has " + std::to_string(count.healthy) + " of " +
                    std::to_string(count.total) + " servers healthy, need " + std::to_string(min);
  for (const std::string& line : count.not_healthy) out += "\n  " + line;
  return out;
}

std::string not_checked(std::string_view pool) {
  return "wait-healthy: nothing checks the health of pool " + std::string(pool) +
         " (it has no health block), so no server of it can be proven healthy";
}

std::string unknown_pool(const Status& status, std::string_view pool) {
  std::vector<std::string> names;
  for (const PoolStatus& p : status.pools) names.push_back(p.name);
  return "wait-healthy: unknown pool " + in_quotes(pool) + " (pools: " + join(names, ", ") + ")";
}

std::string too_few_servers(std::string_view pool, const HealthCount& count, std::uint32_t min) {
  return "wait-healthy: pool " + std::string(pool) + " has only " + std::to_string(count.total) +
         (count.total == 1 ? " server" : " servers") + ", fewer than --min " +
         std::to_string(min);
}

std::optional<std::chrono::milliseconds> parse_timeout(std::string_view text) {
  // Plain seconds as the usage line says, or a duration as in the config.
  const bool plain = parse_whole(text).has_value();
  const std::optional<Duration> duration =
      parse_duration(plain ? std::string(text) + "s" : std::string(text));
  if (!duration) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(*duration);
}

namespace {

// A slot's figures as rollout status shows them: "40 req, 0 err, p99 4.9 ms".
std::string figures_cell(const SlotFigures& f) {
  std::string out = std::to_string(f.requests) + " req, " + std::to_string(f.errors) + " err";
  if (f.p99) out += ", p99 " + std::string(f.p99->over ? ">" : "") + fixed(f.p99->ms, 1) + " ms";
  return out;
}

}  // namespace

std::string rollout_step_text(const RolloutStatus& rollout) {
  const std::size_t steps = rollout.plan.steps_ppm.size();
  const std::uint32_t weight =
      rollout.step < steps ? rollout.plan.steps_ppm[rollout.step] : 0;
  return "step " + std::to_string(rollout.step + 1) + " of " + std::to_string(steps) + " (" +
         format_percent(weight) + "%)";
}

std::string render_rollouts(const std::vector<RolloutStatus>& rollouts) {
  if (rollouts.empty()) return "no rollout\n";
  std::vector<std::vector<std::string>> rows{
      {"ROUTE", "PHASE", "STEP", "PASSIVE", "LIVE", "WAITING FOR", "PASSIVE FIGURES", "LIVE FIGURES"}};
  std::string reasons;
  for (const RolloutStatus& r : rollouts) {
    rows.push_back({r.route, std::string(phase_name(r.phase)), rollout_step_text(r), r.passive,
                    r.live, r.phase == RolloutPhase::running && !r.waiting_for.empty() ? r.waiting_for : "-",
                    figures_cell(r.passive_figures), figures_cell(r.live_figures)});
    if (!r.reason.empty()) reasons += r.route + ": " + r.reason + "\n";
  }
  std::string out = format_table(rows);
  if (!reasons.empty()) out += "\n" + reasons;
  return out;
}

std::string rollout_progress_line(const RolloutStatus& rollout) {
  std::string out = rollout.route + " " + rollout_step_text(rollout) + ": ";
  out += rollout.phase == RolloutPhase::running
             ? (rollout.waiting_for.empty() ? std::string("stepping")
                                            : "waiting for " + rollout.waiting_for)
             : std::string(phase_name(rollout.phase));
  return out + "; passive " + figures_cell(rollout.passive_figures) + "; live " +
         figures_cell(rollout.live_figures);
}

std::string rollout_end_line(const RolloutStatus& rollout) {
  std::string out = rollout.route + " " + std::string(phase_name(rollout.phase)) + " at " +
                    rollout_step_text(rollout);
  if (rollout.phase == RolloutPhase::completed) {
    out += rollout.plan.then == RolloutThen::flip ? ": flipped, " + rollout.passive + " is live"
                                                  : ": holding at the last step";
  }
  if (!rollout.reason.empty()) out += ": " + rollout.reason;
  return out;
}

std::optional<std::vector<std::uint32_t>> parse_steps(std::string_view text, std::string& error) {
  std::vector<std::uint32_t> steps;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = text.substr(start, end - start);
    std::string why;
    const auto ppm = parse_percent_ppm(item, &why);
    if (!ppm) {
      error = in_quotes(item) + ": " + why;
      return std::nullopt;
    }
    steps.push_back(*ppm);
    start = end + 1;
  }
  return steps;
}

}  // namespace proxyd::control
