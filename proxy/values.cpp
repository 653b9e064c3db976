// The value parsers of values.hpp. Every message names the bad text and the expected form.
#include "proxy/values.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>
#include <utility>

namespace proxyd {
namespace {

// Longer than any sane timeout, and small enough that adding it to a steady_clock time point in
// nanoseconds can never overflow.
constexpr std::int64_t kMaxDurationMs = 365LL * 24 * 60 * 60 * 1000;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_digit);
}

// The parsers below return the value or set `error` to a message naming the bad text.

std::optional<Duration> duration_or_error(std::string_view text, std::string& error) {
  std::size_t digits_end = 0;
  while (digits_end < text.size() && is_digit(text[digits_end])) ++digits_end;
  const std::string_view unit = text.substr(digits_end);
  static constexpr std::pair<std::string_view, std::int64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
  std::int64_t unit_ms = 0;
  for (const auto& [name, ms] : kUnits) {
    if (unit == name) unit_ms = ms;
  }
  std::uint64_t amount = 0;
  const Digits digits = parse_digits(text.substr(0, digits_end), amount);
  if (unit_ms == 0 || digits == Digits::invalid) {
    error = "invalid duration " + in_quotes(text) +
            ": expected a whole number and a unit (ms, s, m or h), e.g. 500ms or 2s";
    return std::nullopt;
  }
  if (digits == Digits::too_large ||
      amount > static_cast<std::uint64_t>(kMaxDurationMs / unit_ms)) {
    error = "duration " + in_quotes(text) + " is too long (at most 365 days)";
    return std::nullopt;
  }
  return Duration(static_cast<std::int64_t>(amount) * unit_ms);
}

std::optional<std::uint64_t> size_or_error(std::string_view text, std::string& error) {
  std::size_t digits_end = 0;
  while (digits_end < text.size() && is_digit(text[digits_end])) ++digits_end;
  const std::string_view unit = text.substr(digits_end);
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
  std::uint64_t multiplier = 0;
  for (const auto& [name, bytes] : kUnits) {
    if (unit == name) multiplier = bytes;
  }
  std::uint64_t amount = 0;
  const Digits digits = parse_digits(text.substr(0, digits_end), amount);
  if (multiplier == 0 || digits == Digits::invalid) {
    error = "invalid size " + in_quotes(text) +
            ": expected a whole number of bytes, optionally with KiB, MiB or GiB, e.g. 16384 or "
            "100MiB";
    return std::nullopt;
  }
  if (digits == Digits::too_large || amount > UINT64_MAX / multiplier) {
    error = "size " + in_quotes(text) + " is too large";
    return std::nullopt;
  }
  return amount * multiplier;
}

// Exact decimal parsing: a weight typed as 0.5 must become 5000 ppm, not 4999 after a round trip
// through a double.
std::optional<std::uint32_t> percent_or_error(std::string_view text, std::string& error) {
  std::string_view number = text;
  if (!number.empty() && number.back() == '%') number.remove_suffix(1);
  const std::size_t point = number.find('.');
  const std::string_view whole = number.substr(0, point);
  const std::string_view fraction =
      point == std::string_view::npos ? std::string_view() : number.substr(point + 1);
  std::uint64_t whole_value = 0;
  const Digits digits = parse_digits(whole, whole_value);
  const bool fraction_ok = point == std::string_view::npos || all_digits(fraction);
  if (digits == Digits::invalid || !fraction_ok) {
    error = "invalid percentage " + in_quotes(text) +
            ": expected a number from 0 to 100, e.g. 0.5, 0.5% or 100";
    return std::nullopt;
  }
  if (fraction.size() > 4) {
    error = "too many decimals in " + in_quotes(text) + " (the resolution is 0.0001%)";
    return std::nullopt;
  }
  std::uint64_t ppm = 0;
  if (digits == Digits::ok && whole_value <= 100) {
    std::uint64_t fraction_value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      fraction_value = fraction_value * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
    }
    ppm = whole_value * 10'000 + fraction_value;
  }
  if (digits == Digits::too_large || whole_value > 100 || ppm > kPpmMax) {
    error = "percentage " + in_quotes(text) + " is above 100";
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(ppm);
}

