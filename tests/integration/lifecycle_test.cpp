// The request lifecycle against misbehaving upstreams and clients, through the real proxyd:
// nothing an upstream sends outside a request reaches any client, a request is sent twice only
// when that is safe, bare-LF heads are answered at once, interim responses are bounded, the
// header deadline holds against slowloris, retries are bounded however large the pool, and the
// access log has exactly one line per request, with the outcome of every attempt.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/log_fields.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// One worker (so idle connections and the round-robin cursor are shared by every request) in
// front of one pool; upstream_idle is long so a connection closes only for the reason a test is
// about.
ConfigBuilder one_pool(const std::vector<std::string>& servers) {
  ConfigBuilder config;
  config.pool("blue", servers).route("web", "/", "blue");
  config.timeouts(
      "client_header: 5s, client_idle: 30s, upstream_connect: 1s, upstream_response: 5s, "
      "upstream_idle: 60s, drain: 2s");
  return config;
}

// The access-log line number `n` (1-based), waiting for it.
std::map<std::string, std::string> log_line(ProxydProcess& proxy, std::size_t n) {
  if (!proxy.wait_for_stdout_lines(n, 5s)) return {};
  return log_fields(proxy.stdout_lines()[n - 1]);
}

class Lifecycle : public ::testing::Test {
 protected:
  void start(const ConfigBuilder& config) {
    proxy_ = ProxydProcess::start(config.yaml());
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
  }

  // One request on a fresh connection, after which its upstream connection idles in proxyd's
  // cache: the access-log line is written after the connection went back to the cache.
  void leave_one_idle_connection(FakeUpstream& upstream) {
    Response first = fetch(port_, "/");
    ASSERT_EQ(first.status, 200u) << first.error;
    ASSERT_EQ(first.header("x-conn-seq"), "1");
    ASSERT_EQ(log_line(*proxy_, 1)["status"], "200");
    ASSERT_TRUE(upstream.wait_for_idle(1, 5s));
  }

  FakeUpstream blue_{"blue-1"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
};

// The bytes a misbehaving upstream sends on an idle connection: a whole response of its own.
constexpr const char* kLateResponse =
    "HTTP/1.1 200 OK\r\nx-upstream: late\r\ncontent-length: 5\r\n\r\nLATE!";

TEST_F(Lifecycle, LateBytesOnAnIdleConnectionNeverReachAnotherClient) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  ASSERT_NO_FATAL_FAILURE(leave_one_idle_connection(blue_));
  ASSERT_EQ(blue_.push_to_idle(kLateResponse, false), 1u);
  // Another client, on another connection, at once: whether proxyd's watch has closed the
  // connection yet or not, the check when it is taken finds the bytes.
  Response second = fetch(port_, "/");
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.status, 200u);
  EXPECT_EQ(second.header("x-upstream"), "blue-1");
  EXPECT_EQ(second.body, "blue-1\n");
  EXPECT_EQ(second.header("x-conn-seq"), "2");
  EXPECT_EQ(blue_.requests_served(), 2u);
}

TEST_F(Lifecycle, AnIdleConnectionThatBecomesReadableIsClosedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  ASSERT_NO_FATAL_FAILURE(leave_one_idle_connection(blue_));
  ASSERT_EQ(blue_.push_to_idle(kLateResponse, false), 1u);
  // upstream_idle is 60 s: only the watch closes it this soon.
  EXPECT_TRUE(blue_.wait_for_closed(1, 3s));
}

TEST_F(Lifecycle, AnUnsolicited408OnAnIdleConnectionIsNotTheNextAnswer) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  ASSERT_NO_FATAL_FAILURE(leave_one_idle_connection(blue_));
  ASSERT_EQ(blue_.push_to_idle("HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                               "content-length: 0\r\n\r\n",
                               true),
            1u);
  Response next = fetch(port_, "/");
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_EQ(next.status, 200u);
  EXPECT_EQ(next.header("x-upstream"), "blue-1");
  EXPECT_EQ(next.header("x-conn-seq"), "2");
  EXPECT_EQ(blue_.requests_served(), 2u) << "the next request reached the backend";
}

