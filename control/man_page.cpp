// proxyctl(8) from the command table: each command's entry is its `help COMMAND` text, and the
// options, environment and exit codes are the blocks of `proxyctl help`, so the manual and the
// binary's help cannot drift apart.
#include "control/man_page.hpp"

#include <string_view>
#include <vector>

#include "control/commands.hpp"
#include "proxy/roff.hpp"

namespace proxyd::control {

namespace {

// The blank-line separated blocks of a help text.
std::vector<std::string_view> blocks(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const std::size_t end = text.find("\n\n");
    out.push_back(text.substr(0, end == std::string_view::npos ? text.size() : end + 1));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 2);
  }
  return out;
}

// A two-column list of `proxyctl help` ("  TERM   text", continued on deeper-indented lines) as
// tagged paragraphs.
std::string two_columns(std::string_view block) {
  std::string out;
  std::string term;
  std::string text;
  const auto flush = [&] {
    if (!term.empty()) out += roff::tagged(term, text);
    term.clear();
    text.clear();
  };
  while (!block.empty()) {
    const std::size_t end = block.find('\n');
    std::string_view line = block.substr(0, end);
    block.remove_prefix(end == std::string_view::npos ? block.size() : end + 1);
    const std::size_t indent = line.find_first_not_of(' ');
    if (indent == std::string_view::npos) continue;
    line.remove_prefix(indent);
    if (indent <= 2) {
      flush();
      const std::size_t gap = line.find("  ");
      term = std::string(line.substr(0, gap));
      if (gap != std::string_view::npos) line.remove_prefix(line.find_first_not_of(' ', gap));
      else line = {};
    }
    if (!text.empty()) text += "\n";
    text += line;
  }
  flush();
  return out;
}

// Lines with their leading blanks removed: roff would otherwise break and indent there.
std::string unindented(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (const char c : text) {
    if (line_start && c == ' ') continue;
    out += c;
    line_start = c == '\n';
  }
  return out;
}

// The help text of one row without its first line (the usage, which is the entry's tag).
std::string row_text(const CommandRow& row) {
  const std::string help = help_text({&row});
  const std::size_t body = help.find("\n\n");
  return help.substr(body == std::string::npos ? help.size() : body + 2);
}

}  // namespace

std::string man_page() {
  const std::string help = help_text();
  std::string out = roff::header("proxyctl", PROXYD_VERSION, "control a running proxyd");
  out += roff::section("SYNOPSIS");
  for (const std::string_view block : blocks(help)) {
    if (block.starts_with("usage: ")) out += roff::escape(unindented(block.substr(7)));
  }
  out += roff::section("DESCRIPTION");
  out += roff::escape(
      "proxyctl talks to proxyd(8) over its control socket: it shows routes, pools and\n"
      "statistics, and changes weights, slot bindings and server states at runtime,\n"
      "atomically and durably (proxyd keeps them in its state file). Each change bumps\n"
      "proxyd's generation and is recorded in its audit log.\n");
  out += roff::section("COMMANDS");
  // The summary on a line of its own (it is a phrase without a full stop), then the details.
  for (const CommandRow& row : command_table()) {
    const std::string text = row_text(row);
    const std::size_t end = text.find('\n');
    out += roff::tagged(row.usage, text.substr(0, end),
                        end == std::string::npos ? "" : text.substr(end + 1));
  }
  for (const std::string_view block : blocks(help)) {
    if (block.starts_with("options:\n")) {
      out += roff::section("OPTIONS") + two_columns(block.substr(9));
    } else if (block.starts_with("environment:\n")) {
      out += roff::section("ENVIRONMENT") + two_columns(block.substr(13));
    } else if (block.starts_with("exit codes:")) {
      out += roff::section("EXIT STATUS") + roff::escape(unindented(block.substr(12)));
    }
  }
  out += roff::section("FILES");
  out += roff::tagged(kDefaultSocketPath, "proxyd's control socket, unless -s or $" +
                                              std::string(kSocketEnv) + " names another.");
  out += roff::section("SEE ALSO");
  out += ".BR proxyd (8),\n" +
         roff::escape("/usr/share/doc/proxyd/deploy.md (the blue/green and canary runbook)\n");
  return out;
}

}  // namespace proxyd::control
