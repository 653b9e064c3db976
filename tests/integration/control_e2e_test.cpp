// Runtime changes end to end: the real proxyd, the real proxyctl, in-process upstreams. A change is
// visible to every request that starts after proxyctl returns; 100 flips under load fail nothing;
// a change survives kill -9; corrupt and truncated state files are kept aside; a save that fails
// refuses the command; reload keeps runtime state and says which values still win, diff and reset;
// --if-generation on every changing command; apply names a refused line; wait-healthy; history as
// proxyd writes it; and the whole deploy cycle of docs/deploy.md.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/control/control_harness.hpp"
#include "tests/support/descriptors.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/load_loop.hpp"
#include "tests/support/proxyd_process.hpp"
#include "tests/support/run_as_nobody.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;

constexpr const char* kConfig = R"(workers: 2
listeners:
  - {name: public, address: 127.0.0.1:0}
  - {name: preview, address: 127.0.0.1:0, slot: passive}
admin:
  control_socket: @DIR@/control.sock
  state_file: @STATE@
  audit_log: @DIR@/audit.log
  access_log: "off"
pools:
  blue: {servers: [@BLUE@, @BLUE2@]@BLUE_EXTRA@}
  green: {servers: [@GREEN@]@GREEN_EXTRA@}
routes:
  - name: api
    match: {path_prefix: /api/}
    live: blue
    passive: blue
    sticky: {cookie: sid}
  - name: web
    match: {path_prefix: /}
    live: blue
    passive: green
    weight: @WEIGHT@
timeouts: {client_header: 2s, client_idle: 10s, upstream_connect: 500ms, upstream_response: 5s, drain: 2s}
)";

// A health block for a pool of kConfig: its servers start unhealthy and take traffic after one
// passed check, which comes within 100 ms.
const std::string kChecked = ", health: {interval: 100ms, timeout: 100ms, rise: 1}";

std::multiset<std::string> all(int n, const std::string& tag) {
  std::multiset<std::string> out;
  for (int i = 0; i < n; ++i) out.insert(tag);
  return out;
}

class ControlE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/proxyd-ctl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    state_dir_ = tmpl;
  }
  void TearDown() override {
    proxy_.reset();
    fs::remove_all(state_dir_);
  }

  std::string config(const std::string& weight = "0") const {
    return substitute(kConfig, {{"@BLUE@", blue_.address()},
                                {"@BLUE2@", blue2_.address()},
                                {"@GREEN@", green_.address()},
                                {"@STATE@", state_path()},
                                {"@WEIGHT@", weight},
                                {"@BLUE_EXTRA@", blue_extra_},
                                {"@GREEN_EXTRA@", green_extra_}});
  }
  std::string state_path() const { return state_dir_ + "/state.json"; }

  void start(const std::string& weight = "0") {
    proxy_ = ProxydProcess::start(config(weight));
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
  }

  CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock"});
    return run_program(args, 20s);
  }

  // Tags of `n` requests, each on a new connection.
  std::multiset<std::string> tags(int n, const std::string& target = "/",
                                  const Headers& headers = {}) {
    std::multiset<std::string> out;
    for (int i = 0; i < n; ++i) {
      Response r = fetch(port_, target, headers);
      out.insert(r.ok() && r.status == 200 ? r.header("x-upstream")
                                           : "error " + std::to_string(r.status) + r.error);
    }
    return out;
  }

  FakeUpstream blue_{"blue-1"};
  FakeUpstream blue2_{"blue-2"};
  FakeUpstream green_{"green-1"};
  // More keys of a pool, such as kChecked; set before start().
  std::string blue_extra_;
  std::string green_extra_;
  std::string state_dir_;
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
};

TEST_F(ControlE2E, FlipIsSeenByEveryRequestThatStartsAfterProxyctlReturns) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient kept(port_);  // a keep-alive connection opened before the flip
  ASSERT_EQ(kept.get("/before").status, 200u);
  EXPECT_EQ(tags(10).count("green-1"), 0u);

  CommandResult flip = ctl({"flip", "web"});
  ASSERT_EQ(flip.exit_code, 0) << flip.output;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(kept.get("/after").header("x-upstream"), "green-1");
  EXPECT_EQ(tags(30), all(30, "green-1"));
}

