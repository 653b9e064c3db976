// A client loop on its own thread for tests that change routing under load: keep-alive or a
// connection per request, bounded by a request count and a deadline, recording every failure and
// the tag (x-upstream) of its latest response.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.hpp"

namespace proxyd::test {

class LoadLoop {
 public:
  // A max_requests that only the test's stop() (or the time limit) ends.
  static constexpr int kUntilStopped = 10'000'000;

  // At most `max_requests`, and never past `limit`.
  LoadLoop(std::uint16_t port, bool keep_alive, std::string target = "/r",
           int max_requests = 20000, std::chrono::seconds limit = std::chrono::seconds(20)) {
    thread_ = std::thread([this, port, keep_alive, target, max_requests, limit] {
      run(port, keep_alive, target, max_requests, limit);
    });
  }
  ~LoadLoop() { stop(); }
  LoadLoop(const LoadLoop&) = delete;
  LoadLoop& operator=(const LoadLoop&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int requests() const { return requests_; }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mu_);
    return failures_;
  }
  std::string last_tag() const {
    std::lock_guard lock(mu_);
    return last_tag_;
  }

 private:
  void run(std::uint16_t port, bool keep_alive, const std::string& target, int max_requests,
           std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::unique_ptr<HttpClient> client;
    for (int i = 0; i < max_requests && !stop_ && std::chrono::steady_clock::now() < deadline;
         ++i) {
      if (!keep_alive || !client) client = std::make_unique<HttpClient>(port);
      Response r = client->get(target + std::to_string(i));
      ++requests_;
      std::lock_guard lock(mu_);
      if (!r.ok() || r.status != 200) {
        failures_.push_back("request " + std::to_string(i) + ": status " +
                            std::to_string(r.status) + " " + r.error);
        client.reset();
      } else {
        last_tag_ = r.header("x-upstream");
        if (!r.keep_alive) client.reset();  // proxyd may retire a connection, gracefully
      }
    }
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::vector<std::string> failures_;
  std::string last_tag_;
};

}  // namespace proxyd::test
