// The manual pages the build generates (`proxyd --man`, `proxyctl --man`): proxyctl(8) has an
// entry for every command and option `proxyctl help` lists, proxyd(8) every option of
// `proxyd --help` (and not the hidden --man) and every signal; both render without a warning
// from man and groff, checked the way lintian checks them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// `--man`'s output in a file of its own, in a temp dir removed with it; path is "" if it failed.
struct PageFile {
  PageFile(const char* binary, const std::string& name) {
    const CommandResult r = run_program({binary, "--man"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (r.exit_code != 0) return;
    dir = make_temp_dir("proxyd-man-");
    path = dir + "/" + name + ".8";
    std::ofstream(path) << r.output;
  }
  ~PageFile() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::string path;
};

// The page as plain ASCII text, wide enough that no entry wraps.
std::string rendered(const std::string& page) {
  const CommandResult r =
      run_program({"/usr/bin/groff", "-man", "-Tascii", "-P-cbou", "-rLL=200n", page});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// The tags of one section of a rendered page: the lines indented by exactly 7 columns (the
// section's own indentation; tagged paragraphs' text is indented further).
std::vector<std::string> tags(const std::string& text, const std::string& section) {
  std::vector<std::string> out;
  bool in_section = false;
  for (const std::string& line : lines(text)) {
    if (!line.empty() && line[0] != ' ') {
      in_section = line == section;
      continue;
    }
    if (in_section && line.starts_with("       ") && line.size() > 7 && line[7] != ' ') {
      out.push_back(line.substr(7));
    }
  }
  return out;
}

// The first column of a two-column help list: "  TERM   text" -> "TERM"; `from` starts it.
std::vector<std::string> help_terms(const std::string& help, const std::string& from) {
  std::vector<std::string> out;
  bool in_list = false;
  for (const std::string& line : lines(help)) {
    if (line.empty()) {
      in_list = false;
      continue;
    }
    if (line == from) {
      in_list = true;
      continue;
    }
    if (in_list && line.starts_with("  ") && line[2] != ' ') {
      out.push_back(line.substr(2, line.find("  ", 2) - 2));
    }
  }
  return out;
}

// The usages of `proxyctl help`'s command list: a usage starts on a line indented by two spaces
// and goes on over the lines indented by more than six (a long one is wrapped); the line indented
// by exactly six is its summary.
std::vector<std::string> help_usages(const std::string& help) {
  std::vector<std::string> out;
  bool in_list = false;
  for (const std::string& line : lines(help)) {
    if (line.empty() || line == "commands:") {
      in_list = !line.empty();
      continue;
    }
    const std::size_t indent = line.find_first_not_of(' ');
    if (!in_list || indent == std::string::npos || indent == 6) continue;
    if (indent == 2) out.push_back(line.substr(2));
    if (indent > 6 && !out.empty()) out.back() += " " + line.substr(indent);
  }
  return out;
}

// What lintian runs on every manual page (manpage-has-errors-from-man): any output is a warning.
std::string man_warnings(const std::string& page) {
  const CommandResult r = run_program(
      {"/bin/sh", "-c",
       "LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z " + page +
           " 2>&1 >/dev/null"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

TEST(ManPages, ProxyctlHasEveryCommandAndOptionOfProxyctlHelp) {
  const CommandResult help = run_program({PROXYCTL_BINARY, "help"});
  ASSERT_EQ(help.exit_code, 0);
  const PageFile page(PROXYCTL_BINARY, "proxyctl");
  ASSERT_FALSE(page.path.empty());
  const std::string text = rendered(page.path);
  const std::vector<std::string> commands = help_usages(help.output);
  ASSERT_GE(commands.size(), 15u) << help.output;
  EXPECT_EQ(tags(text, "COMMANDS"), commands) << text;
  EXPECT_EQ(tags(text, "OPTIONS"), help_terms(help.output, "options:")) << text;
  EXPECT_EQ(tags(text, "ENVIRONMENT"), help_terms(help.output, "environment:")) << text;
  // A command's entry is its `help COMMAND` text.
  EXPECT_NE(text.find("Takes --if-generation N: refused unless the generation is still N."),
            std::string::npos);
  EXPECT_NE(text.find("EXIT STATUS\n       0 done, 1 refused"), std::string::npos) << text;
}

// `proxyctl help` is checked in ProxyctlTest.Help.
TEST(ManPages, ProxydHelpFitsAnEightyColumnTerminal) {
  const CommandResult help = run_program({PROXYD_BINARY, "--help"});
  ASSERT_EQ(help.exit_code, 0);
  for (const std::string& line : lines(help.output)) EXPECT_LE(line.size(), 80u) << line;
  EXPECT_NE(help.output.find("  --takeover                  take the listening sockets over from "
                             "the proxyd\n                              running with this config"),
            std::string::npos)
      << help.output;
}

TEST(ManPages, ProxydHasEveryOptionOfProxydHelpAndEverySignal) {
  const CommandResult help = run_program({PROXYD_BINARY, "--help"});
  ASSERT_EQ(help.exit_code, 0);
  // CLI11 writes "-c,--config FILE=DEFAULT"; the manual "-c, --config FILE" and the default in
  // the text.
  std::vector<std::string> options;
  for (std::string term : help_terms(help.output, "Options:")) {
    term = term.substr(0, term.find('='));
    for (std::size_t at = term.find(','); at != std::string::npos; at = term.find(',', at + 2)) {
      term.replace(at, 1, ", ");
    }
    options.push_back(term);
  }
  ASSERT_EQ(options.size(), 5u) << help.output;  // -h, -c, --check, --takeover, --version
  const PageFile page(PROXYD_BINARY, "proxyd");
  ASSERT_FALSE(page.path.empty());
  const std::string text = rendered(page.path);
  EXPECT_EQ(tags(text, "OPTIONS"), options) << text;
  EXPECT_EQ(text.find("--man"), std::string::npos);
  EXPECT_EQ(tags(text, "SIGNALS"),
            (std::vector<std::string>{"SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"}));
  EXPECT_NE(text.find("/etc/proxyd/proxyd.yaml"), std::string::npos);
}

TEST(ManPages, RenderWithoutWarnings) {
  for (const char* binary : {PROXYD_BINARY, PROXYCTL_BINARY}) {
    const PageFile page(binary, "page");
    ASSERT_FALSE(page.path.empty());
    EXPECT_EQ(man_warnings(page.path), "") << binary;
  }
}

}  // namespace
}  // namespace proxyd::test
