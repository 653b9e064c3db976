// The two command tables and the places that list commands agree, both ways: every row of
// proxyctl's table is in `proxyctl help` and in docs/control-protocol.md, every row proxyctl sends
// to proxyd is in proxyd's table with the same access, and nothing is listed anywhere that the
// tables do not have.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "control/commands.hpp"
#include "control/server_commands.hpp"
#include "tests/support/control_fixtures.hpp"

namespace proxyd::control {
namespace {

std::string read_docs() {
  const std::filesystem::path path =
      std::filesystem::path(PROXYD_SOURCE_DIR) / "docs" / "control-protocol.md";
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// The row whose usage line starts `text`, the longest such (`server drain ...`, not `server`).
const CommandRow* row_starting(std::string_view text) {
  const CommandRow* found = nullptr;
  for (const CommandRow& row : command_table()) {
    if (!text.starts_with(row.usage)) continue;
    if (found == nullptr || row.usage.size() > found->usage.size()) found = &row;
  }
  return found;
}

// help_text() with each wrapped usage joined back into one line: a line indented by more than
// six spaces goes on the usage above it.
std::string help_unwrapped() {
  std::string help = help_text();
  for (std::size_t at = help.find("\n       "); at != std::string::npos;
       at = help.find("\n       ", at)) {
    help.replace(at, help.find_first_not_of(' ', at + 1) - at, " ");
  }
  return help;
}

// proxyctl sends a row's command to proxyd when it renders proxyd's reply to it; wait-healthy
// (which polls status) and help run in proxyctl.
bool sent_to_proxyd(const CommandRow& row) { return row.render != nullptr; }

TEST(CommandTables, EveryProxyctlRowIsInHelpAndTheDocs) {
  const std::string help = help_unwrapped();
  const std::string docs = read_docs();
  for (const CommandRow& row : command_table()) {
    EXPECT_NE(help.find("\n  " + std::string(row.usage) + "\n      " + std::string(row.summary) +
                        "\n"),
              std::string::npos)
        << row.usage;
    EXPECT_NE(docs.find("proxyctl " + std::string(row.usage)), std::string::npos) << row.usage;
    EXPECT_NE(docs.find(std::string(row.summary)), std::string::npos) << row.summary;
  }
}

TEST(CommandTables, HelpListsNothingElse) {
  // Each command is a usage line (indented by two) and a summary line (by six), in table order.
  const std::vector<std::string> lines = lines_of(help_unwrapped());
  auto line = std::find(lines.begin(), lines.end(), "commands:");
  ASSERT_NE(line, lines.end());
  std::size_t listed = 0;
  for (++line; line != lines.end() && !line->empty(); ++line, ++listed) {
    ASSERT_TRUE(line->starts_with("  ") && (*line)[2] != ' ') << *line;
    const CommandRow* row = row_starting(std::string_view(*line).substr(2));
    ASSERT_NE(row, nullptr) << *line;
    EXPECT_EQ(row, &command_table()[listed]) << *line;
    ++line;
    ASSERT_NE(line, lines.end());
    EXPECT_EQ(*line, "      " + std::string(row->summary));
  }
  EXPECT_EQ(listed, command_table().size());
}

TEST(CommandTables, TheDocsListNothingElse) {
  // The command table of docs/control-protocol.md: "| `proxyctl USAGE` | SUMMARY |", with the
  // usage's "|" escaped for Markdown.
  std::size_t listed = 0;
  for (std::string line : lines_of(read_docs())) {
    if (!line.starts_with("| `proxyctl ")) continue;
    for (std::size_t at; (at = line.find("\\|")) != std::string::npos;) line.erase(at, 1);
    const std::size_t end = line.find("` |");
    ASSERT_NE(end, std::string::npos) << line;
    const std::string usage = line.substr(12, end - 12);
    const CommandRow* row = row_starting(usage);
    ASSERT_NE(row, nullptr) << line;
    EXPECT_EQ(usage, row->usage) << line;
    ++listed;
  }
  EXPECT_EQ(listed, command_table().size());
}

TEST(CommandTables, WhatProxyctlSendsIsInProxydsTableWithTheSameAccess) {
  for (const CommandRow& row : command_table()) {
    const ServerCommand* server = find_server_command(command_name(row));
    if (!sent_to_proxyd(row)) {
      EXPECT_EQ(server, nullptr) << command_name(row) << " runs in proxyctl";
      continue;
    }
    ASSERT_NE(server, nullptr) << command_name(row);
    // proxyctl takes --if-generation exactly for the commands proxyd treats as local changes;
    // the fleet's changes are conditional on the desired state's revision instead.
    const bool fleet = row.words[0] == "fleet";
    EXPECT_EQ(row.mutates, server->access == Access::change) << command_name(row);
    EXPECT_EQ(row.mutates && !fleet, server->accepts.if_generation) << command_name(row);
    EXPECT_EQ(fleet && row.mutates && command_name(row) != "fleet forget",
              server->accepts.if_revision)
        << command_name(row);
    EXPECT_EQ(row.batchable,
              server->accepts.operations && command_name(row) != "apply" && !fleet)
        << command_name(row);
  }
  for (const ServerCommand& server : server_commands()) {
    const CommandRow* row = find_command(server.name);
    ASSERT_NE(row, nullptr) << server.name << " has no proxyctl row";
    EXPECT_TRUE(sent_to_proxyd(*row)) << server.name;
    EXPECT_NE(server.run, nullptr) << server.name;
  }
}

TEST(CommandTables, TheDocsNameEveryErrorKind) {
  const std::string docs = read_docs();
  for (const char* kind : {"refused", "bad_request", "unsupported_version", "forbidden",
                           "too_large", "timeout", "busy", "internal"}) {
    EXPECT_NE(docs.find("\"kind\":\"" + std::string(kind) + "\""), std::string::npos) << kind;
  }
}

// The status the examples of docs/control-protocol.md show: sample_status() with api's max_step,
// blue's load, and green checked with a healthy server, a failing one and an ejected one.
Status docs_status() {
  constexpr std::int64_t k10h = 1'714'557'600'000;  // 2024-05-01T10:00:00Z
  Status status = test::sample_status();
  status.routes[0].max_step_ppm = 200'000;
  ServerStatus& blue1 = status.pools[0].servers[0];
  blue1.in_flight = 3;
  blue1.tunnels = 1;
  status.pools[0].servers[1].in_flight = 2;
  ServerStatus& ok = status.pools[1].servers[0];
  ok.last_check = "200";
  ok.last_check_at = k10h + 123'000;
  ok.health_since = k10h - 108'000;
  ok.in_flight = 1;
  ServerStatus failing = test::server_status("127.0.0.1:9012", Health::unhealthy);
  failing.last_check = "503";
  failing.last_check_at = k10h + 124'000;
  failing.health_since = k10h + 61'000;
  ServerStatus ejected = test::server_status("127.0.0.1:9013", Health::healthy);
  ejected.last_check = "200";
  ejected.last_check_at = k10h + 123'500;
  ejected.health_since = k10h - 108'000;
  ejected.ejected_until = k10h + 150'000;
  status.pools[1].servers.push_back(failing);
  status.pools[1].servers.push_back(ejected);
  return status;
}

// The status examples of the docs are what proxyctl prints and proxyd sends, to the byte.
TEST(CommandTables, TheDocsShowStatusAsItIs) {
  const std::string docs = read_docs();
  const std::string text = "$ proxyctl status\n" + render_status(docs_status());
  EXPECT_NE(docs.find(text), std::string::npos) << text;
  const std::string line =
      "< " + encode_response(ok_response(7, status_to_json(docs_status()))) + "\n";
  EXPECT_NE(docs.find(line), std::string::npos) << line;
}

// The stats examples of the docs, likewise.
TEST(CommandTables, TheDocsShowStatsAsItIs) {
  const std::string docs = read_docs();
  const std::string text = "$ proxyctl stats\n" + render_stats(test::sample_stats());
  EXPECT_NE(docs.find(text), std::string::npos) << text;
  const std::string line =
      "< " + encode_response(ok_response(7, stats_to_json(test::sample_stats()))) + "\n";
  EXPECT_NE(docs.find(line), std::string::npos) << line;
}

}  // namespace
}  // namespace proxyd::control
