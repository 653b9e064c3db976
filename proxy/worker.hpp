// One worker: a thread running its own single-threaded io_context, its acceptors (one per
// listener, SO_REUSEPORT), its sessions, its idle upstream connections, its PRNG and round-robin
// cursors, and one coarse timer that sweeps deadlines (one timer per worker instead of one per
// operation: docs/architecture.md, "Timeouts"). A connection accepted here is served by the
// worker with the fewest connections, which may be another one (Worker::dispatch).
// Everything here is touched only on the worker's thread, except begin_drain(), stop() and
// snapshot_published(), which post into it, and the load and accepting flags the other workers'
// accept loops read.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "log.hpp"
#include "net.hpp"
#include "memory_trim.hpp"
#include "metrics.hpp"
#include "outcome.hpp"
#include "pipe_pool.hpp"
#include "snapshot_store.hpp"
#include "split_policy.hpp"
#include "upstream_pool.hpp"

namespace proxyd {

class AccessLog;
class TlsStream;

// How long a request waits for its upstream's response head before the sweep starts checking,
// each period, whether its client hung up: a fast response is never checked (no system call).
inline constexpr std::chrono::milliseconds kClientCheckAfter{1000};

// What a deadline wakes when it fires, besides cancelling its sockets' operations: a wait on no
// socket (an HTTP/2 stream waiting for its client: signal.hpp).
class DeadlineWaiter {
 public:
  virtual void deadline_fired() = 0;

 protected:
  ~DeadlineWaiter() = default;
};

// A session's deadline, linked into its worker's list while the session lives. Set right before
// each wait; when it passes, the sweep marks it fired and cancels the session's sockets, so the
// pending operation completes with operation_aborted and the session maps it to its reply.
struct Deadline {
  Deadline* prev = nullptr;
  Deadline* next = nullptr;
  Clock::time_point at = Clock::time_point::max();
  Socket* sockets[2] = {nullptr, nullptr};
  bool fired = false;
  bool idle = false;  // waiting for the next request: closed at once when draining
  // Closed by close_idle_sessions at limits.max_connections: its place is on its way back,
  // until it ends or its next read says the close came too late (survived_room_close).
  bool closed_for_room = false;
  // The TLS over each of `sockets`, if any: cancelled with its socket (TlsStream::cancelled).
  TlsStream* tls[2] = {nullptr, nullptr};
  DeadlineWaiter* waiter = nullptr;  // woken when the deadline fires
  // Waiting for an upstream's response head since then (max: not waiting). Once that wait is
  // kClientCheckAfter old, each sweep asks the kernel whether the client (sockets[0]) hung up; if
  // it did, `client_left` is set and the upstream wait cancelled: nobody will read the answer.
  Clock::time_point head_wait_since = Clock::time_point::max();
  bool client_left = false;

