// The response-head parser (response_head.hpp). Each check names the Beast 1.81 rule it mirrors;
// the rare list-valued fields (Connection, Content-Length, Transfer-Encoding) go through Beast's
// own list parsers, so their edge cases are Beast's by construction.
#include "response_head.hpp"

#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>

namespace proxyd {
namespace {

using F = http::field;

// tchar (RFC 9110 5.6.2): Beast's is_token table.
constexpr std::array<bool, 256> kToken = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// A byte that may appear in a field value or reason phrase (Beast's parse_token_to_eol): HTAB,
// SP, VCHAR and obs-text; every other control byte (CR included) ends the scan.
constexpr std::array<bool, 256> kText = [] {
  std::array<bool, 256> t{};
  t['\t'] = true;
  for (int c = 0x20; c < 0x7f; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}();

bool digit(char c) { return c >= '0' && c <= '9'; }

// From p, the first byte that is not text; `end` if none. Eight bytes at a time: a word with a
// byte below 0x20 or equal to 0x7f says where the first such byte is (little-endian: the borrows
// of the subtractions can only mark bytes after it); a tab there is text, and the scan goes on
// past it.
const char* skip_text(const char* p, const char* end) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  constexpr std::uint64_t kHighs = 0x8080808080808080ull;
  while (end - p >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    // A byte below 0x20, or equal to 0x7f, sets its high bit in `below_space` or `del` (bytes
    // of 0x80 and up are excluded by ~w: obs-text is text).
    const std::uint64_t below_space = (w - kOnes * 0x20) & ~w & kHighs;
    const std::uint64_t del = ((w ^ (kOnes * 0x7f)) - kOnes) & ~(w ^ (kOnes * 0x7f)) & kHighs;
    const std::uint64_t found = below_space | del;
    if (found == 0) {
      p += 8;
      continue;
    }
    // Big-endian: the borrows mark bytes before the first one, not after; the byte loop finds it.
    if constexpr (std::endian::native != std::endian::little) break;
    p += std::countr_zero(found) / 8;
    if (*p != '\t') return p;
    ++p;
  }
  while (p != end && kText[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

// Beast's parse_dec: decimal digits only (no sign, no space), no overflow.
bool parse_decimal(std::string_view s, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

// Beast's do_field for the fields that carry framing; false where it sets an error.
bool framing_field(F id, std::string_view value, ResponseFraming& framing) {
  namespace rfc = boost::beast::http;
  const boost::beast::string_view v(value.data(), value.size());
  switch (id) {
    case F::connection:
    case F::proxy_connection:
      return rfc::validate_list(rfc::opt_token_list{v});
    case F::content_length: {
      if (framing.chunked) return false;
      // A comma-separated list of equal decimals, every element present.
      auto unprocessed = 1 + std::count(value.begin(), value.end(), ',');
      const rfc::opt_token_list tokens{v};
      if (tokens.begin() == tokens.end() || !rfc::validate_list(tokens)) return false;
      std::optional<std::uint64_t> length = framing.length;
      for (auto token : tokens) {
        std::uint64_t n = 0;
        if (!parse_decimal(std::string_view(token.data(), token.size()), n)) return false;
        --unprocessed;
        if (length && *length != n) return false;
        length = n;
      }
      if (unprocessed != 0) return false;
      framing.length = length;
      return true;
    }
    case F::transfer_encoding: {
      if (framing.chunked || framing.length) return false;
      const rfc::token_list codings{v};
      auto it = std::find_if(codings.begin(), codings.end(), [](auto s) {
        return boost::beast::iequals(s, "chunked");
      });
      if (it != codings.end() && std::next(it) == codings.end()) framing.chunked = true;
      return true;
    }
    default:
      return true;
  }
}

}  // namespace

bool parse_response(std::string_view bytes, ResponseHead& head, ResponseFraming& framing) {
  head.clear();
  framing = ResponseFraming{};
  // A complete head ends with CRLF; every scan below stops at that CR at the latest (it is
  // neither a token nor text nor OWS), so none of them checks for the end of the bytes.
  if (bytes.size() > kMaxResponseHead || !bytes.ends_with("\r\n")) return false;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();

  // status-line = "HTTP/" DIGIT "." DIGIT SP 3DIGIT SP reason-phrase CRLF
  if (end - p < 13 || std::memcmp(p, "HTTP/", 5) != 0 || !digit(p[5]) || p[6] != '.' ||
      !digit(p[7]) || p[8] != ' ' || !digit(p[9]) || !digit(p[10]) || !digit(p[11]) ||
      p[12] != ' ')
    return false;
  head.version = static_cast<unsigned>((p[5] - '0') * 10 + (p[7] - '0'));
  if (head.version != 10 && head.version != 11) return false;
  head.status = static_cast<unsigned>((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
  p += 13;
  const char* reason_end = skip_text(p, end);
  if (end - reason_end < 2 || reason_end[0] != '\r' || reason_end[1] != '\n') return false;
  head.reason = std::string_view(p, static_cast<std::size_t>(reason_end - p));
  p = reason_end + 2;

  // *( field-name ":" OWS field-value OWS CRLF ) CRLF
  for (;;) {
    if (end - p < 2) return false;
    if (p[0] == '\r') {
      if (p[1] != '\n' || p + 2 != end) return false;
      head.raw = std::string_view(bytes.data(), static_cast<std::size_t>(p - bytes.data()));
      return true;
    }
    const char* name_begin = p;
    while (kToken[static_cast<unsigned char>(*p)]) ++p;
    if (p == name_begin || *p != ':') return false;
    const std::string_view name(name_begin, static_cast<std::size_t>(p - name_begin));
    ++p;
    while (is_ows(*p)) ++p;
    const char* value_begin = p;
    p = skip_text(p, end);
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return false;
    const char* value_end = p;
    while (value_end != value_begin && is_ows(value_end[-1])) --value_end;
    p += 2;
    // scan_head refused obs-fold; a head that still has one was not checked by it.
    if (p != end && is_ows(*p)) return false;
    const std::string_view value(value_begin, static_cast<std::size_t>(value_end - value_begin));
    const F id = http::string_to_field(name);
    if (!framing_field(id, value, framing)) return false;
    head.fields.push_back({id, name, value});
  }
}

}  // namespace proxyd
