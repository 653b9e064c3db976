// Reads a proxyd YAML config into the plain structs of config.hpp. This is the only yaml-cpp user.
// Every problem is collected (never just the first) as FILE:LINE: key: message, so one
// `proxyd --check` run shows everything to fix; nothing here throws.
//
// Each section of the file (the top level, a listener, admin, a pool, a route, ...) is one table of
// keys: a row names a key once, says how its value is read and whether it is required, and the
// table gives both the allow-list of the "unknown key" message and the reading. What spans items
// or sections (unique names, the pools a route names, unreachable routes, defaults taken from
// another key) is a separate pass over the structs once everything is read.
#include "proxy/config.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <unistd.h>

namespace proxyd {
namespace {

// Line 0 means "the whole file" (it could not be read, or it is empty); an empty key means the
// problem is not about one setting (a YAML syntax error). Both are left out rather than printed as
// ":0" or ": :".
std::string location(const ConfigError& problem) {
  std::string out = problem.file;
  if (problem.line > 0) out += ":" + std::to_string(problem.line);
  if (!problem.key.empty()) out += ": " + problem.key;
  return out + ": ";
}

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

std::string invalid_name(std::string_view what, std::string_view text) {
  return "invalid " + std::string(what) + " " + in_quotes(text) +
         " (use letters, digits, '-', '_' and '.')";
}

// A Host header for health checks: a host name, with a port if any.
bool valid_host_header(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    std::uint64_t port = 0;
    if (parse_digits(text.substr(colon + 1), port) != Digits::ok || port == 0 || port > 65535)
      return false;
    text = text.substr(0, colon);
  }
  return valid_host_name(text);
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

// "a, b, c" with `last` before the final name: ", " lists keys, " or " offers a choice.
template <class Rows>
std::string listing(const Rows& rows, std::string_view last) {
  std::string out;
  for (std::size_t i = 0; i < std::size(rows); ++i) {
    if (i > 0) out += i + 1 == std::size(rows) ? last : ", ";
    out += rows[i].name;
  }
  return out;
}

std::string first_at(int line) { return " (first at line " + std::to_string(line) + ")"; }

// The line `name` was first seen at, if it was seen before; otherwise remembers `line` for it.
std::optional<int> seen_before(std::map<std::string, int>& first_lines, const std::string& name,
                               int line) {
  const auto [first, inserted] = first_lines.emplace(name, line);
  if (inserted) return std::nullopt;
  return first->second;
}

// A YAML value with where it came from: its dotted key path and the position to blame for it
// (a 1-based line, and a 0-based column that only orders problems found on one line).
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

std::string child_key(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

std::string item_key(const std::string& list, std::size_t index) {
  return list + "[" + std::to_string(index) + "]";
}

std::string node_kind(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  return "a single value";
}

class Reader;

// One key of a section: a row of the section's table.
template <class Section>
struct Key {
  std::string_view name;
  void (*read)(Reader&, const Value&, Section&);
  bool required = false;
};

constexpr bool kRequired = true;

// Walks one parsed document, collecting errors and warnings; the functions below read the values
// and the tables drive them. Lives for one load call.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void error(const Value& where, std::string message) {
    errors_.push_back(
        Found{where.column, ConfigError{file_, where.line, where.key, std::move(message)}});
  }

  // For a value that breaks a rule: reports it and reads as no value (`return r.refuse(...)`).
  std::nullopt_t refuse(const Value& where, std::string message) {
    error(where, std::move(message));
    return std::nullopt;
  }

  void warn(const Value& where, std::string message) {
    warnings_.push_back(
        Found{where.column, ConfigError{file_, where.line, where.key, std::move(message)}});
  }

  std::vector<ConfigError> take_errors() { return in_file_order(errors_); }
  std::vector<ConfigError> take_warnings() { return in_file_order(warnings_); }

  // The entries of a map, each blamed on its key, duplicates reported and dropped; nullopt when
  // it is not a map (reported). A null value (`key:` with nothing after it) reads as an empty map,
  // so `admin:` alone means "all defaults". `if_empty`, when given, is the error for no entries.
  std::optional<std::vector<Entry>> entries(const Value& map, std::string_view duplicate_what,
                                            std::string_view if_empty = {});

  // The items of a list; a null value reads as an empty list, so `routes:` alone reports
  // `if_empty` (when given).
  std::vector<Value> items(const Value& list, std::string_view if_empty = {});

  // A null value reads as "", so each setting reports emptiness in its own words.
  std::optional<std::string> scalar(const Value& value) {
    if (value.node.IsNull()) return std::string();
    if (!value.node.IsScalar())
      return refuse(value, "expected a single value, got " + node_kind(value.node));
    return value.node.Scalar();
  }

  // Reads map `map` into `out` by the section's table. Unknown and duplicate keys are reported
  // first; then each row, in table order, reads its key or reports it missing. Returns how many
  // keys of the table were present; nullopt when `map` is not a map.
  template <class Section>
  std::optional<std::size_t> section(const Value& map,
                                     std::span<const Key<std::type_identity_t<Section>>> keys,
                                     Section& out);

  // One section per item of a list, each remembering the line it starts on.
  template <class Section>
  void list(const Value& value, std::string_view if_empty,
            std::span<const Key<std::type_identity_t<Section>>> keys, std::vector<Section>& out) {
    for (const Value& item : items(value, if_empty)) {
      Section& section_out = out.emplace_back();
      section_out.line = item.line;
      section(item, keys, section_out);
    }
  }

  // For the cross-check pass, which sees only the structs: where to blame key `name` of the
  // section at `parent`, which is the key as written, or the section when the key was left out.
  Value at(const std::string& parent, std::string_view name) const {
    const std::string key = child_key(parent, name);
    auto found = seen_.find(key);
    if (found == seen_.end()) found = seen_.find(parent);
    Value out = found != seen_.end() ? found->second : Value{};
    out.key = key;
    return out;
  }