  // An open tunnel (after a 101): its route and pool, in the snapshot its request holds. Once the
  // pool has left the route's slots, `drain_at` ends it, however busy it is (arm() never moves
  // it); it is cleared if the pool comes back.
  const Route* tunnel_route = nullptr;
  const Pool* tunnel_pool = nullptr;
  std::uint64_t tunnel_checked = 0;  // the snapshot version its slots were last checked against
  Clock::time_point drain_at = Clock::time_point::max();
};

// Cancels what waits on side `i` of `d` (0: the client, 1: the upstream): its socket's pending
// operations, and a TLS operation over it between two of its waits (TlsStream::cancelled).
void cancel_side(Deadline& d, std::size_t i);

// Counts running workers; drain waits on it with a deadline. Shared by the server's workers.
class WorkerLatch {
 public:
  void add() {
    std::lock_guard lock(mutex_);
    ++running_;
  }
  void done() {
    std::lock_guard lock(mutex_);
    if (--running_ == 0) idle_.notify_all();
  }
  // True when every worker finished before `deadline`.
  bool wait_until(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return idle_.wait_until(lock, deadline, [this] { return running_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int running_ = 0;
};

// Client connections open in the whole process, against limits.max_connections. Shared by the
// server's workers: each accept takes a place (try_open) and each connection's end gives it back
// (close). An accept loop that found no place says it waits (wait_begins, wait_ends) so that the
// workers closing connections wake it: both sides are sequentially consistent, so either the
// waiter sees the place freed or the closer sees the waiter.
class ConnectionLimit {
 public:
  // The limit when the config sets none, from the descriptor limit at start-up.
  explicit ConnectionLimit(std::int64_t default_max) : default_max_(default_max) {}

  // The limit in effect: the config's, else the default.
  std::int64_t max(const LimitsConfig& limits) const {
    return limits.max_connections ? static_cast<std::int64_t>(*limits.max_connections)
                                  : default_max_;
  }
  std::int64_t open() const { return open_.load(); }
  // One more connection, unless `max` are open already.
  bool try_open(std::int64_t max) {
    std::int64_t n = open_.load();
    do {
      if (n >= max) return false;
    } while (!open_.compare_exchange_weak(n, n + 1));
    return true;
  }
  // One fewer: true when some accept loop waits for a place.
  bool close() {
    open_.fetch_sub(1);
    return waiting_.load() > 0;
  }
  void wait_begins() { waiting_.fetch_add(1); }
  void wait_ends() { waiting_.fetch_sub(1); }

 private:
  const std::int64_t default_max_;
  std::atomic<std::int64_t> open_{0};
  std::atomic<int> waiting_{0};
};

// limits.max_connections when the config sets none: the descriptors of RLIMIT_NOFILE's soft limit
// after 64 kept for listeners, files and health checks, less the quarter splice pipes may take
// (pipe_pool.hpp), two per connection (the client's and an upstream's), as HAProxy derives its
// maxconn from the same limit. 24,552 under the systemd unit's LimitNOFILE=65536.
std::int64_t default_max_connections();

struct ListenerRuntime {
  const ListenerConfig* config = nullptr;  // lives in the Config the server started with
  std::string name;
  std::size_t index = 0;  // position in the config's listeners (metrics)
};

// How long, once draining, a kept-alive connection may still send one more request (answered
// with Connection: close) before it is closed.
inline constexpr std::chrono::milliseconds kDrainIdleGrace{1000};

class Worker {
 public:
  Worker(unsigned index, const SnapshotStore& store, AccessLog& access_log, WorkerLatch& latch,
         ConnectionLimit& limit);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  unsigned index() const { return index_; }
  Executor executor() { return io_->get_executor(); }

  // Adopts an acceptor bound by the Server; its accept loop starts with the thread.
  void add_acceptor(Acceptor acceptor, ListenerRuntime listener);
  // Before start(): every worker of the server, this one included, among which accepted
  // connections are spread.
  void set_peers(std::vector<Worker*> peers) { peers_ = std::move(peers); }
  // Each acceptor's listener index and socket, for a takeover (takeover.hpp). Any thread: the
  // list is fixed once the worker started, and a socket only closes when it drains.
  std::vector<std::pair<std::size_t, int>> listening_sockets();
  void start();
  void join();

  // Stops accepting, closes idle sessions, lets in-flight requests finish, then stops the
  // io_context once no session is left. Thread-safe.
  void begin_drain();
  // Stops at once (drain timeout passed). Thread-safe.
  void stop();
  // A new routing snapshot was published: a sleeping sweep wakes to follow it (metrics series,
  // idle upstream connections to keep) as a busy worker does within a period. Thread-safe.
  void snapshot_published();

  // --- used by sessions, on this worker's thread only ---
  // The current snapshot, as a pointer whose control block only this worker touches: a
  // session copies it for the life of a request without contending with other workers.
  const std::shared_ptr<const RoutingSnapshot>& snapshot();
  std::uint64_t random() { return rng_.next(); }
  std::uint64_t& rr_cursor(const Pool& pool);
  UpstreamCache& upstreams() { return upstreams_; }
  PipePool& pipes() { return pipes_; }
  WorkerMetrics& metrics() { return metrics_; }
  const WorkerMetrics& metrics() const { return metrics_; }
  bool logging() const;
  // A request ended: its outcome goes to every consumer (today the access log). Called exactly
  // once per request, also for requests cut when the worker is torn down.
  void finish(const RequestOutcome& outcome);
  bool draining() const { return draining_; }
  Clock::time_point now() const { return now_; }
  // proxyd could not accept a connection or open an upstream socket for want of its own
  // resources (out_of_local_resources): a warning with the open files limit, at most every 10 s
  // per worker and kind, so that a flood of them is a line and not one per request.
  enum class Shortage : std::uint8_t { accept, upstream };
  void warn_out_of_resources(Shortage kind, std::string_view what, const error_code& ec);
  // A TLS connection the accept loop counted in has ended its handshake (done or failed).
  void handshake_ended() { --pending_handshakes_; }
  // A client connection closed (its session ends): one fewer for the accept loops to count,
  // and a place for an accept loop waiting at limits.max_connections.
  void connection_closed();

  // Links a session's deadline, waking the sweep if it slept (quiet()).
  void link(Deadline& d);
  void unlink(Deadline& d);
  void arm(Deadline& d, std::chrono::milliseconds timeout) { arm_until(d, now_ + timeout); }
  // A read of the client's completed after its session was closed for room: the close came too
  // late (the read had its bytes), and the session goes on.
  void survived_room_close(Deadline& d) {
    d.closed_for_room = false;
    --closing_for_room_;
  }
  void arm_until(Deadline& d, Clock::time_point at) {
    d.at = at;
    d.fired = false;
  }

 private:
  Task<void> accept_loop(Acceptor& acceptor, ListenerRuntime listener);
  // The accept loop found limits.max_connections reached: makes room and waits for it.
  Task<void> wait_for_room(Acceptor& acceptor, std::int64_t max);
  // Fires the deadlines of idle sessions, those nearest their idle timeout first, until `n`
  // are on their way out (counting those closed for room before that neither ended nor survived).
  std::size_t close_idle_sessions(std::size_t n);
  // A place under limits.max_connections given back: waiting accept loops, here or in other
  // workers, are woken.
  void place_freed();
  // At each sweep while accept loops wait for room: has them look again if a close may help.
  void room_check();
  // Some connection closed while an accept loop here waits for room (this worker's thread).
  void room_freed();
  // Serves an accepted connection here, or hands it to the worker with the fewest connections.
  void dispatch(Socket socket, const tcp::endpoint& peer, const ListenerRuntime& listener);
  // Starts the session of a connection counted in load_ (this worker's thread).
  void serve(Socket socket, const tcp::endpoint& peer, const ListenerRuntime& listener);
  Task<void> sweep_loop();
  void sweep();
  // Nothing for a sweep to do until something arrives: no session (so no deadline, no log line
  // to come), no idle upstream connection, no accept loop waiting for room, no drain, the
  // access-log buffer written, and no memory to give back (MemoryTrim::settled).
  bool quiet() const;
  // Starts the sweep again if it slept, with its clock (now_) read afresh. This thread only.
  void wake();
  void keep_serving(const RoutingSnapshot& current);
  void check_tunnel(Deadline& d, const RoutingSnapshot& snapshot);
  void maybe_finish_drain();

  unsigned index_;
  const SnapshotStore& store_;
  AccessLog& access_log_;
  std::string log_buffer_;  // before io_: requests cut at teardown still log into it
  // Destroyed first, in ~Worker, while everything its sessions touch is still alive.
  std::optional<net::io_context> io_;
  WorkerLatch& latch_;
  ConnectionLimit& limit_;
  std::thread thread_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<ListenerRuntime> listeners_;
  std::shared_ptr<const RoutingSnapshot> snapshot_;  // worker-local control block, see snapshot()
  std::uint64_t snapshot_version_ = 0;
  SplitMix64 rng_;
  std::vector<std::uint64_t> rr_cursors_;  // by pool index; a reload may shuffle, harmlessly
  UpstreamCache upstreams_;
  PipePool pipes_;
  WorkerMetrics metrics_;
  // Servers whose idle connections are kept: enabled or draining servers of pools in some
  // route's slots in the current snapshot (rebuilt by snapshot() when it changes).
  std::unordered_set<const ServerState*> serving_;
  Deadline* deadlines_ = nullptr;  // head of the intrusive list of live sessions
  std::size_t sessions_ = 0;
  std::size_t pending_handshakes_ = 0;  // TLS connections accepted, handshake not ended yet
  std::vector<Worker*> peers_;
  // Client connections this worker serves, counting those handed to it and not yet started:
  // what accept loops compare. Changed by any worker's accept loop (+1) and by this worker when
  // a session ends (-1).
  std::atomic<std::int64_t> load_{0};
  // False once begin_drain() ran here: no accept loop hands a connection to it any more.
  std::atomic<bool> accepting_{true};
  MemoryTrim memory_trim_;
  Clock::time_point now_ = Clock::now();
  // By Shortage: see warn_out_of_resources.
  std::array<log::Throttle, 2> resources_warned_{log::Throttle(std::chrono::seconds(10)),
                                                 log::Throttle(std::chrono::seconds(10))};
  std::unique_ptr<SteadyTimer> sweep_timer_;
  bool asleep_ = false;  // the sweep timer waits for wake(), not for its period (quiet())
  // Accept loops waiting at limits.max_connections wait on this timer (never expiring): a
  // connection's end cancels it. room_freed_ counts those ends, so that one between a loop's
  // check and its wait is not missed; room_waiters_ counts the loops, read by other workers.
  std::unique_ptr<SteadyTimer> room_timer_;
  std::uint64_t room_freed_ = 0;
  std::size_t closing_for_room_ = 0;  // sessions closed for room, not ended (nor survived) yet
  Clock::time_point room_walked_at_{};  // now_ at close_idle_sessions' last walk
  std::atomic<int> room_waiters_{0};
  log::Throttle limit_warned_{std::chrono::seconds(10)};
  bool draining_ = false;
  bool finished_ = false;
};

}  // namespace proxyd
