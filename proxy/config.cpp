// Reads a proxyd YAML config into the plain structs of config.hpp. This is the only yaml-cpp user.
// Every problem is collected (never just the first) as FILE:LINE: key: message, so one
// `proxyd --check` run shows everything to fix; nothing here throws.
#include "proxy/config.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

namespace proxyd {

std::string ConfigError::text() const {
  // Line 0 means "the whole file" (it could not be read, or it is empty); an empty key means the
  // problem is not about one setting (a YAML syntax error). Both are left out rather than printed
  // as ":0" or ": :".
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  if (!key.empty()) out += ": " + key;
  out += ": " + message;
  return out;
}

namespace {

// A config file larger than this is certainly a wrong path (say /dev/zero), not a config.
constexpr std::size_t kMaxFileBytes = 16 * 1024 * 1024;

// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr std::size_t kMaxUnixSocketPath = 107;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 9110 token characters: what a header field name (and a cookie name) may contain.
bool valid_token(std::string_view text) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || kSpecials.find(c) != std::string_view::npos;
  });
}

// Names of listeners, pools and routes appear in metric labels, proxyctl arguments and the dotted
// key paths of errors, so they are kept to characters that need no quoting anywhere.
bool valid_name(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
  });
}

// A route host: a host name, "*." and a host name for any subdomain, or "*" for any host.
bool valid_route_host(std::string_view host) {
  if (host == "*") return true;
  if (host.starts_with("*.")) host.remove_prefix(2);
  return valid_host_name(host);
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

// Whether route host `first` matches every host that route host `second` matches. The router
// matches case-insensitively; "" and "*" match any host, "*.x" any subdomain of x at any depth.
bool host_covers(std::string_view first, std::string_view second) {
  const std::string a = lowercase(first);
  const std::string b = lowercase(second);
  if (a.empty() || a == "*" || a == b) return true;
  if (b.empty() || b == "*" || !a.starts_with("*.")) return false;
  const std::string_view suffix = std::string_view(a).substr(1);  // ".example.com"
  return b.size() > suffix.size() && b.ends_with(suffix);
}

// Whether every path matched by `second`'s prefix is also matched by `first`'s. Only cases that
// hold whether the router compares plain string prefixes or whole path segments are claimed.
bool path_covers(std::string_view first, std::string_view second) {
  if (!second.starts_with(first)) return false;
  return first.empty() || first.back() == '/' || first == second;
}

// A YAML value with where it came from: its dotted key path and the position to blame for it
// (a 1-based line, and a 0-based column that only orders errors found on one line).
struct Value {
  YAML::Node node;
  std::string key;
  int line = 0;
  int column = 0;
};

struct Entry {
  std::string name;
  Value value;
};

// The entries of one YAML map, already checked for unknown and duplicate keys.
class Fields {
 public:
  explicit Fields(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  std::optional<Value> get(std::string_view name) const {
    for (const Entry& entry : entries_) {
      if (entry.name == name) return entry.value;
    }
    return std::nullopt;
  }

 private:
  std::vector<Entry> entries_;
};

std::string child_key(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// Where to blame `name` inside a map: its key when present, else the map itself.
Value at_key(const Value& map, std::string_view name) {
  Value out{YAML::Node(), child_key(map.key, name), map.line, map.column};
  if (!map.node.IsMap()) return out;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    const YAML::Mark mark = it->first.Mark();
    if (it->first.IsScalar() && it->first.Scalar() == name && !mark.is_null()) {
      out.line = mark.line + 1;
      out.column = mark.column;
      break;
    }
  }
  return out;
}

std::string join(std::initializer_list<std::string_view> words) {
  std::string out;
  for (const std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

// Walks one parsed document, filling a Config and collecting errors. Lives for one load call.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Config read(const YAML::Node& root);

  void error(const Value& where, std::string message) {
    errors_.push_back(
        Found{where.column, ConfigError{file_, where.line, where.key, std::move(message)}});
  }

  std::vector<ConfigError> take_errors() {
    // File order, so the first error printed is the first one the user meets; stable, so errors
    // at one position keep the order they were found in.
    std::stable_sort(errors_.begin(), errors_.end(), [](const Found& a, const Found& b) {
      return std::pair(a.error.line, a.column) < std::pair(b.error.line, b.column);
    });
    std::vector<ConfigError> out;
    for (Found& found : errors_) out.push_back(std::move(found.error));
    return out;
  }

 private:
  std::vector<Entry> entries(const Value& map, std::string_view duplicate_what);
  std::optional<Fields> fields(const Value& map, std::initializer_list<std::string_view> allowed);
  std::vector<Value> items(const Value& list);
  std::optional<std::string> scalar(const Value& value);
  void missing(const Value& map, std::string_view name);

  void read_name(const Value& value, std::string& out);
  void read_text(const Value& value, std::string& out);
  void read_duration(const Value& value, Duration& out);
  void read_size(const Value& value, std::uint64_t& out, std::uint64_t max);
  void read_integer(const Value& value, std::int64_t min, std::int64_t max, std::int64_t& out);
  std::optional<Endpoint> read_endpoint(const Value& value, std::uint16_t min_port);

  void read_workers(const Value& value, Config& config);
  void read_listeners(const Value& value, Config& config);
  void read_listener(const Value& value, ListenerConfig& listener);
  void read_admin(const Value& value, AdminConfig& admin);
  void read_ids(const Value& value, std::vector<std::int64_t>& out);
  void read_pools(const Value& value, Config& config);
  void read_pool(const Value& value, PoolConfig& pool);
  HealthConfig read_health(const Value& value);
  void read_routes(const Value& value, Config& config, bool pools_known);
  bool read_route(const Value& value, const Config& config, bool pools_known, RouteConfig& route);
  StickyConfig read_sticky(const Value& value);
  void read_timeouts(const Value& value, TimeoutsConfig& timeouts);
  void read_limits(const Value& value, LimitsConfig& limits);
  void check_unreachable_routes(const Config& config, const std::vector<Value>& items,
                                const std::vector<bool>& match_ok);

  struct Found {
    int column = 0;
    ConfigError error;
  };

  std::string file_;
  std::vector<Found> errors_;
};

std::string node_kind(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  return "a single value";
}

// A null value (`key:` with nothing after it) reads as an empty map, so `admin:` alone means
// "all defaults"; sections that need content then report what is missing.
std::vector<Entry> Reader::entries(const Value& map, std::string_view duplicate_what) {
  std::vector<Entry> out;
  if (map.node.IsNull()) return out;
  if (!map.node.IsMap()) {
    error(map, "expected a map, got " + node_kind(map.node));
    return out;
  }
  std::map<std::string, int> first_line;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    // A copy: the iterator's `->` yields a temporary pair, so a reference would dangle.
    const YAML::Node key = it->first;
    const YAML::Mark mark = key.Mark();
    const int line = mark.is_null() ? map.line : mark.line + 1;
    const int column = mark.is_null() ? map.column : mark.column;
    if (!key.IsScalar()) {
      error(Value{key, map.key, line, column}, "expected a plain key, got " + node_kind(key));
      continue;
    }
    const std::string name = key.Scalar();
    // A map entry is blamed on its key: a null value's own mark points at the next token, and a
    // block map or list starts on the line after its key.
    Value value{it->second, child_key(map.key, name), line, column};
    const auto [first, inserted] = first_line.emplace(name, line);
    if (!inserted) {
      error(value, "duplicate " + std::string(duplicate_what) + " (first at line " +
                       std::to_string(first->second) + ")");
      continue;
    }
    out.push_back(Entry{name, std::move(value)});
  }
  return out;
}

std::optional<Fields> Reader::fields(const Value& map,
                                     std::initializer_list<std::string_view> allowed) {
  if (!map.node.IsNull() && !map.node.IsMap()) {
    error(map, "expected a map, got " + node_kind(map.node));
    return std::nullopt;
  }
  std::vector<Entry> known;
  for (Entry& entry : entries(map, "key")) {
    if (std::find(allowed.begin(), allowed.end(), entry.name) == allowed.end()) {
      error(entry.value, "unknown key (expected one of: " + join(allowed) + ")");
      continue;
    }
    known.push_back(std::move(entry));
  }
  return Fields(std::move(known));
}

// A null value reads as an empty list, so `routes:` alone reports "at least one route".
std::vector<Value> Reader::items(const Value& list) {
  std::vector<Value> out;
  if (list.node.IsNull()) return out;
  if (!list.node.IsSequence()) {
    error(list, "expected a list, got " + node_kind(list.node));
    return out;
  }
  std::size_t index = 0;
  for (auto it = list.node.begin(); it != list.node.end(); ++it, ++index) {
    // An empty item (`-` alone) has the mark of the next token, so it is blamed on the list.
    const YAML::Mark mark = it->Mark();
    const bool own_mark = !it->IsNull() && !mark.is_null();
    out.push_back(Value{*it, list.key + "[" + std::to_string(index) + "]",
                        own_mark ? mark.line + 1 : list.line,
                        own_mark ? mark.column : list.column});
  }
  return out;
}

// A null value reads as "", so each setting reports emptiness in its own words.
std::optional<std::string> Reader::scalar(const Value& value) {
  if (value.node.IsNull()) return std::string();
  if (!value.node.IsScalar()) {
    error(value, "expected a single value, got " + node_kind(value.node));
    return std::nullopt;
  }
  return value.node.Scalar();
}

void Reader::missing(const Value& map, std::string_view name) {
  error(Value{YAML::Node(), child_key(map.key, name), map.line, map.column},
        "required key is missing");
}

void Reader::read_name(const Value& value, std::string& out) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return;
  if (text->empty()) {
    error(value, "must not be empty");
    return;
  }
  if (!valid_name(*text)) {
    error(value, "invalid name " + in_quotes(*text) + " (use letters, digits, '-', '_' and '.')");
    return;
  }
  out = *text;
}

void Reader::read_text(const Value& value, std::string& out) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return;
  if (text->empty()) {
    error(value, "must not be empty");
    return;
  }
  out = *text;
}

