// Access log formatting (logfmt-style key=value, one line per request) and output.
#include "access_log.hpp"

#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>

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
void append_time(std::string& out) {
  using namespace std::chrono;
  auto now = system_clock::now();
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

}  // namespace

bool AccessLog::open(const std::string& where, std::string& error) {
  if (where == "off") return true;
  if (where == "stdout") {
    out_ = stdout;
    return true;
  }
  out_ = std::fopen(where.c_str(), "a");
  if (out_ == nullptr) {
    error = "cannot open access log " + where + ": " + std::strerror(errno);
    return false;
  }
  owned_ = true;
  return true;
}

AccessLog::~AccessLog() {
  if (owned_ && out_ != nullptr) std::fclose(out_);
}

void AccessLog::format(std::string& out, const AccessRecord& r) {
  append_time(out);
  append_kv(out, "listener", r.listener);
  append_kv(out, "client", r.client);
  append_kv(out, "method", r.method);
  append_kv(out, "target", r.target);
  out.append(" status=");
  append_uint(out, r.status);
  append_kv(out, "route", r.route);
  append_kv(out, "slot", r.slot);
  append_kv(out, "pool", r.pool);
  append_kv(out, "server", r.server);
  char ms[32];
  auto [end, ec] = std::to_chars(ms, ms + sizeof ms, r.duration_ms, std::chars_format::fixed, 3);
  append_kv(out, "duration_ms", std::string_view(ms, static_cast<std::size_t>(end - ms)));
  out.append(" bytes_in=");
  append_uint(out, r.bytes_in);
  out.append(" bytes_out=");
  append_uint(out, r.bytes_out);
  append_kv(out, "reason", r.reason);
  out.push_back('\n');
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
