// The real proxyctl binary against a real ControlServer (on a socket in a temp dir) in front of a
// FakeAdminApi: every command's output and exit code, refusals, usage errors caught before
// connecting, batches, --if-generation, wait-healthy, and every way proxyd can be unreachable.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <fstream>
#include <sstream>
#include <thread>

#include "control/commands.hpp"
#include "tests/integration/control/control_harness.hpp"

namespace proxyd::control::test {
namespace {

namespace json = boost::json;

// A ControlServer on TEMP/control.sock over a FakeAdminApi showing sample_status(); each test
// runs the proxyctl binary against it. The server stops before the api and the directory go.
class ProxyctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_.set_status(sample_status());
    ControlServer::Options options;
    options.path = socket_;
    server_ = std::make_unique<ControlServer>(api_, options);
    std::string error;
    ASSERT_TRUE(server_->start(error)) << error;
  }

  RunResult run(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"-s", socket_});
    return run_proxyctl(args, input);
  }

  TempDir dir_;
  const std::string socket_ = dir_.file("control.sock");
  FakeAdminApi api_;
  std::unique_ptr<ControlServer> server_;
};

const std::string kLegend =
    "* changed at runtime (proxyctl or the state file); unmarked values come from the config "
    "file\n";

// The exact text is pinned by tests/unit/control/commands_test.cpp (CommandRender); here the
// binary prints it from proxyd's reply.
TEST_F(ProxyctlTest, StatusPrintsTables) {
  const RunResult r = run({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, render_status(sample_status()));
  EXPECT_NE(r.out.find(kLegend), std::string::npos) << r.out;
}

TEST_F(ProxyctlTest, StatusOfOneRoute) {
  const RunResult r = run({"status", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "generation 7 (config /etc/proxyd/proxyd.yaml)\n"
            "\n"
            "ROUTE  LIVE  PASSIVE  WEIGHT  STICKY\n"
            "web    blue  blue     0%      -\n"
            "\n"
            "POOL  SERVER          STATE    HEALTH     LAST CHECK  SINCE\n"
            "blue  127.0.0.1:9001  enabled  unchecked  -           -\n"
            "blue  127.0.0.1:9002  enabled  unchecked  -           -\n"
            "\n"
            "POOL  CHECKED  IN FLIGHT  TUNNELS\n"
            "blue  no       0          0\n");
}

TEST_F(ProxyctlTest, StatusJson) {
  for (const auto& args : {std::vector<std::string>{"status", "--json"},
                           std::vector<std::string>{"--json", "status"}}) {
    const RunResult r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    const json::value reply = json::parse(r.out);
    EXPECT_EQ(reply.at("v"), 1);
    EXPECT_EQ(reply.at("ok"), true);
    EXPECT_EQ(reply.at("generation"), 7);
    EXPECT_EQ(reply.at("result").at("routes").at(0).at("weight_ppm"), 5000);
    EXPECT_EQ(reply.at("result").at("routes").at(0).at("weight_source"), "runtime");
    EXPECT_EQ(reply.at("result").at("pools").at(0).at("servers").at(0).at("health"), "unchecked");
  }
}

TEST_F(ProxyctlTest, StatusOfAnUnknownRouteIsRefused) {
  const RunResult r = run({"status", "shop"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "proxyctl: refused: unknown route \"shop\" (routes: api, web)\n");
  const RunResult j = run({"--json", "status", "shop"});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_EQ(json::parse(j.out).at("error").at("kind"), "refused");
}

TEST_F(ProxyctlTest, SetWeight) {
  const RunResult r = run({"set-weight", "api", "5%"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("changed; generation is now 8\n")) << r.out;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].command, "set-weight api 5%");
  EXPECT_EQ(applied[0].if_generation, std::nullopt);
  EXPECT_EQ(applied[0].caller.uid, static_cast<std::int64_t>(::geteuid()));
  EXPECT_GT(applied[0].caller.pid, 0);
  EXPECT_NE(applied[0].caller.pid, ::getpid());  // the proxyctl process
  ASSERT_EQ(applied[0].operations.size(), 1u);
  EXPECT_EQ(applied[0].operations[0].kind, Operation::Kind::set_weight);
  EXPECT_EQ(applied[0].operations[0].route, "api");
  EXPECT_EQ(applied[0].operations[0].weight_ppm, 50'000u);
}

TEST_F(ProxyctlTest, SetWeightRefusedSaysWhyAndExits1) {
  api_.refuse_next_apply("cannot save the state file /var/lib/proxyd/state.json: disk full");
  const RunResult r = run({"set-weight", "api", "20"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "proxyctl: refused: cannot save the state file /var/lib/proxyd/state.json: disk "
            "full\n");
}

TEST_F(ProxyctlTest, BadPercentIsAUsageErrorBeforeConnecting) {
  // The socket path does not exist: a usage error must win over "cannot reach" (exit 3).
  for (const std::string bad : {"abc", "101", "0.00001", "-1", "5%%"}) {
    const RunResult r =
        run_proxyctl({"-s", dir_.file("nothing-here.sock"), "set-weight", "api", bad});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "proxyctl: set-weight: invalid PERCENT \"" + bad +
                         "\": expected a number from 0 to 100 with at most 4 decimals, e.g. "
                         "0.5, 0.5% or 100\nusage: proxyctl set-weight ROUTE PERCENT [--force]\n");
  }
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ProxyctlTest, SetLiveAndSetPassive) {
  RunResult r = run({"set-live", "api", "green"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run({"set-passive", "api", "blue"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0].operations[0].kind, Operation::Kind::set_live);
  EXPECT_EQ(applied[0].operations[0].pool, "green");
  EXPECT_EQ(applied[1].operations[0].kind, Operation::Kind::set_passive);
  EXPECT_EQ(applied[1].operations[0].pool, "blue");
  EXPECT_EQ(applied[1].command, "set-passive api blue");
}

TEST_F(ProxyctlTest, FlipSeveralRoutesIsOneApply) {
  const RunResult r = run({"flip", "api", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 1u);
  ASSERT_EQ(applied[0].operations.size(), 2u);
  EXPECT_EQ(applied[0].operations[0].kind, Operation::Kind::flip);
  EXPECT_EQ(applied[0].operations[0].route, "api");
  EXPECT_EQ(applied[0].operations[1].route, "web");
}

TEST_F(ProxyctlTest, FlipAllIsOneOperation) {
  const RunResult r = run({"flip", "--all"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 1u);
  ASSERT_EQ(applied[0].operations.size(), 1u);
  EXPECT_EQ(applied[0].operations[0].kind, Operation::Kind::flip_all);
  EXPECT_EQ(applied[0].command, "flip --all");
  EXPECT_EQ(applied[0].if_generation, std::nullopt);  // proxyd resolves it under its lock
  // The reply shows every route, as proxyd reports them touched.
  EXPECT_NE(r.out.find("\napi "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nweb "), std::string::npos) << r.out;
}

TEST_F(ProxyctlTest, ServerDrainEnableDisable) {
  for (const auto& [verb, admin] : {std::pair{"drain", ServerAdmin::draining},
                                    std::pair{"enable", ServerAdmin::enabled},
                                    std::pair{"disable", ServerAdmin::disabled}}) {
    const RunResult r = run({"server", verb, "blue", "127.0.0.1:9002"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    // The reply shows the pool the server is in.
    EXPECT_NE(r.out.find("blue  127.0.0.1:9002"), std::string::npos) << r.out;
    const ChangeRequest last = api_.applied().back();
    ASSERT_EQ(last.operations.size(), 1u);
    EXPECT_EQ(last.operations[0].kind, Operation::Kind::server_admin);
    EXPECT_EQ(last.operations[0].pool, "blue");
    EXPECT_EQ(last.operations[0].server, "127.0.0.1:9002");
    EXPECT_EQ(last.operations[0].admin, admin);
  }
}

TEST_F(ProxyctlTest, ReloadOk) {
  api_.set_reload_result(ChangeResult::accepted(9));
  const RunResult r = run({"reload"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "reloaded the config; generation is now 9\n");
  ASSERT_EQ(api_.reloads().size(), 1u);
}

TEST_F(ProxyctlTest, ReloadListsTheRuntimeValuesThatStillWin) {
  ChangeResult reloaded = ChangeResult::accepted(9);
  reloaded.overrides.routes = {RouteDiff{"web", "weight", "50", "20"}};
  api_.set_reload_result(reloaded);
  const RunResult r = run({"reload"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "reloaded the config; generation is now 9\n"
            "these runtime values still win over the file:\n"
            "\n"
            "ROUTE  KEY     FILE  RUNTIME\n"
            "web    weight  50%   20%\n"
            "\n"
            "Runtime values win over the file until reset: `proxyctl reset ROUTE...` drops a\n"
            "route's, `proxyctl reset --all` every route's and every server's.\n");
}

TEST_F(ProxyctlTest, Diff) {
  RunResult r = run({"diff"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "no runtime value differs from the file\n");
  RuntimeDiff diff;
  diff.servers = {ServerDiff{"blue", "127.0.0.1:9002", ServerAdmin::enabled, ServerAdmin::disabled}};
  api_.set_diff(diff);
  r = run({"diff"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("POOL  SERVER          FILE     RUNTIME\n"
                                "blue  127.0.0.1:9002  enabled  disabled\n"))
      << r.out;
  r = run({"diff", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out),
            json::parse(R"({"v":1,"ok":true,"generation":7,"result":{"routes":[],"servers":[)"
                        R"({"pool":"blue","server":"127.0.0.1:9002","file":"enabled",)"
                        R"("runtime":"disabled"}]}})"));
}

TEST_F(ProxyctlTest, Reset) {
  RunResult r = run({"reset", "api", "--if-generation", "7"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run({"reset", "--all"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0].operations, (std::vector<Operation>{Operation{
                                       Operation::Kind::reset, "api", "", "", 0,
                                       ServerAdmin::enabled}}));
  EXPECT_EQ(applied[0].if_generation, 7u);
  EXPECT_EQ(applied[0].command, "reset api");
  EXPECT_EQ(applied[1].operations[0].kind, Operation::Kind::reset_all);
  EXPECT_EQ(applied[1].command, "reset --all");
}

TEST_F(ProxyctlTest, ReloadFailedShowsFileAndLine) {
  api_.set_reload_result(ChangeResult::refused(
      "/etc/proxyd/proxyd.yaml:12: routes[0].weight: percentage \"120\" is above 100\n"
      "/etc/proxyd/proxyd.yaml:30: pools.green.servers[0]: invalid address",
      7));
  const RunResult r = run({"reload"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "proxyctl: refused: /etc/proxyd/proxyd.yaml:12: routes[0].weight: percentage "
            "\"120\" is above 100\n"
            "/etc/proxyd/proxyd.yaml:30: pools.green.servers[0]: invalid address\n");
}

TEST_F(ProxyctlTest, History) {
  api_.set_history({R"({"time":"2024-05-01T10:00:00Z","by":{"uid":1000,"pid":42},)"
                    R"("command":"flip web","routes":["web"],"servers":[],"before":{},)"
                    R"("after":{},"generation":8,"result":"ok"})"});
  RunResult r = run({"history"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "TIME                  BY               GEN  RESULT  COMMAND\n"
            "2024-05-01T10:00:00Z  uid 1000 pid 42  8    ok      flip web\n");
  r = run({"history", "-n", "3", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("result").at("entries").at(0).at("command"), "flip web");
  EXPECT_EQ(api_.history_limits(), (std::vector<std::size_t>{20, 3}));
}

TEST_F(ProxyctlTest, ApplyFileIsOneRequest) {
  const std::string batch = dir_.file("canary.batch");
  std::ofstream(batch) << "# canary step 2\n"
                          "set-weight api 5\n"
                          "set-weight web 0.5   # web too\n"
                          "\n"
                          "server drain blue 127.0.0.1:9001\n";
  const RunResult r = run({"apply", batch});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 1u);
  ASSERT_EQ(applied[0].operations.size(), 3u);
  EXPECT_EQ(applied[0].operations[0].weight_ppm, 50'000u);
  EXPECT_EQ(applied[0].operations[1].route, "web");
  EXPECT_EQ(applied[0].operations[1].weight_ppm, 5'000u);
  EXPECT_EQ(applied[0].operations[2].admin, ServerAdmin::draining);
  EXPECT_EQ(applied[0].command,
            "apply: set-weight api 5; set-weight web 0.5; server drain blue 127.0.0.1:9001");
}

TEST_F(ProxyctlTest, ApplyStdin) {
  const RunResult r = run({"apply", "-"}, "flip web\nset-weight api 0\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 1u);
  ASSERT_EQ(applied[0].operations.size(), 2u);
  EXPECT_EQ(applied[0].operations[0].kind, Operation::Kind::flip);
  EXPECT_EQ(applied[0].operations[1].kind, Operation::Kind::set_weight);
}

TEST_F(ProxyctlTest, ApplyWithABadLineSendsNothing) {
  const RunResult r = run({"apply", "-"}, "set-weight api 5\nflip web\nset-weight web much\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "proxyctl: apply: stdin line 3: set-weight: invalid PERCENT \"much\": expected a "
            "number from 0 to 100 with at most 4 decimals, e.g. 0.5, 0.5% or 100\n"
            "usage: proxyctl set-weight ROUTE PERCENT [--force]\n");
  const std::string batch = dir_.file("bad.batch");
  std::ofstream(batch) << "set-weight api 5\nreload\n";
  const RunResult file = run({"apply", batch});
  EXPECT_EQ(file.exit_code, 2);
  EXPECT_TRUE(file.err.starts_with("proxyctl: apply: " + batch + " line 2: reload cannot be part "
                                   "of a batch"))
      << file.err;
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ProxyctlTest, ApplyRefusedChangesNothing) {
  api_.refuse_next_apply("pool blue has no server 127.0.0.1:9999", 1);
  const RunResult r =
      run({"apply", "-"}, "set-weight api 5\n\nserver drain blue 127.0.0.1:9999\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "proxyctl: refused: apply: stdin line 3: pool blue has no server 127.0.0.1:9999\n");
  EXPECT_EQ(api_.applied().size(), 1u);  // one request with both: the api refused it whole
}

TEST_F(ProxyctlTest, ABatchOverTheRequestLimitIsRefusedWhole) {
  std::string batch;
  for (int i = 0; i < 3000; ++i) batch += "set-weight api 5\n";
  const RunResult r = run({"apply", "-"}, batch);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "proxyctl: too_large: the request line is longer than 65536 bytes\n");
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ProxyctlTest, ApplyUnreadableFile) {
  const RunResult r = run({"apply", dir_.file("missing.batch")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "proxyctl: apply: cannot read " + dir_.file("missing.batch") +
                       ": No such file or directory\nusage: proxyctl apply FILE|- [--force]\n");
  const RunResult empty = run({"apply", "-"}, "# nothing yet\n");
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_EQ(empty.err, "proxyctl: apply: stdin has no commands\nusage: proxyctl apply FILE|- [--force]\n");
}

TEST_F(ProxyctlTest, IfGenerationIsPassedThrough) {
  RunResult r = run({"set-weight", "api", "5", "--if-generation", "7"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run({"--if-generation=8", "apply", "-"}, "flip web\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run({"flip", "--all", "--if-generation", "9"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto applied = api_.applied();
  ASSERT_EQ(applied.size(), 3u);
  EXPECT_EQ(applied[0].if_generation, 7u);
  EXPECT_EQ(applied[1].if_generation, 8u);
  EXPECT_EQ(applied[2].if_generation, 9u);

  api_.refuse_next_apply("the generation is 10, not 3");
  r = run({"flip", "api", "--if-generation", "3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "proxyctl: refused: the generation is 10, not 3\n");

  r = run({"reload", "--if-generation", "3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "proxyctl: refused: the generation is 10, not 3; nothing was reloaded\n");
  EXPECT_TRUE(api_.reloads().empty());
}

// sample_status() with blue checked: 9001 healthy, 9002 failing its checks (last: 503).
Status blue_checked() {
  Status status = sample_status();
  status.pools[0].checked = true;
  status.pools[0].servers[0].health = Health::healthy;
  status.pools[0].servers[0].last_check = "200";
  status.pools[0].servers[1].health = Health::unhealthy;
  status.pools[0].servers[1].last_check = "503";
  return status;
}

TEST_F(ProxyctlTest, WaitHealthyMet) {
  api_.set_status(blue_checked());
  RunResult r = run({"wait-healthy", "blue", "--min", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "pool blue: 1 of 2 servers healthy (need 1)\n");
  // The default is every server of the pool: green has one.
  r = run({"wait-healthy", "green", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const json::value reply = json::parse(r.out);
  EXPECT_EQ(reply.at("result").at("healthy"), 1);
  EXPECT_EQ(reply.at("result").at("servers"), 1);
  EXPECT_EQ(reply.at("result").at("min"), 1);
  EXPECT_TRUE(reply.at("result").at("not_healthy").as_array().empty());
}

TEST_F(ProxyctlTest, WaitHealthyTimesOutNamingEachServerNotHealthy) {
  api_.set_status(blue_checked());
  const auto start = Clock::now();
  const RunResult r = run({"wait-healthy", "blue", "--timeout", "1"});
  const auto took = Clock::now() - start;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "proxyctl: wait-healthy: timed out after 1s: pool blue has 1 of 2 servers healthy, "
            "need 2\n"
            "  127.0.0.1:9002 unhealthy (last check: 503)\n");
  EXPECT_GE(took, milliseconds(900));
  EXPECT_LT(took, milliseconds(10'000));
  const RunResult j = run({"wait-healthy", "blue", "--timeout", "300ms", "--json"});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_EQ(json::parse(j.out).at("error").at("kind"), "timeout");
}

TEST_F(ProxyctlTest, WaitHealthyOnAPoolWithoutHealthChecksFailsAtOnce) {
  const auto start = Clock::now();
  const RunResult r = run({"wait-healthy", "blue", "--timeout", "60"});
  EXPECT_LT(Clock::now() - start, milliseconds(10'000));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "proxyctl: wait-healthy: nothing checks the health of pool blue (it has no health "
            "block), so no server of it can be proven healthy\n");
  const RunResult j = run({"wait-healthy", "blue", "--json"});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_EQ(json::parse(j.out).at("error").at("kind"), "refused");
}

TEST_F(ProxyctlTest, WaitHealthyForMoreServersThanThePoolHasFailsAtOnce) {
  api_.set_status(blue_checked());
  const auto start = Clock::now();
  const RunResult r = run({"wait-healthy", "blue", "--min", "3", "--timeout", "60"});
  EXPECT_LT(Clock::now() - start, milliseconds(10'000));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "proxyctl: wait-healthy: pool blue has only 2 servers, fewer than --min 3\n");
  const RunResult j = run({"wait-healthy", "blue", "--min", "3", "--json"});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_EQ(json::parse(j.out).at("error").at("kind"), "refused");
}

TEST_F(ProxyctlTest, WaitHealthyUnknownPool) {
  const RunResult r = run({"wait-healthy", "purple"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "proxyctl: wait-healthy: unknown pool \"purple\" (pools: blue, green)\n");
}

TEST_F(ProxyctlTest, UsageErrorsExit2) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases{
      {{"frob"},
       "proxyctl: unknown command \"frob\"\nrun `proxyctl help` for the list of commands\n"},
      {{"set-live", "api"},
       "proxyctl: set-live: missing POOL\nusage: proxyctl set-live ROUTE POOL [--force]\n"},
      {{"flip"},
       "proxyctl: flip: missing ROUTE (or --all)\nusage: proxyctl flip ROUTE... | --all [--force]\n"},
      {{"status", "--if-generation", "4"},
       "proxyctl: status: --if-generation applies only to commands that change something\n"
       "usage: proxyctl status [ROUTE...] [--json]\n"},
      {{"history", "-n", "x"},
       "proxyctl: history: -n needs a whole number from 1 to 10000, got \"x\"\n"
       "usage: proxyctl history [-n N]\n"},
      {{"server", "pause", "blue", "x"},
       "proxyctl: server: expected drain, enable or disable, got \"pause\"\n"
       "usage: proxyctl server drain POOL SERVER\n"
       "       proxyctl server enable POOL SERVER\n"
       "       proxyctl server disable POOL SERVER\n"},
      {{"flip", "api", "--if-generation"},
       "proxyctl: --if-generation: 1 required TEXT missing\n"
       "run `proxyctl help` for the list of commands\n"},
  };
  for (const Case& c : cases) {
    const RunResult r = run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0];
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, c.err);
  }
  const RunResult no_value = run_proxyctl({"status", "-s"});
  EXPECT_EQ(no_value.exit_code, 2);
  const RunResult empty_path = run_proxyctl({"-s", "", "status"});
  EXPECT_EQ(empty_path.exit_code, 2);
  EXPECT_EQ(empty_path.err,
            "proxyctl: -s needs a path\nrun `proxyctl help` for the list of commands\n");
  const RunResult nothing = run_proxyctl({});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_TRUE(nothing.err.starts_with("usage: proxyctl ")) << nothing.err;
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ProxyctlTest, Help) {
  RunResult r = run_proxyctl({"help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, help_text());  // its layout: CommandTables.HelpListsNothingElse
  // It fits an 80-column terminal: a long usage is wrapped before an argument, the rest lined up
  // under the first argument.
  EXPECT_NE(r.out.find("\n  rollout ROUTE [--steps LIST] [--interval D] [--min-requests N]\n"
                       "          [--max-error-ratio R] [--max-latency-ratio R] [--then flip|hold]\n"
                       "          [--detach]\n"
                       "      run the canary plan on ROUTE inside proxyd; abort on the evidence\n"),
            std::string::npos)
      << r.out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 80u) << line;
  EXPECT_EQ(run_proxyctl({"--help"}).out, r.out);
  r = run_proxyctl({"help", "set-weight"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, help_text({find_command("set-weight")}));
  EXPECT_EQ(run_proxyctl({"set-weight", "--help"}).out, r.out);
  EXPECT_EQ(run_proxyctl({"server", "drain", "x", "-h"}).out,
            help_text({find_command("server drain")}));
  r = run_proxyctl({"help", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "proxyctl: help: unknown command \"nope\"\nusage: proxyctl help [COMMAND]\n");
}

// A stand-in for a broken proxyd: accepts one connection, reads the request line, then does what
// the test says. The listening socket exists before the constructor returns. Owner: one test;
// its own thread serves the connection and is joined by the destructor.
class FakeProxyd {
 public:
  enum class Behavior { garbage, close, silent, busy };

  FakeProxyd(const std::string& path, Behavior behavior) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(listener_, 4), 0);
    thread_ = std::thread([this, behavior] {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      char buffer[4096];
      std::string got;
      while (got.find('\n') == std::string::npos) {
        const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        got.append(buffer, static_cast<std::size_t>(n));
      }
      std::string reply;
      if (behavior == Behavior::garbage) reply = "HTTP/1.1 200 OK\r\n\r\n";
      if (behavior == Behavior::busy) {
        reply = R"({"v":1,"ok":false,"error":{"kind":"busy","message":"too many"}})" "\n";
      }
      if (!reply.empty()) {
        [[maybe_unused]] const ssize_t n = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      if (behavior == Behavior::silent) {
        // Hold the connection until proxyctl gives up and closes it.
        while (::recv(fd, buffer, sizeof(buffer), 0) > 0) {
        }
      }
      ::close(fd);
    });
  }
  ~FakeProxyd() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
  }

 private:
  int listener_ = -1;
  std::thread thread_;
};

// proxyctl pointed at TEMP/control.sock, where nothing listens unless a test puts a FakeProxyd
// there. The directory goes when the test ends.
class ProxyctlUnreachable : public ::testing::Test {
 protected:
  // Runs `proxyctl -s path_ ARGS...` against a FakeProxyd at path_ that behaves as told.
  RunResult run_against(FakeProxyd::Behavior behavior, std::vector<std::string> args,
                        const std::map<std::string, std::string>& env = {}) {
    FakeProxyd fake(path_, behavior);
    args.insert(args.begin(), {"-s", path_});
    return run_proxyctl(args, "", env);
  }

  TempDir dir_;
  const std::string path_ = dir_.file("control.sock");
};

TEST_F(ProxyctlUnreachable, NoSocketExits3NamingThePath) {
  RunResult r = run_proxyctl({"-s", path_, "status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: cannot reach proxyd at " + path_ +
                       ": connect: No such file or directory\n");
  // $PROXYD_SOCKET when there is no -s; -s wins over it.
  r = run_proxyctl({"status"}, "", {{"PROXYD_SOCKET", dir_.file("env.sock")}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: cannot reach proxyd at " + dir_.file("env.sock") +
                       ": connect: No such file or directory\n");
  r = run_proxyctl({"-s", path_, "flip", "api"}, "", {{"PROXYD_SOCKET", dir_.file("env.sock")}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(r.err.starts_with("proxyctl: cannot reach proxyd at " + path_ + ":")) << r.err;
  // wait-healthy does not wait for a proxyd that is not there.
  r = run_proxyctl({"-s", path_, "wait-healthy", "blue", "--timeout", "60"});
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(ProxyctlUnreachable, NotASocketExits3) {
  const std::string path = dir_.file("plain-file");
  std::ofstream(path) << "x";
  const RunResult r = run_proxyctl({"-s", path, "status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: cannot reach proxyd at " + path + ": connect: Connection refused\n");
}

TEST_F(ProxyctlUnreachable, BadPROXYCTL_TIMEOUTIsAUsageError) {
  const RunResult r =
      run_proxyctl({"-s", "/nonexistent", "status"}, "", {{"PROXYCTL_TIMEOUT", "soon"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "proxyctl: PROXYCTL_TIMEOUT needs seconds (e.g. 30) or a duration (500ms, 90s, 2m), "
            "got \"soon\"\n");
}

TEST_F(ProxyctlUnreachable, GarbledReplyExits3) {
  const RunResult r = run_against(FakeProxyd::Behavior::garbage, {"status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: cannot reach proxyd at " + path_ +
                       ": garbled reply: not JSON (syntax error)\n");
}

TEST_F(ProxyctlUnreachable, ClosedWithoutReplyExits3) {
  const RunResult r = run_against(FakeProxyd::Behavior::close, {"status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: cannot reach proxyd at " + path_ +
                       ": proxyd closed the connection without a reply\n");
}

TEST_F(ProxyctlUnreachable, NoReplyInTimeExits3) {
  const RunResult r =
      run_against(FakeProxyd::Behavior::silent, {"reload"}, {{"PROXYCTL_TIMEOUT", "300ms"}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: cannot reach proxyd at " + path_ + ": no reply within 300ms\n");
}

TEST_F(ProxyctlUnreachable, BusyExits3) {
  const RunResult r = run_against(FakeProxyd::Behavior::busy, {"flip", "api"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: busy: too many\n");
}

}  // namespace
}  // namespace proxyd::control::test
