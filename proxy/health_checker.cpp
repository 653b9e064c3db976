// The active health checker of health_checker.hpp: one coroutine per checked server on the
// checker's own io_context. Each check connects (to each of the server's addresses in turn),
// sends one GET with Connection: close, reads the response head and closes, all within the pool's
// timeout; off the request path, so it uses Asio's default executor and a timer per check.
#include "proxy/health_checker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <pthread.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>

#include "proxy/header_transform.hpp"
#include "proxy/local_resources.hpp"
#include "proxy/log.hpp"
#include "proxy/split_policy.hpp"
#include "proxy/tls.hpp"
#include "proxy/upstream_pool.hpp"

#include "proxy/awaitable_frames.hpp"

namespace proxyd {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using namespace net::experimental::awaitable_operators;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// A check reads at most this much of the response: the head, never the body.
constexpr std::size_t kMaxHead = 16 * 1024;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void log_line(LogLevel level, const std::string& text) {
  log::write(level, "proxyd: health: " + text);
}

}  // namespace

bool status_expected(unsigned status, const std::vector<StatusRange>& expect) {
  for (const StatusRange& range : expect)
    if (status >= range.first && status <= range.last) return true;
  return false;
}

std::optional<unsigned> status_of(std::string_view head) {
  // "HTTP/1.x NNN" then a space or the end of the line.
  if (head.size() < 12 || !head.starts_with("HTTP/1.") || head[8] != ' ') return std::nullopt;
  unsigned status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return std::nullopt;
    status = status * 10 + static_cast<unsigned>(head[i] - '0');
  }
  if (head.size() > 12 && head[12] != ' ' && head[12] != '\r') return std::nullopt;
  if (status < 100) return std::nullopt;
  return status;
}

Health next_health(Health current, int passes, int failures, int rise, int fall) {
  if (current != Health::healthy && passes >= rise) return Health::healthy;
  if (current != Health::unhealthy && failures >= fall) return Health::unhealthy;
  return current;
}

// One server's checks. Owner: the checker's map (and its running coroutine, which holds a
// reference). Thread: the checker's only.
struct Target {
  std::shared_ptr<ServerState> state;
  std::string pool;
  std::string server;
  std::vector<ResolvedAddress> addresses;
  HealthConfig config;
  std::string request;  // the GET, built once
  Duration first_delay{0};

  bool stopped = false;
  int passes = 0;
  int failures = 0;
  Health seen = Health::unchecked;  // the health this target last set or saw
  std::shared_ptr<const ClientTls> tls;  // a pool with `tls`: checks speak TLS, as requests do
  tcp::socket* socket = nullptr;    // the check in progress, cancelled by stop
  net::steady_timer* timer = nullptr;

  bool same_as(const Target& other) const {
    return config == other.config && addresses == other.addresses && request == other.request &&
           tls == other.tls;
  }
};

struct HealthChecker::Impl {
  net::io_context io{1};
  net::executor_work_guard<net::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  std::unordered_map<const ServerState*, std::shared_ptr<Target>> targets;  // checker thread only

  mutable std::mutex records_mutex;
  CheckRecords records;  // guarded by records_mutex
  log::Throttle skipped_warned{std::chrono::seconds(10)};  // checks not run (checker thread)

  void apply(std::shared_ptr<const RoutingSnapshot> snapshot);
  net::awaitable<void> run(std::shared_ptr<Target> target);
  net::awaitable<CheckResult> check(Target& target);
  template <class Stream>
  net::awaitable<CheckResult> exchange(Stream& stream, Target& target, net::steady_timer& deadline);
  void record(Target& target, const CheckResult& result);
  void stop_target(Target& target);
};

HealthChecker::HealthChecker() : impl_(std::make_unique<Impl>()) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "proxyd-health");
    impl_->io.run();
  });
}

void HealthChecker::stop() {
  if (!impl_->thread.joinable()) return;
  net::post(impl_->io, [this] {
    for (auto& [key, target] : impl_->targets) impl_->stop_target(*target);
    impl_->targets.clear();
    impl_->work.reset();
  });
  impl_->thread.join();
}

void HealthChecker::update(std::shared_ptr<const RoutingSnapshot> snapshot) {
  net::post(impl_->io, [this, snapshot = std::move(snapshot)] { impl_->apply(snapshot); });
}

CheckRecords HealthChecker::records() const {
  std::lock_guard lock(impl_->records_mutex);
  return impl_->records;
}

