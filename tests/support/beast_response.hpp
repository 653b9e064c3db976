// The test clients' Response from Beast's response parser, once a read ended: shared by the plain
// client (http_client.cpp) and the TLS one (tls_fixtures.cpp). Included by .cpp files only, so
// the public headers stay Beast-free.
#pragma once

#include <boost/beast/http.hpp>

#include <cctype>
#include <string>
#include <string_view>

#include "tests/support/http_client.hpp"

namespace proxyd::test {

inline std::string lowercase_name(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// What the parser holds: the head if it was read, the body only if the whole message was.
inline Response response_from(
    const boost::beast::http::response_parser<boost::beast::http::string_body>& parser,
    const boost::system::error_code& ec) {
  Response out;
  if (parser.is_header_done()) {
    const auto& msg = parser.get();
    out.status = msg.result_int();
    out.reason = std::string(msg.reason());
    out.version = msg.version();
    for (const auto& f : msg) out.headers.emplace(lowercase_name(f.name_string()), std::string(f.value()));
    out.keep_alive = msg.keep_alive();
  }
  if (ec) {
    out.error = ec.message();
    return out;
  }
  out.body = parser.get().body();
  return out;
}

}  // namespace proxyd::test