// Out of descriptors (RLIMIT_NOFILE lowered to what proxyd has open, the rest taken by idle
// clients), a proxyctl connection waits in the backlog while the accept loop pauses, and the
// failed accept is logged once per 10 s; before, after every 100 ms pause. The window counts
// the lines that came in it; it does not wait for an event.
TEST_F(ControlE2E, OutOfDescriptorsAFailedAcceptIsLoggedOncePerTenSeconds) {
  if (kSanitized) GTEST_SKIP() << kSanitizedSkip;
  ASSERT_NO_FATAL_FAILURE(start());
  const std::size_t from = proxy_->line_count();
  OutOfDescriptors out(proxy_->pid(), port_);
  ASSERT_TRUE(out.ok());
  control::test::RawClient client(proxy_->dir() + "/control.sock");
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("{\"v\":1,\"command\":\"status\"}\n"));
  const std::string line = "proxyd: control: accept: Too many open files (the next 10 s of these "
                           "are not logged)";
  ASSERT_TRUE(proxy_->wait_for_line(line, 5s, from)) << proxy_->stderr_text();
  std::this_thread::sleep_for(500ms);  // the window: five pauses of 100 ms
  const std::vector<std::string> lines = proxy_->stderr_lines();
  EXPECT_EQ(std::count_if(lines.begin() + static_cast<std::ptrdiff_t>(from), lines.end(),
                          [](const std::string& l) { return l.find("control: accept:") != l.npos; }),
            1)
      << proxy_->stderr_text();

  ASSERT_TRUE(out.end());
  const std::optional<std::string> reply = client.read_line();
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->starts_with("{\"v\":1,\"ok\":true,")) << *reply;
}

// The loops run until stopped, for at most 90 s: the hundred proxyctl processes take 25 s in the
// sanitizer build on a slow machine, longer than a loop's default 20 s, and a loop that ended
// early left "still flowing" to fail.
TEST_F(ControlE2E, HundredFlipsUnderLoadFailNoRequest) {
  ASSERT_NO_FATAL_FAILURE(start());
  LoadLoop kept(port_, true, "/r", LoadLoop::kUntilStopped, 90s);
  LoadLoop fresh(port_, false, "/r", LoadLoop::kUntilStopped, 90s);
  ASSERT_TRUE(blue_.wait_for_requests(50, 5s));
  for (int i = 0; i < 100; ++i) {
    CommandResult flip = ctl({"flip", "web"});
    ASSERT_EQ(flip.exit_code, 0) << "flip " << i << ": " << flip.output;
  }
  const auto green_before = green_.requests_served();
  ASSERT_TRUE(blue_.wait_for_requests(blue_.requests_served() + 50, 5s));  // still flowing
  kept.stop();
  fresh.stop();
  EXPECT_EQ(kept.failures(), std::vector<std::string>{});
  EXPECT_EQ(fresh.failures(), std::vector<std::string>{});
  EXPECT_GT(green_before, 0u) << "the flips never reached the load";
  // An even number of flips: blue is live again, for every new request.
  EXPECT_EQ(tags(10).count("green-1"), 0u);
  CommandResult status = ctl({"status", "web"});
  EXPECT_NE(status.output.find("generation 101"), std::string::npos) << status.output;
}