  // For the cross-check pass: whether the section at `parent` was a map (or nothing) and its key
  // `name` was read without a problem (left out counts as read).
  bool read_cleanly(const std::string& parent, std::string_view name) const {
    const auto section = seen_.find(parent);
    return section != seen_.end() &&
           (section->second.node.IsMap() || section->second.node.IsNull()) &&
           !troubled_.contains(child_key(parent, name));
  }

 private:
  struct Found {
    int column = 0;
    ConfigError error;
  };

  // File order, so the first printed is the first one the user meets; stable, so problems at one
  // position keep the order they were found in.
  static std::vector<ConfigError> in_file_order(std::vector<Found>& found) {
    std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
      return std::pair(a.error.line, a.column) < std::pair(b.error.line, b.column);
    });
    std::vector<ConfigError> out;
    for (Found& one : found) out.push_back(std::move(one.error));
    return out;
  }

  std::string file_;
  std::vector<Found> errors_;
  std::vector<Found> warnings_;
  std::map<std::string, Value, std::less<>> seen_;  // every entry and item read, by key
  std::set<std::string, std::less<>> troubled_;     // the keys whose reading found a problem
};

std::optional<std::vector<Entry>> Reader::entries(const Value& map, std::string_view duplicate_what,
                                                  std::string_view if_empty) {
  if (!map.node.IsNull() && !map.node.IsMap()) {
    return refuse(map, "expected a map, got " + node_kind(map.node));
  }
  std::vector<Entry> out;
  std::map<std::string, int> first_lines;
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
    if (const auto first = seen_before(first_lines, name, line)) {
      error(value, "duplicate " + std::string(duplicate_what) + first_at(*first));
      continue;
    }
    seen_.emplace(value.key, value);
    out.push_back(Entry{name, std::move(value)});
  }
  if (out.empty() && !if_empty.empty()) error(map, std::string(if_empty));
  return out;
}

std::vector<Value> Reader::items(const Value& list, std::string_view if_empty) {
  std::vector<Value> out;
  if (!list.node.IsNull() && !list.node.IsSequence()) {
    error(list, "expected a list, got " + node_kind(list.node));
    return out;
  }
  if (list.node.size() == 0 && !if_empty.empty()) error(list, std::string(if_empty));
  std::size_t index = 0;
  for (auto it = list.node.begin(); it != list.node.end(); ++it, ++index) {
    // An empty item (`-` alone) has the mark of the next token, so it is blamed on the list.
    const YAML::Mark mark = it->Mark();
    const bool own_mark = !it->IsNull() && !mark.is_null();
    out.push_back(Value{*it, item_key(list.key, index), own_mark ? mark.line + 1 : list.line,
                        own_mark ? mark.column : list.column});
    seen_.emplace(out.back().key, out.back());
  }
  return out;
}

template <class Section>
std::optional<std::size_t> Reader::section(const Value& map,
                                           std::span<const Key<std::type_identity_t<Section>>> keys,
                                           Section& out) {
  std::optional<std::vector<Entry>> found = entries(map, "key");
  if (!found) return std::nullopt;
  std::vector<Entry> known;
  for (Entry& entry : *found) {
    if (std::none_of(keys.begin(), keys.end(),
                     [&](const Key<Section>& key) { return key.name == entry.name; })) {
      error(entry.value, "unknown key (expected one of: " + listing(keys, ", ") + ")");
      continue;
    }
    known.push_back(std::move(entry));
  }
  for (const Key<Section>& key : keys) {
    const auto entry = std::find_if(known.begin(), known.end(),
                                    [&](const Entry& e) { return e.name == key.name; });
    if (entry != known.end()) {
      const std::size_t errors_before = errors_.size();
      key.read(*this, entry->value, out);
      if (errors_.size() != errors_before) troubled_.insert(entry->value.key);
    } else if (key.required) {
      error(Value{YAML::Node(), child_key(map.key, key.name), map.line, map.column},
            "required key is missing");
    }
  }
  return known.size();
}

// --- Single values: each reads one, reports what is wrong with it, and returns it when valid.

// A value in one of the syntaxes of values.hpp, whose parser says what is wrong with the text.
template <class Parse>
auto parsed(Reader& r, const Value& v, Parse parse)
    -> decltype(parse(std::string_view(), nullptr)) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  std::string why;
  auto value = parse(*text, &why);
  if (!value) r.error(v, why);
  return value;
}

std::optional<std::string> non_empty(Reader& r, const Value& v, std::string message) {
  std::optional<std::string> text = r.scalar(v);
  if (text && text->empty()) return r.refuse(v, std::move(message));
  return text;
}

std::optional<std::string> text(Reader& r, const Value& v) {
  return non_empty(r, v, "must not be empty");
}

std::optional<std::string> name(Reader& r, const Value& v) {
  std::optional<std::string> out = text(r, v);
  if (out && !valid_name(*out)) return r.refuse(v, invalid_name("name", *out));
  return out;
}

// Decimal digits only, from `min` to `max`.
std::optional<std::uint64_t> in_range(std::string_view text, std::uint64_t min, std::uint64_t max) {
  std::uint64_t number = 0;
  if (parse_digits(text, number) != Digits::ok || number < min || number > max) return std::nullopt;
  return number;
}

template <std::uint64_t kMin, std::uint64_t kMax>
std::optional<std::uint64_t> whole(Reader& r, const Value& v) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  const std::optional<std::uint64_t> number = in_range(*text, kMin, kMax);
  if (!number) {
    return r.refuse(v, "expected a whole number from " + std::to_string(kMin) + " to " +
                           std::to_string(kMax) + ", got " + in_quotes(*text));
  }
  return number;
}

std::optional<std::uint64_t> workers(Reader& r, const Value& v) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  if (*text == "auto") return 0;
  const std::optional<std::uint64_t> number = in_range(*text, 1, 1024);
  if (!number) {
    return r.refuse(v, "expected auto or a whole number from 1 to 1024, got " + in_quotes(*text));
  }
  return number;
}

