// Relaying through the real proxyd: keep-alive reuse of upstream connections, 100 MiB streamed each
// way in bounded memory, chunked and close-delimited bodies, HEAD, 204/304, 1xx (103 and 100
// Continue), the Upgrade tunnel, pipelining, the header transform and the access log.
#include <gtest/gtest.h>

#include <array>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/log_fields.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1024 * 1024;

class RelayTest : public ::testing::Test {
 protected:
  void start(int workers = 2, const std::string& client_idle = "30s",
             const std::string& limits = "max_header_bytes: 16KiB, max_body_bytes: 200MiB",
             const std::string& more_timeouts = "") {
    // One pool, one catch-all route.
    proxy_ = ProxydProcess::start(
        ConfigBuilder()
            .workers(workers)
            .pool("blue", {blue_.address()})
            .route("web", "/", "blue")
            .timeouts("client_header: 5s, client_idle: " + client_idle +
                      ", upstream_connect: 1s, upstream_response: 30s, drain: 2s" +
                      more_timeouts)
            .limits(limits)
            .yaml());
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
    ASSERT_NE(port_, 0);
  }

  FakeUpstream blue_{"blue-1"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
};

// "name: value" lines of a /headers body, names lowercased; the first (request) line under "".
std::multimap<std::string, std::string> parse_echoed_headers(const std::string& body) {
  std::multimap<std::string, std::string> out;
  std::istringstream in(body);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (first) {
      out.emplace("", line);
      first = false;
      continue;
    }
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.emplace(name, line.substr(colon + 2));
  }
  return out;
}

std::string only(const std::multimap<std::string, std::string>& fields, const std::string& name) {
  EXPECT_EQ(fields.count(name), 1u) << name;
  auto it = fields.find(name);
  return it == fields.end() ? std::string() : it->second;
}

// GET /bytes?n=N on `client`: a 200 whose body is exactly the N pattern bytes.
void get_pattern(HttpClient& client, std::uint64_t n) {
  ASSERT_TRUE(
      client.send_raw("GET /bytes?n=" + std::to_string(n) + " HTTP/1.1\r\nHost: test\r\n\r\n"));
  StreamedResponse down = client.read_response_streaming();
  ASSERT_TRUE(down.ok()) << down.error;
  EXPECT_EQ(down.status, 200u);
  EXPECT_EQ(down.body_bytes, n);
  EXPECT_TRUE(down.pattern_ok);
}

TEST_F(RelayTest, KeepAliveReusesOneUpstreamConnection) {
  ASSERT_NO_FATAL_FAILURE(start(1));
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  for (int i = 0; i < 50; ++i) {
    Response r = client.get("/n" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.error;
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "blue-1\n");
    EXPECT_EQ(r.header("x-conn-seq"), "1") << "request " << i;
  }
  EXPECT_EQ(blue_.connections_accepted(), 1u);
  EXPECT_EQ(blue_.requests_served(), 50u);
}

TEST_F(RelayTest, SeparateClientConnectionsShareIdleUpstreamConnections) {
  ASSERT_NO_FATAL_FAILURE(start(1));
  for (int i = 0; i < 20; ++i) {
    Response r = fetch(port_, "/");
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.status, 200u);
  }
  // One worker keeps the idle upstream connection; allow one more for a release/accept race.
  EXPECT_LE(blue_.connections_accepted(), 2u);
}

