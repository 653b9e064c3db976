// Proxy: listener binding, worker start, drain, and every runtime change (control commands and
// reload) with its state file save and audit record. See server.hpp.
#include "server.hpp"

#include "log.hpp"
#include "metrics_text.hpp"
#include "stats.hpp"
#include "tls.hpp"

#include <boost/asio/socket_base.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>
#include <system_error>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>


namespace proxyd {
namespace {

namespace json = boost::json;
using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

unsigned configured_workers(const Config& config) {
  if (config.workers > 0) return static_cast<unsigned>(config.workers);
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string join_errors(const std::vector<ConfigError>& errors) {
  std::string text;
  for (const auto& e : errors) {
    if (!text.empty()) text += "; ";
    text += e.text();
  }
  return text;
}

bool same_listeners(const Config& a, const Config& b) {
  if (a.listeners.size() != b.listeners.size()) return false;
  for (std::size_t i = 0; i < a.listeners.size(); ++i) {
    const auto& x = a.listeners[i];
    const auto& y = b.listeners[i];
    if (x.name != y.name || x.address.text() != y.address.text() || x.slot != y.slot ||
        x.tls.has_value() != y.tls.has_value() || x.http2 != y.http2 ||
        x.http2_limits != y.http2_limits)
      return false;
  }
  return true;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// How an audit record names a server: "pool/server".
std::string server_key(const std::string& pool, const std::string& server) {
  return pool + "/" + server;
}

// The part of a status an audit record shows: the routes and servers the change is about.
json::object audit_view(const Status& status, const Touched& touched) {
  const std::set<std::string> routes(touched.routes.begin(), touched.routes.end());
  std::set<std::string> servers;
  for (const ServerRef& ref : touched.servers) servers.insert(server_key(ref.pool, ref.server));
  json::object out;
  json::object r;
  for (const RouteStatus& route : status.routes) {
    if (!routes.count(route.name)) continue;
    r[route.name] = json::object{{"live", route.live},
                                 {"passive", route.passive},
                                 {"weight", format_percent(route.weight_ppm)}};
  }
  json::object s;
  for (const PoolStatus& pool : status.pools)
    for (const ServerStatus& server : pool.servers) {
      std::string key = server_key(pool.name, server.name);
      if (servers.count(key)) s[key] = std::string(admin_name(server.admin));
    }
  if (!r.empty()) out["routes"] = std::move(r);
  if (!s.empty()) out["servers"] = std::move(s);
  return out;
}

// Who made a change, as the audit record says it: {"uid":..,"pid":..}, "signal" or "rollout".
json::value audit_by(const Caller& caller) {
  if (caller.origin == Caller::Origin::signal) return "signal";
  if (caller.origin == Caller::Origin::rollout) return "rollout";
  if (caller.origin == Caller::Origin::fleet) return "fleet";
  return json::object{{"uid", caller.uid}, {"pid", caller.pid}};
}

}  // namespace

void log_warning(const std::string& text) { log::warning(text); }

Proxy::Proxy(std::shared_ptr<const Config> config, std::shared_ptr<const RoutingSnapshot> base)
    : config_(std::move(config)),
      store_(base),
      base_(std::move(base)),
      state_store_(config_->admin.state_file),
      audit_log_(config_->admin.audit_log) {}

Proxy::~Proxy() {
  if (fleet_) fleet_->stop();  // its hooks use the rest of the Proxy
  {
    std::lock_guard lock(mutex_);
    rollout_stop_ = true;
  }
  rollout_wake_.notify_all();
  if (rollout_thread_.joinable()) rollout_thread_.join();
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  // Each worker's teardown ends sessions, which would wake the waiting accept loops of workers
  // already destroyed: none is looked for any more.
  for (auto& w : workers_) w->set_peers({});
}

std::vector<std::string> Proxy::restore(std::string& error, const TakeoverGrant* takeover) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> warnings;
  StateLoad loaded;
  if (takeover != nullptr && takeover->state()) {
    // Falling back to a file would lose the state: the old proxyd's file is written by the same
    // encoder, and this config's may be another, older one.
    std::string why;
    loaded.state = decode_state(*takeover->state(), why);
    if (!loaded.state) {
      error = "the state handed over cannot be read: " + why;
      return warnings;
    }
    const std::string& old_file = takeover->state_file();
    std::error_code ignored;
    if (old_file != state_store_.path() &&
        !std::filesystem::equivalent(old_file, state_store_.path(), ignored)) {
      if (const auto failed = state_store_.save(*loaded.state)) {
        error = "the state handed over cannot be saved: " + *failed;
        return warnings;
      }
    }
  } else {
    loaded = state_store_.load();
  }
  if (!loaded.error.empty()) {
    warnings.push_back("state file " + loaded.error +
                       (loaded.moved_to.empty() ? "" : "; moved to " + loaded.moved_to) +
                       "; starting from the config");
  }
  if (loaded.state) state_ = std::move(*loaded.state);
  // The counts a running rollout judged by did not survive the restart: it waits for a person.
  for (auto& [route, rollout] : state_.rollouts) {
    if (rollout.phase != RolloutPhase::running) continue;
    rollout.phase = RolloutPhase::paused;
    rollout.reason = "proxyd restarted during step " + std::to_string(rollout.step + 1) +
                     "; proxyctl rollout resume " + route + " starts the step again";
    warnings.push_back("route " + route + ": rollout paused at step " +
                       std::to_string(rollout.step + 1) + " (proxyd restarted)");
  }
  auto snapshot = with_runtime(*base_, state_, warnings);
  health_.update(snapshot);
  publish_locked(std::move(snapshot));
  return warnings;
}

bool Proxy::start(std::string& error, TakeoverGrant* takeover) {
  if (!access_log_.open(config_->admin.access_log, error, config_->admin.access_log_format))
    return false;
  const unsigned count = configured_workers(*config_);
  for (unsigned i = 0; i < count; ++i)
    workers_.push_back(std::make_unique<Worker>(i, store_, access_log_, latch_, limit_));

  std::size_t opened = 0;
  for (std::size_t index = 0; index < config_->listeners.size(); ++index) {
    const ListenerConfig& listener = config_->listeners[index];
    ++opened;
    error_code ec;
    auto address = net::ip::make_address(listener.address.host, ec);
    if (ec) {
      error = "listener " + listener.name + ": " + listener.address.host +
              " is not an IP address";
      return false;
    }
    std::uint16_t port = listener.address.port;
    const ListenerRuntime runtime{&listener, listener.name, index};
    // Taken over: the old proxyd's sockets, each adopted by one worker (a worker may get
    // several, or share one when there are more workers than sockets), so none is left with
    // connections nobody accepts.
    if (std::vector<int> fds = takeover != nullptr
                                   ? takeover->take(listener.name, listener.address.text())
                                   : std::vector<int>{};
        !fds.empty()) {
      const std::size_t slots = std::max(fds.size(), workers_.size());
      for (std::size_t i = 0; i < slots; ++i) {
        const int fd = i < fds.size() ? fds[i] : ::dup(fds[i % fds.size()]);
        Acceptor acceptor(workers_[i % workers_.size()]->executor());
        acceptor.assign(address.is_v6() ? tcp::v6() : tcp::v4(), fd, ec);
        if (ec) {
          ::close(fd);
          error = "listener " + listener.name + ": cannot adopt the socket taken over: " +
                  ec.message();
          return false;
        }
        port = acceptor.local_endpoint().port();
        workers_[i % workers_.size()]->add_acceptor(std::move(acceptor), runtime);
      }
      std::string shown = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
      log::info("listening " + listener.name + " " + shown + ":" + std::to_string(port) +
                " (taken over)");
      continue;
    }
    // SO_REUSEPORT would let a second proxyd on the same address share the port silently and
    // take half the connections. A plain bind first fails if anyone else is listening there.
    if (port != 0) {
      Acceptor probe(workers_.front()->executor());
      tcp::endpoint endpoint(address, port);
      probe.open(endpoint.protocol(), ec);
      if (!ec) probe.set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) probe.bind(endpoint, ec);
      if (ec) {
        error = "cannot listen on " + listener.address.text() + " (listener " + listener.name +
                "): " + ec.message();
        return false;
      }
    }
    for (auto& worker : workers_) {
      Acceptor acceptor(worker->executor());
      tcp::endpoint endpoint(address, port);
      acceptor.open(endpoint.protocol(), ec);
      if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) acceptor.set_option(ReusePort(true), ec);
      if (!ec) acceptor.bind(endpoint, ec);
      if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
      if (ec) {
        error = "cannot listen on " + listener.address.text() + " (listener " + listener.name +
                "): " + ec.message();
        return false;
      }
      // Port 0 binds an ephemeral port once; the other workers join that same port.
      port = acceptor.local_endpoint().port();
      worker->add_acceptor(std::move(acceptor), runtime);
    }
    std::string shown = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    log::info("listening " + listener.name + " " + shown + ":" + std::to_string(port));
  }
  if (opened == 0) {
    error = "no listener to open";
    return false;
  }
  // The metrics listener before any worker accepts: a start that fails here (its port taken)
  // has served no connection, so it drops none (in a takeover, the old proxyd serves on).
  if (const auto& address = config_->admin.metrics) {
    admin_ = std::make_unique<AdminListener>([this] { return metrics_text(); },
                                             [this] { return !draining_.load(); });
    if (!admin_->start(*address, error)) return false;
    log::info("listening admin.metrics " + address->host + ":" + std::to_string(admin_->port()));
  }
  std::vector<Worker*> peers;
  for (auto& worker : workers_) peers.push_back(worker.get());
  for (auto& worker : workers_) worker->set_peers(peers);
  for (auto& worker : workers_) worker->start();
  health_.start();
  rollout_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "proxyd-rollout");
    run_rollouts();
  });
  if (takeover != nullptr && !takeover->empty()) {
    std::lock_guard lock(mutex_);
    handover_ = Handover::taking;  // until the old proxyd drains: it may yet serve on
  } else if (config_->fleet) {
    start_fleet();
  }
  return true;
}