bool valid_ipv6_text(std::string_view host) {
  if (host.find(':') == std::string_view::npos) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
  });
}

// An IPv6 host is stored without brackets (the form resolvers take); Endpoint::text() adds them.
std::optional<Endpoint> endpoint_or_error(std::string_view text, std::uint16_t min_port,
                                          std::string& error) {
  const std::string prefix = "invalid address " + in_quotes(text) + ": ";
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = prefix + "expected [IPv6]:port, e.g. [::1]:8080";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    if (!valid_ipv6_text(host)) {
      error = prefix + "invalid IPv6 address " + in_quotes(host);
      return std::nullopt;
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = prefix + "expected host:port, e.g. 127.0.0.1:8080";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      error = prefix + "an IPv6 address needs brackets, e.g. [::1]:8080";
      return std::nullopt;
    }
    if (host.empty()) {
      error = prefix + "the host is empty";
      return std::nullopt;
    }
    if (!valid_host_name(host)) {
      error = prefix + "invalid host name " + in_quotes(host);
      return std::nullopt;
    }
  }
  std::uint64_t port = 0;
  if (parse_digits(port_text, port) != Digits::ok || port < min_port || port > 65535) {
    error = prefix + "the port must be a number from " + std::to_string(min_port) + " to 65535";
    return std::nullopt;
  }
  return Endpoint{std::string(host), static_cast<std::uint16_t>(port)};
}

}  // namespace

std::string Endpoint::text() const {
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict on "[" + host + "]".
  std::string out;
  const bool v6 = host.find(':') != std::string::npos;
  out.reserve(host.size() + 8);
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string in_quotes(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

Digits parse_digits(std::string_view text, std::uint64_t& value) {
  if (!all_digits(text)) return Digits::invalid;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) return Digits::too_large;
  return end == text.data() + text.size() ? Digits::ok : Digits::invalid;
}

// Host names as DNS and container runtimes use them: letters, digits, '-' and '.', plus '_'
// because Docker Compose names containers like `shop_web_1` and resolves those names.
bool valid_host_name(std::string_view host) {
  if (host.empty() || host.front() == '.' || host.front() == '-' || host.back() == '.') {
    return false;
  }
  if (host.find("..") != std::string_view::npos) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
  });
}


std::optional<Duration> parse_duration(std::string_view text, std::string* error) {
  std::string why;
  std::optional<Duration> value = duration_or_error(text, why);
  if (!value && error != nullptr) *error = std::move(why);
  return value;
}

std::optional<std::uint64_t> parse_size(std::string_view text, std::string* error) {
  std::string why;
  std::optional<std::uint64_t> value = size_or_error(text, why);
  if (!value && error != nullptr) *error = std::move(why);
  return value;
}

std::optional<std::uint32_t> parse_percent_ppm(std::string_view text, std::string* error) {
  std::string why;
  std::optional<std::uint32_t> value = percent_or_error(text, why);
  if (!value && error != nullptr) *error = std::move(why);
  return value;
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::uint16_t min_port,
                                       std::string* error) {
  std::string why;
  std::optional<Endpoint> value = endpoint_or_error(text, min_port, why);
  if (!value && error != nullptr) *error = std::move(why);
  return value;
}

std::string format_duration(Duration duration) {
  const auto ms = duration.count();
  if (ms > 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms > 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::string fraction = std::to_string(ms % 1000);
  fraction.insert(0, 3 - fraction.size(), '0');
  while (fraction.back() == '0') fraction.pop_back();
  return std::to_string(ms / 1000) + "." + fraction + "s";
}

std::string format_percent(std::uint32_t ppm) {
  std::string out = std::to_string(ppm / 10'000);
  const std::uint32_t fraction = ppm % 10'000;
  if (fraction == 0) return out;
  std::string digits = std::to_string(fraction);
  digits.insert(0, 4 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  out += '.';
  out += digits;
  return out;
}

}  // namespace proxyd
