// Access log formatting (logfmt-style key=value, one line per request) and output.
#include "access_log.hpp"

#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>

namespace proxyd {
namespace {

void append_uint(std::string& out, std::uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, static_cast<std::size_t>(end - digits));
}

void append_kv(std::string& out, std::string_view key, std::string_view value) {
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  out.append(value.empty() ? std::string_view("-") : value);
}

// UTC time to the millisecond; the second part is cached per thread (it changes once a second).
void append_time(std::string& out, std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  auto secs = time_point_cast<seconds>(now);
  thread_local sys_seconds cached_second{};
  thread_local char cached[32];
  if (secs != cached_second) {
    std::time_t t = system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_second = secs;
  }
  out.append(cached);
  auto ms = duration_cast<milliseconds>(now - secs).count();
  char frac[8];
  frac[0] = '.';
  frac[1] = static_cast<char>('0' + ms / 100);
  frac[2] = static_cast<char>('0' + ms / 10 % 10);
  frac[3] = static_cast<char>('0' + ms % 10);
  frac[4] = 'Z';
  out.append(frac, 5);
}

// Milliseconds with microsecond precision, or `missing` when the phase did not happen.
void append_ms_value(std::string& out, std::optional<Clock::duration> d, std::string_view missing) {
  if (!d) {
    out.append(missing);
    return;
  }
  char ms[32];
  const double value = std::chrono::duration<double, std::milli>(*d).count();
  auto [end, ec] = std::to_chars(ms, ms + sizeof ms, value, std::chars_format::fixed, 3);
  out.append(ms, static_cast<std::size_t>(end - ms));
}

void append_ms(std::string& out, std::string_view key, std::optional<Clock::duration> d) {
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  append_ms_value(out, d, "-");
}

std::string_view name_of(const Route* route) { return route ? std::string_view(route->name) : ""; }
std::string_view name_of(const Pool* pool) { return pool ? std::string_view(pool->name) : ""; }
std::string_view name_of(const Server* server) {
  return server ? std::string_view(server->name) : "";
}

// A JSON string: quotes, backslashes and control characters escaped; bytes above 0x7f (a target
// is not required to be UTF-8) as \u00XX, so the line is always valid JSON.
void append_json_string(std::string& out, std::string_view value) {
  out.push_back('"');
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte > 0x7e) {
      static constexpr char kHex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

// `,"key":`: every field but the first (time) starts so.
void json_key(std::string& out, std::string_view key) {
  out.append(",\"");
  out.append(key);
  out.append("\":");
}

// A string field, or null when empty.
void json_field(std::string& out, std::string_view key, std::string_view value) {
  json_key(out, key);
  if (value.empty()) {
    out.append("null");
  } else {
    append_json_string(out, value);
  }
}

void json_number(std::string& out, std::string_view key, std::uint64_t value) {
  json_key(out, key);
  append_uint(out, value);
}

// Milliseconds as a number with microsecond precision, or null.
void json_ms(std::string& out, std::string_view key, std::optional<Clock::duration> d) {
  json_key(out, key);
  append_ms_value(out, d, "null");
}

}  // namespace

bool AccessLog::open(const std::string& where, std::string& error, LogFormat format) {
  format_ = format;
  if (where == "off") return true;
  if (where == "stdout") {
    out_ = stdout;
    enabled_ = true;
    return true;
  }
  out_ = std::fopen(where.c_str(), "a");
  if (out_ == nullptr) {
    error = "cannot open access log " + where + ": " + std::strerror(errno);
    return false;
  }
  owned_ = true;
  enabled_ = true;
  path_ = where;
  return true;
}

bool AccessLog::reopen(std::string& error) {
  if (!owned_) return true;
  std::FILE* fresh = std::fopen(path_.c_str(), "a");
  if (fresh == nullptr) {
    error = "cannot open access log " + path_ + ": " + std::strerror(errno);
    return false;
  }
  std::FILE* old = nullptr;
  {
    std::lock_guard lock(mutex_);  // no worker writes while the file changes
    old = out_;
    out_ = fresh;
  }
  std::fclose(old);
  return true;
}

AccessLog::~AccessLog() {
  if (owned_ && out_ != nullptr) std::fclose(out_);
}

void AccessLog::format(std::string& out, const RequestOutcome& r,
                       std::chrono::system_clock::time_point now) {
  append_time(out, now);
  append_kv(out, "listener", r.listener);
  append_kv(out, "client", r.client);
  append_kv(out, "method", r.method);
  append_kv(out, "target", r.target);
  out.append(" status=");
  append_uint(out, r.status);
  append_kv(out, "route", name_of(r.route));
  append_kv(out, "slot", r.route ? (r.slot == SlotName::live ? "live" : "passive") : "");
  append_kv(out, "pool", name_of(r.pool));
  append_kv(out, "server", name_of(r.server));
  append_ms(out, "duration_ms", r.total);
  append_ms(out, "connect_ms", r.upstream_connect);
  append_ms(out, "ttfb_ms", r.first_byte);
  out.append(" bytes_in=");
  append_uint(out, r.bytes_in);
  out.append(" bytes_out=");
  append_uint(out, r.bytes_out);
  out.append(" attempts=");
  append_uint(out, r.attempt_count);
  // The attempts that failed, as server/why: what a retry hid from the client.
  out.append(" failed=");
  bool any = false;
  for (std::size_t i = 0; i < r.attempt_count; ++i) {
    const AttemptRecord& a = r.attempts[i];
    if (a.end == AttemptEnd::ok) continue;
    if (any) out.push_back(',');
    out.append(name_of(a.server));
    out.push_back('/');
    out.append(attempt_end_name(a.end));
    any = true;
  }
  if (!any) out.push_back('-');
  append_kv(out, "end", request_end_name(r.end));
  append_kv(out, "reason", r.reason ? local_reply_info(*r.reason).name : std::string_view());
  append_kv(out, "proto", client_protocol_name(r.protocol));
  // Only on TLS connections, so plain lines keep their fields.
  if (!r.tls_version.empty()) {
    append_kv(out, "tls", r.tls_version);
    append_kv(out, "cipher", r.tls_cipher);
  }
  out.push_back('\n');
}

void AccessLog::format_json(std::string& out, const RequestOutcome& r,
                            std::chrono::system_clock::time_point now) {
  out.append("{\"time\":\"");
  append_time(out, now);
  out.push_back('"');
  json_field(out, "listener", r.listener);
  json_field(out, "client", r.client);
  json_field(out, "method", r.method);
  json_field(out, "target", r.target);
  json_number(out, "status", r.status);
  json_field(out, "route", name_of(r.route));
  json_field(out, "slot", r.route ? (r.slot == SlotName::live ? "live" : "passive") : "");
  json_field(out, "pool", name_of(r.pool));
  json_field(out, "server", name_of(r.server));
  json_ms(out, "duration_ms", r.total);
  json_ms(out, "connect_ms", r.upstream_connect);
  json_ms(out, "ttfb_ms", r.first_byte);
  json_number(out, "bytes_in", r.bytes_in);
  json_number(out, "bytes_out", r.bytes_out);
  json_number(out, "attempts", r.attempt_count);
  json_key(out, "failed");
  out.push_back('[');
  bool any = false;
  for (std::size_t i = 0; i < r.attempt_count; ++i) {
    const AttemptRecord& a = r.attempts[i];
    if (a.end == AttemptEnd::ok) continue;
    if (any) out.push_back(',');
    out.append("{\"server\":");
    append_json_string(out, name_of(a.server));
    out.append(",\"end\":");
    append_json_string(out, attempt_end_name(a.end));
    out.push_back('}');
    any = true;
  }
  out.push_back(']');
  json_field(out, "end", request_end_name(r.end));
  json_field(out, "reason", r.reason ? local_reply_info(*r.reason).name : std::string_view());
  json_field(out, "proto", client_protocol_name(r.protocol));
  if (!r.tls_version.empty()) {
    json_field(out, "tls", r.tls_version);
    json_field(out, "cipher", r.tls_cipher);
  }
  out.append("}\n");
}

void AccessLog::write(std::string& buffer) {
  if (buffer.empty()) return;
  if (out_ != nullptr) {
    std::lock_guard lock(mutex_);
    std::fwrite(buffer.data(), 1, buffer.size(), out_);
    std::fflush(out_);
  }
  buffer.clear();
}

}  // namespace proxyd
