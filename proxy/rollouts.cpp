// Proxy's rollouts: `proxyctl rollout` start, pause, resume and abort, and the thread that runs
// every active rollout's plan (docs/deploy.md, "proxyctl rollout"). A rollout lives in the runtime
// state (durable, audited, restored paused after a restart); its steps, completion and abort are
// changes made through change_locked() like any command's, by the caller "rollout". The judgement
// itself is pure (rollout.hpp); this file counts, decides when to judge, and acts.
#include <chrono>
#include <random>

#include "rollout.hpp"
#include "rollout_json.hpp"
#include "server.hpp"

namespace proxyd {
namespace {

// How often the rollout thread judges and steps. Half a second lets a canary answering 500 be
// stopped within a second of the evidence, for the price of summing a few series.
constexpr auto kRolloutTick = std::chrono::milliseconds(500);

std::string step_text(const RolloutStatus& rollout) {
  return "step " + std::to_string(rollout.step + 1) + " of " +
         std::to_string(rollout.plan.steps_ppm.size()) + " (" +
         format_percent(rollout.plan.steps_ppm[rollout.step]) + "%)";
}

std::string figures_text(const RolloutStatus& rollout) {
  const auto slot = [](const char* name, const SlotFigures& f) {
    return std::string(name) + " " + std::to_string(f.requests) + " requests, " +
           std::to_string(f.errors) + " errors";
  };
  return slot("passive", rollout.passive_figures) + "; " + slot("live", rollout.live_figures);
}

std::string who(const Caller& caller) {
  if (caller.origin == Caller::Origin::control_socket)
    return "uid " + std::to_string(caller.uid) + " (pid " + std::to_string(caller.pid) + ")";
  return caller.origin == Caller::Origin::signal ? "a signal" : "proxyd";
}

Operation weight(const std::string& route, std::uint32_t ppm) {
  Operation op;
  op.kind = Operation::Kind::set_weight;
  op.route = route;
  op.weight_ppm = ppm;
  return op;
}

// A change proxyd makes for a rollout: by "rollout", the command as the audit log shows it.
ChangeRequest rollout_change(std::string command, std::vector<Operation> operations,
                             bool force = false) {
  ChangeRequest request;
  request.caller = Caller::rollout();
  request.command = std::move(command);
  request.operations = std::move(operations);
  request.force = force;
  return request;
}

}  // namespace

WindowCounts Proxy::slot_totals(const std::string& route, SlotName slot,
                                const std::string& pool) const {
  WindowCounts out;
  for (const auto& worker : workers_) {
    worker->metrics().visit(
        [&](const RequestSeries& s) {
          if (s.slot != slot || s.route != route || s.pool != pool) return;
          for (std::size_t code = 0; code < RequestSeries::kCodes; ++code) {
            const std::int64_t n = s.by_code[code].get();
            out.requests += n;
            if (code >= 500) out.errors += n;
          }
          for (std::size_t i = 0; i < out.buckets.size(); ++i) out.buckets[i] += s.buckets[i].get();
        },
        [](const FailureSeries&) {}, [](std::size_t, std::int64_t) {});
  }
  return out;
}

void Proxy::begin_step_locked(const RolloutStatus& rollout, bool new_reference) {
  RolloutProgress& progress = progress_[rollout.route];
  progress.step_start = std::chrono::steady_clock::now();
  progress.live_at_step = slot_totals(rollout.route, SlotName::live, rollout.live);
  progress.passive_at_step = slot_totals(rollout.route, SlotName::passive, rollout.passive);
  if (new_reference) progress.live_at_start = progress.live_at_step;
}

void Proxy::rollout_ended_locked(const std::string& route, const std::string& abort_code) {
  if (!abort_code.empty()) ++rollout_aborts_[{route, abort_code}];
  progress_.erase(route);
}

std::vector<std::string> Proxy::held_routes(const ChangeRequest& request) const {
  std::vector<std::string> held;
  for (const std::string& route : touched_by(*base_, state_, request.operations).routes) {
    const auto it = state_.rollouts.find(route);
    if (it != state_.rollouts.end() && rollout_active(it->second.phase)) held.push_back(route);
  }
  return held;
}

void Proxy::fill_progress_locked(std::vector<RolloutStatus>& rollouts) const {
  const auto now = std::chrono::steady_clock::now();
  for (RolloutStatus& rollout : rollouts) {
    if (rollout.phase != RolloutPhase::running) continue;
    const auto it = progress_.find(rollout.route);
    if (it == progress_.end()) continue;
    rollout.held_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.step_start).count();
    rollout.waiting_for =
        step_wait(rollout.plan, rollout.held_ms, rollout.passive_figures.requests).waiting_for;
  }
}