TEST_F(RelayTest, Streams100MiBEachWayInBoundedMemory) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::uint64_t n = 100 * kMiB;
  HttpClient client(port_, 30s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  // What proxyd holds before any body: its libraries, threads and, under AddressSanitizer, shadow
  // and per-thread state (~117 MiB there since TLS and the rollout and takeover threads).
  const long idle = proxy_->hwm_kib();
  ASSERT_GT(idle, 0);

  ASSERT_TRUE(client.send_raw(
      "POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n"));
  const bool sent = client.send_pattern(n);
  Response up = client.read_response();
  ASSERT_TRUE(up.ok()) << up.error;
  EXPECT_TRUE(sent);
  EXPECT_EQ(up.status, 200u);
  EXPECT_EQ(up.body, std::to_string(n));

  ASSERT_NO_FATAL_FAILURE(get_pattern(client, n));

  const long hwm = proxy_->hwm_kib();
  RecordProperty("proxyd_vm_hwm_kib", static_cast<int>(hwm));
  ASSERT_GT(hwm, 0);
  // The growth is what streaming costs, far below the 100 MiB that buffering one body would take:
  // a few MiB in a plain build; under AddressSanitizer its quarantine of freed buffers adds more.
#if defined(__SANITIZE_ADDRESS__)
  constexpr long kMaxGrowthKib = 40 * 1024;
#else
  constexpr long kMaxGrowthKib = 24 * 1024;
#endif
  EXPECT_LT(hwm - idle, kMaxGrowthKib)
      << "proxyd peak RSS " << hwm << " KiB after 2 x 100 MiB, " << idle << " KiB before";
  // And in absolute terms in a plain build (~8 MiB).
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(hwm, 32 * 1024);
#endif
}

// Descriptors of a process that are pipe ends (two per pipe).
std::size_t pipe_ends(int pid) {
  std::size_t n = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& fd : std::filesystem::directory_iterator(dir)) {
    std::error_code ec;
    if (std::filesystem::read_symlink(fd.path(), ec).string().starts_with("pipe:")) ++n;
  }
  return n;
}

// A Content-Length body past 64 KiB between two plain sockets goes through a kernel pipe
// (splice), byte for byte, each way; the pipe, empty again, stays with the worker for the next
// body. The request body goes first, so that its own pipe is the one counted. The access-log
// line of each request is written after its body let go of the pipe.
TEST_F(RelayTest, LargeBodiesGoThroughOneKernelPipeKeptForTheNext) {
  ASSERT_NO_FATAL_FAILURE(start(1));
  const std::size_t before = pipe_ends(proxy_->pid());
  const std::uint64_t n = 4 * kMiB;
  HttpClient client(port_, 30s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(
      "POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n"));
  ASSERT_TRUE(client.send_pattern(n));
  Response up = client.read_response();
  ASSERT_TRUE(up.ok()) << up.error;
  EXPECT_EQ(up.status, 200u);
  EXPECT_EQ(up.body, std::to_string(n));
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(1, 5s));
  EXPECT_EQ(pipe_ends(proxy_->pid()), before + 2) << "after the request body";
  EXPECT_EQ(log_fields(proxy_->stdout_lines()[0])["bytes_in"], std::to_string(n));
  for (std::size_t i = 2; i <= 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(get_pattern(client, n));
    ASSERT_TRUE(proxy_->wait_for_stdout_lines(i, 5s));
    EXPECT_EQ(pipe_ends(proxy_->pid()), before + 2) << "after response " << i;
  }
}

// TCP urgent data in the middle of a spliced body: splice(2) stops at its mark while the socket
// polls readable, which would spin the worker (and, each wait re-arming the deadline, never time
// out). The body goes on past the urgent byte, which is not part of the stream (no SO_OOBINLINE),
// and arrives whole.
TEST_F(RelayTest, UrgentDataInASplicedBodyIsSteppedOver) {
  ASSERT_NO_FATAL_FAILURE(start(1));
  const std::uint64_t n = 4 * kMiB;
  HttpClient client(port_, 10s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(
      "POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n"));
  ASSERT_TRUE(client.send_pattern(n / 2));
  ASSERT_TRUE(client.send_urgent('!'));
  ASSERT_TRUE(client.send_pattern(n / 2, n / 2));
  Response up = client.read_response();
  ASSERT_TRUE(up.ok()) << up.error;
  EXPECT_EQ(up.status, 200u);
  EXPECT_EQ(up.body, std::to_string(n));
  // And the connection goes on: the next body is spliced again.
  ASSERT_NO_FATAL_FAILURE(get_pattern(client, n));
}

