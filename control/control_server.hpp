// The control socket: a Unix domain socket where proxyctl (or socat) sends one JSON request line
// and reads one response line (docs/control-protocol.md). It checks each peer's credentials, bounds
// every request (size, deadline, connection count), runs one command at a time on its own thread,
// and reaches proxyd only through AdminApi (docs/architecture.md, "The control boundary").
// No Asio in this header: the server's machinery is behind a pointer, and the request handling
// (handle_line, peer_access, and the command table in server_commands.hpp) is plain functions
// that unit tests call without sockets.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/protocol.hpp"
#include "control/server_commands.hpp"
#include "proxy/admin_api.hpp"

namespace proxyd::control {

struct ControlServerOptions {
  std::string path;                        // admin.control_socket
  mode_t mode = 0600;                      // the socket file's permissions
  std::optional<gid_t> group;              // the socket file's group, if set (chown)
  // Change access (every command), besides root and proxyd's own user; a gid matches the peer's
  // primary or supplementary groups.
  std::vector<uid_t> allowed_uids;
  std::vector<gid_t> allowed_gids;
  // Read access only (status, history, ...), matched the same way.
  std::vector<uid_t> read_uids;
  std::vector<gid_t> read_gids;
  std::size_t max_request_bytes = 64 * 1024;   // one request line, newline included
  std::chrono::milliseconds io_timeout{5000};  // to read a request line, and to write a reply
  std::size_t max_connections = 16;            // open at once; more are closed at once
};

// What this peer may do on the control socket. Change: root, proxyd's own effective uid (`self`),
// a uid of allowed_uids, a primary gid (caller.gid) or supplementary gid (`groups`, from
// SO_PEERGROUPS) of allowed_gids. Read: the same test against read_uids and read_gids. None:
// anyone else. The socket file's mode and group are the first gate; this is the second.
Access peer_access(const Caller& caller, const std::vector<gid_t>& groups,
                   const ControlServerOptions& options, uid_t self);

// One request line (no newline) -> one response line (no newline): decode, execute (for a caller
// granted `granted`), encode.
std::string handle_line(AdminApi& api, std::string_view line, const Caller& caller,
                        Access granted);

// Owner: proxyd's main (or a test), which also owns the AdminApi and keeps it alive longer.
// Thread: start() and stop() from the owner's thread; connections are served on the server's own
// thread and io_context (never a data-plane worker), one command at a time, so AdminApi is called
// from that one thread only. Lifetime: start() once; stop() (or the destructor) closes every
// connection, joins the thread and removes the socket file if it is still the one it created.
class ControlServer {
 public:
  using Options = ControlServerOptions;

  ControlServer(AdminApi& api, Options options);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket: the parent directory if missing; a stale socket file (nobody answers on
  // it) is replaced; a live one (another proxyd) or a non-socket file is an error. Sets the mode
  // and group, then starts serving. On failure returns false with `error` set, and leaves nothing
  // behind.
  bool start(std::string& error);
  void stop();

  const Options& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proxyd::control
