// The command table: each command's arguments become the right request, each usage error has its
// exact message, help lists every row (command_tables_test.cpp checks it against the docs and
// proxyd's table), batches parse all or nothing, and status and history render as the tables
// operators read.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <sstream>
#include <tuple>

#include "control/commands.hpp"
#include "tests/support/control_fixtures.hpp"

namespace proxyd::control {
namespace {

namespace json = boost::json;
using test::sample_status;
using test::server_status;
using test::status_after_runtime_changes;

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

Invocation parse_ok(const std::string& line, std::optional<std::string> generation = {}) {
  const Parsed parsed = parse_command_line(words(line), generation);
  EXPECT_TRUE(parsed.ok()) << line << ": " << parsed.error;
  return parsed.invocation;
}

// The whole stderr text of a usage error.
std::string usage_of(const std::string& line, std::optional<std::string> generation = {}) {
  const Parsed parsed = parse_command_line(words(line), generation);
  EXPECT_FALSE(parsed.ok()) << line;
  return usage_message(parsed);
}

Operation only_op(const Invocation& invocation) {
  EXPECT_EQ(invocation.request.operations.size(), 1u);
  return invocation.request.operations.empty() ? Operation{}
                                               : invocation.request.operations[0];
}

TEST(CommandTable, NamesAreUniqueAndEveryRowIsComplete) {
  std::set<std::string> names;
  for (const CommandRow& row : command_table()) {
    EXPECT_TRUE(names.insert(command_name(row)).second) << command_name(row);
    EXPECT_TRUE(row.usage.starts_with(command_name(row))) << row.usage;
    EXPECT_FALSE(row.summary.empty());
    EXPECT_NE(row.parse, nullptr);
    EXPECT_EQ(find_command(command_name(row)), &row);
    if (row.batchable) {
      EXPECT_TRUE(row.mutates) << command_name(row);
    }
  }
  // The documented contract (docs/control-protocol.md): these commands exist.
  for (const char* name : {"status", "stats", "set-weight", "set-live", "set-passive", "flip",
                           "wait-healthy", "server drain", "server enable", "server disable",
                           "reload", "diff", "reset", "history", "apply", "help"}) {
    EXPECT_NE(find_command(name), nullptr) << name;
  }
}

TEST(CommandParse, Status) {
  const Invocation all = parse_ok("status");
  EXPECT_EQ(all.action, Action::send);
  EXPECT_EQ(all.request.command, "status");
  EXPECT_TRUE(all.request.routes.empty());
  const Invocation some = parse_ok("status api web");
  EXPECT_EQ(some.request.routes, (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(some.request.text, "status api web");
  EXPECT_EQ(usage_of("status --routes api"),
            "proxyctl: status: unknown option --routes\nusage: proxyctl status [ROUTE...] "
            "[--json]\n");
}

TEST(CommandParse, Stats) {
  const Invocation all = parse_ok("stats");
  EXPECT_EQ(all.action, Action::send);
  EXPECT_EQ(all.request.command, "stats");
  EXPECT_TRUE(all.request.routes.empty());
  EXPECT_EQ(all.request.window, 60);
  const Invocation some = parse_ok("stats api web --window 10s");
  EXPECT_EQ(some.request.routes, (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(some.request.window, 10);
  EXPECT_EQ(parse_ok("stats --window=5m").request.window, 300);
  EXPECT_EQ(parse_ok("stats --window 1m api").request.window, 60);
  const std::string usage =
      "usage: proxyctl stats [ROUTE...] [--window 10s|1m|5m] [--json]\n";
  EXPECT_EQ(usage_of("stats --window 30s"),
            "proxyctl: stats: --window needs 10s, 1m or 5m, got \"30s\"\n" + usage);
  EXPECT_EQ(usage_of("stats --window 60"),
            "proxyctl: stats: --window needs 10s, 1m or 5m, got \"60\"\n" + usage);
  EXPECT_EQ(usage_of("stats --window"), "proxyctl: stats: --window needs a value\n" + usage);
  EXPECT_EQ(usage_of("stats --since 1m"), "proxyctl: stats: unknown option --since\n" + usage);
  EXPECT_EQ(usage_of("stats", "3"),
            "proxyctl: stats: --if-generation applies only to commands that change something\n" +
                usage);
}

TEST(CommandParse, SetWeightAcceptsEveryPercentForm) {
  for (const auto& [text, ppm] :
       std::vector<std::pair<std::string, std::uint32_t>>{{"0.5", 5000},
                                                          {"0.5%", 5000},
                                                          {"100", 1'000'000},
                                                          {"100%", 1'000'000},
                                                          {"0", 0},
                                                          {"0.0001", 1},
                                                          {"5", 50'000},
                                                          {"20.25", 202'500}}) {
    const Invocation invocation = parse_ok("set-weight api " + text);
    const Operation op = only_op(invocation);
    EXPECT_EQ(op.kind, Operation::Kind::set_weight);
    EXPECT_EQ(op.route, "api");
    EXPECT_EQ(op.weight_ppm, ppm) << text;
    EXPECT_EQ(invocation.request.command, "set-weight");
    EXPECT_EQ(invocation.request.text, "set-weight api " + text);
  }
}

TEST(CommandParse, SetWeightRefusesEverythingElse) {
  for (const std::string bad :
       {"abc", "-5", "100.0001", "101", "0.00001", "1e2", "0x10", "5%%", ".5x", "+5", "", "%"}) {
    const Parsed parsed = parse_command_line({"set-weight", "api", bad});
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error, "set-weight: invalid PERCENT \"" + bad +
                                "\": expected a number from 0 to 100 with at most 4 "
                                "decimals, e.g. 0.5, 0.5% or 100");
    EXPECT_EQ(usage_message(parsed),
              "proxyctl: " + parsed.error + "\nusage: proxyctl set-weight ROUTE PERCENT [--force]\n");
  }
  EXPECT_EQ(usage_of("set-weight"),
            "proxyctl: set-weight: missing ROUTE\nusage: proxyctl set-weight ROUTE PERCENT [--force]\n");
  EXPECT_EQ(usage_of("set-weight api"),
            "proxyctl: set-weight: missing PERCENT\nusage: proxyctl set-weight ROUTE PERCENT [--force]\n");
  EXPECT_EQ(usage_of("set-weight api 5 6"),
            "proxyctl: set-weight: unexpected argument \"6\"\n"
            "usage: proxyctl set-weight ROUTE PERCENT [--force]\n");
}

TEST(CommandParse, SetLiveAndSetPassive) {
  const Operation live = only_op(parse_ok("set-live api green"));
  EXPECT_EQ(live.kind, Operation::Kind::set_live);
  EXPECT_EQ(live.route, "api");
  EXPECT_EQ(live.pool, "green");
  const Operation passive = only_op(parse_ok("set-passive web blue"));
  EXPECT_EQ(passive.kind, Operation::Kind::set_passive);
  EXPECT_EQ(passive.route, "web");
  EXPECT_EQ(passive.pool, "blue");
  EXPECT_EQ(usage_of("set-live api"),
            "proxyctl: set-live: missing POOL\nusage: proxyctl set-live ROUTE POOL [--force]\n");
  EXPECT_EQ(usage_of("set-passive"),
            "proxyctl: set-passive: missing ROUTE\nusage: proxyctl set-passive ROUTE POOL [--force]\n");
  EXPECT_EQ(usage_of("set-passive a b c"),
            "proxyctl: set-passive: unexpected argument \"c\"\n"
            "usage: proxyctl set-passive ROUTE POOL [--force]\n");
}

// --force on every command the gate checks; a batch is forced whole, not line by line.
TEST(CommandParse, ForceOnGatedCommands) {
  for (const char* line : {"set-weight api 5 --force", "set-live api green --force",
                           "set-passive api --force green", "flip --all --force",
                           "flip api web --force", "reset --force api", "apply b.batch --force"}) {
    EXPECT_TRUE(parse_ok(line).request.force) << line;
  }
  EXPECT_FALSE(parse_ok("set-weight api 5").request.force);
  EXPECT_EQ(usage_of("server drain blue 127.0.0.1:9001 --force"),
            "proxyctl: server drain: unknown option --force\n"
            "usage: proxyctl server drain POOL SERVER\n");
  EXPECT_EQ(usage_message(parse_batch("set-weight api 5\nflip api --force\n", "b")),
            "proxyctl: apply: b line 2: --force applies to the whole batch: proxyctl apply FILE "
            "--force\nusage: proxyctl apply FILE|- [--force]\n");
  const std::string help = help_text({find_command("flip")});
  EXPECT_NE(help.find("--force goes ahead anyway; the audit log records that it was forced."),
            std::string::npos)
      << help;
}

// flip and reset share their syntax (and parser): ROUTE... or --all.
TEST(CommandParse, FlipAndResetTakeRoutesOrAll) {
  for (const auto& [name, one, all] :
       {std::tuple{"flip", Operation::Kind::flip, Operation::Kind::flip_all},
        std::tuple{"reset", Operation::Kind::reset, Operation::Kind::reset_all}}) {
    const std::string command = name;
    const Invocation two = parse_ok(command + " api web");
    EXPECT_EQ(two.request.command, command);
    ASSERT_EQ(two.request.operations.size(), 2u);
    EXPECT_EQ(two.request.operations[0].kind, one);
    EXPECT_EQ(two.request.operations[0].route, "api");
    EXPECT_EQ(two.request.operations[1].route, "web");
    EXPECT_EQ(only_op(parse_ok(command + " --all")).kind, all);
    EXPECT_EQ(parse_ok(command + " --all", "12").request.if_generation, 12u);
    const std::string usage = "usage: proxyctl " + command + " ROUTE... | --all [--force]\n";
    const std::string prefix = "proxyctl: " + command + ": ";
    EXPECT_EQ(usage_of(command), prefix + "missing ROUTE (or --all)\n" + usage);
    EXPECT_EQ(usage_of(command + " --all api"),
              prefix + "--all cannot be combined with route names\n" + usage);
    EXPECT_EQ(usage_of(command + " api web api"), prefix + "route \"api\" given twice\n" + usage);
    EXPECT_EQ(usage_of(command + " --all --all"), prefix + "--all given twice\n" + usage);
    EXPECT_EQ(usage_of(command + " --all=yes"), prefix + "--all takes no value\n" + usage);
    EXPECT_EQ(usage_of(command + " -a"), prefix + "unknown option -a\n" + usage);
    // `--` ends the options: a route could be named like one.
    EXPECT_EQ(only_op(parse_ok(command + " -- --all")).route, "--all");
  }
}

TEST(CommandParse, Diff) {
  const Invocation diff = parse_ok("diff");
  EXPECT_EQ(diff.action, Action::send);
  EXPECT_EQ(diff.request.command, "diff");
  EXPECT_EQ(usage_of("diff api"),
            "proxyctl: diff: unexpected argument \"api\"\nusage: proxyctl diff [--json]\n");
  EXPECT_EQ(usage_of("diff", "3"),
            "proxyctl: diff: --if-generation applies only to commands that change something\n"
            "usage: proxyctl diff [--json]\n");
}

TEST(CommandParse, WaitHealthy) {
  const Invocation plain = parse_ok("wait-healthy green");
  EXPECT_EQ(plain.action, Action::wait_healthy);
  EXPECT_EQ(plain.pool, "green");
  EXPECT_EQ(plain.min_healthy, std::nullopt);  // every server of the pool
  EXPECT_EQ(plain.timeout, std::chrono::seconds(30));
  EXPECT_EQ(plain.request.command, "status");  // what it polls
  const Invocation tuned = parse_ok("wait-healthy green --min 2 --timeout 5");
  EXPECT_EQ(tuned.min_healthy, 2u);
  EXPECT_EQ(tuned.timeout, std::chrono::seconds(5));
  EXPECT_EQ(parse_ok("wait-healthy green --timeout=500ms --min=3").timeout,
            std::chrono::milliseconds(500));
  EXPECT_EQ(parse_ok("wait-healthy green --timeout 2m").timeout, std::chrono::minutes(2));
  const std::string usage = "usage: proxyctl wait-healthy POOL [--min N] [--timeout SECONDS]\n";
  EXPECT_EQ(usage_of("wait-healthy"), "proxyctl: wait-healthy: missing POOL\n" + usage);
  EXPECT_EQ(usage_of("wait-healthy a b"),
            "proxyctl: wait-healthy: unexpected argument \"b\"\n" + usage);
  EXPECT_EQ(usage_of("wait-healthy green --min 0"),
            "proxyctl: wait-healthy: --min needs a whole number of at least 1, got \"0\"\n" +
                usage);
  EXPECT_EQ(usage_of("wait-healthy green --min two"),
            "proxyctl: wait-healthy: --min needs a whole number of at least 1, got \"two\"\n" +
                usage);
  EXPECT_EQ(usage_of("wait-healthy green --timeout soon"),
            "proxyctl: wait-healthy: --timeout needs seconds (e.g. 30) or a duration (500ms, "
            "90s, 2m), got \"soon\"\n" +
                usage);
  EXPECT_EQ(usage_of("wait-healthy green --timeout"),
            "proxyctl: wait-healthy: --timeout needs a value\n" + usage);
}

TEST(CommandParse, ServerDrainEnableDisable) {
  for (const auto& [verb, admin] : {std::pair{"drain", ServerAdmin::draining},
                                    std::pair{"enable", ServerAdmin::enabled},
                                    std::pair{"disable", ServerAdmin::disabled}}) {
    const Invocation invocation = parse_ok(std::string("server ") + verb + " blue 127.0.0.1:9001");
    EXPECT_EQ(invocation.request.command, std::string("server ") + verb);
    const Operation op = only_op(invocation);
    EXPECT_EQ(op.kind, Operation::Kind::server_admin);
    EXPECT_EQ(op.pool, "blue");
    EXPECT_EQ(op.server, "127.0.0.1:9001");
    EXPECT_EQ(op.admin, admin);
  }
  EXPECT_EQ(usage_of("server drain blue"),
            "proxyctl: server drain: missing SERVER\nusage: proxyctl server drain POOL SERVER\n");
  const std::string group =
      "usage: proxyctl server drain POOL SERVER\n"
      "       proxyctl server enable POOL SERVER\n"
      "       proxyctl server disable POOL SERVER\n";
  EXPECT_EQ(usage_of("server"), "proxyctl: server: expected drain, enable or disable\n" + group);
  EXPECT_EQ(usage_of("server stop blue x"),
            "proxyctl: server: expected drain, enable or disable, got \"stop\"\n" + group);
}

TEST(CommandParse, ReloadHistoryApplyHelp) {
  EXPECT_EQ(parse_ok("reload").request.command, "reload");
  EXPECT_EQ(usage_of("reload now"),
            "proxyctl: reload: unexpected argument \"now\"\nusage: proxyctl reload\n");

  EXPECT_EQ(parse_ok("history").request.limit, 20u);
  EXPECT_EQ(parse_ok("history -n 5").request.limit, 5u);
  EXPECT_EQ(parse_ok("history -n5").request.limit, 5u);
  EXPECT_EQ(usage_of("history -n 0"),
            "proxyctl: history: -n needs a whole number from 1 to 10000, got \"0\"\n"
            "usage: proxyctl history [-n N]\n");
  EXPECT_EQ(usage_of("history -n"),
            "proxyctl: history: -n needs a value\nusage: proxyctl history [-n N]\n");
  EXPECT_EQ(usage_of("history 5"),
            "proxyctl: history: unexpected argument \"5\"\nusage: proxyctl history [-n N]\n");

  const Invocation apply = parse_ok("apply deploy.batch");
  EXPECT_EQ(apply.action, Action::apply_batch);
  EXPECT_EQ(apply.batch_source, "deploy.batch");
  EXPECT_EQ(parse_ok("apply -").batch_source, "-");
  EXPECT_EQ(usage_of("apply"),
            "proxyctl: apply: missing FILE (or - for standard input)\n"
            "usage: proxyctl apply FILE|- [--force]\n");
  EXPECT_EQ(usage_of("apply a b"),
            "proxyctl: apply: unexpected argument \"b\"\nusage: proxyctl apply FILE|- [--force]\n");

  EXPECT_EQ(parse_ok("help").action, Action::help);
  EXPECT_TRUE(parse_ok("help").help_rows.empty());
  EXPECT_EQ(parse_ok("help flip").help_rows,
            (std::vector<const CommandRow*>{find_command("flip")}));
  EXPECT_EQ(parse_ok("help server").help_rows.size(), 3u);
  EXPECT_EQ(parse_ok("help server drain").help_rows,
            (std::vector<const CommandRow*>{find_command("server drain")}));
  EXPECT_EQ(usage_of("help frob"),
            "proxyctl: help: unknown command \"frob\"\nusage: proxyctl help [COMMAND]\n");
}

TEST(CommandParse, UnknownCommand) {
  EXPECT_EQ(usage_of("frob"),
            "proxyctl: unknown command \"frob\"\nrun `proxyctl help` for the list of commands\n");
  EXPECT_EQ(usage_message(parse_command_line({})),
            "proxyctl: missing COMMAND\nrun `proxyctl help` for the list of commands\n");
}

TEST(CommandParse, IfGenerationOnlyOnCommandsThatChangeSomething) {
  for (const CommandRow& row : command_table()) {
    // Fleet commands take --if-revision instead (FleetCommandLine).
    if (!row.mutates || row.words[0] == "apply" || row.words[0] == "fleet") continue;
    std::vector<std::string> args(row.words.begin(), row.words.end());
    if (row.words[0] == "set-weight") args.insert(args.end(), {"api", "5"});
    if (row.words[0] == "set-live" || row.words[0] == "set-passive") {
      args.insert(args.end(), {"api", "green"});
    }
    if (row.words[0] == "flip" || row.words[0] == "reset" || row.words[0] == "rollout")
      args.push_back("api");
    if (row.words[0] == "server") args.insert(args.end(), {"blue", "127.0.0.1:9001"});
    const Parsed parsed = parse_command_line(args, "987654");
    ASSERT_TRUE(parsed.ok()) << parsed.error;
    EXPECT_EQ(parsed.invocation.request.if_generation, 987654u) << command_name(row);
    // It is not part of the command text: the audit log records it separately.
    EXPECT_EQ(parsed.invocation.request.text.find("987654"), std::string::npos);
  }
  EXPECT_EQ(parse_ok("apply x", "7").request.if_generation, 7u);
  // {line, its command's usage}: the commands that only read refuse it.
  for (const auto& [line, usage] : std::vector<std::pair<std::string, std::string>>{
           {"status", "status [ROUTE...] [--json]"},
           {"history", "history [-n N]"},
           {"wait-healthy green", "wait-healthy POOL [--min N] [--timeout SECONDS]"}}) {
    const std::string command = line.substr(0, line.find(' '));
    EXPECT_EQ(usage_of(line, "3"),
              "proxyctl: " + command +
                  ": --if-generation applies only to commands that change something\n"
                  "usage: proxyctl " + usage + "\n");
  }
  for (const std::string bad : {"twelve", "-1"}) {
    EXPECT_EQ(usage_of("flip api", bad),
              "proxyctl: flip: --if-generation needs a whole number, got \"" + bad +
                  "\"\nusage: proxyctl flip ROUTE... | --all [--force]\n");
  }
}

TEST(CommandBatch, AllLinesBecomeOneRequest) {
  const Parsed parsed = parse_batch(
      "# canary step\n"
      "set-weight api 5\n"
      "\n"
      "   flip web   # and the web route\n"
      "server drain blue 127.0.0.1:9001\r\n"
      "set-live api green\n"
      "set-passive api blue\n"
      "flip --all\n",
      "deploy.batch", "9");
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  const Request& request = parsed.invocation.request;
  EXPECT_EQ(parsed.invocation.action, Action::send);
  EXPECT_EQ(request.command, "apply");
  EXPECT_EQ(request.if_generation, 9u);
  ASSERT_EQ(request.operations.size(), 6u);
  EXPECT_EQ(request.operations[0].kind, Operation::Kind::set_weight);
  EXPECT_EQ(request.operations[0].weight_ppm, 50'000u);
  EXPECT_EQ(request.operations[1].kind, Operation::Kind::flip);
  EXPECT_EQ(request.operations[1].route, "web");
  EXPECT_EQ(request.operations[2].kind, Operation::Kind::server_admin);
  EXPECT_EQ(request.operations[2].admin, ServerAdmin::draining);
  EXPECT_EQ(request.operations[5].kind, Operation::Kind::flip_all);
  EXPECT_EQ(request.text,
            "apply: set-weight api 5; flip web; server drain blue 127.0.0.1:9001; set-live api "
            "green; set-passive api blue; flip --all");
}

TEST(CommandBatch, ARefusedOperationIsNamedByItsLine) {
  const Parsed parsed = parse_batch(
      "# comment\nset-weight api 5\n\nflip web api\nset-live shop blue\n", "deploy.batch");
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  const Invocation& batch = parsed.invocation;
  EXPECT_EQ(batch.operation_lines, (std::vector<std::size_t>{2, 4, 4, 5}));
  Error error{ErrorKind::refused, "no route named shop", 3};
  EXPECT_EQ(error_text(batch, error), "apply: deploy.batch line 5: no route named shop");
  error.operation = 2;
  EXPECT_EQ(error_text(batch, error), "apply: deploy.batch line 4: no route named shop");
  // No operation to blame (say, the generation moved), or one proxyctl did not send: as is.
  error.operation.reset();
  EXPECT_EQ(error_text(batch, error), "no route named shop");
  error.operation = 4;
  EXPECT_EQ(error_text(batch, error), "no route named shop");
  // Outside a batch the message names the route already.
  const Error plain{ErrorKind::refused, "no route named shop", 1};
  EXPECT_EQ(error_text(parse_ok("flip api shop"), plain), "no route named shop");
}

TEST(CommandBatch, ABadLineIsAUsageErrorNamingTheLine) {
  const Parsed percent = parse_batch("set-weight api 5\n\nset-weight api lots\n", "deploy.batch");
  ASSERT_FALSE(percent.ok());
  EXPECT_EQ(usage_message(percent),
            "proxyctl: apply: deploy.batch line 3: set-weight: invalid PERCENT \"lots\": expected "
            "a number from 0 to 100 with at most 4 decimals, e.g. 0.5, 0.5% or 100\n"
            "usage: proxyctl set-weight ROUTE PERCENT [--force]\n");

  EXPECT_EQ(usage_message(parse_batch("flip api\nfrob\n", "stdin")),
            "proxyctl: apply: stdin line 2: unknown command \"frob\"\n"
            "usage: proxyctl apply FILE|- [--force]\n");

  const std::string not_batchable =
      " cannot be part of a batch (only set-weight, set-live, set-passive, flip, server "
      "drain|enable|disable, reset can)\nusage: proxyctl apply FILE|- [--force]\n";
  EXPECT_EQ(usage_message(parse_batch("reload\n", "b")),
            "proxyctl: apply: b line 1: reload" + not_batchable);
  EXPECT_EQ(usage_message(parse_batch("flip api\nstatus\n", "b")),
            "proxyctl: apply: b line 2: status" + not_batchable);
  EXPECT_EQ(usage_message(parse_batch("apply other\n", "b")),
            "proxyctl: apply: b line 1: apply" + not_batchable);
  EXPECT_EQ(usage_message(parse_batch("wait-healthy green\n", "b")),
            "proxyctl: apply: b line 1: wait-healthy" + not_batchable);

  EXPECT_EQ(usage_message(parse_batch("flip api --if-generation 3\n", "b")),
            "proxyctl: apply: b line 1: flip: unknown option --if-generation\n"
            "usage: proxyctl flip ROUTE... | --all [--force]\n");
  EXPECT_EQ(usage_message(parse_batch("server halt blue x\n", "b")),
            "proxyctl: apply: b line 1: server: expected drain, enable or disable, got \"halt\"\n"
            "usage: proxyctl server drain POOL SERVER\n"
            "       proxyctl server enable POOL SERVER\n"
            "       proxyctl server disable POOL SERVER\n");
  EXPECT_EQ(usage_message(parse_batch("# nothing\n\n", "b")),
            "proxyctl: apply: b has no commands\nusage: proxyctl apply FILE|- [--force]\n");
  EXPECT_EQ(usage_message(parse_batch("", "b")),
            "proxyctl: apply: b has no commands\nusage: proxyctl apply FILE|- [--force]\n");
  EXPECT_EQ(usage_message(parse_batch("flip api\n", "b", "x")),
            "proxyctl: apply: --if-generation needs a whole number, got \"x\"\n"
            "usage: proxyctl apply FILE|- [--force]\n");
}

// The command list itself, row by row and in order: CommandTables.HelpListsNothingElse.
TEST(CommandHelp, ListsEveryRow) {
  const std::string help = help_text();
  for (const CommandRow& row : command_table()) {
    EXPECT_NE(help.find("\n      " + std::string(row.summary) + "\n"), std::string::npos)
        << row.summary;
  }
  EXPECT_NE(help.find("exit codes: 0 done, 1 refused"), std::string::npos);
  EXPECT_NE(help.find("PROXYD_SOCKET"), std::string::npos);
  EXPECT_NE(help.find("/run/proxyd/control.sock"), std::string::npos);
  EXPECT_NE(help.find("--if-generation N"), std::string::npos);
}

TEST(CommandHelp, OneCommand) {
  EXPECT_EQ(help_text({find_command("reload")}),
            "usage: proxyctl reload\n\n"
            "re-read the config file; errors keep the old one\n"
            "Errors are printed as FILE:LINE: key: message. Runtime changes (weights,\n"
            "slots, server states) are kept for routes and pools that still exist and win\n"
            "over the file until `proxyctl reset`; reload lists those that differ from it.\n"
            "Takes --if-generation N: refused unless the generation is still N.\n");
  const std::string weight = help_text({find_command("set-weight")});
  EXPECT_NE(weight.find("0.5, 0.5% and 100"), std::string::npos);
  EXPECT_NE(weight.find("May be a line of an `apply` batch."), std::string::npos);
  EXPECT_EQ(help_text({find_command("help")}),
            "usage: proxyctl help [COMMAND]\n\nthis list, or the details of one command\n");
}

TEST(CommandRender, StatusMarksRuntimeValues) {
  EXPECT_EQ(render_status(status_after_runtime_changes()),
            "generation 7 (config /etc/proxyd/proxyd.yaml)\n"
            "\n"
            "ROUTE  LIVE    PASSIVE  WEIGHT  STICKY\n"
            "api    green*  blue*    0.5%*   cookie sessionid\n"
            "web    blue    blue     0%      -\n"
            "\n"
            "POOL   SERVER          STATE      HEALTH     LAST CHECK  SINCE\n"
            "blue   127.0.0.1:9001  enabled    unchecked  -           -\n"
            "blue   127.0.0.1:9002  draining*  unhealthy  -           -\n"
            "green  127.0.0.1:9011  enabled    healthy    -           -\n"
            "\n"
            "POOL   CHECKED  IN FLIGHT  TUNNELS\n"
            "blue   no       0          0\n"
            "green  yes      0          0\n"
            "\n"
            "* changed at runtime (proxyctl or the state file); unmarked values come from the "
            "config file\n");
}

TEST(CommandRender, StatusWithoutRuntimeChangesHasNoLegend) {
  Status status = sample_status();
  status.routes[0].weight_source = Source::config;  // its only runtime value
  status.config_path.clear();
  EXPECT_EQ(render_status(status),
            "generation 7\n"
            "\n"
            "ROUTE  LIVE  PASSIVE  WEIGHT  STICKY\n"
            "api    blue  green    0.5%    cookie sessionid\n"
            "web    blue  blue     0%      -\n"
            "\n"
            "POOL   SERVER          STATE    HEALTH     LAST CHECK  SINCE\n"
            "blue   127.0.0.1:9001  enabled  unchecked  -           -\n"
            "blue   127.0.0.1:9002  enabled  unchecked  -           -\n"
            "green  127.0.0.1:9011  enabled  healthy    -           -\n"
            "\n"
            "POOL   CHECKED  IN FLIGHT  TUNNELS\n"
            "blue   no       0          0\n"
            "green  yes      0          0\n");
}

// 2024-05-01T10:00:00Z in Unix milliseconds.
constexpr std::int64_t k10h = 1'714'557'600'000;

// green with three servers: one healthy since 10:00:00, one failing, one ejected by passive
// checks until 10:00:30; the load of the servers adds up per pool.
Status checked_green() {
  Status status = sample_status();
  status.routes.clear();
  PoolStatus& green = status.pools[1];
  ServerStatus& ok = green.servers[0];
  ok.last_check = "200";
  ok.last_check_at = k10h + 5'000;
  ok.health_since = k10h;
  ok.in_flight = 3;
  ok.tunnels = 1;
  ServerStatus failing = server_status("127.0.0.1:9012", Health::unhealthy);
  failing.last_check = "503";
  failing.health_since = k10h + 61'000;
  failing.in_flight = 1;
  ServerStatus ejected = server_status("127.0.0.1:9013", Health::healthy);
  ejected.last_check = "200";
  ejected.ejected_until = k10h + 30'000;
  ejected.tunnels = 2;
  green.servers.push_back(failing);
  green.servers.push_back(ejected);
  return status;
}

TEST(CommandRender, StatusShowsHealthLastCheckSinceAndLoad) {
  Status status = checked_green();
  status.config_path.clear();
  EXPECT_EQ(render_status(status),
            "generation 7\n"
            "\n"
            "POOL   SERVER          STATE    HEALTH                  LAST CHECK  SINCE\n"
            "blue   127.0.0.1:9001  enabled  unchecked               -           -\n"
            "blue   127.0.0.1:9002  enabled  unchecked               -           -\n"
            "green  127.0.0.1:9011  enabled  healthy                 200         10:00:00\n"
            "green  127.0.0.1:9012  enabled  unhealthy               503         10:01:01\n"
            "green  127.0.0.1:9013  enabled  ejected until 10:00:30  200         -\n"
            "\n"
            "POOL   CHECKED  IN FLIGHT  TUNNELS\n"
            "blue   no       0          0\n"
            "green  yes      4          3\n");
  // What proxyd sends renders the same: every field round-trips through the JSON.
  EXPECT_EQ(find_command("status")->render(ok_response(7, status_to_json(status))),
            render_status(status));
}

TEST(CommandRender, ChangeReplyShowsTheNewGenerationAndTouchedRoutes) {
  Status after = sample_status();
  after.routes.resize(1);
  after.pools.clear();
  json::object result = status_to_json(after);
  result.erase("config_path");
  const std::string text = find_command("set-weight")->render(ok_response(14, result));
  EXPECT_EQ(text,
            "changed; generation is now 14\n"
            "\n"
            "ROUTE  LIVE  PASSIVE  WEIGHT  STICKY\n"
            "api    blue  green    0.5%*   cookie sessionid\n"
            "\n"
            "* changed at runtime (proxyctl or the state file); unmarked values come from the "
            "config file\n");
  EXPECT_EQ(find_command("reload")->render(ok_response(15)),
            "reloaded the config; generation is now 15\n");
  // Forced past the gate: the reply says what it went past.
  result["overridden"] = "pool green has no healthy server (route api would send it more traffic)";
  const std::string forced = find_command("flip")->render(ok_response(16, result));
  EXPECT_TRUE(forced.starts_with("changed; generation is now 16\nforced past: pool green has no "
                                 "healthy server (route api would send it more traffic)\n\nROUTE"))
      << forced;
}

// Records as proxyd writes them (proxy/server.cpp, Proxy::audit; control_e2e_test reads real
// ones back through proxyctl).
TEST(CommandRender, History) {
  const json::array entries = json::parse(R"([
    {"time":"2024-05-01T10:00:00Z","by":{"uid":1000,"pid":4242},"command":"set-weight api 5",
     "routes":["api"],"servers":[],"before":{"routes":{"api":{"live":"blue","passive":"green",
     "weight":"0"}}},"after":{"routes":{"api":{"live":"blue","passive":"green","weight":"5"}}},
     "generation":13,"result":"ok"},
    {"time":"2024-05-01T10:01:00Z","by":{"uid":0,"pid":77},"command":"flip web","routes":["web"],
     "servers":[],"before":{},"after":{},"generation":14,"result":"refused",
     "reason":"the generation is 14, not 12"},
    {"time":"2024-05-01T10:02:00Z","by":"signal","command":"SIGHUP","routes":[],"servers":[],
     "before":{},"after":{},"generation":15,"result":"ok"},
    {"time":"2024-05-01T10:03:00Z","by":{"uid":0,"pid":78},"command":"flip web --force",
     "routes":["web"],"servers":[],"before":{},"after":{},"generation":16,"result":"ok",
     "forced":true,"overridden":"pool green has no healthy server"},
    "not json at all"
  ])")
                                  .as_array();
  EXPECT_EQ(render_history(entries),
            "TIME                  BY                 GEN  RESULT       COMMAND           REASON\n"
            "2024-05-01T10:00:00Z  uid 1000 pid 4242  13   ok           set-weight api 5\n"
            "2024-05-01T10:01:00Z  uid 0 pid 77       14   refused      flip web          the "
            "generation is 14, not 12\n"
            "2024-05-01T10:02:00Z  signal             15   ok           SIGHUP\n"
            "2024-05-01T10:03:00Z  uid 0 pid 78       16   ok (forced)  flip web --force\n"
            "-                     -                  -    -            not json at all\n");
  EXPECT_EQ(render_history(json::array()), "no changes recorded\n");
  const Response reply = ok_response(std::nullopt, json::parse(R"({"entries":[]})").as_object());
  EXPECT_EQ(find_command("history")->render(reply), "no changes recorded\n");
}

const char* const kResetHint =
    "Runtime values win over the file until reset: `proxyctl reset ROUTE...` drops a\n"
    "route's, `proxyctl reset --all` every route's and every server's.\n";

RuntimeDiff sample_diff() {
  RuntimeDiff diff;
  diff.generation = 9;
  diff.routes = {RouteDiff{"api", "live", "blue", "green"}, RouteDiff{"api", "passive", "green", "blue"},
                 RouteDiff{"web", "weight", "0", "50"}};
  diff.servers = {ServerDiff{"blue", "127.0.0.1:9002", ServerAdmin::enabled, ServerAdmin::draining}};
  return diff;
}

TEST(CommandRender, Diff) {
  EXPECT_EQ(render_diff(sample_diff()),
            "ROUTE  KEY      FILE   RUNTIME\n"
            "api    live     blue   green\n"
            "api    passive  green  blue\n"
            "web    weight   0%     50%\n"
            "\n"
            "POOL  SERVER          FILE     RUNTIME\n"
            "blue  127.0.0.1:9002  enabled  draining\n"
            "\n" +
                std::string(kResetHint));
  RuntimeDiff servers_only = sample_diff();
  servers_only.routes.clear();
  EXPECT_EQ(render_diff(servers_only),
            "POOL  SERVER          FILE     RUNTIME\n"
            "blue  127.0.0.1:9002  enabled  draining\n"
            "\n" +
                std::string(kResetHint));
  EXPECT_EQ(render_diff(RuntimeDiff{}), "no runtime value differs from the file\n");
  // The reply proxyd sends renders the same.
  EXPECT_EQ(find_command("diff")->render(ok_response(9, diff_to_json(sample_diff()))),
            render_diff(sample_diff()));
}

TEST(CommandRender, ReloadSaysWhichRuntimeValuesStillWin) {
  RuntimeDiff diff = sample_diff();
  diff.routes.resize(1);
  diff.servers.clear();
  EXPECT_EQ(find_command("reload")->render(ok_response(9, diff_to_json(diff))),
            "reloaded the config; generation is now 9\n"
            "these runtime values still win over the file:\n"
            "\n"
            "ROUTE  KEY   FILE  RUNTIME\n"
            "api    live  blue  green\n"
            "\n" +
                std::string(kResetHint));
  EXPECT_EQ(find_command("reload")->render(ok_response(9, diff_to_json(RuntimeDiff{}))),
            "reloaded the config; generation is now 9\n");
}

TEST(CommandRender, Stats) {
  EXPECT_EQ(render_stats(test::sample_stats()),
            "window 1m (60 s)\n"
            "ROUTE  SLOT     POOL   REQUESTS  REQ/S  SHARE   WEIGHT  ERRORS  ERROR%  P50 MS  P99 MS\n"
            "api    live     blue   11940     199.0  99.5%   99.5%   3       0.03%   1.2     8.4\n"
            "api    passive  green  60        1.0    0.5%    0.5%    6       10.00%  1.4     9.9\n"
            "web    live     blue   300       5.0    100.0%  100%    0       0.00%   0.8     >10000\n"
            "web    passive  blue   0         0.0    0.0%    0%      0       -       -       -\n");
  // A pool a slot left within the window: its own row, no weight; no requests at all: no share.
  Stats moved = test::sample_stats(10);
  moved.routes.resize(1);
  moved.routes[0].slots.push_back(SlotStats{"passive", "red", 0, 0, std::nullopt, std::nullopt});
  for (SlotStats& slot : moved.routes[0].slots) {
    slot = SlotStats{slot.slot, slot.pool, 0, 0, {}, {}};
  }
  EXPECT_EQ(render_stats(moved),
            "window 10s (10 s)\n"
            "ROUTE  SLOT     POOL   REQUESTS  REQ/S  SHARE  WEIGHT  ERRORS  ERROR%  P50 MS  P99 MS\n"
            "api    live     blue   0         0.0    -      99.5%   0       -       -       -\n"
            "api    passive  green  0         0.0    -      0.5%    0       -       -       -\n"
            "api    passive  red    0         0.0    -      -       0       -       -       -\n");
}

TEST(CommandRender, TableHasNoTrailingBlanks) {
  EXPECT_EQ(format_table({{"A", "BB", "C"}, {"long", "x", ""}}), "A     BB  C\nlong  x\n");
}

TEST(WaitHealthy, CountsOnlyServersProvenHealthyThatTakeTraffic) {
  Status status = checked_green();
  const HealthCount green = count_healthy(status, "green");
  EXPECT_TRUE(green.found);
  EXPECT_TRUE(green.checked);
  EXPECT_EQ(green.healthy, 1u);
  EXPECT_EQ(green.total, 3u);
  EXPECT_EQ(green.not_healthy,
            (std::vector<std::string>{"127.0.0.1:9012 unhealthy (last check: 503)",
                                      "127.0.0.1:9013 ejected until 10:00:30 (last check: 200)"}));
  // Healthy but draining or disabled: it takes no new requests, so it does not count.
  status.pools[1].servers[0].admin = ServerAdmin::draining;
  EXPECT_EQ(count_healthy(status, "green").healthy, 0u);
  EXPECT_EQ(count_healthy(status, "green").not_healthy[0],
            "127.0.0.1:9011 draining (last check: 200)");
  // Unchecked servers are assumed up, never proven so.
  const HealthCount blue = count_healthy(status, "blue");
  EXPECT_FALSE(blue.checked);
  EXPECT_EQ(blue.healthy, 0u);
  EXPECT_EQ(blue.not_healthy[0], "127.0.0.1:9001 unchecked (no check yet)");
  EXPECT_FALSE(count_healthy(status, "red").found);
}

TEST(WaitHealthy, Messages) {
  HealthCount count{true, true, 1, 3, {"127.0.0.1:9012 unhealthy (last check: 503)",
                                      "127.0.0.1:9013 unhealthy (no check yet)"}};
  EXPECT_EQ(wait_healthy_met("green", count, 1), "pool green: 1 of 3 servers healthy (need 1)");
  EXPECT_EQ(wait_healthy_timed_out("green", count, 2, std::chrono::seconds(30)),
            "wait-healthy: timed out after 30s: pool green has 1 of 3 servers healthy, need 2\n"
            "  127.0.0.1:9012 unhealthy (last check: 503)\n"
            "  127.0.0.1:9013 unhealthy (no check yet)");
  EXPECT_EQ(not_checked("blue"),
            "wait-healthy: nothing checks the health of pool blue (it has no health block), so "
            "no server of it can be proven healthy");
  EXPECT_EQ(unknown_pool(sample_status(), "red"),
            "wait-healthy: unknown pool \"red\" (pools: blue, green)");
  EXPECT_EQ(too_few_servers("green", count, 4),
            "wait-healthy: pool green has only 3 servers, fewer than --min 4");
  count.total = 1;
  EXPECT_EQ(too_few_servers("green", count, 2),
            "wait-healthy: pool green has only 1 server, fewer than --min 2");
}

TEST(Durations, FormatAndParse) {
  EXPECT_EQ(format_duration(std::chrono::milliseconds(1000)), "1s");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1.5s");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(300)), "300ms");
  EXPECT_EQ(parse_timeout("30"), std::chrono::seconds(30));
  EXPECT_EQ(parse_timeout("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(parse_timeout("1.5"), std::nullopt);
  EXPECT_EQ(parse_timeout("-1"), std::nullopt);
  EXPECT_EQ(parse_timeout(""), std::nullopt);
}

}  // namespace
}  // namespace proxyd::control