ChangeResult Proxy::abort_rollout_locked(const std::string& route, const Caller& caller,
                                         const std::string& command, const std::string& code,
                                         const std::string& reason) {
  ChangeRequest request = rollout_change(command, {weight(route, 0)}, true);
  request.caller = caller;
  const RolloutStatus& current = state_.rollouts.at(route);
  const std::string detail = step_text(current) + ": " + reason + "; " + figures_text(current);
  // Forced: going back to live must not wait for live's health (it only gets more of what it
  // already serves), and the audit record says what the gate would have said.
  ChangeResult result = change_locked(
      request,
      [&](RuntimeState& next) -> std::optional<Refusal> {
        next.rollouts.at(route).abort(code, reason, Moment::now().unix_ms);
        return std::nullopt;
      },
      detail);
  if (result.ok) {
    rollout_ended_locked(route, code);
    log_warning("rollout " + route + " aborted: " + reason);
  }
  return result;
}

ChangeResult Proxy::rollout(const RolloutCommand& command) {
  std::lock_guard lock(mutex_);
  if (auto handover = handover_refusal_locked())
    return ChangeResult::refused(std::move(*handover), state_.generation);
  const auto refused = [&](std::string why) {
    ChangeResult result = ChangeResult::refused(std::move(why), state_.generation);
    Touched touched;
    touched.routes.push_back(command.route);
    const Status now = make_status(*store_.load(), state_);
    audit(command.caller, command.command, touched, now, now, result);
    return result;
  };
  const Route* route = store_.load()->find_route(command.route);
  if (route == nullptr) return refused("no route named " + command.route);
  if (command.if_generation && *command.if_generation != state_.generation) {
    return refused("the generation is " + std::to_string(state_.generation) + ", not " +
                   std::to_string(*command.if_generation));
  }
  const auto existing = state_.rollouts.find(command.route);
  const bool active = existing != state_.rollouts.end() && rollout_active(existing->second.phase);
  const auto with_rollout = [&](ChangeResult result) {
    if (const auto it = state_.rollouts.find(command.route); it != state_.rollouts.end()) {
      std::vector<RolloutStatus> one{it->second};
      fill_progress_locked(one);
      result.rollout = std::move(one.front());
    }
    return result;
  };

  switch (command.kind) {
    case RolloutCommand::Kind::start: {
      if (active) {
        return refused("route " + command.route + " already has a rollout " +
                       std::string(phase_name(existing->second.phase)) + " at " +
                       step_text(existing->second) + "; abort it first");
      }
      if (std::string error = plan_error(command.plan); !error.empty()) return refused(error);
      // A fleet member's weights are the fleet's (docs/fleet.md): a rollout here alone is an
      // emergency override like any --local change, and the fleet's next revision ends it.
      if (config_->fleet && !command.local) {
        return refused("this proxyd is fleet member " + config_->fleet->host + " of " +
                       config_->fleet->prefix + ": roll out with proxyctl fleet rollout " +
                       command.route + ", or add --local to roll out on this host alone " +
                       "(reported as drift)");
      }
      const std::shared_ptr<const RoutingSnapshot> snapshot = store_.load();
      const std::string& live = snapshot->pools[route->live_pool].name;
      const std::string& passive = snapshot->pools[route->passive_pool].name;
      if (live == passive) {
        return refused("route " + command.route + " has " + live +
                       " in both slots: bind the new version with proxyctl set-passive first");
      }
      if (route->max_step_ppm) {
        std::uint32_t previous = route->weight_ppm;
        for (const std::uint32_t step : command.plan.steps_ppm) {
          if (step > previous && step - previous > *route->max_step_ppm) {
            return refused("the step to " + format_percent(step) + "% grows the weight by more " +
                           "than route " + command.route + "'s max_step (" +
                           format_percent(*route->max_step_ppm) + "%)");
          }
          previous = step;
        }
      }
      RolloutStatus rollout;
      rollout.route = command.route;
      rollout.live = live;
      rollout.passive = passive;
      rollout.plan = command.plan;
      rollout.started_at = rollout.step_started_at = Moment::now().unix_ms;
      // A fresh salt: this release's canary cohort is drawn anew (split_policy.hpp).
      rollout.salt = std::random_device{}() * 0x1'0000'0000ull ^ std::random_device{}();
      ChangeRequest request;
      request.caller = command.caller;
      request.command = command.command;
      request.operations = {weight(command.route, command.plan.steps_ppm.front())};
      ChangeResult result = change_locked(request, [&](RuntimeState& next) -> std::optional<Refusal> {
        next.rollouts[command.route] = rollout;
        if (config_->fleet) next.fleet_drift = true;
        return std::nullopt;
      });
      if (!result.ok) return result;
      begin_step_locked(rollout, true);
      return with_rollout(std::move(result));
    }
    case RolloutCommand::Kind::pause:
    case RolloutCommand::Kind::resume: {
      const bool pause = command.kind == RolloutCommand::Kind::pause;
      const RolloutPhase from = pause ? RolloutPhase::running : RolloutPhase::paused;
      if (existing == state_.rollouts.end() || existing->second.phase != from) {
        return refused("route " + command.route + " has no " + std::string(phase_name(from)) +
                       " rollout" +
                       (existing == state_.rollouts.end()
                            ? std::string()
                            : " (its latest is " + std::string(phase_name(existing->second.phase)) +
                                  ")"));
      }
      ChangeRequest request;
      request.caller = command.caller;
      request.command = command.command;
      const std::int64_t now_ms = Moment::now().unix_ms;
      ChangeResult result = change_locked(request, [&](RuntimeState& next) -> std::optional<Refusal> {
        RolloutStatus& rollout = next.rollouts.at(command.route);
        rollout.phase = pause ? RolloutPhase::paused : RolloutPhase::running;
        rollout.reason = pause ? "paused by " + who(command.caller) : "";
        if (!pause) rollout.step_started_at = now_ms;
        return std::nullopt;
      });
      if (!result.ok) return result;
      if (!pause) {
        // The step starts again: its interval and its requests are counted from now.
        begin_step_locked(state_.rollouts.at(command.route), true);
      }
      return with_rollout(std::move(result));
    }
    case RolloutCommand::Kind::abort: {
      if (!active) return refused("route " + command.route + " has no rollout running or paused");
      return with_rollout(abort_rollout_locked(command.route, command.caller, command.command,
                                               "operator", "aborted by " + who(command.caller)));
    }
  }
  return refused("unknown rollout command");
}

