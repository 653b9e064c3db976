// proxyctl rollout end to end: the real proxyd running the plan, the real proxyctl following it,
// in-process upstreams whose error rate and latency the test sets (blue live, green the canary;
// their health checks keep passing). A good canary completes and flips with no failed client
// request; one answering 500 is aborted at its first step within seconds; one 50 ms slower than
// live is aborted on latency; 1% errors against live's 1% complete; pause, resume and abort; manual
// changes refused and --force aborting; a restart bringing the rollout back paused; two routes
// at once; each rollout drawing its own sticky cohort. Waits are the proxyctl processes themselves
// or bounded polls of `rollout status`.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;


// api and web split blue (live) and green (passive); both pools checked, healthy after one pass.
// The state file lives in STATE_DIR, outside proxyd's temp dir, so a second proxyd finds it.
constexpr const char* kConfig = R"(workers: 2
listeners:
  - {name: public, address: 127.0.0.1:0}
admin:
  control_socket: @DIR@/control.sock
  state_file: @STATE@/state.json
  audit_log: @STATE@/audit.log
  access_log: "off"
  metrics: 127.0.0.1:0
pools:
  blue: {servers: [@BLUE@], health: {interval: 200ms, timeout: 200ms, rise: 1, fall: 3}, passive: off}
  green: {servers: [@GREEN@], health: {interval: 200ms, timeout: 200ms, rise: 1, fall: 3}, passive: off}
routes:
  - {name: api, match: {path_prefix: /api/}, live: blue, passive: green, sticky: {header: X-User}}
  - {name: web, match: {path_prefix: /}, live: blue, passive: green}
timeouts: {drain: 2s}
)";

class Rollout : public ::testing::Test {
 protected:
  void SetUp() override { state_dir_ = make_temp_dir("proxyd-rollout"); }
  void TearDown() override {
    proxy_.reset();
    std::filesystem::remove_all(state_dir_);
  }

  void start() {
    proxy_ = ProxydProcess::start(substitute(kConfig, {{"@BLUE@", blue_.address()},
                                                       {"@GREEN@", green_.address()},
                                                       {"@STATE@", state_dir_}}));
    ASSERT_TRUE(proxy_);
    for (const char* pool : {"blue", "green"}) {
      const CommandResult healthy = ctl({"wait-healthy", pool, "--timeout", "10"});
      ASSERT_EQ(healthy.exit_code, 0) << healthy.output;
    }
  }
  std::uint16_t port() const { return proxy_->port("public"); }

