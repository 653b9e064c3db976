// State file encoding (JSON, versioned) and its atomic, durable replacement.
#include "state_store.hpp"

#include "json_parse.hpp"
#include "rollout_json.hpp"

#include <boost/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace proxyd {
namespace {

namespace json = boost::json;
constexpr std::int64_t kStateVersion = 1;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Writes all of `data` to `fd`, retrying short writes.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string encode_state(const RuntimeState& state) {
  json::object routes;
  for (const auto& [name, o] : state.routes) {
    json::object r;
    if (o.live) r["live"] = *o.live;
    if (o.passive) r["passive"] = *o.passive;
    if (o.weight_ppm) r["weight_ppm"] = *o.weight_ppm;
    routes[name] = std::move(r);
  }
  json::array servers;
  for (const auto& [key, admin] : state.servers)
    servers.push_back(json::object{{"pool", key.first},
                                   {"server", key.second},
                                   {"admin", std::string(admin_name(admin))}});
  json::array rollouts;
  for (const auto& [route, rollout] : state.rollouts) {
    json::object r = rollout_to_json(rollout);
    r.erase("held_ms");  // worked out when asked, never stored
    r.erase("waiting_for");
    rollouts.push_back(std::move(r));
  }
  json::object root{{"version", kStateVersion},
                    {"generation", state.generation},
                    {"routes", std::move(routes)},
                    {"servers", std::move(servers)},
                    {"rollouts", std::move(rollouts)}};
  if (state.fleet_revision != 0 || state.fleet_drift)
    root["fleet"] = json::object{{"revision", state.fleet_revision}, {"drift", state.fleet_drift}};
  return json::serialize(root) + "\n";
}

std::optional<RuntimeState> decode_state(std::string_view text, std::string& error) {
  json::error_code ec;
  json::value root = parse_json(text, ec);
  if (ec) {
    error = "not JSON: " + ec.message();
    return std::nullopt;
  }
  const json::object* obj = root.if_object();
  if (obj == nullptr) {
    error = "not a JSON object";
    return std::nullopt;
  }
  auto fail = [&](std::string message) -> std::optional<RuntimeState> {
    error = std::move(message);
    return std::nullopt;
  };
  const json::value* version = obj->if_contains("version");
  if (version == nullptr || !version->is_int64() || version->as_int64() != kStateVersion)
    return fail("unsupported or missing version (expected 1)");
  RuntimeState state;
  const json::value* generation = obj->if_contains("generation");
  if (generation == nullptr || !(generation->is_int64() || generation->is_uint64()))
    return fail("generation missing or not a number");
  auto gen = generation->to_number<std::int64_t>(ec);
  if (ec || gen < 1) return fail("generation must be a positive integer");
  state.generation = static_cast<std::uint64_t>(gen);

  const json::value* routes = obj->if_contains("routes");
  if (routes == nullptr || !routes->is_object()) return fail("routes missing or not an object");
  for (const auto& [name, value] : routes->get_object()) {
    const json::object* r = value.if_object();
    if (r == nullptr) return fail("route " + std::string(name) + " is not an object");
    RouteOverride o;
    for (const auto& [key, v] : *r) {
      if ((key == "live" || key == "passive") && v.is_string()) {
        (key == "live" ? o.live : o.passive) = std::string(v.get_string());
      } else if (key == "weight_ppm" && (v.is_int64() || v.is_uint64())) {
        auto w = v.to_number<std::int64_t>(ec);
        if (ec || w < 0 || w > kPpmMax) return fail("route " + std::string(name) + ": bad weight_ppm");
        o.weight_ppm = static_cast<std::uint32_t>(w);
      } else {
        return fail("route " + std::string(name) + ": bad key " + std::string(key));
      }
    }
    state.routes[std::string(name)] = std::move(o);
  }

  const json::value* servers = obj->if_contains("servers");
  if (servers == nullptr || !servers->is_array()) return fail("servers missing or not an array");
  for (const json::value& v : servers->get_array()) {
    const json::object* s = v.if_object();
    const json::value* pool = s ? s->if_contains("pool") : nullptr;
    const json::value* server = s ? s->if_contains("server") : nullptr;
    const json::value* admin = s ? s->if_contains("admin") : nullptr;
    if (!pool || !server || !admin || !pool->is_string() || !server->is_string() ||
        !admin->is_string())
      return fail("a server entry lacks pool, server or admin");
    auto parsed = parse_admin(std::string_view(admin->get_string()));
    if (!parsed) return fail("server admin state must be enabled, draining or disabled");
    state.servers[{std::string(pool->get_string()), std::string(server->get_string())}] = *parsed;
  }

  // Written since rollouts exist; an older file has none.
  if (const json::value* rollouts = obj->if_contains("rollouts")) {
    if (!rollouts->is_array()) return fail("rollouts is not an array");
    for (const json::value& v : rollouts->get_array()) {
      std::string rollout_error;
      std::optional<RolloutStatus> rollout = rollout_from_json(v, rollout_error);
      if (!rollout) return fail("a rollout entry: " + rollout_error);
      state.rollouts[rollout->route] = std::move(*rollout);
    }
  }
  // Written by fleet members only (docs/fleet.md).
  if (const json::value* fleet = obj->if_contains("fleet")) {
    const json::object* f = fleet->if_object();
    const json::value* revision = f ? f->if_contains("revision") : nullptr;
    const json::value* drift = f ? f->if_contains("drift") : nullptr;
    if (revision == nullptr || !revision->is_int64() || revision->as_int64() < 0 ||
        drift == nullptr || !drift->is_bool())
      return fail("fleet must be {\"revision\": N, \"drift\": true|false}");
    state.fleet_revision = revision->as_int64();
    state.fleet_drift = drift->as_bool();
  }
  return state;
}

StateLoad StateStore::load() const {
  StateLoad result;
  std::error_code fs_error;
  if (!std::filesystem::exists(path_, fs_error)) return result;
  std::ifstream in(path_, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    result.error = "cannot read " + path_;
  } else {
    std::string decode_error;
    result.state = decode_state(text.str(), decode_error);
    if (result.state) return result;
    result.error = path_ + " is corrupt (" + decode_error + ")";
  }
  // Keep the evidence: move it aside instead of letting the next save replace it.
  auto stamp = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  result.moved_to = path_ + ".corrupt-" + std::to_string(stamp);
  std::filesystem::rename(path_, result.moved_to, fs_error);
  if (fs_error) {
    result.error += "; could not move it aside: " + fs_error.message();
    result.moved_to.clear();
  }
  return result;
}

std::optional<std::string> StateStore::save(const RuntimeState& state) const {
  const std::filesystem::path target(path_);
  const std::filesystem::path dir =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::error_code fs_error;
  std::filesystem::create_directories(dir, fs_error);
  const std::string temp = path_ + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_text("cannot create " + temp);
  const std::string text = encode_state(state);
  if (!write_all(fd, text) || ::fsync(fd) != 0) {
    std::string error = errno_text("cannot write " + temp);
    ::close(fd);
    ::unlink(temp.c_str());
    return error;
  }
  ::close(fd);
  if (::rename(temp.c_str(), path_.c_str()) != 0) {
    std::string error = errno_text("cannot rename " + temp + " to " + path_);
    ::unlink(temp.c_str());
    return error;
  }
  // The rename is durable only once the directory entry is on disk.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return errno_text("cannot open " + dir.string());
  int rc = ::fsync(dir_fd);
  ::close(dir_fd);
  if (rc != 0) return errno_text("cannot fsync " + dir.string());
  return std::nullopt;
}

}  // namespace proxyd