void Proxy::run_rollouts() {
  std::unique_lock lock(mutex_);
  const auto any_active = [this] {
    for (const auto& [route, rollout] : state_.rollouts)
      if (rollout_active(rollout.phase)) return true;
    return false;
  };
  while (!rollout_stop_) {
    if (!any_active()) {
      // Nothing to tick: no wake-up until a change (publish_locked) or the end. The first tick
      // of a rollout that starts comes a whole kRolloutTick later, as it did before.
      rollout_wake_.wait(lock, [&] { return rollout_stop_ || any_active(); });
      continue;
    }
    rollout_wake_.wait_for(lock, kRolloutTick, [this] { return rollout_stop_; });
    if (rollout_stop_ || draining_.load()) break;
    tick_rollouts_locked();
  }
}

void Proxy::tick_rollouts_locked() {
  if (handover_ != Handover::none) return;  // the new proxyd takes the rollouts over, paused
  const auto now = std::chrono::steady_clock::now();
  // Copied: a step or an abort replaces state_ while this walks it.
  std::vector<std::string> routes;
  for (const auto& [route, rollout] : state_.rollouts)
    if (rollout_active(rollout.phase)) routes.push_back(route);

  for (const std::string& route : routes) {
    auto found = state_.rollouts.find(route);
    if (found == state_.rollouts.end() || !rollout_active(found->second.phase)) continue;
    RolloutStatus& rollout = found->second;
    if (!progress_.count(route)) {  // paused by a restart: count from here on
      begin_step_locked(rollout, true);
    }
    const RolloutProgress& progress = progress_.at(route);
    const auto held =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - progress.step_start).count();
    const StepJudgement judged =
        judge_step({slot_totals(route, SlotName::live, rollout.live), progress.live_at_step,
                    progress.live_at_start, slot_totals(route, SlotName::passive, rollout.passive),
                    progress.passive_at_step},
                   rollout.plan, held);
    rollout.live_figures = judged.live;
    rollout.passive_figures = judged.passive;

    // The canary is judged while paused too: it still serves its share.
    if (judged.verdict.abort) {
      abort_rollout_locked(route, Caller::rollout(), "rollout " + route + ": abort",
                           judged.verdict.code, judged.verdict.reason);
      continue;
    }
    if (rollout.phase != RolloutPhase::running || !judged.wait.done) continue;

    const bool last = rollout.step + 1 == rollout.plan.steps_ppm.size();
    const std::string detail = step_text(rollout) + " held; " + figures_text(rollout);
    if (last) {
      std::vector<Operation> operations;
      if (rollout.plan.then == RolloutThen::flip) {
        Operation flip;
        flip.kind = Operation::Kind::flip;
        flip.route = route;
        operations.push_back(flip);
      }
      const std::size_t step = rollout.step;
      ChangeResult result = change_locked(
          rollout_change("rollout " + route + ": complete, then " +
                             std::string(then_name(rollout.plan.then)),
                         std::move(operations)),
          [&](RuntimeState& next) -> std::optional<Refusal> {
            RolloutStatus& done = next.rollouts.at(route);
            done.phase = RolloutPhase::completed;
            done.ended_at = Moment::now().unix_ms;
            done.reason.clear();
            return std::nullopt;
          },
          detail);
      if (result.ok) {
        rollout_ended_locked(route, "");
      } else {
        abort_rollout_locked(route, Caller::rollout(), "rollout " + route + ": abort", "unhealthy",
                             "completing step " + std::to_string(step + 1) +
                                 " refused: " + result.error);
      }
      continue;
    }

    const std::uint32_t next_weight = rollout.plan.steps_ppm[rollout.step + 1];
    ChangeResult result = change_locked(
        rollout_change("rollout " + route + ": set-weight " + format_percent(next_weight),
                       {weight(route, next_weight)}),
        [&](RuntimeState& next) -> std::optional<Refusal> {
          RolloutStatus& stepped = next.rollouts.at(route);
          ++stepped.step;
          stepped.step_started_at = Moment::now().unix_ms;
          return std::nullopt;
        },
        detail);
    if (result.ok) {
      begin_step_locked(state_.rollouts.at(route));
    } else {
      // The gate refused (the passive pool no longer takes traffic) or the save failed: the plan
      // cannot go on safely, so it goes back to live.
      abort_rollout_locked(route, Caller::rollout(), "rollout " + route + ": abort",
                           "unhealthy", "step " + std::to_string(rollout.step + 2) +
                                            " refused: " + result.error);
    }
  }
}

}  // namespace proxyd
