// Proxy, the process: owns the workers (one io_context each), binds every listener once per
// worker (SO_REUSEPORT), holds the snapshot store and the runtime state, and implements reload
// (SIGHUP and `proxyctl reload`), drain (SIGTERM/SIGINT) and the AdminApi the control socket uses.
// Every change (control command, reload) runs under one mutex, on the caller's thread (main or
// the control thread), never on a worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "access_log.hpp"
#include "admin_api.hpp"
#include "audit_log.hpp"
#include "change_gate.hpp"
#include "config.hpp"
#include "fleet_agent.hpp"
#include "routing_snapshot.hpp"
#include "runtime_state.hpp"
#include "snapshot_store.hpp"
#include "state_store.hpp"
#include "stats.hpp"
#include "takeover.hpp"
#include "admin_listener.hpp"
#include "health_checker.hpp"
#include "notify.hpp"
#include "worker.hpp"

namespace proxyd {

// Warnings (state entries dropped, restart-only changes, a failed audit write) go to stderr
// (log::warning).
void log_warning(const std::string& text);

class Proxy final : public AdminApi {
 public:
  // `base`: the snapshot built from the config alone. The state file is applied by restore().
  Proxy(std::shared_ptr<const Config> config, std::shared_ptr<const RoutingSnapshot> base);
  ~Proxy() override;

  // Reads admin.state_file and applies it on top of the config. Problems (a corrupt file moved
  // aside, entries for routes or servers that no longer exist) are returned as warnings; proxyd
  // then starts from what is left, or from the config alone.
  // In a takeover whose old proxyd handed its state over (`takeover->state()`), that state is
  // used instead of the file, and saved first when this config's state_file is another file.
  // If it does not decode, or cannot be saved, `error` says so and nothing is applied: the
  // takeover fails and the old proxyd serves on with the state it has.
  std::vector<std::string> restore(std::string& error, const TakeoverGrant* takeover = nullptr);

  // Opens the access log, binds every listener on every worker and starts the worker threads.
  // Prints `proxyd: listening NAME ADDRESS:PORT` per listener, then `proxyd: ready`. With a
  // `takeover` grant, a listener whose name and address the old proxyd offered serves on its
  // sockets (each one adopted by one worker) instead of binding anew.
  bool start(std::string& error, TakeoverGrant* takeover = nullptr);

  // Takeover, the old side: what to hand over (every listening socket, the servers proven
  // healthy, the runtime state). hand_over_begin() stops the metrics listener, the fleet member
  // and the rollout thread's steps and refuses changes, so nothing moves once the state is
  // handed over; hand_over_abort() undoes it when the new proxyd did not take over. A new proxyd
  // that lets go (the old one serves on) calls hand_over_begin() too.
  TakeoverOffer takeover_offer();
  void hand_over_begin();
  void hand_over_abort();
  // Takeover, the new side: servers "pool/server" start healthy, as the old proxyd knew them.
  void seed_health(const std::vector<std::string>& healthy);
  // Takeover, the new side: start() with a grant refuses changes and starts no fleet member
  // until the old proxyd says it drains; then this.
  void take_over_done();

  // Prints `proxyd: draining` (from then on /ready answers 503), stops accepting, lets in-flight
  // requests finish within timeouts.drain, then stops.
  // Returns true when every request finished in time.
  // Tells systemd STOPPING=1 first, unless another proxyd serves on (`service_goes_on`: this one
  // handed its listeners over, or failed to take them over): under the unit's NotifyAccess=all
  // systemd would take that STOPPING=1 for the whole service stopping, and stop the other one.
  bool drain(bool service_goes_on = false);

  // AdminApi.
  Status status() const override;
  Stats stats(std::chrono::seconds window) const override;
  ChangeResult apply(const ChangeRequest& request) override;
  ChangeResult reload(const Caller& caller, std::optional<std::uint64_t> if_generation) override;
  RuntimeDiff diff() const override;
  std::vector<std::string> history(std::size_t max_entries) const override;
  ChangeResult rollout(const RolloutCommand& command) override;  // rollouts.cpp
  FleetView fleet_view() override;                               // fleet.cpp
  FleetWriteResult fleet_write(const FleetWrite& write) override;
  FleetWriteResult fleet_forget(const std::string& host) override;

  const Config& config() const { return *config_; }

  // SIGUSR1: the access log opens its file again (logrotate), and says so on stderr.
  void reopen_logs();
  // The one-line STATUS= for systemd: generation, routes, draining.
  std::string status_line() const;
  // Tells systemd READY=1 (Type=notify); reloads (SIGHUP or proxyctl) and drain notify on their
  // own. Nothing without NOTIFY_SOCKET.
  void notify_ready(bool took_over = false) { systemd_.ready(status_line(), took_over); }

  // The Prometheus text of GET /metrics (docs/metrics.md), from any thread.
  std::string metrics_text() const;
  unsigned worker_count() const { return static_cast<unsigned>(workers_.size()); }