  CommandResult ctl(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock"});
    return run_program(args, timeout);
  }
  json::value rollout_json(const std::string& route) {
    const CommandResult r = ctl({"rollout", "status", route, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const json::value reply = json::parse(r.output);
    const json::array& rollouts = reply.at("result").at("rollouts").as_array();
    return rollouts.empty() ? json::value() : rollouts.front();
  }
  json::object route_status(const std::string& route) {
    const CommandResult r = ctl({"status", route, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return json::parse(r.output).at("result").at("routes").at(0).as_object();
  }
  std::vector<json::object> audit_entries() {
    std::ifstream in(state_dir_ + "/audit.log");
    std::vector<json::object> out;
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(json::parse(line).as_object());
    return out;
  }
  std::string metrics() {
    HttpClient client(proxy_->port("admin.metrics"));
    return client.get("/metrics").body;
  }

  std::string state_dir_;
  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  std::unique_ptr<ProxydProcess> proxy_;
};

TEST_F(Rollout, AGoodCanaryCompletesAndFlipsWithoutAFailedRequest) {
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop load(port(), true, "/api/r", LoadLoop::kUntilStopped);
  const CommandResult run = ctl({"rollout", "api", "--steps", "10,50,100", "--interval", "300ms",
                                 "--min-requests", "20"});
  load.stop();
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output,
            "api: rollout started, passive green against live blue\n"
            "api step 1 of 3 (10%)\n"
            "api step 2 of 3 (50%)\n"
            "api step 3 of 3 (100%)\n"
            "api completed at step 3 of 3 (100%): flipped, green is live\n");
  EXPECT_EQ(load.failures(), std::vector<std::string>{});
  EXPECT_GT(load.requests(), 60);

  const json::object route = route_status("api");
  EXPECT_EQ(route.at("live"), "green");
  EXPECT_EQ(route.at("passive"), "blue");
  EXPECT_EQ(route.at("weight_ppm"), 0);
  const json::value rollout = rollout_json("api");
  EXPECT_EQ(rollout.at("phase"), "completed");
  EXPECT_EQ(rollout.at("step"), 2);
  EXPECT_GE(rollout.at("passive_figures").at("requests").to_number<std::int64_t>(), 20);
  EXPECT_EQ(rollout.at("passive_figures").at("errors"), 0);

  // The audit log: the start by the caller, then each step and the completion by "rollout".
  std::vector<std::string> commands;
  for (const json::object& entry : audit_entries()) {
    if (entry.at("by") == "rollout") commands.emplace_back(entry.at("command").as_string());
  }
  EXPECT_EQ(commands, (std::vector<std::string>{"rollout api: set-weight 50",
                                                "rollout api: set-weight 100",
                                                "rollout api: complete, then flip"}));
  const std::string text = metrics();
  EXPECT_NE(text.find("proxyd_rollout_step{route=\"api\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("proxyd_rollout_state{route=\"api\",state=\"completed\"} 1\n"),
            std::string::npos);
}

TEST_F(Rollout, ACanaryAnswering500IsAbortedAtTheFirstStepWithinSeconds) {
  green_.set_faults(1, 0);  // every request a 500; its health checks pass
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop load(port(), true, "/api/r", LoadLoop::kUntilStopped);
  const auto began = std::chrono::steady_clock::now();
  const CommandResult run = ctl({"rollout", "api"});  // 0.5% first, 5 minutes a step
  const auto took = std::chrono::steady_clock::now() - began;
  load.stop();
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_LT(took, 15s);
  EXPECT_TRUE(std::regex_search(
      run.output,
      std::regex("\napi aborted at step 1 of 5 \\(0\\.5%\\): error ratio: passive ([0-9]+)/\\1 "
                 "\\(100\\.00%\\) against live 0/[0-9]+ \\(0\\.00%\\), worse by more than 1% "
                 "\\(binomial test, p < 0\\.001\\)\n$")))
      << run.output;

  const json::object route = route_status("api");
  EXPECT_EQ(route.at("live"), "blue");
  EXPECT_EQ(route.at("passive"), "green");
  EXPECT_EQ(route.at("weight_ppm"), 0);
  const json::value rollout = rollout_json("api");
  EXPECT_EQ(rollout.at("abort_code"), "error_ratio");
  const json::object last = audit_entries().back();
  EXPECT_EQ(last.at("by"), "rollout");
  EXPECT_EQ(last.at("command"), "rollout api: abort");
  EXPECT_EQ(last.at("after").at("routes").at("api").at("weight"), "0");
  EXPECT_NE(last.at("detail").as_string().find("step 1 of 5 (0.5%): error ratio: passive"),
            json::string::npos);
  const std::string text = metrics();
  EXPECT_NE(text.find("proxyd_rollout_aborts_total{route=\"api\",reason=\"error_ratio\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("proxyd_rollout_state{route=\"api\",state=\"aborted\"} 1\n"),
            std::string::npos);
}

TEST_F(Rollout, ACanaryFiftyMillisecondsSlowerIsAbortedOnLatency) {
  green_.set_faults(0, 50);
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop load(port(), true, "/api/r", LoadLoop::kUntilStopped);
  const CommandResult run = ctl({"rollout", "api", "--steps", "20,100", "--interval", "1m"});
  load.stop();
  EXPECT_EQ(run.exit_code, 1) << run.output;
  // Every passive request takes 50 ms more; on a quiet machine all of them are over the limit,
  // on a loaded one live's own p99 (and so the limit) grows and a few may fall under it.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      run.output, m,
      std::regex("\napi aborted at step 1 of 2 \\(20%\\): latency: passive p99 "
                 "[0-9.]+ ms against live p99 [0-9.]+ ms \\(limit [0-9.]+ ms\\): "
                 "([0-9]+) of ([0-9]+) passive requests slower\n$")))
      << run.output;
  EXPECT_GT(std::stoi(m[1]), 0) << run.output;
  EXPECT_LE(std::stoi(m[1]), std::stoi(m[2])) << run.output;
  EXPECT_EQ(rollout_json("api").at("abort_code"), "latency");
  EXPECT_EQ(route_status("api").at("weight_ppm"), 0);
}

TEST_F(Rollout, OnePercentErrorsAgainstLivesOnePercentAreNotAbortedOnNoise) {
  blue_.set_faults(100, 0);
  green_.set_faults(100, 0);
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop load(port(), true, "/api/r", LoadLoop::kUntilStopped);
  const CommandResult run = ctl({"rollout", "api", "--steps", "5,50,100", "--interval", "500ms",
                                 "--min-requests", "150", "--then", "hold"});
  load.stop();
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("api completed at step 3 of 3 (100%): holding at the last step\n"),
            std::string::npos)
      << run.output;
  const json::object route = route_status("api");
  EXPECT_EQ(route.at("live"), "blue");
  EXPECT_EQ(route.at("weight_ppm"), 1'000'000);
}

TEST_F(Rollout, PauseResumeAndAbort) {
  ASSERT_NO_FATAL_FAILURE(start());
  const CommandResult started =
      ctl({"rollout", "api", "--steps", "10,100", "--interval", "10m", "--detach"});
  ASSERT_EQ(started.exit_code, 0) << started.output;
  EXPECT_TRUE(std::regex_search(
      started.output,
      std::regex("^ROUTE +PHASE +STEP +PASSIVE +LIVE +WAITING FOR +PASSIVE FIGURES +LIVE "
                 "FIGURES\napi +running +step 1 of 2 \\(10%\\) +green +blue +10m and 100 more "
                 "requests +0 req, 0 err +0 req, 0 err\n$")))
      << started.output;
  EXPECT_EQ(route_status("api").at("weight_ppm"), 100'000);

  const CommandResult again = ctl({"rollout", "api", "--detach"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(again.output,
            "proxyctl: refused: route api already has a rollout running at step 1 of 2 (10%); "
            "abort it first\n");

  const CommandResult paused = ctl({"rollout", "pause", "api"});
  EXPECT_EQ(paused.exit_code, 0) << paused.output;
  EXPECT_TRUE(std::regex_search(paused.output,
                                std::regex("\napi: paused by uid [0-9]+ \\(pid [0-9]+\\)\n$")))
      << paused.output;
  EXPECT_EQ(rollout_json("api").at("phase"), "paused");
  const CommandResult pause_twice = ctl({"rollout", "pause", "api"});
  EXPECT_EQ(pause_twice.exit_code, 1);
  EXPECT_EQ(pause_twice.output,
            "proxyctl: refused: route api has no running rollout (its latest is paused)\n");

  EXPECT_EQ(ctl({"rollout", "resume", "api"}).exit_code, 0);
  EXPECT_EQ(rollout_json("api").at("phase"), "running");
  EXPECT_EQ(route_status("api").at("weight_ppm"), 100'000);

  const CommandResult aborted = ctl({"rollout", "abort", "api"});
  EXPECT_EQ(aborted.exit_code, 0) << aborted.output;
  const json::value rollout = rollout_json("api");
  EXPECT_EQ(rollout.at("phase"), "aborted");
  EXPECT_EQ(rollout.at("abort_code"), "operator");
  EXPECT_EQ(route_status("api").at("weight_ppm"), 0);
  EXPECT_EQ(ctl({"rollout", "abort", "api"}).output,
            "proxyctl: refused: route api has no rollout running or paused\n");
  EXPECT_NE(metrics().find("proxyd_rollout_aborts_total{route=\"api\",reason=\"operator\"} 1\n"),
            std::string::npos);
}

TEST_F(Rollout, ManualChangesAreRefusedAndForceAbortsTheRollout) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(ctl({"rollout", "api", "--steps", "10,100", "--interval", "10m", "--detach"})
                .exit_code,
            0);
  for (const std::vector<std::string>& change :
       {std::vector<std::string>{"set-weight", "api", "30"},
        std::vector<std::string>{"set-live", "api", "green"},
        std::vector<std::string>{"set-passive", "api", "blue"},
        std::vector<std::string>{"flip", "api"}, std::vector<std::string>{"flip", "--all"},
        std::vector<std::string>{"reset", "api"}}) {
    const CommandResult refused = ctl(change);
    EXPECT_EQ(refused.exit_code, 1) << change[0];
    EXPECT_EQ(refused.output,
              "proxyctl: refused: route api has a rollout running (step 1 of 2); pause or abort "
              "it with proxyctl rollout, or add --force to abort it and make this change\n")
        << change[0];
  }
  // web has no rollout: its changes go ahead, and so do server states.
  EXPECT_EQ(ctl({"set-weight", "web", "5"}).exit_code, 0);
  EXPECT_EQ(route_status("api").at("weight_ppm"), 100'000);

  const CommandResult forced = ctl({"set-weight", "api", "30", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_EQ(route_status("api").at("weight_ppm"), 300'000);
  const json::value rollout = rollout_json("api");
  EXPECT_EQ(rollout.at("phase"), "aborted");
  EXPECT_EQ(rollout.at("abort_code"), "manual");
  EXPECT_EQ(rollout.at("reason"),
            "aborted by a manual change with --force: set-weight api 30 --force");
}

TEST_F(Rollout, ARestartedProxydBringsTheRolloutBackPaused) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(ctl({"rollout", "api", "--steps", "10,100", "--interval", "10m", "--detach"})
                .exit_code,
            0);
  const std::int64_t id = rollout_json("api").at("started_at_ms").to_number<std::int64_t>();
  ASSERT_TRUE(proxy_->signal(SIGTERM));
  ASSERT_TRUE(proxy_->wait_exit(10s).has_value());
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(proxy_->wait_for_line("rollout paused at step 1 (proxyd restarted)", 5s))
      << proxy_->stderr_text();

  const json::value rollout = rollout_json("api");
  EXPECT_EQ(rollout.at("phase"), "paused");
  EXPECT_EQ(rollout.at("started_at_ms").to_number<std::int64_t>(), id);
  EXPECT_EQ(rollout.at("reason"),
            "proxyd restarted during step 1; proxyctl rollout resume api starts the step again");
  EXPECT_EQ(route_status("api").at("weight_ppm"), 100'000);
  // Still the route's: manual changes are refused until it ends.
  EXPECT_EQ(ctl({"set-weight", "api", "0"}).exit_code, 1);
  EXPECT_EQ(ctl({"rollout", "resume", "api"}).exit_code, 0);
  EXPECT_EQ(rollout_json("api").at("phase"), "running");
}

TEST_F(Rollout, TwoRoutesRollOutSideBySide) {
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop api_load(port(), true, "/api/r", LoadLoop::kUntilStopped);
  LoadLoop web_load(port(), true, "/w", LoadLoop::kUntilStopped);
  CommandResult api, web;
  std::thread api_thread([&] {
    api = ctl({"rollout", "api", "--steps", "20,100", "--interval", "300ms", "--min-requests",
               "10"});
  });
  std::thread web_thread([&] {
    web = ctl({"rollout", "web", "--steps", "30,100", "--interval", "300ms", "--min-requests",
               "10", "--then", "hold"});
  });
  api_thread.join();
  web_thread.join();
  api_load.stop();
  web_load.stop();
  EXPECT_EQ(api.exit_code, 0) << api.output;
  EXPECT_EQ(web.exit_code, 0) << web.output;
  EXPECT_EQ(api_load.failures(), std::vector<std::string>{});
  EXPECT_EQ(web_load.failures(), std::vector<std::string>{});
  EXPECT_EQ(route_status("api").at("live"), "green");
  EXPECT_EQ(route_status("web").at("live"), "blue");
  EXPECT_EQ(route_status("web").at("weight_ppm"), 1'000'000);
}

TEST_F(Rollout, EachRolloutCanariesAnotherStickyCohort) {
  ASSERT_NO_FATAL_FAILURE(start());
  // The users on green at 10% under one rollout.
  const auto cohort = [&] {
    std::set<int> on_green;
    HttpClient client(port());
    for (int user = 0; user < 400; ++user) {
      const Response r = client.get("/api/x", {{"X-User", "user-" + std::to_string(user)}});
      EXPECT_EQ(r.status, 200);
      if (r.header("x-upstream") == "green-1") on_green.insert(user);
    }
    return on_green;
  };
  ASSERT_EQ(ctl({"rollout", "api", "--steps", "10,100", "--interval", "10m", "--detach"})
                .exit_code,
            0);
  const std::set<int> first = cohort();
  EXPECT_EQ(cohort(), first);  // sticky within the rollout
  ASSERT_EQ(ctl({"rollout", "abort", "api"}).exit_code, 0);
  ASSERT_EQ(ctl({"rollout", "api", "--steps", "10,100", "--interval", "10m", "--detach"})
                .exit_code,
            0);
  const std::set<int> second = cohort();
  // About 40 of 400 each time (binomial: 99.9% within 20..64), and mostly other users: two
  // independent 10% draws share about 4.
  for (const std::set<int>* c : {&first, &second}) {
    EXPECT_GE(c->size(), 20u);
    EXPECT_LE(c->size(), 64u);
  }
  std::size_t shared = 0;
  for (const int user : first) shared += second.count(user);
  EXPECT_LT(shared, 16u);
}

}  // namespace
}  // namespace proxyd::test
