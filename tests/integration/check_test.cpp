// The command line of the real binary: `proxyd --check -c FILE` reports each problem as
// `FILE:LINE: key: message` and exits 1 (0 for a good file), every example config in conf/ passes
// the check, and `proxyd --version` prints `proxyd VERSION`. A key that does nothing yet (a
// listener's tls) is warned about by --check, at start-up and on reload, and never fail the file.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

// Line numbers matter here: the text starts on line 1.
constexpr const char* kGoodConfig = R"(workers: 1
listeners:
  - name: public
    address: 127.0.0.1:0
admin:
  control_socket: @DIR@/control.sock
  state_file: @DIR@/state.json
  access_log: off
pools:
  blue:
    servers: [127.0.0.1:9001]
  green:
    servers: [127.0.0.1:9011]
routes:
  - name: web
    match: {path_prefix: /}
    live: blue
    passive: green
    weight: 0.5
    sticky: {cookie: sid}
timeouts: {client_header: 2s, upstream_connect: 500ms}
limits: {max_header_bytes: 16KiB, max_body_bytes: 1MiB}
)";

// The lines of `output` shaped `FILE:LINE: key: message` for this file and line: after the prefix,
// a non-empty key without spaces or colons, ": ", and a non-empty message.
std::vector<std::string> errors_at(const std::string& output, const std::string& file, int line) {
  std::vector<std::string> found;
  const std::string prefix = file + ":" + std::to_string(line) + ": ";
  std::istringstream in(output);
  std::string text;
  while (std::getline(in, text)) {
    if (text.rfind(prefix, 0) != 0) continue;
    const std::string rest = text.substr(prefix.size());
    const auto colon = rest.find(": ");
    if (colon == 0 || colon == std::string::npos || colon + 2 >= rest.size()) continue;
    if (rest.find_first_of(" :") < colon) continue;
    found.push_back(text);
  }
  return found;
}

// kGoodConfig with line `line` (1-based) replaced by `replacement`.
std::string with_line(int line, const std::string& replacement) {
  std::istringstream in(kGoodConfig);
  std::string out, text;
  for (int n = 1; std::getline(in, text); ++n) out += (n == line ? replacement : text) + "\n";
  return out;
}