 private:
  // Reads the config file, builds its snapshot and commits it with the runtime state. Caller
  // holds mutex_. Returns why it did not, or nullopt.
  std::optional<std::string> reload_locked();
  // A runtime state with the snapshot it makes on `base`, built once: the gate judges it and
  // commit() publishes it. `warnings`: entries with_runtime() dropped, logged if committed.
  struct Staged {
    RuntimeState state;
    std::shared_ptr<const RoutingSnapshot> base;
    std::shared_ptr<const RoutingSnapshot> snapshot;
    std::vector<std::string> warnings;
  };
  static Staged stage(RuntimeState next, std::shared_ptr<const RoutingSnapshot> base);
  // Saves the staged state, publishes its snapshot, and makes both current. Caller holds mutex_.
  std::optional<std::string> commit(Staged staged);
  // Makes `snapshot` the one every request loads next, and wakes what sleeps while nothing
  // changes: the workers' sweeps and the rollout thread. Caller holds mutex_.
  void publish_locked(std::shared_ptr<const RoutingSnapshot> snapshot);
  // Appends one structured record: who, the command as typed, the routes and servers it is about
  // (`touched`) and their values before and after, the generation and the result.
  // `forced`: the caller gave --force (the entry says so, and what it overrode, if anything).
  void audit(const Caller& caller, const std::string& command, const Touched& touched,
             const Status& before, const Status& after, const ChangeResult& result,
             bool forced = false, const std::string& detail = "");
  // Why the change gate (change_gate.hpp) refuses going from the published snapshot to `after`,
  // with the servers' health as it is now; nullopt when it passes. Caller holds mutex_.
  std::optional<std::string> gate(const RoutingSnapshot& after) const;

  // One change, the way every command and rollout step makes it. Caller holds mutex_. Checks the
  // generation, applies `request.operations` (none: only `edit`), lets `edit` change the next
  // state's rollouts or refuse, gates the result (unless request.force), commits and audits.
  // `detail` goes into the audit record (a rollout's figures).
  using Edit = std::function<std::optional<Refusal>(RuntimeState& next)>;
  ChangeResult change_locked(const ChangeRequest& request, const Edit& edit,
                             const std::string& detail = "");

  // Rollouts (rollouts.cpp). A running rollout's step as counted in memory: the cumulative counts
  // of both slots when the step began (and live's when the rollout began or was resumed, the
  // reference when a step gives live too few requests). Counters restart with proxyd, which is
  // why a rollout comes back paused.
  struct RolloutProgress {
    std::chrono::steady_clock::time_point step_start;
    WindowCounts live_at_step;
    WindowCounts passive_at_step;
    WindowCounts live_at_start;
  };
  // A rollout thread's tick: analysis of every active rollout, then the step, completion or abort
  // it calls for. Caller holds mutex_.
  void tick_rollouts_locked();
  // The thread: a tick every kRolloutTick while a rollout is active, until the Proxy stops.
  void run_rollouts();
  // Every worker's counts so far of `route`'s `slot` served by `pool`.
  WindowCounts slot_totals(const std::string& route, SlotName slot, const std::string& pool) const;
  // A step begins: its counts start from here; `new_reference`: so does live's reference (a
  // rollout started, resumed, or first seen after a restart).
  void begin_step_locked(const RolloutStatus& rollout, bool new_reference = false);
  // A rollout ended (completed, or aborted with `abort_code`, counted): its progress goes.
  void rollout_ended_locked(const std::string& route, const std::string& abort_code);
  // Sets the weight to 0 and ends `route`'s rollout as aborted (code, reason), as one change.
  ChangeResult abort_rollout_locked(const std::string& route, const Caller& caller,
                                    const std::string& command, const std::string& code,
                                    const std::string& reason);
  // The routes of an active rollout that `request` would change (server states do not count).
  std::vector<std::string> held_routes(const ChangeRequest& request) const;
  // held_ms and waiting_for of running rollouts, for status.
  void fill_progress_locked(std::vector<RolloutStatus>& rollouts) const;

  std::shared_ptr<const Config> config_;  // the startup config: listeners and workers live here
  SnapshotStore store_;
  AccessLog access_log_;
  WorkerLatch latch_;
  ConnectionLimit limit_{default_max_connections()};  // limits.max_connections, all workers
  std::vector<std::unique_ptr<Worker>> workers_;

  mutable std::mutex mutex_;  // serializes changes; guards the members below
  std::shared_ptr<const RoutingSnapshot> base_;  // config only, servers resolved
  RuntimeState state_;
  StateStore state_store_;
  AuditLog audit_log_;
  HealthChecker health_;  // follows every published snapshot

  SystemdNotifier systemd_;               // main thread and reload(), under mutex_ there
  std::unique_ptr<AdminListener> admin_;  // admin.metrics, when set
  std::atomic<bool> draining_{false};     // /ready answers 503 from the start of a drain
  std::atomic<std::uint64_t> reloads_ok_{0};
  std::atomic<std::uint64_t> reloads_failed_{0};

  std::map<std::string, RolloutProgress> progress_;  // by route; under mutex_
  std::map<std::pair<std::string, std::string>, std::uint64_t> rollout_aborts_;  // (route, code)
  // Under mutex_. While two proxyds hold the listeners (a takeover), changes are refused and
  // rollouts hold: `giving` on the old side (or a new one letting go), `taking` on the new side
  // until the old one says it drains.
  enum class Handover { none, giving, taking };
  Handover handover_ = Handover::none;
  std::optional<std::string> handover_refusal_locked() const;
  // Fleet mode (fleet.cpp). Applies the desired state of `revision` as one change by "fleet",
  // unless it is not newer than the one applied; "" when applied or skipped, else why not.
  std::string apply_fleet(const std::string& document, std::int64_t revision);
  std::string fleet_report() const;  // this member's report (hosts/HOST), as JSON
  FleetMember fleet_member_locked() const;
  void start_fleet();
  std::unique_ptr<FleetAgent> fleet_;  // set on a fleet member by start(); stopped first
  std::string fleet_error_;            // under mutex_: why the last revision was not applied
  std::int64_t fleet_started_ms_ = 0;  // when start_fleet() ran: the report's counts are since then

  std::condition_variable rollout_wake_;  // with mutex_: the destructor wakes the thread to stop
  bool rollout_stop_ = false;             // under mutex_
  std::thread rollout_thread_;            // started by start(), joined by the destructor
};

}  // namespace proxyd
