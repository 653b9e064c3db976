// The plain types the control plane and the data plane exchange: runtime operations, the status
// of routes, pools and servers, who asked. No Asio, Beast, yaml-cpp or snapshot here: control/
// and proxyctl compile against this header alone (with values.hpp for the value syntaxes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxyd {

// What an operator decided for one server: in rotation, draining (no new requests) or out.
enum class ServerAdmin : std::uint8_t { enabled, draining, disabled };

// A server's admin state as written in the state file, the protocol and proxyctl's tables.
inline std::string_view admin_name(ServerAdmin admin) {
  switch (admin) {
    case ServerAdmin::enabled:
      return "enabled";
    case ServerAdmin::draining:
      return "draining";
    case ServerAdmin::disabled:
      return "disabled";
  }
  return "enabled";
}

inline std::optional<ServerAdmin> parse_admin(std::string_view name) {
  if (name == "enabled") return ServerAdmin::enabled;
  if (name == "draining") return ServerAdmin::draining;
  if (name == "disabled") return ServerAdmin::disabled;
  return std::nullopt;
}

// What health checks say of a server.
enum class Health : std::uint8_t {
  unchecked,  // its pool has no health block: assumed healthy, never proven so
  healthy,    // passed `rise` checks in a row
  unhealthy,  // failed `fall` checks in a row, or has not passed `rise` since it was added
};

inline std::string_view health_name(Health health) {
  switch (health) {
    case Health::unchecked:
      return "unchecked";
    case Health::healthy:
      return "healthy";
    case Health::unhealthy:
      return "unhealthy";
  }
  return "unchecked";
}

inline std::optional<Health> parse_health(std::string_view name) {
  if (name == "unchecked") return Health::unchecked;
  if (name == "healthy") return Health::healthy;
  if (name == "unhealthy") return Health::unhealthy;
  return std::nullopt;
}

// Who asked: a peer of the control socket (uid, gid and pid from SO_PEERCRED), a signal (SIGHUP),
// which has no peer to name, proxyd's own rollout of a route stepping, completing or aborting, or
// the fleet's desired state (etcd) applied by this member.
struct Caller {
  enum class Origin : std::uint8_t { control_socket, signal, rollout, fleet };
  std::int64_t uid = -1;
  std::int64_t gid = -1;
  std::int64_t pid = -1;
  Origin origin = Origin::control_socket;

  static Caller peer(std::int64_t uid, std::int64_t gid, std::int64_t pid) {
    Caller caller;
    caller.uid = uid;
    caller.gid = gid;
    caller.pid = pid;
    return caller;
  }
  static Caller signal() {
    Caller caller;
    caller.origin = Origin::signal;
    return caller;
  }
  static Caller rollout() {
    Caller caller;
    caller.origin = Origin::rollout;
    return caller;
  }
  static Caller fleet() {
    Caller caller;
    caller.origin = Origin::fleet;
    return caller;
  }
};

// One runtime change. A command is a list of these, applied all or nothing in one snapshot.
// flip_all flips every route of the snapshot being changed: it is resolved under proxyd's change
// lock, so a reload just before it cannot make it miss a route. reset drops a route's runtime
// values (live, passive, weight) so the config file's apply; reset_all drops every route's and
// every server's.
struct Operation {
  enum class Kind {
    set_weight,
    set_live,
    set_passive,
    flip,
    flip_all,
    server_admin,
    reset,
    reset_all,
  };
  Kind kind = Kind::set_weight;
  std::string route;                // set_weight, set_live, set_passive, flip, reset
  std::string pool;                 // set_live, set_passive, server_admin
  std::string server;               // server_admin: as written in the config ("127.0.0.1:9001")
  std::uint32_t weight_ppm = 0;     // set_weight
  ServerAdmin admin = ServerAdmin::enabled;  // server_admin

  bool operator==(const Operation&) const = default;
};

// A server as the control plane names it: its pool and its name as written in the config.
struct ServerRef {
  std::string pool;
  std::string server;

  bool operator==(const ServerRef&) const = default;
};

// The routes and servers a change is about: what its operations name (flip_all: every route), in
// the order first named.
struct Touched {
  std::vector<std::string> routes;
  std::vector<ServerRef> servers;
};