void HealthChecker::Impl::apply(std::shared_ptr<const RoutingSnapshot> snapshot) {
  std::set<const ServerState*> wanted;
  // Every checked server gets its own place in its interval, counted over all pools, so
  // neither a large pool nor many small ones are checked all at once.
  std::size_t checked = 0;
  for (const Pool& pool : snapshot->pools) checked += pool.health ? pool.servers.size() : 0;
  std::size_t place = 0;
  for (const Pool& pool : snapshot->pools) {
    if (!pool.health) continue;
    const auto interval = pool.health->interval;
    for (std::size_t i = 0; i < pool.servers.size(); ++i) {
      const Server& server = pool.servers[i];
      auto target = std::make_shared<Target>();
      target->state = server.state;
      target->pool = pool.name;
      target->server = server.name;
      target->addresses.push_back(server.address);
      target->addresses.insert(target->addresses.end(), server.fallback_addresses.begin(),
                               server.fallback_addresses.end());
      target->config = *pool.health;
      const std::string& host = pool.health->host.empty() ? server.name : pool.health->host;
      target->request = "GET " + pool.health->path + " HTTP/1.1\r\nHost: " + host +
                        "\r\nUser-Agent: proxyd-health-check\r\nConnection: close\r\n\r\n";
      target->first_delay =
          interval * static_cast<long>(place++) / static_cast<long>(checked);
      target->seen = server.state->health.load();
      if (snapshot->tls) target->tls = snapshot->tls->pool_shared(pool.name);
      const ServerState* key = server.state.get();
      wanted.insert(key);
      auto it = targets.find(key);
      if (it != targets.end()) {
        if (it->second->same_as(*target)) continue;
        stop_target(*it->second);
      }
      targets[key] = target;
      net::co_spawn(io, run(target), net::detached);
    }
  }
  for (auto it = targets.begin(); it != targets.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    stop_target(*it->second);
    {
      std::lock_guard lock(records_mutex);
      records.erase(it->first);
    }
    it = targets.erase(it);
  }
}

void HealthChecker::Impl::stop_target(Target& target) {
  target.stopped = true;
  error_code ignored;
  if (target.socket != nullptr) target.socket->close(ignored);
  if (target.timer != nullptr) target.timer->cancel();
}

net::awaitable<void> HealthChecker::Impl::run(std::shared_ptr<Target> target) {
  net::steady_timer pause(io);
  target->timer = &pause;
  Duration wait = target->first_delay;
  for (;;) {
    if (wait.count() > 0) {
      pause.expires_after(wait);
      co_await pause.async_wait(use_tuple);
    }
    if (target->stopped) break;
    const CheckResult result = co_await check(*target);
    if (target->stopped) break;
    record(*target, result);
    wait = target->config.interval;
  }
  target->timer = nullptr;
}

// Intent: one check within the pool's timeout: connect to each address in turn, send the GET,
// read up to the end of the response head.
net::awaitable<CheckResult> HealthChecker::Impl::check(Target& target) {
  tcp::socket socket(io);
  target.socket = &socket;
  struct Forget {
    Target& target;
    ~Forget() { target.socket = nullptr; }
  } forget{target};
  net::steady_timer deadline(io);
  deadline.expires_after(target.config.timeout);

  error_code failure;
  bool connected = false;
  for (const ResolvedAddress& address : target.addresses) {
    if (socket.is_open()) socket.close(failure);
    auto outcome = co_await (socket.async_connect(to_endpoint(address), use_tuple) ||
                             deadline.async_wait(use_tuple));
    if (outcome.index() == 1 || target.stopped) co_return CheckResult{false, "timeout"};
    failure = std::get<0>(std::get<0>(outcome));
    if (!failure) {
      connected = true;
      break;
    }
    if (out_of_local_resources(failure)) {
      co_return CheckResult{false, "not run: cannot open a socket: " + failure.message(), true};
    }
  }
  if (!connected) {
    if (failure == net::error::connection_refused) co_return CheckResult{false, "connect refused"};
    co_return CheckResult{false, "connect: " + failure.message()};
  }

  if (!target.tls) co_return co_await exchange(socket, target, deadline);
  // The pool's TLS: the same SNI, verification and host check as its requests get.
  SSL* ssl = target.tls->new_connection(target.server);
  if (ssl == nullptr) co_return CheckResult{false, "TLS: cannot make a connection"};
  net::ssl::stream<tcp::socket&> tls(socket, ssl);
  auto shaken = co_await (tls.async_handshake(net::ssl::stream_base::client, use_tuple) ||
                          deadline.async_wait(use_tuple));
  if (shaken.index() == 1) co_return CheckResult{false, "timeout"};
  if (const error_code ec = std::get<0>(std::get<0>(shaken)))
    co_return CheckResult{false, "TLS handshake: " + ec.message()};
  co_return co_await exchange(tls, target, deadline);
}

