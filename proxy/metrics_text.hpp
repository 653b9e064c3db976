// The Prometheus text exposition (format 0.0.4) of docs/metrics.md: the workers' request and
// failure counts summed, gauges read from the published snapshot and the servers' shared state,
// and the process collector. Written by hand rather than with prometheus-cpp (measured and
// argued in docs/architecture.md, "Metrics"): the counts are per worker already, so what is left
// is summing and formatting, in one pass.
// Pure but for read_process_stats().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "admin_types.hpp"
#include "local_reply.hpp"
#include "metrics.hpp"
#include "routing_snapshot.hpp"

namespace proxyd {

struct ProcessStats {
  double cpu_seconds = 0;
  std::int64_t resident_bytes = 0;
  std::int64_t virtual_bytes = 0;
  std::int64_t open_fds = 0;
  std::int64_t max_fds = 0;
  double start_time_seconds = 0;  // since the Unix epoch
};

// From /proc/self (stat, fd) and getrlimit; fields it cannot read stay 0.
ProcessStats read_process_stats();

struct ExpositionInput {
  const RoutingSnapshot* snapshot = nullptr;
  std::vector<const WorkerMetrics*> workers;
  std::vector<std::string> listeners;  // names, by listener index
  std::vector<bool> listener_tls;      // by listener index: terminates TLS
  std::int64_t max_connections = 0;    // limits.max_connections in effect (set or derived)
  std::int64_t now_ns = 0;             // steady clock, for ejections
  std::uint64_t reloads_ok = 0;
  std::uint64_t reloads_failed = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(LocalReason::count_)> local_replies{};
  std::string version;
  ProcessStats process;
  std::vector<RolloutStatus> rollouts;  // each route's latest
  struct RolloutAborts {
    std::string route;
    std::string reason;
    std::uint64_t count = 0;
  };
  std::vector<RolloutAborts> rollout_aborts;
  std::optional<FleetMember> fleet;  // a fleet member's link to etcd
};

std::string render_metrics(const ExpositionInput& input);

// A label value with `\`, `"` and newlines escaped, as the text format requires.
std::string escape_label(std::string_view value);

}  // namespace proxyd
