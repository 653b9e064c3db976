// Running under systemd: the notify protocol against a test NOTIFY_SOCKET (READY=1 with a STATUS
// once listening, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM, in that
// order, for SIGHUP and for proxyctl reload); SIGUSR1 reopens the access log after logrotate renamed it, losing no line; the shipped
// unit passes `systemd-analyze verify`.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/notify_socket.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(Systemd, NotifiesReadyReloadingAndStoppingInOrder) {
  FakeUpstream blue("blue");
  NotifySocket notify;
  ASSERT_TRUE(notify.bound()) << notify.path();
  setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);  // inherited by the proxyd started below
  auto proxy = ProxydProcess::start(
      ConfigBuilder().pool("blue", {blue.address()}).route("web", "/", "blue").yaml());
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(proxy);
  EXPECT_EQ(notify.next(), "READY=1\nSTATUS=generation 1, 1 routes, serving");

  ASSERT_TRUE(proxy->signal(SIGHUP));
  const std::string reloading = notify.next();
  EXPECT_TRUE(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << reloading;
  const std::string usec = reloading.substr(reloading.find('=', 12) + 1);
  EXPECT_FALSE(usec.empty());
  EXPECT_EQ(usec.find_first_not_of("0123456789"), std::string::npos) << usec;
  EXPECT_EQ(notify.next(), "READY=1\nSTATUS=generation 2, 1 routes, serving");

  // proxyctl reload is the same reload, and says so too.
  const CommandResult reload =
      run_program({PROXYCTL_BINARY, "-s", proxy->dir() + "/control.sock", "reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  EXPECT_TRUE(notify.next().starts_with("RELOADING=1\nMONOTONIC_USEC="));
  EXPECT_EQ(notify.next(), "READY=1\nSTATUS=generation 3, 1 routes, serving");

  ASSERT_TRUE(proxy->signal(SIGTERM));
  EXPECT_EQ(notify.next(), "STOPPING=1\nSTATUS=generation 3, 1 routes, draining");
  EXPECT_EQ(proxy->wait_exit(10s), 0);
}

std::vector<std::string> lines_of(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Systemd, Sigusr1ReopensTheAccessLogAfterARename) {
  FakeUpstream blue("blue");
  auto proxy = ProxydProcess::start(ConfigBuilder()
                                        .pool("blue", {blue.address()})
                                        .route("web", "/", "blue")
                                        .access_log("@DIR@/access.log")
                                        .yaml());
  ASSERT_TRUE(proxy);
  const std::string log = proxy->dir() + "/access.log";
  const std::string rotated = log + ".1";
  const std::uint16_t port = proxy->port("public");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(fetch(port, "/before").status, 200u);
  // Lines reach the file within a sweep (100 ms): wait for them, bounded, before the rename.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (lines_of(log).size() < 3 && std::chrono::steady_clock::now() < deadline)
    ASSERT_TRUE(proxy->running());
  ASSERT_EQ(lines_of(log).size(), 3u);

  fs::rename(log, rotated);
  const std::size_t mark = proxy->line_count();
  ASSERT_TRUE(proxy->signal(SIGUSR1));
  const auto reopened = proxy->wait_for_line("proxyd: access log reopened", 5s, mark);
  ASSERT_TRUE(reopened) << proxy->stderr_text();
  EXPECT_EQ(*reopened, "proxyd: access log reopened " + log);

  for (int i = 0; i < 2; ++i) ASSERT_EQ(fetch(port, "/after").status, 200u);
  const auto later = std::chrono::steady_clock::now() + 5s;
  while (lines_of(log).size() < 2 && std::chrono::steady_clock::now() < later)
    ASSERT_TRUE(proxy->running());
  const auto old_lines = lines_of(rotated);
  const auto new_lines = lines_of(log);
  ASSERT_EQ(old_lines.size(), 3u);
  ASSERT_EQ(new_lines.size(), 2u);
  for (const auto& line : old_lines) EXPECT_NE(line.find(" target=/before "), std::string::npos);
  for (const auto& line : new_lines) EXPECT_NE(line.find(" target=/after "), std::string::npos);
}

TEST(Systemd, TheUnitPassesSystemdAnalyzeVerify) {
  if (!fs::exists("/usr/bin/systemd-analyze")) GTEST_SKIP() << "no systemd-analyze here";
  // The unit names /usr/sbin/proxyd, where the package installs it; verify checks that the
  // command exists, so this checks a copy pointing at the binary under test.
  const std::string dir = make_temp_dir("proxyd-unit-");
  std::ifstream in(std::string(PROXYD_SOURCE_DIR) + "/packaging/proxyd.service");
  std::stringstream unit;
  unit << in.rdbuf();
  ASSERT_NE(unit.str().find("Type=notify"), std::string::npos);
  std::ofstream(dir + "/proxyd.service")
      << substitute(unit.str(), {{"/usr/sbin/proxyd", proxyd_binary()}});
  const CommandResult verify =
      run_program({"/usr/bin/systemd-analyze", "verify", dir + "/proxyd.service"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_EQ(verify.output, "");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace proxyd::test
