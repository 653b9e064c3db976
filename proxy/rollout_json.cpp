// A rollout as JSON, for the state file and the control protocol. See rollout_json.hpp.
#include "rollout_json.hpp"

#include <boost/json/array.hpp>

#include "values.hpp"

namespace proxyd {
namespace {

namespace json = boost::json;

// Reads the fields of one object, remembering the first problem; each getter leaves its target
// as it was when the field is missing.
class Reader {
 public:
  Reader(const json::object& object, std::string& error) : object_(object), error_(error) {}

  bool ok() const { return error_.empty(); }

  template <class Int>
  void integer(const char* key, Int& out) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr) return;
    boost::system::error_code ec;
    const auto n = v->is_number() ? v->to_number<Int>(ec) : Int{};
    if (!v->is_number() || ec) return fail(key, "a whole number");
    out = n;
  }
  void number(const char* key, double& out) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr) return;
    boost::system::error_code ec;
    const double n = v->is_number() ? v->to_number<double>(ec) : 0.0;
    if (!v->is_number() || ec) return fail(key, "a number");
    out = n;
  }
  void string(const char* key, std::string& out) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr) return;
    if (!v->is_string()) return fail(key, "a string");
    out = std::string(v->get_string());
  }
  const json::value* find(const char* key) const { return object_.if_contains(key); }
  void fail(const char* key, const char* expected) {
    if (error_.empty()) error_ = std::string(key) + " must be " + expected;
  }

 private:
  const json::object& object_;
  std::string& error_;
};

json::object figures_to_json(const SlotFigures& figures) {
  json::object out{{"requests", figures.requests}, {"errors", figures.errors}};
  if (figures.p99) {
    out["p99_ms"] = figures.p99->ms;
    out["p99_over"] = figures.p99->over;
  } else {
    out["p99_ms"] = nullptr;
  }
  return out;
}

void figures_from_json(Reader& parent, const char* key, SlotFigures& out, std::string& error) {
  const json::value* v = parent.find(key);
  if (v == nullptr) return;
  if (!v->is_object()) return parent.fail(key, "an object");
  Reader r(v->get_object(), error);
  r.integer("requests", out.requests);
  r.integer("errors", out.errors);
  if (const json::value* ms = r.find("p99_ms"); ms != nullptr && !ms->is_null()) {
    Quantile q;
    r.number("p99_ms", q.ms);
    if (const json::value* over = r.find("p99_over"); over != nullptr && over->is_bool())
      q.over = over->get_bool();
    out.p99 = q;
  }
}

}  // namespace

json::object plan_to_json(const RolloutPlan& plan) {
  json::array steps;
  for (const std::uint32_t step : plan.steps_ppm) steps.emplace_back(step);
  return {{"steps_ppm", std::move(steps)},
          {"interval_ms", plan.interval_ms},
          {"min_requests", plan.min_requests},
          {"max_error_ratio", plan.max_error_ratio},
          {"max_latency_ratio", plan.max_latency_ratio},
          {"then", std::string(then_name(plan.then))}};
}

std::optional<RolloutPlan> plan_from_json(const json::value& value, std::string& error) {
  if (!value.is_object()) {
    error = "plan must be an object";
    return std::nullopt;
  }
  RolloutPlan plan;
  Reader r(value.get_object(), error);
  if (const json::value* steps = r.find("steps_ppm"); steps != nullptr) {
    if (!steps->is_array()) {
      r.fail("steps_ppm", "an array");
    } else {
      plan.steps_ppm.clear();
      for (const json::value& step : steps->get_array()) {
        boost::system::error_code ec;
        const auto ppm = step.is_number() ? step.to_number<std::uint32_t>(ec) : 0u;
        if (!step.is_number() || ec) {
          r.fail("steps_ppm", "an array of whole numbers");
          break;
        }
        plan.steps_ppm.push_back(ppm);
      }
    }
  }
  r.integer("interval_ms", plan.interval_ms);
  r.integer("min_requests", plan.min_requests);
  r.number("max_error_ratio", plan.max_error_ratio);
  r.number("max_latency_ratio", plan.max_latency_ratio);
  std::string then(then_name(plan.then));
  r.string("then", then);
  if (const auto parsed = parse_then(then)) {
    plan.then = *parsed;
  } else {
    r.fail("then", "flip or hold");
  }
  if (!r.ok()) return std::nullopt;
  return plan;
}

json::object rollout_to_json(const RolloutStatus& rollout) {
  json::object out{{"route", rollout.route},
                   {"live", rollout.live},
                   {"passive", rollout.passive},
                   {"plan", plan_to_json(rollout.plan)},
                   {"phase", std::string(phase_name(rollout.phase))},
                   {"step", rollout.step},
                   {"started_at_ms", rollout.started_at},
                   {"step_started_at_ms", rollout.step_started_at},
                   {"ended_at_ms", rollout.ended_at},
                   {"salt", rollout.salt},
                   {"reason", rollout.reason},
                   {"abort_code", rollout.abort_code},
                   {"live_figures", figures_to_json(rollout.live_figures)},
                   {"passive_figures", figures_to_json(rollout.passive_figures)}};
  if (rollout.phase == RolloutPhase::running) {
    out["held_ms"] = rollout.held_ms;
    out["waiting_for"] = rollout.waiting_for;
  }
  return out;
}

