#include "tests/fuzz/h2_roundtrip.hpp"

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <map>
#include <memory>

#include "proxy/h2_request.hpp"
#include "proxy/header_transform.hpp"
#include "tests/fuzz/head_roundtrip.hpp"

namespace proxyd::test {
namespace {

constexpr std::uint64_t kMaxBody = 1 << 20;
constexpr std::size_t kHeaderListLimit = 16 * 1024;  // limits.max_header_bytes' default

struct Session {
  nghttp2_session* ptr = nullptr;
  ~Session() { nghttp2_session_del(ptr); }
};

struct Callbacks {
  nghttp2_session_callbacks* ptr = nullptr;
  Callbacks() { nghttp2_session_callbacks_new(&ptr); }
  ~Callbacks() { nghttp2_session_callbacks_del(ptr); }
};

// What the server side saw of each stream, as h2_session.cpp's callbacks collect it.
struct Received {
  std::map<std::int32_t, H2RequestFields> streams;
  std::map<std::int32_t, bool> complete;  // stream -> END_STREAM with its head
};

int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
    static_cast<Received*>(user)->streams[frame->hd.stream_id];
  return 0;
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
              std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
              void* user) {
  auto& r = *static_cast<Received*>(user);
  auto it = r.streams.find(frame->hd.stream_id);
  if (it == r.streams.end() || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  it->second.add(std::string_view(reinterpret_cast<const char*>(name), namelen),
                 std::string_view(reinterpret_cast<const char*>(value), valuelen),
                 kHeaderListLimit);
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
    static_cast<Received*>(user)->complete[frame->hd.stream_id] =
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  return 0;
}

// A body that is never ready: the HEADERS frame goes out without END_STREAM.
ssize_t deferred_body(nghttp2_session*, std::int32_t, std::uint8_t*, std::size_t, std::uint32_t*,
                      nghttp2_data_source*, void*) {
  return NGHTTP2_ERR_DEFERRED;
}

// The client's bytes for one request: preface, SETTINGS, HEADERS. Empty if nghttp2's client
// will not encode the list.
std::string encode(const H2Fields& fields, bool body) {
  Callbacks callbacks;
  Session client;
  if (nghttp2_session_client_new(&client.ptr, callbacks.ptr, nullptr) != 0) return {};
  nghttp2_submit_settings(client.ptr, NGHTTP2_FLAG_NONE, nullptr, 0);
  std::vector<nghttp2_nv> nva;
  for (const auto& [n, v] : fields) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                   v.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE});
  }
  nghttp2_data_provider provider{};
  provider.read_callback = deferred_body;
  if (nghttp2_submit_request(client.ptr, nullptr, nva.data(), nva.size(),
                             body ? &provider : nullptr, nullptr) < 0)
    return {};
  std::string out;
  for (;;) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(client.ptr, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  return out;
}

std::string trimmed(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return std::string(v);
}

// What proxyd leaves out or writes itself (header_transform.cpp: hop-by-hop fields, framing,
// Expect, X-Forwarded-*), and so leaves out of the field-for-field comparison; any case.
bool rewritten_by_proxyd(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "cookie", "host", "content-length", "transfer-encoding", "te", "trailer", "connection",
      "proxy-connection", "keep-alive", "upgrade", "proxy-authenticate", "proxy-authorization",
      "expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"};
  for (std::string_view n : kNames)
    if (iequals(n, name)) return true;
  return false;
}

// The properties of one request that reached proxyd: "" or what broke.
std::string check_stream(const H2RequestFields& in, bool ended, H2Verdict& verdict) {
  RequestHead head;
  std::string cookie;
  RequestPlan plan;
  if (check_h2_request(in, ended, kMaxBody, head, cookie, plan)) {
    verdict = H2Verdict::refused_by_proxyd;
    return {};
  }
  verdict = H2Verdict::rewritten;
  std::string out;
  RequestHead again;
  if (std::string fault = upstream_head_fault(head, plan, out, again); !fault.empty())
    return fault;
  // The upstream hears the authority the client named (RFC 9113 8.3.1) and routing used.
  std::string_view host;
  for (const HeadField& f : again.fields)
    if (f.id == http::field::host) host = f.value;
  if (!in.authority.empty() && !iequals(host, in.authority))
    return "the upstream's Host is not :authority:\n" + out;
  if (!iequals(host, plan.host)) return "the upstream's Host is not the one routed on:\n" + out;
  // Every cookie field, in order, joined with "; " into one (RFC 9113 8.2.3).
  std::string cookies;
  std::vector<std::pair<std::string, std::string>> expected;
  for (const auto& [n, v] : in.fields) {
    if (n == "cookie") cookies += (cookies.empty() ? "" : "; ") + v;
    else if (!rewritten_by_proxyd(n)) expected.emplace_back(n, trimmed(v));
  }
  std::vector<std::pair<std::string, std::string>> forwarded;
  std::string cookie_out;
  int cookie_fields = 0;
  for (const HeadField& f : again.fields) {
    const std::string name(f.name);
    if (name == "cookie") {
      ++cookie_fields;
      cookie_out = f.value;
    } else if (!rewritten_by_proxyd(name)) {
      forwarded.emplace_back(name, std::string(f.value));
    }
  }
  if (cookie_fields != (cookies.empty() ? 0 : 1) || trimmed(cookie_out) != trimmed(cookies))
    return "the cookies are not the client's, joined:\n" + out;
  if (forwarded != expected) return "a field was lost, added or changed:\n" + out;
  return {};
}

}  // namespace

