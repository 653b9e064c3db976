// The fleet agent of fleet_agent.hpp: one session coroutine at a time on the agent's io_context
// (register, lease, read the desired state, report, then watch while a keepalive loop renews the
// lease and refreshes the report), a backoff between sessions, and the calls other threads make
// posted onto the same io_context and waited for with a deadline.
#include "proxy/fleet_agent.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "proxy/etcd_client.hpp"
#include "proxy/rollout_json.hpp"

#include "proxy/awaitable_frames.hpp"

namespace proxyd {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
// Each etcd call's deadline: connect, request and reply.
constexpr auto kCallTimeout = 2s;
// Between sessions: from kMinBackoff, doubled after each failed attempt up to kMaxBackoff.
constexpr auto kMinBackoff = 250ms;
constexpr auto kMaxBackoff = 4s;
// The lease is renewed three times per TTL: one lost keepalive does not drop the report.
constexpr auto kKeepaliveEvery = std::chrono::milliseconds(kFleetLeaseSeconds * 1000 / 3);

void log_line(const std::string& text) {
  const std::string line = "proxyd: fleet: " + text + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::int64_t int_of(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  return 0;
}

std::string string_of(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// A member's report (fleet.cpp writes it) read back for `fleet status`.
void read_report(const std::string& text, FleetHost& host) {
  json::error_code ec;
  const json::value v = json::parse(text, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr) {
    host.error = "unreadable report";
    return;
  }
  host.revision = int_of(*o, "revision");
  host.generation = static_cast<std::uint64_t>(int_of(*o, "generation"));
  const json::value* drift = o->if_contains("drift");
  host.drift = drift != nullptr && drift->is_bool() && drift->get_bool();
  host.version = string_of(*o, "version");
  host.error = string_of(*o, "error");
  host.pools = string_of(*o, "pools");
  host.started_ms = int_of(*o, "started");
  host.counts = route_counts_from_json(o->if_contains("counts"));
}

}  // namespace

struct FleetAgent::Impl {
  Impl(const FleetConfig& config, Hooks hooks)
      : config(config),
        hooks(std::move(hooks)),
        client(io.get_executor(), config.etcd, kCallTimeout,
               etcd::Credentials{config.user, config.password},
               etcd::TlsFiles{config.tls, config.ca, config.cert, config.key}),
        desired_key(config.prefix + "/desired"),
        member_key(config.prefix + "/members/" + config.host),
        host_key(config.prefix + "/hosts/" + config.host) {}

  net::awaitable<void> run();
  net::awaitable<std::string> session();
  net::awaitable<std::string> keepalive_loop(std::shared_ptr<bool> over);
  net::awaitable<std::string> put_report(bool always);
  net::awaitable<void> apply(const etcd::KeyValue& kv);
  void set_disconnected(const std::string& why);

  // Runs `task` on the agent's thread and waits for its result at most `timeout`.
  template <class T>
  std::optional<T> call(net::awaitable<T> task, std::chrono::milliseconds timeout) {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> result = promise->get_future();
    net::co_spawn(
        io,
        [task = std::move(task), promise]() mutable -> net::awaitable<void> {
          promise->set_value(co_await std::move(task));
        },
        net::detached);
    if (result.wait_for(timeout) != std::future_status::ready) return std::nullopt;
    return result.get();
  }

  FleetConfig config;
  Hooks hooks;
  net::io_context io;
  etcd::Client client;
  const std::string desired_key;
  const std::string member_key;
  const std::string host_key;
  std::thread thread;

  // On the agent's thread only.
  std::int64_t lease = 0;
  std::string last_report;  // as last put: a report is put again only when it changed
  net::steady_timer* keepalive_timer = nullptr;  // woken by report_changed() and stop()
  net::steady_timer* backoff_timer = nullptr;
  bool stopping = false;

  // Any thread.
  std::atomic<bool> connected{false};
  mutable std::mutex mutex;  // guards the two below
  std::string error;
  std::string endpoint;
};

FleetAgent::FleetAgent(FleetConfig config, Hooks hooks)
    : config_(std::move(config)), impl_(std::make_unique<Impl>(config_, std::move(hooks))) {}

FleetAgent::~FleetAgent() { stop(); }

void FleetAgent::start() {
  net::co_spawn(impl_->io, impl_->run(), net::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void FleetAgent::stop() {
  if (!impl_->thread.joinable()) return;
  // Wake whatever the session waits on; calls in flight end at their own deadline at the latest.
  net::post(impl_->io, [impl = impl_.get()] {
    impl->stopping = true;
    impl->client.stop_watch();
    if (impl->keepalive_timer != nullptr) impl->keepalive_timer->cancel();
    if (impl->backoff_timer != nullptr) impl->backoff_timer->cancel();
  });
  impl_->thread.join();
}

bool FleetAgent::connected() const { return impl_->connected.load(); }

std::string FleetAgent::endpoint() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->endpoint;
}

std::string FleetAgent::last_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->error;
}

void FleetAgent::report_changed() {
  net::post(impl_->io, [impl = impl_.get()] {
    if (impl->keepalive_timer != nullptr) impl->keepalive_timer->cancel();
  });
}

void FleetAgent::Impl::set_disconnected(const std::string& why) {
  const bool was = connected.exchange(false);
  std::lock_guard lock(mutex);
  if (was || error != why) log_line("not connected to etcd: " + why);
  error = why;
}

net::awaitable<void> FleetAgent::Impl::run() {
  auto backoff = std::chrono::milliseconds(kMinBackoff);
  while (!stopping) {
    const std::string why = co_await session();
    if (stopping) break;
    // A session that got as far as watching had etcd: start the backoff over.
    if (connected.load()) backoff = kMinBackoff;
    set_disconnected(why);
    net::steady_timer pause(io, backoff);
    backoff_timer = &pause;
    co_await pause.async_wait(use_tuple);
    backoff_timer = nullptr;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(kMaxBackoff));
  }
  connected = false;
}

net::awaitable<void> FleetAgent::Impl::apply(const etcd::KeyValue& kv) {
  const std::string error = hooks.apply(kv.value, kv.mod_revision);
  if (!error.empty()) log_line("revision " + std::to_string(kv.mod_revision) + " not applied: " + error);
  co_await put_report(false);
}

net::awaitable<std::string> FleetAgent::Impl::put_report(bool always) {
  std::string report = hooks.report();
  if (!always && report == last_report) co_return std::string();
  const etcd::Written put = co_await client.put(host_key, report, lease);
  if (!put.error.empty()) co_return put.error;
  last_report = std::move(report);
  co_return std::string();
}

net::awaitable<std::string> FleetAgent::Impl::session() {
  // Registered without a lease: a member stays one until `proxyctl fleet forget`, so a stopped
  // member shows as down rather than vanishing.
  const json::object member{{"host", config.host}};
  if (const auto put = co_await client.put(member_key, json::serialize(member)); !put.error.empty())
    co_return put.error;
  const etcd::Lease granted = co_await client.grant(kFleetLeaseSeconds);
  if (!granted.error.empty()) co_return granted.error;
  lease = granted.id;
  // Catch up: the newest desired state first, then every revision after the one read.
  const etcd::Range desired = co_await client.range(desired_key);
  if (!desired.error.empty()) co_return desired.error;
  if (!desired.kvs.empty()) co_await apply(desired.kvs.front());
  if (std::string error = co_await put_report(true); !error.empty()) co_return error;
  connected = true;
  {
    std::lock_guard lock(mutex);
    error.clear();
    endpoint = client.endpoint();
  }
  log_line("connected to etcd " + client.endpoint() + " as " + config.host + " (desired state at revision " +
           std::to_string(desired.kvs.empty() ? 0 : desired.kvs.front().mod_revision) + ")");
  auto over = std::make_shared<bool>(false);
  auto keepalive_ended = std::make_shared<std::promise<std::string>>();
  net::co_spawn(
      io,
      [this, over, keepalive_ended]() -> net::awaitable<void> {
        const std::string why = co_await keepalive_loop(over);
        // The keepalive failed first: the watch would not notice a dead etcd; end it.
        if (!*over) client.stop_watch();
        keepalive_ended->set_value(why);
      },
      net::detached);
  // stop() may have come while this session was connecting: it found no watch to end. (An if,
  // not `?:`: GCC 12 destroys a temporary twice around a co_await inside a conditional.)
  const etcd::Client::OnEvent on_event = [this](const etcd::Event& event) -> net::awaitable<void> {
    if (event.deleted) {
      log_line("the desired state was deleted; keeping the state applied last");
      co_return;
    }
    co_await apply(event.kv);
  };
  std::string why = "stopping";
  if (!stopping) why = co_await client.watch(desired_key, desired.revision + 1, on_event);
  *over = true;
  if (keepalive_timer != nullptr) keepalive_timer->cancel();
  // Wait for the keepalive loop to leave (at most one call's deadline) so that two sessions never
  // share the lease or the report.
  std::future<std::string> ended = keepalive_ended->get_future();
  while (ended.wait_for(0s) != std::future_status::ready) {
    net::steady_timer tick(io, 10ms);
    co_await tick.async_wait(use_tuple);
  }
  const std::string keepalive_why = ended.get();
  if (why == "compacted") why = "the watch fell behind etcd's compaction; reading again";
  co_return keepalive_why.empty() ? why : keepalive_why;
}

net::awaitable<std::string> FleetAgent::Impl::keepalive_loop(std::shared_ptr<bool> over) {
  while (!*over && !stopping) {
    net::steady_timer timer(io, kKeepaliveEvery);
    keepalive_timer = &timer;
    co_await timer.async_wait(use_tuple);  // cancelled: report_changed(), or the session ends
    keepalive_timer = nullptr;
    if (*over || stopping) break;
    const etcd::Lease kept = co_await client.keepalive(lease);
    if (!kept.error.empty()) co_return kept.error;
    if (kept.ttl == 0) co_return "the lease expired";
    if (std::string error = co_await put_report(false); !error.empty()) co_return error;
  }
  co_return std::string();
}

FleetView FleetAgent::view(std::chrono::milliseconds timeout) {
  auto task = [](Impl& impl) -> net::awaitable<FleetView> {
    FleetView out;
    const etcd::Range members = co_await impl.client.range(impl.config.prefix + "/members/", true);
    const etcd::Range hosts = co_await impl.client.range(impl.config.prefix + "/hosts/", true);
    const etcd::Range desired = co_await impl.client.range(impl.desired_key);
    for (const std::string* error : {&members.error, &hosts.error, &desired.error}) {
      if (!error->empty()) {
        out.error = "cannot read the fleet from etcd: " + *error;
        co_return out;
      }
    }
    if (!desired.kvs.empty()) {
      out.desired_revision = desired.kvs.front().mod_revision;
      out.desired = desired.kvs.front().value;
    }
    std::map<std::string, FleetHost> by_name;
    const std::size_t members_at = impl.config.prefix.size() + 9;  // "/members/"
    for (const etcd::KeyValue& kv : members.kvs) {
      FleetHost& host = by_name[kv.key.substr(members_at)];
      host.member = true;
    }
    const std::size_t hosts_at = impl.config.prefix.size() + 7;  // "/hosts/"
    for (const etcd::KeyValue& kv : hosts.kvs) {
      FleetHost& host = by_name[kv.key.substr(hosts_at)];
      host.up = true;
      read_report(kv.value, host);
    }
    for (auto& [name, host] : by_name) {
      host.host = name;
      out.hosts.push_back(std::move(host));
    }
    co_return out;
  };
  std::optional<FleetView> result = impl_->call(task(*impl_), timeout);
  if (!result) {
    FleetView late;
    late.error = "etcd did not answer within " + std::to_string(timeout.count()) + "ms";
    return late;
  }
  return std::move(*result);
}

FleetWriteResult FleetAgent::write(std::optional<std::int64_t> if_revision, const Edit& edit,
                                   std::chrono::milliseconds timeout) {
  auto task = [](Impl& impl, std::optional<std::int64_t> if_revision,
                 Edit edit) -> net::awaitable<FleetWriteResult> {
    FleetWriteResult out;
    const etcd::Range read = co_await impl.client.range(impl.desired_key);
    if (!read.error.empty()) {
      out.error = "cannot read the desired state from etcd: " + read.error;
      co_return out;
    }
    const std::int64_t revision = read.kvs.empty() ? 0 : read.kvs.front().mod_revision;
    if (if_revision && *if_revision != revision) {
      out.error = "the desired state is at revision " + std::to_string(revision) + ", not " +
                  std::to_string(*if_revision) + "; nothing was written";
      co_return out;
    }
    Desired desired;
    if (!read.kvs.empty()) {
      std::string error;
      std::optional<Desired> decoded = decode_desired(read.kvs.front().value, error);
      if (!decoded) {
        out.error = "the desired state in etcd is not valid (" + error + "); nothing was written";
        co_return out;
      }
      desired = std::move(*decoded);
    }
    if (std::optional<std::string> refused = edit(desired)) {
      out.error = std::move(*refused);
      co_return out;
    }
    const etcd::Written written =
        co_await impl.client.put_if_revision(impl.desired_key, encode_desired(desired), revision);
    if (!written.error.empty()) {
      out.error = "cannot write the desired state to etcd: " + written.error;
    } else if (!written.succeeded) {
      out.error = "the desired state changed while this command ran (it was at revision " +
                  std::to_string(revision) + "); nothing was written, try again";
    } else {
      out.revision = written.revision;
    }
    co_return out;
  };
  std::optional<FleetWriteResult> result = impl_->call(task(*impl_, if_revision, edit), timeout);
  if (!result) {
    // The write may still land after this: say so rather than "nothing was written".
    return FleetWriteResult{"etcd did not answer within " + std::to_string(timeout.count()) +
                                "ms; the write may or may not have been made (proxyctl fleet status)",
                            0};
  }
  return std::move(*result);
}

FleetWriteResult FleetAgent::forget(const std::string& host, std::chrono::milliseconds timeout) {
  auto task = [](Impl& impl, std::string host) -> net::awaitable<FleetWriteResult> {
    FleetWriteResult out;
    const etcd::Range member = co_await impl.client.range(impl.config.prefix + "/members/" + host);
    if (!member.error.empty()) {
      out.error = "cannot read the members from etcd: " + member.error;
      co_return out;
    }
    if (member.kvs.empty()) {
      out.error = "no member named " + host;
      co_return out;
    }
    const etcd::Written removed = co_await impl.client.remove(impl.config.prefix + "/members/" + host);
    if (!removed.error.empty()) out.error = "cannot delete from etcd: " + removed.error;
    out.revision = removed.revision;
    co_return out;
  };
  std::optional<FleetWriteResult> result = impl_->call(task(*impl_, host), timeout);
  if (!result) return FleetWriteResult{"etcd did not answer in time", 0};
  return std::move(*result);
}

}  // namespace proxyd
