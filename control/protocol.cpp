// Encoding and decoding of control protocol lines (docs/control-protocol.md). The server is strict
// about requests (an unknown field is an error, as in the config: typos must not pass); proxyctl
// is lenient about responses (unknown fields are ignored) so an older proxyctl still works against
// a newer proxyd. Nothing here throws on any input.
#include "control/protocol.hpp"

#include "proxy/json_parse.hpp"
#include "proxy/rollout_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <limits>
#include <set>
#include <utility>

namespace proxyd::control {

namespace json = boost::json;

namespace {

constexpr std::array<std::pair<ErrorKind, std::string_view>, 8> kErrorKinds{{
    {ErrorKind::refused, "refused"},
    {ErrorKind::bad_request, "bad_request"},
    {ErrorKind::unsupported_version, "unsupported_version"},
    {ErrorKind::forbidden, "forbidden"},
    {ErrorKind::too_large, "too_large"},
    {ErrorKind::timeout, "timeout"},
    {ErrorKind::busy, "busy"},
    {ErrorKind::internal, "internal"},
}};

constexpr std::array<std::pair<Operation::Kind, std::string_view>, 8> kOpNames{{
    {Operation::Kind::set_weight, "set_weight"},
    {Operation::Kind::set_live, "set_live"},
    {Operation::Kind::set_passive, "set_passive"},
    {Operation::Kind::flip, "flip"},
    {Operation::Kind::flip_all, "flip_all"},
    {Operation::Kind::server_admin, "server_admin"},
    {Operation::Kind::reset, "reset"},
    {Operation::Kind::reset_all, "reset_all"},
}};

std::string_view op_name(Operation::Kind kind) {
  for (const auto& [k, name] : kOpNames) {
    if (k == kind) return name;
  }
  return "?";
}

// The fields each op carries besides "op"; all of them are required.
std::vector<std::string_view> op_fields(Operation::Kind kind) {
  switch (kind) {
    case Operation::Kind::set_weight: return {"route", "weight_ppm"};
    case Operation::Kind::set_live:
    case Operation::Kind::set_passive: return {"route", "pool"};
    case Operation::Kind::flip:
    case Operation::Kind::reset: return {"route"};
    case Operation::Kind::flip_all:
    case Operation::Kind::reset_all: return {};
    case Operation::Kind::server_admin: return {"pool", "server", "admin"};
  }
  return {};
}

// An integer JSON number that fits in uint64 (5000.0 or -1 is not one).
std::optional<std::uint64_t> as_uint(const json::value& value) {
  if (value.is_uint64()) return value.get_uint64();
  if (value.is_int64() && value.get_int64() >= 0) {
    return static_cast<std::uint64_t>(value.get_int64());
  }
  return std::nullopt;
}

// A SAX handler that builds nothing and remembers each open object's keys, to find the first key
// that appears twice in one object, at any depth. Boost.JSON's DOM parser (1.81) keeps the last
// of two equal keys without a word and has no option to refuse them; a request such as
// "weight_ppm":1,"weight_ppm":999999 must not mean whichever came last.
class DuplicateKeyFinder {
 public:
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();