// A client that sends its last request and its FIN together (a half-close) gets the answer and
// then the close at once, not at client_idle (30 s here): the read after the response must not
// take the request's read for one that left the socket empty (read_readiness.hpp). On a fresh
// connection and on one kept alive across a first request.
TEST_F(Lifecycle, AHalfCloseAfterTheLastRequestIsAnsweredThenClosedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  for (const bool kept_alive : {false, true}) {
    HttpClient client(port_, 2s);
    ASSERT_TRUE(client.connected()) << client.connect_error();
    if (kept_alive) {
      Response first = client.get("/");
      ASSERT_EQ(first.status, 200u) << first.error;
    }
    ASSERT_TRUE(client.send_raw("GET /last HTTP/1.1\r\nHost: test\r\n\r\n"));
    client.shutdown_write();
    Response last = client.read_response();
    ASSERT_TRUE(last.ok()) << last.error;
    EXPECT_EQ(last.status, 200u) << kept_alive;
    const auto start = Clock::now();
    EXPECT_TRUE(client.is_closed_by_peer()) << "kept alive: " << kept_alive;
    EXPECT_LT(since(start), 1500ms) << kept_alive;
  }
}

TEST_F(Lifecycle, APostIsNeverSentTwice) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  ASSERT_NO_FATAL_FAILURE(leave_one_idle_connection(blue_));
  // On the kept-alive connection, the backend reads the POST and closes without a byte: it may
  // have acted on it, so the POST is not sent again.
  HttpClient client(port_);
  ASSERT_TRUE(client.connected());
  Response r = client.request("POST", "/close-silently", {}, "order=1");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 502u);
  EXPECT_EQ(blue_.requests_served(), 2u);
  auto line = log_line(*proxy_, 2);
  EXPECT_EQ(line["method"], "POST");
  EXPECT_EQ(line["attempts"], "1");
  EXPECT_EQ(line["failed"], blue_.address() + "/closed");
  EXPECT_EQ(line["reason"], "bad_upstream_response");
}

TEST_F(Lifecycle, AnIdempotentRequestIsReplayedOnAFreshConnection) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  ASSERT_NO_FATAL_FAILURE(leave_one_idle_connection(blue_));
  Response r = fetch(port_, "/close-silently?once=a");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("x-conn-seq"), "2");
  EXPECT_EQ(blue_.requests_served(), 3u);
  auto line = log_line(*proxy_, 2);
  EXPECT_EQ(line["attempts"], "2");
  EXPECT_EQ(line["failed"], blue_.address() + "/closed");
  EXPECT_EQ(line["server"], blue_.address());
  EXPECT_EQ(line["end"], "relayed");
}

TEST_F(Lifecycle, ARequestClosedOnAFreshConnectionIsNotReplayed) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  Response r = fetch(port_, "/close-silently");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 502u);
  EXPECT_EQ(blue_.requests_served(), 1u);
  auto line = log_line(*proxy_, 1);
  EXPECT_EQ(line["attempts"], "1");
  EXPECT_EQ(line["failed"], blue_.address() + "/reset");
  EXPECT_EQ(line["reason"], "bad_upstream_response");
}

TEST_F(Lifecycle, ABareLfResponseGets502AtOnce) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  const auto start = Clock::now();
  Response r = fetch(port_, "/bare-lf");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 502u);
  EXPECT_LT(since(start), 2s) << "upstream_response is 5s: it must not be waited out";
  EXPECT_EQ(log_line(*proxy_, 1)["failed"], blue_.address() + "/bad_response");
}

// RFC 9112 5.2: a proxy replaces a response with obs-fold by a 502 (or unfolds it). Beast 1.81
// joins a folded value in a buffer of its own that the next folded field overwrites, so relaying
// it would send the second value under both names.
TEST_F(Lifecycle, AnObsFoldResponseGets502) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  Response r = fetch(port_, "/obs-fold");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 502u) << "x-a: " << r.header("x-a") << ", x-b: " << r.header("x-b");
  EXPECT_NE(r.body.find("bad_upstream_response"), std::string::npos) << r.body;
  EXPECT_EQ(r.header("x-a"), "");
  EXPECT_EQ(log_line(*proxy_, 1)["failed"], blue_.address() + "/bad_response");
  EXPECT_EQ(log_line(*proxy_, 1)["reason"], "bad_upstream_response");
}

// A response head may be up to 8 KiB (kMaxResponseHead), as nginx's default proxy_buffer_size;
// one byte more is a bad response.
TEST_F(Lifecycle, AResponseHeadOverEightKibGets502) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  Response fits = fetch(port_, "/big-head?bytes=8192");
  ASSERT_TRUE(fits.ok()) << fits.error;
  EXPECT_EQ(fits.status, 200u);
  EXPECT_EQ(fits.body, "ok");
  // The fake's head around the filler: status line, its two tags, content-length, x-big's name.
  const std::string around =
      "HTTP/1.1 200 OK\r\nx-upstream: blue-1\r\nx-conn-seq: 1\r\ncontent-length: 2\r\n"
      "x-big: \r\n\r\n";
  EXPECT_EQ(fits.header("x-big"), std::string(8192 - around.size(), 'a'));
  Response over = fetch(port_, "/big-head?bytes=8193");
  ASSERT_TRUE(over.ok()) << over.error;
  EXPECT_EQ(over.status, 502u);
  EXPECT_EQ(over.header("x-big"), "");
  EXPECT_EQ(log_line(*proxy_, 2)["failed"], blue_.address() + "/bad_response");
  EXPECT_EQ(log_line(*proxy_, 2)["reason"], "bad_upstream_response");
}

