// The proxyctl command table : one row per command with its words, usage
// line, summary, whether it changes anything, how its arguments parse into a protocol request and
// how a reply renders as text. `proxyctl help`, `help COMMAND`, the batch syntax of `apply` and
// the command list in docs/control-protocol.md all come from this one table. Pure: no I/O.
#pragma once

#include <boost/json/array.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/protocol.hpp"

namespace proxyd::control {

inline constexpr std::string_view kDefaultSocketPath = "/run/proxyd/control.sock";
inline constexpr std::string_view kSocketEnv = "PROXYD_SOCKET";

// What proxyctl does with a parsed command line.
enum class Action {
  send,          // send `request`, render the reply
  wait_healthy,  // poll `status` until enough servers of `pool` are healthy
  apply_batch,   // read `batch_source`, parse it with parse_batch, send that
  rollout,       // send `request` (a rollout start), then follow it until it ends
  fleet_write,   // send `request` (a fleet change), then wait until every member applied it
  fleet_rollout,  // run `request.plan` on the fleet from proxyctl: fleet status and fleet writes
  help,          // print help_text(), or help_text(*help_rows) for `help COMMAND`
};

struct CommandRow;

// A command line, understood.
struct Invocation {
  const CommandRow* row = nullptr;
  Action action = Action::send;
  Request request;