void Reader::read_duration(const Value& value, Duration& out) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return;
  std::string why;
  const std::optional<Duration> duration = parse_duration(*text, &why);
  if (!duration) {
    error(value, why);
  } else if (duration->count() == 0) {
    error(value, "must be greater than 0");
  } else {
    out = *duration;
  }
}

void Reader::read_size(const Value& value, std::uint64_t& out, std::uint64_t max) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return;
  std::string why;
  const std::optional<std::uint64_t> size = parse_size(*text, &why);
  if (!size) {
    error(value, why);
  } else if (*size == 0) {
    error(value, "must be greater than 0");
  } else if (*size > max) {
    error(value, "must be at most " + std::to_string(max) + " bytes");
  } else {
    out = *size;
  }
}

void Reader::read_integer(const Value& value, std::int64_t min, std::int64_t max,
                          std::int64_t& out) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return;
  std::uint64_t number = 0;
  if (parse_digits(*text, number) != Digits::ok || number < static_cast<std::uint64_t>(min) ||
      number > static_cast<std::uint64_t>(max)) {
    error(value, "expected a whole number from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", got " + in_quotes(*text));
    return;
  }
  out = static_cast<std::int64_t>(number);
}

std::optional<Endpoint> Reader::read_endpoint(const Value& value, std::uint16_t min_port) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return std::nullopt;
  std::string why;
  std::optional<Endpoint> endpoint = parse_endpoint(*text, min_port, &why);
  if (!endpoint) error(value, why);
  return endpoint;
}

