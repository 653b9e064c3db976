// Metrics through the real proxyd: after requests on two routes, a weight change, a flip and a
// reload, proxyd_requests_total per route, slot, pool and code equals what the clients and the
// fake upstreams saw, and no counter went down; the exposition passes `promtool check metrics`;
// scrapes under load and during reloads are complete; local replies and upstream failures are
// counted by reason; /ready turns 503 while draining; the admin paths are not reachable through a
// proxy listener; new connections are spread over the workers by how many each serves.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/config_builder.hpp"
#include "tests/support/descriptors.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

// Every sample of an exposition: "name{labels}" -> value (comments skipped).
using Samples = std::map<std::string, double>;

Samples parse(const std::string& text) {
  Samples out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

std::string requests_key(const std::string& route, const std::string& slot,
                         const std::string& pool, const std::string& code) {
  return "proxyd_requests_total{route=\"" + route + "\",slot=\"" + slot + "\",pool=\"" + pool +
         "\",code=\"" + code + "\"}";
}

class MetricsTest : public ::testing::Test {
 protected:
  void start(const std::string& yaml) {
    proxy_ = ProxydProcess::start(yaml);
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
    admin_ = proxy_->port("admin.metrics");
    ASSERT_NE(admin_, 0) << proxy_->stderr_text();
  }
  // Scrapes until `done(samples)` or 5 s: a request is counted when it ends, just after its
  // response went out, so the client may be a moment ahead of the counters.
  template <class Done>
  Samples scrape_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    Samples s = parse(scrape());
    while (!done(s) && std::chrono::steady_clock::now() < deadline) s = parse(scrape());
    return s;
  }
  // Scrapes until the requests counted reach `n`.
  Samples scrape_counted(double n) {
    return scrape_until([n](const Samples& s) { return requests_counted(s) >= n; });
  }
  static double requests_counted(const Samples& s) {
    double counted = 0;
    for (const auto& [key, value] : s) {
      if (key.rfind("proxyd_requests_total{", 0) == 0) counted += value;
    }
    return counted;
  }
  double expected_total() const {
    double total = 0;
    for (const auto& [key, value] : expected_) total += value;
    return total;
  }
  std::string scrape() {
    Response r = fetch(admin_, "/metrics");
    EXPECT_EQ(r.status, 200u) << r.error;
    EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    return r.body;
  }
  CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock"});
    return run_program(args, 20s);
  }
  // `n` requests to `path`, each counted under the route, slot and pool that answered.
  void send(const std::string& route, const std::string& path, int n,
            const std::map<std::string, std::string>& slot_of_pool) {
    for (int i = 0; i < n; ++i) {
      Response r = fetch(port_, path + std::to_string(i));
      ASSERT_EQ(r.status, 200u) << r.error;
      const std::string pool = r.header("x-upstream");
      expected_[requests_key(route, slot_of_pool.at(pool), pool, "200")] += 1;
    }
  }

  // `n` admin connections, each with a head that never ends; empty if one could not be sent.
  std::vector<std::unique_ptr<HttpClient>> silent_scrapers(int n) const {
    std::vector<std::unique_ptr<HttpClient>> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(std::make_unique<HttpClient>(admin_));
      if (!out.back()->send_raw("GET /metr")) return {};
    }
    return out;
  }

  FakeUpstream blue_{"blue"};
  FakeUpstream green_{"green"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_ = 0;
  Samples expected_;
};

std::string two_routes(const FakeUpstream& blue, const FakeUpstream& green,
                       const std::string& web_weight) {
  return ConfigBuilder()
      .workers(2)
      .metrics()
      .pool("blue", {blue.address()})
      .pool("green", {green.address()})
      .route("api", "/api/", "blue", "green")
      .route("web", "/", "blue", "green", {"weight: " + web_weight})
      .access_log("off")
      .yaml();
}

// Every counter of `before` is in `after` with a value at least as large.
void expect_no_counter_went_down(const Samples& before, const Samples& after) {
  for (const auto& [key, value] : before) {
    if (key.find("_total") == std::string::npos && key.find("_bucket") == std::string::npos &&
        key.find("_count") == std::string::npos)
      continue;
    const auto it = after.find(key);
    ASSERT_NE(it, after.end()) << key << " disappeared";
    EXPECT_GE(it->second, value) << key;
  }
}

