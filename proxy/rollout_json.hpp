// A rollout's plan rules, and a rollout as JSON: the same object in the state file (admin.state_file) and in the control
// protocol's `rollout status` and `status` results (docs/control-protocol.md), so a rollout read
// back after a restart is the one proxyctl showed. Boost.JSON and plain types only: both proxyd's
// state store and the control plane (which sees proxy/ only through admin_types.hpp) link it.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <map>
#include <optional>
#include <string>

#include "admin_types.hpp"

namespace proxyd {

// Every field; `held_ms` and `waiting_for` only while running (they are worked out when asked).
boost::json::object rollout_to_json(const RolloutStatus& rollout);

// Strict: a field of the wrong type or an unknown phase is an error naming it. Missing optional
// fields keep their defaults (an older file, a newer proxyd).
std::optional<RolloutStatus> rollout_from_json(const boost::json::value& value, std::string& error);

// A plan's problems, or "": steps strictly increasing in (0, 100%], at least one; a positive
// interval; min_requests >= 0; max_error_ratio in [0, 1); max_latency_ratio >= 1. proxyctl checks
// before sending, proxyd again on receipt.
std::string plan_error(const RolloutPlan& plan);

boost::json::object plan_to_json(const RolloutPlan& plan);
std::optional<RolloutPlan> plan_from_json(const boost::json::value& value, std::string& error);

// A fleet member's per-route counts (FleetHost::counts) as its report and `fleet status` carry
// them: {"api": {"live": {"pool", "requests", "errors", "buckets": [...]}, "passive": {...}}}.
boost::json::object route_counts_to_json(const std::map<std::string, RouteCounts>& counts);
// Lenient, as reports are read: an entry that is not the shape above is left out.
std::map<std::string, RouteCounts> route_counts_from_json(const boost::json::value* value);

}  // namespace proxyd