std::optional<RolloutStatus> rollout_from_json(const json::value& value, std::string& error) {
  if (!value.is_object()) {
    error = "a rollout must be an object";
    return std::nullopt;
  }
  RolloutStatus rollout;
  Reader r(value.get_object(), error);
  r.string("route", rollout.route);
  r.string("live", rollout.live);
  r.string("passive", rollout.passive);
  if (const json::value* plan = r.find("plan"); plan != nullptr) {
    std::string why;
    if (auto parsed = plan_from_json(*plan, why)) {
      rollout.plan = std::move(*parsed);
    } else if (error.empty()) {
      error = "plan: " + why;
    }
  }
  std::string phase(phase_name(rollout.phase));
  r.string("phase", phase);
  if (const auto parsed = parse_phase(phase)) {
    rollout.phase = *parsed;
  } else {
    r.fail("phase", "running, paused, aborted or completed");
  }
  r.integer("step", rollout.step);
  r.integer("started_at_ms", rollout.started_at);
  r.integer("step_started_at_ms", rollout.step_started_at);
  r.integer("ended_at_ms", rollout.ended_at);
  r.integer("salt", rollout.salt);
  r.string("reason", rollout.reason);
  r.string("abort_code", rollout.abort_code);
  figures_from_json(r, "live_figures", rollout.live_figures, error);
  figures_from_json(r, "passive_figures", rollout.passive_figures, error);
  r.integer("held_ms", rollout.held_ms);
  r.string("waiting_for", rollout.waiting_for);
  if (r.ok() && rollout.route.empty()) r.fail("route", "a route name");
  if (r.ok() && rollout.step >= rollout.plan.steps_ppm.size()) r.fail("step", "a step of the plan");
  if (!r.ok()) return std::nullopt;
  // A plan proxyd would not have started (a ratio above 1, steps out of order) is no rollout proxyd
  // wrote: refused as the control socket refuses it.
  if (std::string refused = plan_error(rollout.plan); !refused.empty()) {
    error = "plan: " + refused;
    return std::nullopt;
  }
  return rollout;
}

std::string plan_error(const RolloutPlan& plan) {
  if (plan.steps_ppm.empty()) return "--steps: give at least one step";
  std::uint32_t previous = 0;
  for (const std::uint32_t step : plan.steps_ppm) {
    if (step == 0 || step > kPpmMax) return "--steps: each step is a percentage above 0, up to 100";
    if (step <= previous) return "--steps: steps must increase";
    previous = step;
  }
  if (plan.interval_ms <= 0) return "--interval: must be longer than 0";
  if (plan.min_requests < 0) return "--min-requests: must not be negative";
  if (!(plan.max_error_ratio >= 0 && plan.max_error_ratio < 1))
    return "--max-error-ratio: must be from 0 up to (not including) 1";
  if (!(plan.max_latency_ratio >= 1)) return "--max-latency-ratio: must be at least 1";
  return "";
}

namespace {

json::object slot_counts_to_json(const SlotCounts& slot) {
  json::array buckets;
  for (const std::int64_t n : slot.buckets) buckets.emplace_back(n);
  return json::object{{"pool", slot.pool},
                      {"requests", slot.requests},
                      {"errors", slot.errors},
                      {"buckets", std::move(buckets)}};
}

std::optional<SlotCounts> slot_counts_from_json(const json::value* value) {
  if (value == nullptr || !value->is_object()) return std::nullopt;
  SlotCounts slot;
  std::string error;
  Reader read(value->get_object(), error);
  read.string("pool", slot.pool);
  read.integer("requests", slot.requests);
  read.integer("errors", slot.errors);
  const json::value* buckets = read.find("buckets");
  if (!read.ok() || buckets == nullptr || !buckets->is_array()) return std::nullopt;
  for (const json::value& n : buckets->get_array()) {
    if (!n.is_int64()) return std::nullopt;
    slot.buckets.push_back(n.get_int64());
  }
  return slot;
}

}  // namespace

json::object route_counts_to_json(const std::map<std::string, RouteCounts>& counts) {
  json::object out;
  for (const auto& [route, slots] : counts) {
    out[route] = json::object{{"live", slot_counts_to_json(slots.live)},
                              {"passive", slot_counts_to_json(slots.passive)}};
  }
  return out;
}

std::map<std::string, RouteCounts> route_counts_from_json(const json::value* value) {
  std::map<std::string, RouteCounts> out;
  if (value == nullptr || !value->is_object()) return out;
  for (const auto& [route, slots] : value->get_object()) {
    if (!slots.is_object()) continue;
    std::optional<SlotCounts> live = slot_counts_from_json(slots.get_object().if_contains("live"));
    std::optional<SlotCounts> passive =
        slot_counts_from_json(slots.get_object().if_contains("passive"));
    if (live && passive) out[std::string(route)] = RouteCounts{std::move(*live), std::move(*passive)};
  }
  return out;
}

}  // namespace proxyd