TEST_F(MetricsTest, CountsMatchWhatTheUpstreamsSawThroughWeightFlipAndReload) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "0")));
  const std::map<std::string, std::string> blue_live{{"blue", "live"}, {"green", "passive"}};
  const std::map<std::string, std::string> green_live{{"green", "live"}, {"blue", "passive"}};

  send("api", "/api/a", 20, blue_live);
  send("web", "/w", 30, blue_live);
  Samples first = scrape_counted(expected_total());

  ASSERT_EQ(ctl({"set-weight", "web", "50"}).exit_code, 0);
  send("web", "/w", 40, blue_live);
  ASSERT_EQ(ctl({"flip", "api", "web"}).exit_code, 0);
  send("api", "/api/a", 10, green_live);
  send("web", "/w", 40, green_live);
  Samples second = scrape_counted(expected_total());
  expect_no_counter_went_down(first, second);

  // A reload that changes nothing in routing (the runtime values win) keeps every count.
  proxy_->write_config(two_routes(blue_, green_, "10"));
  const std::size_t mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  ASSERT_TRUE(proxy_->wait_for_line("proxyd: reload ok", 5s, mark)) << proxy_->stderr_text();
  send("web", "/w", 10, green_live);
  const Samples last = scrape_counted(expected_total());
  expect_no_counter_went_down(second, last);

  for (const auto& [key, value] : expected_)
    EXPECT_EQ(last.count(key) ? last.at(key) : -1, value) << key;
  const double counted = requests_counted(last);
  EXPECT_EQ(counted, expected_total()) << "no request counted twice or under another label";
  EXPECT_EQ(counted, static_cast<double>(blue_.requests_served() + green_.requests_served()));
  EXPECT_EQ(last.at("proxyd_config_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(last.at("proxyd_state_generation"), 4);  // start, set-weight, flip, reload
  EXPECT_EQ(last.at("proxyd_route_weight_ratio{route=\"web\"}"), 0);
  EXPECT_EQ(last.at("proxyd_route_slot_info{route=\"web\",slot=\"live\",pool=\"green\"}"), 1);
  EXPECT_EQ(last.at("proxyd_request_duration_seconds_count{route=\"api\",slot=\"live\",pool=\"blue\"}"),
            20);
  EXPECT_EQ(last.at("proxyd_request_duration_seconds_bucket{route=\"api\",slot=\"live\",pool="
                    "\"blue\",le=\"+Inf\"}"),
            20);
  EXPECT_EQ(last.at("proxyd_in_flight_requests{route=\"web\",pool=\"blue\"}"), 0);
}

TEST_F(MetricsTest, TheExpositionPassesPromtool) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "50")));
  send("web", "/w", 10, {{"blue", "live"}, {"green", "passive"}});
  ASSERT_EQ(fetch(port_, "/", {{"Host", ""}}).status, 400u);  // a local reply, counted
  scrape_until([](const Samples& s) {
    return s.at("proxyd_local_replies_total{reason=\"bad_request\"}") == 1;
  });
  const std::string text = scrape();
  const std::string file = proxy_->dir() + "/metrics.txt";
  std::ofstream(file) << text;
  const CommandResult check = run_program({"/bin/sh", "-c", "promtool check metrics < " + file});
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << text;
  EXPECT_EQ(check.output, "") << text;
  EXPECT_EQ(parse(text).at("proxyd_local_replies_total{reason=\"bad_request\"}"), 1);
}

