// proxyd's side of the control commands: one table with a row per command the control socket
// accepts (its name on the wire, the access it needs, the request fields it uses, its handler),
// and execute(), which checks a decoded request against its row and runs it through AdminApi.
// proxyctl's argv parsing and rendering (commands.hpp) is the client's table and is not linked
// into proxyd. Pure: no sockets, no Asio; unit tests call execute() with a fake AdminApi.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "control/protocol.hpp"
#include "proxy/admin_api.hpp"

namespace proxyd::control {

// What a peer of the control socket may do, ordered: each level includes the ones before it.
enum class Access : std::uint8_t {
  none,    // nothing: the connection is answered `forbidden` and closed
  read,    // commands that only look (status, history, ...)
  change,  // every command
};

// The request fields a command uses besides "v", "command" and "text" (which every command may
// carry). A field a command does not use is a bad_request, so a typo or a misplaced field is
// never silently ignored.
struct Accepts {
  bool operations = false;
  bool if_generation = false;
  bool routes = false;
  bool limit = false;
  bool force = false;
  bool window = false;
  bool plan = false;
  bool local = false;
  bool if_revision = false;
  bool host = false;
};

struct ServerCommand {
  std::string_view name;  // the request's "command": "status", "server drain"
  Access access = Access::change;
  Accepts accepts;
  // Runs a request already checked against this row; throws only on a bug (execute() turns an
  // exception into an `internal` reply).
  Response (*run)(AdminApi& api, const Request& request, const Caller& caller) = nullptr;
};

std::span<const ServerCommand> server_commands();
const ServerCommand* find_server_command(std::string_view name);

// Runs one decoded request for a caller granted `granted`; never throws. An unknown command or a
// field the command does not use is bad_request; a command above the caller's access is
// forbidden; neither reaches the api.
Response execute(AdminApi& api, const Request& request, const Caller& caller, Access granted);

// One stderr line, "proxyd: control: TEXT", written with one call so that lines of different
// threads do not mix.
void log_line(std::string_view text);

}  // namespace proxyd::control
