// A real etcd server (Debian's /usr/bin/etcd from etcd-server, installed by ./setup) for the fleet
// tests: one member on 127.0.0.1, client and peer ports chosen free, data in a fresh temp dir.
// Readiness is found by polling GET /health (etcd has no event to wait on), bounded by a deadline.
// stop() and start() again keep the data dir and the ports: "etcd went away and came back".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace proxyd::test {

// The etcd executable: $ETCD_BINARY if set, else /usr/bin/etcd.
std::string etcd_binary();

// Owner: the test. Threads: none of its own. Lifetime: started and ready once start() returns true;
// the destructor SIGKILLs it by pid, reaps it and removes the temp dir (printing etcd's log first
// if the test failed). The child gets PR_SET_PDEATHSIG(SIGKILL): construct it on the test thread.
class EtcdProcess {
 public:
  // `name`: the member's name in its cluster.
  explicit EtcdProcess(std::string name = "test");
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Spawns etcd and polls /health until it answers {"health":"true"} or `timeout` passes.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // The two halves of start(), for a cluster: every member is spawned before any can be healthy
  // (etcd is healthy once its cluster has a leader).
  bool spawn();
  bool wait_healthy(std::chrono::milliseconds timeout);
  // Joins a cluster: `initial_cluster` as etcd takes it, "a=http://127.0.0.1:P,b=...". Call
  // before the first start.
  void set_cluster(std::string initial_cluster) { cluster_ = std::move(initial_cluster); }
  std::string peer_entry() const {
    return name_ + "=http://127.0.0.1:" + std::to_string(peer_port_);
  }
  // Serves clients over TLS with `cert` and `key`, and asks each for a certificate signed by
  // `ca` (--client-cert-auth); etcdctl then presents `client_cert` and `client_key`. Call before
  // the first start.
  void set_tls(std::string cert, std::string key, std::string ca, std::string client_cert,
               std::string client_key) {
    tls_ = {std::move(cert), std::move(key), std::move(ca), std::move(client_cert),
            std::move(client_key)};
  }
  // Whether this member is its cluster's leader now (etcdctl endpoint status).
  bool is_leader() const;
  // SIGKILL by pid and reap: as abrupt as a crashed host. Idempotent.
  void stop();

  bool running() const { return pid_ > 0; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return client_port_; }
  std::string url() const {
    return (tls_.cert.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") +
           std::to_string(client_port_);
  }
  const std::string& dir() const { return dir_; }
  std::string log() const;

  // Runs etcdctl against this etcd with `args` ("put", "/k", "v"); its stdout, exit code in `rc`.
  std::string etcdctl(const std::string& args, int* rc = nullptr) const;

  // Constructs and starts one; on failure records a test failure with the log and returns null.
  static std::unique_ptr<EtcdProcess> launch();

 private:
  std::string name_;
  std::string cluster_;  // "" = a cluster of this member alone
  struct Tls {
    std::string cert, key, ca, client_cert, client_key;  // all "": plain HTTP
  } tls_;
  std::string dir_;
  std::uint16_t client_port_ = 0;
  std::uint16_t peer_port_ = 0;
  int pid_ = -1;  // -1 once reaped: a pid is never signalled after it could have been reused
  std::string error_;
};

}  // namespace proxyd::test
