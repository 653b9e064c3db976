// An idle proxyd makes no wake-ups: once its last connection is gone (and no health check or
// rollout runs), no thread of it waits with a timeout and no timer of it is due within a minute,
// read from the kernel (/proc). And sleeping loses nothing: a request after a quiet period is
// served with deadlines counted from its own arrival, and a change made meanwhile is followed.
#include <gtest/gtest.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/descriptors.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Why thread `name` would wake with nothing arriving, from /proc/PID/task/TID/syscall (the system
// call it is blocked in and its arguments): "" when it waits without a timeout.
std::string timed_wait(const std::string& name, const std::string& syscall) {
  std::istringstream in(syscall);
  std::string word;
  in >> word;
  if (word == "running") return name + " is running";
  if (word.empty() || !std::isdigit(static_cast<unsigned char>(word[0])))
    return name + ": unreadable syscall file: \"" + syscall + "\"";
  const long number = std::stol(word);
  std::vector<std::uint64_t> args;
  while (args.size() < 6 && in >> word) args.push_back(std::stoull(word, nullptr, 16));
  if (args.size() < 6) return name + ": unreadable " + syscall;
  const auto as_int = [](std::uint64_t v) {
    return static_cast<int>(static_cast<std::uint32_t>(v));
  };
  bool timed = false;
  // The calls a thread of proxyd can block in with a timeout; some exist on some architectures
  // only (epoll_wait and poll not on arm64, futex_time64 on 32-bit ones).
  switch (number) {
#ifdef SYS_epoll_wait
    case SYS_epoll_wait:
#endif
    case SYS_epoll_pwait:
      timed = as_int(args[3]) != -1;
      break;
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
      timed = args[3] != 0;
      break;
#endif
#ifdef SYS_poll
    case SYS_poll:
      timed = as_int(args[2]) != -1;
      break;
#endif
    case SYS_ppoll:
    case SYS_rt_sigtimedwait:
      timed = args[2] != 0;
      break;
    case SYS_futex:
#ifdef SYS_futex_time64
    case SYS_futex_time64:
#endif
    {
      const auto op = static_cast<int>(args[1]) & FUTEX_CMD_MASK;
      timed = (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET) && args[3] != 0;
      break;
    }
#ifdef SYS_nanosleep
    case SYS_nanosleep:
#endif
    case SYS_clock_nanosleep:
      timed = true;
      break;
    default:
      break;
  }
  return timed ? name + " waits with a timeout: " + syscall : "";
}