std::optional<Duration> duration(Reader& r, const Value& v) {
  const std::optional<Duration> out = parsed(r, v, parse_duration);
  if (out && out->count() == 0) return r.refuse(v, "must be greater than 0");
  return out;
}

template <std::uint64_t kMax>
std::optional<std::uint64_t> size(Reader& r, const Value& v) {
  const std::optional<std::uint64_t> out = parsed(r, v, parse_size);
  if (out && *out == 0) return r.refuse(v, "must be greater than 0");
  if (out && *out > kMax) return r.refuse(v, "must be at most " + std::to_string(kMax) + " bytes");
  return out;
}

std::optional<std::uint32_t> percent(Reader& r, const Value& v) {
  return parsed(r, v, parse_percent_ppm);
}

std::optional<std::uint32_t> positive_percent(Reader& r, const Value& v) {
  const std::optional<std::uint32_t> out = percent(r, v);
  if (out && *out == 0) return r.refuse(v, "must be greater than 0");
  return out;
}

template <std::uint16_t kMinPort>
std::optional<Endpoint> address(Reader& r, const Value& v) {
  return parsed(r, v, [](std::string_view text, std::string* why) {
    return parse_endpoint(text, kMinPort, why);
  });
}

// A single value that `valid` accepts; otherwise reports `before` "TEXT" `after`.
template <class Valid>
std::optional<std::string> valid_text(Reader& r, const Value& v, Valid valid,
                                      std::string_view before, std::string_view after = {}) {
  std::optional<std::string> out = r.scalar(v);
  if (out && !valid(*out)) {
    return r.refuse(v, std::string(before) + in_quotes(*out) + std::string(after));
  }
  return out;
}

std::optional<std::string> path(Reader& r, const Value& v) {
  return valid_text(
      r, v, [](std::string_view text) { return text.starts_with('/'); }, "must start with /, got ");
}

std::optional<std::string> route_host(Reader& r, const Value& v) {
  return valid_text(r, v, valid_route_host, "invalid host ",
                    " (expected a host name like api.example.com or *.example.com)");
}

std::optional<std::string> header_name(Reader& r, const Value& v) {
  return valid_text(r, v, valid_token, "invalid header name ");
}

std::optional<std::string> cookie_name(Reader& r, const Value& v) {
  return valid_text(r, v, valid_token, "invalid cookie name ");
}

// A word from a fixed set, each meaning one value.
template <class T>
struct Word {
  std::string_view name;
  T value;
};

constexpr Word<SlotName> kSlots[] = {{"live", SlotName::live}, {"passive", SlotName::passive}};
constexpr Word<LogFormat> kLogFormats[] = {{"text", LogFormat::text}, {"json", LogFormat::json}};
constexpr Word<LogLevel> kLogLevels[] = {{"debug", LogLevel::debug},
                                         {"info", LogLevel::info},
                                         {"warning", LogLevel::warning},
                                         {"error", LogLevel::error}};
constexpr Word<Balance> kBalances[] = {{"round_robin", Balance::round_robin},
                                       {"least_request", Balance::least_request}};

template <const auto& kWords>
auto one_of(Reader& r, const Value& v) -> std::optional<decltype(kWords[0].value)> {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  for (const auto& word : kWords) {
    if (word.name == *text) return word.value;
  }
  return r.refuse(v, "expected " + listing(kWords, " or ") + ", got " + in_quotes(*text));
}

std::optional<std::string> socket_path(Reader& r, const Value& v) {
  std::optional<std::string> out = text(r, v);
  if (out && out->size() > kMaxUnixSocketPath) {
    return r.refuse(v, "too long for a Unix socket path (at most " +
                           std::to_string(kMaxUnixSocketPath) + " bytes)");
  }
  return out;
}

std::optional<std::string> log_target(Reader& r, const Value& v) {
  return non_empty(r, v, "must not be empty (use stdout, off or a file path)");
}

// Octal as chmod takes it, with or without the leading 0: 660 and 0660 are the same mode.
std::optional<std::uint32_t> file_mode(Reader& r, const Value& v) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  std::uint32_t bits = 0;
  const bool octal =
      text->size() >= 3 && text->size() <= 4 &&
      std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '7'; });
  if (octal) std::from_chars(text->data(), text->data() + text->size(), bits, 8);
  if (!octal || bits > 0777) {
    return r.refuse(
        v, "expected an octal file mode from 000 to 0777, e.g. 0660, got " + in_quotes(*text));
  }
  return bits;
}

// The portable POSIX user and group name characters.
std::optional<std::string> group_name(Reader& r, const Value& v) {
  return valid_text(
      r, v, [](std::string_view text) { return valid_name(text) && text.front() != '-'; },
      "invalid group name ");
}