TEST(Check, GoodConfigExitsZero) {
  CommandResult r = ProxydProcess::check(kGoodConfig);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Check, UnknownKeyIsReportedWithFileLineAndKey) {
  ASSERT_EQ(with_line(19, "").find("weight"), std::string::npos);
  CommandResult r = ProxydProcess::check(with_line(19, "    weigth: 0.5"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const auto errors = errors_at(r.output, r.config_path, 19);
  ASSERT_EQ(errors.size(), 1u) << r.output;
  EXPECT_NE(errors[0].find("weigth"), std::string::npos) << errors[0];
}

TEST(Check, BadValuesAreReportedAtTheirLines) {
  struct Case {
    int line;
    const char* text;
    const char* key;  // a part of the reported key
  };
  for (const Case& c :
       {Case{19, "    weight: 150", "weight"}, Case{19, "    weight: lots", "weight"},
        Case{4, "    address: 127.0.0.1:99999", "address"}, Case{17, "    live: purple", "live"},
        Case{21, "timeouts: {client_header: 2 seconds}", "client_header"},
        Case{22, "limits: {max_body_bytes: 1MB}", "max_body_bytes"}}) {
    CommandResult r = ProxydProcess::check(with_line(c.line, c.text));
    EXPECT_EQ(r.exit_code, 1) << c.text << "\n" << r.output;
    const auto errors = errors_at(r.output, r.config_path, c.line);
    ASSERT_FALSE(errors.empty()) << c.text << "\n" << r.output;
    EXPECT_NE(errors[0].find(c.key), std::string::npos) << errors[0];
  }
}

TEST(Check, EveryProblemIsReportedInFileOrder) {
  std::string yaml = with_line(17, "    live: purple");
  yaml = substitute(yaml, {{"    weight: 0.5", "    weight: 150"}});
  CommandResult r = ProxydProcess::check(yaml);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(errors_at(r.output, r.config_path, 17).size(), 1u) << r.output;
  EXPECT_EQ(errors_at(r.output, r.config_path, 19).size(), 1u) << r.output;
  EXPECT_LT(r.output.find(r.config_path + ":17:"), r.output.find(r.config_path + ":19:"));
}

TEST(Check, MissingFileExitsOne) {
  CommandResult r = ProxydProcess::run({"--check", "-c", "/nonexistent/proxyd.yaml"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/proxyd.yaml"), std::string::npos) << r.output;
}

TEST(Check, VersionIsPrinted) {
  CommandResult r = ProxydProcess::run({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "proxyd " PROXYD_VERSION "\n");
}

// conf/ holds the example configs; each one must keep passing the check, printing exactly these
// warnings (conf/example.yaml shows every key, so it has those that do nothing yet).
TEST(Check, ExampleConfigsPass) {
  const std::map<std::string, std::vector<std::string>> warnings = {
      {"example.yaml",
       {"9: listeners[1].tls: warning: TLS termination is not implemented yet: this listener is "
        "not opened"}}};
  const std::filesystem::path conf = std::filesystem::path(PROXYD_SOURCE_DIR) / "conf";
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(conf)) {
    for (const auto& entry : std::filesystem::directory_iterator(conf)) {
      const auto ext = entry.path().extension();
      if (ext == ".yaml" || ext == ".yml") files.push_back(entry.path());
    }
  }
  if (files.empty()) GTEST_SKIP() << "no example configs in " << conf;
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    CommandResult r = ProxydProcess::run({"--check", "-c", file.string()});
    EXPECT_EQ(r.exit_code, 0) << file << "\n" << r.output;
    std::string expected;
    if (const auto it = warnings.find(file.filename().string()); it != warnings.end()) {
      for (const std::string& warning : it->second)
        expected += file.string() + ":" + warning + "\n";
    }
    EXPECT_EQ(r.output, expected + file.string() + ": ok\n");
  }
}

// TLS termination is not implemented yet: a file with its keys is valid (existing configs keep
// starting), and each listener with tls says so once.
constexpr const char* kNotYetConfig = R"(workers: 1
listeners:
  - name: public
    address: 127.0.0.1:0
  - name: public-tls
    address: 127.0.0.1:0
    tls: {cert: /etc/proxyd/site.pem, key: /etc/proxyd/site.key}
admin:
  control_socket: @DIR@/control.sock
  state_file: @DIR@/state.json
  access_log: "off"
pools:
  blue:
    servers: [127.0.0.1:9001]
    health: {path: /healthz, interval: 2s}
routes:
  - {name: web, live: blue, drain: 45s}
)";

const std::string kTlsMessage =
    "TLS termination is not implemented yet: this listener is not opened";

TEST(Check, KeysThatDoNothingYetAreWarningsNotErrors) {
  CommandResult r = ProxydProcess::check(kNotYetConfig);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::string& file = r.config_path;
  EXPECT_EQ(r.output, substitute(R"(@FILE@:7: listeners[1].tls: warning: @TLS@
@FILE@: ok
)",
                                 {{"@FILE@", file}, {"@TLS@", kTlsMessage}}));
}

// proxyd starts with them and says what they lack before `proxyd: ready`: the TLS listener is not
// opened, the plain one serves; a reload says so again once the file it read is in use.
TEST(Check, StartAndReloadWarnAboutKeysThatDoNothingYet) {
  using namespace std::chrono_literals;
  auto proxy = ProxydProcess::start(kNotYetConfig);
  ASSERT_TRUE(proxy);
  const std::string file = proxy->config_path();
  const std::vector<std::string> started = proxy->stderr_lines();
  EXPECT_NE(std::find(started.begin(), started.end(),
                      "proxyd: warning: " + file + ":7: listeners[1].tls: " + kTlsMessage),
            started.end())
      << proxy->stderr_text();
  EXPECT_NE(proxy->port("public"), 0);
  EXPECT_EQ(proxy->port("public-tls"), 0) << "a TLS listener is not opened";
  const auto tls = std::find(started.begin(), started.end(),
                            "proxyd: warning: " + file + ":7: listeners[1].tls: " + kTlsMessage);
  const auto ready = std::find_if(started.begin(), started.end(), [](const std::string& line) {
    return line.rfind("proxyd: ready", 0) == 0;
  });
  EXPECT_LT(tls, ready) << proxy->stderr_text();

  const auto mark = proxy->line_count();
  ASSERT_TRUE(proxy->signal(SIGHUP));
  const auto reloaded = proxy->wait_for_line("proxyd: reload", 5s, mark);
  ASSERT_TRUE(reloaded) << proxy->stderr_text();
  EXPECT_NE(reloaded->find("proxyd: reload ok"), std::string::npos) << *reloaded;
  const std::vector<std::string> lines = proxy->stderr_lines();
  const std::vector<std::string> during(lines.begin() + static_cast<std::ptrdiff_t>(mark),
                                        lines.end());
  EXPECT_NE(std::find(during.begin(), during.end(),
                      "proxyd: warning: " + file + ":7: listeners[1].tls: " + kTlsMessage),
            during.end())
      << proxy->stderr_text();
}

TEST(Check, AConfigWithOnlyTlsListenersDoesNotStart) {
  const std::string only_tls =
      substitute(kNotYetConfig, {{"  - name: public\n    address: 127.0.0.1:0\n", ""}});
  ProxydProcess proxy(only_tls);
  const auto line = proxy.wait_for_line("proxyd: no listener", std::chrono::seconds(10));
  ASSERT_TRUE(line) << proxy.stderr_text();
  EXPECT_EQ(*line, "proxyd: no listener to open (listeners with tls are not opened: TLS "
                   "termination is not implemented yet)");
  const auto code = proxy.wait_exit(std::chrono::seconds(10));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1);
}

}  // namespace
}  // namespace proxyd::test
