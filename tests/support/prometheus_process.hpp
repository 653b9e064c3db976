// A real Prometheus server (Debian's /usr/bin/prometheus, installed by ./setup) for integration
// tests of what proxyd exposes: it scrapes one target every second as job "proxyd", and the test
// asks it PromQL over its HTTP API, so a test sees the metrics exactly as a production Prometheus
// would (parsed text format, counters through rate(), histogram_quantile over the buckets).
// Waiting: Prometheus offers no event to wait on, so readiness and scrapes are found by polling its
// HTTP API, each wait bounded by a deadline. Prometheus is ready within a fraction of a second, but
// its first scrape comes about 5 s later (2.42 hands targets from service discovery to the scrape
// manager on a fixed 5 s tick): give wait_for_scrape() 20 s or so.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace proxyd::test {

// The Prometheus executable: $PROMETHEUS_BINARY if set, else /usr/bin/prometheus.
std::string prometheus_binary();

// Percent-encodes everything but unreserved characters (RFC 3986), for a query parameter.
std::string url_encode(std::string_view text);

// One Prometheus process on 127.0.0.1, its storage and config in a fresh temp dir.
// Owner: the test. Threads: none of its own; a member may be called from any one thread at a
// time. Lifetime: started and ready once the constructor returns (check ready(), or use start());
// the destructor SIGKILLs it by pid, reaps it and removes the temp dir (if the test failed, it
// first prints Prometheus's log). The child gets PR_SET_PDEATHSIG(SIGKILL) tied to the
// constructing thread: construct it on the test's own thread.
class PrometheusProcess {
 public:
  // Scrapes `target` ("127.0.0.1:PORT", path /metrics) every second as job "proxyd". Waits up to
  // `timeout` for GET /-/ready to answer 200; a listen port taken in the meantime (the port is
  // chosen by binding port 0 first) is retried with another.
  explicit PrometheusProcess(std::string target,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~PrometheusProcess();
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  bool ready() const { return ready_; }
  const std::string& error() const { return error_; }  // why it is not ready
  std::uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string log() const;  // what Prometheus wrote to stdout and stderr so far

  // GET /api/v1/query?query=EXPR (an instant query, now): the raw JSON body; "" when no response
  // came.
  std::string query(std::string_view expr) const;
  // The value of the first sample an instant query returns; nullopt when it returned none, failed,
  // or is not a vector.
  std::optional<double> query_value(std::string_view expr) const;
  // Polls `expr` until its first sample equals `want`; false once `timeout` has passed.
  bool wait_for_value(std::string_view expr, double want, std::chrono::milliseconds timeout) const;
  // Waits until the target was scraped successfully: `up{job="proxyd"}` is 1.
  bool wait_for_scrape(std::chrono::milliseconds timeout) const;

  // Constructs one and, if it is not ready, records a test failure with the reason and the log and
  // returns null: `auto prometheus = PrometheusProcess::start(target); ASSERT_TRUE(prometheus);`.
  static std::unique_ptr<PrometheusProcess> start(
      std::string target, std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  // Spawns on a fresh port and polls /-/ready until `deadline`; false if it exited or timed out.
  bool launch(std::chrono::steady_clock::time_point deadline);
  void stop();

  std::string target_;
  std::string dir_;
  std::uint16_t port_ = 0;
  int pid_ = -1;  // -1 once reaped: a pid is never signalled after it could have been reused
  bool ready_ = false;
  std::string error_;
};

}  // namespace proxyd::test