  // The first duplicate key found, once the parser stopped on it.
  const std::optional<std::string>& duplicate() const { return duplicate_; }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    objects_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    objects_.pop_back();
    return true;
  }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(json::string_view part, std::size_t, boost::system::error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(json::string_view part, std::size_t, boost::system::error_code& ec) {
    key_.append(part.data(), part.size());
    if (!objects_.back().insert(key_).second) {
      duplicate_ = std::move(key_);
      ec = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
      return false;
    }
    key_.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  std::vector<std::set<std::string>> objects_;  // the keys of each open object, innermost last
  std::string key_;                             // the key being read, in parts
  std::optional<std::string> duplicate_;
};

// The first key that appears twice in one object of `text`. Invalid JSON is left to json::parse,
// which says what is wrong with it.
std::optional<std::string> first_duplicate_key(std::string_view text) {
  json::basic_parser<DuplicateKeyFinder> parser{json::parse_options{}};
  boost::system::error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  return parser.handler().duplicate();
}

Error bad(std::string message) {
  return Error{ErrorKind::bad_request, std::move(message), std::nullopt};
}

// Decodes operations[index]; on failure sets `error` (prefixed with the index) and returns nullopt.
std::optional<Operation> decode_operation(const json::value& value, std::size_t index,
                                              std::string& error) {
  const std::string where = "operations[" + std::to_string(index) + "]: ";
  if (!value.is_object()) {
    error = where + "an operation must be a JSON object";
    return std::nullopt;
  }
  const json::object& object = value.get_object();
  const json::value* op = object.if_contains("op");
  if (op == nullptr || !op->is_string()) {
    error = where + "missing \"op\" (a string such as \"set_weight\")";
    return std::nullopt;
  }
  const std::string_view name = op->get_string();
  const auto known = std::find_if(kOpNames.begin(), kOpNames.end(),
                                  [&](const auto& entry) { return entry.second == name; });
  if (known == kOpNames.end()) {
    error = where + "unknown op " + in_quotes(name);
    return std::nullopt;
  }
  Operation result;
  result.kind = known->first;
  const std::vector<std::string_view> fields = op_fields(result.kind);
  for (const auto& entry : object) {
    if (entry.key() == "op") continue;
    if (std::find(fields.begin(), fields.end(), entry.key()) == fields.end()) {
      error = where + "unexpected field " + in_quotes(entry.key()) + " for op " + std::string(name);
      return std::nullopt;
    }
  }
  for (const std::string_view field : fields) {
    const json::value* v = object.if_contains(field);
    if (v == nullptr) {
      error = where + "missing " + in_quotes(field) + " for op " + std::string(name);
      return std::nullopt;
    }
    if (field == "weight_ppm") {
      const std::optional<std::uint64_t> ppm = as_uint(*v);
      if (!ppm || *ppm > kPpmMax) {
        error = where + "\"weight_ppm\" must be an integer from 0 to 1000000";
        return std::nullopt;
      }
      result.weight_ppm = static_cast<std::uint32_t>(*ppm);
      continue;
    }
    if (!v->is_string()) {
      error = where + in_quotes(field) + " must be a string";
      return std::nullopt;
    }
    const std::string text(v->get_string());
    if (field == "route") {
      result.route = text;
    } else if (field == "pool") {
      result.pool = text;
    } else if (field == "server") {
      result.server = text;
    } else if (field == "admin") {
      const std::optional<ServerAdmin> admin = parse_admin(text);
      if (!admin) {
        error = where + "\"admin\" must be \"enabled\", \"draining\" or \"disabled\"";
        return std::nullopt;
      }
      result.admin = *admin;
    }
  }
  return result;
}

std::optional<std::string> string_field(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

std::string string_or(const json::object& object, std::string_view key, std::string fallback) {
  return string_field(object, key).value_or(std::move(fallback));
}

std::int64_t int_or(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_int64() ? v->get_int64() : 0;
}

bool bool_or(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

// The objects of the array `key` of `object` (other elements skipped; none when it is missing).
std::vector<const json::object*> objects_in(const json::object& object, std::string_view key) {
  std::vector<const json::object*> out;
  if (const json::value* array = object.if_contains(key); array && array->is_array()) {
    for (const json::value& value : array->get_array())
      if (value.is_object()) out.push_back(&value.get_object());
  }
  return out;
}

// A ppm value, clamped to kPpmMax (0 when missing or not an integer).
std::uint32_t ppm_or(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  if (v == nullptr) return 0;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(as_uint(*v).value_or(0), kPpmMax));
}

Source source_from(const json::object& object, std::string_view key) {
  return string_or(object, key, "config") == "runtime" ? Source::runtime : Source::config;
}

}  // namespace

std::string_view to_string(ErrorKind kind) {
  for (const auto& [k, name] : kErrorKinds) {
    if (k == kind) return name;
  }
  return "internal";
}

std::optional<ErrorKind> error_kind_from_string(std::string_view text) {
  for (const auto& [kind, name] : kErrorKinds) {
    if (name == text) return kind;
  }
  return std::nullopt;
}

std::string_view to_string(Source source) {
  return source == Source::runtime ? "runtime" : "config";
}

json::value to_json(const Operation& op) {
  json::object out;
  out["op"] = op_name(op.kind);
  for (const std::string_view field : op_fields(op.kind)) {
    if (field == "route") out["route"] = op.route;
    if (field == "pool") out["pool"] = op.pool;
    if (field == "server") out["server"] = op.server;
    if (field == "weight_ppm") out["weight_ppm"] = op.weight_ppm;
    if (field == "admin") out["admin"] = admin_name(op.admin);
  }
  return out;
}

DecodedRequest decode_request(std::string_view line) {
  DecodedRequest out;
  boost::system::error_code ec;
  const json::value parsed = parse_json(line, ec);
  if (ec) {
    out.error = bad("the request is not valid JSON: " + ec.message());
    return out;
  }
  if (!parsed.is_object()) {
    out.error = bad("a request must be a JSON object");
    return out;
  }
  if (const std::optional<std::string> key = first_duplicate_key(line)) {
    out.error = bad("duplicate key " + in_quotes(*key) + " (a key may appear once in an object)");
    return out;
  }
  const json::object& object = parsed.get_object();

  // The version first: a request of another version may well carry fields this one does not know.
  const json::value* version = object.if_contains("v");
  if (version == nullptr) {
    out.error = bad("missing \"v\" (the protocol version; this proxyd speaks 1)");
    return out;
  }
  if (!version->is_int64() && !version->is_uint64()) {
    out.error = bad("\"v\" must be an integer");
    return out;
  }
  if (!version->is_int64() || version->get_int64() != kProtocolVersion) {
    out.error = Error{ErrorKind::unsupported_version,
                      "protocol version " + json::serialize(*version) +
                          " is not supported; this proxyd speaks version 1",
                      std::nullopt};
    return out;
  }

  Request request;
  bool has_command = false;
  for (const auto& entry : object) {
    const std::string_view key = entry.key();
    const json::value& value = entry.value();
    if (key == "v") continue;
    if (key == "command") {
      if (!value.is_string() || value.get_string().empty()) {
        out.error = bad("\"command\" must be a non-empty string");
        return out;
      }
      request.command = std::string(value.get_string());
      has_command = true;
    } else if (key == "text") {
      if (!value.is_string()) {
        out.error = bad("\"text\" must be a string");
        return out;
      }
      request.text = std::string(value.get_string());
    } else if (key == "if_generation") {
      const std::optional<std::uint64_t> generation = as_uint(value);
      if (!generation) {
        out.error = bad("\"if_generation\" must be a non-negative integer");
        return out;
      }
      request.if_generation = generation;
    } else if (key == "limit") {
      const std::optional<std::uint64_t> limit = as_uint(value);
      if (!limit || *limit < 1 || *limit > kMaxHistoryLimit) {
        out.error = bad("\"limit\" must be an integer from 1 to " +
                        std::to_string(kMaxHistoryLimit));
        return out;
      }
      request.limit = static_cast<std::size_t>(*limit);
    } else if (key == "window") {
      const std::optional<std::uint64_t> seconds = as_uint(value);
      if (!seconds || std::find(std::begin(kStatsWindows), std::end(kStatsWindows),
                                static_cast<std::int64_t>(*seconds)) == std::end(kStatsWindows)) {
        out.error = bad("\"window\" must be 10, 60 or 300 (seconds)");
        return out;
      }
      request.window = static_cast<std::int64_t>(*seconds);
    } else if (key == "force") {
      if (!value.is_bool()) {
        out.error = bad("\"force\" must be true or false");
        return out;
      }
      request.force = value.get_bool();
    } else if (key == "local") {
      if (!value.is_bool()) {
        out.error = bad("\"local\" must be true or false");
        return out;
      }
      request.local = value.get_bool();
    } else if (key == "if_revision") {
      const std::optional<std::uint64_t> revision = as_uint(value);
      if (!revision || *revision > static_cast<std::uint64_t>(INT64_MAX)) {
        out.error = bad("\"if_revision\" must be a non-negative integer");
        return out;
      }
      request.if_revision = static_cast<std::int64_t>(*revision);
    } else if (key == "host") {
      if (!value.is_string() || value.get_string().empty()) {
        out.error = bad("\"host\" must be a non-empty string");
        return out;
      }
      request.host = std::string(value.get_string());
    } else if (key == "plan") {
      std::string why;
      request.plan = plan_from_json(value, why);
      if (!request.plan) {
        out.error = bad("\"plan\": " + why);
        return out;
      }
    } else if (key == "routes") {
      if (!value.is_array()) {
        out.error = bad("\"routes\" must be an array of route names");
        return out;
      }
      for (const json::value& route : value.get_array()) {
        if (!route.is_string()) {
          out.error = bad("\"routes\" must be an array of route names");
          return out;
        }
        request.routes.emplace_back(route.get_string());
      }
    } else if (key == "operations") {
      if (!value.is_array()) {
        out.error = bad("\"operations\" must be an array");
        return out;
      }
      const json::array& operations = value.get_array();
      for (std::size_t i = 0; i < operations.size(); ++i) {
        std::string why;
        std::optional<Operation> op = decode_operation(operations[i], i, why);
        if (!op) {
          out.error = bad(std::move(why));
          return out;
        }
        request.operations.push_back(std::move(*op));
      }
    } else {
      out.error = bad("unknown field " + in_quotes(key));
      return out;
    }
  }
  if (!has_command) {
    out.error = bad("missing \"command\"");
    return out;
  }
  out.request = std::move(request);
  return out;
}

std::string encode_request(const Request& request) {
  json::object out;
  out["v"] = kProtocolVersion;
  out["command"] = request.command;
  if (!request.operations.empty()) {
    json::array operations;
    for (const Operation& op : request.operations) operations.push_back(to_json(op));
    out["operations"] = std::move(operations);
  }
  if (request.if_generation) out["if_generation"] = *request.if_generation;
  if (!request.routes.empty()) {
    json::array routes;
    for (const std::string& route : request.routes) routes.emplace_back(route);
    out["routes"] = std::move(routes);
  }
  if (request.limit) out["limit"] = *request.limit;
  if (request.window) out["window"] = *request.window;
  if (request.force) out["force"] = true;
  if (request.plan) out["plan"] = plan_to_json(*request.plan);
  if (request.local) out["local"] = true;
  if (request.if_revision) out["if_revision"] = *request.if_revision;
  if (!request.host.empty()) out["host"] = request.host;
  if (!request.text.empty()) out["text"] = request.text;
  return json::serialize(out);
}

DecodedResponse decode_response(std::string_view line) {
  DecodedResponse out;
  boost::system::error_code ec;
  const json::value parsed = parse_json(line, ec);
  if (ec) {
    out.error = "not JSON (" + ec.message() + ")";
    return out;
  }
  if (!parsed.is_object()) {
    out.error = "not a JSON object";
    return out;
  }
  const json::object& object = parsed.get_object();
  const json::value* version = object.if_contains("v");
  if (version == nullptr || !version->is_int64() || version->get_int64() != kProtocolVersion) {
    out.error = "not a protocol version 1 reply";
    return out;
  }
  const json::value* ok = object.if_contains("ok");
  if (ok == nullptr || !ok->is_bool()) {
    out.error = "no \"ok\" field";
    return out;
  }
  Response response;
  response.ok = ok->get_bool();
  if (const json::value* generation = object.if_contains("generation")) {
    response.generation = as_uint(*generation);
  }
  if (response.ok) {
    if (const json::value* result = object.if_contains("result"); result && result->is_object()) {
      response.result = result->get_object();
    }
  } else {
    const json::value* error = object.if_contains("error");
    if (error == nullptr || !error->is_object()) {
      out.error = "a failed reply without an \"error\" object";
      return out;
    }
    const std::string kind = string_or(error->get_object(), "kind", "");
    // A kind this proxyctl does not know yet (a newer proxyd) still reads as a refusal.
    response.error.kind = error_kind_from_string(kind).value_or(ErrorKind::refused);
    response.error.message = string_or(error->get_object(), "message", kind);
    if (const json::value* operation = error->get_object().if_contains("operation")) {
      if (const std::optional<std::uint64_t> index = as_uint(*operation)) {
        response.error.operation = static_cast<std::size_t>(*index);
      }
    }
  }
  out.response = std::move(response);
  return out;
}

std::string encode_response(const Response& response) {
  json::object out;
  out["v"] = kProtocolVersion;
  out["ok"] = response.ok;
  if (response.generation) out["generation"] = *response.generation;
  if (response.ok) {
    out["result"] = response.result;
  } else {
    json::object error;
    error["kind"] = to_string(response.error.kind);
    error["message"] = response.error.message;
    if (response.error.operation) error["operation"] = *response.error.operation;
    out["error"] = std::move(error);
  }
  return json::serialize(out);
}

Response ok_response(std::optional<std::uint64_t> generation, json::object result) {
  Response response;
  response.ok = true;
  response.generation = generation;
  response.result = std::move(result);
  return response;
}

Response error_response(ErrorKind kind, std::string message,
                        std::optional<std::uint64_t> generation) {
  Response response;
  response.ok = false;
  response.generation = generation;
  response.error = Error{kind, std::move(message), std::nullopt};
  return response;
}


json::object status_to_json(const Status& status) {
  json::array routes;
  for (const RouteStatus& route : status.routes) {
    json::object r;
    r["name"] = route.name;
    r["live"] = route.live;
    r["passive"] = route.passive;
    r["weight_ppm"] = route.weight_ppm;
    r["weight_percent"] = format_percent(route.weight_ppm);
    r["sticky"] = route.sticky;
    r["live_source"] = to_string(route.live_source);
    r["passive_source"] = to_string(route.passive_source);
    r["weight_source"] = to_string(route.weight_source);
    if (route.max_step_ppm) {
      r["max_step_ppm"] = *route.max_step_ppm;
    } else {
      r["max_step_ppm"] = nullptr;
    }
    routes.push_back(std::move(r));
  }
  json::array pools;
  for (const PoolStatus& pool : status.pools) {
    json::array servers;
    for (const ServerStatus& server : pool.servers) {
      json::object s;
      s["name"] = server.name;
      s["admin"] = admin_name(server.admin);
      s["admin_source"] = to_string(server.admin_source);
      s["health"] = health_name(server.health);
      s["health_since_ms"] = server.health_since;
      s["last_check"] = server.last_check;
      s["last_check_at_ms"] = server.last_check_at;
      s["ejected_until_ms"] = server.ejected_until;
      s["in_flight"] = server.in_flight;
      s["tunnels"] = server.tunnels;
      servers.push_back(std::move(s));
    }
    json::object p;
    p["name"] = pool.name;
    p["checked"] = pool.checked;
    p["fail_open"] = pool.fail_open;
    p["servers"] = std::move(servers);
    pools.push_back(std::move(p));
  }
  json::object out;
  out["config_path"] = status.config_path;
  out["routes"] = std::move(routes);
  out["pools"] = std::move(pools);
  out["rollouts"] = rollouts_to_json(status.rollouts);
  if (status.fleet) {
    const FleetMember& f = *status.fleet;
    out["fleet"] = json::object{{"host", f.host},
                                {"prefix", f.prefix},
                                {"connected", f.connected},
                                {"endpoint", f.endpoint},
                                {"applied_revision", f.applied_revision},
                                {"drift", f.drift},
                                {"error", f.error}};
  }
  return out;
}

json::object fleet_view_to_json(const FleetView& view) {
  json::array hosts;
  for (const FleetHost& h : view.hosts) {
    hosts.push_back(json::object{{"host", h.host},
                                 {"member", h.member},
                                 {"up", h.up},
                                 {"revision", h.revision},
                                 {"generation", h.generation},
                                 {"drift", h.drift},
                                 {"version", h.version},
                                 {"pools", h.pools},
                                 {"error", h.error},
                                 {"started_ms", h.started_ms},
                                 {"counts", route_counts_to_json(h.counts)}});
  }
  return json::object{{"desired_revision", view.desired_revision},
                      {"desired", view.desired},
                      {"hosts", std::move(hosts)}};
}

FleetView fleet_view_from_json(const json::object& result) {
  FleetView view;
  view.desired_revision = int_or(result, "desired_revision");
  view.desired = string_or(result, "desired", "");
  if (const json::value* hosts = result.if_contains("hosts"); hosts && hosts->is_array()) {
    for (const json::value& value : hosts->get_array()) {
      if (!value.is_object()) continue;
      const json::object& h = value.get_object();
      FleetHost host;
      host.host = string_or(h, "host", "");
      host.member = bool_or(h, "member");
      host.up = bool_or(h, "up");
      host.revision = int_or(h, "revision");
      host.generation = static_cast<std::uint64_t>(int_or(h, "generation"));
      host.drift = bool_or(h, "drift");
      host.version = string_or(h, "version", "");
      host.pools = string_or(h, "pools", "");
      host.error = string_or(h, "error", "");
      host.started_ms = int_or(h, "started_ms");
      host.counts = route_counts_from_json(h.if_contains("counts"));
      view.hosts.push_back(std::move(host));
    }
  }
  return view;
}

json::array rollouts_to_json(const std::vector<RolloutStatus>& rollouts) {
  json::array out;
  for (const RolloutStatus& rollout : rollouts) out.push_back(rollout_to_json(rollout));
  return out;
}

std::vector<RolloutStatus> rollouts_from_json(const json::value* value) {
  std::vector<RolloutStatus> out;
  if (value == nullptr || !value->is_array()) return out;
  for (const json::value& entry : value->get_array()) {
    std::string error;
    if (auto rollout = rollout_from_json(entry, error)) out.push_back(std::move(*rollout));
  }
  return out;
}

Status status_from_json(const json::object& result, std::uint64_t generation) {
  Status status;
  status.generation = generation;
  status.config_path = string_or(result, "config_path", "");
  if (const json::value* routes = result.if_contains("routes"); routes && routes->is_array()) {
    for (const json::value& value : routes->get_array()) {
      if (!value.is_object()) continue;
      const json::object& r = value.get_object();
      RouteStatus route;
      route.name = string_or(r, "name", "");
      route.live = string_or(r, "live", "");
      route.passive = string_or(r, "passive", "");
      route.weight_ppm = ppm_or(r, "weight_ppm");
      route.sticky = string_or(r, "sticky", "");
      route.live_source = source_from(r, "live_source");
      route.passive_source = source_from(r, "passive_source");
      route.weight_source = source_from(r, "weight_source");
      if (const json::value* step = r.if_contains("max_step_ppm"); step && as_uint(*step)) {
        route.max_step_ppm =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(*as_uint(*step), kPpmMax));
      }
      status.routes.push_back(std::move(route));
    }
  }
  if (const json::value* pools = result.if_contains("pools"); pools && pools->is_array()) {
    for (const json::value& value : pools->get_array()) {
      if (!value.is_object()) continue;
      const json::object& p = value.get_object();
      PoolStatus pool;
      pool.name = string_or(p, "name", "");
      pool.checked = bool_or(p, "checked");
      pool.fail_open = bool_or(p, "fail_open");
      if (const json::value* servers = p.if_contains("servers"); servers && servers->is_array()) {
        for (const json::value& sv : servers->get_array()) {
          if (!sv.is_object()) continue;
          const json::object& s = sv.get_object();
          ServerStatus server;
          server.name = string_or(s, "name", "");
          server.admin =
              parse_admin(string_or(s, "admin", "")).value_or(ServerAdmin::enabled);
          server.admin_source = source_from(s, "admin_source");
          server.health = parse_health(string_or(s, "health", "")).value_or(Health::unchecked);
          server.health_since = int_or(s, "health_since_ms");
          server.last_check = string_or(s, "last_check", "");
          server.last_check_at = int_or(s, "last_check_at_ms");
          server.ejected_until = int_or(s, "ejected_until_ms");
          server.in_flight = int_or(s, "in_flight");
          server.tunnels = int_or(s, "tunnels");
          pool.servers.push_back(std::move(server));
        }
      }
      status.pools.push_back(std::move(pool));
    }
  }
  status.rollouts = rollouts_from_json(result.if_contains("rollouts"));
  if (const json::value* fleet = result.if_contains("fleet"); fleet && fleet->is_object()) {
    const json::object& f = fleet->get_object();
    FleetMember member;
    member.host = string_or(f, "host", "");
    member.prefix = string_or(f, "prefix", "");
    member.connected = bool_or(f, "connected");
    member.endpoint = string_or(f, "endpoint", "");
    member.applied_revision = int_or(f, "applied_revision");
    member.drift = bool_or(f, "drift");
    member.error = string_or(f, "error", "");
    status.fleet = std::move(member);
  }
  return status;
}

std::string window_name(std::int64_t seconds) {
  if (seconds >= 60 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

namespace {

void put_quantile(json::object& out, std::string_view name, const std::optional<Quantile>& q) {
  const std::string key(name);
  if (q) {
    out[key + "_ms"] = q->ms;
    out[key + "_over"] = q->over;
  } else {
    out[key + "_ms"] = nullptr;
    out[key + "_over"] = false;
  }
}

std::optional<Quantile> get_quantile(const json::object& in, std::string_view name) {
  const std::string key(name);
  const json::value* ms = in.if_contains(key + "_ms");
  if (ms == nullptr || !ms->is_number()) return std::nullopt;
  boost::system::error_code ec;
  const double value = ms->to_number<double>(ec);
  if (ec) return std::nullopt;
  return Quantile{value, bool_or(in, key + "_over")};
}

// A ratio, or null without a whole to be a part of.
json::value ratio(std::int64_t part, std::int64_t whole) {
  if (whole <= 0) return nullptr;
  return static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

json::object stats_to_json(const Stats& stats) {
  json::array routes;
  for (const RouteStats& route : stats.routes) {
    std::int64_t total = 0;
    for (const SlotStats& slot : route.slots) total += slot.requests;
    json::array slots;
    for (const SlotStats& slot : route.slots) {
      json::object s;
      s["slot"] = slot.slot;
      s["pool"] = slot.pool;
      s["requests"] = slot.requests;
      s["per_second"] = stats.window_seconds > 0 ? static_cast<double>(slot.requests) /
                                                       static_cast<double>(stats.window_seconds)
                                                 : 0.0;
      s["share"] = ratio(slot.requests, total);
      s["errors"] = slot.errors;
      s["error_ratio"] = ratio(slot.errors, slot.requests);
      put_quantile(s, "p50", slot.p50);
      put_quantile(s, "p99", slot.p99);
      slots.push_back(std::move(s));
    }
    json::object r;
    r["name"] = route.name;
    r["weight_ppm"] = route.weight_ppm;
    r["weight_percent"] = format_percent(route.weight_ppm);
    r["requests"] = total;
    r["slots"] = std::move(slots);
    routes.push_back(std::move(r));
  }
  json::object out;
  out["window_s"] = stats.window_seconds;
  out["routes"] = std::move(routes);
  return out;
}

Stats stats_from_json(const json::object& result, std::uint64_t generation) {
  Stats stats;
  stats.generation = generation;
  stats.window_seconds = int_or(result, "window_s");
  for (const json::object* r : objects_in(result, "routes")) {
    RouteStats route;
    route.name = string_or(*r, "name", "");
    route.weight_ppm = ppm_or(*r, "weight_ppm");
    for (const json::object* s : objects_in(*r, "slots")) {
      route.slots.push_back(SlotStats{string_or(*s, "slot", ""), string_or(*s, "pool", ""),
                                      int_or(*s, "requests"), int_or(*s, "errors"),
                                      get_quantile(*s, "p50"), get_quantile(*s, "p99")});
    }
    stats.routes.push_back(std::move(route));
  }
  return stats;
}

json::object diff_to_json(const RuntimeDiff& diff) {
  json::array routes;
  for (const RouteDiff& route : diff.routes) {
    routes.push_back(json::object{{"route", route.route},
                                  {"key", route.key},
                                  {"file", route.file},
                                  {"runtime", route.runtime}});
  }
  json::array servers;
  for (const ServerDiff& server : diff.servers) {
    servers.push_back(json::object{{"pool", server.pool},
                                   {"server", server.server},
                                   {"file", admin_name(server.file)},
                                   {"runtime", admin_name(server.runtime)}});
  }
  return json::object{{"routes", std::move(routes)}, {"servers", std::move(servers)}};
}

RuntimeDiff diff_from_json(const json::object& result, std::uint64_t generation) {
  RuntimeDiff diff;
  diff.generation = generation;
  for (const json::object* r : objects_in(result, "routes")) {
    diff.routes.push_back({string_or(*r, "route", ""), string_or(*r, "key", ""),
                           string_or(*r, "file", ""), string_or(*r, "runtime", "")});
  }
  for (const json::object* s : objects_in(result, "servers")) {
    diff.servers.push_back(
        {string_or(*s, "pool", ""), string_or(*s, "server", ""),
         parse_admin(string_or(*s, "file", "")).value_or(ServerAdmin::enabled),
         parse_admin(string_or(*s, "runtime", "")).value_or(ServerAdmin::enabled)});
  }
  return diff;
}

}  // namespace proxyd::control
