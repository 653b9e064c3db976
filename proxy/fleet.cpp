// Proxy as a fleet member (docs/fleet.md): the desired state applied as one change through the
// same path as control commands (change_locked: gate, durable save, publish, audit by "fleet"),
// the member's report, and the fleet commands the control socket forwards to the agent.
#include "server.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <map>

#include "rollout_json.hpp"

namespace proxyd {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// How long a control command waits for etcd through the agent: a few calls' deadlines.
constexpr auto kFleetCommandTimeout = 8s;

}  // namespace

void Proxy::start_fleet() {
  FleetAgent::Hooks hooks;
  hooks.apply = [this](const std::string& document, std::int64_t revision) {
    return apply_fleet(document, revision);
  };
  hooks.report = [this] { return fleet_report(); };
  auto agent = std::make_unique<FleetAgent>(*config_->fleet, std::move(hooks));
  {
    // Under the lock: after a takeover this runs while the control socket serves status().
    std::lock_guard lock(mutex_);
    fleet_started_ms_ = Moment::now().unix_ms;
    fleet_ = std::move(agent);
  }
  fleet_->start();
}

std::string Proxy::apply_fleet(const std::string& document, std::int64_t revision) {
  std::lock_guard lock(mutex_);
  // Never back: a watch replaying from an older revision, or a restart, finds it applied.
  if (revision <= state_.fleet_revision) return "";
  const std::string name = "revision " + std::to_string(revision);
  std::string error;
  std::optional<Desired> desired = decode_desired(document, error);
  if (!desired) {
    fleet_error_ = name + ": not a valid desired state: " + error;
    return fleet_error_;
  }
  ChangeRequest request;
  request.operations = desired_operations(*desired);
  request.caller = Caller::fleet();
  request.command = "fleet " + name + (desired->command.empty() ? "" : ": " + desired->command);
  request.force = desired->force;
  // A --local rollout on a route the revision sets ends with it: the fleet's values win, and a
  // next step must not take them back.
  std::vector<std::string> ended = held_routes(request);
  const ChangeResult result = change_locked(request, [&](RuntimeState& next) -> std::optional<Refusal> {
    next.fleet_revision = revision;
    next.fleet_drift = false;  // the fleet's values are in force again
    for (const std::string& route : ended)
      next.rollouts.at(route).abort("fleet", "the fleet applied " + name, Moment::now().unix_ms);
    return std::nullopt;
  });
  if (!result.ok) {
    fleet_error_ = name + ": " + result.error;
    return fleet_error_;
  }
  fleet_error_.clear();
  for (const std::string& route : ended) {
    rollout_ended_locked(route, "fleet");
    log_warning("rollout " + route + " aborted: the fleet applied " + name);
  }
  std::fprintf(stderr, "proxyd: fleet: applied revision %lld (generation %llu)\n",
               static_cast<long long>(revision), static_cast<unsigned long long>(result.generation));
  return "";
}

FleetMember Proxy::fleet_member_locked() const {
  FleetMember member;
  member.host = config_->fleet->host;
  member.prefix = config_->fleet->prefix;
  member.applied_revision = state_.fleet_revision;
  member.drift = state_.fleet_drift;
  if (fleet_) {
    member.connected = fleet_->connected();
    member.endpoint = fleet_->endpoint();
    member.error = fleet_->connected() ? fleet_error_ : fleet_->last_error();
  }
  return member;
}

std::string Proxy::fleet_report() const {
  std::lock_guard lock(mutex_);
  const std::int64_t now_ms = Moment::now().unix_ms;
  const Status status = make_status(*store_.load(), state_);
  std::string pools;
  for (const PoolStatus& pool : status.pools) {
    std::size_t taking = 0;
    for (const ServerStatus& server : pool.servers) taking += takes_traffic(server, now_ms) ? 1 : 0;
    if (!pools.empty()) pools += " ";
    pools += pool.name + " " + std::to_string(taking) + "/" + std::to_string(pool.servers.size());
  }
  // Every route's counts since this proxyd started, per slot: a fleet rollout sums the members'.
  std::map<std::string, RouteCounts> counts;
  for (const RouteStatus& route : status.routes) {
    counts[route.name] = {
        slot_counts(route.live, slot_totals(route.name, SlotName::live, route.live)),
        slot_counts(route.passive, slot_totals(route.name, SlotName::passive, route.passive))};
  }
  return json::serialize(json::object{{"host", config_->fleet->host},
                                      {"revision", state_.fleet_revision},
                                      {"generation", state_.generation},
                                      {"drift", state_.fleet_drift},
                                      {"version", PROXYD_VERSION},
                                      {"pools", pools},
                                      {"error", fleet_error_},
                                      {"started", fleet_started_ms_},
                                      {"counts", route_counts_to_json(counts)}});
}

FleetView Proxy::fleet_view() {
  if (!fleet_) return AdminApi::fleet_view();
  return fleet_->view(kFleetCommandTimeout);
}

FleetWriteResult Proxy::fleet_write(const FleetWrite& write) {
  if (!fleet_) return AdminApi::fleet_write(write);
  // What the fleet has not decided yet is the config file's (shared by the members), never this
  // member's runtime values: a --local change here must not leak into the fleet through a flip.
  const Status local = [&] {
    std::lock_guard lock(mutex_);
    return make_status(*base_, RuntimeState{});
  }();
  return fleet_->write(
      write.if_revision,
      [&](Desired& desired) -> std::optional<std::string> {
        if (auto refused = edit_desired(desired, write.operations, local)) return refused;
        desired.force = write.force;
        desired.command = write.command;
        return std::nullopt;
      },
      kFleetCommandTimeout);
}

FleetWriteResult Proxy::fleet_forget(const std::string& host) {
  if (!fleet_) return AdminApi::fleet_forget(host);
  return fleet_->forget(host, kFleetCommandTimeout);
}

}  // namespace proxyd
