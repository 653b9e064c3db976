// Pure routing: a request's view (host, path, sticky inputs) + a snapshot + a draw -> a decision
// {route, slot, pool}. No I/O, no Beast: the session extracts the view, tests build it by hand.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "routing_snapshot.hpp"

namespace proxyd {

// What routing needs from a request. The views point into the request; they are only read during
// decide(). `cookie_header` is the raw Cookie field (all Cookie fields joined by "; ").
struct RequestView {
  std::string_view host;  // Host field, may include ":port"
  std::string_view path;  // request target (origin-form); query is ignored by prefix matching
  std::string_view cookie_header;
  std::string_view client_ip;
  // Looks up a header field by (case-insensitive) name; returns nullopt if absent.
  std::optional<std::string_view> (*header)(const void* ctx, std::string_view name) = nullptr;
  const void* header_ctx = nullptr;
};

struct Decision {
  const Route* route = nullptr;  // null: no route matches (404)
  SlotName slot = SlotName::live;
  const Pool* pool = nullptr;
  bool sticky_hit = false;  // the sticky key was present and decided the slot
  // sticky.set and the request had no cookie: the value drawn for it (16 hex digits), which
  // decided the slot and goes back in a Set-Cookie. Empty otherwise.
  std::array<char, 16> new_cookie{};
  bool set_cookie = false;
};

// Host matching: exact (case-insensitive, port ignored) or "*.example.com" (any subdomain, not the
// apex). An empty route host matches any request.
bool host_matches(std::string_view pattern, std::string_view host);
bool path_matches(std::string_view prefix, std::string_view path);

// First route whose host and path prefix both match, in config order.
const Route* match_route(const RoutingSnapshot& snapshot, std::string_view host,
                         std::string_view path);

// Extracts the value of cookie `name` from a Cookie header ("a=1; b=2"); nullopt if absent.
std::optional<std::string_view> find_cookie(std::string_view cookie_header, std::string_view name);

// The whole decision. `forced` is a listener's `slot:` setting. `random` is used only when the
// route has no sticky key or the request does not carry it.
Decision decide(const RoutingSnapshot& snapshot, const RequestView& request,
                std::optional<SlotName> forced, std::uint64_t random);

}  // namespace proxyd
