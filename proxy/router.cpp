// Pure routing: host and path matching, Cookie parsing and the per-request decision. Runs once per
// request on the worker thread, so nothing here allocates: every input and output is a view into
// the request or a pointer into the snapshot.
#include "router.hpp"

#include "split_policy.hpp"

namespace proxyd {

namespace {

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Host names are ASCII (IDNs arrive as punycode), so an ASCII fold is the whole of case folding.
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool iends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && iequals(text.substr(text.size() - suffix.size()), suffix);
}

// "Example.com:8080" -> "Example.com", "[::1]:8080" -> "::1", "example.com." -> "example.com".
// A bare IPv6 literal (more than one colon, no brackets) has no port to strip. The trailing dot of
// an absolute name is dropped because "example.com." names the same host as "example.com".
std::string_view host_name(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  const auto colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

// Optional whitespace around cookie pairs, names and values (RFC 6265 allows SP and HTAB).
std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The route's sticky key in this request, if it carries one. An empty value counts as absent:
// hashing it would put every such request in one bucket, which then flips as a single block.
std::optional<std::string_view> sticky_key(const Route& route, const RequestView& request) {
  std::optional<std::string_view> key;
  switch (route.sticky.kind) {
    case StickyConfig::Kind::none:
      break;
    case StickyConfig::Kind::cookie:
      key = find_cookie(request.cookie_header, route.sticky.name);
      break;
    case StickyConfig::Kind::header:
      if (request.header != nullptr) key = request.header(request.header_ctx, route.sticky.name);
      break;
    case StickyConfig::Kind::client_ip:
      key = request.client_ip;
      break;
  }
  if (key && key->empty()) key.reset();
  return key;
}

}  // namespace

bool host_matches(std::string_view pattern, std::string_view host) {
  if (pattern.empty() || pattern == "*") return true;
  const std::string_view name = host_name(host);
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    // "*.example.com": at least one label before ".example.com"; the apex itself does not match.
    std::string_view suffix = pattern.substr(1);
    if (suffix.back() == '.') suffix.remove_suffix(1);
    return name.size() > suffix.size() && iends_with(name, suffix);
  }
  return iequals(host_name(pattern), name);
}

bool path_matches(std::string_view prefix, std::string_view path) {
  return path.substr(0, prefix.size()) == prefix;
}

const Route* match_route(const RoutingSnapshot& snapshot, std::string_view host,
                         std::string_view path) {
  for (const Route& route : snapshot.routes) {
    if (host_matches(route.host, host) && path_matches(route.path_prefix, path)) return &route;
  }
  return nullptr;
}

std::optional<std::string_view> find_cookie(std::string_view cookie_header, std::string_view name) {
  if (name.empty()) return std::nullopt;
  while (!cookie_header.empty()) {
    const auto semicolon = cookie_header.find(';');
    const std::string_view pair = trim(cookie_header.substr(0, semicolon));
    cookie_header = semicolon == std::string_view::npos ? std::string_view{}
                                                        : cookie_header.substr(semicolon + 1);
    const auto equals = pair.find('=');
    if (equals == std::string_view::npos) continue;
    if (trim(pair.substr(0, equals)) == name) return trim(pair.substr(equals + 1));
  }
  return std::nullopt;
}

Decision decide(const RoutingSnapshot& snapshot, const RequestView& request,
                std::optional<SlotName> forced, std::uint64_t random) {
  Decision decision;
  decision.route = match_route(snapshot, request.host, request.path);
  if (decision.route == nullptr) return decision;
  const Route& route = *decision.route;

  if (forced) {
    decision.slot = *forced;
  } else if (!route.preview_header.empty() && request.header != nullptr &&
             request.header(request.header_ctx, route.preview_header)) {
    decision.slot = SlotName::passive;
  } else {
    std::uint32_t bucket = 0;
    if (const auto key = sticky_key(route, request)) {
      bucket = sticky_bucket(*key, route.sticky_salt);
      decision.sticky_hit = true;
    } else if (route.sticky.set) {
      // A new member: the cookie it will carry from now on decides, as it will next time. The
      // value only sorts clients into cohorts; it authenticates nothing, so the worker's fast
      // generator is enough.
      constexpr char kHex[] = "0123456789abcdef";
      for (std::size_t i = 0; i < decision.new_cookie.size(); ++i)
        decision.new_cookie[i] = kHex[(random >> (4 * i)) & 0xf];
      decision.set_cookie = true;
      bucket = sticky_bucket(std::string_view(decision.new_cookie.data(), decision.new_cookie.size()),
                             route.sticky_salt);
    } else {
      bucket = draw_bucket(random);
    }
    decision.slot = choose_slot(route.weight_ppm, bucket);
  }

  // The builder guarantees valid indexes; the check keeps a bad snapshot a 5xx rather than a crash.
  const std::uint32_t pool = decision.slot == SlotName::live ? route.live_pool : route.passive_pool;
  if (pool < snapshot.pools.size()) decision.pool = &snapshot.pools[pool];
  return decision;
}

}  // namespace proxyd
