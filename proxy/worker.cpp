// Worker: accept loops, the deadline sweep, and drain. See worker.hpp.
#include "worker.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "access_log.hpp"
#include "allocator.hpp"
#include "local_resources.hpp"
#include "log.hpp"
#include "passive_check.hpp"
#include "read_readiness.hpp"
#include "session.hpp"
#include "tls_stream.hpp"

namespace proxyd {
namespace {

// The sweep period: fine enough for the shortest configured timeout, coarse enough to cost
// nothing (a walk over the worker's sessions a few times a second).
std::chrono::milliseconds sweep_period(const Config& config) {
  const TimeoutsConfig& t = config.timeouts;
  auto shortest = std::min({t.client_header, t.client_idle, t.client_body, t.upstream_connect,
                            t.upstream_response, t.upstream_idle});
  return std::clamp(shortest / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(100));
}

// Whether the peer shut its side down or reset the connection, asked without reading: bytes it
// sent before (a pipelined request) stay where they are. A client that half-closes after its
// request counts as gone, as nginx counts it.
bool hung_up(Socket& socket) {
  if (!socket.is_open()) return false;
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// An ejection is rare and worth a line: one write, so lines of two workers do not mix.
void log_ejection(const Ejection& ejection) {
  log::write(LogLevel::warning, "proxyd: passive: " + ejection_text(ejection));
}

// A connection on its way to another worker: closed if that worker stops before taking it.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&&) = delete;
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The connections waiting in a listening socket's accept queue (Linux reports the queue's length
// as a listener's tcpi_unacked); 1 if the kernel does not say (an accept per event, as nginx's).
std::size_t accept_queue_length(Acceptor& acceptor) {
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(acceptor.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return 1;
  return info.tcpi_unacked;
}

}  // namespace

std::int64_t default_max_connections() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return 10'000'000;  // the largest max_connections a config may set
  const auto descriptors = static_cast<std::int64_t>(limit.rlim_cur);
  return std::max<std::int64_t>((descriptors - 64) * 3 / 8, 1);
}

Worker::Worker(unsigned index, const SnapshotStore& store, AccessLog& access_log,
               WorkerLatch& latch, ConnectionLimit& limit)
    : index_(index),
      store_(store),
      access_log_(access_log),
      io_(std::in_place, BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      latch_(latch),
      limit_(limit),
      rng_(0x5eed0000ull + index * 0x9e3779b97f4a7c15ull +
           static_cast<std::uint64_t>(Clock::now().time_since_epoch().count())) {
  log_buffer_.reserve(64 * 1024);
}

Worker::~Worker() {
  join();
  // Teardown in order: what holds sockets of io_ first, then io_ itself, whose destruction
  // destroys the sessions still suspended in it (a drain that timed out). Each of them finishes
  // its request's outcome as it goes, so the cut requests reach the access log.
  acceptors_.clear();
  sweep_timer_.reset();
  room_timer_.reset();
  upstreams_.clear();
  io_.reset();
  access_log_.write(log_buffer_);
}

bool Worker::logging() const { return access_log_.enabled(); }

void Worker::warn_out_of_resources(Shortage kind, std::string_view what, const error_code& ec) {
  wake();  // an accept that failed on a worker with no session: its clock may stand still
  if (!resources_warned_[static_cast<std::size_t>(kind)].allow(now_)) return;
  std::string text = "proxyd: worker " + std::to_string(index_) + ": " + std::string(what) +
                     ": " + ec.message();
  rlimit limit{};
  if (ec.value() == EMFILE && getrlimit(RLIMIT_NOFILE, &limit) == 0)
    text += " (open files limit " + std::to_string(limit.rlim_cur) + ")";
  log::write(LogLevel::warning, text + "; the next 10 s of these are not logged");
}

void Worker::finish(const RequestOutcome& outcome) {
  if (auto ejection = passive_check(outcome, now_.time_since_epoch().count()))
    log_ejection(*ejection);
  metrics_.count_protocol(outcome.protocol);
  if (outcome.series != nullptr) {
    WorkerMetrics::count(*outcome.series, outcome.status, outcome.total, now_);
    outcome.series->in_flight.add(-1);
  }
  for (std::size_t i = 0; i < outcome.attempt_count; ++i) {
    const AttemptRecord& attempt = outcome.attempts[i];
    if (attempt.end != AttemptEnd::ok && attempt.end != AttemptEnd::client_gone &&
        attempt.end != AttemptEnd::no_socket && attempt.server != nullptr &&
        outcome.pool != nullptr)
      metrics_.count_failure(*outcome.pool, *attempt.server, attempt.end);
  }
  if (!access_log_.enabled()) return;
  if (access_log_.json()) {
    AccessLog::format_json(log_buffer_, outcome, std::chrono::system_clock::now());
  } else {
    AccessLog::format(log_buffer_, outcome, std::chrono::system_clock::now());
  }
  if (log_buffer_.size() > 32 * 1024) access_log_.write(log_buffer_);
}

void Worker::add_acceptor(Acceptor acceptor, ListenerRuntime listener) {
  metrics_.add_listener(listener.index);
  acceptors_.push_back(std::make_unique<Acceptor>(std::move(acceptor)));
  listeners_.push_back(std::move(listener));
}

std::vector<std::pair<std::size_t, int>> Worker::listening_sockets() {
  std::vector<std::pair<std::size_t, int>> out;
  for (std::size_t i = 0; i < acceptors_.size(); ++i)
    out.emplace_back(listeners_[i].index, acceptors_[i]->native_handle());
  return out;
}

void Worker::start() {
  for (std::size_t i = 0; i < acceptors_.size(); ++i)
    net::co_spawn(*io_, accept_loop(*acceptors_[i], listeners_[i]), net::detached);
  sweep_timer_ = std::make_unique<SteadyTimer>(*io_);
  room_timer_ = std::make_unique<SteadyTimer>(*io_);
  // Set once: setting the expiry again would cancel the waits of the other listeners' loops.
  room_timer_->expires_at(Clock::time_point::max());
  net::co_spawn(*io_, sweep_loop(), net::detached);
  latch_.add();
  thread_ = std::thread([this] {
    // "proxyd-w0", "proxyd-w1", ...: a worker in `top -H` and /proc/PID/task/*/comm.
    pthread_setname_np(pthread_self(), ("proxyd-w" + std::to_string(index_)).c_str());
    io_->run();
    access_log_.write(log_buffer_);
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

const std::shared_ptr<const RoutingSnapshot>& Worker::snapshot() {
  std::uint64_t version = store_.version();
  if (version != snapshot_version_ || !snapshot_) {
    std::shared_ptr<const RoutingSnapshot> global = store_.load();
    const RoutingSnapshot* raw = global.get();
    snapshot_ = std::shared_ptr<const RoutingSnapshot>(
        raw, [keep = std::move(global)](const RoutingSnapshot*) {});
    snapshot_version_ = version;
    metrics_.follow(*snapshot_);
    keep_serving(*snapshot_);
    if (room_waiters_.load() > 0) room_freed();  // limits.max_connections may have grown
  }
  return snapshot_;
}

std::uint64_t& Worker::rr_cursor(const Pool& pool) {
  if (pool.index >= rr_cursors_.size()) rr_cursors_.resize(pool.index + 1, index_);
  return rr_cursors_[pool.index];
}

// Each time the listening socket is readable, the loop accepts the connections already in the
// backlog, up to kAcceptBatch (HAProxy's tune.maxaccept is the same kind of cap). One accept per
// turn of the worker's queue left a burst of new connections waiting while the turns were long:
// with a thousand 1 MiB responses in flight, the last of a thousand new clients waited over 2 s
// to be accepted, their requests already sent (docs/benchmarks.md, run 26). A batch of 64 was
// not enough on a faster machine, where a turn moves more bytes (each session up to its fairness
// quota): 64 accepts per turn of about 150 ms left a thousand clients 2.3 s to be all accepted,
// and a fifth of their first requests timed out (runs 77 to 79). An accept costs a system call
// and a session's set-up, far less than the turn it would otherwise wait for.
//
// A TLS listener's batch also stops once kPendingHandshakes of this worker's handshakes are
// unfinished. A handshake costs hundreds of microseconds of CPU, and a batch of them put ahead
// of the requests of connections already through theirs made those wait: under a stream of new
// TLS connections, p99 was 41 ms at 64 connections and 182 at 256, against HAProxy's 24 and 74
// (docs/benchmarks.md, run 31; 20 and 55 ms with the cap). Past the cap, new connections wait in
// the backlog and come in one per turn, as nginx's (one accept per event) do.
//
// Each accept first takes a place under limits.max_connections; with none left, the connection
// stays in the backlog until wait_for_room() made one.
Task<void> Worker::accept_loop(Acceptor& acceptor, ListenerRuntime listener) {
  constexpr std::size_t kAcceptBatch = 1024;
  constexpr std::size_t kPendingHandshakes = 4;
  const bool tls = listener.config->tls.has_value();
  error_code ec;
  acceptor.non_blocking(true, ec);  // an accept returns would_block when none is left
  for (;;) {
    auto [wait_ec] = co_await acceptor.async_wait(Acceptor::wait_read, use_task);
    if (wait_ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
    // As many accepts as connections wait: none takes a place it then finds no connection for
    // (another worker could see the limit reached meanwhile), and none ends in would_block.
    const std::size_t batch = std::min<std::size_t>(accept_queue_length(acceptor), kAcceptBatch);
    const std::int64_t max = limit_.max(snapshot()->config->limits);
    for (std::size_t n = 1; n <= batch; ++n) {
      if (draining_) co_return;
      if (!limit_.try_open(max)) {
        co_await wait_for_room(acceptor, max);
        break;  // and wait again for a connection, which a client may have given up meanwhile
      }
      Socket socket(*io_);
      tcp::endpoint peer;
      accept_connection(acceptor, socket, peer, ec);
      if (ec) {
        place_freed();
        if (ec == net::error::would_block || ec == net::error::try_again) break;
        // Out of descriptors or memory: back off briefly instead of spinning on accept.
        if (out_of_local_resources(ec))
          warn_out_of_resources(Shortage::accept,
                                "cannot accept a connection (it waits in the backlog)", ec);
        SteadyTimer pause(*io_);
        pause.expires_after(std::chrono::milliseconds(50));
        co_await pause.async_wait(use_task);
        break;
      }
      dispatch(std::move(socket), peer, listener);
      if (tls && pending_handshakes_ >= kPendingHandshakes) break;
    }
  }
}

// At limits.max_connections with a connection waiting in the backlog, nginx's way: this worker's
// idle sessions are closed until as many are on their way out as connections wait (kept-alive
// ones between requests, new ones that sent nothing yet: a client resends on a kept-alive
// connection closed before its response, RFC 9112 9.3.1), so that idle clients cannot keep new
// ones out; then the loop waits until a connection of any worker ends. HAProxy only waits; with
// nothing idle, so does proxyd.
Task<void> Worker::wait_for_room(Acceptor& acceptor, std::int64_t max) {
  wake();  // the sweep's clock paces the warning and close_idle_sessions' walks
  const std::uint64_t seen = room_freed_;
  struct Waiting {
    Worker& worker;
    explicit Waiting(Worker& w) : worker(w) {
      worker.room_waiters_.fetch_add(1);
      worker.limit_.wait_begins();
    }
    ~Waiting() {
      worker.limit_.wait_ends();
      worker.room_waiters_.fetch_sub(1);
    }
  } waiting(*this);
  if (limit_.open() < max) co_return;  // a connection ended before this loop said it waits
  const std::size_t closed = close_idle_sessions(accept_queue_length(acceptor));
  metrics_.count_limit_reached();
  if (limit_warned_.allow(now_)) {
    log::write(LogLevel::warning,
               "proxyd: worker " + std::to_string(index_) + ": limits.max_connections (" +
                   std::to_string(max) + ") reached: new connections wait in the backlog; " +
                   "closing " + std::to_string(closed) +
                   " idle connections to make room; the next 10 s of these are not logged");
  }
  if (room_freed_ != seen) co_return;
  co_await room_timer_->async_wait(use_task);
}

namespace {

// A session that may be closed to make room: waiting for a request, not fired, not closed for
// room already (an HTTP/2 connection re-arms while it says GOAWAY). An HTTP/2 connection with
// streams running has no idle deadline: not closed. Nor is a TLS connection holding part of a
// record (a request on its way).
bool closable(const Deadline& d) {
  return d.idle && !d.fired && !d.closed_for_room && d.at != Clock::time_point::max() &&
         d.sockets[0] != nullptr && d.sockets[0]->is_open() &&
         (d.tls[0] == nullptr || !d.tls[0]->has_pending());
}

}  // namespace

// Walks the sessions at most once per sweep period (now_ moves at each sweep): at the limit,
// every connection's end wakes the waiting loops, and a walk per wake-up would cost a walk of
// every session per connection. room_check() has the loops look again at the next sweep.
std::size_t Worker::close_idle_sessions(std::size_t n) {
  n = n > closing_for_room_ ? n - closing_for_room_ : 0;
  if (n == 0 || room_walked_at_ == now_) return 0;
  room_walked_at_ = now_;
  std::vector<Deadline*> idle;
  for (Deadline* d = deadlines_; d != nullptr; d = d->next) {
    if (closable(*d)) idle.push_back(d);
  }
  std::sort(idle.begin(), idle.end(),
            [](const Deadline* a, const Deadline* b) { return a->at < b->at; });
  // A session whose read took its request a moment ago, its completion not run yet, looks idle
  // and is not stopped by the cancel: its next read says it survived (survived_room_close), and
  // the sweep has the loops look again (room_check).
  std::size_t closed = 0;
  for (Deadline* d : idle) {
    if (closed == n) break;
    // Bytes in the socket are a request on its way (a connection accepted a moment ago whose
    // first read has not run yet, or a kept-alive one's next request): not idle.
    int unread = 0;
    if (::ioctl(d->sockets[0]->native_handle(), FIONREAD, &unread) == 0 && unread > 0) continue;
    d->fired = true;
    d->closed_for_room = true;
    ++closing_for_room_;
    cancel_side(*d, 0);
    ++closed;
  }
  return closed;
}

// While accept loops wait for room: if no session closed for room is still on its way out and
// some session is closable, they look again (a close that did not stop its session, or a session
// idle since they looked). Otherwise they wait for a connection to end, as before.
void Worker::room_check() {
  if (closing_for_room_ > 0) return;
  for (Deadline* d = deadlines_; d != nullptr; d = d->next) {
    if (closable(*d)) return room_freed();
  }
}

void Worker::connection_closed() {
  load_.fetch_sub(1, std::memory_order_relaxed);
  place_freed();
}

void Worker::place_freed() {
  if (!limit_.close()) return;
  for (Worker* peer : peers_) {
    if (peer->room_waiters_.load() == 0) continue;
    if (peer == this) room_freed();
    else net::post(*peer->io_, [peer] { peer->room_freed(); });
  }
}

void Worker::room_freed() {
  ++room_freed_;
  if (room_timer_) room_timer_->cancel();
}

// The kernel spreads new connections over the workers' SO_REUSEPORT sockets by a hash of their
// addresses, blind to how many each worker already serves: eight long-lived connections split
// 4 and 4 only 27% of the time, and the busier worker then set the pace (h2, 64 streams over
// 8 connections: 58,600 requests/s unevenly split, 64,000 evenly; docs/benchmarks.md, run 44).
// So each accepted connection goes to the worker with the fewest (this one when level, below), as
// HAProxy's listeners pick the least loaded thread. Handing one over costs this worker an
// epoll_ctl to let the socket go, the other a post and an epoll_ctl to take it: per connection,
// never per request.
void Worker::dispatch(Socket socket, const tcp::endpoint& peer, const ListenerRuntime& listener) {
  Worker* target = this;
  const std::int64_t own = load_.load(std::memory_order_relaxed);
  std::int64_t least = own;
  const auto consider = [&](Worker* peer) {
    if (peer == this || !peer->accepting_.load(std::memory_order_relaxed)) return;
    const std::int64_t load = peer->load_.load(std::memory_order_relaxed);
    if (load < least) {
      target = peer;
      least = load;
    }
  };
  // Up to 8 workers, every one is looked at; past that, two picked at random (the power of two
  // choices), so that an accept does not read a thousand counters.
  constexpr std::size_t kScanAll = 8;
  if (peers_.size() <= kScanAll) {
    for (Worker* peer : peers_) consider(peer);
  } else {
    for (int i = 0; i < 2; ++i) consider(peers_[rng_.next() % peers_.size()]);
  }
  // Within 1/32 of its own count, this worker keeps the connection: exact balance up to 32
  // connections a worker, and few handovers where connections come and go by the hundred (a new
  // TLS connection per request, 256 at once: moving one at every imbalance of one measured 3%
  // more CPU per request there, within that row's noise; docs/benchmarks.md, run 44).
  if (least + own / 32 >= own) target = this;
  // Counted before its accepting flag is read again, and begin_drain() clears that flag before
  // its drain reads the count (both sequentially consistent): either the target's drain waits
  // for this connection, or this worker sees that it began and keeps the connection.
  target->load_.fetch_add(1);
  if (target != this) {
    error_code ec;
    if (target->accepting_.load()) {
      const int fd = socket.release(ec);
      if (!ec) {
        net::post(*target->io_, [target, fd = OwnedFd(fd), peer, listener]() mutable {
          Socket adopted(*target->io_);
          error_code assign_ec;
          adopt_connection(adopted, peer.protocol(), fd.get(), assign_ec);
          if (assign_ec) {  // closed unserved, as a failed accept would be
            target->connection_closed();
            target->maybe_finish_drain();
            return;
          }
          fd.release();
          target->serve(std::move(adopted), peer, listener);
        });
        return;
      }
    }
    target->load_.fetch_sub(1);
    // Its drain may have counted this connection and wait for it: let it look again.
    net::post(*target->io_, [target] { target->maybe_finish_drain(); });
    load_.fetch_add(1);
  }
  serve(std::move(socket), peer, listener);
}

void Worker::serve(Socket socket, const tcp::endpoint& peer, const ListenerRuntime& listener) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  // For the reads of its requests: each says whether it left the socket empty, which spares the
  // recv() that would find nothing after every keep-alive response (read_readiness.hpp).
  report_bytes_left(socket);
  if (listener.config->tls) ++pending_handshakes_;  // Session::handshake counts it out
  net::co_spawn(*io_, run_session(*this, std::move(socket), peer, listener), net::detached);
}

Task<void> Worker::sweep_loop() {
  for (;;) {
    now_ = Clock::now();
    sweep();
    access_log_.write(log_buffer_);
    if (finished_) co_return;
    // With nothing left to watch, the timer waits for wake() instead of firing every period: an
    // idle worker makes no wake-ups (docs/architecture.md, "Timeouts").
    asleep_ = quiet();
    if (asleep_) sweep_timer_->expires_at(Clock::time_point::max());
    else sweep_timer_->expires_after(sweep_period(*snapshot()->config));
    co_await sweep_timer_->async_wait(use_task);  // cancelled by wake() or at a drain's end
    if (finished_) co_return;
  }
}

bool Worker::quiet() const {
  return deadlines_ == nullptr && !draining_ && room_waiters_.load() == 0 &&
         upstreams_.idle_count() == 0 && log_buffer_.empty() && memory_trim_.settled();
}

void Worker::wake() {
  if (!asleep_) return;
  asleep_ = false;
  now_ = Clock::now();  // the sweep's clock stood still while it slept
  sweep_timer_->cancel();
}

void Worker::snapshot_published() {
  net::post(*io_, [this] { wake(); });
}

void Worker::sweep() {
  const RoutingSnapshot& current = *snapshot();
  for (Deadline* d = deadlines_; d != nullptr; d = d->next) {
    if (d->tunnel_route != nullptr && d->tunnel_checked != snapshot_version_)
      check_tunnel(*d, current);
    if (d->head_wait_since <= now_ - kClientCheckAfter && !d->client_left &&
        d->sockets[0] != nullptr && hung_up(*d->sockets[0])) {
      d->client_left = true;
      cancel_side(*d, 1);
    }
    if ((d->at > now_ && d->drain_at > now_) || d->fired) continue;
    d->fired = true;
    cancel_side(*d, 0);
    cancel_side(*d, 1);
    if (d->waiter != nullptr) d->waiter->deadline_fired();
  }
  // Every sweep, not only on a change: a request that was in flight to a pool when it left its
  // slots hands its connection back afterwards.
  if (room_waiters_.load(std::memory_order_relaxed) > 0) room_check();
  upstreams_.close_unless(serving_);
  upstreams_.sweep(now_, current.config->timeouts.upstream_idle);
  if (memory_trim_.due(sessions_, now_)) allocator::release_free_memory();
}

// On a new snapshot: which servers' idle connections are still worth keeping. A draining server
// keeps them (running requests finish, `enable` may bring it back); a disabled one does not.
void Worker::keep_serving(const RoutingSnapshot& current) {
  serving_.clear();
  std::vector<bool> in_slot(current.pools.size(), false);
  for (const Route& route : current.routes) in_slot[route.live_pool] = in_slot[route.passive_pool] = true;
  for (const Pool& pool : current.pools) {
    if (!in_slot[pool.index]) continue;
    for (const Server& server : pool.servers) {
      if (server.admin != ServerAdmin::disabled) serving_.insert(server.state.get());
    }
  }
}

// A tunnel whose pool left its route's slots (a flip, set-live, set-passive, a reload without
// the route) closes after the route's drain; one whose pool came back keeps going.
void Worker::check_tunnel(Deadline& d, const RoutingSnapshot& current) {
  d.tunnel_checked = snapshot_version_;
  const Route* route = current.find_route(d.tunnel_route->name);
  const bool in_slot = route != nullptr &&
                       (current.pools[route->live_pool].name == d.tunnel_pool->name ||
                        current.pools[route->passive_pool].name == d.tunnel_pool->name);
  if (in_slot) {
    d.drain_at = Clock::time_point::max();
  } else if (d.drain_at == Clock::time_point::max()) {
    d.drain_at = now_ + (route != nullptr ? route->drain : d.tunnel_route->drain);
  }
}

void cancel_side(Deadline& d, std::size_t i) {
  error_code ignored;
  if (d.sockets[i] != nullptr && d.sockets[i]->is_open()) d.sockets[i]->cancel(ignored);
  if (d.tls[i] != nullptr) d.tls[i]->cancelled();
}

void Worker::link(Deadline& d) {
  wake();
  d.next = deadlines_;
  d.prev = nullptr;
  if (deadlines_ != nullptr) deadlines_->prev = &d;
  deadlines_ = &d;
  ++sessions_;
}

void Worker::unlink(Deadline& d) {
  if (d.closed_for_room) {
    --closing_for_room_;
    metrics_.count_closed_for_room();
  }
  if (d.prev != nullptr) d.prev->next = d.next;
  else deadlines_ = d.next;
  if (d.next != nullptr) d.next->prev = d.prev;
  d.prev = d.next = nullptr;
  --sessions_;
  if (draining_) maybe_finish_drain();
}

void Worker::begin_drain() {
  net::post(*io_, [this] {
    if (draining_) return;
    wake();
    draining_ = true;
    accepting_.store(false);  // before maybe_finish_drain() reads load_: see dispatch()
    for (auto& a : acceptors_) {
      // Out of this worker's epoll set before the close. After a hand-over the new proxyd holds
      // the same listening socket, and an epoll registration lasts as long as the socket, not
      // the descriptor: Asio's close of a socket it opened itself skips EPOLL_CTL_DEL, which
      // left this draining worker woken by every connection the new one accepted.
      error_code ignored;
      const int fd = a->release(ignored);
      if (fd >= 0) ::close(fd);
    }
    if (room_timer_) room_timer_->cancel();  // accept loops waiting for room end
    // Sessions waiting for their next request get kDrainIdleGrace to send it (answered with
    // Connection: close) before the sweep closes them: closing at once races a request already
    // on its way, which the client would see fail. Sessions in a request finish it and close.
    const Clock::time_point grace = now_ + kDrainIdleGrace;
    for (Deadline* d = deadlines_; d != nullptr; d = d->next) {
      if (d->idle && d->at > grace) d->at = grace;
    }
    maybe_finish_drain();
  });
}

void Worker::maybe_finish_drain() {
  if (!draining_ || sessions_ != 0 || load_.load() != 0 || finished_) return;
  finished_ = true;
  upstreams_.clear();
  if (sweep_timer_) sweep_timer_->cancel();
  latch_.done();
}

void Worker::stop() { io_->stop(); }

}  // namespace proxyd