// User and group ids are 32-bit; (uid_t)-1 means "no id" to the kernel, so it is not one.
std::optional<std::vector<std::int64_t>> ids(Reader& r, const Value& v) {
  std::vector<std::int64_t> out;
  for (const Value& item : r.items(v)) {
    if (const auto id = whole<0, 4'294'967'294>(r, item))
      out.push_back(static_cast<std::int64_t>(*id));
  }
  return out;
}

// A pool's servers: at least one, each once (a server listed twice would get twice the share).
std::optional<std::vector<Endpoint>> servers(Reader& r, const Value& v) {
  std::vector<Endpoint> out;
  std::map<std::string, int> first_lines;
  for (const Value& item : r.items(v, "a pool needs at least one server")) {
    std::optional<Endpoint> server = address<1>(r, item);
    if (!server) continue;
    if (const auto first = seen_before(first_lines, server->text(), item.line)) {
      r.error(item, "duplicate server " + server->text() + first_at(*first));
      continue;
    }
    out.push_back(std::move(*server));
  }
  return out;
}

// --- Row readers: how a row puts what it read into its section.

template <class Section, class T>
Section section_of(T Section::*);

// The section a pointer to member belongs to: SectionOf<&TlsConfig::cert> is TlsConfig.
template <auto kMember>
using SectionOf = decltype(section_of(kMember));

std::optional<bool> boolean(Reader& r, const Value& v) {
  bool on = false;
  if (!v.node.IsScalar() || !YAML::convert<bool>::decode(v.node, on)) {
    return r.refuse(v, "expected true or false");
  }
  return on;
}

// Most rows: the value read by `kRead` goes to `kMember` when it is valid (kRead already keeps it
// in the member's range, so the cast cannot narrow).
template <auto kMember, auto kRead>
void store(Reader& r, const Value& v, SectionOf<kMember>& out) {
  if (auto value = kRead(r, v)) {
    out.*kMember = static_cast<std::remove_reference_t<decltype(out.*kMember)>>(std::move(*value));
  }
}

// A section nested in a member of another: admin, timeouts and limits in the top level.
template <auto kMember, const auto& kKeys>
void nested(Reader& r, const Value& v, SectionOf<kMember>& out) {
  r.section(v, kKeys, out.*kMember);
}

// --- The sections, each a table in the order the keys are read, innermost first (a table must be
// defined before the table that nests it).

constexpr Word<TlsVersion> kTlsVersions[] = {{"1.2", TlsVersion::v1_2}, {"1.3", TlsVersion::v1_3}};

constexpr Key<TlsCertificate> kCertificateKeys[] = {
    {"cert", store<&TlsCertificate::cert, text>, kRequired},
    {"key", store<&TlsCertificate::key, text>, kRequired},
    {"ocsp", store<&TlsCertificate::ocsp, text>},
};

void read_certificates(Reader& r, const Value& v, TlsConfig& tls) {
  for (const Value& item : r.items(v, "at least one certificate is required")) {
    TlsCertificate& certificate = tls.certificates.emplace_back();
    certificate.line = item.line;
    certificate.where = item.key;
    r.section(item, kCertificateKeys, certificate);
  }
}

// The short form's keys are rows of the block itself, filling its one certificate.
template <auto kMember>
void single(Reader& r, const Value& v, TlsConfig& tls) {
  if (auto file = text(r, v)) tls.single.*kMember = std::move(*file);
}

// `certificates` is the long form.
constexpr Key<TlsConfig> kTlsKeys[] = {
    {"cert", single<&TlsCertificate::cert>},
    {"key", single<&TlsCertificate::key>},
    {"ocsp", single<&TlsCertificate::ocsp>},
    {"certificates", read_certificates},
    {"min_version", store<&TlsConfig::min_version, one_of<kTlsVersions>>},
    {"ciphers", store<&TlsConfig::ciphers, text>},
};

// Either the short form (cert and key) or the long one (certificates), never both. The files
// are read when the listener's contexts are built (proxy/tls.cpp), which --check does too.
void read_tls(Reader& r, const Value& v, ListenerConfig& listener) {
  TlsConfig& tls = listener.tls.emplace();
  tls.where = v.key;
  tls.line = v.line;
  if (!r.section(v, kTlsKeys, tls)) return;
  const bool short_form =
      !tls.single.cert.empty() || !tls.single.key.empty() || !tls.single.ocsp.empty();
  if (short_form && !tls.certificates.empty()) {
    r.error(v, "use cert, key and ocsp, or certificates, not both");
    return;
  }
  if (short_form) {
    // A key written but empty was reported as such already.
    for (const std::string_view key : {"cert", "key"}) {
      const std::string& file = key == "cert" ? tls.single.cert : tls.single.key;
      if (file.empty() && r.read_cleanly(v.key, key))
        r.error(r.at(v.key, key), "required key is missing");
    }
    tls.single.where = v.key;
    tls.single.line = v.line;
    tls.certificates.push_back(tls.single);
  } else if (tls.certificates.empty() && r.read_cleanly(v.key, "certificates")) {
    // An empty block: the short form is what most configs want.
    r.error(r.at(v.key, "cert"), "required key is missing");
    r.error(r.at(v.key, "key"), "required key is missing");
  }
}

// A size from kMin to kMax bytes.
template <std::uint64_t kMin, std::uint64_t kMax>
std::optional<std::uint64_t> size_between(Reader& r, const Value& v) {
  const std::optional<std::uint64_t> out = parsed(r, v, parse_size);
  if (out && (*out < kMin || *out > kMax)) {
    return r.refuse(v, "must be from " + std::to_string(kMin) + " to " + std::to_string(kMax) +
                           " bytes, got " + std::to_string(*out));
  }
  return out;
}

// Streams a connection may have open at once; what proxyd holds for a connection's request
// bodies is bounded by streams x initial_window_size.
constexpr Key<Http2Limits> kHttp2Keys[] = {
    {"max_concurrent_streams", store<&Http2Limits::max_concurrent_streams, whole<1, 1024>>},
    {"max_header_list_size", store<&Http2Limits::max_header_list_size, size_between<1024, 1048576>>},
    {"initial_window_size", store<&Http2Limits::initial_window_size, size_between<1024, 16777216>>},
};

// `http2: true|false`, or the long form: a map of limits, which turns HTTP/2 on.
void read_http2(Reader& r, const Value& v, ListenerConfig& listener) {
  if (v.node.IsMap()) {
    listener.http2 = true;
    r.section(v, kHttp2Keys, listener.http2_limits);
    return;
  }
  store<&ListenerConfig::http2, boolean>(r, v, listener);
}

constexpr Key<ListenerConfig> kListenerKeys[] = {
    {"name", store<&ListenerConfig::name, name>, kRequired},
    // Port 0 asks the kernel for a free port: tests start proxyd that way.
    {"address", store<&ListenerConfig::address, address<0>>, kRequired},
    {"tls", read_tls},
    {"slot", store<&ListenerConfig::slot, one_of<kSlots>>},
    {"http2", read_http2},
};

void read_metrics(Reader& r, const Value& v, AdminConfig& admin) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return;
  if (*text == "off") {
    admin.metrics.reset();
    return;
  }
  admin.metrics = address<0>(r, v);
}