std::string h2_request_fault(const H2Fields& fields, bool body, H2Verdict* verdict) {
  H2Verdict seen = H2Verdict::refused_by_nghttp2;
  const std::string bytes = encode(fields, body);
  std::string fault;
  if (!bytes.empty()) {
    Callbacks callbacks;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks.ptr, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks.ptr, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks.ptr, on_frame_recv);
    Received received;
    Session server;
    if (nghttp2_session_server_new(&server.ptr, callbacks.ptr, &received) != 0)
      return "nghttp2_session_server_new failed";
    const ssize_t n = nghttp2_session_mem_recv(
        server.ptr, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (n == static_cast<ssize_t>(bytes.size())) {
      for (const auto& [id, ended] : received.complete) {
        // A stream nghttp2 has reset by now (its verdict on the message) never runs in proxyd.
        nghttp2_stream* stream = nghttp2_session_find_stream(server.ptr, id);
        if (stream == nullptr || nghttp2_stream_get_state(stream) == NGHTTP2_STREAM_STATE_CLOSED)
          continue;
        fault = check_stream(received.streams[id], ended, seen);
        if (!fault.empty()) break;
      }
    }
  }
  if (verdict != nullptr) *verdict = seen;
  return fault;
}

H2Fields h2_fields_from_bytes(std::string_view bytes, bool& body) {
  H2Fields fields;
  body = false;
  if (bytes.empty()) return fields;
  const auto flags = static_cast<unsigned char>(bytes.front());
  bytes.remove_prefix(1);
  body = (flags & 1) != 0;
  if ((flags & 2) == 0)
    fields = {{":method", "GET"}, {":path", "/"}, {":scheme", "http"}, {":authority", "localhost"}};
  while (!bytes.empty()) {
    const std::size_t nl = bytes.find('\n');
    const std::string_view line = bytes.substr(0, nl);
    bytes.remove_prefix(nl == std::string_view::npos ? bytes.size() : nl + 1);
    const std::size_t eq = line.size() > 1 ? line.find('=', 1) : std::string_view::npos;
    if (eq == std::string_view::npos) fields.emplace_back(line, "");
    else fields.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return fields;
}

H2Fields random_h2_fields(std::mt19937& rng, bool& body) {
  static const std::vector<std::string> kNames = {
      "host", "cookie", "content-length", "te", "x-forwarded-for", "x-forwarded-host",
      "x-forwarded-proto", "expect", "accept", "x-a", "forwarded", "via", "x-b", "trailer",
      "proxy-authorization"};
  // Names nghttp2 refuses (connection-specific, uppercase, repeated pseudo-header fields): rare,
  // so that most lists get past nghttp2 to proxyd.
  static const std::vector<std::string> kHostile = {
      "connection", "transfer-encoding", "upgrade", "keep-alive", "Cookie", ":authority",
      ":path", ":method"};
  static const std::vector<std::string> kValues = {
      "localhost", "LOCALHOST", "localhost:80", "a.example", "", "0", "5", "5, 5", "1x",
      "trailers", "100-continue", "a=1", "b=2; c=3", "192.0.2.9", "http", "close", "keep-alive",
      " x ", "chunked", "/p?q", "*", "POST", "CONNECT", "a b", "\xc3\xa9", "v\tw", "x,y"};
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  body = pick(2) == 0;
  H2Fields fields;
  const std::pair<std::string, std::string> pseudo[] = {
      {":method", pick(4) == 0 ? "POST" : "GET"}, {":path", "/"}, {":scheme", "http"},
      {":authority", pick(3) == 0 ? kValues[pick(kValues.size())] : "localhost"}};
  for (const auto& p : pseudo)
    if (pick(24) != 0) fields.push_back(p);
  const std::size_t count = pick(9);
  for (std::size_t i = 0; i < count; ++i) {
    std::string value = kValues[pick(kValues.size())];
    if (pick(8) == 0 && !value.empty()) value[pick(value.size())] = static_cast<char>(pick(256));
    const std::vector<std::string>& names = pick(16) == 0 ? kHostile : kNames;
    fields.emplace_back(names[pick(names.size())], std::move(value));
  }
  return fields;
}

}  // namespace proxyd::test