TEST_F(MetricsTest, UpstreamFailuresAndLocalRepliesByReason) {
  const RefusingPort refusing;
  const std::string refused = refusing.address();
  ASSERT_NO_FATAL_FAILURE(start(ConfigBuilder()
                                    .metrics()
                                    .pool("blue", {refused})
                                    .route("web", "/", "blue")
                                    .access_log("off")
                                    .yaml()));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fetch(port_, "/").status, 502u);
  const Samples s = scrape_counted(3);
  EXPECT_EQ(s.at("proxyd_upstream_failures_total{pool=\"blue\",server=\"" + refused +
                 "\",reason=\"connect_failed\"}"),
            3);
  EXPECT_EQ(s.at("proxyd_local_replies_total{reason=\"upstream_unavailable\"}"), 3);
  EXPECT_EQ(s.at(requests_key("web", "live", "blue", "502")), 3);
}

// Scrapes while clients load the proxy and reloads come one after another: every scrape is whole
// (ends with the last family) and its counters never go down from one scrape to the next.
TEST_F(MetricsTest, ScrapesUnderLoadAndDuringReloadsAreComplete) {
  const std::string yaml = two_routes(blue_, green_, "50");
  ASSERT_NO_FATAL_FAILURE(start(yaml));
  LoadLoop load(port_, true);
  Samples previous;
  for (int reload = 1; reload <= 5; ++reload) {
    const std::size_t mark = proxy_->line_count();
    ASSERT_TRUE(proxy_->signal(SIGHUP));
    for (int i = 0; i < 4; ++i) {
      const std::string text = scrape();
      ASSERT_TRUE(text.ends_with("\n")) << text;
      ASSERT_NE(text.find("\nprocess_start_time_seconds "), std::string::npos) << text;
      const Samples now = parse(text);
      expect_no_counter_went_down(previous, now);
      previous = now;
    }
    ASSERT_TRUE(proxy_->wait_for_line("proxyd: reload ok", 5s, mark));
  }
  EXPECT_EQ(parse(scrape()).at("proxyd_config_reloads_total{result=\"ok\"}"), 5);
  load.stop();
  EXPECT_EQ(load.failures(), std::vector<std::string>{});
  EXPECT_GT(load.requests(), 0);
}

// Each connection accepted goes to the worker serving the fewest (the kernel's SO_REUSEPORT hash
// would put each on either at random): opened one at a time, each answered before the next, the
// two workers' counts never differ by more than one, also after the connections closed and
// new ones came.
TEST_F(MetricsTest, EachNewConnectionGoesToTheWorkerServingTheFewest) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "50")));
  const auto on = [](const Samples& s, int worker) {
    const auto it =
        s.find("proxyd_worker_connections_active{worker=\"" + std::to_string(worker) + "\"}");
    return it == s.end() ? -1.0 : it->second;
  };
  const auto total = [&](const Samples& s) { return on(s, 0) + on(s, 1); };
  std::vector<std::unique_ptr<HttpClient>> clients;
  double open_now = 0;
  // Opens one more connection and returns the counts once it was answered.
  const auto open_one = [&](Samples& s) {
    clients.push_back(std::make_unique<HttpClient>(port_));
    ASSERT_EQ(clients.back()->get("/w").status, 200u);
    ++open_now;
    s = parse(scrape());
    ASSERT_EQ(total(s), open_now);
  };
  Samples s;
  for (int i = 0; i < 16; ++i) {
    ASSERT_NO_FATAL_FAILURE(open_one(s));
    EXPECT_LE(std::abs(on(s, 0) - on(s, 1)), 1) << open_now << " open";
  }

  // One of each pair opened one after the other closes: every pair had one on each worker, so
  // the counts may now differ by anything from 0 to 8.
  for (std::size_t i = 0; i < clients.size(); i += 2) clients[i]->close();
  open_now -= 8;
  s = scrape_until([&](const Samples& now) { return total(now) == open_now; });
  ASSERT_EQ(total(s), 8);
  // Each new one goes to the worker with fewer until they are level, then they alternate.
  for (int i = 0; i < 8; ++i) {
    const Samples before = s;
    const int fewer = on(before, 0) < on(before, 1) ? 0 : 1;
    ASSERT_NO_FATAL_FAILURE(open_one(s));
    if (on(before, 0) != on(before, 1)) {
      EXPECT_EQ(on(s, fewer), on(before, fewer) + 1) << "new connection " << i;
    } else {
      EXPECT_EQ(std::abs(on(s, 0) - on(s, 1)), 1) << "new connection " << i;
    }
  }
  EXPECT_EQ(on(s, 0), 8);
  EXPECT_EQ(on(s, 1), 8);
}

