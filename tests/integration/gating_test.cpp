// The health gate end to end: the real proxyd (active checks against in-process upstreams) and the
// real proxyctl. wait-healthy passes once every server is proven healthy, times out naming the
// server that is not and its last check, passes a --min that is met, and fails at once on a pool
// nothing checks; set-weight, set-live, set-passive, flip, flip --all and apply are refused while
// they would send more traffic to a pool with no healthy server (exit 1, generation unchanged),
// and go ahead with --force, which the audit log and history record; a route's max_step refuses
// a larger weight increase unless forced. Every wait is on a log line or a bounded poll.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value_to.hpp>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

// blue and green are checked (one passed check makes a server healthy, one failed one unhealthy;
// a server starts unhealthy); plain is not. api sends green its weight, at most 20 points more per
// change; web sends blue everything.
constexpr const char* kConfig = R"(workers: 1
listeners:
  - {name: public, address: 127.0.0.1:0}
admin:
  control_socket: @DIR@/control.sock
  state_file: @DIR@/state.json
  audit_log: @DIR@/audit.log
  access_log: "off"
pools:
  blue: {servers: [@BLUE@, @BLUE2@], health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 1}}
  green: {servers: [@GREEN@], health: {interval: 100ms, timeout: 100ms, rise: 1, fall: 1}}
  plain: {servers: [@PLAIN@]}
routes:
  - {name: api, match: {path_prefix: /api/}, live: blue, passive: green, max_step: 20}
  - {name: web, match: {path_prefix: /}, live: blue, passive: blue, weight: 50}
timeouts: {drain: 2s}
)";

class Gating : public ::testing::Test {
 protected:
  void start() {
    proxy_ = ProxydProcess::start(substitute(kConfig, {{"@BLUE@", blue_.address()},
                                                       {"@BLUE2@", blue2_.address()},
                                                       {"@GREEN@", green_.address()},
                                                       {"@PLAIN@", plain_.address()}}));
    ASSERT_TRUE(proxy_);
  }
  void wait_healthy(const std::string& pool, const FakeUpstream& server) {
    ASSERT_TRUE(proxy_->wait_for_line(
        "proxyd: health: pool " + pool + " server " + server.address() + " is healthy", 10s))
        << proxy_->stderr_text();
  }

  CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock"});
    return run_program(args, 20s);
  }
  std::uint64_t generation() {
    const CommandResult r = ctl({"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return json::parse(r.output).at("generation").to_number<std::uint64_t>();
  }
  json::object last_audit_entry() {
    std::ifstream in(proxy_->dir() + "/audit.log");
    std::string line;
    std::string last;
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    return json::parse(last).as_object();
  }

  FakeUpstream blue_{"blue-1"};
  FakeUpstream blue2_{"blue-2"};
  FakeUpstream green_{"green-1"};
  FakeUpstream plain_{"plain-1"};
  std::unique_ptr<ProxydProcess> proxy_;
};

TEST_F(Gating, WaitHealthyWaitsForEveryServerProvenHealthy) {
  blue2_.set_health_status(503);
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(wait_healthy("blue", blue_));
  ASSERT_TRUE(blue2_.wait_for_health_checks(2, 10s));  // its first result is on record

  const CommandResult timed_out = ctl({"wait-healthy", "blue", "--timeout", "500ms"});
  EXPECT_EQ(timed_out.exit_code, 1);
  EXPECT_EQ(timed_out.output,
            "proxyctl: wait-healthy: timed out after 500ms: pool blue has 1 of 2 servers "
            "healthy, need 2\n  " +
                blue2_.address() + " unhealthy (last check: 503)\n");

  const CommandResult partial = ctl({"wait-healthy", "blue", "--min", "1", "--timeout", "10"});
  EXPECT_EQ(partial.exit_code, 0) << partial.output;
  EXPECT_EQ(partial.output, "pool blue: 1 of 2 servers healthy (need 1)\n");

  // status says the same, in its table and in its JSON.
  const CommandResult status = ctl({"status"});
  EXPECT_TRUE(std::regex_search(
      status.output, std::regex("\nblue +" + blue2_.address() +
                                " +enabled +unhealthy +503 +[0-9]{2}:[0-9]{2}:[0-9]{2}\n")))
      << status.output;
  EXPECT_NE(status.output.find("\nblue   yes      0          0\n"), std::string::npos)
      << status.output;
  const json::value reply = json::parse(ctl({"status", "--json"}).output);
  const json::value& pool = reply.at("result").at("pools").at(0);
  EXPECT_EQ(pool.at("checked"), true);
  EXPECT_EQ(pool.at("servers").at(1).at("health"), "unhealthy");
  EXPECT_EQ(pool.at("servers").at(1).at("last_check"), "503");

  blue2_.set_health_status(200);
  const CommandResult all = ctl({"wait-healthy", "blue", "--timeout", "10"});
  EXPECT_EQ(all.exit_code, 0) << all.output;
  EXPECT_EQ(all.output, "pool blue: 2 of 2 servers healthy (need 2)\n");
}

TEST_F(Gating, WaitHealthyOnAPoolNothingChecksFailsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start());
  const auto started = std::chrono::steady_clock::now();
  const CommandResult r = ctl({"wait-healthy", "plain", "--timeout", "60"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output,
            "proxyctl: wait-healthy: nothing checks the health of pool plain (it has no health "
            "block), so no server of it can be proven healthy\n");
}

// green never passes a check. Each command that would send it more traffic is refused with
// nothing changed; with --force it goes ahead, says what it went past, and the audit log and
// history record it. `reset --all` (traffic back to the healthy blue) undoes each in between.
TEST_F(Gating, ChangesFeedingAPoolWithNoHealthyServerAreRefusedUnlessForced) {
  green_.set_health_status(503);
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(wait_healthy("blue", blue_));
  ASSERT_NO_FATAL_FAILURE(wait_healthy("blue", blue2_));
  const std::string batch = proxy_->dir() + "/canary.batch";
  std::ofstream(batch) << "set-weight api 5\nset-passive web green\n";

  const std::string api = "pool green has no healthy server (route api would send it more traffic)";
  const std::string web = "pool green has no healthy server (route web would send it more traffic)";
  struct Case {
    std::vector<std::string> args;
    std::string reason;
  };
  const std::vector<Case> cases{
      {{"set-weight", "api", "10"}, api},
      {{"set-live", "web", "green"}, web},
      {{"set-passive", "web", "green"}, web},
      {{"flip", "api"}, api},
      {{"flip", "--all"}, api},
      {{"apply", batch},
       "pool green has no healthy server (routes api, web would send it more traffic)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1]);
    const std::uint64_t before = generation();
    const CommandResult refused = ctl(c.args);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_EQ(refused.output, "proxyctl: refused: " + c.reason + "; --force to override\n");
    EXPECT_EQ(generation(), before);
    EXPECT_EQ(last_audit_entry().at("result"), "refused");

    std::vector<std::string> forced_args = c.args;
    forced_args.push_back("--force");
    const CommandResult forced = ctl(forced_args);
    EXPECT_EQ(forced.exit_code, 0) << forced.output;
    EXPECT_TRUE(forced.output.starts_with("changed; generation is now " +
                                          std::to_string(before + 1) + "\nforced past: " +
                                          c.reason + "\n"))
        << forced.output;
    const json::object entry = last_audit_entry();
    EXPECT_EQ(entry.at("result"), "ok");
    EXPECT_EQ(entry.at("forced"), true);
    EXPECT_EQ(json::value_to<std::string>(entry.at("overridden")), c.reason);
    const CommandResult history = ctl({"history", "-n", "1"});
    EXPECT_NE(history.output.find(" ok (forced) "), std::string::npos) << history.output;

    const CommandResult reset = ctl({"reset", "--all"});
    ASSERT_EQ(reset.exit_code, 0) << reset.output;
  }
}

TEST_F(Gating, MaxStepRefusesALargerWeightIncreaseUnlessForced) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(wait_healthy("green", green_));
  const std::uint64_t start_generation = generation();
  const CommandResult big = ctl({"set-weight", "api", "30"});
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_EQ(big.output,
            "proxyctl: refused: route api: raising the weight from 0% to 30% is a step of 30%, "
            "more than its max_step of 20%; --force to override\n");
  EXPECT_EQ(generation(), start_generation);

  EXPECT_EQ(ctl({"set-weight", "api", "20"}).exit_code, 0);
  EXPECT_EQ(ctl({"set-weight", "api", "45"}).exit_code, 1);
  const CommandResult forced = ctl({"set-weight", "api", "45", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_TRUE(forced.output.starts_with(
      "changed; generation is now " + std::to_string(start_generation + 2) +
      "\nforced past: route api: raising the weight from 20% to 45% is a step of 25%, more than "
      "its max_step of 20%\n"))
      << forced.output;
  EXPECT_EQ(last_audit_entry().at("forced"), true);
  const CommandResult down = ctl({"set-weight", "api", "0"});
  EXPECT_EQ(down.exit_code, 0) << down.output << "a decrease is always allowed";
}

}  // namespace
}  // namespace proxyd::test
