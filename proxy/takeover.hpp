// Takeover: a new proxyd (an upgraded binary, or a restart for a listener change) takes the
// listening sockets of the running one over a Unix socket (SCM_RIGHTS, as HAProxy's `-x`), so no
// connection is refused or reset in between: the sockets, with their accept queues, never close.
// docs/operations.md, "Upgrades without dropping a connection", has the sequence:
//   new: connects to ADMIN.CONTROL_SOCKET.takeover, sends "takeover 1\n"
//   old: stops its control socket, metrics listener and rollouts (nothing changes from here),
//        replies one JSON line {"protocol":2,"ok_within_ms":N,"listeners":[{"name","address",
//        "fds":N}...],"healthy":[...],"state":"...","state_file":"..."} with every listening
//        socket attached, in that order
//   new: takes the runtime state from "state" (encode_state's text; an older proxyd sends
//        none, and then the state file is read) and saves it if its own state_file is another
//        file, starts serving on those sockets (refusing changes), opens the control socket,
//        sends "ok\n"
//   old: within ok_within_ms of its offer, answers "draining\n", drains like SIGTERM and exits.
//        Without "ok" by then (the new one failed, or is late) it answers "serving on\n", waits
//        (bounded) for the new one to close the connection, and serves on as before.
//   new: on "draining" accepts changes and serves; on "serving on" closes its control socket,
//        takeover socket and metrics listener, then the connection (so the old one can take
//        them back), drains what it accepted and exits 1.
// The verdict is protocol 2. A protocol 1 proxyd (older) sends no "protocol" and no verdict: the
// new one takes "ok" sent as done. Either side of protocol 2 talks to one of protocol 1 as before.
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
inline constexpr std::string_view kTakeoverDraining = "draining\n";
inline constexpr std::string_view kTakeoverServingOn = "serving on\n";
inline constexpr int kTakeoverProtocol = 2;
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
  // Received: 1 when the offer names none. Sent: 1 leaves out "protocol" and "ok_within_ms".
  int protocol = kTakeoverProtocol;
  // How long the old proxyd waits for "ok" after sending the offer (timeouts.takeover).
  std::chrono::milliseconds ok_within{60'000};
};

// What the old proxyd said to the new one's "ok".
enum class TakeoverVerdict {
  draining,    // it hands over (also assumed from a protocol 1 proxyd, which says nothing)
  serving_on,  // the "ok" came too late: it serves on, and the new proxyd must let go
  gone,        // it could not be told, or closed without a word, or said nothing in time
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
  // The new proxyd serves: tells the old one, and returns its verdict (`why` says more when it
  // is `gone`). The sockets of listeners this proxyd did not take (removed from the config, or
  // moved to another address) are closed first, so that their ports refuse connections instead
  // of queueing them for nobody, and can be bound again. The connection stays open after
  // `serving_on` only: let_go() closes it.
  TakeoverVerdict done(std::string& why);
  // Closes the connection (and any socket not taken). After `serving_on`, or a failure before
  // done(), call it once this proxyd closed what the old one takes back (its control socket,
  // takeover socket and metrics listener): the old proxyd waits for it before it reopens them.
  void let_go();

 private:
  int connection_ = -1;
  TakeoverOffer offer_;
  std::chrono::steady_clock::time_point received_;  // when the offer arrived
};

// New side: asks the proxyd listening on `path` for its sockets. On failure, `error` says why.
TakeoverGrant request_takeover(const std::string& path, std::chrono::milliseconds timeout,
                               std::string& error);

// Old side, the listening end: one connection at a time, from this process's own user (or
// root) only. Accepting is on a thread of its own; a valid request wakes the main thread by
// raising `signal`, which then calls take(), then send_offer() and the steps after it.
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

// Old side, on the main thread, in three steps (the caller logs between them and closes
// `connection` after the last):
// 1. Sends `offer` (each write bounded by offer.ok_within). False, with `error`, if it failed.
bool send_offer(int connection, const TakeoverOffer& offer, std::string& error);
// 2. Waits until `deadline` for the new proxyd's "ok" and answers it with the verdict.
enum class OkWait {
  ok,      // "draining" sent: the caller drains
  late,    // no "ok" by the deadline: "serving on" sent; wait_let_go() next
  failed,  // the connection closed, or carried something else (`error`): the caller serves on
};
OkWait await_ok(int connection, std::chrono::steady_clock::time_point deadline,
                std::string& error);
// 3. After `late`: waits up to `timeout` for the new proxyd to close the connection, which it
// does once its control socket, takeover socket and metrics listener are closed. False if it
// did not in time.
bool wait_let_go(int connection, std::chrono::milliseconds timeout);

}  // namespace proxyd