// Intent: the check's request and the response head, on a connected stream (plain or TLS),
// within the same deadline.
template <class Stream>
net::awaitable<CheckResult> HealthChecker::Impl::exchange(Stream& socket, Target& target,
                                                          net::steady_timer& deadline) {
  const auto timed_out = [&] { return deadline.expiry() <= net::steady_timer::clock_type::now(); };
  auto sent = co_await (net::async_write(socket, net::buffer(target.request), use_tuple) ||
                        deadline.async_wait(use_tuple));
  if (sent.index() == 1) co_return CheckResult{false, "timeout"};
  if (std::get<0>(std::get<0>(sent))) co_return CheckResult{false, "send failed"};

  std::array<char, kMaxHead> head{};
  std::size_t got = 0;
  std::size_t scanned = 0;
  for (;;) {
    auto read = co_await (socket.async_read_some(net::buffer(head.data() + got, head.size() - got),
                                                 use_tuple) ||
                          deadline.async_wait(use_tuple));
    if (read.index() == 1 || timed_out()) co_return CheckResult{false, "timeout"};
    const auto [ec, n] = std::get<0>(read);
    got += n;
    const HeadScan scan = scan_head(std::string_view(head.data(), got), scanned);
    if (scan.state == HeadScan::State::complete || (ec && got > 0)) break;
    if (scan.state == HeadScan::State::bare_lf || scan.state == HeadScan::State::obs_fold)
      co_return CheckResult{false, "bad response"};
    if (ec) co_return CheckResult{false, "closed without a response"};
    if (got == head.size()) co_return CheckResult{false, "bad response"};
  }
  const std::optional<unsigned> status = status_of(std::string_view(head.data(), got));
  if (!status) co_return CheckResult{false, "bad response"};
  co_return CheckResult{status_expected(*status, target.config.expect), std::to_string(*status)};
}

void HealthChecker::Impl::record(Target& target, const CheckResult& result) {
  ServerState& state = *target.state;
  const std::int64_t now = unix_ms_now();
  if (result.skipped) {  // shown as the last check; no pass, no failure
    {
      std::lock_guard lock(records_mutex);
      CheckRecord& r = records[target.state.get()];
      r.last_check = result.text;
      r.last_check_at = now;
    }
    if (skipped_warned.allow(std::chrono::steady_clock::now())) {
      log_line(LogLevel::warning, "pool " + target.pool + " server " + target.server + ": check " +
                                      result.text + "; health unchanged (the next 10 s of these " +
                                      "are not logged)");
    }
    return;
  }
  // Someone else moved it (a passive ejection marks a checked server unhealthy): count afresh,
  // so coming back takes `rise` passes from now.
  const Health current = state.health.load();
  if (current != target.seen) target.passes = target.failures = 0;
  if (result.passed) {
    ++target.passes;
    target.failures = 0;
  } else {
    ++target.failures;
    target.passes = 0;
  }
  const Health next =
      next_health(current, target.passes, target.failures, target.config.rise, target.config.fall);
  {
    std::lock_guard lock(records_mutex);
    CheckRecord& r = records[target.state.get()];
    r.last_check = result.text;
    r.last_check_at = now;
    if (next != current || r.health_since == 0) r.health_since = now;
  }
  if (log::enabled(LogLevel::debug)) {
    log_line(LogLevel::debug, "pool " + target.pool + " server " + target.server + " check " +
                                  (result.passed ? "passed" : "failed") + ": " + result.text);
  }
  if (next != current) {
    state.health.store(next);
    // A server going down is worth a warning; one coming back, information.
    log_line(next == Health::healthy ? LogLevel::info : LogLevel::warning,
             "pool " + target.pool + " server " + target.server + " is " +
             std::string(health_name(next)) + " (" +
             std::to_string(next == Health::healthy ? target.passes : target.failures) + " " +
             (result.passed ? "passed" : "failed") + " checks in a row, last: " + result.text +
             ")");
  }
  target.seen = next;
}

}  // namespace proxyd
