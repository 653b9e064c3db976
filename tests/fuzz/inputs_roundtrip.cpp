#include "tests/fuzz/inputs_roundtrip.hpp"

#include <exception>

#include "control/protocol.hpp"
#include "proxy/config.hpp"
#include "proxy/fleet_desired.hpp"
#include "proxy/state_store.hpp"

namespace proxyd::test {
namespace {

using control::Request;

std::string request_fault(std::string_view text, bool& accepted) {
  const control::DecodedRequest decoded = control::decode_request(text);
  accepted = decoded.request.has_value();
  if (!accepted) return decoded.error.message.empty() ? "refused without a message" : "";
  const std::string again = control::encode_request(*decoded.request);
  const control::DecodedRequest redecoded = control::decode_request(again);
  if (!redecoded.request) return "its own encoding is refused: " + redecoded.error.message;
  if (!(*redecoded.request == *decoded.request)) return "changed when written again: " + again;
  return {};
}

// A document proxyd writes and reads back (the state file, the desired state): decode, then
// encode and decode again, which must give the same value.
template <class T>
std::string document_fault(std::string_view text, bool& accepted,
                           std::optional<T> (*decode)(std::string_view, std::string&),
                           std::string (*encode)(const T&)) {
  std::string error;
  const std::optional<T> value = decode(text, error);
  accepted = value.has_value();
  if (!accepted) return error.empty() ? "refused without a message" : "";
  const std::string again = encode(*value);
  const std::optional<T> reread = decode(again, error);
  if (!reread) return "its own encoding is refused: " + error;
  if (!(*reread == *value)) return "changed when written again: " + again;
  return {};
}

std::string config_fault(std::string_view text, bool& accepted) {
  const ConfigResult result = load_config_text(std::string(text), "fuzz.yaml");
  accepted = result.config.has_value();
  if (accepted != result.errors.empty()) return "a config and errors, or neither";
  for (const ConfigError& e : result.errors)
    if (e.message.empty()) return "an error without a message: " + e.text();
  return {};
}

}  // namespace

std::string input_fault(Input which, std::string_view text, bool* accepted) {
  bool took = false;
  std::string fault;
  try {
    switch (which) {
      case Input::control_request: fault = request_fault(text, took); break;
      case Input::state_file: fault = document_fault(text, took, decode_state, encode_state); break;
      case Input::fleet_desired:
        fault = document_fault(text, took, decode_desired, encode_desired);
        break;
      case Input::config_file: fault = config_fault(text, took); break;
    }
  } catch (const std::exception& e) {
    fault = std::string("threw: ") + e.what();
  } catch (...) {
    fault = "threw";
  }
  if (accepted != nullptr) *accepted = took;
  return fault;
}

std::string input_fault_from_bytes(std::string_view bytes) {
  if (bytes.empty()) return {};
  const Input which = kInputs[static_cast<unsigned char>(bytes.front()) % std::size(kInputs)];
  return input_fault(which, bytes.substr(1));
}

std::vector<std::string> input_seeds(Input which) {
  switch (which) {
    case Input::control_request: {
      std::vector<std::string> seeds;
      Request status;
      status.command = "status";
      status.routes = {"api"};
      seeds.push_back(control::encode_request(status));
      Request weight;
      weight.command = "set-weight";
      Operation set_weight;
      set_weight.route = "api";
      set_weight.weight_ppm = 5000;
      weight.operations.push_back(set_weight);
      weight.if_generation = 12;
      weight.text = "set-weight api 0.5";
      weight.force = true;
      seeds.push_back(control::encode_request(weight));
      Request apply;
      apply.command = "apply";
      Operation live;
      live.kind = Operation::Kind::set_live;
      live.route = "web";
      live.pool = "green";
      Operation drain;
      drain.kind = Operation::Kind::server_admin;
      drain.pool = "blue";
      drain.server = "127.0.0.1:9001";
      drain.admin = ServerAdmin::draining;
      Operation flip_all;
      flip_all.kind = Operation::Kind::flip_all;
      apply.operations = {live, drain, flip_all};
      apply.local = true;
      seeds.push_back(control::encode_request(apply));
      Request rollout;
      rollout.command = "rollout";
      rollout.routes = {"api"};
      rollout.plan = RolloutPlan{};
      rollout.plan->max_error_ratio = 0.005;
      rollout.plan->then = RolloutThen::hold;
      seeds.push_back(control::encode_request(rollout));
      Request stats;
      stats.command = "stats";
      stats.window = 300;
      seeds.push_back(control::encode_request(stats));
      Request history;
      history.command = "history";
      history.limit = 20;
      seeds.push_back(control::encode_request(history));
      Request fleet;
      fleet.command = "fleet forget";
      fleet.host = "web-3";
      fleet.if_revision = 41;
      seeds.push_back(control::encode_request(fleet));
      return seeds;
    }
    case Input::state_file: {
      RuntimeState state;
      state.generation = 9;
      state.routes["api"] = RouteOverride{"green", "blue", 50000};
      state.routes["web"].weight_ppm = 0;
      state.servers[{"blue", "127.0.0.1:9001"}] = ServerAdmin::disabled;
      RolloutStatus r;
      r.route = "api";
      r.live = "blue";
      r.passive = "green";
      r.plan.max_latency_ratio = 1.25;
      r.phase = RolloutPhase::aborted;
      r.step = 2;
      r.started_at = 1764576000000;
      r.step_started_at = 1764576300000;
      r.ended_at = 1764576400000;
      r.salt = 0x9e3779b97f4a7c15ull;
      r.reason = "errors 3.1% against 0.2%";
      r.abort_code = "error_ratio";
      r.live_figures = SlotFigures{1000, 2, Quantile{12.5, false}};
      r.passive_figures = SlotFigures{50, 2, Quantile{10000, true}};
      state.rollouts["api"] = r;
      state.fleet_revision = 42;
      state.fleet_drift = true;
      return {encode_state(state), encode_state(RuntimeState{})};
    }
    case Input::fleet_desired: {
      Desired desired;
      desired.routes["api"] = DesiredRoute{"green", "blue", 5000};
      desired.routes["web"].weight_ppm = 0;
      desired.servers[{"blue", "127.0.0.1:9001"}] = ServerAdmin::draining;
      desired.force = true;
      desired.command = "fleet flip api";
      return {encode_desired(desired), encode_desired(Desired{})};
    }
    case Input::config_file:
      return {
          "workers: 2\n"
          "listeners:\n"
          "  - {name: public, address: 127.0.0.1:8080}\n"
          "  - {name: preview, address: 127.0.0.1:8081, slot: passive, http2: true}\n"
          "admin: {control_socket: /tmp/x.sock, state_file: /tmp/x.json, access_log: 'off'}\n"
          "pools:\n"
          "  blue:\n"
          "    servers: [127.0.0.1:9001]\n"
          "    health: {path: /healthz, interval: 1s, timeout: 500ms, rise: 2, fall: 2}\n"
          "  green: {servers: ['127.0.0.1:9011']}\n"
          "routes:\n"
          "  - name: api\n"
          "    match: {path_prefix: /api/, host: api.example}\n"
          "    live: blue\n"
          "    passive: green\n"
          "    weight: 0.5%\n"
          "    sticky: {cookie: sessionid}\n"
          "  - {name: web, match: {path_prefix: /}, live: blue}\n"
          "timeouts: {client_header: 5s, upstream_response: 30s}\n"
          "limits: {max_header_bytes: 16KiB, max_body_bytes: 100MiB}\n"};
  }
  return {};
}

}  // namespace proxyd::test
