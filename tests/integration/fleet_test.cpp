// Fleet mode end to end: a real etcd 3.4 on loopback, three real proxyds (members web-1, web-2,
// web-3) in front of in-process upstreams, the real proxyctl. A fleet flip applied by all three
// (the time from the write to the last member's report is printed); a stale --if-revision refused;
// a stopped member named by exit 4 and catching up when it is back; etcd stopped under load with
// no failed request, every member reporting itself disconnected and catching up when etcd is back;
// local changes refused without --local, and a --local one shown as drift; on a three-member etcd
// cluster, the leader killed under load and a write still reaching every member; a fleet rollout
// completing on every member under load, and one whose canary answers 500 on other members than
// proxyctl's aborted to weight 0 everywhere, with the reason. Every wait is a proxyctl process with
// its own timeout or a bounded poll.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <array>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/etcd_process.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"
#include "tests/support/tls_fixtures.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;


// One member. Its state file lives in STATE, outside proxyd's temp dir, so a restarted member
// finds the revision it applied.
constexpr const char* kConfig = R"(workers: 1
listeners:
  - {name: public, address: 127.0.0.1:0}
admin:
  control_socket: @DIR@/control.sock
  state_file: @STATE@/state.json
  audit_log: @STATE@/audit.log
  access_log: "off"
  metrics: 127.0.0.1:0
pools:
  blue: {servers: [@BLUE@]}
  green: {servers: [@GREEN@]}
routes:
  - {name: api, match: {path_prefix: /api/}, live: blue, passive: green}
  - {name: web, match: {path_prefix: /}, live: blue, passive: green}
timeouts: {drain: 1s}
fleet: {etcd: [@ETCD@], prefix: /proxyd/test, host: @HOST@@EXTRA@}
)";

class Fleet : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = EtcdProcess::launch();
    ASSERT_TRUE(etcd_);
    etcd_urls_ = etcd_->url();
    ASSERT_NO_FATAL_FAILURE(start_members());
  }
  void start_members() {
    for (std::size_t i = 0; i < kMembers; ++i) {
      state_dirs_[i] = make_temp_dir("proxyd-fleet");
      ASSERT_NO_FATAL_FAILURE(start(i));
    }
    // Each member registers and reports once connected: all three up before a test begins.
    ASSERT_TRUE(poll([&] {
      const CommandResult r = ctl(0, {"fleet", "status"});
      return r.exit_code == 0 && count(r.output, " up ") == kMembers;
    })) << ctl(0, {"fleet", "status"}).output;
  }
  void TearDown() override {
    for (auto& proxy : proxies_) proxy.reset();
    etcd_.reset();
    cluster_.clear();
    for (const std::string& dir : state_dirs_) std::filesystem::remove_all(dir);
  }

  static std::string host(std::size_t i) { return "web-" + std::to_string(i + 1); }

  void start(std::size_t i) {
    proxies_[i] = ProxydProcess::start(substitute(kConfig, {{"@BLUE@", blue_.address()},
                                                            {"@GREEN@", green_.address()},
                                                            {"@STATE@", state_dirs_[i]},
                                                            {"@ETCD@", etcd_urls_},
                                                            {"@HOST@", host(i)},
                                                            {"@EXTRA@", fleet_extra_}}));
    ASSERT_TRUE(proxies_[i]);
  }

  CommandResult ctl(std::size_t i, std::vector<std::string> args,
                    std::chrono::milliseconds timeout = 40s) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxies_[i]->dir() + "/control.sock"});
    return run_program(args, timeout);
  }

  json::object status(std::size_t i) {
    const CommandResult r = ctl(i, {"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return json::parse(r.output).at("result").as_object();
  }
  json::object route(std::size_t i, std::string_view name) {
    const json::object all = status(i);
    for (const json::value& r : all.at("routes").as_array())
      if (r.at("name").as_string() == name) return r.as_object();
    ADD_FAILURE() << "no route " << name;
    return {};
  }

  // Polls `done` every 50 ms until it holds or `timeout` passes.
  template <class Done>
  static bool poll(Done done, std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return done();
  }

  static std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
    return n;
  }

  // The revision in "written; the desired state is at revision N".
  static std::int64_t written_revision(const std::string& output) {
    std::smatch m;
    if (!std::regex_search(output, m, std::regex("at revision ([0-9]+)\n"))) return -1;
    return std::stoll(m[1]);
  }

  // Starts a fourth proxyd, web-9, with `extra` in its fleet section; waits (bounded) until it
  // says why it is not connected to etcd, checks that it serves all the same, and returns the
  // fleet object of its status.
  json::object stranger(const std::string& extra) {
    const std::string state = make_temp_dir("proxyd-fleet");
    auto proxy = ProxydProcess::start(substitute(kConfig, {{"@BLUE@", blue_.address()},
                                                           {"@GREEN@", green_.address()},
                                                           {"@STATE@", state},
                                                           {"@ETCD@", etcd_urls_},
                                                           {"@HOST@", "web-9"},
                                                           {"@EXTRA@", extra}}));
    json::object fleet;
    EXPECT_TRUE(proxy);
    if (proxy) {
      EXPECT_TRUE(poll([&] {
        const CommandResult r = run_program(
            {PROXYCTL_BINARY, "-s", proxy->dir() + "/control.sock", "status", "--json"}, 10s);
        if (r.exit_code != 0) return false;
        fleet = json::parse(r.output).at("result").at("fleet").as_object();
        return !fleet.at("error").as_string().empty();
      }));
      EXPECT_EQ(fleet.at("connected"), false);
      EXPECT_EQ(HttpClient(proxy->port("public")).get("/api/x").header("x-upstream"), "blue-1");
    }
    proxy.reset();
    std::filesystem::remove_all(state);
    return fleet;
  }

  CommandResult rollout_under_load(const std::vector<std::size_t>& loaded,
                                   const std::vector<std::string>& options,
                                   std::vector<std::unique_ptr<LoadLoop>>& loads);

  static constexpr std::size_t kMembers = 3;
  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  std::unique_ptr<EtcdProcess> etcd_;
  std::vector<std::unique_ptr<EtcdProcess>> cluster_;  // FleetOnACluster
  std::string etcd_urls_;  // the members' fleet.etcd list
  std::string fleet_extra_;  // more keys of the members' fleet section (", user: U, ..."), or ""
  std::array<std::string, kMembers> state_dirs_;
  std::array<std::unique_ptr<ProxydProcess>, kMembers> proxies_;
};