void Proxy::take_over_done() {
  {
    std::lock_guard lock(mutex_);
    handover_ = Handover::none;
  }
  if (config_->fleet) start_fleet();
}

std::optional<std::string> Proxy::handover_refusal_locked() const {
  switch (handover_) {
    case Handover::none:
      return std::nullopt;
    case Handover::giving:
      return "proxyd is handing over to a new proxyd process; ask the new one";
    case Handover::taking:
      return "proxyd is still taking over from the old proxyd process; try again";
  }
  return std::nullopt;
}

TakeoverOffer Proxy::takeover_offer() {
  TakeoverOffer offer;
  for (const ListenerConfig& listener : config_->listeners)
    offer.listeners.push_back({listener.name, listener.address.text(), {}});
  for (const auto& worker : workers_) {
    for (const auto& [index, fd] : worker->listening_sockets())
      if (index < offer.listeners.size()) offer.listeners[index].fds.push_back(fd);
  }
  std::erase_if(offer.listeners, [](const TakeoverOffer::Listener& l) { return l.fds.empty(); });
  // The address as bound: a config's port 0 is the port the kernel chose, which the new
  // proxyd's config names.
  for (TakeoverOffer::Listener& listener : offer.listeners) {
    for (const ListenerConfig& config : config_->listeners) {
      if (config.name != listener.name) continue;
      sockaddr_storage bound{};
      socklen_t size = sizeof bound;
      if (::getsockname(listener.fds.front(), reinterpret_cast<sockaddr*>(&bound), &size) != 0)
        break;
      Endpoint at = config.address;
      at.port = ntohs(bound.ss_family == AF_INET6
                          ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                          : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
      listener.address = at.text();
    }
  }
  for (const PoolStatus& pool : status().pools) {
    for (const ServerStatus& server : pool.servers)
      if (server.health == Health::healthy) offer.healthy.push_back(pool.name + "/" + server.name);
  }
  offer.ok_within = store_.load()->config->timeouts.takeover;
  std::lock_guard lock(mutex_);
  offer.state = encode_state(state_);
  offer.state_file = state_store_.path();
  return offer;
}

void Proxy::hand_over_begin() {
  {
    std::lock_guard lock(mutex_);
    handover_ = Handover::giving;
  }
  // Its port is the new proxyd's to bind; its fleet membership (the host's report) the new
  // proxyd's to keep.
  if (admin_) {
    admin_->stop();
    admin_.reset();
  }
  if (fleet_) {
    fleet_->stop();
    fleet_.reset();
  }
}

void Proxy::hand_over_abort() {
  {
    std::lock_guard lock(mutex_);
    handover_ = Handover::none;
  }
  if (config_->fleet) start_fleet();
  if (const auto& address = config_->admin.metrics) {
    std::string error;
    admin_ = std::make_unique<AdminListener>([this] { return metrics_text(); },
                                             [this] { return !draining_.load(); });
    if (!admin_->start(*address, error)) log_warning("admin.metrics: " + error);
  }
}

void Proxy::seed_health(const std::vector<std::string>& healthy) {
  const std::set<std::string> names(healthy.begin(), healthy.end());
  const std::shared_ptr<const RoutingSnapshot> snapshot = store_.load();
  for (const Pool& pool : snapshot->pools) {
    for (const Server& server : pool.servers) {
      if (server.state && names.count(pool.name + "/" + server.name) != 0)
        server.state->health.store(Health::healthy);
    }
  }
}

void Proxy::reopen_logs() {
  if (access_log_.path().empty()) return log::info("SIGUSR1: the access log is not a file");
  std::string error;
  if (!access_log_.reopen(error)) {
    return log::write(LogLevel::warning,
                      "proxyd: access log reopen failed (kept the old file): " + error);
  }
  log::info("access log reopened " + access_log_.path());
}

std::string Proxy::status_line() const {
  const auto snapshot = store_.load();
  return "generation " + std::to_string(snapshot->generation) + ", " +
         std::to_string(snapshot->routes.size()) + " routes, " +
         (draining_.load() ? "draining" : "serving");
}

std::string Proxy::metrics_text() const {
  ExpositionInput input;
  const std::shared_ptr<const RoutingSnapshot> snapshot = store_.load();
  input.snapshot = snapshot.get();
  input.max_connections = limit_.max(snapshot->config->limits);
  for (const auto& worker : workers_) input.workers.push_back(&worker->metrics());
  for (const ListenerConfig& listener : config_->listeners) {
    input.listeners.push_back(listener.name);
    input.listener_tls.push_back(listener.tls.has_value());
  }
  input.now_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  input.reloads_ok = reloads_ok_.load();
  input.reloads_failed = reloads_failed_.load();
  for (const LocalReplyInfo& info : kLocalReplies)
    input.local_replies[static_cast<std::size_t>(info.reason)] = local_reply_counters().get(info.reason);
  {
    std::lock_guard lock(mutex_);
    for (const auto& [route, rollout] : state_.rollouts) input.rollouts.push_back(rollout);
    for (const auto& [key, count] : rollout_aborts_)
      input.rollout_aborts.push_back({key.first, key.second, count});
    if (fleet_) input.fleet = fleet_member_locked();
  }
  input.version = PROXYD_VERSION;
  input.process = read_process_stats();
  return render_metrics(input);
}

bool Proxy::drain(bool service_goes_on) {
  draining_ = true;  // /ready says 503 from here on: said before the line that announces it
  if (!service_goes_on) systemd_.stopping(status_line());
  log::info("draining");
  health_.stop();
  const auto deadline = std::chrono::steady_clock::now() + store_.load()->config->timeouts.drain;
  for (auto& w : workers_) w->begin_drain();
  bool clean = latch_.wait_until(deadline);
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
  if (admin_) admin_->stop();
  return clean;
}

Status Proxy::status() const {
  std::lock_guard lock(mutex_);
  const CheckRecords records = health_.records();
  Status status = make_status(*store_.load(), state_, Moment::now(), &records);
  fill_progress_locked(status.rollouts);
  if (fleet_) status.fleet = fleet_member_locked();
  return status;
}

Stats Proxy::stats(std::chrono::seconds window) const {
  const std::shared_ptr<const RoutingSnapshot> snapshot = store_.load();
  // Series are never removed, so their addresses outlive each worker's lock.
  std::vector<const RequestSeries*> series;
  for (const auto& worker : workers_) {
    worker->metrics().visit([&](const RequestSeries& s) { series.push_back(&s); },
                            [](const FailureSeries&) {}, [](std::size_t, std::int64_t) {});
  }
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
  // The ring holds 5 minutes; the protocol allows 10 s, 1 m and 5 m only.
  return window_stats(*snapshot, series, now,
                      std::clamp<std::int64_t>(window.count(), 1, kWindowSeconds));
}

Proxy::Staged Proxy::stage(RuntimeState next, std::shared_ptr<const RoutingSnapshot> base) {
  Staged staged;
  staged.snapshot = with_runtime(*base, next, staged.warnings);
  staged.state = std::move(next);
  staged.base = std::move(base);
  return staged;
}

std::optional<std::string> Proxy::commit(Staged staged) {
  // Durable first: a change that cannot be saved is not made.
  if (auto error = state_store_.save(staged.state)) return "cannot save the state file: " + *error;
  state_ = std::move(staged.state);
  base_ = std::move(staged.base);
  health_.update(staged.snapshot);
  publish_locked(std::move(staged.snapshot));
  for (const auto& w : staged.warnings) log_warning(w);
  return std::nullopt;
}

void Proxy::publish_locked(std::shared_ptr<const RoutingSnapshot> snapshot) {
  store_.publish(std::move(snapshot));
  for (auto& w : workers_) w->snapshot_published();
  rollout_wake_.notify_all();  // a rollout may have started: the thread ticks again
}

ChangeResult Proxy::apply(const ChangeRequest& request) {
  std::lock_guard lock(mutex_);
  // A fleet member takes its routing from etcd; a change made here alone is an emergency override.
  if (config_->fleet && !request.local) {
    ChangeResult refused = ChangeResult::refused(
        "this proxyd is fleet member " + config_->fleet->host + " of " + config_->fleet->prefix +
            ": change the fleet with proxyctl fleet " + request.command +
            ", or add --local to change this host alone (reported as drift)",
        state_.generation);
    refused.touched = touched_by(*base_, state_, request.operations);
    const Status now = make_status(*store_.load(), state_);
    audit(request.caller, request.command, refused.touched, now, now, refused, request.force);
    return refused;
  }
  // A route in a rollout is the rollout's to change: refused, or with --force the rollout ends
  // (aborted, in the same change) and the command applies.
  const std::vector<std::string> held = held_routes(request);
  ChangeResult result = change_locked(request, [&](RuntimeState& next) -> std::optional<Refusal> {
    for (const std::string& route : held) {
      RolloutStatus& rollout = next.rollouts.at(route);
      if (!request.force) {
        return Refusal{"route " + route + " has a rollout " + std::string(phase_name(rollout.phase)) +
                           " (step " + std::to_string(rollout.step + 1) + " of " +
                           std::to_string(rollout.plan.steps_ppm.size()) +
                           "); pause or abort it with proxyctl rollout, or add --force to abort "
                           "it and make this change",
                       std::nullopt};
      }
      rollout.abort("manual", "aborted by a manual change with --force: " + request.command,
                    Moment::now().unix_ms);
    }
    if (config_->fleet) next.fleet_drift = true;
    return std::nullopt;
  });
  if (result.ok && fleet_) fleet_->report_changed();
  if (result.ok) {
    for (const std::string& route : held) {
      rollout_ended_locked(route, "manual");
    }
  }
  return result;
}

ChangeResult Proxy::change_locked(const ChangeRequest& request, const Edit& edit,
                                  const std::string& detail) {
  ChangeResult result;
  result.generation = state_.generation;
  result.touched = touched_by(*base_, state_, request.operations);
  const Status before = make_status(*store_.load(), state_);
  std::optional<Refusal> refusal;
  if (auto handover = handover_refusal_locked()) {
    refusal = Refusal{std::move(*handover), std::nullopt};
  } else if (request.if_generation && *request.if_generation != state_.generation) {
    refusal = Refusal{"the generation is " + std::to_string(state_.generation) + ", not " +
                          std::to_string(*request.if_generation),
                      std::nullopt};
  }
  RuntimeState next = state_;
  next.generation = state_.generation + 1;
  if (!refusal && !request.operations.empty())
    refusal = apply_operations(*base_, state_, request.operations, next);
  if (!refusal && edit) refusal = edit(next);
  std::optional<Staged> staged;
  if (!refusal) {
    staged = stage(std::move(next), base_);
    if (auto why = gate(*staged->snapshot)) {
      if (request.force) {
        result.overridden = std::move(*why);
      } else {
        refusal = Refusal{std::move(*why) + std::string(kForceHint), std::nullopt};
      }
    }
  }
  if (!refusal) {
    if (auto error = commit(std::move(*staged))) refusal = Refusal{*error, std::nullopt};
  }
  if (refusal) {
    result.error = refusal->message;
    result.failed_operation = refusal->operation;
  } else {
    result.ok = true;
    result.generation = state_.generation;
  }
  audit(request.caller, request.command, result.touched, before,
        make_status(*store_.load(), state_), result, request.force, detail);
  return result;
}

std::optional<std::string> Proxy::gate(const RoutingSnapshot& after) const {
  const std::int64_t now_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  return gate_refusal(*store_.load(), after, now_ns);
}

std::optional<std::string> Proxy::reload_locked() {
  ConfigResult loaded = load_config_file(config_->path);
  if (!loaded.errors.empty()) return join_errors(loaded.errors);
  auto config = std::make_shared<const Config>(std::move(*loaded.config));
  // Certificates and keys are read again: new handshakes get the new ones once the snapshot is
  // published; a file that fails keeps the old ones (and everything else) in use.
  TlsBuild tls = build_tls(*config);
  if (!tls.errors.empty()) return join_errors(tls.errors);
  SnapshotResult built =
      build_snapshot(config, state_.generation + 1, base_.get(), resolve_system,
                     for_running_listeners(*config_, base_->tls.get(), *config, *tls.contexts));
  if (!built.errors.empty()) return join_errors(built.errors);
  RuntimeState next = state_;
  next.generation = state_.generation + 1;
  if (auto error = commit(stage(std::move(next), std::move(built.snapshot)))) return error;
  for (const auto& w : loaded.warnings) log_warning(w.text());
  if (!same_listeners(*config_, *config) || config->workers != config_->workers ||
      config->admin.access_log != config_->admin.access_log ||
      config->admin.access_log_format != config_->admin.access_log_format ||
      config->admin.state_file != config_->admin.state_file ||
      config->admin.control_socket != config_->admin.control_socket ||
      config->fleet.has_value() != config_->fleet.has_value() ||
      config->admin.metrics.has_value() != config_->admin.metrics.has_value() ||
      (config->admin.metrics && config->admin.metrics->text() != config_->admin.metrics->text()))
    log_warning(
        "listeners, workers, access_log, state_file, control_socket, metrics and fleet changes "
        "take effect on restart");
  return std::nullopt;
}

ChangeResult Proxy::reload(const Caller& caller, std::optional<std::uint64_t> if_generation) {
  std::lock_guard lock(mutex_);
  systemd_.reloading();
  struct ReadyAgain {  // READY=1 after the reload, whatever its result
    Proxy& proxy;
    ~ReadyAgain() { proxy.systemd_.ready(proxy.status_line()); }
  } ready_again{*this};
  const Status before = make_status(*store_.load(), state_);
  std::optional<std::string> refusal;
  if (auto handover = handover_refusal_locked()) {
    refusal = *handover + "; nothing was reloaded";
  } else if (if_generation && *if_generation != state_.generation) {
    refusal = "the generation is " + std::to_string(state_.generation) + ", not " +
              std::to_string(*if_generation) + "; nothing was reloaded";
  } else {
    refusal = reload_locked();
  }
  ChangeResult result;
  result.ok = !refusal;
  if (refusal) result.error = *refusal;
  (result.ok ? reloads_ok_ : reloads_failed_).fetch_add(1);
  result.generation = state_.generation;
  // The file's values apply wherever no runtime value wins over them: say where one does.
  if (result.ok) result.overrides = runtime_diff(*base_, state_);
  if (result.ok) log::set_level(store_.load()->config->admin.log_level);
  const Status after = make_status(*store_.load(), state_);
  audit(caller, caller.origin == Caller::Origin::signal ? "SIGHUP" : "reload",
        changed_between(before, after), before, after, result);
  return result;
}

RuntimeDiff Proxy::diff() const {
  std::lock_guard lock(mutex_);
  return runtime_diff(*base_, state_);
}

std::vector<std::string> Proxy::history(std::size_t max_entries) const {
  std::lock_guard lock(mutex_);
  return audit_log_.tail(max_entries);
}

void Proxy::audit(const Caller& caller, const std::string& command, const Touched& touched,
                  const Status& before, const Status& after, const ChangeResult& result,
                  bool forced, const std::string& detail) {
  json::array routes;
  for (const std::string& route : touched.routes) routes.emplace_back(route);
  json::array servers;
  for (const ServerRef& ref : touched.servers)
    servers.emplace_back(server_key(ref.pool, ref.server));
  json::object entry{{"time", utc_now()},
                     {"by", audit_by(caller)},
                     {"command", command},
                     {"routes", std::move(routes)},
                     {"servers", std::move(servers)},
                     {"before", audit_view(before, touched)},
                     {"after", audit_view(after, touched)},
                     {"generation", result.generation},
                     {"result", result.ok ? "ok" : "refused"}};
  if (!result.ok) entry["reason"] = result.error;
  if (forced) entry["forced"] = true;
  if (!result.overridden.empty()) entry["overridden"] = result.overridden;
  if (!detail.empty()) entry["detail"] = detail;
  if (auto error = audit_log_.append(json::serialize(entry))) log_warning(*error);
}

}  // namespace proxyd
