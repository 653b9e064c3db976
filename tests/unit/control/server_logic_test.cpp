// The control server's request handling without a socket: the command table's checks (unknown
// commands, fields, access), dispatch to AdminApi, what a change's reply shows, refusals,
// exceptions, and the access a peer's credentials grant.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <stdexcept>

#include "control/control_server.hpp"
#include "tests/support/control_fixtures.hpp"

namespace proxyd::control {
namespace {

namespace json = boost::json;

// Records every call; answers from the fields a test sets, showing test::sample_status() unless a
// test changes `state`. Single-threaded: execute() runs on the test's thread here.
class RecordingApi : public AdminApi {
 public:
  Status status() const override {
    ++status_calls;
    if (throw_in_status) throw std::runtime_error("status exploded");
    return state;
  }
  ChangeResult apply(const ChangeRequest& request) override {
    applied.push_back(request);
    if (!apply_results.empty()) {
      ChangeResult result = apply_results.front();
      apply_results.erase(apply_results.begin());
      return result;
    }
    ChangeResult result = ChangeResult::accepted(state.generation + 1);
    result.touched = test::touched_by(request.operations, state);
    return result;
  }
  ChangeResult reload(const Caller& caller, std::optional<std::uint64_t> if_generation) override {
    reloads.push_back(caller);
    reload_generations.push_back(if_generation);
    return reload_result;
  }
  std::vector<std::string> history(std::size_t max_entries) const override {
    history_limits.push_back(max_entries);
    return history_lines;
  }
  RuntimeDiff diff() const override { return runtime_diff; }
  ChangeResult rollout(const RolloutCommand& command) override {
    rollouts.push_back(command);
    ChangeResult result = rollout_result;
    if (result.ok && !result.rollout) {
      RolloutStatus status;
      status.route = command.route;
      status.plan = command.plan;
      result.rollout = status;
    }
    return result;
  }
  Stats stats(std::chrono::seconds window) const override {
    stats_windows.push_back(window.count());
    Stats out = stats_result;
    out.window_seconds = window.count();
    return out;
  }