// A client that stops reading in the middle of a spliced body is given up after client_idle; the
// bytes left in its pipe go away with the pipe and never reach the next client of the worker.
TEST_F(RelayTest, AClientThatStopsReadingLeavesNoBytesInAPipeForTheNext) {
  ASSERT_NO_FATAL_FAILURE(start(1, "1s"));
  const std::size_t before = pipe_ends(proxy_->pid());
  HttpClient stalled(port_);
  ASSERT_TRUE(stalled.connected()) << stalled.connect_error();
  ASSERT_TRUE(stalled.send_raw("GET /bytes?n=" + std::to_string(256 * kMiB) +
                               " HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(1, 10s));
  auto first = log_fields(proxy_->stdout_lines()[0]);
  EXPECT_EQ(first["end"], "client_gone");
  EXPECT_EQ(first["status"], "200");
  EXPECT_EQ(pipe_ends(proxy_->pid()), before) << "the pipe with bytes left in it was kept";

  HttpClient next(port_, 30s);
  ASSERT_TRUE(next.connected()) << next.connect_error();
  ASSERT_NO_FATAL_FAILURE(get_pattern(next, kMiB));
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(2, 5s));
  EXPECT_EQ(pipe_ends(proxy_->pid()), before + 2);
}

// An upstream that closes halfway through a spliced Content-Length body: the client gets the half
// that was sent and then the close (never a complete-looking response), the line says
// upstream_cut, and the worker's next body is whole.
TEST_F(RelayTest, AnUpstreamThatClosesMidBodyCutsTheClientOff) {
  ASSERT_NO_FATAL_FAILURE(start(1));
  const std::size_t before = pipe_ends(proxy_->pid());
  const std::uint64_t n = 4 * kMiB;
  HttpClient client(port_, 30s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw("GET /bytes?n=" + std::to_string(n) +
                              "&mode=short HTTP/1.1\r\nHost: test\r\n\r\n"));
  StreamedResponse cut = client.read_response_streaming();
  EXPECT_FALSE(cut.ok());
  EXPECT_EQ(cut.status, 200u);
  EXPECT_EQ(cut.body_bytes, n / 2);
  EXPECT_TRUE(cut.pattern_ok);
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(1, 5s));
  auto line = log_fields(proxy_->stdout_lines()[0]);
  EXPECT_EQ(line["end"], "upstream_cut");
  EXPECT_EQ(line["bytes_out"], std::to_string(n / 2));

  // The half that came went out of the pipe, which is kept, empty, for the next body.
  EXPECT_EQ(pipe_ends(proxy_->pid()), before + 2);

  Response whole = fetch(port_, "/bytes?n=" + std::to_string(n));
  ASSERT_TRUE(whole.ok()) << whole.error;
  EXPECT_EQ(whole.status, 200u);
  EXPECT_EQ(whole.body.size(), n);
}

TEST_F(RelayTest, ChunkedRequestAndResponseBodies) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();

  // /echo answers chunked with the request's (chunked) body.
  Response echo = client.request("POST", "/echo", {{"Transfer-Encoding", "chunked"}},
                                 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_TRUE(echo.ok()) << echo.error;
  EXPECT_EQ(echo.status, 200u);
  EXPECT_EQ(echo.body, "hello world");

  // A larger chunked upload, counted by /sink; the same connection keeps working.
  ASSERT_TRUE(
      client.send_raw("POST /sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"));
  ASSERT_TRUE(client.send_chunked_pattern(kMiB, 10000));
  Response sink = client.read_response();
  ASSERT_TRUE(sink.ok()) << sink.error;
  EXPECT_EQ(sink.body, std::to_string(kMiB));

  ASSERT_TRUE(client.send_raw("GET /bytes?n=300000&mode=chunked HTTP/1.1\r\nHost: test\r\n\r\n"));
  StreamedResponse down = client.read_response_streaming();
  ASSERT_TRUE(down.ok()) << down.error;
  EXPECT_EQ(down.status, 200u);
  EXPECT_EQ(down.body_bytes, 300000u);
  EXPECT_TRUE(down.pattern_ok);
}

