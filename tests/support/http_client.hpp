// A small blocking HTTP/1.1 client for integration tests: raw bytes in, parsed responses out, over
// one loopback TCP connection with send/receive timeouts (SO_SNDTIMEO/SO_RCVTIMEO) so a test never
// hangs. Parsing uses Beast's response_parser; Beast stays in the .cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxyd::test {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
  unsigned status = 0;  // 0 when nothing could be parsed
  std::string reason;
  unsigned version = 0;                             // 10 or 11
  std::multimap<std::string, std::string> headers;  // names lowercased
  std::string body;
  bool keep_alive = false;  // false: the response announced (or implied) that the server closes
  std::string error;        // empty when a whole response was read

  bool ok() const { return error.empty(); }
  bool has(std::string_view name) const;            // lowercase name
  std::string header(std::string_view name) const;  // first value, or ""
  std::size_t count(std::string_view name) const;
};

// A response whose body was counted, not kept (downloads of any size).
struct StreamedResponse {
  unsigned status = 0;
  std::multimap<std::string, std::string> headers;
  std::uint64_t body_bytes = 0;
  bool pattern_ok = true;  // every body byte matched pattern_byte(offset)
  std::string error;
  bool ok() const { return error.empty(); }
};

// One client connection to 127.0.0.1:port.
// Owner: one test thread (not thread-safe). Lifetime: connected in the constructor (check
// connected()), closed in the destructor.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool connected() const;
  const std::string& connect_error() const;
  // The bound on every single blocking send or receive from now on.
  void set_timeout(std::chrono::milliseconds timeout);

  // Writes all bytes; false on error or send timeout.
  bool send_raw(std::string_view bytes);
  // Writes n pattern bytes (pattern_byte(offset + i)) in 64 KiB writes, never holding them all.
  bool send_pattern(std::uint64_t n, std::uint64_t offset = 0);
  // One byte of TCP urgent data (send with MSG_OOB): outside the stream for a receiver without
  // SO_OOBINLINE, but it stops splice(2) at its mark.
  bool send_urgent(char byte);
  // Same, as a chunked body (chunks of `chunk` bytes) followed by the last chunk.
  bool send_chunked_pattern(std::uint64_t n, std::size_t chunk = 64 * 1024);

  // Reads one response (a 1xx is returned on its own; call again for the final one). For a
  // response to HEAD pass head_request so no body is expected.
  Response read_response(bool head_request = false);
  // Reads one response, counting and checking its body against the pattern instead of storing it.
  StreamedResponse read_response_streaming(bool head_request = false);

  // Sends a request and reads its final response (1xx responses are skipped). Adds Host unless
  // given, and Content-Length when there is a body and no framing header was given.
  Response request(std::string_view method, std::string_view target, const Headers& headers = {},
                   std::string_view body = {});
  Response get(std::string_view target, const Headers& headers = {}) {
    return request("GET", target, headers);
  }

  // Up to n raw bytes (already-buffered bytes first); fewer on EOF, error or timeout.
  std::string read_raw(std::size_t n);
  // Waits up to the timeout for the peer to close: true on EOF or reset, false on data or timeout.
  bool is_closed_by_peer();
  void shutdown_write();
  void close();
  // Closes with a reset (SO_LINGER 0) instead of a FIN.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection (closed afterwards).
Response fetch(std::uint16_t port, std::string_view target, const Headers& headers = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace proxyd::test