Config Reader::read(const YAML::Node& root) {
  Config config;
  const YAML::Mark mark = root.Mark();
  const Value top{root, "", mark.is_null() ? 1 : mark.line + 1, mark.is_null() ? 0 : mark.column};
  if (!root.IsMap()) {
    error(top, "expected a map of settings at the top level, got " + node_kind(root));
    return config;
  }
  const std::optional<Fields> f =
      fields(top, {"workers", "listeners", "admin", "pools", "routes", "timeouts", "limits"});
  if (const auto workers = f->get("workers")) read_workers(*workers, config);
  if (const auto listeners = f->get("listeners")) {
    read_listeners(*listeners, config);
  } else {
    missing(top, "listeners");
  }
  if (const auto admin = f->get("admin")) read_admin(*admin, config.admin);
  // Without a path of its own the audit log sits beside the state file: one directory holds all
  // of proxyd's durable runtime data (and a test's temporary directory holds both).
  if (config.admin.audit_log.empty()) {
    const std::string& state = config.admin.state_file;
    const auto slash = state.rfind('/');
    config.admin.audit_log = (slash == std::string::npos ? "." : state.substr(0, slash)) + "/audit.log";
  }
  if (const auto pools = f->get("pools")) {
    read_pools(*pools, config);
  } else {
    missing(top, "pools");
  }
  if (const auto routes = f->get("routes")) {
    // Without any pool every route's pools would be unknown; that noise would hide the one real
    // problem, so pool names are only checked when some pool was read.
    read_routes(*routes, config, !config.pools.empty());
  } else {
    missing(top, "routes");
  }
  if (const auto timeouts = f->get("timeouts")) read_timeouts(*timeouts, config.timeouts);
  if (const auto limits = f->get("limits")) read_limits(*limits, config.limits);
  return config;
}