  Status state = test::sample_status();
  Stats stats_result = test::sample_stats();
  mutable std::vector<std::int64_t> stats_windows;
  mutable int status_calls = 0;
  bool throw_in_status = false;
  std::vector<ChangeRequest> applied;
  std::vector<ChangeResult> apply_results;
  std::vector<Caller> reloads;
  std::vector<std::optional<std::uint64_t>> reload_generations;
  ChangeResult reload_result = ChangeResult::accepted(8);
  std::vector<std::string> history_lines;
  mutable std::vector<std::size_t> history_limits;
  RuntimeDiff runtime_diff;
  std::vector<RolloutCommand> rollouts;
  ChangeResult rollout_result = ChangeResult::accepted(9);
};

// A diff with one route value and one server state.
RuntimeDiff sample_diff() {
  RuntimeDiff diff;
  diff.generation = 7;
  diff.routes = {RouteDiff{"api", "weight", "0", "0.5"}};
  diff.servers = {ServerDiff{"blue", "127.0.0.1:9002", ServerAdmin::enabled, ServerAdmin::draining}};
  return diff;
}

const Caller kCaller = Caller::peer(1000, 1000, 4242);

json::value reply(RecordingApi& api, const std::string& line, Access granted = Access::change) {
  return json::parse(handle_line(api, line, kCaller, granted));
}

TEST(ServerExecute, StatusReturnsEverything) {
  RecordingApi api;
  const json::value out = reply(api, R"({"v":1,"command":"status"})");
  EXPECT_EQ(out.at("ok"), true);
  EXPECT_EQ(out.at("generation"), 7);
  EXPECT_EQ(out.at("result").at("routes").as_array().size(), 2u);
  EXPECT_EQ(out.at("result").at("pools").as_array().size(), 2u);
  EXPECT_EQ(out.at("result").at("config_path"), "/etc/proxyd/proxyd.yaml");
}

TEST(ServerExecute, StatusOfSomeRoutesKeepsTheirPools) {
  RecordingApi api;
  const json::value out = reply(api, R"({"v":1,"command":"status","routes":["web"]})");
  ASSERT_EQ(out.at("result").at("routes").as_array().size(), 1u);
  EXPECT_EQ(out.at("result").at("routes").at(0).at("name"), "web");
  ASSERT_EQ(out.at("result").at("pools").as_array().size(), 1u);
  EXPECT_EQ(out.at("result").at("pools").at(0).at("name"), "blue");
}

TEST(ServerExecute, StatusOfAnUnknownRouteIsRefused) {
  RecordingApi api;
  const json::value out = reply(api, R"({"v":1,"command":"status","routes":["api","nope"]})");
  EXPECT_EQ(out.at("ok"), false);
  EXPECT_EQ(out.at("error").at("kind"), "refused");
  EXPECT_EQ(out.at("error").at("message"), "unknown route \"nope\" (routes: api, web)");
}

TEST(ServerExecute, StatsPassesTheWindowAndKeepsTheRoutesNamed) {
  RecordingApi api;
  const json::value all = reply(api, R"({"v":1,"command":"stats"})", Access::read);
  EXPECT_EQ(all.at("ok"), true);
  EXPECT_EQ(all.at("generation"), 7);
  EXPECT_EQ(all.at("result").at("window_s"), 60);
  EXPECT_EQ(all.at("result").at("routes").as_array().size(), 2u);
  const json::value web =
      reply(api, R"({"v":1,"command":"stats","routes":["web"],"window":300})", Access::read);
  EXPECT_EQ(web.at("result").at("window_s"), 300);
  ASSERT_EQ(web.at("result").at("routes").as_array().size(), 1u);
  EXPECT_EQ(web.at("result").at("routes").at(0).at("name"), "web");
  EXPECT_EQ(api.stats_windows, (std::vector<std::int64_t>{60, 300}));
}

TEST(ServerExecute, StatsOfAnUnknownRouteIsRefused) {
  RecordingApi api;
  const json::value out = reply(api, R"({"v":1,"command":"stats","routes":["api","nope"]})");
  EXPECT_EQ(out.at("ok"), false);
  EXPECT_EQ(out.at("error").at("kind"), "refused");
  EXPECT_EQ(out.at("error").at("message"), "no route named nope");
}

TEST(ServerExecute, ChangePassesOperationsCallerTextAndGeneration) {
  RecordingApi api;
  const json::value out = reply(
      api, R"({"v":1,"command":"set-weight","operations":[{"op":"set_weight","route":"api",)"
           R"("weight_ppm":5000}],"if_generation":7,"text":"set-weight api 0.5"})");
  EXPECT_EQ(out.at("ok"), true);
  EXPECT_EQ(out.at("generation"), 8);
  ASSERT_EQ(api.applied.size(), 1u);
  const ChangeRequest& change = api.applied[0];
  EXPECT_EQ(change.if_generation, 7u);
  EXPECT_EQ(change.command, "set-weight api 0.5");
  EXPECT_EQ(change.caller.uid, 1000);
  EXPECT_EQ(change.caller.pid, 4242);
  ASSERT_EQ(change.operations.size(), 1u);
  EXPECT_EQ(change.operations[0].kind, Operation::Kind::set_weight);
  EXPECT_EQ(change.operations[0].weight_ppm, 5000u);
  // The reply shows the operation and the touched route, not the others.
  EXPECT_EQ(out.at("result").at("operations").at(0).at("op"), "set_weight");
  ASSERT_EQ(out.at("result").at("routes").as_array().size(), 1u);
  EXPECT_EQ(out.at("result").at("routes").at(0).at("name"), "api");
  EXPECT_TRUE(out.at("result").at("pools").as_array().empty());
}

TEST(ServerExecute, ForceIsPassedToTheChange) {
  RecordingApi api;
  reply(api, R"({"v":1,"command":"flip","operations":[{"op":"flip","route":"api"}],"force":true})");
  reply(api, R"({"v":1,"command":"flip","operations":[{"op":"flip","route":"api"}]})");
  ASSERT_EQ(api.applied.size(), 2u);
  EXPECT_TRUE(api.applied[0].force);
  EXPECT_FALSE(api.applied[1].force);
  const json::value out = reply(api, R"({"v":1,"command":"status","force":true})");
  EXPECT_EQ(out.at("error").at("message"),
            "\"force\" is only for set-weight, set-live, set-passive, flip, server drain, server "
            "enable, server disable, apply, reset, fleet set-weight, fleet set-live, fleet set-passive, "
            "fleet flip, fleet apply");
}

TEST(ServerExecute, ServerChangeShowsItsPool) {
  RecordingApi api;
  const json::value out =
      reply(api, R"({"v":1,"command":"server drain","operations":[{"op":"server_admin",)"
                 R"("pool":"blue","server":"127.0.0.1:9001","admin":"draining"}]})");
  EXPECT_EQ(out.at("ok"), true);
  ASSERT_EQ(api.applied.size(), 1u);
  EXPECT_EQ(api.applied[0].operations[0].admin, ServerAdmin::draining);
  EXPECT_EQ(api.applied[0].command, "server drain");  // no text: the command name
  EXPECT_TRUE(out.at("result").at("routes").as_array().empty());
  EXPECT_EQ(out.at("result").at("pools").at(0).at("name"), "blue");
}

TEST(ServerExecute, RefusalCarriesTheReasonAndGeneration) {
  RecordingApi api;
  api.apply_results = {ChangeResult::refused("unknown pool \"purple\"", 7)};
  const json::value out = reply(
      api, R"({"v":1,"command":"set-live","operations":[{"op":"set_live","route":"api",)"
           R"("pool":"purple"}]})");
  EXPECT_EQ(out.at("ok"), false);
  EXPECT_EQ(out.at("generation"), 7);
  EXPECT_EQ(out.at("error").at("kind"), "refused");
  EXPECT_EQ(out.at("error").at("message"), "unknown pool \"purple\"");
}

TEST(ServerExecute, ARefusalNamesTheOperationToBlame) {
  RecordingApi api;
  ChangeResult refused = ChangeResult::refused("no route named x", 7);
  refused.failed_operation = 1;
  api.apply_results = {refused};
  const json::value out = reply(
      api, R"({"v":1,"command":"apply","operations":[{"op":"flip","route":"api"},)"
           R"({"op":"flip","route":"x"}]})");
  EXPECT_EQ(out, json::parse(R"({"v":1,"ok":false,"generation":7,"error":{"kind":"refused",)"
                             R"("message":"no route named x","operation":1}})"));
}

TEST(ServerExecute, FlipAllIsPassedThroughAsOneOperation) {
  RecordingApi api;
  const json::value out = reply(
      api, R"({"v":1,"command":"flip","operations":[{"op":"flip_all"}],"text":"flip --all"})");
  EXPECT_EQ(out.at("ok"), true);
  ASSERT_EQ(api.applied.size(), 1u);
  const ChangeRequest& change = api.applied[0];
  ASSERT_EQ(change.operations.size(), 1u);
  EXPECT_EQ(change.operations[0].kind, Operation::Kind::flip_all);
  // Resolved by proxyd under its change lock: nothing is read first, nothing is pinned.
  EXPECT_EQ(change.if_generation, std::nullopt);
  EXPECT_EQ(api.status_calls, 1);  // only for the reply
  EXPECT_EQ(out.at("result").at("operations"), json::parse(R"([{"op":"flip_all"}])"));
  // The reply shows what proxyd says the change touched: every route.
  EXPECT_EQ(out.at("result").at("routes").as_array().size(), 2u);
}

TEST(ServerExecute, TheReplyShowsWhatProxydSaysWasTouched) {
  RecordingApi api;
  ChangeResult result = ChangeResult::accepted(8);
  result.touched.routes = {"web"};
  result.touched.servers = {ServerRef{"green", "127.0.0.1:9011"}};
  api.apply_results = {result};
  const json::value out =
      reply(api, R"({"v":1,"command":"flip","operations":[{"op":"flip_all"}]})");
  ASSERT_EQ(out.at("result").at("routes").as_array().size(), 1u);
  EXPECT_EQ(out.at("result").at("routes").at(0).at("name"), "web");
  ASSERT_EQ(out.at("result").at("pools").as_array().size(), 1u);
  EXPECT_EQ(out.at("result").at("pools").at(0).at("name"), "green");
}

TEST(ServerExecute, FlipAllKeepsTheCallersOwnGeneration) {
  RecordingApi api;
  api.apply_results = {ChangeResult::refused("the generation is 7, not 5", 7)};
  const json::value out = reply(
      api, R"({"v":1,"command":"flip","operations":[{"op":"flip_all"}],"if_generation":5})");
  EXPECT_EQ(out.at("error").at("message"), "the generation is 7, not 5");
  EXPECT_EQ(out.at("generation"), 7);
  ASSERT_EQ(api.applied.size(), 1u);
  EXPECT_EQ(api.applied[0].if_generation, 5u);
}

TEST(ServerExecute, ReloadOkAndFailed) {
  RecordingApi api;
  const json::value ok = reply(api, R"({"v":1,"command":"reload"})");
  EXPECT_EQ(ok.at("ok"), true);
  EXPECT_EQ(ok.at("generation"), 8);
  EXPECT_EQ(ok.at("result"), json::parse(R"({"routes":[],"servers":[]})"));
  ASSERT_EQ(api.reloads.size(), 1u);
  EXPECT_EQ(api.reloads[0].pid, 4242);

  api.reload_result = ChangeResult::refused("/etc/proxyd.yaml:12: routes[0].weight: invalid", 7);
  const json::value failed = reply(api, R"({"v":1,"command":"reload"})");
  EXPECT_EQ(failed.at("error").at("kind"), "refused");
  EXPECT_EQ(failed.at("error").at("message"), "/etc/proxyd.yaml:12: routes[0].weight: invalid");
}

TEST(ServerExecute, ReloadReportsTheRuntimeValuesThatStillWin) {
  RecordingApi api;
  api.reload_result.overrides = sample_diff();
  const json::value out = reply(api, R"({"v":1,"command":"reload"})");
  EXPECT_EQ(out, json::parse(R"({"v":1,"ok":true,"generation":8,"result":{"routes":[{"route":"api",)"
                             R"("key":"weight","file":"0","runtime":"0.5"}],"servers":[{"pool":)"
                             R"("blue","server":"127.0.0.1:9002","file":"enabled",)"
                             R"("runtime":"draining"}]}})"));
}

TEST(ServerExecute, DiffIsReadAccess) {
  RecordingApi api;
  api.runtime_diff = sample_diff();
  const json::value out = reply(api, R"({"v":1,"command":"diff"})", Access::read);
  EXPECT_EQ(out.at("ok"), true);
  EXPECT_EQ(out.at("generation"), 7);
  EXPECT_EQ(out.at("result").at("routes").at(0).at("runtime"), "0.5");
  EXPECT_EQ(out.at("result").at("servers").at(0).at("runtime"), "draining");
}

TEST(ServerExecute, ResetIsAChangeLikeAnyOther) {
  RecordingApi api;
  const json::value out = reply(
      api, R"({"v":1,"command":"reset","operations":[{"op":"reset","route":"api"}],)"
           R"("if_generation":7,"text":"reset api"})");
  EXPECT_EQ(out.at("ok"), true);
  ASSERT_EQ(api.applied.size(), 1u);
  EXPECT_EQ(api.applied[0].operations[0].kind, Operation::Kind::reset);
  EXPECT_EQ(api.applied[0].if_generation, 7u);
  EXPECT_EQ(api.applied[0].command, "reset api");
  EXPECT_EQ(out.at("result").at("routes").at(0).at("name"), "api");
  EXPECT_EQ(reply(api, R"({"v":1,"command":"reset","operations":[{"op":"reset_all"}]})",
                  Access::read)
                .at("error")
                .at("kind"),
            "forbidden");
}

// The check itself happens inside AdminApi::reload, under proxyd's change lock (so a SIGHUP
// cannot slip in between); the control server passes the expected generation through.
TEST(ServerExecute, ReloadPassesIfGenerationThrough) {
  RecordingApi api;
  EXPECT_EQ(reply(api, R"({"v":1,"command":"reload","if_generation":3})").at("ok"), true);
  EXPECT_EQ(reply(api, R"({"v":1,"command":"reload"})").at("ok"), true);
  ASSERT_EQ(api.reload_generations.size(), 2u);
  EXPECT_EQ(api.reload_generations[0], std::optional<std::uint64_t>(3));
  EXPECT_EQ(api.reload_generations[1], std::nullopt);
}

TEST(ServerExecute, HistoryPassesEntriesThrough) {
  RecordingApi api;
  api.history_lines = {R"({"command":"flip web","result":"ok"})", "damaged {"};
  const json::value out = reply(api, R"({"v":1,"command":"history","limit":5})");
  EXPECT_EQ(api.history_limits, std::vector<std::size_t>{5});
  EXPECT_EQ(out.at("result").at("entries").at(0).at("command"), "flip web");
  EXPECT_EQ(out.at("result").at("entries").at(1), "damaged {");
  reply(api, R"({"v":1,"command":"history"})");
  EXPECT_EQ(api.history_limits.back(), 20u);
}

struct Misuse {
  std::string line;
  std::string message;
};

class ServerMisuse : public ::testing::TestWithParam<Misuse> {};

TEST_P(ServerMisuse, IsABadRequestAndChangesNothing) {
  RecordingApi api;
  const json::value out = reply(api, GetParam().line);
  EXPECT_EQ(out.at("ok"), false);
  EXPECT_EQ(out.at("error").at("kind"), "bad_request");
  EXPECT_EQ(std::string(out.at("error").at("message").as_string()), GetParam().message);
  EXPECT_TRUE(api.applied.empty());
  EXPECT_TRUE(api.reloads.empty());
}

const std::string kCommands =
    "(proxyd's commands: status, stats, history, diff, set-weight, set-live, set-passive, flip, "
    "server drain, server enable, server disable, apply, reset, reload, rollout, rollout status, rollout pause, rollout resume, rollout abort, fleet status, fleet set-weight, fleet set-live, "
    "fleet set-passive, fleet flip, fleet apply, fleet forget)";
const std::string kChangeCommands =
    "set-weight, set-live, set-passive, flip, server drain, server enable, server disable, apply, "
    "reset";
const std::string kFleetChangeCommands =
    ", fleet set-weight, fleet set-live, fleet set-passive, fleet flip, fleet apply";

INSTANTIATE_TEST_SUITE_P(
    Requests, ServerMisuse,
    ::testing::Values(
        Misuse{R"({"v":1,"command":"frob"})", R"(unknown command "frob" )" + kCommands},
        Misuse{R"({"v":1,"command":"wait-healthy"})",
               R"(unknown command "wait-healthy" )" + kCommands},
        Misuse{R"({"v":1,"command":"help"})", R"(unknown command "help" )" + kCommands},
        Misuse{R"({"v":1,"command":"flip"})",
               R"("operations" is empty: "flip" needs at least one operation)"},
        Misuse{R"({"v":1,"command":"status","operations":[{"op":"flip","route":"a"}]})",
               R"("operations" is only for )" + kChangeCommands + kFleetChangeCommands},
        Misuse{R"({"v":1,"command":"reload","operations":[{"op":"flip","route":"a"}]})",
               R"("operations" is only for )" + kChangeCommands + kFleetChangeCommands},
        Misuse{R"({"v":1,"command":"status","if_generation":1})",
               R"("if_generation" is only for )" + kChangeCommands +
                   ", reload, rollout, rollout pause, rollout resume, rollout abort"},
        Misuse{R"({"v":1,"command":"history","routes":["api"]})",
               R"("routes" is only for status, stats, rollout, rollout status, rollout pause, )"
               R"(rollout resume, rollout abort)"},
        Misuse{R"({"v":1,"command":"status","limit":3})", R"("limit" is only for history)"},
        Misuse{"not json", "the request is not valid JSON: syntax error"}));

TEST(ServerExecute, AnExceptionInAdminApiIsAnInternalError) {
  RecordingApi api;
  api.throw_in_status = true;
  const json::value out = reply(api, R"({"v":1,"command":"status"})");
  EXPECT_EQ(out.at("error").at("kind"), "internal");
  EXPECT_EQ(out.at("error").at("message"),
            "internal error in status: status exploded; check `proxyctl status`");
}

TEST(ServerExecute, UnsupportedVersion) {
  RecordingApi api;
  const json::value out = reply(api, R"({"v":2,"command":"status"})");
  EXPECT_EQ(out.at("v"), 1);
  EXPECT_EQ(out.at("error").at("kind"), "unsupported_version");
}

TEST(ServerAccess, ReadAccessRunsOnlyTheReadCommands) {
  RecordingApi api;
  EXPECT_EQ(reply(api, R"({"v":1,"command":"status"})", Access::read).at("ok"), true);
  EXPECT_EQ(reply(api, R"({"v":1,"command":"history"})", Access::read).at("ok"), true);
  EXPECT_EQ(reply(api, R"({"v":1,"command":"stats"})", Access::read).at("ok"), true);
  for (const char* line :
       {R"({"v":1,"command":"set-weight","operations":[{"op":"set_weight","route":"api",)"
        R"("weight_ppm":5000}]})",
        R"({"v":1,"command":"reload"})",
        R"({"v":1,"command":"server drain","operations":[{"op":"server_admin",)"
        R"("pool":"blue","server":"127.0.0.1:9001","admin":"draining"}]})"}) {
    const json::value out = reply(api, line, Access::read);
    EXPECT_EQ(out.at("ok"), false);
    EXPECT_EQ(out.at("error").at("kind"), "forbidden");
  }
  EXPECT_EQ(reply(api, R"({"v":1,"command":"reload"})", Access::read).at("error").at("message"),
            "uid 1000 may only read (status, stats, history, diff, rollout status, fleet status); reload changes something");
  EXPECT_TRUE(api.applied.empty());
  EXPECT_TRUE(api.reloads.empty());
}

TEST(ServerAccess, AccessIsCheckedBeforeTheFields) {
  RecordingApi api;
  // A malformed change from a read-only peer is refused for its access, not its fields.
  const json::value out = reply(api, R"({"v":1,"command":"flip"})", Access::read);
  EXPECT_EQ(out.at("error").at("kind"), "forbidden");
  EXPECT_EQ(out.at("error").at("message"),
            "uid 1000 may only read (status, stats, history, diff, rollout status, fleet status); flip changes something");
  // Without any access, nothing runs (the server closes such connections before any request).
  const json::value none = reply(api, R"({"v":1,"command":"status"})", Access::none);
  EXPECT_EQ(none.at("error").at("kind"), "forbidden");
  EXPECT_EQ(none.at("error").at("message"), "uid 1000 may not use the control socket");
  EXPECT_EQ(api.status_calls, 0);
}

TEST(PeerAccess, RootSelfAndTheConfiguredUidsAndGids) {
  ControlServerOptions options;
  const uid_t self = 998;
  const auto access = [&](Caller caller, std::vector<gid_t> groups = {}) {
    return peer_access(caller, groups, options, self);
  };
  EXPECT_EQ(access(Caller::peer(0, 0, 1)), Access::change);
  EXPECT_EQ(access(Caller::peer(998, 50, 1)), Access::change);
  EXPECT_EQ(access(Caller::peer(1000, 1000, 1)), Access::none);
  EXPECT_EQ(access(Caller::peer(-1, -1, -1)), Access::none);

  options.allowed_uids = {1000};
  EXPECT_EQ(access(Caller::peer(1000, 1000, 1)), Access::change);
  EXPECT_EQ(access(Caller::peer(1001, 1001, 1)), Access::none);

  options.allowed_gids = {2000};
  EXPECT_EQ(access(Caller::peer(1001, 2000, 1)), Access::change);   // primary group
  EXPECT_EQ(access(Caller::peer(1001, 1001, 1)), Access::none);     // no supplementary known
  EXPECT_EQ(access(Caller::peer(1001, 1001, 1), {27, 2000}), Access::change);
  EXPECT_EQ(access(Caller::peer(1001, 1001, 1), {27, 2001}), Access::none);
}

TEST(PeerAccess, ReadUidsAndGidsGetReadOnly) {
  ControlServerOptions options;
  const uid_t self = 998;
  const auto access = [&](Caller caller, std::vector<gid_t> groups = {}) {
    return peer_access(caller, groups, options, self);
  };
  options.read_uids = {1000};
  options.read_gids = {3000};
  EXPECT_EQ(access(Caller::peer(1000, 1000, 1)), Access::read);
  EXPECT_EQ(access(Caller::peer(1001, 3000, 1)), Access::read);            // primary group
  EXPECT_EQ(access(Caller::peer(1001, 1001, 1), {27, 3000}), Access::read);  // supplementary
  EXPECT_EQ(access(Caller::peer(1001, 1001, 1), {27}), Access::none);
  // Change access wins where both match; root and self always have it.
  options.allowed_gids = {27};
  EXPECT_EQ(access(Caller::peer(1000, 1000, 1), {27}), Access::change);
  options.read_uids = {0, 998};
  EXPECT_EQ(access(Caller::peer(0, 0, 1)), Access::change);
  EXPECT_EQ(access(Caller::peer(998, 998, 1)), Access::change);
  EXPECT_EQ(access(Caller::peer(-1, 3000, -1)), Access::none);
}

}  // namespace
}  // namespace proxyd::control