// What would wake process `pid` within `horizon` if nothing arrived: each thread blocked in a wait
// with a timeout (or running), and each armed timerfd due sooner. Empty when nothing would.
std::vector<std::string> pending_wakeups(int pid, std::chrono::seconds horizon) {
  std::vector<std::string> out;
  const std::filesystem::path proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(proc / "task", ec)) {
    const std::string name = first_line(task.path() / "comm");
    if (std::string why = timed_wait(name, first_line(task.path() / "syscall")); !why.empty())
      out.push_back(why);
  }
  for (const auto& fd : std::filesystem::directory_iterator(proc / "fd", ec)) {
    if (std::filesystem::read_symlink(fd.path(), ec).string() != "anon_inode:[timerfd]") continue;
    std::ifstream info(proc / "fdinfo" / fd.path().filename());
    for (std::string line; std::getline(info, line);) {
      long seconds = 0;
      long nanoseconds = 0;
      if (std::sscanf(line.c_str(), "it_value: (%ld, %ld)", &seconds, &nanoseconds) != 2) continue;
      if ((seconds != 0 || nanoseconds != 0) && seconds < horizon.count())
        out.push_back("timerfd " + fd.path().filename().string() + " fires in " +
                      std::to_string(seconds * 1000 + nanoseconds / 1000000) + " ms");
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

class Idle : public ::testing::Test {
 protected:
  // Two workers, the admin listener and the control socket, no health check: every thread of
  // proxyd but the health checker's. upstream_idle is short so that the idle upstream
  // connections a test leaves close within the wait for quiet.
  void start(const std::string& timeouts) {
    ConfigBuilder config;
    config.workers(2).metrics();
    config.pool("blue", {blue_.address()}).pool("green", {green_.address()});
    config.route("web", "/", "blue");
    config.timeouts(timeouts);
    proxy_ = ProxydProcess::start(config.yaml());
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
  }

  // Waits (bounded) until nothing would wake proxyd within a minute; fails with what would.
  void wait_quiet() {
    std::vector<std::string> wakeups;
    const bool quiet = poll_until(
        [&] {
          wakeups = pending_wakeups(proxy_->pid(), 60s);
          return wakeups.empty();
        },
        10s);
    ASSERT_TRUE(quiet) << "still due within a minute:\n" << joined(wakeups);
  }

  FakeUpstream blue_{"blue"};
  FakeUpstream green_{"green"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
};

TEST_F(Idle, AProxydWithNothingToDoMakesNoWakeUps) {
  ASSERT_NO_FATAL_FAILURE(
      start("client_header: 2s, client_idle: 2s, upstream_idle: 1s, drain: 2s"));
  // Traffic first, so that each worker had sessions, idle upstream connections, access-log
  // lines and memory to give back (160 connections at once, then none: a fall of more than
  // MemoryTrim::kMinDrop on each worker), all of which has to settle.
  {
    std::vector<std::unique_ptr<HttpClient>> clients;
    for (int i = 0; i < 160; ++i) {
      clients.push_back(std::make_unique<HttpClient>(port_));
      ASSERT_TRUE(clients.back()->connected()) << clients.back()->connect_error();
    }
    for (auto& client : clients) ASSERT_EQ(client->get("/r").status, 200u);
  }
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(160, 5s));
  ASSERT_NO_FATAL_FAILURE(wait_quiet());
  // A kept-alive client wakes it, and once it times out (client_idle), proxyd is quiet again.
  HttpClient kept(port_);
  ASSERT_EQ(kept.get("/again").status, 200u);
  EXPECT_FALSE(pending_wakeups(proxy_->pid(), 60s).empty()) << "a connection is open";
  ASSERT_TRUE(poll_until([&] { return kept.is_closed_by_peer(); }, 5s));
  ASSERT_NO_FATAL_FAILURE(wait_quiet());
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(161, 5s));
  EXPECT_EQ(proxy_->stdout_lines().size(), 161u);
}

TEST_F(Idle, ARequestAfterAQuietPeriodHasItsDeadlinesFromItsArrival) {
  ASSERT_NO_FATAL_FAILURE(
      start("client_header: 300ms, client_idle: 2s, upstream_idle: 1s, drain: 2s"));
  ASSERT_NO_FATAL_FAILURE(wait_quiet());
  // The scenario, not a synchronisation: quiet for longer than client_header, so that a deadline
  // counted from the sweep's last clock reading would already have passed.
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(pending_wakeups(proxy_->pid(), 60s).empty());

  const auto start = Clock::now();  // before the connection: the deadline cannot start sooner
  HttpClient slow(port_, 2s);
  ASSERT_TRUE(slow.connected()) << slow.connect_error();
  ASSERT_TRUE(slow.send_raw("GET / HTTP/1.1\r\n"));
  const std::string got = slow.read_raw(12);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  EXPECT_EQ(got, "HTTP/1.1 408");
  EXPECT_GE(took, 250ms) << "client_header (300 ms) counts from the connection's start";
  EXPECT_LT(took, 1500ms);

  ASSERT_NO_FATAL_FAILURE(wait_quiet());
  std::this_thread::sleep_for(500ms);  // the same scenario, for a whole request
  Response r = fetch(port_, "/whole");
  EXPECT_EQ(r.status, 200u) << r.error;
  EXPECT_EQ(r.body, "blue\n");
}

// Workers follow every published snapshot within a sweep; one that sleeps is woken to follow it,
// so the series of a pool just bound to a slot is exposed (at 0) before any request reaches it.
TEST_F(Idle, ASleepingWorkerFollowsAChange) {
  ASSERT_NO_FATAL_FAILURE(
      start("client_header: 2s, client_idle: 2s, upstream_idle: 1s, drain: 2s"));
  ASSERT_NO_FATAL_FAILURE(wait_quiet());
  const std::string series =
      "proxyd_request_duration_seconds_count{route=\"web\",slot=\"passive\",pool=\"green\"} 0";
  const std::uint16_t admin = proxy_->port("admin.metrics");
  EXPECT_EQ(fetch(admin, "/metrics").body.find(series), std::string::npos);
  const CommandResult set = run_program(
      {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock", "set-passive", "web", "green"},
      20s);
  ASSERT_EQ(set.exit_code, 0) << set.output;
  EXPECT_TRUE(poll_until([&] {
    return fetch(admin, "/metrics").body.find(series) != std::string::npos;
  }, 5s)) << fetch(admin, "/metrics").body;
  ASSERT_NO_FATAL_FAILURE(wait_quiet());
  EXPECT_EQ(blue_.requests_served() + green_.requests_served(), 0u);
}

}  // namespace
}  // namespace proxyd::test