void Reader::read_workers(const Value& value, Config& config) {
  const std::optional<std::string> text = scalar(value);
  if (!text) return;
  if (*text == "auto") {
    config.workers = 0;
    return;
  }
  std::uint64_t workers = 0;
  if (parse_digits(*text, workers) != Digits::ok || workers == 0 || workers > 1024) {
    error(value, "expected auto or a whole number from 1 to 1024, got " + in_quotes(*text));
    return;
  }
  config.workers = static_cast<int>(workers);
}

void Reader::read_listeners(const Value& value, Config& config) {
  const std::vector<Value> list = items(value);
  if (list.empty() && (value.node.IsNull() || value.node.IsSequence())) {
    error(value, "at least one listener is required");
  }
  std::map<std::string, int> name_lines;
  std::map<std::string, std::pair<std::string, int>> address_users;
  for (const Value& item : list) {
    ListenerConfig listener;
    read_listener(item, listener);
    if (!listener.name.empty()) {
      const Value name = at_key(item, "name");
      const auto [first, inserted] = name_lines.emplace(listener.name, name.line);
      if (!inserted) {
        error(name, "duplicate listener name " + in_quotes(listener.name) + " (first at line " +
                        std::to_string(first->second) + ")");
      }
    }
    // Port 0 binds a fresh ephemeral port each time, so only fixed ports can collide.
    if (listener.address.port != 0) {
      const Value address = at_key(item, "address");
      const auto [first, inserted] = address_users.emplace(
          listener.address.text(), std::make_pair(listener.name, address.line));
      if (!inserted) {
        error(address, "address " + listener.address.text() + " is already used by listener " +
                           in_quotes(first->second.first) + " (line " +
                           std::to_string(first->second.second) + ")");
      }
    }
    config.listeners.push_back(std::move(listener));
  }
}

void Reader::read_listener(const Value& value, ListenerConfig& listener) {
  listener.line = value.line;
  const std::optional<Fields> f = fields(value, {"name", "address", "tls", "slot"});
  if (!f) return;
  if (const auto name = f->get("name")) {
    read_name(*name, listener.name);
  } else {
    missing(value, "name");
  }
  if (const auto address = f->get("address")) {
    // Port 0 asks the kernel for a free port: tests start proxyd that way.
    if (auto endpoint = read_endpoint(*address, 0)) listener.address = std::move(*endpoint);
  } else {
    missing(value, "address");
  }
  if (const auto tls = f->get("tls")) {
    TlsConfig config;
    if (const std::optional<Fields> tf = fields(*tls, {"cert", "key"})) {
      if (const auto cert = tf->get("cert")) {
        read_text(*cert, config.cert);
      } else {
        missing(*tls, "cert");
      }
      if (const auto key = tf->get("key")) {
        read_text(*key, config.key);
      } else {
        missing(*tls, "key");
      }
    }
    listener.tls = std::move(config);
  }
  if (const auto slot = f->get("slot")) {
    if (const std::optional<std::string> text = scalar(*slot)) {
      if (*text == "live") {
        listener.slot = SlotName::live;
      } else if (*text == "passive") {
        listener.slot = SlotName::passive;
      } else {
        error(*slot, "expected live or passive, got " + in_quotes(*text));
      }
    }
  }
}