// A client's chunked body whose trailer section carries Content-Length and Transfer-Encoding
// (RFC 9110 6.5.1: a sender must not): they are ignored, the body reaches the upstream whole (it
// echoes it back), and the pipelined request after the section is the next one. A malformed
// trailer field after an ignored one is still a 400.
TEST_F(RelayTest, FramingFieldsInARequestTrailerAreIgnored) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(
      "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nContent-Length: 12\r\nX-A: 1\r\nTransfer-Encoding: gzip\r\n\r\n"
      "GET /status?code=202 HTTP/1.1\r\nHost: test\r\n\r\n"));
  Response echo = client.read_response();
  Response next = client.read_response();
  ASSERT_TRUE(echo.ok()) << echo.error;
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_EQ(echo.status, 200u);
  EXPECT_EQ(echo.body, "hello");
  EXPECT_EQ(next.status, 202u);

  HttpClient bad(port_);
  ASSERT_TRUE(bad.connected()) << bad.connect_error();
  ASSERT_TRUE(bad.send_raw(
      "POST /sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nContent-Length: 12\r\nX A: 1\r\n\r\n"));
  Response refused = bad.read_response();
  ASSERT_TRUE(refused.ok()) << refused.error;
  EXPECT_EQ(refused.status, 400u);
}

// A chunk larger than the 64 KiB stage it is decoded into, read whole with the rest of the body:
// a client buffer above 64 KiB (a max_header_bytes over 63 KiB makes one) holds it. The stage is
// sent when full and decoding goes on from the bytes already read; proxyd once waited for more
// from the client instead, which had sent everything, until client_body ran out.
TEST_F(RelayTest, AChunkLargerThanTheStageReadWholeIsRelayed) {
  ASSERT_NO_FATAL_FAILURE(
      start(2, "30s", "max_header_bytes: 512KiB, max_body_bytes: 200MiB", ", client_body: 3s"));
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  const std::size_t n = 300000;
  std::array<char, 20> hex{};
  const auto end = std::to_chars(hex.data(), hex.data() + hex.size(), n, 16).ptr;
  ASSERT_TRUE(client.send_raw("POST /sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked"
                              "\r\n\r\n" + std::string(hex.data(), end) + "\r\n" +
                              std::string(n, 'x') + "\r\n0\r\n\r\n"));
  Response sink = client.read_response();
  ASSERT_TRUE(sink.ok()) << sink.error;
  EXPECT_EQ(sink.status, 200u);
  EXPECT_EQ(sink.body, std::to_string(n));
}

// A chunked response whose body fails before its first byte, which its head waits for (a bad
// chunk-size line, or the upstream closing): nothing reached the client, so it gets the 502 a bad
// head gets instead of a closed connection, and its connection goes on.
TEST_F(RelayTest, AChunkedBodyThatFailsBeforeItsFirstByteIsA502) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  for (const std::string which : {"line", "close"}) {
    Response r = client.get("/bad-chunks?case=" + which);
    ASSERT_TRUE(r.ok()) << which << ": " << r.error;
    EXPECT_EQ(r.status, 502u) << which;
    EXPECT_EQ(r.body, "502 Bad Gateway (bad_upstream_response)\n") << which;
  }
  Response after = client.get("/");
  ASSERT_TRUE(after.ok()) << after.error;
  EXPECT_EQ(after.body, "blue-1\n");
}

TEST_F(RelayTest, CloseDelimitedResponseIsRelayedWhole) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw("GET /bytes?n=300000&mode=close HTTP/1.1\r\nHost: test\r\n\r\n"));
  StreamedResponse down = client.read_response_streaming();
  ASSERT_TRUE(down.ok()) << down.error;
  EXPECT_EQ(down.status, 200u);
  EXPECT_EQ(down.body_bytes, 300000u);
  EXPECT_TRUE(down.pattern_ok);
}

TEST_F(RelayTest, HeadResponsesHaveNoBody) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();

  Response head = client.request("HEAD", "/");
  ASSERT_TRUE(head.ok()) << head.error;
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.header("content-length"), "7");
  EXPECT_EQ(head.body, "");

  Response big = client.request("HEAD", "/bytes?n=100000");
  ASSERT_TRUE(big.ok()) << big.error;
  EXPECT_EQ(big.header("content-length"), "100000");

  // Had proxyd sent body bytes after a HEAD response, this would read them instead.
  Response get = client.get("/");
  ASSERT_TRUE(get.ok()) << get.error;
  EXPECT_EQ(get.status, 200u);
  EXPECT_EQ(get.body, "blue-1\n");
}