constexpr Key<AdminConfig> kAdminKeys[] = {
    {"control_socket", store<&AdminConfig::control_socket, socket_path>},
    {"metrics", read_metrics},
    {"state_file", store<&AdminConfig::state_file, text>},
    {"access_log", store<&AdminConfig::access_log, log_target>},
    {"access_log_format", store<&AdminConfig::access_log_format, one_of<kLogFormats>>},
    {"audit_log", store<&AdminConfig::audit_log, text>},  // "" = beside state_file (cross-check)
    {"control_mode", store<&AdminConfig::control_mode, file_mode>},
    {"control_group", store<&AdminConfig::control_group, group_name>},
    {"control_allow_uids", store<&AdminConfig::control_allow_uids, ids>},
    {"control_allow_gids", store<&AdminConfig::control_allow_gids, ids>},
    {"control_read_uids", store<&AdminConfig::control_read_uids, ids>},
    {"control_read_gids", store<&AdminConfig::control_read_gids, ids>},
    {"log_level", store<&AdminConfig::log_level, one_of<kLogLevels>>},
};

// "200-399", "200", or a list of those: "200-299, 301".
std::optional<std::vector<StatusRange>> status_ranges(Reader& r, const Value& v) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  std::vector<StatusRange> out;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const std::size_t dash = item.find('-');
    const auto first = in_range(item.substr(0, dash), 100, 599);
    const auto last = dash == std::string_view::npos ? first : in_range(item.substr(dash + 1), 100, 599);
    if (!first || !last || *last < *first) {
      return r.refuse(v, "expected status codes from 100 to 599 as ranges, e.g. 200-399 or "
                         "200-299, 301, got " + in_quotes(*text));
    }
    out.push_back(StatusRange{static_cast<unsigned>(*first), static_cast<unsigned>(*last)});
  }
  if (out.empty()) return r.refuse(v, "must not be empty");
  return out;
}

std::optional<std::string> health_host(Reader& r, const Value& v) {
  return valid_text(r, v, valid_host_header, "invalid host ", " (a host name, with a port if any)");
}

constexpr Key<HealthConfig> kHealthKeys[] = {
    {"path", store<&HealthConfig::path, path>},
    {"interval", store<&HealthConfig::interval, duration>},
    {"timeout", store<&HealthConfig::timeout, duration>},
    {"rise", store<&HealthConfig::rise, whole<1, 100>>},
    {"fall", store<&HealthConfig::fall, whole<1, 100>>},
    {"expect", store<&HealthConfig::expect, status_ranges>},
    {"host", store<&HealthConfig::host, health_host>},
};

constexpr Key<PassiveConfig> kPassiveKeys[] = {
    {"failures", store<&PassiveConfig::failures, whole<1, 1000>>},
    {"ejection", store<&PassiveConfig::ejection, duration>},
    {"max_ejection", store<&PassiveConfig::max_ejection, duration>},
    {"max_ejected_percent", store<&PassiveConfig::max_ejected_percent, whole<0, 100>>},
};

// `passive: off` turns passive checks off; a map tunes them.
void read_passive(Reader& r, const Value& v, PoolConfig& pool) {
  if (v.node.IsScalar()) {
    if (v.node.Scalar() != "off") {
      r.error(v, "expected off or a map of " + listing(kPassiveKeys, ", ") + ", got " +
                     in_quotes(v.node.Scalar()));
    }
    pool.passive.enabled = false;
    return;
  }
  r.section(v, kPassiveKeys, pool.passive);
}

void read_health(Reader& r, const Value& v, PoolConfig& pool) {
  r.section(v, kHealthKeys, pool.health.emplace());
}

std::optional<std::string> sni_name(Reader& r, const Value& v) {
  return valid_text(r, v, valid_host_name, "invalid server name ",
                    " (expected a host name like app.internal)");
}

constexpr Key<UpstreamTlsConfig> kUpstreamTlsKeys[] = {
    {"ca", store<&UpstreamTlsConfig::ca, text>},
    {"sni", store<&UpstreamTlsConfig::sni, sni_name>},
    {"verify", store<&UpstreamTlsConfig::verify, boolean>},
};

void read_upstream_tls(Reader& r, const Value& v, PoolConfig& pool) {
  UpstreamTlsConfig& tls = pool.tls.emplace();
  tls.where = v.key;
  tls.line = v.line;
  r.section(v, kUpstreamTlsKeys, tls);
}

constexpr Key<PoolConfig> kPoolKeys[] = {
    {"servers", store<&PoolConfig::servers, servers>, kRequired},
    {"balance", store<&PoolConfig::balance, one_of<kBalances>>},
    {"health", read_health},
    {"passive", read_passive},
    {"fail_open", store<&PoolConfig::fail_open, boolean>},
    {"tls", read_upstream_tls},
};

// A route's match keys are fields of the route itself.
constexpr Key<RouteConfig> kMatchKeys[] = {
    {"host", store<&RouteConfig::host, route_host>},
    {"path_prefix", store<&RouteConfig::path_prefix, path>},
};

template <StickyConfig::Kind kKind, auto kRead>
void sticky_by(Reader& r, const Value& v, StickyConfig& sticky) {
  sticky.kind = kKind;
  if (auto name = kRead(r, v)) sticky.name = std::move(*name);
}

// `client_ip: false` would read as "sticky, but by nothing"; leaving sticky out says that.
void sticky_by_client_ip(Reader& r, const Value& v, StickyConfig& sticky) {
  sticky.kind = StickyConfig::Kind::client_ip;
  bool on = false;
  if (!YAML::convert<bool>::decode(v.node, on) || !on) {
    r.error(v, "must be true (leave sticky out for no stickiness)");
  }
}