struct ChangeRequest {
  std::vector<Operation> operations;
  std::optional<std::uint64_t> if_generation;  // refuse unless the generation is still this
  Caller caller;
  std::string command;  // the command as the caller wrote it, for the audit log
  // Apply even where the health gate or a route's max_step would refuse; the audit log says so.
  bool force = false;
  // A fleet member refuses local changes unless this is set (an emergency override, reported as
  // drift); meaningless without a fleet section.
  bool local = false;
};

// A latency quantile over a window, estimated from the duration histogram's buckets. `over`: it
// falls beyond the largest bucket (10 s), and `ms` is that bound, a lower bound of the truth.
struct Quantile {
  double ms = 0;
  bool over = false;

  bool operator==(const Quantile&) const = default;
};

// What a rollout does once its last step has held: flip (the passive pool becomes live, weight 0)
// or hold (the weight stays at its last step).
enum class RolloutThen : std::uint8_t { flip, hold };

// `proxyctl rollout`'s options: the canary plan proxyd runs for one route (docs/deploy.md).
struct RolloutPlan {
  std::vector<std::uint32_t> steps_ppm{5'000, 50'000, 200'000, 500'000, 1'000'000};
  std::int64_t interval_ms = 300'000;  // each step holds at least this long
  std::int64_t min_requests = 100;     // and until the passive slot served this many in it
  double max_error_ratio = 0.01;       // tolerated excess of passive's error ratio over live's
  double max_latency_ratio = 1.5;      // tolerated passive p99 as a multiple of live's
  RolloutThen then = RolloutThen::flip;

  bool operator==(const RolloutPlan&) const = default;
};

// Where a rollout is. running and paused are active: they hold the route (manual changes need
// --force); aborted and completed are ended, kept for `rollout status` until the next rollout.
enum class RolloutPhase : std::uint8_t { running, paused, aborted, completed };

inline bool rollout_active(RolloutPhase phase) {
  return phase == RolloutPhase::running || phase == RolloutPhase::paused;
}

inline std::string_view phase_name(RolloutPhase phase) {
  switch (phase) {
    case RolloutPhase::running:
      return "running";
    case RolloutPhase::paused:
      return "paused";
    case RolloutPhase::aborted:
      return "aborted";
    case RolloutPhase::completed:
      return "completed";
  }
  return "running";
}

inline std::optional<RolloutPhase> parse_phase(std::string_view name) {
  for (const RolloutPhase phase : {RolloutPhase::running, RolloutPhase::paused,
                                   RolloutPhase::aborted, RolloutPhase::completed}) {
    if (phase_name(phase) == name) return phase;
  }
  return std::nullopt;
}

inline std::string_view then_name(RolloutThen then) {
  return then == RolloutThen::flip ? "flip" : "hold";
}

inline std::optional<RolloutThen> parse_then(std::string_view name) {
  if (name == "flip") return RolloutThen::flip;
  if (name == "hold") return RolloutThen::hold;
  return std::nullopt;
}

// One slot's requests over a rollout's current step: finished requests, errors among them
// (status >= 500, proxyd's own replies included) and the p99 (none without requests).
struct SlotFigures {
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::optional<Quantile> p99;

  bool operator==(const SlotFigures&) const = default;
};

// A route's rollout: the plan, where it is, and the evidence. The fields down to `passive_figures`
// are durable (the state file); `held_ms` and `waiting_for` are worked out when asked.
// Times are Unix milliseconds.
struct RolloutStatus {
  std::string route;
  std::string live;     // the pools at the start: live keeps serving, passive is the canary
  std::string passive;
  RolloutPlan plan;
  RolloutPhase phase = RolloutPhase::running;
  std::size_t step = 0;  // index into plan.steps_ppm
  std::int64_t started_at = 0;  // also the rollout's identity: proxyctl follows this one
  std::int64_t step_started_at = 0;
  std::int64_t ended_at = 0;
  std::uint64_t salt = 0;  // the sticky cohorts of this release (split_policy.hpp)
  std::string reason;      // aborted: why, with the figures; paused: by whom
  std::string abort_code;  // aborted: error_ratio, latency, unhealthy, manual, operator or fleet
  SlotFigures live_figures;     // the current step's (an ended rollout: its last step's)
  SlotFigures passive_figures;

  std::int64_t held_ms = 0;  // running: how long the current step has held
  std::string waiting_for;   // running: "4m 10s", "87 more requests", "4m 10s and 87 more requests"