void Reader::read_admin(const Value& value, AdminConfig& admin) {
  const std::optional<Fields> f =
      fields(value, {"control_socket", "metrics", "state_file", "access_log", "audit_log",
                     "control_mode", "control_group", "control_allow_uids", "control_allow_gids"});
  if (!f) return;
  if (const auto socket = f->get("control_socket")) {
    read_text(*socket, admin.control_socket);
    if (admin.control_socket.size() > kMaxUnixSocketPath) {
      error(*socket, "too long for a Unix socket path (at most " +
                         std::to_string(kMaxUnixSocketPath) + " bytes)");
    }
  }
  if (const auto metrics = f->get("metrics")) {
    const std::optional<std::string> text = scalar(*metrics);
    if (text && *text == "off") {
      admin.metrics.reset();
    } else if (text) {
      admin.metrics = read_endpoint(*metrics, 0);
    }
  }
  if (const auto state_file = f->get("state_file")) read_text(*state_file, admin.state_file);
  if (const auto access_log = f->get("access_log")) {
    const std::optional<std::string> text = scalar(*access_log);
    if (text && text->empty()) {
      error(*access_log, "must not be empty (use stdout, off or a file path)");
    } else if (text) {
      admin.access_log = *text;
    }
  }
  if (const auto audit_log = f->get("audit_log")) read_text(*audit_log, admin.audit_log);
  if (const auto mode = f->get("control_mode")) {
    // Octal as chmod takes it, with or without the leading 0: 660 and 0660 are the same mode.
    if (const std::optional<std::string> text = scalar(*mode)) {
      std::uint32_t bits = 0;
      const bool octal =
          text->size() >= 3 && text->size() <= 4 &&
          std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '7'; });
      if (octal) std::from_chars(text->data(), text->data() + text->size(), bits, 8);
      if (!octal || bits > 0777) {
        error(*mode,
              "expected an octal file mode from 000 to 0777, e.g. 0660, got " + in_quotes(*text));
      } else {
        admin.control_mode = bits;
      }
    }
  }
  if (const auto group = f->get("control_group")) {
    if (const std::optional<std::string> text = scalar(*group)) {
      // The portable POSIX user and group name characters.
      if (!valid_name(*text) || text->front() == '-') {
        error(*group, "invalid group name " + in_quotes(*text));
      } else {
        admin.control_group = *text;
      }
    }
  }
  if (const auto uids = f->get("control_allow_uids")) read_ids(*uids, admin.control_allow_uids);
  if (const auto gids = f->get("control_allow_gids")) read_ids(*gids, admin.control_allow_gids);
}

