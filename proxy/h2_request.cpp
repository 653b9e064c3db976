#include "h2_request.hpp"

namespace proxyd {

void H2RequestFields::add(std::string_view name, std::string_view value, std::size_t limit) {
  bytes += name.size() + value.size() + 32;
  if (bytes > limit) {
    too_large = true;
    fields.clear();
    return;
  }
  if (too_large) return;
  if (name == ":method") method = value;
  else if (name == ":path") path = value;
  else if (name == ":authority") authority = value;
  else if (!name.starts_with(':')) fields.emplace_back(name, value);
}

std::optional<LocalReason> check_h2_request(const H2RequestFields& in, bool ended,
                                            std::uint64_t max_body_bytes, RequestHead& head,
                                            std::string& cookie, RequestPlan& plan) {
  if (in.too_large) return LocalReason::header_too_large;
  // nghttp2 already refused what RFC 9113 forbids (connection-specific fields, a TE other than
  // trailers, uppercase names, bad pseudo-header fields, DATA against content-length) with a
  // stream error; the head is then checked as an HTTP/1.1 head is.
  head.fields.clear();
  head.fields.reserve(in.fields.size() + 2);
  head.method = http::string_to_verb(in.method);
  head.method_text = in.method;
  head.target = in.path;
  head.version = 11;
  bool has_host = false;
  cookie.clear();
  for (const auto& [name, value] : in.fields) {
    const http::field id = http::string_to_field(name);
    if (id == http::field::cookie) {
      if (!cookie.empty()) cookie += "; ";
      cookie += value;
      continue;
    }
    if (id == http::field::host) {
      // A Host naming another authority than :authority makes the request malformed (RFC 9113
      // 8.3.1); forwarded, the upstream would serve a site other than the one the client (or a
      // layer in front that looked only at :authority) named.
      if (!in.authority.empty() && !iequals(value, in.authority)) return LocalReason::bad_request;
      has_host = true;
    }
    head.fields.push_back({id, name, value});
  }
  if (!cookie.empty()) head.fields.push_back({http::field::cookie, "cookie", cookie});
  if (!has_host && !in.authority.empty())
    head.fields.push_back({http::field::host, "host", in.authority});
  if (auto refusal = check_request(head, max_body_bytes, plan)) return refusal;
  // :path is origin-form or "*" (RFC 9113 8.3.1); the authority is :authority's alone.
  if (plan.absolute || head.method == http::verb::connect) return LocalReason::bad_request;
  if (plan.framing == BodyFraming::none && !ended) plan.framing = BodyFraming::chunked;
  plan.expect_continue = false;  // no 100 Continue on a stream: flow control paces its body
  return std::nullopt;
}

}  // namespace proxyd
