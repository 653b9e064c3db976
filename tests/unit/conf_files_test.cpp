// Every shipped example config (conf/*.yaml) must load without errors, so examples never rot when
// a key is renamed or a rule is tightened.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/config.hpp"

namespace proxyd {
namespace {

std::vector<std::filesystem::path> conf_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(PROXYD_SOURCE_DIR) / "conf")) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ConfFilesTest, EveryExampleLoads) {
  const std::vector<std::filesystem::path> files = conf_files();
  // The README's demo and the full example at least; an empty glob must not pass vacuously.
  ASSERT_GE(files.size(), 2u);
  for (const std::filesystem::path& file : files) {
    const ConfigResult result = load_config_file(file.string());
    std::string errors;
    for (const ConfigError& error : result.errors) errors += error.text() + "\n";
    EXPECT_TRUE(result.config.has_value()) << errors;
    EXPECT_EQ(errors, "") << file;
  }
}

TEST(ConfFilesTest, DemoIsTheReadmeSetup) {
  const ConfigResult result =
      load_config_file((std::filesystem::path(PROXYD_SOURCE_DIR) / "conf" / "demo.yaml").string());
  ASSERT_TRUE(result.config.has_value());
  const Config& config = *result.config;
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[0].address.text(), "127.0.0.1:8080");
  EXPECT_EQ(config.listeners[1].address.text(), "127.0.0.1:8081");
  EXPECT_EQ(config.listeners[1].slot, SlotName::passive);
  // HTTPS, with the certificate ./setup demo makes at demo time.
  EXPECT_EQ(config.listeners[2].address.text(), "127.0.0.1:8443");
  ASSERT_TRUE(config.listeners[2].tls.has_value());
  EXPECT_EQ(config.listeners[2].tls->certificates.at(0).cert, "/tmp/proxyd-demo/tls/demo.pem");
  EXPECT_EQ(config.admin.control_socket, "/tmp/proxyd-demo/control.sock");
  EXPECT_EQ(config.admin.state_file, "/tmp/proxyd-demo/state.json");
  ASSERT_TRUE(config.admin.metrics.has_value());
  EXPECT_EQ(config.admin.metrics->text(), "127.0.0.1:9145");
  ASSERT_EQ(config.routes.size(), 2u);
  EXPECT_EQ(config.routes[0].name, "api");
  EXPECT_EQ(config.routes[0].weight_ppm, 200'000u);
  EXPECT_EQ(config.routes[0].sticky.name, "sessionid");
  EXPECT_EQ(config.routes[1].name, "web");
  EXPECT_EQ(config.routes[1].weight_ppm, 50'000u);
  // Both pools are health-checked: the demo shows health in `proxyctl status`, and ./setup demo
  // waits for both with `proxyctl wait-healthy` before showing the split.
  ASSERT_EQ(config.pools.size(), 2u);
  for (const PoolConfig& pool : config.pools) {
    ASSERT_TRUE(pool.health.has_value()) << pool.name;
    EXPECT_EQ(pool.health->path, "/healthz");
    EXPECT_EQ(pool.health->rise, 2);
  }
}

// The package's /etc/proxyd/proxyd.yaml keeps everything proxyd writes in the directories the unit
// gives it (ProtectSystem=strict makes the rest read-only) and listens on loopback only.
TEST(ConfFilesTest, PackagedConfigWritesOnlyWhereTheUnitLetsIt) {
  const std::filesystem::path source(PROXYD_SOURCE_DIR);
  const ConfigResult result = load_config_file((source / "conf" / "proxyd.yaml").string());
  ASSERT_TRUE(result.config.has_value());
  const Config& config = *result.config;
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].address.text(), "127.0.0.1:8080");
  ASSERT_TRUE(config.admin.metrics.has_value());
  EXPECT_EQ(config.admin.metrics->text(), "127.0.0.1:9145");
  EXPECT_EQ(config.admin.control_socket, "/run/proxyd/control.sock");
  EXPECT_EQ(config.admin.control_group, "proxyd");
  EXPECT_EQ(config.admin.control_mode, 0660u);
  EXPECT_EQ(config.admin.state_file, "/var/lib/proxyd/state.json");
  EXPECT_EQ(config.admin.audit_log, "/var/lib/proxyd/audit.log");
  EXPECT_EQ(config.admin.access_log, "/var/log/proxyd/access.log");
  std::ifstream in(source / "packaging" / "proxyd.service");
  std::stringstream unit;
  unit << in.rdbuf();
  for (const char* line : {"RuntimeDirectory=proxyd\n", "StateDirectory=proxyd\n",
                           "LogsDirectory=proxyd\n", "ProtectSystem=strict\n",
                           "ExecStart=/usr/sbin/proxyd -c /etc/proxyd/proxyd.yaml\n"}) {
    EXPECT_NE(unit.str().find(line), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace proxyd
