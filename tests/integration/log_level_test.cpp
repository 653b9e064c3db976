// proxyd's stderr lines and admin.log_level on the real binary: warning keeps warnings and errors
// and drops information, a reload changes the level, debug adds every health check, and under
// journald (JOURNAL_STREAM naming stderr) each line carries its syslog priority.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/notify_socket.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

TEST(LogLevel, WarningDropsInformationAndAReloadChangesIt) {
  FakeUpstream blue("blue");
  const auto config = [&](int workers, const std::string& level) {
    return ConfigBuilder()
        .workers(workers)
        .pool("blue", {blue.address()})
        .route("web", "/", "blue")
        .log_level(level)
        .yaml();
  };
  // Neither `listening` nor `ready` is printed at warning: systemd's notify socket says when
  // proxyd is ready.
  NotifySocket notify;
  ASSERT_TRUE(notify.bound()) << notify.path();
  setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);
  ProxydProcess proxy(config(1, "warning"));
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(notify.next().starts_with("READY=1")) << proxy.stderr_text();

  // A restart-only change: a warning, and no `reload ok`.
  proxy.write_config(config(2, "warning"));
  ASSERT_TRUE(proxy.signal(SIGHUP));
  ASSERT_TRUE(notify.next().starts_with("RELOADING=1"));
  ASSERT_TRUE(notify.next().starts_with("READY=1"));
  // A file with an error: an error.
  std::string bad = config(2, "warning");
  bad.replace(0, bad.find('\n'), "workers: many");
  proxy.write_config(bad);
  ASSERT_TRUE(proxy.signal(SIGHUP));
  ASSERT_TRUE(notify.next().starts_with("RELOADING=1"));
  ASSERT_TRUE(notify.next().starts_with("READY=1"));
  // Back to info: the reload that sets it says so, and so does the drain.
  proxy.write_config(config(2, "info"));
  ASSERT_TRUE(proxy.signal(SIGHUP));
  ASSERT_TRUE(notify.next().starts_with("RELOADING=1"));
  ASSERT_TRUE(notify.next().starts_with("READY=1"));
  ASSERT_TRUE(proxy.wait_for_line("proxyd: reload ok", 5s)) << proxy.stderr_text();
  ASSERT_TRUE(proxy.signal(SIGTERM));
  EXPECT_EQ(proxy.wait_exit(10s), 0);
  ASSERT_TRUE(proxy.wait_for_line("proxyd: stopped", 5s));  // read to the end of stderr

  const std::vector<std::string> lines = proxy.stderr_lines();
  const std::string restart_only =
      "proxyd: warning: listeners, workers, access_log, state_file, control_socket, metrics and fleet "
      "changes take effect on restart";
  ASSERT_EQ(lines.size(), 6u) << proxy.stderr_text();
  EXPECT_EQ(lines[0], restart_only);
  EXPECT_TRUE(lines[1].starts_with("proxyd: reload failed: ")) << lines[1];
  EXPECT_NE(lines[1].find(":1: workers: "), std::string::npos) << lines[1];
  EXPECT_EQ(lines[2], restart_only);  // workers: 2 still differs from the running 1
  EXPECT_EQ(lines[3], "proxyd: reload ok generation=3");
  EXPECT_EQ(lines[4], "proxyd: draining");
  EXPECT_EQ(lines[5], "proxyd: stopped");
}

TEST(LogLevel, DebugShowsEveryHealthCheck) {
  FakeUpstream blue("blue");
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("blue", {blue.address()}, "health: {path: /healthz, interval: 100ms, timeout: 50ms, rise: 1}")
          .route("web", "/", "blue")
          .log_level("debug")
          .yaml());
  ASSERT_TRUE(proxy);
  const auto line = proxy->wait_for_line("proxyd: health: pool blue server " + blue.address() +
                                             " check passed: ",
                                         5s);
  ASSERT_TRUE(line) << proxy->stderr_text();
}

// Runs proxyd on `yaml` (@DIR@: a temp dir) with stderr in a file and JOURNAL_STREAM set to that
// file's device and inode (as systemd does for a service logging to the journal) or to another
// file's; returns stderr's lines.
std::vector<std::string> stderr_under_journal(std::string yaml, bool matching) {
  const std::string dir = make_temp_dir("proxyd-journal-");
  for (std::size_t at = yaml.find("@DIR@"); at != std::string::npos; at = yaml.find("@DIR@")) {
    yaml.replace(at, 5, dir);
  }
  std::ofstream(dir + "/proxyd.yaml") << yaml;
  const std::string stream =
      matching ? "$(stat -L -c %d:%i /proc/self/fd/2)" : "$(stat -L -c %d:%i /proc/self/fd/1)";
  const CommandResult r = run_program(
      {"/bin/sh", "-c",
       "exec 2>" + dir + "/stderr; export JOURNAL_STREAM=" + stream + "; exec " + PROXYD_BINARY +
           " -c " + dir + "/proxyd.yaml"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  std::ifstream in(dir + "/stderr");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::filesystem::remove_all(dir);
  return lines;
}

TEST(LogLevel, JournalLinesCarryTheirSyslogPriority) {
  // The control socket's directory would be a regular file: proxyd opens its listener
  // (information), then cannot open the control socket (an error), drains what its workers may
  // have accepted meanwhile (information) and exits 1.
  std::string yaml =
      ConfigBuilder().pool("blue", {"127.0.0.1:9"}).route("web", "/", "blue").yaml();
  const std::string socket = "@DIR@/control.sock";
  yaml.replace(yaml.find(socket), socket.size(), "@DIR@/proxyd.yaml/control.sock");
  const std::vector<std::string> journal = stderr_under_journal(yaml, true);
  ASSERT_EQ(journal.size(), 3u);
  EXPECT_TRUE(journal[0].starts_with("<6>proxyd: listening public 127.0.0.1:")) << journal[0];
  EXPECT_TRUE(journal[1].starts_with("<3>proxyd: control socket: ")) << journal[1];
  EXPECT_EQ(journal[2], "<6>proxyd: draining");
  const std::vector<std::string> plain = stderr_under_journal(yaml, false);
  ASSERT_EQ(plain.size(), 3u);
  EXPECT_TRUE(plain[0].starts_with("proxyd: listening public 127.0.0.1:")) << plain[0];
  EXPECT_TRUE(plain[1].starts_with("proxyd: control socket: ")) << plain[1];
  EXPECT_EQ(plain[2], "proxyd: draining");
}

}  // namespace
}  // namespace proxyd::test
