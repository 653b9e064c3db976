// The fleet agent: this proxyd's link to etcd (docs/fleet.md). It registers the member
// (PREFIX/members/HOST, no lease), keeps the member's report (PREFIX/hosts/HOST) on a lease,
// watches PREFIX/desired and hands every new revision to the Proxy, which applies it as one change.
// When etcd is unreachable it says so, keeps retrying with a growing backoff, and on reconnecting
// reads the desired state again before watching, so it catches up with the newest revision.
// Owner: Proxy. Thread: its own (one io_context), never a worker's; the hooks run on it.
// status(), write(), forget() and report_changed() may be called from any thread. Lifetime:
// start() once; stop() or the destructor ends the session and joins the thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/admin_types.hpp"
#include "proxy/config.hpp"
#include "proxy/fleet_desired.hpp"

namespace proxyd {

// A member's lease: its report disappears this long after the member stops renewing it.
inline constexpr std::int64_t kFleetLeaseSeconds = 5;

class FleetAgent {
 public:
  struct Hooks {
    // Applies the document of `revision`; "" when applied (or not newer than what is applied),
    // else why not.
    std::function<std::string(const std::string& document, std::int64_t revision)> apply;
    // The member's report as stored under hosts/ (JSON), built when it is put.
    std::function<std::string()> report;
  };

  FleetAgent(FleetConfig config, Hooks hooks);
  ~FleetAgent();
  FleetAgent(const FleetAgent&) = delete;
  FleetAgent& operator=(const FleetAgent&) = delete;

  void start();
  void stop();

  bool connected() const;
  std::string endpoint() const;
  std::string last_error() const;  // why etcd is not reached ("" while connected)

  // Reads members, reports and the desired state; waits at most `timeout`.
  FleetView view(std::chrono::milliseconds timeout);
  // Reads the desired state, refuses unless its revision is `if_revision` (when given), lets
  // `edit` change it (or refuse), writes it with a compare-and-swap on the revision read.
  using Edit = std::function<std::optional<std::string>(Desired&)>;
  FleetWriteResult write(std::optional<std::int64_t> if_revision, const Edit& edit,
                         std::chrono::milliseconds timeout);
  // Deletes `host`'s registration (and its report, if any).
  FleetWriteResult forget(const std::string& host, std::chrono::milliseconds timeout);
  // The report changed (a revision applied, a --local change): put it now.
  void report_changed();

  const FleetConfig& config() const { return config_; }

 private:
  struct Impl;
  FleetConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proxyd
