// In-process HTTP/1.1 upstream for integration tests: tags every reply (`x-upstream`, `x-conn-seq`)
// and misbehaves on command (delay, stall, reset, garbage, leftover bytes, 1xx, upgrade), plus the
// loopback helpers for unreachable servers (`unused_port`, `Blackhole`). Beast stays in the .cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace proxyd::test {

// A tagged HTTP/1.1 server on its own thread and io_context.
// Owner: the test that constructs it. Threads: one internal I/O thread; every public member is safe
// to call from any thread. Lifetime: listening once the constructor returns; the destructor closes
// the acceptor and every connection and joins the thread.
//
// Endpoints (path, then query parameters):
//   /headers              200, body = "METHOD TARGET HTTP/1.x\n" then "name: value\n" per field
//   .../set-cookie?v=TEXT 200 with the field `set-cookie: TEXT` (any path ending so)
//   /echo                 streams the request body back as a chunked response body
//   /sink                 discards the body, replies with the number of body bytes (decimal)
//   /bytes?n=N&mode=M     N pattern bytes ('a'..'z' repeated) in 64 KiB writes; M = cl (default),
//                         chunked, close (no length, Connection: close, then close), or
//                         short (Content-Length: N, then N/2 bytes and close)
//   /delay?ms=N           replies "<tag>\n" after N ms (async timer)
//   /gate                 replies "<tag>\n" once open_gate() was called (at once after it)
//   /stall                reads the request, never replies; closes when the peer does or at stop
//   /hold                 reads the head only, never the body, never replies; held until stop
//   /trailers             200 (with X-Mixed-Case: Yes), chunked body "hello", trailers
//                         x-checksum: 5d41402a, X-Count: 1; ?framing=1 puts Content-Length: 5
//                         and Transfer-Encoding: chunked between them
//   /reset                closes with SO_LINGER{1,0} (RST) without replying
//   /garbage              writes a malformed status line, then closes
//   /status?code=N        replies with status N (204/304 without a body)
//   /leftover             200 with Content-Length: 2 "ok" followed by "EXTRA" in the same write
//   /early-hints          103 Early Hints (link: </a.css>) then a normal 200
//   /healthz              the health path: set_health_status() (200 unless set), counted apart
//   /interim?n=N&ms=M     N 102 Processing interim responses, M ms apart, then a normal 200
//   /bare-lf              a response whose lines end in LF alone, then silence (kept open)
//   /obs-fold             200 whose x-a and x-b fields are folded onto a second line
//   /big-head?bytes=N     200 "ok" whose head (status line to the empty line) is exactly N bytes,
//                         filled by an `x-big: aaa...` field (N at least 128)
//   /metrics              once set_metrics_text() was called: 200 with that text (an exposition
//                         for a real Prometheus to scrape); before, like anything else
//   /close-silently       reads the request and closes without a byte of response; with
//                         once=KEY only the first request carrying KEY, later ones get 200
//   anything else         200, body "<tag>\n"
// set_every_status(N) makes every request, /healthz included, get status N (0: back to normal).
// A request with `Upgrade: websocket` and `Connection: upgrade` gets 101 (with Sec-WebSocket-Accept
// when a key was sent) and then a raw byte echo until EOF; on /upgrade-without-field the 101 has
// `Connection: upgrade` and no Upgrade field (RFC 9110 7.8 forbids that).
// A request with `Expect: 100-continue` gets `100 Continue` before its body is read.
// Every reply carries `x-upstream: <tag>` and `x-conn-seq: <n>` (1 for the first TCP connection).
class FakeUpstream {
 public:
  // Listens on 127.0.0.1 with a kernel-chosen port.
  explicit FakeUpstream(std::string tag);
  // Listens on a fixed address (the demo backend). Throws std::system_error if it cannot bind.
  FakeUpstream(std::string tag, const std::string& address, std::uint16_t port);
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  std::uint16_t port() const;
  std::string address() const;  // "127.0.0.1:PORT", as a pool's server entry
  const std::string& tag() const;

  std::uint64_t connections_accepted() const;
  // Requests whose header was read (including the ones answered by stalling or resetting).
  std::uint64_t requests_served() const;
  // Blocks until requests_served() >= n or the timeout passes; returns whether it got there.
  bool wait_for_requests(std::uint64_t n, std::chrono::milliseconds timeout) const;
  // Connections that ended (closed by the peer, or by this server after a reset or a close).
  std::uint64_t connections_closed() const;

  // Blocks until at least n connections wait for a request with nothing buffered, or the timeout.
  bool wait_for_idle(std::size_t n, std::chrono::milliseconds timeout) const;
  // Writes `bytes` on every connection that is waiting for its next request with nothing
  // buffered (an idle kept-alive connection, from the proxy's side), then, if `close_after`,
  // shuts it down. Returns how many connections got the bytes, once they are written.
  std::size_t push_to_idle(std::string bytes, bool close_after);
  bool wait_for_closed(std::uint64_t n, std::chrono::milliseconds timeout) const;

  // Health: what /healthz answers, what every request answers (0: each its own), and how many
  // /healthz requests came (also counted in requests_served()).
  void set_health_status(unsigned code);
  void set_every_status(unsigned code);
  // Faults of the default reply ("anything else" above; /healthz and the named paths keep
  // answering): every `error_every`th one (the 1st, the N+1st, ...) is a 500 (0: none, 1: all),
  // and each waits `delay_ms` first. A canary that fails while its health checks pass.
  void set_faults(unsigned error_every, unsigned delay_ms);
  std::uint64_t health_checks() const;
  bool wait_for_health_checks(std::uint64_t n, std::chrono::milliseconds timeout) const;
  // The last /healthz request's head as received (request line and fields, CRLF-separated).
  std::string last_health_request() const;

  // What /metrics answers from now on, in the Prometheus text format (`name{labels} value` lines).
  void set_metrics_text(std::string text);
  // Answers every /gate request held so far, and every later one at once.
  void open_gate();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A loopback port free when asked (bound to 127.0.0.1:0, then closed), for a process to bind.
// Anything may take it meanwhile: for a server that refuses, use RefusingPort.
std::uint16_t unused_port();

// A loopback port that refuses connections for as long as this lives, and that nothing else can
// take meanwhile: a TCP socket bound to 127.0.0.1 that never listens (a SYN to it gets a RST).
// A closed port from unused_port() could be handed to another test's server or proxyd in between
// (under ctest -j2 a "refused" server once answered, and a proxyd listened on one).
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  std::uint16_t port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT", as a pool's server entry

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// A loopback address whose connect() never completes, for connect-timeout tests.
// How: a listening socket with backlog 0 that never accepts; the Blackhole fills its accept queue
// with one connection of its own, after which Linux drops further SYNs (the accept queue is full),
// so a client's connect() hangs in SYN_SENT until its own timeout. Loopback only, no firewall.
// Owner: the test; lifetime: the port stays a black hole until destruction.
class Blackhole {
 public:
  Blackhole();
  ~Blackhole();
  Blackhole(const Blackhole&) = delete;
  Blackhole& operator=(const Blackhole&) = delete;

  std::uint16_t port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT"

 private:
  int listen_fd_ = -1;
  std::vector<int> fillers_;
  std::uint16_t port_ = 0;
};

// The byte the pattern has at `offset` ('a'..'z' repeated), shared by /bytes and the test client.
inline char pattern_byte(std::uint64_t offset) { return static_cast<char>('a' + offset % 26); }

}  // namespace proxyd::test