TEST_F(Lifecycle, ABareLfRequestGets400AtOnce) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  HttpClient client(port_, 3s);
  ASSERT_TRUE(client.connected());
  const auto start = Clock::now();
  ASSERT_TRUE(client.send_raw("GET / HTTP/1.1\nHost: a\n\n"));
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 400u);
  EXPECT_LT(since(start), 2s) << "client_header is 5s: it must not be waited out";
  EXPECT_TRUE(client.is_closed_by_peer());
  EXPECT_EQ(blue_.requests_served(), 0u);
  EXPECT_EQ(log_line(*proxy_, 1)["reason"], "bad_request");
}

TEST_F(Lifecycle, InterimResponsesAreCappedAt16) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  HttpClient client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send_raw("GET /interim?n=1000 HTTP/1.1\r\nHost: a\r\n\r\n"));
  int interim = 0;
  Response r;
  for (;;) {
    r = client.read_response();
    ASSERT_TRUE(r.ok()) << r.error;
    if (r.status != 102) break;
    ++interim;
  }
  EXPECT_EQ(interim, 16);
  EXPECT_EQ(r.status, 502u);
  EXPECT_NE(r.body.find("bad_upstream_response"), std::string::npos) << r.body;
}

// Slowloris: connections that send a header line every 100 ms never finish a header. Each must
// get its 408 when client_header (400 ms) has passed since its first byte, however many lines
// keep arriving.
TEST_F(Lifecycle, TheHeaderDeadlineHoldsAgainstSlowHeaders) {
  ConfigBuilder config = one_pool({blue_.address()});
  config.timeouts("client_header: 400ms, client_idle: 30s, drain: 2s");
  ASSERT_NO_FATAL_FAILURE(start(config));
  constexpr int kClients = 20;
  std::vector<unsigned> status(kClients, 0);
  std::vector<std::chrono::milliseconds> took(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      HttpClient client(port_, 100ms);
      if (!client.connected()) return;
      const auto start = Clock::now();
      client.send_raw("GET / HTTP/1.1\r\n");
      // A line every 100 ms (the read's timeout paces the loop), for at most 5 s.
      for (int line = 0; line < 50; ++line) {
        if (!client.send_raw("X-Slow-" + std::to_string(line) + ": a\r\n")) break;
        std::string got = client.read_raw(1);
        if (got.empty()) continue;
        took[i] = since(start);
        client.set_timeout(2s);
        got += client.read_raw(11);  // "HTTP/1.1 408"
        if (got.starts_with("HTTP/1.1 ")) status[i] = static_cast<unsigned>(std::stoul(got.substr(9)));
        return;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(status[i], 408u) << "client " << i;
    EXPECT_GE(took[i], 350ms) << "client " << i;
    EXPECT_LT(took[i], 1500ms) << "client " << i;
  }
  EXPECT_EQ(blue_.requests_served(), 0u);
}

TEST_F(Lifecycle, SeventyRefusingServersGet502WithinTheConnectTimeout) {
  // Held while proxyd runs: its listener's port 0 cannot be one of them.
  const std::vector<RefusingPort> ports(70);
  std::vector<std::string> refusing;
  for (const RefusingPort& port : ports) refusing.push_back(port.address());
  ASSERT_NO_FATAL_FAILURE(start(one_pool(refusing)));
  for (std::size_t n = 1; n <= 3; ++n) {
    const auto start = Clock::now();
    Response r = fetch(port_, "/");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 502u);
    EXPECT_LT(since(start), 1s) << "upstream_connect is 1s";
    auto line = log_line(*proxy_, n);
    EXPECT_EQ(line["attempts"], "4");
    EXPECT_EQ(line["reason"], "upstream_unavailable");
  }
  EXPECT_TRUE(proxy_->running());
}

