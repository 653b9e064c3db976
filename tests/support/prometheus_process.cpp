// The Prometheus harness: fork/exec with the output in a log file in the temp dir (no pipe to
// drain, and the file is there to print when a test fails), readiness by polling /-/ready, queries
// through HttpClient's fetch() and Boost.JSON.
#include "tests/support/prometheus_process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"
#include "tests/support/spawn.hpp"

namespace proxyd::test {

namespace {

using Clock = std::chrono::steady_clock;

// Between two polls of Prometheus's API. There is no event to wait on; each wait has a deadline.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// A bind race (another process took the port between unused_port() and Prometheus's bind) is
// retried this many times with a new port.
constexpr int kLaunchAttempts = 3;

// Scrape and evaluate every second so a test waits seconds, not the default minute; the scrape
// timeout may not exceed the interval.
std::string config_for(const std::string& target) {
  return "global:\n"
         "  scrape_interval: 1s\n"
         "  scrape_timeout: 1s\n"
         "  evaluation_interval: 1s\n"
         "scrape_configs:\n"
         "  - job_name: proxyd\n"
         "    static_configs:\n"
         "      - targets: ['" +
         target + "']\n";
}

}  // namespace

std::string prometheus_binary() {
  const char* env = std::getenv("PROMETHEUS_BINARY");
  return env && *env ? std::string(env) : std::string("/usr/bin/prometheus");
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

PrometheusProcess::PrometheusProcess(std::string target, std::chrono::milliseconds timeout)
    : target_(std::move(target)), dir_(make_temp_dir("proxyd-prom")) {
  {
    std::ofstream out(dir_ + "/prometheus.yml");
    out << config_for(target_);
  }
  const auto deadline = Clock::now() + timeout;
  for (int attempt = 0; attempt < kLaunchAttempts && !ready_; ++attempt) {
    if (launch(deadline)) ready_ = true;
    if (Clock::now() >= deadline) break;
  }
}

PrometheusProcess::~PrometheusProcess() {
  stop();
  if (::testing::Test::HasFailure()) {
    std::cerr << "--- prometheus log (" << dir_ << "/prometheus.log) ---\n" << log() << "---\n";
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool PrometheusProcess::launch(Clock::time_point deadline) {
  const std::string binary = prometheus_binary();
  if (::access(binary.c_str(), X_OK) != 0) {
    error_ = binary + " is not installed: ./setup deps installs the Debian package prometheus";
    return false;
  }
  port_ = unused_port();
  const std::vector<std::string> args = {
      binary,
      "--config.file=" + dir_ + "/prometheus.yml",
      "--storage.tsdb.path=" + dir_ + "/data",
      "--web.listen-address=127.0.0.1:" + std::to_string(port_),
  };
  const int pid = spawn_logged(args, dir_ + "/prometheus.log", error_);
  if (pid < 0) return false;
  pid_ = pid;

  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "prometheus exited before it was ready (status " + std::to_string(status) +
               "): see its log";
      return false;
    }
    if (fetch(port_, "/-/ready", {}, std::chrono::seconds(1)).status == 200) return true;
    std::this_thread::sleep_for(kPollInterval);
  }
  error_ = "prometheus was not ready on 127.0.0.1:" + std::to_string(port_) + " in time";
  stop();
  return false;
}

void PrometheusProcess::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string PrometheusProcess::log() const {
  std::ifstream in(dir_ + "/prometheus.log");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string PrometheusProcess::query(std::string_view expr) const {
  const auto response =
      fetch(port_, "/api/v1/query?query=" + url_encode(expr), {}, std::chrono::seconds(5));
  return response.ok() ? response.body : std::string();
}

std::optional<double> PrometheusProcess::query_value(std::string_view expr) const {
  // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},
  //  "value":[<time>,"<value>"]}]}}
  boost::system::error_code ec;
  const auto body = boost::json::parse(query(expr), ec);
  if (ec || !body.is_object()) return std::nullopt;
  const auto* data = body.as_object().if_contains("data");
  if (data == nullptr || !data->is_object()) return std::nullopt;
  const auto* type = data->as_object().if_contains("resultType");
  const auto* result = data->as_object().if_contains("result");
  if (type == nullptr || *type != "vector" || result == nullptr || !result->is_array() ||
      result->as_array().empty()) {
    return std::nullopt;
  }
  const auto* value = result->as_array().front().as_object().if_contains("value");
  if (value == nullptr || !value->is_array() || value->as_array().size() != 2 ||
      !value->as_array()[1].is_string()) {
    return std::nullopt;
  }
  const std::string text(value->as_array()[1].as_string());
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  return v;
}

bool PrometheusProcess::wait_for_value(std::string_view expr, double want,
                                       std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (query_value(expr) == want) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

bool PrometheusProcess::wait_for_scrape(std::chrono::milliseconds timeout) const {
  return wait_for_value(R"(up{job="proxyd"})", 1, timeout);
}

std::unique_ptr<PrometheusProcess> PrometheusProcess::start(std::string target,
                                                            std::chrono::milliseconds timeout) {
  auto prometheus = std::make_unique<PrometheusProcess>(std::move(target), timeout);
  if (prometheus->ready()) return prometheus;
  // The destructor prints the log, the test having failed.
  ADD_FAILURE() << "prometheus did not start: " << prometheus->error();
  return nullptr;
}

}  // namespace proxyd::test
