// The value syntaxes users type, in the config file and on proxyctl's command line alike:
// durations (500ms, 2s), sizes (16KiB), percentages (0.5, 0.5%) and host:port addresses. One
// yaml-free unit, so proxyctl parses a weight exactly as the config does without linking the
// config reader. Pure functions; nothing here throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace proxyd {

using Duration = std::chrono::milliseconds;

// Parts per million: the unit of a route's weight (the share sent to its passive slot).
inline constexpr std::uint32_t kPpmMax = 1'000'000;

// host:port as written; resolved to addresses when a snapshot is built. An IPv6 host is stored
// without brackets (as resolvers take it); text() puts them back: "[::1]:8080".
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string text() const;
};

// Each parser returns nullopt on bad input and, when `error` is given, says why in words that
// name the bad text (the config reader prefixes them with FILE:LINE: key:).
std::optional<Duration> parse_duration(std::string_view text,             // 500ms, 2s, 1m, 1h
                                       std::string* error = nullptr);
std::optional<std::uint64_t> parse_size(std::string_view text,            // 1024, 16KiB, 1GiB
                                        std::string* error = nullptr);
std::optional<std::uint32_t> parse_percent_ppm(std::string_view text,     // 0.5, 0.5%, 100
                                               std::string* error = nullptr);
// host:port or [v6]:port with a port of at least `min_port` (0 lets the kernel choose).
std::optional<Endpoint> parse_endpoint(std::string_view text, std::uint16_t min_port = 0,
                                       std::string* error = nullptr);

std::string format_percent(std::uint32_t ppm);  // 500000 -> "50", 5000 -> "0.5"
std::string format_duration(Duration duration);  // 1s, 1.5s, 250ms: as a config would write it

// Decimal digits only: no sign, no blank, no base prefix (std::from_chars alone accepts a
// leading run of digits and stops).
enum class Digits { ok, invalid, too_large };
Digits parse_digits(std::string_view text, std::uint64_t& value);

// Host names as DNS and container runtimes use them: letters, digits, '-' and '.', plus '_'
// (Docker Compose names containers like `shop_web_1` and resolves those names).
bool valid_host_name(std::string_view host);

// "text" with the quotes, for messages that name a bad value (not `quoted`: ADL would also find
// std::quoted for std::string arguments).
std::string in_quotes(std::string_view text);

}  // namespace proxyd
