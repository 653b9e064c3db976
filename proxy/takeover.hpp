// Takeover: a new proxyd (an upgraded binary, or a restart for a listener change) takes the
// listening sockets of the running one over a Unix socket (SCM_RIGHTS, as HAProxy's `-x`), so no
// connection is refused or reset in between: the sockets, with their accept queues, never close.
// docs/operations.md, "Upgrades without dropping a connection", has the sequence:
//   new: connects to ADMIN.CONTROL_SOCKET.takeover, sends "takeover 1\n"
//   old: stops its control socket, metrics listener and rollouts (nothing changes from here),
//        replies one JSON line {"listeners":[{"name","address","fds":N}...],"healthy":[...],
//        "state":"...","state_file":"..."} with every listening socket attached, in that order
//   new: takes the runtime state from "state" (encode_state's text; an older proxyd sends
//        none, and then the state file is read) and saves it if its own state_file is another
//        file, starts serving on those sockets, opens the control socket, sends "ok\n"
//   old: drains like SIGTERM and exits. Without "ok" (the new one failed) it serves on as before.
// Plain POSIX, no Asio: each side runs it once, on the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace proxyd {

inline constexpr std::string_view kTakeoverRequest = "takeover 1\n";
inline constexpr std::string_view kTakeoverDone = "ok\n";
inline constexpr std::string_view kTakeoverSuffix = ".takeover";

// What the running proxyd hands over: each listener's sockets (by listener name; the address
// is checked against the new config's), the servers its health checks had proven healthy
// ("pool/server"), so the new proxyd does not start them unhealthy and answer 503, and its
// runtime state (encode_state) with the path of its state file, so that a new config naming
// another state_file, or a state file the new proxyd cannot read, loses no weight, slot or
// server state.
struct TakeoverOffer {
  struct Listener {
    std::string name;
    std::string address;  // as the config writes it: "127.0.0.1:8080"
    std::vector<int> fds;
  };
  std::vector<Listener> listeners;
  std::vector<std::string> healthy;
  std::optional<std::string> state;  // nullopt: not sent (a proxyd from before it was)
  std::string state_file;            // where the old proxyd keeps `state`
};

// Owns what a new proxyd received: the sockets it has not adopted are closed with it, and
// done() tells the old one to drain (or the destructor, by closing, that it failed).
class TakeoverGrant {
 public:
  TakeoverGrant() = default;
  TakeoverGrant(int connection, TakeoverOffer offer);
  ~TakeoverGrant();
  TakeoverGrant(const TakeoverGrant&) = delete;
  TakeoverGrant& operator=(const TakeoverGrant&) = delete;
  TakeoverGrant(TakeoverGrant&& other) noexcept;
  TakeoverGrant& operator=(TakeoverGrant&& other) noexcept;

  bool empty() const { return connection_ < 0; }
  // The sockets of listener `name` at `address`, now owned by the caller; empty if none.
  // An address with port 0 (the kernel chooses) matches the same host on any port.
  std::vector<int> take(const std::string& name, const std::string& address);
  const std::vector<std::string>& healthy() const { return offer_.healthy; }
  const std::optional<std::string>& state() const { return offer_.state; }
  const std::string& state_file() const { return offer_.state_file; }
  // The new proxyd serves: the old one may drain. False if it could not be told. The sockets of
  // listeners this proxyd did not take (removed from the config, or moved to another address)
  // are closed first, so that their ports refuse connections instead of queueing them for
  // nobody, and can be bound again.
  bool done();

 private:
  int connection_ = -1;
  TakeoverOffer offer_;
};

// New side: asks the proxyd listening on `path` for its sockets. On failure, `error` says why.
TakeoverGrant request_takeover(const std::string& path, std::chrono::milliseconds timeout,
                               std::string& error);

// Old side, the listening end: one connection at a time, from this process's own user (or
// root) only. Accepting is on a thread of its own; a valid request wakes the main thread by
// raising `signal`, which then calls take() and hand_over().
// Owner: main. Lifetime: start() to the destructor (which closes and unlinks the socket).
class TakeoverListener {
 public:
  TakeoverListener() = default;
  ~TakeoverListener();
  TakeoverListener(const TakeoverListener&) = delete;
  TakeoverListener& operator=(const TakeoverListener&) = delete;

  bool start(const std::string& path, int signal, std::string& error);
  void stop();
  // The connection of the request that raised the signal (-1: none), now the caller's.
  int take();

 private:
  void run(int signal);
  std::string path_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // stop() writes, run() polls
  std::atomic<int> pending_{-1};
  std::thread thread_;
};

// Old side, on the main thread: sends `offer` over `connection`, then waits up to `timeout` for
// the new proxyd's "ok". True when it came: the caller drains. Closes `connection` either way.
bool hand_over(int connection, const TakeoverOffer& offer, std::chrono::milliseconds timeout,
               std::string& error);

}  // namespace proxyd