// User and group ids are 32-bit; (uid_t)-1 means "no id" to the kernel, so it is not one.
void Reader::read_ids(const Value& value, std::vector<std::int64_t>& out) {
  for (const Value& item : items(value)) {
    std::int64_t id = -1;
    read_integer(item, 0, 4'294'967'294, id);
    if (id >= 0) out.push_back(id);
  }
}

void Reader::read_pools(const Value& value, Config& config) {
  const std::vector<Entry> list = entries(value, "pool name");
  if (list.empty() && (value.node.IsNull() || value.node.IsMap())) {
    error(value, "at least one pool is required");
  }
  for (const Entry& entry : list) {
    PoolConfig pool;
    if (!valid_name(entry.name)) {
      error(entry.value,
            "invalid pool name " + in_quotes(entry.name) + " (use letters, digits, '-', '_' and '.')");
    }
    pool.name = entry.name;
    read_pool(entry.value, pool);
    config.pools.push_back(std::move(pool));
  }
}

void Reader::read_pool(const Value& value, PoolConfig& pool) {
  pool.line = value.line;
  const std::optional<Fields> f = fields(value, {"servers", "balance", "health"});
  if (!f) return;
  if (const auto servers = f->get("servers")) {
    const std::vector<Value> list = items(*servers);
    if (list.empty() && (servers->node.IsNull() || servers->node.IsSequence())) {
      error(*servers, "a pool needs at least one server");
    }
    std::map<std::string, int> server_lines;
    for (const Value& item : list) {
      std::optional<Endpoint> server = read_endpoint(item, 1);
      if (!server) continue;
      const auto [first, inserted] = server_lines.emplace(server->text(), item.line);
      if (!inserted) {
        error(item, "duplicate server " + server->text() + " (first at line " +
                        std::to_string(first->second) + ")");
        continue;
      }
      pool.servers.push_back(std::move(*server));
    }
  } else {
    missing(value, "servers");
  }
  if (const auto balance = f->get("balance")) {
    if (const std::optional<std::string> text = scalar(*balance)) {
      if (*text == "round_robin") {
        pool.balance = Balance::round_robin;
      } else if (*text == "least_request") {
        pool.balance = Balance::least_request;
      } else {
        error(*balance, "expected round_robin or least_request, got " + in_quotes(*text));
      }
    }
  }
  if (const auto health = f->get("health")) pool.health = read_health(*health);
}

HealthConfig Reader::read_health(const Value& value) {
  HealthConfig health;
  const std::optional<Fields> f = fields(value, {"path", "interval", "timeout", "rise", "fall"});
  if (!f) return health;
  if (const auto path = f->get("path")) {
    if (const std::optional<std::string> text = scalar(*path)) {
      if (!text->starts_with('/')) {
        error(*path, "must start with /, got " + in_quotes(*text));
      } else {
        health.path = *text;
      }
    }
  }
  if (const auto interval = f->get("interval")) read_duration(*interval, health.interval);
  if (const auto timeout = f->get("timeout")) read_duration(*timeout, health.timeout);
  std::int64_t number = 0;
  if (const auto rise = f->get("rise")) {
    number = health.rise;
    read_integer(*rise, 1, 100, number);
    health.rise = static_cast<int>(number);
  }
  if (const auto fall = f->get("fall")) {
    number = health.fall;
    read_integer(*fall, 1, 100, number);
    health.fall = static_cast<int>(number);
  }
  return health;
}

void Reader::read_routes(const Value& value, Config& config, bool pools_known) {
  const std::vector<Value> list = items(value);
  if (list.empty() && (value.node.IsNull() || value.node.IsSequence())) {
    error(value, "at least one route is required");
  }
  std::map<std::string, int> name_lines;
  std::vector<bool> match_ok;
  for (const Value& item : list) {
    RouteConfig route;
    match_ok.push_back(read_route(item, config, pools_known, route));
    if (!route.name.empty()) {
      const Value name = at_key(item, "name");
      const auto [first, inserted] = name_lines.emplace(route.name, name.line);
      if (!inserted) {
        error(name, "duplicate route name " + in_quotes(route.name) + " (first at line " +
                        std::to_string(first->second) + ")");
      }
    }
    config.routes.push_back(std::move(route));
  }
  check_unreachable_routes(config, list, match_ok);
}

// Returns whether the route's match was read without errors (so it can be compared to others).
bool Reader::read_route(const Value& value, const Config& config, bool pools_known,
                        RouteConfig& route) {
  route.line = value.line;
  const std::optional<Fields> f =
      fields(value, {"name", "match", "live", "passive", "weight", "sticky", "preview_header"});
  if (!f) return false;
  if (const auto name = f->get("name")) {
    read_name(*name, route.name);
  } else {
    missing(value, "name");
  }
  const std::size_t errors_before_match = errors_.size();
  if (const auto match = f->get("match")) {
    if (const std::optional<Fields> mf = fields(*match, {"host", "path_prefix"})) {
      if (const auto host = mf->get("host")) {
        if (const std::optional<std::string> text = scalar(*host)) {
          if (!valid_route_host(*text)) {
            error(*host, "invalid host " + in_quotes(*text) +
                             " (expected a host name like api.example.com or *.example.com)");
          } else {
            route.host = *text;
          }
        }
      }
      if (const auto prefix = mf->get("path_prefix")) {
        if (const std::optional<std::string> text = scalar(*prefix)) {
          if (!text->starts_with('/')) {
            error(*prefix, "must start with /, got " + in_quotes(*text));
          } else {
            route.path_prefix = *text;
          }
        }
      }
    }
  }
  const bool match_ok = errors_.size() == errors_before_match;
  const auto read_pool_name = [&](const Value& slot, std::string& out) {
    read_text(slot, out);
    if (out.empty() || !pools_known) return;
    const bool known = std::any_of(config.pools.begin(), config.pools.end(),
                                   [&](const PoolConfig& pool) { return pool.name == out; });
    if (!known) error(slot, "unknown pool " + in_quotes(out));
  };
  if (const auto live = f->get("live")) {
    read_pool_name(*live, route.live);
  } else {
    missing(value, "live");
  }
  if (const auto passive = f->get("passive")) {
    read_pool_name(*passive, route.passive);
  } else {
    // Without a passive pool the route simply has none to split to: both slots are the live pool.
    route.passive = route.live;
  }
  if (const auto weight = f->get("weight")) {
    if (const std::optional<std::string> text = scalar(*weight)) {
      std::string why;
      if (const std::optional<std::uint32_t> ppm = parse_percent_ppm(*text, &why)) {
        route.weight_ppm = *ppm;
      } else {
        error(*weight, why);
      }
    }
  }
  if (const auto sticky = f->get("sticky")) route.sticky = read_sticky(*sticky);
  if (const auto header = f->get("preview_header")) {
    if (const std::optional<std::string> text = scalar(*header)) {
      if (!valid_token(*text)) {
        error(*header, "invalid header name " + in_quotes(*text));
      } else {
        route.preview_header = *text;
      }
    }
  }
  return match_ok;
}

StickyConfig Reader::read_sticky(const Value& value) {
  StickyConfig sticky;
  const std::optional<Fields> f = fields(value, {"cookie", "header", "client_ip"});
  if (!f) return sticky;
  int kinds = 0;
  if (const auto cookie = f->get("cookie")) {
    ++kinds;
    sticky.kind = StickyConfig::Kind::cookie;
    if (const std::optional<std::string> text = scalar(*cookie)) {
      if (!valid_token(*text)) {
        error(*cookie, "invalid cookie name " + in_quotes(*text));
      } else {
        sticky.name = *text;
      }
    }
  }
  if (const auto header = f->get("header")) {
    ++kinds;
    sticky.kind = StickyConfig::Kind::header;
    if (const std::optional<std::string> text = scalar(*header)) {
      if (!valid_token(*text)) {
        error(*header, "invalid header name " + in_quotes(*text));
      } else {
        sticky.name = *text;
      }
    }
  }
  if (const auto client_ip = f->get("client_ip")) {
    ++kinds;
    sticky.kind = StickyConfig::Kind::client_ip;
    bool on = false;
    // `client_ip: false` would read as "sticky, but by nothing"; leaving sticky out says that.
    if (!YAML::convert<bool>::decode(client_ip->node, on) || !on) {
      error(*client_ip, "must be true (leave sticky out for no stickiness)");
    }
  }
  if (kinds != 1) {
    error(value, "expected exactly one of cookie, header or client_ip");
    sticky = StickyConfig{};
  }
  return sticky;
}

// A route whose every request an earlier route already takes can never match: almost always an
// ordering mistake (a catch-all `/` listed first), so it is refused rather than silently dead.
// Routes whose match has errors are skipped: their defaults would match everything.
void Reader::check_unreachable_routes(const Config& config, const std::vector<Value>& items,
                                      const std::vector<bool>& match_ok) {
  for (std::size_t later = 0; later < config.routes.size(); ++later) {
    if (!match_ok[later]) continue;
    for (std::size_t earlier = 0; earlier < later; ++earlier) {
      if (!match_ok[earlier]) continue;
      const RouteConfig& a = config.routes[earlier];
      const RouteConfig& b = config.routes[later];
      if (host_covers(a.host, b.host) && path_covers(a.path_prefix, b.path_prefix)) {
        error(at_key(items[later], "match"),
              "never matches: route " + in_quotes(a.name) + " (line " + std::to_string(a.line) +
                  ") comes first and matches every request this one would");
        break;
      }
    }
  }
}

void Reader::read_timeouts(const Value& value, TimeoutsConfig& timeouts) {
  static constexpr std::pair<std::string_view, Duration TimeoutsConfig::*> kTimeouts[] = {
      {"client_header", &TimeoutsConfig::client_header},
      {"client_idle", &TimeoutsConfig::client_idle},
      {"client_body", &TimeoutsConfig::client_body},
      {"upstream_connect", &TimeoutsConfig::upstream_connect},
      {"upstream_response", &TimeoutsConfig::upstream_response},
      {"upstream_idle", &TimeoutsConfig::upstream_idle},
      {"drain", &TimeoutsConfig::drain},
  };
  const std::optional<Fields> f =
      fields(value, {"client_header", "client_idle", "client_body", "upstream_connect",
                     "upstream_response", "upstream_idle", "drain"});
  if (!f) return;
  for (const auto& [name, member] : kTimeouts) {
    if (const auto timeout = f->get(name)) read_duration(*timeout, timeouts.*member);
  }
}

void Reader::read_limits(const Value& value, LimitsConfig& limits) {
  const std::optional<Fields> f =
      fields(value, {"max_header_bytes", "max_body_bytes", "upstream_idle_per_server"});
  if (!f) return;
  // Beast's header limit is a 32-bit count.
  if (const auto header = f->get("max_header_bytes")) {
    read_size(*header, limits.max_header_bytes, UINT32_MAX);
  }
  if (const auto body = f->get("max_body_bytes")) {
    read_size(*body, limits.max_body_bytes, UINT64_MAX);
  }
  // One host cannot hold more than 65535 connections to one server address anyway.
  if (const auto idle = f->get("upstream_idle_per_server")) {
    std::int64_t number = limits.upstream_idle_per_server;
    read_integer(*idle, 0, 65535, number);
    limits.upstream_idle_per_server = static_cast<std::uint32_t>(number);
  }
}

// Records where each YAML document starts and builds nothing. Used instead of YAML::LoadAll,
// which in yaml-cpp 0.7 loops forever, allocating, on a stray `,` or `]` at document level: the
// parser reports an empty document without consuming the token (yaml-cpp issue #1040, fixed
// after 0.7). Two documents starting at one position are that loop, so counting stops there.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

int line_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

ConfigResult failure(ConfigError error) {
  ConfigResult result;
  result.errors.push_back(std::move(error));
  return result;
}

}  // namespace