constexpr Word<CookieSet::SameSite> kSameSites[] = {{"Lax", CookieSet::SameSite::lax},
                                                    {"Strict", CookieSet::SameSite::strict},
                                                    {"None", CookieSet::SameSite::none}};

// A Domain attribute: a host name (letters, digits, dots, dashes), no scheme, port or path.
std::optional<std::string> cookie_domain(Reader& r, const Value& v) {
  return valid_text(
      r, v,
      [](std::string_view text) {
        return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
        });
      },
      "invalid cookie domain ", " (expected a host name like example.com)");
}

// A cookie Path: starts with /, and no character that would end the attribute or the field.
std::optional<std::string> cookie_path(Reader& r, const Value& v) {
  return valid_text(
      r, v,
      [](std::string_view text) {
        return text.starts_with('/') && std::none_of(text.begin(), text.end(), [](char c) {
                 return c == ';' || c < 0x21 || c == 0x7f;
               });
      },
      "must start with / and hold no ; or blank, got ");
}

constexpr Key<CookieSet> kCookieSetKeys[] = {
    {"path", store<&CookieSet::path, cookie_path>},
    {"domain", store<&CookieSet::domain, cookie_domain>},
    {"max_age", store<&CookieSet::max_age, duration>},
    {"secure", store<&CookieSet::secure, boolean>},
    {"http_only", store<&CookieSet::http_only, boolean>},
    {"same_site", store<&CookieSet::same_site, one_of<kSameSites>>},
};

// `set: true` (the default attributes), `set: false`, or a map of attributes.
void sticky_cookie_set(Reader& r, const Value& v, StickyConfig& sticky) {
  if (v.node.IsMap()) {
    CookieSet& set = sticky.set.emplace();
    r.section(v, kCookieSetKeys, set);
    if (set.same_site == CookieSet::SameSite::none && !set.secure)
      r.error(v, "same_site: None needs secure: true (browsers drop the cookie otherwise)");
    return;
  }
  if (const std::optional<bool> on = boolean(r, v); on && *on) sticky.set.emplace();
}

// Exactly one of the kinds (cookie, header, client_ip): the key is the kind of stickiness.
constexpr Key<StickyConfig> kStickyKeys[] = {
    {"cookie", sticky_by<StickyConfig::Kind::cookie, cookie_name>},
    {"header", sticky_by<StickyConfig::Kind::header, header_name>},
    {"client_ip", sticky_by_client_ip},
    {"set", sticky_cookie_set},
};

void read_match(Reader& r, const Value& v, RouteConfig& route) { r.section(v, kMatchKeys, route); }

void read_sticky(Reader& r, const Value& v, RouteConfig& route) {
  const std::optional<std::size_t> keys = r.section(v, kStickyKeys, route.sticky);
  const bool has_set = v.node.IsMap() && v.node["set"];
  if (keys && *keys - (has_set ? 1 : 0) != 1) {
    r.error(v, "expected exactly one of cookie, header or client_ip");
    route.sticky = StickyConfig{};
  } else if (has_set && route.sticky.kind != StickyConfig::Kind::cookie) {
    r.error(v, "set: only a cookie can be set (sticky: {cookie: NAME, set: true})");
    route.sticky.set.reset();
  }
}

constexpr Key<RouteConfig> kRouteKeys[] = {
    {"name", store<&RouteConfig::name, name>, kRequired},
    {"match", read_match},
    {"live", store<&RouteConfig::live, text>, kRequired},
    {"passive", store<&RouteConfig::passive, text>},  // left out: the live pool (cross-check)
    {"weight", store<&RouteConfig::weight_ppm, percent>},
    {"sticky", read_sticky},
    {"preview_header", store<&RouteConfig::preview_header, header_name>},
    {"max_step", store<&RouteConfig::max_step_ppm, positive_percent>},
    {"drain", store<&RouteConfig::drain, duration>},
};

constexpr Key<TimeoutsConfig> kTimeoutKeys[] = {
    {"client_header", store<&TimeoutsConfig::client_header, duration>},
    {"client_idle", store<&TimeoutsConfig::client_idle, duration>},
    {"client_body", store<&TimeoutsConfig::client_body, duration>},
    {"upstream_connect", store<&TimeoutsConfig::upstream_connect, duration>},
    {"upstream_response", store<&TimeoutsConfig::upstream_response, duration>},
    {"upstream_idle", store<&TimeoutsConfig::upstream_idle, duration>},
    {"tls_handshake", store<&TimeoutsConfig::tls_handshake, duration>},
    {"drain", store<&TimeoutsConfig::drain, duration>},
    {"takeover", store<&TimeoutsConfig::takeover, duration>},
};

constexpr Key<LimitsConfig> kLimitKeys[] = {
    // Beast's header limit is a 32-bit count.
    {"max_header_bytes", store<&LimitsConfig::max_header_bytes, size<UINT32_MAX>>},
    {"max_body_bytes", store<&LimitsConfig::max_body_bytes, size<UINT64_MAX>>},
    // One host cannot hold more than 65535 connections to one server address anyway.
    {"upstream_idle_per_server", store<&LimitsConfig::upstream_idle_per_server, whole<0, 65535>>},
    {"max_connections", store<&LimitsConfig::max_connections, whole<1, 10'000'000>>},
};

// An etcd client URL: http://HOST:PORT or https://HOST:PORT (no path: the gateway's paths are
// proxyd's to add). `tls` says which.
std::optional<Endpoint> etcd_url(Reader& r, const Value& v, bool& tls) {
  const std::optional<std::string> text = r.scalar(v);
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  tls = rest.starts_with("https://");
  if (!tls && !rest.starts_with("http://"))
    return r.refuse(v, "expected an http://HOST:PORT or https://HOST:PORT URL, got " + in_quotes(*text));
  rest.remove_prefix(tls ? 8 : 7);
  if (rest.ends_with('/')) rest.remove_suffix(1);
  std::string why;
  std::optional<Endpoint> out = parse_endpoint(rest, 1, &why);
  if (!out)
    return r.refuse(v, "expected an http://HOST:PORT or https://HOST:PORT URL, got " + in_quotes(*text));
  return out;
}

