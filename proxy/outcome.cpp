// Names of the outcome record's enumerations, as the access log and metrics labels spell them.
#include "proxy/outcome.hpp"

namespace proxyd {

std::string_view attempt_end_name(AttemptEnd end) {
  switch (end) {
    case AttemptEnd::ok: return "ok";
    case AttemptEnd::connect_failed: return "connect_failed";
    case AttemptEnd::connect_timeout: return "connect_timeout";
    case AttemptEnd::closed: return "closed";
    case AttemptEnd::reset: return "reset";
    case AttemptEnd::timeout: return "timeout";
    case AttemptEnd::bad_response: return "bad_response";
    case AttemptEnd::client_gone: return "client_gone";
    case AttemptEnd::tls_failed: return "tls_failed";
    case AttemptEnd::no_socket: return "no_socket";
  }
  return "unknown";
}

std::string_view request_end_name(RequestEnd end) {
  switch (end) {
    case RequestEnd::relayed: return "relayed";
    case RequestEnd::local_reply: return "local_reply";
    case RequestEnd::client_gone: return "client_gone";
    case RequestEnd::upstream_cut: return "upstream_cut";
    case RequestEnd::tunnel: return "tunnel";
    case RequestEnd::aborted: return "aborted";
  }
  return "unknown";
}

std::string_view client_protocol_name(ClientProtocol protocol) {
  switch (protocol) {
    case ClientProtocol::http1_0: return "HTTP/1.0";
    case ClientProtocol::http1_1: return "HTTP/1.1";
    case ClientProtocol::h2: return "HTTP/2";
    case ClientProtocol::count_: break;
  }
  return "unknown";
}

}  // namespace proxyd