TEST_F(ControlE2E, ChangeSurvivesKillNine) {
  ASSERT_NO_FATAL_FAILURE(start());
  CommandResult set = ctl({"set-weight", "web", "100"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  ASSERT_TRUE(proxy_->signal(SIGKILL));
  ASSERT_TRUE(proxy_->wait_exit(5s));

  ASSERT_NO_FATAL_FAILURE(start());  // same config (weight 0), same state file
  EXPECT_EQ(tags(20), all(20, "green-1"));
  CommandResult status = ctl({"status", "web"});
  EXPECT_NE(status.output.find("100%*"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("generation 2"), std::string::npos) << status.output;
}

TEST_F(ControlE2E, CorruptOrTruncatedStateFileIsMovedAsideAndReported) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(ctl({"set-weight", "web", "100"}).exit_code, 0);
  proxy_.reset();
  std::string saved;
  {
    std::ifstream in(state_path());
    std::getline(in, saved);
  }
  for (const std::string& bad : {saved.substr(0, saved.size() / 2), std::string("\x01\x02garbage")}) {
    std::ofstream(state_path()) << bad;
    ASSERT_NO_FATAL_FAILURE(start());
    EXPECT_NE(proxy_->stderr_text().find("is corrupt"), std::string::npos) << proxy_->stderr_text();
    EXPECT_NE(proxy_->stderr_text().find("starting from the config"), std::string::npos);
    EXPECT_EQ(tags(10).count("green-1"), 0u) << "the config's weight 0 applies";
    proxy_.reset();
    int kept = 0;
    for (const auto& e : fs::directory_iterator(state_dir_)) {
      if (e.path().filename().string().rfind("state.json.corrupt-", 0) != 0) continue;
      std::ifstream in(e.path());
      std::string content((std::istreambuf_iterator<char>(in)), {});
      if (content == bad) ++kept;
      fs::remove(e.path());
    }
    EXPECT_EQ(kept, 1) << "the corrupt file is kept, byte for byte";
  }
}

TEST_F(ControlE2E, FailedSaveRefusesTheCommandAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  // The state file's directory becomes a plain file: the next save cannot create its temp file.
  fs::rename(state_dir_, state_dir_ + ".away");
  std::ofstream(state_dir_) << "not a directory";
  CommandResult set = ctl({"set-weight", "web", "100"});
  fs::remove(state_dir_);
  fs::rename(state_dir_ + ".away", state_dir_);
  EXPECT_EQ(set.exit_code, 1) << set.output;
  EXPECT_NE(set.output.find("cannot save the state file"), std::string::npos) << set.output;
  EXPECT_EQ(tags(20).count("green-1"), 0u);
  CommandResult status = ctl({"status", "web"});
  EXPECT_NE(status.output.find("generation 1"), std::string::npos) << status.output;
  CommandResult history = ctl({"history"});
  EXPECT_NE(history.output.find("refused"), std::string::npos) << history.output;
}

TEST_F(ControlE2E, ReloadKeepsRuntimeStateAndRefusesABadFile) {
  ASSERT_NO_FATAL_FAILURE(start("0"));
  ASSERT_EQ(ctl({"set-passive", "api", "green"}).exit_code, 0);
  // The file now says weight 50 for web; api's runtime passive slot must survive the reload.
  proxy_->write_config(config("50"));
  CommandResult reload = ctl({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  CommandResult status = ctl({"status"});
  EXPECT_NE(status.output.find("green*"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("50%"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("generation 3"), std::string::npos) << status.output;

  // A stale --if-generation is refused inside the reload itself (no SIGHUP can slip in between),
  // nothing is read, and the refusal is on record.
  proxy_->write_config(config("100"));
  CommandResult stale = ctl({"--if-generation", "2", "reload"});
  EXPECT_EQ(stale.exit_code, 1) << stale.output;
  EXPECT_NE(stale.output.find("the generation is 3, not 2; nothing was reloaded"),
            std::string::npos) << stale.output;
  EXPECT_NE(ctl({"status", "web"}).output.find("50%"), std::string::npos);
  EXPECT_NE(ctl({"history"}).output.find("refused"), std::string::npos);

  proxy_->write_config(config("50") + "typo_key: 1\n");
  CommandResult bad = ctl({"reload"});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find(proxy_->config_path() + ":"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("typo_key: unknown key"), std::string::npos) << bad.output;
  EXPECT_EQ(fetch(port_, "/").status, 200u);
  EXPECT_NE(ctl({"status"}).output.find("generation 3"), std::string::npos);
}

// The rule users rely on: runtime values win over the file until reset. A reload says which still
// win, diff says it at any time, reset drops them (one audited change) and the file's apply.
TEST_F(ControlE2E, ReloadSaysWhichRuntimeValuesStillWinAndResetDropsThem) {
  ASSERT_NO_FATAL_FAILURE(start("0"));
  ASSERT_EQ(ctl({"set-weight", "web", "20"}).exit_code, 0);
  ASSERT_EQ(ctl({"set-passive", "api", "green"}).exit_code, 0);
  ASSERT_EQ(ctl({"server", "drain", "blue", blue2_.address()}).exit_code, 0);
  ASSERT_EQ(ctl({"set-weight", "api", "0"}).exit_code, 0);  // the file's value: nothing wins
  proxy_->write_config(config("50"));

  const CommandResult reload = ctl({"reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  const std::string header =
      "reloaded the config; generation is now 6\n"
      "these runtime values still win over the file:\n\n";
  ASSERT_TRUE(reload.output.starts_with(header)) << reload.output;
  const std::string tables = reload.output.substr(header.size());
  for (const std::string& row :
       {std::string(R"(ROUTE +KEY +FILE +RUNTIME)"), std::string(R"(api +passive +blue +green)"),
        std::string(R"(web +weight +50% +20%)"), std::string(R"(POOL +SERVER +FILE +RUNTIME)"),
        "blue +" + blue2_.address() + " +enabled +draining"}) {
    EXPECT_TRUE(std::regex_search(tables, std::regex("(^|\n)" + row + "\n"))) << row << "\n"
                                                                               << tables;
  }
  EXPECT_TRUE(tables.ends_with("\nRuntime values win over the file until reset: `proxyctl reset "
                               "ROUTE...` drops a\nroute's, `proxyctl reset --all` every route's "
                               "and every server's.\n"))
      << tables;
  EXPECT_NE(ctl({"status", "web"}).output.find("20%*"), std::string::npos);

  // diff: the same, at any time.
  EXPECT_EQ(ctl({"diff"}).output, tables);
  const CommandResult raw = ctl({"diff", "--json"});
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  const json::value diff = json::parse(raw.output);
  EXPECT_EQ(diff.at("generation"), 6);
  EXPECT_EQ(diff.at("result").at("routes"),
            json::parse(R"([{"route":"api","key":"passive","file":"blue","runtime":"green"},)"
                        R"({"route":"web","key":"weight","file":"50","runtime":"20"}])"));
  EXPECT_EQ(diff.at("result").at("servers"),
            json::parse(R"([{"pool":"blue","server":")" + blue2_.address() +
                        R"(","file":"enabled","runtime":"draining"}])"));

  // reset ROUTE: the file's values apply to that route; an unknown route changes nothing.
  const std::string before = ctl({"status", "--json"}).output;
  const CommandResult unknown = ctl({"reset", "web", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "proxyctl: refused: no route named nope\n");
  EXPECT_EQ(ctl({"status", "--json"}).output, before);
  const CommandResult reset = ctl({"reset", "web"});
  ASSERT_EQ(reset.exit_code, 0) << reset.output;
  EXPECT_TRUE(reset.output.starts_with("changed; generation is now 7\n")) << reset.output;
  EXPECT_TRUE(std::regex_search(reset.output, std::regex("\nweb +blue +green +50% +-\n")))
      << reset.output;
  EXPECT_EQ(ctl({"diff"}).output.find("web"), std::string::npos);

  // reset --all: every route and server; the file rules again, traffic included.
  ASSERT_EQ(ctl({"reset", "--all"}).exit_code, 0);
  EXPECT_EQ(ctl({"diff"}).output, "no runtime value differs from the file\n");
  const CommandResult status = ctl({"status"});
  EXPECT_EQ(status.output.find('*'), std::string::npos) << status.output;
  EXPECT_GT(tags(40).count("green-1"), 0u) << "the file's 50% applies";
  const CommandResult history = ctl({"history", "-n", "2"});
  EXPECT_NE(history.output.find("reset web"), std::string::npos) << history.output;
  EXPECT_NE(history.output.find("reset --all"), std::string::npos) << history.output;
}

// --if-generation on every command that changes something, against the real proxyd: with a stale
// generation it is refused (exit 1) and nothing changes, neither the state nor the generation;
// with the current one it goes through, one generation further.
TEST_F(ControlE2E, EveryChangingCommandHonoursIfGeneration) {
  ASSERT_NO_FATAL_FAILURE(start("0"));
  const std::string batch = proxy_->dir() + "/step.batch";
  std::ofstream(batch) << "set-weight api 5\nset-weight web 5\n";
  // The reload, last, reads this; until then only a stale reload could, and must not.
  proxy_->write_config(config("50"));
  const std::string server = blue2_.address();
  const std::vector<std::vector<std::string>> commands{
      {"set-weight", "web", "20"},
      {"set-live", "api", "green"},
      {"set-passive", "api", "blue"},
      {"flip", "web"},
      {"flip", "--all"},
      {"server", "drain", "blue", server},
      {"server", "disable", "blue", server},
      {"server", "enable", "blue", server},
      {"apply", batch},
      {"reset", "web"},
      {"reset", "--all"},
      {"reload"}};
  std::set<std::string> covered;
  for (const std::vector<std::string>& command : commands) {
    const std::string name = command[0] == "server" ? command[0] + " " + command[1] : command[0];
    covered.insert(name);
    SCOPED_TRACE(name);
    const std::string before = ctl({"status", "--json"}).output;
    const auto generation = json::parse(before).at("generation").to_number<std::uint64_t>();

    std::vector<std::string> stale{"--if-generation", std::to_string(generation - 1)};
    stale.insert(stale.end(), command.begin(), command.end());
    const CommandResult refused = ctl(stale);
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find("proxyctl: refused: the generation is " +
                                  std::to_string(generation) + ", not " +
                                  std::to_string(generation - 1)),
              std::string::npos)
        << refused.output;
    EXPECT_EQ(ctl({"status", "--json"}).output, before) << "a stale " << name << " changed things";

    std::vector<std::string> current{"--if-generation", std::to_string(generation)};
    current.insert(current.end(), command.begin(), command.end());
    const CommandResult done = ctl(current);
    EXPECT_EQ(done.exit_code, 0) << done.output;
    const json::value after = json::parse(ctl({"status", "--json"}).output);
    EXPECT_EQ(after.at("generation").to_number<std::uint64_t>(), generation + 1);
  }
  // Every command of proxyctl's that takes --if-generation is above.
  EXPECT_EQ(covered, (std::set<std::string>{"set-weight", "set-live", "set-passive", "flip",
                                            "server drain", "server disable", "server enable",
                                            "apply", "reset", "reload"}));
  // The reload did read the new file once its generation was right.
  EXPECT_EQ(json::parse(ctl({"status", "--json", "web"}).output)
                .at("result").at("routes").at(0).at("weight_ppm"),
            500000);
}

TEST_F(ControlE2E, DrainedServerGetsNoNewRequests) {
  ASSERT_NO_FATAL_FAILURE(start());
  CommandResult drain = ctl({"server", "drain", "blue", blue2_.address()});
  ASSERT_EQ(drain.exit_code, 0) << drain.output;
  EXPECT_EQ(tags(20, "/api/x"), all(20, "blue-1"));
  ASSERT_EQ(ctl({"server", "enable", "blue", blue2_.address()}).exit_code, 0);
  // Round robin again; each worker keeps its own cursor, so the share is even to within one
  // request per worker.
  const auto back = tags(20, "/api/x").count("blue-2");
  EXPECT_GE(back, 8u);
  EXPECT_LE(back, 12u);
}

// wait-healthy against the real proxyd: it times out while too few servers count (naming the one
// that does not and why), and returns once an operator enables it (whether proxyctl asked before
// the enable or only after: no sleep decides which, and either way it must end with success, not
// wait out its 20 s).
TEST_F(ControlE2E, WaitHealthyWaitsUntilAServerIsEnabled) {
  blue_extra_ = kChecked;
  ASSERT_NO_FATAL_FAILURE(start());
  for (const FakeUpstream* server : {&blue_, &blue2_}) {
    ASSERT_TRUE(proxy_->wait_for_line(
        "proxyd: health: pool blue server " + server->address() + " is healthy", 10s))
        << proxy_->stderr_text();
  }
  ASSERT_EQ(ctl({"server", "disable", "blue", blue2_.address()}).exit_code, 0);
  const CommandResult short_wait = ctl({"wait-healthy", "blue", "--timeout", "300ms"});
  EXPECT_EQ(short_wait.exit_code, 1);
  EXPECT_EQ(short_wait.output,
            "proxyctl: wait-healthy: timed out after 300ms: pool blue has 1 of 2 servers healthy, "
            "need 2\n  " +
                blue2_.address() + " disabled (last check: 200)\n");

  CommandResult waited;
  const auto started = std::chrono::steady_clock::now();
  std::thread waiter([&] { waited = ctl({"wait-healthy", "blue", "--timeout", "20"}); });
  const CommandResult enable = ctl({"server", "enable", "blue", blue2_.address()});
  waiter.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(enable.exit_code, 0) << enable.output;
  EXPECT_EQ(waited.exit_code, 0) << waited.output;
  EXPECT_EQ(waited.output, "pool blue: 2 of 2 servers healthy (need 2)\n");
}

// A pool that has fewer servers than --min can never meet it: proxyctl says so at once.
TEST_F(ControlE2E, WaitHealthyForMoreServersThanThePoolHasFailsAtOnce) {
  green_extra_ = kChecked;
  ASSERT_NO_FATAL_FAILURE(start());
  const auto started = std::chrono::steady_clock::now();
  const CommandResult r = ctl({"wait-healthy", "green", "--min", "2", "--timeout", "60"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, "proxyctl: wait-healthy: pool green has only 1 server, fewer than --min 2\n");
}

// proxyd refuses one line of a batch: the message names the file and the line, and nothing of the
// batch is applied.
TEST_F(ControlE2E, ApplyRefusalNamesTheLine) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string batch = proxy_->dir() + "/canary.batch";
  std::ofstream(batch) << "# canary\nset-weight web 50\nset-live x blue\n";
  const std::string status = ctl({"status", "--json"}).output;
  CommandResult apply = ctl({"apply", batch});
  EXPECT_EQ(apply.exit_code, 1);
  EXPECT_EQ(apply.output, "proxyctl: refused: apply: " + batch + " line 3: no route named x\n");
  std::ofstream(batch) << "flip web\n\nset-passive api purple\n";
  apply = ctl({"apply", batch});
  EXPECT_EQ(apply.exit_code, 1);
  EXPECT_EQ(apply.output, "proxyctl: refused: apply: " + batch + " line 3: no pool named purple\n");
  EXPECT_EQ(ctl({"status", "--json"}).output, status);
}

// What proxyd writes to its audit log, read back through `proxyctl history`: changes through the
// socket (accepted and refused) and a reload by SIGHUP, as a table and as JSON.
TEST_F(ControlE2E, HistoryShowsWhoChangedWhatAndSignals) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(ctl({"set-weight", "web", "50"}).exit_code, 0);
  ASSERT_EQ(ctl({"flip", "nope"}).exit_code, 1);
  ASSERT_EQ(ctl({"server", "drain", "blue", blue2_.address()}).exit_code, 0);
  // The file now binds api's passive slot to green; the reload by SIGHUP changes that.
  proxy_->write_config(substitute(config(), {{"passive: blue", "passive: green"}}));
  const auto mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  ASSERT_TRUE(proxy_->wait_for_line("proxyd: reload ok", 5s, mark));
  ASSERT_EQ(ctl({"flip", "--all"}).exit_code, 0);

  const CommandResult table = ctl({"history"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  std::vector<std::string> lines;
  std::istringstream in(table.output);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::string time = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +)";
  const std::string me = "uid " + std::to_string(::geteuid()) + R"( pid \d+ +)";
  const std::vector<std::string> expected{
      R"(TIME +BY +GEN +RESULT +COMMAND +REASON)",
      time + me + R"(2 +ok +set-weight web 50)",
      time + me + R"(2 +refused +flip nope +no route named nope)",
      time + me + R"(3 +ok +server drain blue 127\.0\.0\.1:\d+)",
      time + R"(signal +4 +ok +SIGHUP)",
      time + me + R"(5 +ok +flip --all)",
  };
  ASSERT_EQ(lines.size(), expected.size()) << table.output;
  for (std::size_t i = 0; i < lines.size(); ++i)
    EXPECT_TRUE(std::regex_match(lines[i], std::regex(expected[i]))) << lines[i];

  const CommandResult raw = ctl({"history", "--json"});
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  const json::array entries = json::parse(raw.output).at("result").at("entries").as_array();
  ASSERT_EQ(entries.size(), 5u);
  const std::string drained = "blue/" + blue2_.address();
  // Everything but the time and the caller's pid, as written.
  const auto without_time_and_pid = [](json::value entry) {
    json::object& object = entry.as_object();
    EXPECT_TRUE(object.at("time").is_string());
    object.erase("time");
    if (object.at("by").is_object()) {
      EXPECT_GT(object.at("by").at("pid").as_int64(), 0);
      object.at("by").as_object().erase("pid");
    }
    return entry;
  };
  const std::string by = R"({"uid":)" + std::to_string(::geteuid()) + "}";
  EXPECT_EQ(without_time_and_pid(entries[0]),
            json::parse(R"({"by":)" + by + R"(,"command":"set-weight web 50","routes":["web"],)"
                        R"("servers":[],"before":{"routes":{"web":{"live":"blue",)"
                        R"("passive":"green","weight":"0"}}},"after":{"routes":{"web":{)"
                        R"("live":"blue","passive":"green","weight":"50"}}},"generation":2,)"
                        R"("result":"ok"})"));
  EXPECT_EQ(without_time_and_pid(entries[1]),
            json::parse(R"({"by":)" + by + R"(,"command":"flip nope","routes":["nope"],)"
                        R"("servers":[],"before":{},"after":{},"generation":2,)"
                        R"("result":"refused","reason":"no route named nope"})"));
  EXPECT_EQ(without_time_and_pid(entries[2]),
            json::parse(R"({"by":)" + by + R"(,"command":"server drain blue )" +
                        blue2_.address() + R"(","routes":[],"servers":[")" + drained +
                        R"("],"before":{"servers":{")" + drained + R"(":"enabled"}},)"
                        R"("after":{"servers":{")" + drained + R"(":"draining"}},)"
                        R"("generation":3,"result":"ok"})"));
  EXPECT_EQ(without_time_and_pid(entries[3]),
            json::parse(R"({"by":"signal","command":"SIGHUP","routes":["api"],"servers":[],)"
                        R"("before":{"routes":{"api":{"live":"blue","passive":"blue",)"
                        R"("weight":"0"}}},"after":{"routes":{"api":{"live":"blue",)"
                        R"("passive":"green","weight":"0"}}},"generation":4,"result":"ok"})"));
  EXPECT_EQ(without_time_and_pid(entries[4]).at("routes"), json::parse(R"(["api","web"])"));
  EXPECT_EQ(entries[4].at("command"), "flip --all");
}

// The cycle of docs/deploy.md: green passive, preview, canary with a sticky user, flip, rollback.
TEST_F(ControlE2E, DeployCycle) {
  green_extra_ = kChecked;
  ASSERT_NO_FATAL_FAILURE(start());
  const std::uint16_t preview = proxy_->port("preview");

  const CommandResult healthy = ctl({"wait-healthy", "green", "--timeout", "10"});
  ASSERT_EQ(healthy.exit_code, 0) << healthy.output;
  EXPECT_EQ(healthy.output, "pool green: 1 of 1 servers healthy (need 1)\n");
  const std::string batch = proxy_->dir() + "/prepare.txt";
  std::ofstream(batch) << "# prepare\nset-passive api green\nset-weight api 0\nset-weight web 0\n";
  CommandResult prepare = ctl({"apply", batch});
  ASSERT_EQ(prepare.exit_code, 0) << prepare.output;
  EXPECT_EQ(fetch(preview, "/api/x").header("x-upstream"), "green-1");  // testers preview it
  EXPECT_EQ(tags(20, "/api/x").count("green-1"), 0u);                    // the public does not

  // Canary: a user who lands on green at some step stays there at every later step.
  const Headers alice{{"Cookie", "sid=alice"}};
  std::string alice_side = "blue";
  for (const char* step : {"0.5", "5", "20", "40", "60", "80", "100"}) {
    CommandResult set = ctl({"set-weight", "api", step});
    ASSERT_EQ(set.exit_code, 0) << set.output;
    const std::string tag = fetch(port_, "/api/x", alice).header("x-upstream");
    const std::string side = tag == "green-1" ? "green" : "blue";
    if (alice_side == "green") {
      EXPECT_EQ(side, "green") << "alice bounced back at " << step;
    }
    alice_side = side;
    for (int i = 0; i < 5; ++i)  // blue has two servers: stickiness is to a color, not a server
      EXPECT_EQ(fetch(port_, "/api/x", alice).header("x-upstream").substr(0, side.size()), side)
          << "sticky at " << step;
  }
  EXPECT_EQ(alice_side, "green");

  CommandResult flip = ctl({"flip", "api", "web"});
  ASSERT_EQ(flip.exit_code, 0) << flip.output;
  EXPECT_EQ(tags(10, "/api/x"), all(10, "green-1"));
  EXPECT_EQ(tags(10, "/"), all(10, "green-1"));

  CommandResult rollback = ctl({"flip", "--all"});
  ASSERT_EQ(rollback.exit_code, 0) << rollback.output;
  EXPECT_EQ(tags(10, "/").count("green-1"), 0u);
  EXPECT_EQ(tags(10, "/api/x").count("green-1"), 0u);

  CommandResult history = ctl({"history", "-n", "20"});
  EXPECT_EQ(history.exit_code, 0);
  for (const char* command : {"set-weight api 0.5", "set-weight api 100", "flip api web", "flip --all"})
    EXPECT_NE(history.output.find(command), std::string::npos) << command << "\n" << history.output;
}

// admin.control_read_uids, from the config file to the socket: that user may look (status,
// history, diff) but not change anything.
TEST_F(ControlE2E, AReadOnlyUserFromTheConfigMayLookButNotChange) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  proxy_ = ProxydProcess::start(substitute(
      config(), {{"  access_log: \"off\"\n",
                  "  access_log: \"off\"\n  control_mode: 0666\n  control_read_uids: [65534]\n"}}));
  ASSERT_TRUE(proxy_);
  fs::permissions(proxy_->dir(), fs::perms::others_exec, fs::perm_options::add);
  const std::string socket = proxy_->dir() + "/control.sock";
  const auto as_nobody = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", socket});
    return run_as_nobody(std::move(args));
  };
  for (const char* command : {"status", "history", "diff"}) {
    const NobodyResult r = as_nobody({command});
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
  }
  const NobodyResult change = as_nobody({"set-weight", "web", "50"});
  EXPECT_EQ(change.exit_code, 1);
  EXPECT_EQ(change.err,
            "proxyctl: forbidden: uid 65534 may only read (status, stats, history, diff, rollout status, fleet status); set-weight "
            "changes something\n");
  const CommandResult status = ctl({"status", "web", "--json"});
  EXPECT_NE(status.output.find("\"weight_ppm\":0"), std::string::npos) << status.output;
}

}  // namespace
}  // namespace proxyd::test
