#include "tests/fuzz/head_roundtrip.hpp"

#include <boost/asio/buffer.hpp>

#include <cstdint>

#include "proxy/header_transform.hpp"
#include "proxy/http_head.hpp"
#include "proxy/response_head.hpp"

namespace proxyd::test {
namespace {

constexpr std::uint64_t kMaxBody = 1 << 20;

// The complete head at the start of `bytes`, as the session finds it; empty if there is none.
std::string_view complete_head(std::string_view bytes) {
  std::size_t scanned = 0;
  const HeadScan scan = scan_head(bytes, scanned);
  if (scan.state != HeadScan::State::complete) return {};
  return bytes.substr(0, scan.length);
}

// The head of an input, once the same bytes arriving in two pieces scan as they do whole; when
// they do not, empty with `fault` saying so.
std::string_view input_head(std::string_view bytes, std::string& fault) {
  std::size_t scanned = 0;
  const HeadScan whole = scan_head(bytes, scanned);
  std::size_t resumed = 0;
  HeadScan split = scan_head(bytes.substr(0, bytes.size() / 2), resumed);
  if (split.state == HeadScan::State::incomplete) split = scan_head(bytes, resumed);
  if (split.state != whole.state ||
      (whole.state == HeadScan::State::complete && split.length != whole.length)) {
    fault = "scan_head differs when the head arrives in two pieces";
    return {};
  }
  if (whole.state != HeadScan::State::complete) return {};
  return bytes.substr(0, whole.length);
}

bool parse_request(std::string_view head, HeadParser<true>& parser) {
  parser.header_limit(static_cast<std::uint32_t>(head.size() + 1));
  parser.body_limit(kMaxBody);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(head.data(), head.size()), ec);
  return !ec && parser.is_header_done();
}

// Whether `f` is one that the rewritten head must not carry: hop-by-hop, or named by the
// original message's Connection field. Host stays (the request was routed on it) and so do the
// Connection and Upgrade of a protocol switch, which proxyd states itself.
bool must_be_gone(const HeadField& f, const ConnectionTokens& named, std::string_view upgrade) {
  switch (f.id) {
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
      return true;
    case http::field::host:
    case http::field::connection:
    case http::field::content_length:
    case http::field::transfer_encoding:
      return false;
    case http::field::upgrade:
      return upgrade.empty();
    default:
      return named.names_field(f.name);
  }
}

}  // namespace

std::string request_roundtrip_fault(std::string_view bytes, bool* rewritten) {
  while (bytes.size() >= 2 && bytes[0] == '\r' && bytes[1] == '\n') bytes.remove_prefix(2);
  std::string fault;
  const std::string_view head = input_head(bytes, fault);
  if (head.empty()) return fault;
  RequestHead request;
  HeadParser<true> parser(request);
  if (!parse_request(head, parser)) return {};
  RequestPlan plan;
  if (check_request(request, kMaxBody, plan)) return {};

  if (rewritten != nullptr) *rewritten = true;
  std::string out;
  RequestHead again;
  return upstream_head_fault(request, plan, out, again);
}

std::string upstream_head_fault(const RequestHead& request, const RequestPlan& plan,
                                std::string& out, RequestHead& again) {
  write_upstream_request(request, plan, ForwardInfo{"192.0.2.1", false, "127.0.0.1:8080"}, out);
  if (complete_head(out).size() != out.size())
    return "the upstream head is not one complete head:\n" + out;
  HeadParser<true> parser2(again);
  if (!parse_request(out, parser2)) return "the upstream head does not parse:\n" + out;
  RequestPlan plan2;
  if (check_request(again, kMaxBody, plan2)) return "the upstream head is refused:\n" + out;
  // The target in origin-form: an absolute-form one's path (its authority is the Host).
  if (again.method_text != request.method_text || again.target != plan.target ||
      again.version != 11 || plan2.absolute)
    return "the request line changed:\n" + out;
  if (plan2.framing != plan.framing ||
      (plan.framing == BodyFraming::length && plan2.length != plan.length) ||
      parser2.chunked() != (plan.framing == BodyFraming::chunked))
    return "the body's framing changed:\n" + out;
  if (plan2.host != (plan.host.empty() ? std::string_view("127.0.0.1:8080") : plan.host))
    return "the Host changed:\n" + out;
  for (const HeadField& f : again.fields) {
    if (must_be_gone(f, plan.connection, plan.upgrade))
      return "a field that must not be forwarded was: " + std::string(f.name) + "\n" + out;
  }
  return {};
}