TEST_F(RelayTest, NoBodyStatusesAndUpstreamErrorsAreRelayed) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  for (unsigned code : {204u, 304u, 404u, 503u, 204u}) {
    Response r = client.get("/status?code=" + std::to_string(code));
    ASSERT_TRUE(r.ok()) << code << ": " << r.error;
    EXPECT_EQ(r.status, code);
    EXPECT_EQ(r.header("x-upstream"), "blue-1") << "an upstream " << code << " is relayed as is";
    if (code == 204 || code == 304) {
      EXPECT_EQ(r.body, "");
    } else {
      EXPECT_EQ(r.body, "status " + std::to_string(code) + "\n");
    }
  }
  Response after = client.get("/");
  ASSERT_TRUE(after.ok()) << after.error;
  EXPECT_EQ(after.body, "blue-1\n");
}

TEST_F(RelayTest, EarlyHintsAreForwardedBeforeTheFinalResponse) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw("GET /early-hints HTTP/1.1\r\nHost: test\r\n\r\n"));
  Response hints = client.read_response();
  ASSERT_TRUE(hints.ok()) << hints.error;
  EXPECT_EQ(hints.status, 103u);
  EXPECT_EQ(hints.header("link"), "</a.css>");
  Response final_response = client.read_response();
  ASSERT_TRUE(final_response.ok()) << final_response.error;
  EXPECT_EQ(final_response.status, 200u);
  EXPECT_EQ(final_response.body, "blue-1\n");
}

TEST_F(RelayTest, ExpectContinueGets100BeforeTheBodyIsSent) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_, 3s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(
      "POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  Response interim = client.read_response();
  ASSERT_TRUE(interim.ok()) << "no 100 Continue before the body: " << interim.error;
  EXPECT_EQ(interim.status, 100u);
  ASSERT_TRUE(client.send_raw("hello"));
  Response r = client.read_response();
  // A second 100 (proxyd's own and the upstream's) is legal; skip it.
  if (r.ok() && r.status == 100) r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "5");
}

TEST_F(RelayTest, WebSocketUpgradeBecomesATunnel) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(
      "GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.status, 101u);
  EXPECT_EQ(r.header("upgrade"), "websocket");

  ASSERT_TRUE(client.send_raw("ping-1"));
  EXPECT_EQ(client.read_raw(6), "ping-1");
  ASSERT_TRUE(client.send_pattern(64 * 1024));
  const std::string back = client.read_raw(64 * 1024);
  ASSERT_EQ(back.size(), 64u * 1024);
  for (std::size_t i = 0; i < back.size(); ++i) {
    ASSERT_EQ(back[i], pattern_byte(i)) << "at " << i;
  }
  // Half-close travels through the tunnel; the upstream then closes and so does proxyd.
  client.shutdown_write();
  EXPECT_TRUE(client.is_closed_by_peer());
}

// A 101 must name the protocol it switches to (RFC 9110 7.8). Relayed without one, the client
// would get a tunnel announced by `Upgrade: ` with an empty value.
TEST_F(RelayTest, ASwitchWithoutAnUpgradeFieldGets502) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(
      "GET /upgrade-without-field HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n"));
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 502u);
  EXPECT_EQ(r.body, "502 Bad Gateway (bad_upstream_response)\n");
  EXPECT_EQ(r.header("upgrade"), "");
}

TEST_F(RelayTest, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(
      client.send_raw("GET /delay?ms=100 HTTP/1.1\r\nHost: test\r\n\r\n"
                      "GET /status?code=202 HTTP/1.1\r\nHost: test\r\n\r\n"
                      "GET /headers?third HTTP/1.1\r\nHost: test\r\n\r\n"));
  Response first = client.read_response();
  Response second = client.read_response();
  Response third = client.read_response();
  ASSERT_TRUE(first.ok()) << first.error;
  ASSERT_TRUE(second.ok()) << second.error;
  ASSERT_TRUE(third.ok()) << third.error;
  EXPECT_EQ(first.status, 200u);
  EXPECT_EQ(first.body, "blue-1\n");
  EXPECT_EQ(second.status, 202u);
  EXPECT_EQ(third.status, 200u);
  EXPECT_EQ(third.body.rfind("GET /headers?third ", 0), 0u) << third.body;
}

