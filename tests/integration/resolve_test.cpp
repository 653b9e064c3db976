// Servers given by host name: resolved when the snapshot is built (at start and at reload), never
// on the request path. Only `localhost`, which /etc/hosts answers: tests send nothing off the host.
#include <gtest/gtest.h>

#include <signal.h>

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"(workers: 1
listeners:
  - {name: public, address: 127.0.0.1:0}
admin: {control_socket: "@DIR@/control.sock", state_file: "@DIR@/state.json", access_log: "off"}
pools:
  blue: {servers: ["localhost:@PORT@"]}
routes:
  - {name: web, live: blue}
)";

TEST(Resolve, HostNameServerIsResolvedAtStartAndAtReload) {
  FakeUpstream blue("blue-1");
  const std::string yaml = substitute(kConfig, {{"@PORT@", std::to_string(blue.port())}});
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

}  // namespace
}  // namespace proxyd::test
