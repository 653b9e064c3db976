// The command line of the real binary: `proxyd --check -c FILE` reports each problem as
// `FILE:LINE: key: message` and exits 1 (0 for a good file), every example config in conf/ passes
// the check (with the TLS files it names made for the test), and `proxyd --version` prints
// `proxyd VERSION (git COMMIT)`.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/build_revision.hpp"
#include "tests/support/proxyd_process.hpp"
#include "tests/support/tls_fixtures.hpp"

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
  r = ProxydProcess::check(with_line(
      3, "  - http2: {max_concurrent_streams: 64, max_header_list_size: 32KiB, "
         "initial_window_size: 128KiB}\n    name: public"));
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
        Case{22, "limits: {max_body_bytes: 1MB}", "max_body_bytes"},
        Case{3, "  - http2: {max_concurrent_streams: 0}\n    name: public",
             "http2.max_concurrent_streams"},
        Case{3, "  - http2: {initial_window_size: 32MiB}\n    name: public",
             "http2.initial_window_size"},
        Case{3, "  - http2: {max_header_list_size: 1}\n    name: public",
             "http2.max_header_list_size"}}) {
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

// With the commit it was built from, when built in a git checkout that git can read (not from a
// tarball, or without git): one of this repository's commits, at least seven hex digits, and
// "-dirty" when tracked files had changes.
TEST(Check, VersionIsPrintedWithTheCommitItWasBuiltFrom) {
  CommandResult r = ProxydProcess::run({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::string git = PROXYD_GIT;
  const bool checkout =
      !git.empty() &&
      run_program({git, "-C", PROXYD_SOURCE_DIR, "rev-parse", "--verify", "HEAD"}).exit_code == 0;
  const std::string revision = kBuildRevision;
  if (revision.empty()) {
    EXPECT_FALSE(checkout) << "built in a git checkout, yet without its commit";
    EXPECT_EQ(r.output, "proxyd " PROXYD_VERSION "\n");
    return;
  }
  EXPECT_EQ(r.output, "proxyd " PROXYD_VERSION " (git " + revision + ")\n");
  const std::size_t dash = revision.find('-');
  const std::string commit = revision.substr(0, dash);
  EXPECT_GE(commit.size(), 7u) << revision;
  EXPECT_EQ(commit.find_first_not_of("0123456789abcdef"), std::string::npos) << revision;
  EXPECT_TRUE(dash == std::string::npos || revision.substr(dash) == "-dirty") << revision;
  if (checkout) {
    const CommandResult known =
        run_program({git, "-C", PROXYD_SOURCE_DIR, "cat-file", "-t", commit});
    EXPECT_EQ(known.output, "commit\n") << revision;
  }
}

// conf/ holds the example configs; each one must keep passing the check, printing nothing but
// `FILE: ok`. The check reads the TLS files a config names, which live under /etc/proxyd/tls/ in
// the examples (/tmp/proxyd-demo/tls/ in the demo, where ./setup demo makes them): the test makes
// them (a test CA and certificates) and checks a copy of each such file with the paths pointing
// at them.
TEST(Check, ExampleConfigsPass) {
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
  TestPki pki;
  for (const std::string name : {"site", "api", "demo"}) pki.issue(name, name + ".example.com");
  std::filesystem::copy_file(pki.ca(), pki.dir() + "/internal-ca.pem");
  for (const auto& file : files) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    std::string checked = file.string();
    const std::string tls_dir = pki.dir() + "/";
    const std::string copy = substitute(
        text.str(), {{"/etc/proxyd/tls/", tls_dir}, {"/tmp/proxyd-demo/tls/", tls_dir}});
    if (copy != text.str()) {
      checked = pki.dir() + "/" + file.filename().string();
      std::ofstream(checked) << copy;
    }
    CommandResult r = ProxydProcess::run({"--check", "-c", checked});
    EXPECT_EQ(r.exit_code, 0) << file << "\n" << r.output;
    EXPECT_EQ(r.output, checked + ": ok\n");
  }
}

}  // namespace
}  // namespace proxyd::test
