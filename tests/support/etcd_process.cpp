// The etcd harness: fork/exec with the output in a log file in the temp dir, readiness by polling
// GET /health through HttpClient's fetch(), etcdctl through run_program().
#include "tests/support/etcd_process.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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
// Between two polls of /health: there is no event to wait on; each wait has a deadline.
constexpr auto kPollInterval = std::chrono::milliseconds(50);

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

}  // namespace

std::string etcd_binary() {
  const char* env = std::getenv("ETCD_BINARY");
  return env && *env ? std::string(env) : std::string("/usr/bin/etcd");
}

EtcdProcess::EtcdProcess(std::string name)
    : name_(std::move(name)), dir_(make_temp_dir("proxyd-etcd")) {
  client_port_ = unused_port();
  peer_port_ = unused_port();
  while (peer_port_ == client_port_) peer_port_ = unused_port();
}

EtcdProcess::~EtcdProcess() {
  stop();
  if (::testing::Test::HasFailure()) {
    std::cerr << "--- etcd log (" << dir_ << "/etcd.log) ---\n" << log() << "---\n";
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool EtcdProcess::start(std::chrono::milliseconds timeout) {
  if (pid_ > 0) return true;
  return spawn() && wait_healthy(timeout);
}

bool EtcdProcess::spawn() {
  if (pid_ > 0) return true;
  const std::string binary = etcd_binary();
  if (::access(binary.c_str(), X_OK) != 0) {
    error_ = binary + " is not installed: ./setup deps installs the Debian package etcd-server";
    return false;
  }
  const std::string client = url();
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> args = {
      binary,
      "--name=" + name_,
      "--data-dir=" + dir_ + "/data",
      "--listen-client-urls=" + client,
      "--advertise-client-urls=" + client,
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      "--initial-cluster=" + (cluster_.empty() ? peer_entry() : cluster_),
      "--initial-cluster-token=proxyd-test",
  };
  if (!tls_.cert.empty()) {
    for (std::string flag : {"--cert-file=" + tls_.cert, "--key-file=" + tls_.key,
                             "--trusted-ca-file=" + tls_.ca, std::string("--client-cert-auth")})
      args.push_back(std::move(flag));
  }
  const int pid = spawn_logged(args, dir_ + "/etcd.log", error_);
  if (pid < 0) return false;
  pid_ = pid;
  return true;
}

bool EtcdProcess::wait_healthy(std::chrono::milliseconds timeout) {
  const std::string client = url();
  const auto deadline = Clock::now() + timeout;
  while (pid_ > 0 && Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "etcd exited before it was ready (status " + std::to_string(status) + ")";
      return false;
    }
    if (tls_.cert.empty()) {
      const Response health = fetch(client_port_, "/health", {}, std::chrono::seconds(1));
      if (health.status == 200 && health.body.find("\"true\"") != std::string::npos) return true;
    } else {
      int rc = -1;
      etcdctl("endpoint health --command-timeout=1s", &rc);
      if (rc == 0) return true;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (error_.empty()) error_ = "etcd was not healthy on " + client + " in time";
  stop();
  return false;
}

bool EtcdProcess::is_leader() const {
  int rc = -1;
  const std::string out = etcdctl("endpoint status -w json", &rc);
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(out, ec);
  if (rc != 0 || ec || !v.is_array() || v.as_array().empty()) return false;
  const boost::json::value& status = v.as_array()[0].at("Status");
  return status.at("leader") == status.at("header").at("member_id");
}

void EtcdProcess::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string EtcdProcess::log() const {
  std::ifstream in(dir_ + "/etcd.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string EtcdProcess::etcdctl(const std::string& args, int* rc) const {
  std::vector<std::string> argv = {"/usr/bin/etcdctl", "--endpoints=" + url()};
  if (!tls_.cert.empty()) {
    argv.push_back("--cacert=" + tls_.ca);
    argv.push_back("--cert=" + tls_.client_cert);
    argv.push_back("--key=" + tls_.client_key);
  }
  for (std::string& word : split_words(args)) argv.push_back(std::move(word));
  CommandResult result = run_program(argv, std::chrono::seconds(10));
  if (rc != nullptr) *rc = result.exit_code;
  return result.output;
}

std::unique_ptr<EtcdProcess> EtcdProcess::launch() {
  auto etcd = std::make_unique<EtcdProcess>();
  if (!etcd->start()) {
    ADD_FAILURE() << "etcd did not start: " << etcd->error() << "\n" << etcd->log();
    return nullptr;
  }
  return etcd;
}

}  // namespace proxyd::test