TEST_F(Lifecycle, TheOutcomeOfARetriedRequestNamesEveryAttempt) {
  const RefusingPort refusing;
  const std::string refused = refusing.address();
  // One worker: its round-robin cursor starts at the first server, which refuses.
  ASSERT_NO_FATAL_FAILURE(start(one_pool({refused, blue_.address()})));
  HttpClient client(port_);
  ASSERT_TRUE(client.connected());
  Response r = client.request("PUT", "/sink?x=1", {}, "abc");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "3");
  auto line = log_line(*proxy_, 1);
  EXPECT_EQ(line["method"], "PUT");
  EXPECT_EQ(line["target"], "/sink?x=1");
  EXPECT_EQ(line["status"], "200");
  EXPECT_EQ(line["route"], "web");
  EXPECT_EQ(line["slot"], "live");
  EXPECT_EQ(line["pool"], "blue");
  EXPECT_EQ(line["server"], blue_.address());
  EXPECT_EQ(line["attempts"], "2");
  EXPECT_EQ(line["failed"], refused + "/connect_failed");
  EXPECT_EQ(line["bytes_in"], "3");
  EXPECT_EQ(line["bytes_out"], "1");
  EXPECT_EQ(line["end"], "relayed");
  EXPECT_EQ(line["reason"], "-");
  EXPECT_NE(line["connect_ms"], "-");
  EXPECT_NE(line["ttfb_ms"], "-");
}

// Every request gets exactly one line, also those whose client disappears half-way: after a
// 100 Continue, and between interim responses. A last request marks the end (one worker writes
// its lines in order).
TEST_F(Lifecycle, TheAccessLogHasExactlyOneLinePerRequest) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  {
    HttpClient client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send_raw("POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                                "Expect: 100-continue\r\n\r\n"));
    Response cont = client.read_response();
    ASSERT_EQ(cont.status, 100u) << cont.error;
  }  // gone without its body
  {
    HttpClient client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send_raw("GET /interim?n=5&ms=100 HTTP/1.1\r\nHost: a\r\n\r\n"));
    Response first = client.read_response();
    ASSERT_EQ(first.status, 102u) << first.error;
  }  // gone between interim responses
  {
    HttpClient client(port_);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send_raw("GET / HTTP/1.1\nHost: a\n\n"));  // refused while reading
    EXPECT_EQ(client.read_response().status, 400u);
  }
  // Both upstream connections close when proxyd ends those requests, after their lines.
  ASSERT_TRUE(blue_.wait_for_closed(2, 5s));
  Response last = fetch(port_, "/last");
  ASSERT_EQ(last.status, 200u);
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(4, 5s));
  // The line for /last is written last; no other line may follow or be missing.
  const auto lines = proxy_->stdout_lines();
  ASSERT_EQ(lines.size(), 4u);
  std::map<std::string, int> by_target;
  for (const auto& text : lines) ++by_target[log_fields(text)["target"]];
  EXPECT_EQ(by_target["/sink"], 1);
  EXPECT_EQ(by_target["/interim?n=5&ms=100"], 1);
  EXPECT_EQ(by_target["-"], 1);  // the bare-LF request: its head was never parsed
  EXPECT_EQ(log_fields(lines.back())["target"], "/last");
  for (const auto& text : lines) {
    auto f = log_fields(text);
    if (f["target"] == "/sink" || f["target"] == "/interim?n=5&ms=100") {
      EXPECT_EQ(f["end"], "client_gone") << text;
    }
  }
}

// Three hundred connections opened at once, each with its request sent before proxyd accepted
// it: a worker takes what waits in its backlog in batches (Worker::accept_loop), and every
// connection of a batch gets its session and its answer, in the access log once each.
TEST_F(Lifecycle, ABurstOfNewConnectionsIsServedWhole) {
  ASSERT_NO_FATAL_FAILURE(start(one_pool({blue_.address()})));
  constexpr int kClients = 300;
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<HttpClient>(port_));
    ASSERT_TRUE(clients.back()->connected()) << i << ": " << clients.back()->connect_error();
    ASSERT_TRUE(clients.back()->send_raw("GET /burst/" + std::to_string(i) +
                                         " HTTP/1.1\r\nHost: a\r\n\r\n"));
  }
  for (int i = 0; i < kClients; ++i) {
    Response r = clients[i]->read_response();
    ASSERT_TRUE(r.ok()) << i << ": " << r.error;
    EXPECT_EQ(r.status, 200u) << i;
    EXPECT_EQ(r.body, "blue-1\n") << i;
  }
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(kClients, 5s));
  std::set<std::string> targets;
  for (const auto& line : proxy_->stdout_lines()) targets.insert(log_fields(line)["target"]);
  EXPECT_EQ(targets.size(), static_cast<std::size_t>(kClients));
}

}  // namespace
}  // namespace proxyd::test