  // wait-healthy
  std::string pool;
  std::optional<std::uint32_t> min_healthy;  // --min; default: every server of the pool
  std::chrono::milliseconds timeout{30'000};  // wait-healthy, and fleet changes' --timeout

  // apply: a path, or "-" for standard input
  std::string batch_source;
  // A parsed batch: its name in messages, and the line each operation of the request came from.
  std::string batch_name;
  std::vector<std::size_t> operation_lines;

  // help COMMAND: the rows it names (`help server` names three); empty: the whole list
  std::vector<const CommandRow*> help_rows;
};

// A parse result: an invocation, or a usage error (exit code 2) with the usage lines to print.
struct Parsed {
  Invocation invocation;
  std::string error;                         // empty: ok
  std::vector<const CommandRow*> usage_rows;  // the usage lines that go with the error
  bool ok() const { return error.empty(); }
};

struct CommandRow {
  std::vector<std::string_view> words;  // {"server", "drain"}
  std::string_view usage;               // after "proxyctl ": "server drain POOL SERVER"
  std::string_view summary;             // one line for `help`
  std::string_view details;             // more for `help COMMAND`; may be empty
  bool mutates = false;    // changes runtime state, so it takes --if-generation
  bool batchable = false;  // may be a line of `apply`
  // Parses the arguments after the command words into `out` (row, action and request.command
  // are already set); returns a usage error without the command-name prefix, or "".
  std::string (*parse)(const CommandRow& row, const std::vector<std::string>& args,
                       Invocation& out) = nullptr;
  // Renders a successful reply as text for a human; nullptr for commands proxyctl runs itself.
  std::string (*render)(const Response& response) = nullptr;
  // Checked by proxyd's change gate (health, max_step), so it takes --force.
  bool gated = false;
};

std::span<const CommandRow> command_table();
// The row whose words joined by spaces are `name` ("set-weight", "server drain"); nullptr if none.
const CommandRow* find_command(std::string_view name);
// The row's words joined by spaces: the protocol's "command" field.
std::string command_name(const CommandRow& row);

// Parses proxyctl's arguments after the global options (-s, --json, --if-generation) were taken
// out. `if_generation` is the --if-generation value as typed, if given.
Parsed parse_command_line(const std::vector<std::string>& args,
                          const std::optional<std::string>& if_generation = std::nullopt);

// Parses the text of a batch for `apply` (one command per line, as on the command line; blank
// lines and # comments ignored) into one request with every operation. `source` names the input
// in error messages ("deploy.batch", "stdin").
Parsed parse_batch(std::string_view text, std::string_view source,
                   const std::optional<std::string>& if_generation = std::nullopt);

// What proxyctl prints on stderr for a usage error: "proxyctl: ERROR" and the usage lines.
std::string usage_message(const Parsed& parsed);

// The text of proxyd's error reply to `invocation`: its message, and for a batch whose operation
// proxyd refused, the line it came from first ("apply: deploy.batch line 3: no route named x").
std::string error_text(const Invocation& invocation, const Error& error);

std::string help_text();                                          // every row
std::string help_text(const std::vector<const CommandRow*>& rows);  // `help COMMAND`

// Rendering, shared by the rows and tested on their own.
std::string render_status(const Status& status);
// fleet status: the desired state's revision, then a row per member.
std::string render_fleet(const FleetView& view);
// The members of `view` that have not applied `revision` yet, each with why: "web-3 (down)",
// "web-2 (at revision 11)", "web-2 (at revision 11: REASON)". Empty: every member has.
std::vector<std::string> fleet_laggards(const FleetView& view, std::int64_t revision);
std::string render_history(const boost::json::array& entries);
// stats: a window line, then a row per route, slot and pool.
std::string render_stats(const Stats& stats);
// rollout status: a row per route's latest rollout, then each one's reason, if it has one.
std::string render_rollouts(const std::vector<RolloutStatus>& rollouts);
// One rollout as proxyctl rollout follows it: "step 2 of 5 (5%)".
std::string rollout_step_text(const RolloutStatus& rollout);
// The live line: step, time or requests left, both slots' requests and errors.
std::string rollout_progress_line(const RolloutStatus& rollout);
// The line for a rollout that ended or paused: its phase and reason.
std::string rollout_end_line(const RolloutStatus& rollout);
// --steps' list ("0.5,5,20,50,100") in ppm; the error says which entry is wrong.
std::optional<std::vector<std::uint32_t>> parse_steps(std::string_view text, std::string& error);
// --window's values ("10s", "1m", "5m") in seconds; nullopt for anything else.
std::optional<std::int64_t> parse_window(std::string_view text);
// The runtime values that win over the file (diff, and after a reload), with how to drop them.
std::string render_diff(const RuntimeDiff& diff);
// A whitespace-aligned table; the last column is not padded (no trailing blanks).
std::string format_table(const std::vector<std::vector<std::string>>& rows);

// A moment as status shows it: "HH:MM:SS" in UTC, from Unix milliseconds.
std::string clock_time(std::int64_t unix_ms);
// A server's health as status shows it: "healthy", "unhealthy", "unchecked", or "ejected until
// HH:MM:SS" while passive checks keep it out.
std::string health_text(const ServerStatus& server);

// wait-healthy: the servers of `pool` that count as healthy: enabled, proven healthy by their
// active checks and not ejected (they take traffic). Draining, disabled, unchecked and ejected
// servers do not count.
struct HealthCount {
  bool found = false;    // the pool exists
  bool checked = false;  // it has a health block: without one nothing proves a server healthy
  std::size_t healthy = 0;
  std::size_t total = 0;
  // One line per server that does not count, and why: "127.0.0.1:9011 unhealthy (last check:
  // 503)", "127.0.0.1:9012 draining (last check: 200)".
  std::vector<std::string> not_healthy;
};
HealthCount count_healthy(const Status& status, std::string_view pool);
std::string wait_healthy_met(std::string_view pool, const HealthCount& count, std::uint32_t min);
// The first line says how many; one indented line per server that does not count follows.
std::string wait_healthy_timed_out(std::string_view pool, const HealthCount& count,
                                   std::uint32_t min, std::chrono::milliseconds waited);
std::string unknown_pool(const Status& status, std::string_view pool);
// A pool without a health block: waiting could prove nothing, so it fails at once.
std::string not_checked(std::string_view pool);
// A pool with fewer servers than --min can never meet it: said at once rather than after the
// timeout.
std::string too_few_servers(std::string_view pool, const HealthCount& count, std::uint32_t min);
// Whole seconds ("30") or a duration as in the config ("500ms", "90s", "2m"); nullopt otherwise.
std::optional<std::chrono::milliseconds> parse_timeout(std::string_view text);

}  // namespace proxyd::control