// The URLs, and whether they are https:// (all of them or none: one client speaks one way).
struct EtcdUrls {
  std::vector<Endpoint> endpoints;
  bool tls = false;
};
std::optional<EtcdUrls> etcd_urls(Reader& r, const Value& v) {
  EtcdUrls out;
  std::size_t https = 0;
  std::size_t read = 0;
  for (const Value& item : r.items(v, "at least one etcd URL is required")) {
    bool tls = false;
    if (auto url = etcd_url(r, item, tls)) {
      out.endpoints.push_back(std::move(*url));
      https += tls ? 1 : 0;
      ++read;
    }
  }
  if (https != 0 && https != read)
    return r.refuse(v, "mixes http:// and https:// URLs: use https:// for every etcd endpoint");
  out.tls = https != 0;
  return out;
}

void store_etcd_urls(Reader& r, const Value& v, FleetConfig& fleet) {
  if (std::optional<EtcdUrls> urls = etcd_urls(r, v)) {
    fleet.etcd = std::move(urls->endpoints);
    fleet.tls = urls->tls;
  }
}

// A key prefix: absolute, no trailing slash (proxyd appends /desired, /members/HOST, ...), and
// nothing a key name would make ambiguous.
std::optional<std::string> fleet_prefix(Reader& r, const Value& v) {
  return valid_text(
      r, v,
      [](std::string_view text) {
        return text.size() > 1 && text.starts_with('/') && !text.ends_with('/') &&
               text.find("//") == std::string_view::npos &&
               std::all_of(text.begin(), text.end(), [](char c) {
                 return is_alpha(c) || is_digit(c) || c == '/' || c == '-' ||
                        c == '_' || c == '.';
               });
      },
      "expected a key prefix like /proxyd/prod (starts with /, no trailing /), got ");
}

constexpr Key<FleetConfig> kFleetKeys[] = {
    {"etcd", store_etcd_urls, kRequired},
    {"prefix", store<&FleetConfig::prefix, fleet_prefix>, kRequired},
    {"host", store<&FleetConfig::host, name>},  // default: the hostname (cross-check)
    {"ca", store<&FleetConfig::ca, text>},
    {"cert", store<&FleetConfig::cert, text>},
    {"key", store<&FleetConfig::key, text>},
    {"user", store<&FleetConfig::user, text>},
    {"password", store<&FleetConfig::password, text>},
};

// Two keys that go together: one without the other is an error at the missing one.
void check_pair(Reader& r, const Value& v, const std::string& a_value, const char* a,
                const std::string& b_value, const char* b) {
  if (a_value.empty() == b_value.empty()) return;
  // (A key written but wrong was reported as such already.)
  if (!r.read_cleanly(v.key, a) || !r.read_cleanly(v.key, b)) return;
  const bool a_missing = a_value.empty();
  r.error(r.at(v.key, a_missing ? a : b),
          std::string("required with fleet.") + (a_missing ? b : a));
}

void read_fleet(Reader& r, const Value& v, Config& config) {
  FleetConfig& fleet = config.fleet.emplace();
  if (!r.section(v, kFleetKeys, fleet)) return;
  check_pair(r, v, fleet.cert, "cert", fleet.key, "key");
  // TLS files with http:// URLs would do nothing.
  if (!fleet.tls && !fleet.etcd.empty()) {
    for (const auto& [key, file] : {std::pair{"ca", &fleet.ca}, std::pair{"cert", &fleet.cert},
                                     std::pair{"key", &fleet.key}}) {
      if (!file->empty())
        r.error(r.at(v.key, key), "needs https:// etcd URLs (these are http://: nothing to check)");
    }
  }
  // etcd authenticates a user with its password: one without the other is a mistake.
  check_pair(r, v, fleet.user, "user", fleet.password, "password");
}

void read_listeners(Reader& r, const Value& v, Config& config) {
  r.list(v, "at least one listener is required", kListenerKeys, config.listeners);
}

// A map from pool name to pool, so the name is the entry's key rather than a row.
void read_pools(Reader& r, const Value& v, Config& config) {
  const auto pools = r.entries(v, "pool name", "at least one pool is required");
  for (const Entry& entry : pools.value_or(std::vector<Entry>{})) {
    if (!valid_name(entry.name)) r.error(entry.value, invalid_name("pool name", entry.name));
    PoolConfig& pool = config.pools.emplace_back();
    pool.name = entry.name;
    pool.line = entry.value.line;
    r.section(entry.value, kPoolKeys, pool);
  }
}

void read_routes(Reader& r, const Value& v, Config& config) {
  r.list(v, "at least one route is required", kRouteKeys, config.routes);
}

constexpr Key<Config> kTopKeys[] = {
    {"workers", store<&Config::workers, workers>},
    {"listeners", read_listeners, kRequired},
    {"admin", nested<&Config::admin, kAdminKeys>},
    {"pools", read_pools, kRequired},
    {"routes", read_routes, kRequired},
    {"timeouts", nested<&Config::timeouts, kTimeoutKeys>},
    {"limits", nested<&Config::limits, kLimitKeys>},
    {"fleet", read_fleet},
};

// --- The cross-check pass: what spans items or sections, on the structs once everything is read.
// Only values that were read without errors take part (a name that is set, a fixed port), so one
// mistake is reported once.

// No two items of `list` (listeners, routes) have one name.
template <class Item>
void check_unique_names(Reader& r, const std::string& list, std::string_view what,
                        const std::vector<Item>& items) {
  std::map<std::string, int> first_lines;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].name.empty()) continue;
    const Value name = r.at(item_key(list, i), "name");
    if (const auto first = seen_before(first_lines, items[i].name, name.line)) {
      r.error(name, "duplicate " + std::string(what) + " name " + in_quotes(items[i].name) +
                        first_at(*first));
    }
  }
}

