// HTTP/2 to clients (docs/architecture.md, "HTTP/2"): one client connection that negotiated h2
// (ALPN on a TLS listener, or prior knowledge on a plaintext listener with `http2: true`),
// framed by nghttp2. Each stream is one request through the same phases as an HTTP/1.1 request
// (upstream_phases.hpp), to HTTP/1.1 upstreams. nghttp2 stays inside h2_session.cpp.
#pragma once

#include <optional>
#include <string_view>

#include "net.hpp"
#include "routing_snapshot.hpp"

namespace proxyd {

class Worker;
class Stream;
struct Deadline;

// Who the client is, as the HTTP/1.1 session saw it at the accept and the handshake.
struct H2Client {
  std::string_view listener;
  std::size_t listener_index = 0;
  std::optional<SlotName> slot;  // the listener's forced slot, if any
  bool tls = false;
  std::string_view ip;
  std::string_view address;      // "ip:port"
  std::string_view tls_version;  // OpenSSL's static names
  std::string_view tls_cipher;
  Http2Limits limits;  // the listener's
  bool preface_read = false;  // the client's preface was taken off the socket already
};

// Serves the connection until it closes: the client's GOAWAY or EOF, an idle timeout, a drain
// (GOAWAY, then the streams in flight finish), or a protocol error (GOAWAY from nghttp2). Runs on
// the worker's thread; the caller owns `client` and `deadline` (its socket is sockets[0]) and
// closes the connection afterwards.
Task<void> run_h2_session(Worker& worker, Stream& client, Deadline& deadline,
                          const H2Client& who);

}  // namespace proxyd