TEST_F(MetricsTest, ReadyTurns503WhileDrainingAndHealthzStays200) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "0")));
  EXPECT_EQ(fetch(admin_, "/ready").status, 200u);
  EXPECT_EQ(fetch(admin_, "/healthz").body, "ok\n");
  EXPECT_EQ(fetch(admin_, "/nope").status, 404u);
  // A request in flight keeps proxyd draining while /ready is asked.
  HttpClient slow(port_);
  ASSERT_TRUE(slow.send_raw("GET /delay?ms=1500 HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(blue_.wait_for_requests(1, 5s));
  const std::size_t mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGTERM));
  ASSERT_TRUE(proxy_->wait_for_line("proxyd: draining", 5s, mark));
  const Response ready = fetch(admin_, "/ready");
  EXPECT_EQ(ready.status, 503u);
  EXPECT_EQ(ready.body, "draining\n");
  EXPECT_EQ(fetch(admin_, "/healthz").status, 200u);
  EXPECT_EQ(slow.read_response().status, 200u) << "the request in flight still finishes";
}

// Scrapers that connect and send nothing hold admin connections, not a worker: scrapes and
// proxied requests go on.
TEST_F(MetricsTest, SilentScrapersStallNothing) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "0")));
  std::vector<std::unique_ptr<HttpClient>> silent = silent_scrapers(8);
  ASSERT_EQ(silent.size(), 8u);
  EXPECT_EQ(fetch(admin_, "/healthz", {}, 2s).status, 200u);
  EXPECT_EQ(fetch(port_, "/", {}, 2s).status, 200u);
  EXPECT_NE(scrape().find("proxyd_requests_total"), std::string::npos);
}

// Past the 64 admin connections served at once, the next one waits in the listen backlog and is
// served when one ends; it used to be accepted and closed at once, so a burst of silent
// connections made health probes and scrapes fail.
TEST_F(MetricsTest, AnAdminConnectionPastTheCapWaitsItsTurn) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "0")));
  std::vector<std::unique_ptr<HttpClient>> silent = silent_scrapers(64);
  ASSERT_EQ(silent.size(), 64u);
  HttpClient probe(admin_);
  ASSERT_TRUE(probe.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  silent.front().reset();  // one ends: the probe's turn
  const Response r = probe.read_response();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "ok\n");
}

// Out of descriptors (RLIMIT_NOFILE lowered to what proxyd has open, the rest taken by idle
// clients), a connection to the admin listener waits in the backlog while the listener pauses
// between accepts; it used to retry at once, a busy loop at 100% of a CPU on the admin thread.
// The window is a measurement of the thread's CPU time, not a wait for an event.
TEST_F(MetricsTest, OutOfDescriptorsTheAdminListenerWaitsWithoutSpinning) {
  if (kSanitized) GTEST_SKIP() << kSanitizedSkip;
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "0")));
  OutOfDescriptors out(proxy_->pid(), port_);
  ASSERT_TRUE(out.ok());
  HttpClient probe(admin_);
  ASSERT_TRUE(probe.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  const long ticks = thread_cpu_ticks_in_half_a_second(proxy_->pid(), "proxyd-admin");
  EXPECT_GE(ticks, 0);
  EXPECT_LE(ticks, 5);

  ASSERT_TRUE(out.end());
  const Response r = probe.read_response();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "ok\n");
}

TEST_F(MetricsTest, AdminPathsAreNotReachableThroughAProxyListener) {
  ASSERT_NO_FATAL_FAILURE(start(two_routes(blue_, green_, "0")));
  for (const char* path : {"/metrics", "/ready", "/healthz"}) {
    const Response r = fetch(port_, path);
    EXPECT_EQ(r.header("x-upstream"), "blue") << path << ": answered by the upstream";
    EXPECT_EQ(r.body.find("proxyd_"), std::string::npos) << path;
  }
}

}  // namespace
}  // namespace proxyd::test