  // Ends it as aborted at `now_ms` (Unix milliseconds).
  void abort(std::string code, std::string why, std::int64_t now_ms) {
    phase = RolloutPhase::aborted;
    abort_code = std::move(code);
    reason = std::move(why);
    ended_at = now_ms;
  }

  bool operator==(const RolloutStatus&) const = default;
};

// A route's value set at runtime that differs from the config file's, and so wins over it until
// `proxyctl reset`. `key` is "live", "passive" or "weight"; the values are pool names, or for a
// weight the percentage as status writes it ("0.5").
struct RouteDiff {
  std::string route;
  std::string key;
  std::string file;
  std::string runtime;

  bool operator==(const RouteDiff&) const = default;
};

// A server's admin state set at runtime that differs from the file's (where every server is
// enabled).
struct ServerDiff {
  std::string pool;
  std::string server;
  ServerAdmin file = ServerAdmin::enabled;
  ServerAdmin runtime = ServerAdmin::enabled;

  bool operator==(const ServerDiff&) const = default;
};

// Every runtime value that wins over the config file (`proxyctl diff`, and what a reload reports),
// routes in the file's order, then servers.
struct RuntimeDiff {
  std::uint64_t generation = 0;  // the generation it was read at
  std::vector<RouteDiff> routes;
  std::vector<ServerDiff> servers;

  std::size_t size() const { return routes.size() + servers.size(); }
};

struct ChangeResult {
  bool ok = false;
  std::string error;  // why it was refused (nothing changed)
  std::uint64_t generation = 0;  // the generation after the command (unchanged when refused)
  // apply, refused: the index of the operation to blame, when one is (not for a generation
  // mismatch or a failed save).
  std::optional<std::size_t> failed_operation;
  Touched touched;  // apply: what the operations named, accepted or refused
  RuntimeDiff overrides;  // reload, accepted: the runtime values that still win over the new file
  // Accepted with --force: what the gate would have refused it for ("" when it would not have).
  std::string overridden;
  std::optional<RolloutStatus> rollout;  // rollout commands: the route's rollout after it

  static ChangeResult accepted(std::uint64_t generation) {
    ChangeResult result;
    result.ok = true;
    result.generation = generation;
    return result;
  }
  static ChangeResult refused(std::string error, std::uint64_t generation) {
    ChangeResult result;
    result.error = std::move(error);
    result.generation = generation;
    return result;
  }
};

// Where a value comes from: the config file, or a runtime change (control socket, state file).
enum class Source { config, runtime };

struct RouteStatus {
  std::string name;
  std::string live;
  std::string passive;
  std::uint32_t weight_ppm = 0;
  std::optional<std::uint32_t> max_step_ppm;  // the largest weight increase without --force
  std::string sticky;  // "cookie sessionid", "header X-User-Id", "client_ip", or "" (random)
  Source live_source = Source::config;
  Source passive_source = Source::config;
  Source weight_source = Source::config;
};

// Times are Unix milliseconds (0: none), so a status read by another process means the same.
struct ServerStatus {
  std::string name;
  ServerAdmin admin = ServerAdmin::enabled;
  Source admin_source = Source::config;
  Health health = Health::unchecked;
  std::int64_t health_since = 0;  // when `health` last changed (0: it has not since start)
  std::string last_check;         // the last active check: "200", "503", "timeout", ...
  std::int64_t last_check_at = 0;
  std::int64_t ejected_until = 0;  // passive checks keep it out until then (0: not ejected)
  std::int64_t in_flight = 0;      // requests on their way to it now, every worker
  std::int64_t tunnels = 0;        // upgraded connections (WebSocket) open to it
};

// Whether a server takes new requests at `now_ms`: enabled, not failing its checks, not ejected.
inline bool takes_traffic(const ServerStatus& server, std::int64_t now_ms) {
  return server.admin == ServerAdmin::enabled && server.health != Health::unhealthy &&
         server.ejected_until <= now_ms;
}

struct PoolStatus {
  std::string name;
  bool checked = false;    // has a health block: its servers' health is proven, not assumed
  bool fail_open = false;  // with no healthy server, sends to all its servers anyway
  std::vector<ServerStatus> servers;
};