TEST_F(RelayTest, HopByHopFieldsAreRemovedAndForwardedFieldsSet) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  Response r = client.get("/headers", {{"Host", "example.test"},
                                       {"Connection", "keep-alive, X-Hop"},
                                       {"Keep-Alive", "timeout=5"},
                                       {"X-Hop", "secret"},
                                       {"TE", "trailers"},
                                       {"X-Keep", "yes"}});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.status, 200u);
  const auto fields = parse_echoed_headers(r.body);
  EXPECT_EQ(fields.find("")->second.rfind("GET /headers HTTP/1.", 0), 0u) << r.body;
  EXPECT_EQ(only(fields, "host"), "example.test");
  EXPECT_EQ(only(fields, "x-keep"), "yes");
  EXPECT_EQ(fields.count("x-hop"), 0u) << "a field named in Connection is hop-by-hop\n" << r.body;
  EXPECT_EQ(fields.count("keep-alive"), 0u) << r.body;
  EXPECT_EQ(fields.count("te"), 0u) << r.body;
  for (auto [it, end] = fields.equal_range("connection"); it != end; ++it) {
    EXPECT_EQ(it->second.find("X-Hop"), std::string::npos) << r.body;
  }
  EXPECT_EQ(only(fields, "x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(only(fields, "x-forwarded-proto"), "http");
  EXPECT_EQ(only(fields, "x-forwarded-host"), "example.test");
}

// An HTTP/1.0 request may come without Host; it goes upstream as HTTP/1.1, which must have one
// (RFC 9112 3.2): proxyd names the address the client connected to, and sets no X-Forwarded-Host.
// A client that names Host in Connection does not get it removed: proxyd routed on it, and the
// upstream must see the same one (RFC 9112 3.2 requires Host in HTTP/1.1).
TEST_F(RelayTest, HostNamedInConnectionIsStillForwarded) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  Response r = client.get("/headers", {{"Host", "example.test"},
                                       {"Connection", "Host, X-Hop"},
                                       {"X-Hop", "secret"}});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.status, 200u);
  const auto fields = parse_echoed_headers(r.body);
  EXPECT_EQ(only(fields, "host"), "example.test") << r.body;
  EXPECT_EQ(fields.count("x-hop"), 0u) << r.body;
  EXPECT_EQ(only(fields, "x-forwarded-host"), "example.test");
}

TEST_F(RelayTest, Http10RequestWithoutHostGetsTheListenerAddressAsHost) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw("GET /headers HTTP/1.0\r\n\r\n"));
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto fields = parse_echoed_headers(r.body);
  EXPECT_EQ(fields.find("")->second, "GET /headers HTTP/1.1") << r.body;
  EXPECT_EQ(only(fields, "host"), "127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(fields.count("x-forwarded-host"), 0u) << r.body;
}

TEST_F(RelayTest, ForwardedForEndsWithTheClientAddress) {
  ASSERT_NO_FATAL_FAILURE(start());
  Response r = fetch(port_, "/headers", {{"X-Forwarded-For", "203.0.113.9"}});
  ASSERT_TRUE(r.ok()) << r.error;
  const auto fields = parse_echoed_headers(r.body);
  std::string joined;
  for (auto [it, end] = fields.equal_range("x-forwarded-for"); it != end; ++it) {
    joined += (joined.empty() ? "" : ", ") + it->second;
  }
  // Appending (nginx's $proxy_add_x_forwarded_for) or replacing are both fine; the last hop is
  // the address proxyd saw.
  ASSERT_GE(joined.size(), 9u) << r.body;
  EXPECT_EQ(joined.substr(joined.size() - 9), "127.0.0.1") << joined;
}

TEST_F(RelayTest, AccessLogHasOneLinePerRequest) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port_);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  for (int i = 1; i <= 5; ++i) {
    Response r = client.get("/log-" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error;
  }
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(5, 5s));
  const auto lines = proxy_->stdout_lines();
  EXPECT_EQ(lines.size(), 5u);
  for (int i = 1; i <= 5; ++i) {
    const std::string target = "/log-" + std::to_string(i);
    int hits = 0;
    for (const auto& line : lines) {
      if (line.find(target) != std::string::npos) {
        ++hits;
        EXPECT_NE(line.find("200"), std::string::npos) << line;
      }
    }
    EXPECT_EQ(hits, 1) << target;
  }
}

}  // namespace
}  // namespace proxyd::test