// Two listeners cannot share an address, except port 0: it binds a fresh ephemeral port each time.
void check_listener_addresses(Reader& r, const std::vector<ListenerConfig>& listeners) {
  std::map<std::string, std::pair<std::string, int>> address_users;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const ListenerConfig& listener = listeners[i];
    if (listener.address.port != 0) {
      const Value address = r.at(item_key("listeners", i), "address");
      const auto [first, inserted] = address_users.emplace(
          listener.address.text(), std::make_pair(listener.name, address.line));
      if (!inserted) {
        r.error(address, "address " + listener.address.text() + " is already used by listener " +
                             in_quotes(first->second.first) + " (line " +
                             std::to_string(first->second.second) + ")");
      }
    }
  }
}

// The pools a route names exist; a route without a passive pool has both slots bound to its live
// pool (nothing to split to until set-passive binds one).
void check_route_pools(Reader& r, Config& config) {
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    RouteConfig& route = config.routes[i];
    const std::string key = item_key("routes", i);
    // Without any pool every route's pools would be unknown; that noise would hide the one real
    // problem (the pools), so pool names are only checked when some pool was read.
    const auto check_pool = [&](std::string_view slot, const std::string& pool) {
      if (pool.empty() || config.pools.empty()) return;
      if (std::none_of(config.pools.begin(), config.pools.end(),
                       [&](const PoolConfig& p) { return p.name == pool; })) {
        r.error(r.at(key, slot), "unknown pool " + in_quotes(pool));
      }
    };
    check_pool("live", route.live);
    check_pool("passive", route.passive);
    if (route.passive.empty()) route.passive = route.live;
  }
}

// A route whose every request an earlier route already takes can never match: almost always an
// ordering mistake (a catch-all `/` listed first), so it is refused rather than silently dead.
// Routes whose match was not read cleanly are skipped: their defaults would match everything.
void check_reachable(Reader& r, const std::vector<RouteConfig>& routes) {
  std::vector<bool> match_ok;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    match_ok.push_back(r.read_cleanly(item_key("routes", i), "match"));
  }
  for (std::size_t later = 0; later < routes.size(); ++later) {
    if (!match_ok[later]) continue;
    for (std::size_t earlier = 0; earlier < later; ++earlier) {
      const RouteConfig& a = routes[earlier];
      const RouteConfig& b = routes[later];
      if (match_ok[earlier] && host_covers(a.host, b.host) &&
          path_covers(a.path_prefix, b.path_prefix)) {
        r.error(r.at(item_key("routes", later), "match"),
                "never matches: route " + in_quotes(a.name) + " (line " + std::to_string(a.line) +
                    ") comes first and matches every request this one would");
        break;
      }
    }
  }
}

// A check that outlasts its interval would overlap the next; an ejection cap below the first
// ejection would never let it grow.
void check_pool_timings(Reader& r, const std::vector<PoolConfig>& pools) {
  for (const PoolConfig& pool : pools) {
    const std::string key = "pools." + pool.name;
    if (pool.health && pool.health->timeout > pool.health->interval) {
      r.error(r.at(key + ".health", "timeout"), "must not be longer than interval (" +
                                                   format_duration(pool.health->interval) + ")");
    }
    if (pool.passive.max_ejection < pool.passive.ejection) {
      r.error(r.at(key + ".passive", "max_ejection"),
              "must not be shorter than ejection (" + format_duration(pool.passive.ejection) + ")");
    }
  }
}

void cross_check(Reader& r, Config& config) {
  check_unique_names(r, "listeners", "listener", config.listeners);
  check_pool_timings(r, config.pools);
  check_listener_addresses(r, config.listeners);
  check_unique_names(r, "routes", "route", config.routes);
  check_route_pools(r, config);
  check_reachable(r, config.routes);
  if (config.fleet && config.fleet->host.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) config.fleet->host = host;
    if (!valid_name(config.fleet->host)) {
      r.error(r.at("", "fleet"), "the hostname " + in_quotes(config.fleet->host) +
                                     " is not a valid member name: set fleet.host");
    }
  }
  // Without a path of its own the audit log sits beside the state file: one directory holds all
  // of proxyd's durable runtime data (and a test's temporary directory holds both).
  if (config.admin.audit_log.empty()) {
    const std::string& state = config.admin.state_file;
    const auto slash = state.rfind('/');
    config.admin.audit_log =
        (slash == std::string::npos ? "." : state.substr(0, slash)) + "/audit.log";
  }
}

Config read(Reader& r, const YAML::Node& root) {
  Config config;
  const YAML::Mark mark = root.Mark();
  const Value top{root, "", mark.is_null() ? 1 : mark.line + 1, mark.is_null() ? 0 : mark.column};
  if (!root.IsMap()) {
    r.error(top, "expected a map of settings at the top level, got " + node_kind(root));
    return config;
  }
  r.section(top, kTopKeys, config);
  cross_check(r, config);
  return config;
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

std::string ConfigError::text() const { return location(*this) + message; }

std::string ConfigError::warning_text() const { return location(*this) + "warning: " + message; }

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
    Config config = read(reader, YAML::Load(text));
    ConfigResult result;
    result.errors = reader.take_errors();
    result.warnings = reader.take_warnings();
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

std::string CookieSet::attributes() const {
  std::string out = "; Path=" + path;
  if (!domain.empty()) out += "; Domain=" + domain;
  if (max_age) {
    out += "; Max-Age=" +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*max_age).count());
  }
  if (secure) out += "; Secure";
  if (http_only) out += "; HttpOnly";
  out += same_site == SameSite::lax      ? "; SameSite=Lax"
         : same_site == SameSite::strict ? "; SameSite=Strict"
                                         : "; SameSite=None";
  return out;
}

}  // namespace proxyd