// This proxyd as a fleet member (docs/fleet.md), for status and metrics.
struct FleetMember {
  std::string host;
  std::string prefix;
  bool connected = false;          // etcd answered the last call and the watch is running
  std::string endpoint;            // the etcd endpoint in use ("127.0.0.1:2379")
  std::int64_t applied_revision = 0;
  bool drift = false;              // a --local change since the last applied revision
  std::string error;               // why the last revision was not applied, or why etcd is not reached
};

// One member as `proxyctl fleet status` shows it: registered (members/) and, while up, reporting
// (hosts/; the fields below `up` come from its report).
// A slot's requests since a member's proxyd started, as its report publishes them for a fleet
// rollout (docs/fleet.md): cumulative, so a reader takes differences.
struct SlotCounts {
  std::string pool;
  std::int64_t requests = 0;
  std::int64_t errors = 0;  // 5xx
  std::vector<std::int64_t> buckets;  // per duration bucket (proxyd_request_duration_seconds's)

  bool operator==(const SlotCounts&) const = default;
};
struct RouteCounts {
  SlotCounts live;
  SlotCounts passive;

  bool operator==(const RouteCounts&) const = default;
};

struct FleetHost {
  std::string host;
  bool member = false;  // registered; false: it reports but was forgotten
  bool up = false;      // its report is there: it is running and reaches etcd
  std::int64_t revision = 0;
  std::uint64_t generation = 0;
  bool drift = false;
  std::string version;
  std::string error;
  std::string pools;  // "blue 2/2 green 1/2": servers taking traffic of each pool
  std::int64_t started_ms = 0;  // when its proxyd started: its counts are since then
  std::map<std::string, RouteCounts> counts;  // per route
};

struct FleetView {
  std::string error;                 // etcd could not be read
  std::int64_t desired_revision = 0;  // 0: nothing written yet
  std::string desired;               // the document as stored
  std::vector<FleetHost> hosts;       // by name
};

struct FleetWriteResult {
  std::string error;           // refused (nothing written) or etcd failed
  std::int64_t revision = 0;   // written: the desired state's new revision
};

// A `proxyctl fleet set-weight|set-live|set-passive|flip|apply|server ...`: the operations, as a
// local command would carry them, to be written into the fleet's desired state.
struct FleetWrite {
  std::vector<Operation> operations;
  std::optional<std::int64_t> if_revision;  // refuse unless the desired state is at this revision
  bool force = false;  // members apply it even where their change gate would refuse
  Caller caller;
  std::string command;  // as typed, stored with the desired state
};

struct Status {
  std::uint64_t generation = 0;
  std::string config_path;
  std::vector<RouteStatus> routes;
  std::vector<PoolStatus> pools;
  std::vector<RolloutStatus> rollouts;  // every route's latest, in route order
  std::optional<FleetMember> fleet;     // set on a fleet member
};

// A rollout command: start one on `route` with `plan`, or pause, resume or abort the running one.
struct RolloutCommand {
  enum class Kind : std::uint8_t { start, pause, resume, abort };
  Kind kind = Kind::start;
  std::string route;
  RolloutPlan plan;  // start
  std::optional<std::uint64_t> if_generation;  // refuse unless the generation is still this
  bool local = false;  // start, on a fleet member: this host alone (reported as drift)
  Caller caller;
  std::string command;  // as typed, for the audit log
};

// One slot and pool of a route over the window (`proxyctl stats`): the requests that finished in
// it, the errors among them (status >= 500, proxyd's own 5xx replies included) and their latency
// (none without requests).
struct SlotStats {
  std::string slot;  // "live" or "passive"
  std::string pool;
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::optional<Quantile> p50;
  std::optional<Quantile> p99;

  bool operator==(const SlotStats&) const = default;
};

// A route over the window: its configured weight now, and a row for its live and its passive slot
// (their current pools), then one per other slot and pool that had requests in the window (a pool
// the slot was bound to before a change).
struct RouteStats {
  std::string name;
  std::uint32_t weight_ppm = 0;
  std::vector<SlotStats> slots;

  bool operator==(const RouteStats&) const = default;
};

struct Stats {
  std::uint64_t generation = 0;
  std::int64_t window_seconds = 60;
  std::vector<RouteStats> routes;

  bool operator==(const Stats&) const = default;
};

// The windows proxyd keeps, in seconds: 10 s, 1 m and 5 m.
inline constexpr std::int64_t kStatsWindows[] = {10, 60, 300};
inline constexpr std::int64_t kDefaultStatsWindow = 60;

}  // namespace proxyd
