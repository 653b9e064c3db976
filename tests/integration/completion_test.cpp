// Bash completion for proxyctl (packaging/proxyctl.bash-completion) in a real bash: command names
// as `proxyctl help` lists them, route, pool and server names from the running proxyd's status.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

class Completion : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy_ = ProxydProcess::start(ConfigBuilder()
                                      .pool("blue", {blue_.address(), "127.0.0.1:9"})
                                      .pool("green", {green_.address()})
                                      .route("api", "/api/", "blue", "green")
                                      .route("web", "/", "blue", "green")
                                      .access_log("off")
                                      .yaml());
    ASSERT_TRUE(proxy_);
  }
  // What completing the last of `words` (after `proxyctl -s SOCKET`) offers, space-separated.
  std::string complete(const std::vector<std::string>& words) {
    std::string line = "source " + std::string(PROXYD_SOURCE_DIR) +
                       "/packaging/proxyctl.bash-completion; COMP_WORDS=(" + PROXYCTL_BINARY +
                       " -s " + proxy_->dir() + "/control.sock";
    for (const std::string& w : words) line += " '" + w + "'";
    line += "); COMP_CWORD=" + std::to_string(words.size() + 2) +
            "; _proxyctl; echo \"${COMPREPLY[*]}\"";
    const CommandResult r = run_program({"/bin/bash", "-c", line});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output.empty() ? r.output : r.output.substr(0, r.output.size() - 1);
  }

  FakeUpstream blue_{"blue"};
  FakeUpstream green_{"green"};
  std::unique_ptr<ProxydProcess> proxy_;
};

TEST_F(Completion, CommandsComeFromProxyctlHelp) {
  EXPECT_EQ(complete({""}),
            "apply diff fleet flip help history reload reset rollout server set-live set-passive "
            "set-weight stats status wait-healthy");
  EXPECT_EQ(complete({"set-"}), "set-live set-passive set-weight");
}

TEST_F(Completion, RoutePoolAndServerNamesComeFromTheRunningProxyd) {
  EXPECT_EQ(complete({"set-weight", ""}), "api web");
  EXPECT_EQ(complete({"set-live", "api", ""}), "blue green");
  EXPECT_EQ(complete({"flip", "api", "w"}), "web");
  EXPECT_EQ(complete({"wait-healthy", "g"}), "green");
  EXPECT_EQ(complete({"server", ""}), "drain enable disable");
  EXPECT_EQ(complete({"rollout", ""}), "status pause resume abort api web");
  EXPECT_EQ(complete({"rollout", "abort", "a"}), "api");
  EXPECT_EQ(complete({"fleet", ""}), "status set-weight set-live set-passive flip apply forget");
  EXPECT_EQ(complete({"fleet", "flip", ""}), "api web");
  EXPECT_EQ(complete({"server", "drain", "blue", ""}), blue_.address() + " 127.0.0.1:9");
}

}  // namespace
}  // namespace proxyd::test
