// Upstream connections: servers given by host name (resolved when the snapshot is built, at start
// and at reload, never on the request path), and kept-alive connections closed by proxyd once idle
// for timeouts.upstream_idle. Only `localhost`, which /etc/hosts answers: no lookup leaves the host.
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

// True when /etc/hosts names localhost, so resolving it never becomes a DNS query (which would
// leave this machine). A minimal root (debootstrap minbase) has no /etc/hosts at all.
bool hosts_file_has_localhost() {
  std::ifstream hosts("/etc/hosts");
  std::string line;
  while (std::getline(hosts, line)) {
    std::istringstream words(line.substr(0, line.find('#')));
    std::string address, name;
    words >> address;
    while (words >> name)
      if (name == "localhost") return true;
  }
  return false;
}

std::string config(const std::string& server, const std::string& idle = "30s") {
  return ConfigBuilder()
      .access_log("off")
      .pool("blue", {server})
      .route("web", "/", "blue")
      .timeouts("upstream_idle: " + idle)
      .yaml();
}

TEST(Upstream, HostNameServerIsResolvedAtStartAndAtReload) {
  if (!hosts_file_has_localhost()) GTEST_SKIP() << "/etc/hosts does not name localhost";
  FakeUpstream blue("blue-1");
  const std::string yaml = config("localhost:" + std::to_string(blue.port()));
  auto proxy = ProxydProcess::start(yaml);
  ASSERT_TRUE(proxy);
  Response r = fetch(proxy->port("public"), "/");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.header("x-upstream"), "blue-1");

  // Reload resolves again. (A name that does not resolve is a reload error naming the pool: unit
  // tested with a fake resolver, since a real lookup would leave this machine.)
  proxy->write_config(yaml);
  const auto mark = proxy->line_count();
  ASSERT_TRUE(proxy->signal(SIGHUP));
  const std::string ok = proxy->wait_for_line("proxyd: reload", 10s, mark).value_or("");
  EXPECT_NE(ok.find("reload ok"), std::string::npos) << ok;
  EXPECT_EQ(fetch(proxy->port("public"), "/").header("x-upstream"), "blue-1");
}

TEST(Upstream, IdleConnectionIsClosedAfterTheTimeoutAndReplaced) {
  FakeUpstream blue("blue-1");
  auto proxy = ProxydProcess::start(config(blue.address(), "200ms"));
  ASSERT_TRUE(proxy);
  const auto port = proxy->port("public");
  EXPECT_EQ(fetch(port, "/").header("x-conn-seq"), "1");
  EXPECT_EQ(fetch(port, "/").header("x-conn-seq"), "1");  // reused while fresh
  EXPECT_EQ(blue.connections_closed(), 0u);

  // proxyd closes it on its own: the upstream sees the connection end, with no client around.
  ASSERT_TRUE(blue.wait_for_closed(1, 5s)) << "the idle upstream connection was never closed";
  EXPECT_EQ(blue.connections_accepted(), 1u);
  EXPECT_EQ(fetch(port, "/").header("x-conn-seq"), "2");
}

}  // namespace
}  // namespace proxyd::test