ConfigResult load_config_text(const std::string& text, const std::string& file) {
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentStarts documents;
    // Three are enough to see a stuck token even when it is the second document.
    while (documents.starts.size() < 3 && parser.HandleNextDocument(documents)) {
      const std::vector<YAML::Mark>& starts = documents.starts;
      if (starts.size() >= 2 && starts.back().pos == starts[starts.size() - 2].pos) {
        const auto pos = static_cast<std::size_t>(starts.back().pos);
        const std::string token = pos < text.size() ? text.substr(pos, 1) : "";
        return failure(
            {file, line_of(starts.back()), "", "invalid YAML: unexpected " + in_quotes(token)});
      }
    }
    if (documents.starts.empty()) {
      return failure({file, 0, "", "the file is empty (expected listeners, pools and routes)"});
    }
    // A plain Load would silently ignore a second document; refuse it instead.
    if (documents.starts.size() > 1) {
      return failure({file, line_of(documents.starts[1]), "", "only one YAML document is allowed"});
    }
    Reader reader(file);
    Config config = reader.read(YAML::Load(text));
    ConfigResult result;
    result.errors = reader.take_errors();
    if (result.errors.empty()) {
      config.path = file;
      result.config = std::move(config);
    }
    return result;
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own message for this is "bad file".
    return failure({file, line_of(e.mark), "", "invalid YAML: nested too deeply"});
  } catch (const YAML::Exception& e) {
    return failure({file, line_of(e.mark), "", "invalid YAML: " + e.msg});
  } catch (const std::exception& e) {
    return failure({file, 0, "", std::string("cannot load: ") + e.what()});
  }
}

ConfigResult load_config_file(const std::string& path) {
  try {
    const auto close = [](std::FILE* f) { std::fclose(f); };
    const std::unique_ptr<std::FILE, decltype(close)> in(std::fopen(path.c_str(), "rb"), close);
    if (!in) return failure({path, 0, "", std::string("cannot open: ") + std::strerror(errno)});
    std::string text;
    char buffer[64 * 1024];
    while (true) {
      const std::size_t n = std::fread(buffer, 1, sizeof buffer, in.get());
      text.append(buffer, n);
      if (text.size() > kMaxFileBytes) {
        return failure({path, 0, "", "cannot read: larger than 16 MiB, not a config file"});
      }
      if (n < sizeof buffer) break;
    }
    // A directory opens fine on Linux; its read fails with EISDIR.
    if (std::ferror(in.get())) {
      return failure({path, 0, "", std::string("cannot read: ") + std::strerror(errno)});
    }
    return load_config_text(text, path);
  } catch (const std::exception& e) {
    return failure({path, 0, "", std::string("cannot load: ") + e.what()});
  }
}

}  // namespace proxyd
