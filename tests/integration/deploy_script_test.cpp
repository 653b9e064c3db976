// docs/examples/deploy.sh, the runbook's script, run end to end against the real proxyd and
// proxyctl with in-process upstreams and traffic on both routes: a good new version ends live on
// every route without a failed request; a bad one (500 to every request, health checks passing)
// ends with both rollouts aborted, weights at 0 and the old version live, and the script exits 1.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;


// blue serves both routes; green is the idle color, started with the new version.
constexpr const char* kConfig = R"(workers: 2
listeners:
  - {name: public, address: 127.0.0.1:0}
  - {name: preview, address: 127.0.0.1:0, slot: passive}
admin:
  control_socket: @DIR@/control.sock
  state_file: @DIR@/state.json
  audit_log: @DIR@/audit.log
  access_log: "off"
pools:
  blue: {servers: [@BLUE@], health: {interval: 200ms, timeout: 200ms, rise: 1, fall: 3}, passive: off}
  green: {servers: [@GREEN@], health: {interval: 200ms, timeout: 200ms, rise: 1, fall: 3}, passive: off}
routes:
  - {name: api, match: {path_prefix: /api/}, live: blue, passive: blue}
  - {name: web, match: {path_prefix: /}, live: blue, passive: blue}
timeouts: {drain: 2s}
)";

class DeployScript : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy_ = ProxydProcess::start(
        substitute(kConfig, {{"@BLUE@", blue_.address()}, {"@GREEN@", green_.address()}}));
    ASSERT_TRUE(proxy_);
    // Checked servers start unhealthy: traffic starts once blue (live) is proven up.
    const CommandResult healthy =
        run_program({PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock", "wait-healthy",
                     "blue", "--timeout", "10"});
    ASSERT_EQ(healthy.exit_code, 0) << healthy.output;
  }
  CommandResult deploy() {
    return run_program(
        {"/usr/bin/env", "PROXYD_SOCKET=" + proxy_->dir() + "/control.sock",
         std::string("PROXYCTL=") + PROXYCTL_BINARY,
         "PREVIEW_URL=http://127.0.0.1:" + std::to_string(proxy_->port("preview")) + "/healthz",
         "ROLLOUT_OPTIONS=--steps 20,100 --interval 300ms --min-requests 10",
         "HEALTH_TIMEOUT=10s", "bash", std::string(PROXYD_SOURCE_DIR) + "/docs/examples/deploy.sh",
         "green", green_.address()},
        60s);
  }
  json::object route(const std::string& name) {
    const CommandResult r = run_program(
        {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock", "status", name, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return json::parse(r.output).at("result").at("routes").at(0).as_object();
  }

  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  std::unique_ptr<ProxydProcess> proxy_;
};

TEST_F(DeployScript, AGoodVersionEndsLiveOnEveryRoute) {
  LoadLoop api(proxy_->port("public"), true, "/api/r", LoadLoop::kUntilStopped);
  LoadLoop web(proxy_->port("public"), true, "/w", LoadLoop::kUntilStopped);
  const CommandResult run = deploy();
  api.stop();
  web.stop();
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("pool green: 1 of 1 servers healthy (need 1)\n"
                            "deploy: green is passive on api web\n"
                            "deploy: preview answers\n"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("api completed at step 2 of 2 (100%): flipped, green is live\n"),
            std::string::npos);
  EXPECT_NE(run.output.find("web completed at step 2 of 2 (100%): flipped, green is live\n"),
            std::string::npos);
  EXPECT_TRUE(run.output.ends_with("deploy: green is live on api web\n")) << run.output;
  EXPECT_EQ(api.failures(), std::vector<std::string>{});
  EXPECT_EQ(web.failures(), std::vector<std::string>{});
  for (const char* name : {"api", "web"}) {
    const json::object r = route(name);
    EXPECT_EQ(r.at("live"), "green") << name;
    EXPECT_EQ(r.at("passive"), "blue") << name;
    EXPECT_EQ(r.at("weight_ppm"), 0) << name;
  }
}

TEST_F(DeployScript, ABadVersionIsAbortedAndTheOldOneStaysLive) {
  green_.set_faults(1, 0);  // 500 to every request; /healthz (checks and preview) still passes
  LoadLoop api(proxy_->port("public"), true, "/api/r", LoadLoop::kUntilStopped);
  LoadLoop web(proxy_->port("public"), true, "/w", LoadLoop::kUntilStopped);
  const CommandResult run = deploy();
  api.stop();
  web.stop();
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("api aborted at step 1 of 2 (20%): error ratio: passive"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("web aborted at step 1 of 2 (20%): error ratio: passive"),
            std::string::npos);
  EXPECT_TRUE(run.output.ends_with(
      "deploy: rolled back (api web aborted); the old version serves api web\n"))
      << run.output;
  for (const char* name : {"api", "web"}) {
    const json::object r = route(name);
    EXPECT_EQ(r.at("live"), "blue") << name;
    EXPECT_EQ(r.at("passive"), "green") << name;
    EXPECT_EQ(r.at("weight_ppm"), 0) << name;
  }
  // Live kept serving: the only failures clients saw were the canary's own 500s.
  for (const LoadLoop* loop : {&api, &web}) {
    for (const std::string& failure : loop->failures())
      EXPECT_NE(failure.find("status 500"), std::string::npos) << failure;
  }
}

}  // namespace
}  // namespace proxyd::test
