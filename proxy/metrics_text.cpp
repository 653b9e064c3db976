// The Prometheus text exposition: see metrics_text.hpp.
#include "proxy/metrics_text.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "server_pick.hpp"

namespace proxyd {
namespace {

std::string_view slot_text(SlotName slot) { return slot == SlotName::live ? "live" : "passive"; }

// The shortest text that reads back as the same double ("0.005", "10", "1e-06").
std::string number(double value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

// Builds one metric family: HELP, TYPE, then samples.
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // `labels`: name/value pairs. `suffix`: "_bucket", "_sum", "_count" or "".
  void sample(std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
              const std::string& value, std::string_view suffix = "") {
    out_ += name_;
    out_ += suffix;
    if (labels.size() > 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [key, label] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += key;
        out_ += "=\"";
        out_ += escape_label(label);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

 private:
  std::string& out_;
  std::string_view name_;
};

// One route, slot and pool's requests, summed over the workers.
struct RequestTotals {
  std::array<std::uint64_t, RequestSeries::kCodes> by_code{};
  std::array<std::uint64_t, kDurationBuckets.size() + 1> buckets{};
  std::uint64_t duration_ns = 0;
  std::int64_t in_flight = 0;
};

using SeriesKey = std::tuple<std::string, SlotName, std::string>;

void render_requests(std::string& out, const std::map<SeriesKey, RequestTotals>& totals) {
  Family requests(out, "proxyd_requests_total", "counter",
                  "Requests routed, by route, slot, pool and the status sent (none: no response).");
  for (const auto& [key, t] : totals) {
    const auto& [route, slot, pool] = key;
    for (std::size_t code = 0; code < t.by_code.size(); ++code) {
      if (t.by_code[code] == 0) continue;
      requests.sample({{"route", route},
                       {"slot", slot_text(slot)},
                       {"pool", pool},
                       {"code", code == 0 ? "none" : std::to_string(code)}},
                      std::to_string(t.by_code[code]));
    }
  }
  Family duration(out, "proxyd_request_duration_seconds", "histogram",
                  "Time from a request's complete head to its end, by route, slot and pool.");
  for (const auto& [key, t] : totals) {
    const auto& [route, slot, pool] = key;
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < t.buckets.size(); ++b) {
      cumulative += t.buckets[b];
      const std::string le = b < kDurationBuckets.size() ? number(kDurationBuckets[b]) : "+Inf";
      duration.sample({{"route", route}, {"slot", slot_text(slot)}, {"pool", pool}, {"le", le}},
                      std::to_string(cumulative), "_bucket");
    }
    duration.sample({{"route", route}, {"slot", slot_text(slot)}, {"pool", pool}},
                     number(static_cast<double>(t.duration_ns) / 1e9), "_sum");
    duration.sample({{"route", route}, {"slot", slot_text(slot)}, {"pool", pool}},
                    std::to_string(cumulative), "_count");
  }
  std::map<std::pair<std::string, std::string>, std::int64_t> in_flight;
  for (const auto& [key, t] : totals)
    in_flight[{std::get<0>(key), std::get<2>(key)}] += t.in_flight;
  Family flight(out, "proxyd_in_flight_requests", "gauge",
                "Requests routed and not yet finished, by route and pool.");
  for (const auto& [key, n] : in_flight)
    flight.sample({{"route", key.first}, {"pool", key.second}}, std::to_string(n));
}

void render_routing(std::string& out, const RoutingSnapshot& snapshot, std::int64_t now_ns) {
  Family weight(out, "proxyd_route_weight_ratio", "gauge",
                "Share of a route's requests sent to its passive slot (0 to 1).");
  for (const Route& route : snapshot.routes)
    weight.sample({{"route", route.name}}, number(route.weight_ppm / 1e6));
  Family slots(out, "proxyd_route_slot_info", "gauge", "The pool in each slot of each route.");
  for (const Route& route : snapshot.routes) {
    slots.sample({{"route", route.name}, {"slot", "live"}, {"pool", snapshot.pools[route.live_pool].name}},
                 "1");
    slots.sample(
        {{"route", route.name}, {"slot", "passive"}, {"pool", snapshot.pools[route.passive_pool].name}},
        "1");
  }
  Family healthy(out, "proxyd_server_healthy", "gauge",
                 "1 when a server takes traffic (enabled, not unhealthy, not ejected), else 0.");
  for (const Pool& pool : snapshot.pools) {
    for (const Server& server : pool.servers)
      healthy.sample({{"pool", pool.name}, {"server", server.name}},
                     takes_traffic(server, now_ns) ? "1" : "0");
  }
  Family generation(out, "proxyd_state_generation", "gauge",
                    "The routing state's generation (proxyctl status).");
  generation.sample({}, std::to_string(snapshot.generation));
}

// Fleet members only (docs/fleet.md): alert on connected == 0 for long, or drift == 1.
void render_fleet(std::string& out, const FleetMember& fleet) {
  Family connected(out, "proxyd_fleet_connected", "gauge",
                   "1 while this fleet member reaches etcd and watches the desired state.");
  connected.sample({}, fleet.connected ? "1" : "0");
  Family revision(out, "proxyd_fleet_applied_revision", "gauge",
                  "The etcd revision of the desired state this member applied last.");
  revision.sample({}, std::to_string(fleet.applied_revision));
  Family drift(out, "proxyd_fleet_drift", "gauge",
               "1 when a --local change was made since the last applied revision.");
  drift.sample({}, fleet.drift ? "1" : "0");
}

void render_process(std::string& out, const ProcessStats& p, const std::string& version) {
  Family info(out, "proxyd_build_info", "gauge", "proxyd's version, as a label.");
  info.sample({{"version", version}}, "1");
  Family cpu(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
  cpu.sample({}, number(p.cpu_seconds));
  Family rss(out, "process_resident_memory_bytes", "gauge", "Resident memory size.");
  rss.sample({}, std::to_string(p.resident_bytes));
  Family vm(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
  vm.sample({}, std::to_string(p.virtual_bytes));
  Family fds(out, "process_open_fds", "gauge", "Open file descriptors.");
  fds.sample({}, std::to_string(p.open_fds));
  Family max_fds(out, "process_max_fds", "gauge", "The limit on open file descriptors.");
  max_fds.sample({}, std::to_string(p.max_fds));
  Family start(out, "process_start_time_seconds", "gauge",
               "Start time of the process since the Unix epoch, in seconds.");
  start.sample({}, number(p.start_time_seconds));
}

// proxyctl rollout's progress: each route's latest rollout, and the aborts since start.
void render_rollouts(std::string& out, const ExpositionInput& input) {
  Family step(out, "proxyd_rollout_step", "gauge",
              "The step a route's latest rollout is at, from 1 (routes that had a rollout).");
  for (const RolloutStatus& rollout : input.rollouts)
    step.sample({{"route", rollout.route}}, std::to_string(rollout.step + 1));
  Family state(out, "proxyd_rollout_state", "gauge",
               "1 for the phase a route's latest rollout is in, 0 for the others.");
  for (const RolloutStatus& rollout : input.rollouts) {
    for (const RolloutPhase phase : {RolloutPhase::running, RolloutPhase::paused,
                                     RolloutPhase::aborted, RolloutPhase::completed}) {
      state.sample({{"route", rollout.route}, {"state", phase_name(phase)}},
                   rollout.phase == phase ? "1" : "0");
    }
  }
  Family aborts(out, "proxyd_rollout_aborts_total", "counter",
                "Rollouts aborted since proxyd started, by route and reason (error_ratio, "
                "latency, unhealthy, manual, operator).");
  for (const ExpositionInput::RolloutAborts& a : input.rollout_aborts)
    aborts.sample({{"route", a.route}, {"reason", a.reason}}, std::to_string(a.count));
}

}  // namespace

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// TLS listeners' handshakes, completed and failed by reason (every reason, zeros included).
void render_tls(std::string& out, const ExpositionInput& input) {
  constexpr auto kReasons = static_cast<std::size_t>(TlsFailure::count_);
  std::vector<std::uint64_t> done(input.listeners.size(), 0);
  std::vector<std::array<std::uint64_t, kReasons>> failed(input.listeners.size());
  for (const WorkerMetrics* worker : input.workers) {
    worker->visit_tls([&](std::size_t listener, const TlsCounts& counts) {
      if (listener >= done.size()) return;
      done[listener] += static_cast<std::uint64_t>(counts.handshakes.get());
      for (std::size_t r = 0; r < kReasons; ++r)
        failed[listener][r] += static_cast<std::uint64_t>(counts.failures[r].get());
    });
  }
  const auto is_tls = [&](std::size_t i) { return i < input.listener_tls.size() && input.listener_tls[i]; };
  Family handshakes(out, "proxyd_tls_handshakes_total", "counter",
                    "Completed TLS handshakes, by listener.");
  for (std::size_t i = 0; i < input.listeners.size(); ++i)
    if (is_tls(i)) handshakes.sample({{"listener", input.listeners[i]}}, std::to_string(done[i]));
  Family failures(out, "proxyd_tls_handshake_failures_total", "counter",
                  "Failed TLS handshakes, by listener and reason; the connection was closed.");
  for (std::size_t i = 0; i < input.listeners.size(); ++i) {
    if (!is_tls(i)) continue;
    for (std::size_t r = 0; r < kReasons; ++r)
      failures.sample({{"listener", input.listeners[i]},
                       {"reason", tls_failure_name(static_cast<TlsFailure>(r))}},
                      std::to_string(failed[i][r]));
  }
}

std::string render_metrics(const ExpositionInput& input) {
  std::map<SeriesKey, RequestTotals> totals;
  std::map<std::tuple<std::string, std::string, std::size_t>, std::uint64_t> failures;
  std::vector<std::int64_t> connections(input.listeners.size(), 0);
  std::vector<std::int64_t> by_worker(input.workers.size(), 0);
  for (std::size_t w = 0; w < input.workers.size(); ++w) {
    input.workers[w]->visit(
        [&](const RequestSeries& s) {
          RequestTotals& t = totals[{s.route, s.slot, s.pool}];
          for (std::size_t i = 0; i < s.by_code.size(); ++i)
            t.by_code[i] += static_cast<std::uint64_t>(s.by_code[i].get());
          for (std::size_t i = 0; i < s.buckets.size(); ++i)
            t.buckets[i] += static_cast<std::uint64_t>(s.buckets[i].get());
          t.duration_ns += static_cast<std::uint64_t>(s.duration_ns.get());
          t.in_flight += s.in_flight.get();
        },
        [&](const FailureSeries& f) {
          for (std::size_t i = 0; i < f.by_end.size(); ++i) {
            if (const auto n = f.by_end[i].get(); n > 0)
              failures[{f.pool, f.server, i}] += static_cast<std::uint64_t>(n);
          }
        },
        [&](std::size_t listener, std::int64_t n) {
          if (listener < connections.size()) connections[listener] += n;
          by_worker[w] += n;
        });
  }

  std::string out;
  out.reserve(16 * 1024);
  render_requests(out, totals);
  Family failed(out, "proxyd_upstream_failures_total", "counter",
                "Failed upstream attempts, by pool, server and how they ended.");
  for (const auto& [key, n] : failures) {
    const auto& [pool, server, end] = key;
    failed.sample({{"pool", pool},
                   {"server", server},
                   {"reason", attempt_end_name(static_cast<AttemptEnd>(end))}},
                  std::to_string(n));
  }
  Family local(out, "proxyd_local_replies_total", "counter",
               "Replies proxyd made itself, by reason (docs/architecture.md, Local replies).");
  for (const LocalReplyInfo& info : kLocalReplies)
    local.sample({{"reason", info.name}},
                 std::to_string(input.local_replies[static_cast<std::size_t>(info.reason)]));
  Family active(out, "proxyd_connections_active", "gauge", "Open client connections, by listener.");
  for (std::size_t i = 0; i < input.listeners.size(); ++i)
    active.sample({{"listener", input.listeners[i]}}, std::to_string(connections[i]));
  Family per_worker(out, "proxyd_worker_connections_active", "gauge",
                    "Open client connections, by worker (each goes to the one with the fewest).");
  for (std::size_t w = 0; w < by_worker.size(); ++w)
    per_worker.sample({{"worker", std::to_string(w)}}, std::to_string(by_worker[w]));
  std::int64_t limit_reached = 0, closed_for_room = 0;
  for (const WorkerMetrics* worker : input.workers) {
    limit_reached += worker->limit_reached();
    closed_for_room += worker->closed_for_room();
  }
  Family max(out, "proxyd_max_connections", "gauge",
             "limits.max_connections: client connections open at once, at most.");
  max.sample({}, std::to_string(input.max_connections));
  Family reached(out, "proxyd_connection_limit_reached_total", "counter",
                 "Times a new connection found limits.max_connections reached and waited.");
  reached.sample({}, std::to_string(limit_reached));
  Family closed(out, "proxyd_connections_closed_for_room_total", "counter",
                "Idle client connections closed to make room at limits.max_connections.");
  closed.sample({}, std::to_string(closed_for_room));
  render_tls(out, input);
  Family protocols(out, "proxyd_requests_by_protocol_total", "counter",
                   "Requests finished, by the protocol the client spoke.");
  for (std::size_t p = 0; p < static_cast<std::size_t>(ClientProtocol::count_); ++p) {
    const auto protocol = static_cast<ClientProtocol>(p);
    std::int64_t n = 0;
    for (const WorkerMetrics* worker : input.workers) n += worker->requests_by_protocol(protocol);
    protocols.sample({{"protocol", client_protocol_name(protocol)}}, std::to_string(n));
  }
  if (input.snapshot != nullptr) render_routing(out, *input.snapshot, input.now_ns);
  Family reloads(out, "proxyd_config_reloads_total", "counter",
                 "Config reloads (SIGHUP or proxyctl reload), by result.");
  reloads.sample({{"result", "ok"}}, std::to_string(input.reloads_ok));
  reloads.sample({{"result", "failed"}}, std::to_string(input.reloads_failed));
  render_rollouts(out, input);
  if (input.fleet) render_fleet(out, *input.fleet);
  render_process(out, input.process, input.version);
  return out;
}

ProcessStats read_process_stats() {
  ProcessStats p;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name, which is in parentheses and may hold spaces.
    const auto close = line.rfind(')');
    std::istringstream rest(close == std::string::npos ? "" : line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string word; rest >> word;) f.push_back(word);
    // rest starts at field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
    const auto field = [&](std::size_t n) -> std::int64_t {
      return n - 3 < f.size() ? std::stoll(f[n - 3]) : 0;
    };
    if (ticks > 0) {
      p.cpu_seconds = static_cast<double>(field(14) + field(15)) / static_cast<double>(ticks);
      std::ifstream proc_stat("/proc/stat");
      for (std::string key; proc_stat >> key;) {
        if (key != "btime") continue;
        std::int64_t boot = 0;
        proc_stat >> boot;
        p.start_time_seconds =
            static_cast<double>(boot) + static_cast<double>(field(22)) / static_cast<double>(ticks);
        break;
      }
    }
    p.virtual_bytes = field(23);
    p.resident_bytes = field(24) * page;
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++p.open_fds;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) p.max_fds = static_cast<std::int64_t>(limit.rlim_cur);
  return p;
}

}  // namespace proxyd