std::string response_roundtrip_fault(std::string_view bytes, bool head_request,
                                     unsigned client_minor, bool keep_alive, bool* rewritten) {
  std::string fault;
  const std::string_view head = input_head(bytes, fault);
  if (head.empty()) return fault;

  ResponseHead beast_head;
  HeadParser<false> beast(beast_head);
  beast.body_limit(boost::none);
  boost::system::error_code ec;
  beast.put(boost::asio::buffer(head.data(), head.size()), ec);
  const bool beast_ok = !ec && beast.is_header_done();
  ResponseHead response;
  ResponseFraming framing;
  const bool ours_ok = parse_response(head, response, framing);
  // Beast's own size limit moves with the status line; below 4 KiB both must agree.
  if (head.size() <= 4096 && beast_ok != ours_ok)
    return ours_ok ? "Beast refuses a head proxyd accepts" : "proxyd refuses a head Beast accepts";
  if (!ours_ok) return {};
  if (beast_ok) {
    bool same = beast_head.version == response.version && beast_head.status == response.status &&
                beast_head.reason == response.reason && beast.chunked() == framing.chunked &&
                beast.length() == framing.length &&
                beast_head.fields.size() == response.fields.size();
    for (std::size_t i = 0; same && i < response.fields.size(); ++i) {
      const HeadField& a = beast_head.fields[i];
      const HeadField& b = response.fields[i];
      same = a.id == b.id && a.name == b.name && a.value == b.value;
    }
    if (!same) return "proxyd and Beast read the head differently";
  }
  ResponsePlan plan;
  if (!check_response(response, framing.length, framing.chunked, head_request, plan)) return {};

  if (rewritten != nullptr) *rewritten = true;
  const unsigned client_version = client_minor == 0 ? 10 : 11;
  const BodyFraming sent = client_framing(plan.framing, client_version);
  const bool keep = keep_alive && sent != BodyFraming::until_close;
  std::string out;
  write_client_response(response, plan, sent, keep, client_version, out);
  // Lines copied as received and lines written field by field must give the same bytes.
  ResponseHead by_field = response;
  by_field.raw = {};
  std::string written;
  write_client_response(by_field, plan, sent, keep, client_version, written);
  if (written != out)
    return "the head copied as received differs from the head written field by field:\n" + out +
           "\nwritten:\n" + written;
  if (complete_head(out).size() != out.size())
    return "the client head is not one complete head:\n" + out;
  ResponseHead again;
  ResponseFraming framing2;
  if (!parse_response(out, again, framing2)) return "the client head does not parse:\n" + out;
  ResponsePlan plan2;
  if (!check_response(again, framing2.length, framing2.chunked, head_request, plan2))
    return "the client head is refused:\n" + out;
  if (again.status != response.status) return "the status changed:\n" + out;
  if (!head_request && plan.framing != BodyFraming::none &&
      (framing2.chunked != (sent == BodyFraming::chunked) ||
       (sent == BodyFraming::length && framing2.length != plan.length) ||
       (sent == BodyFraming::until_close && (framing2.length || framing2.chunked))))
    return "the body's framing towards the client is not the one sent:\n" + out;
  if (keep && connection_tokens(again.fields).close)
    return "a kept connection is announced closed:\n" + out;
  for (const HeadField& f : again.fields) {
    if (must_be_gone(f, plan.connection, response.status == 101 ? plan.upgrade : ""))
      return "a field that must not be relayed was: " + std::string(f.name) + "\n" + out;
  }
  return {};
}

std::string mutate(std::string s, std::mt19937& rng) {
  static constexpr std::string_view kInteresting =
      "\r\n\t :,;\"@/\x01\x7f\x80\xff" "0123456789HTTP/.chunked";
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const std::size_t edits = 1 + pick(3);
  for (std::size_t e = 0; e < edits && !s.empty(); ++e) {
    const std::size_t at = pick(s.size());
    const char c =
        pick(4) == 0 ? static_cast<char>(pick(256)) : kInteresting[pick(kInteresting.size())];
    switch (pick(5)) {
      case 0: s[at] = c; break;
      case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c); break;
      case 2: s.erase(at, 1); break;
      case 3: {  // duplicate the line that holds `at`
        const std::size_t b = s.rfind('\n', at) == std::string::npos ? 0 : s.rfind('\n', at) + 1;
        const std::size_t l = s.find('\n', at);
        if (l != std::string::npos) s.insert(b, s.substr(b, l + 1 - b));
        break;
      }
      default: s.replace(at, 0, ",chunked"); break;
    }
  }
  return s;
}

}  // namespace proxyd::test