TEST_F(Fleet, AFlipIsAppliedByEveryMemberAsOneAuditedDurableChange) {
  const CommandResult flip = ctl(0, {"fleet", "flip", "api"});
  ASSERT_EQ(flip.exit_code, 0) << flip.output;
  const std::int64_t revision = written_revision(flip.output);
  ASSERT_GT(revision, 0) << flip.output;
  std::smatch took;
  ASSERT_TRUE(std::regex_search(flip.output, took,
                                std::regex("revision " + std::to_string(revision) +
                                           " applied by all 3 members in ([0-9]+) ms\n")))
      << flip.output;
  std::printf("fleet flip: written and applied by all 3 members in %s ms\n", took[1].str().c_str());

  for (std::size_t i = 0; i < kMembers; ++i) {
    const json::object api = route(i, "api");
    EXPECT_EQ(api.at("live"), "green") << host(i);
    EXPECT_EQ(api.at("passive"), "blue") << host(i);
    EXPECT_EQ(route(i, "web").at("live"), "blue") << host(i);  // not named: unchanged
    const json::object fleet = status(i).at("fleet").as_object();
    EXPECT_EQ(fleet.at("host").as_string(), host(i));
    EXPECT_EQ(fleet.at("connected"), true);
    EXPECT_EQ(fleet.at("applied_revision"), revision);
    EXPECT_EQ(fleet.at("drift"), false);
    // Durable: the state file keeps the revision applied.
    std::ifstream state(state_dirs_[i] + "/state.json");
    const json::value saved = json::parse(std::string(std::istreambuf_iterator<char>(state), {}));
    EXPECT_EQ(saved.at("fleet").at("revision"), revision) << host(i);
    // Audited as the fleet's change.
    std::ifstream audit(state_dirs_[i] + "/audit.log");
    std::string line, last;
    while (std::getline(audit, line))
      if (!line.empty()) last = line;
    const json::value entry = json::parse(last);
    EXPECT_EQ(entry.at("by"), "fleet");
    EXPECT_EQ(entry.at("command").as_string(), "fleet revision " + std::to_string(revision) + ": fleet flip api");
    EXPECT_EQ(entry.at("result"), "ok");
  }
  // The traffic follows: api now goes to green on every member.
  for (std::size_t i = 0; i < kMembers; ++i) {
    HttpClient client(proxies_[i]->port("public"));
    EXPECT_EQ(client.get("/api/x").header("x-upstream"), "green-1") << host(i);
  }

  const CommandResult shown = ctl(1, {"fleet", "status"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_NE(shown.output.find("desired state at revision " + std::to_string(revision) + "\n"),
            std::string::npos)
      << shown.output;
  for (std::size_t i = 0; i < kMembers; ++i) {
    EXPECT_TRUE(std::regex_search(shown.output,
                                  std::regex(host(i) + " +up +" + std::to_string(revision) +
                                             " +0 +[0-9]+ +no +blue 1/1 green 1/1\n")))
        << shown.output;
  }
}

TEST_F(Fleet, AStaleIfRevisionIsRefusedAndWritesNothing) {
  const CommandResult first = ctl(0, {"fleet", "set-weight", "api", "5"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::int64_t revision = written_revision(first.output);
  const CommandResult second = ctl(1, {"fleet", "set-weight", "api", "10", "--if-revision",
                                       std::to_string(revision)});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  const CommandResult stale = ctl(2, {"fleet", "set-weight", "api", "50", "--if-revision",
                                      std::to_string(revision)});
  EXPECT_EQ(stale.exit_code, 1) << stale.output;
  EXPECT_EQ(stale.output, "proxyctl: refused: the desired state is at revision " +
                              std::to_string(written_revision(second.output)) + ", not " +
                              std::to_string(revision) + "; nothing was written\n");
  for (std::size_t i = 0; i < kMembers; ++i)
    EXPECT_EQ(route(i, "api").at("weight_ppm"), 100000) << host(i);
  // Unknown names are refused before anything is written.
  const CommandResult unknown = ctl(0, {"fleet", "set-live", "api", "purple"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "proxyctl: refused: no pool named purple\n");
}

TEST_F(Fleet, AStoppedMemberIsNamedAndCatchesUpWhenItIsBack) {
  ASSERT_TRUE(proxies_[2]->signal(SIGTERM));
  ASSERT_TRUE(proxies_[2]->wait_exit(10s));
  const CommandResult write = ctl(0, {"fleet", "set-weight", "api", "5", "--timeout", "8s"});
  EXPECT_EQ(write.exit_code, 4) << write.output;
  const std::int64_t revision = written_revision(write.output);
  // Down once its lease has expired (5 s), or still reporting the older revision until then.
  EXPECT_TRUE(std::regex_search(
      write.output, std::regex("proxyctl: revision " + std::to_string(revision) +
                               " is written but was not applied within 8000 ms by: web-3 "
                               "\\((down|at revision [0-9]+)\\) \\(they apply it when they can\\)\n")))
      << write.output;
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(route(i, "api").at("weight_ppm"), 50000);

  ASSERT_NO_FATAL_FAILURE(start(2));
  EXPECT_TRUE(poll([&] { return route(2, "api").at("weight_ppm") == 50000; }));
  EXPECT_EQ(status(2).at("fleet").at("applied_revision"), revision);
  // Now every member has it: a write waits for all three again.
  const CommandResult next = ctl(0, {"fleet", "set-weight", "api", "6"});
  EXPECT_EQ(next.exit_code, 0) << next.output;
}

TEST_F(Fleet, ForgetDropsAMemberThatIsGoneForGood) {
  ASSERT_TRUE(proxies_[2]->signal(SIGTERM));
  ASSERT_TRUE(proxies_[2]->wait_exit(10s));
  const CommandResult forget = ctl(0, {"fleet", "forget", "web-3"});
  EXPECT_EQ(forget.exit_code, 0) << forget.output;
  EXPECT_EQ(forget.output, "forgot member web-3\n");
  const CommandResult write = ctl(0, {"fleet", "set-weight", "api", "5", "--timeout", "8s"});
  EXPECT_EQ(write.exit_code, 0) << write.output;
  EXPECT_NE(write.output.find(" applied by all 2 members in "), std::string::npos) << write.output;
  const CommandResult unknown = ctl(0, {"fleet", "forget", "web-9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "proxyctl: refused: no member named web-9\n");
}

TEST_F(Fleet, EtcdGoneNeverStopsTrafficAndMembersCatchUpWhenItIsBack) {
  ASSERT_EQ(ctl(0, {"fleet", "set-weight", "api", "50"}).exit_code, 0);
  std::vector<std::unique_ptr<LoadLoop>> loads;
  for (auto& proxy : proxies_)
    loads.push_back(std::make_unique<LoadLoop>(proxy->port("public"), true, "/api/r", LoadLoop::kUntilStopped));
  etcd_->stop();
  for (std::size_t i = 0; i < kMembers; ++i) {
    EXPECT_TRUE(poll([&] { return status(i).at("fleet").at("connected") == false; })) << host(i);
    EXPECT_EQ(HttpClient(proxies_[i]->port("admin.metrics")).get("/ready").status, 200u);
    const std::string metrics = HttpClient(proxies_[i]->port("admin.metrics")).get("/metrics").body;
    EXPECT_NE(metrics.find("\nproxyd_fleet_connected 0\n"), std::string::npos) << metrics;
  }
  const CommandResult shown = ctl(0, {"status"});
  EXPECT_TRUE(std::regex_search(
      shown.output, std::regex("\nfleet member web-1 of /proxyd/test: NOT connected to etcd \\(.+\\); "
                               "serving revision [0-9]+, the last applied\n")))
      << shown.output;
  const CommandResult unreachable = ctl(0, {"fleet", "set-weight", "api", "1"});
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_NE(unreachable.output.find("cannot read the desired state from etcd"), std::string::npos)
      << unreachable.output;

  ASSERT_TRUE(etcd_->start());
  // Members reconnect with backoff (at most 4 s apart); a write then reaches all three.
  for (std::size_t i = 0; i < kMembers; ++i)
    EXPECT_TRUE(poll([&] { return status(i).at("fleet").at("connected") == true; })) << host(i);
  const CommandResult back = ctl(0, {"fleet", "set-weight", "api", "20"});
  EXPECT_EQ(back.exit_code, 0) << back.output;
  for (auto& load : loads) load->stop();
  for (std::size_t i = 0; i < kMembers; ++i) {
    EXPECT_EQ(loads[i]->failures(), std::vector<std::string>{}) << host(i);
    EXPECT_GT(loads[i]->requests(), 0);
    EXPECT_EQ(route(i, "api").at("weight_ppm"), 200000) << host(i);
  }
}

TEST_F(Fleet, LocalChangesNeedLocalAndShowAsDrift) {
  const CommandResult refused = ctl(0, {"set-weight", "api", "1"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.output,
            "proxyctl: refused: this proxyd is fleet member web-1 of /proxyd/test: change the "
            "fleet with proxyctl fleet set-weight api 1, or add --local to change this host alone "
            "(reported as drift)\n");
  // Refused, and on record like every refusal.
  {
    std::ifstream audit(state_dirs_[0] + "/audit.log");
    std::string line, last;
    while (std::getline(audit, line))
      if (!line.empty()) last = line;
    const json::value entry = json::parse(last);
    EXPECT_EQ(entry.at("command").as_string(), "set-weight api 1");
    EXPECT_EQ(entry.at("result"), "refused");
  }
  const CommandResult local = ctl(0, {"--local", "set-weight", "api", "1"});
  ASSERT_EQ(local.exit_code, 0) << local.output;
  EXPECT_EQ(route(0, "api").at("weight_ppm"), 10000);
  EXPECT_EQ(status(0).at("fleet").at("drift"), true);
  EXPECT_TRUE(std::regex_search(
      ctl(0, {"status"}).output,
      std::regex("\nfleet member web-1 of /proxyd/test: connected to etcd 127.0.0.1:[0-9]+, "
                 "revision [0-9]+ applied; drift: changed with --local since\n")))
      << ctl(0, {"status"}).output;
  EXPECT_TRUE(poll([&] {
    return std::regex_search(ctl(1, {"fleet", "status"}).output,
                             std::regex("web-1 +up +[0-9]+ +[0-9]+ +[0-9]+ +yes "));
  }));
  HttpClient admin(proxies_[0]->port("admin.metrics"));
  EXPECT_NE(admin.get("/metrics").body.find("\nproxyd_fleet_drift 1\n"), std::string::npos);
  // A fleet flip from the drifted member starts from the file's slots, not its own.
  ASSERT_EQ(ctl(0, {"--local", "set-live", "api", "green"}).exit_code, 0);
  ASSERT_EQ(ctl(0, {"fleet", "flip", "api"}).exit_code, 0);
  // (From web-1's own slots, green and green, it would have left blue out.)
  for (std::size_t i = 0; i < kMembers; ++i) {
    EXPECT_EQ(route(i, "api").at("live"), "green") << host(i);
    EXPECT_EQ(route(i, "api").at("passive"), "blue") << host(i);
  }
  // The fleet's next revision is in force again everywhere, drift cleared.
  ASSERT_EQ(ctl(1, {"fleet", "set-weight", "api", "2"}).exit_code, 0);
  EXPECT_EQ(route(0, "api").at("weight_ppm"), 20000);
  EXPECT_EQ(status(0).at("fleet").at("drift"), false);
  // --local is for local changes only.
  const CommandResult misuse = ctl(0, {"--local", "fleet", "set-weight", "api", "3"});
  EXPECT_EQ(misuse.exit_code, 2);
}

// A rollout on one member is a --local change like any other: refused without it, drift with
// it, and ended by the fleet's next revision (whose weight wins, not the rollout's next step).
TEST_F(Fleet, ALocalRolloutNeedsLocalAndTheFleetsNextRevisionEndsIt) {
  const std::vector<std::string> start{"rollout", "api", "--steps", "10,50", "--interval", "1h",
                                       "--detach"};
  const CommandResult refused = ctl(0, start);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.output,
            "proxyctl: refused: this proxyd is fleet member web-1 of /proxyd/test: roll out with "
            "proxyctl fleet rollout api, or add --local to roll out on this host alone (reported "
            "as drift)\n");
  EXPECT_EQ(route(0, "api").at("weight_ppm"), 0);
  EXPECT_EQ(status(0).at("fleet").at("drift"), false);

  std::vector<std::string> local{"--local"};
  local.insert(local.end(), start.begin(), start.end());
  const CommandResult started = ctl(0, local);
  ASSERT_EQ(started.exit_code, 0) << started.output;
  EXPECT_EQ(route(0, "api").at("weight_ppm"), 100000);
  EXPECT_EQ(route(1, "api").at("weight_ppm"), 0) << "the other members are not touched";
  EXPECT_EQ(status(0).at("fleet").at("drift"), true);
  // pause, resume and abort act on a rollout already started: --local does not apply to them.
  EXPECT_EQ(ctl(0, {"--local", "rollout", "abort", "api"}).exit_code, 2);

  ASSERT_EQ(ctl(1, {"fleet", "set-weight", "api", "2"}).exit_code, 0);
  EXPECT_EQ(route(0, "api").at("weight_ppm"), 20000);
  EXPECT_EQ(status(0).at("fleet").at("drift"), false);
  const json::object after = status(0);
  const json::array& rollouts = after.at("rollouts").as_array();
  ASSERT_EQ(rollouts.size(), 1u);
  EXPECT_EQ(rollouts[0].at("phase"), "aborted");
  EXPECT_EQ(rollouts[0].at("abort_code"), "fleet");
  EXPECT_TRUE(rollouts[0].at("reason").as_string().starts_with("the fleet applied revision "))
      << rollouts[0];
}

// The last line of `state_dir`'s audit log that contains `what`, or "".
std::string audited(const std::string& state_dir, const std::string& what) {
  std::ifstream audit(state_dir + "/audit.log");
  std::string line, found;
  while (std::getline(audit, line))
    if (line.find(what) != std::string::npos) found = line;
  return found;
}

// Runs `proxyctl fleet rollout api --steps 10,50 OPTIONS...` on web-1 while the members `loaded`
// take /api/ requests (one keep-alive loop each, in `loads`, stopped when it returns).
CommandResult Fleet::rollout_under_load(const std::vector<std::size_t>& loaded,
                                        const std::vector<std::string>& options,
                                        std::vector<std::unique_ptr<LoadLoop>>& loads) {
  for (const std::size_t i : loaded)
    loads.push_back(std::make_unique<LoadLoop>(proxies_[i]->port("public"), true, "/api/r", LoadLoop::kUntilStopped));
  std::vector<std::string> args{"fleet", "rollout", "api", "--steps", "10,50"};
  args.insert(args.end(), options.begin(), options.end());
  const CommandResult rollout = ctl(0, args, 60s);
  for (auto& load : loads) load->stop();
  return rollout;
}

TEST_F(Fleet, AFleetRolloutStepsEveryMemberOnTheirSummedCountsAndFlips) {
  std::vector<std::unique_ptr<LoadLoop>> loads;
  const CommandResult rollout =
      rollout_under_load({0, 1, 2}, {"--interval", "1s", "--min-requests", "20"}, loads);
  ASSERT_EQ(rollout.exit_code, 0) << rollout.output;
  EXPECT_TRUE(std::regex_search(
      rollout.output,
      std::regex("^api: fleet rollout started on 3 members, passive green against live blue\n"
                 "api step 1 of 2 \\(10%\\): revision [0-9]+ applied by all 3 members\n"
                 "api step 2 of 2 \\(50%\\): revision [0-9]+ applied by all 3 members\n"
                 "api completed at step 2 of 2 \\(50%\\): flipped, green is live\n$")))
      << rollout.output;
  for (std::size_t i = 0; i < kMembers; ++i) {
    const json::object api = route(i, "api");
    EXPECT_EQ(api.at("live"), "green") << host(i);
    EXPECT_EQ(api.at("passive"), "blue") << host(i);
    EXPECT_EQ(api.at("weight_ppm"), 0) << host(i);
    EXPECT_EQ(loads[i]->failures(), std::vector<std::string>{}) << host(i);
    // Every step reached every member as a revision of the fleet's, on record.
    EXPECT_NE(audited(state_dirs_[i], ": fleet rollout api: step 2 of 2 (50%)\""), "") << host(i);
    EXPECT_NE(audited(state_dirs_[i], ": fleet rollout api: complete, then flip\""), "") << host(i);
  }
}

TEST_F(Fleet, AFleetRolloutWhoseCanaryFailsOnOtherMembersIsAbortedEverywhere) {
  green_.set_faults(1, 0);  // every passive request answers 500
  // Traffic through web-2 and web-3 only: proxyctl runs on web-1, which sees none itself, so the
  // evidence can only come from the other members' reports.
  std::vector<std::unique_ptr<LoadLoop>> loads;
  const CommandResult rollout = rollout_under_load({1, 2}, {"--interval", "1m"}, loads);
  EXPECT_EQ(rollout.exit_code, 1) << rollout.output;
  EXPECT_TRUE(std::regex_search(
      rollout.output,
      std::regex("\napi aborted at step 1 of 2 \\(10%\\): error ratio: passive ([0-9]+)/\\1 "
                 "\\(100.00%\\) against live [0-9]+/[0-9]+ \\(0.00%\\), worse by more than 1% "
                 "\\(binomial test, p < 0.001\\)\napi: weight 0 \\(revision [0-9]+\\) applied by "
                 "all 3 members\n$")))
      << rollout.output;
  for (std::size_t i = 0; i < kMembers; ++i) {
    const json::object api = route(i, "api");
    EXPECT_EQ(api.at("weight_ppm"), 0) << host(i);
    EXPECT_EQ(api.at("live"), "blue") << host(i);
    EXPECT_NE(audited(state_dirs_[i], ": fleet rollout api: abort\""), "") << host(i);
  }

  // What a fleet rollout refuses before writing anything, and what it does not take.
  const CommandResult unknown = ctl(0, {"fleet", "rollout", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "proxyctl: refused: member web-1 has no route named nope\n");
  // A stale --if-revision: the first step is not written, so nothing at all is.
  std::smatch back;
  ASSERT_TRUE(std::regex_search(rollout.output, back, std::regex("weight 0 \\(revision ([0-9]+)\\)")));
  const CommandResult stale = ctl(0, {"fleet", "rollout", "api", "--if-revision", "1"});
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_EQ(stale.output, "proxyctl: refused: the desired state is at revision " + back[1].str() +
                              ", not 1; nothing was written\n");
  EXPECT_EQ(route(0, "api").at("weight_ppm"), 0);
  const CommandResult detach = ctl(0, {"fleet", "rollout", "api", "--detach"});
  EXPECT_EQ(detach.exit_code, 2);
  EXPECT_NE(detach.output.find("fleet rollout: --detach: a fleet rollout runs in proxyctl itself\n"),
            std::string::npos)
      << detach.output;
  ASSERT_TRUE(proxies_[2]->signal(SIGTERM));
  ASSERT_TRUE(proxies_[2]->wait_exit(10s));
  ASSERT_TRUE(poll([&] { return ctl(0, {"fleet", "status"}).output.find("web-3  down") != std::string::npos; }))
      << ctl(0, {"fleet", "status"}).output;
  const CommandResult down = ctl(0, {"fleet", "rollout", "api"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_EQ(down.output,
            "proxyctl: refused: member web-3 is down: a fleet rollout needs every member's counts "
            "(proxyctl fleet forget web-3 if it is gone for good)\n");
}

// The same three proxyds against an etcd with auth enabled (etcdctl auth enable): members log in
// as user proxyd, whose role may read and write the fleet's prefix only.
class FleetWithAuth : public Fleet {
 protected:
  void SetUp() override {
    etcd_ = EtcdProcess::launch();
    ASSERT_TRUE(etcd_);
    etcd_urls_ = etcd_->url();
    for (const char* step : {"user add root --new-user-password=rootpw",
                             "user add proxyd --new-user-password=s3cret", "role add fleet",
                             "role grant-permission fleet --prefix=true readwrite /proxyd/test/",
                             "user grant-role proxyd fleet", "auth enable"}) {
      int rc = -1;
      const std::string out = etcd_->etcdctl(step, &rc);
      ASSERT_EQ(rc, 0) << step << ": " << out;
    }
    fleet_extra_ = ", user: proxyd, password: s3cret";
    ASSERT_NO_FATAL_FAILURE(start_members());
  }
};

TEST_F(FleetWithAuth, MembersLogInAndAWrongPasswordIsReported) {
  const CommandResult write = ctl(0, {"fleet", "set-weight", "api", "5"});
  ASSERT_EQ(write.exit_code, 0) << write.output;
  EXPECT_NE(write.output.find(" applied by all 3 members in "), std::string::npos) << write.output;
  for (std::size_t i = 0; i < kMembers; ++i) EXPECT_EQ(route(i, "api").at("weight_ppm"), 50000);
  // etcd holds it where only an authenticated user can read it.
  int rc = -1;
  EXPECT_NE(etcd_->etcdctl("get /proxyd/test/desired", &rc).find("user name is empty"),
            std::string::npos);
  EXPECT_NE(rc, 0);
  EXPECT_NE(etcd_->etcdctl("--user=proxyd:s3cret get /proxyd/test/desired --print-value-only", &rc)
                .find("\"weight_ppm\":50000"),
            std::string::npos);
  EXPECT_EQ(rc, 0);

  // A member with the wrong password keeps serving, reports why it is not connected, and stays
  // out of the fleet's reports.
  const json::object fleet = stranger(", user: proxyd, password: nope");
  EXPECT_TRUE(std::regex_search(std::string(fleet.at("error").as_string()),
                                std::regex("^etcd refused user proxyd: etcd 127.0.0.1:[0-9]+ "
                                           "answered HTTP [0-9]+: etcdserver: authentication "
                                           "failed, invalid user ID or password$")))
      << fleet.at("error").as_string();
  EXPECT_EQ(ctl(0, {"fleet", "status"}).output.find("web-9"), std::string::npos);
}

// The same three proxyds against an etcd that serves clients over TLS only and asks each for a
// certificate (--client-cert-auth), on a CA and certificates the test makes.
class FleetOverTls : public Fleet {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>("fleet test CA");
    const CertFiles server = pki_->issue("etcd", "etcd");
    client_ = pki_->issue("proxyd", "proxyd");
    etcd_ = std::make_unique<EtcdProcess>();
    etcd_->set_tls(server.cert, server.key, pki_->ca(), client_.cert, client_.key);
    ASSERT_TRUE(etcd_->start()) << etcd_->error() << etcd_->log();
    etcd_urls_ = etcd_->url();
    fleet_extra_ = ", ca: " + pki_->ca() + ", cert: " + client_.cert + ", key: " + client_.key;
    ASSERT_NO_FATAL_FAILURE(start_members());
  }
  void TearDown() override {
    Fleet::TearDown();
    pki_.reset();
  }
  std::unique_ptr<TestPki> pki_;
  CertFiles client_;
};

TEST_F(FleetOverTls, MembersSpeakTlsAndACertificateTheyCannotTrustIsReported) {
  ASSERT_EQ(etcd_->url().rfind("https://", 0), 0u);
  const CommandResult write = ctl(0, {"fleet", "set-weight", "api", "5"});
  ASSERT_EQ(write.exit_code, 0) << write.output;
  EXPECT_NE(write.output.find(" applied by all 3 members in "), std::string::npos) << write.output;
  for (std::size_t i = 0; i < kMembers; ++i) EXPECT_EQ(route(i, "api").at("weight_ppm"), 50000);
  // Plain HTTP is not served at all: the members spoke TLS.
  EXPECT_NE(fetch(etcd_->port(), "/health", {}, 2s).status, 200u);

  // A member that trusts another CA refuses etcd's certificate, keeps serving, and says why.
  TestPki other("another CA");
  const json::object fleet =
      stranger(", ca: " + other.ca() + ", cert: " + client_.cert + ", key: " + client_.key);
  EXPECT_TRUE(std::regex_search(std::string(fleet.at("error").as_string()),
                                std::regex("^TLS handshake with 127.0.0.1:[0-9]+ failed: "
                                           "certificate verify failed")))
      << fleet.at("error").as_string();
}

// The same three proxyds on a three-member etcd cluster, every endpoint configured.
class FleetOnACluster : public Fleet {
 protected:
  void SetUp() override {
    std::string initial;
    for (const char* name : {"e1", "e2", "e3"}) {
      cluster_.push_back(std::make_unique<EtcdProcess>(name));
      initial += (initial.empty() ? "" : ",") + cluster_.back()->peer_entry();
    }
    for (auto& member : cluster_) {
      member->set_cluster(initial);
      ASSERT_TRUE(member->spawn()) << member->error();
    }
    for (auto& member : cluster_) {
      ASSERT_TRUE(member->wait_healthy(30s)) << member->error() << member->log();
      etcd_urls_ += (etcd_urls_.empty() ? "" : ", ") + member->url();
    }
    ASSERT_NO_FATAL_FAILURE(start_members());
  }
};

TEST_F(FleetOnACluster, KillingTheLeaderLosesNoRequestAndNoWrite) {
  ASSERT_EQ(ctl(0, {"fleet", "set-weight", "api", "5"}).exit_code, 0);
  std::vector<std::unique_ptr<LoadLoop>> loads;
  for (auto& proxy : proxies_)
    loads.push_back(std::make_unique<LoadLoop>(proxy->port("public"), true, "/api/r", LoadLoop::kUntilStopped));
  EtcdProcess* leader = nullptr;
  ASSERT_TRUE(poll([&] {
    for (auto& member : cluster_)
      if (member->is_leader()) leader = member.get();
    return leader != nullptr;
  }));
  leader->stop();
  // The two left elect a new leader within about a second; until then a write is refused
  // (nothing written), so it is retried, bounded.
  CommandResult write;
  EXPECT_TRUE(poll([&] {
    write = ctl(0, {"fleet", "set-weight", "api", "7", "--timeout", "20s"});
    return write.exit_code != 1;
  }, 20s)) << write.output;
  EXPECT_EQ(write.exit_code, 0) << write.output;
  for (auto& load : loads) load->stop();
  for (std::size_t i = 0; i < kMembers; ++i) {
    EXPECT_EQ(loads[i]->failures(), std::vector<std::string>{}) << host(i);
    EXPECT_EQ(route(i, "api").at("weight_ppm"), 70000) << host(i);
    // Landed once: one revision carries the change, however many tries it took.
    std::ifstream audit(state_dirs_[i] + "/audit.log");
    std::string line;
    int applied = 0;
    while (std::getline(audit, line)) {
      if (line.empty()) continue;
      const json::value entry = json::parse(line);
      if (entry.at("command").as_string().find(": fleet set-weight api 7") != json::string::npos &&
          entry.at("result") == "ok")
        ++applied;
    }
    EXPECT_EQ(applied, 1) << host(i);
  }
}

}  // namespace
}  // namespace proxyd::test
