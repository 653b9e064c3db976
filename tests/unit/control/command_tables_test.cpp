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

// proxyctl sends a row's command to proxyd when it renders proxyd's reply to it; wait-healthy
// (which polls status) and help run in proxyctl.
bool sent_to_proxyd(const CommandRow& row) { return row.render != nullptr; }

TEST(CommandTables, EveryProxyctlRowIsInHelpAndTheDocs) {
  const std::string help = help_text();
  const std::string docs = read_docs();
  for (const CommandRow& row : command_table()) {
    EXPECT_NE(help.find("\n  " + std::string(row.usage) + "  "), std::string::npos) << row.usage;
    EXPECT_NE(docs.find("proxyctl " + std::string(row.usage)), std::string::npos) << row.usage;
    EXPECT_NE(docs.find(std::string(row.summary)), std::string::npos) << row.summary;
  }
}

TEST(CommandTables, HelpListsNothingElse) {
  const std::vector<std::string> lines = lines_of(help_text());
  auto line = std::find(lines.begin(), lines.end(), "commands:");
  ASSERT_NE(line, lines.end());
  std::size_t listed = 0;
  for (++line; line != lines.end() && !line->empty(); ++line, ++listed) {
    ASSERT_TRUE(line->starts_with("  ")) << *line;
    EXPECT_NE(row_starting(std::string_view(*line).substr(2)), nullptr) << *line;
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
    // proxyctl takes --if-generation exactly for the commands proxyd treats as changes.
    EXPECT_EQ(row.mutates, server->access == Access::change) << command_name(row);
    EXPECT_EQ(row.mutates, server->accepts.if_generation) << command_name(row);
    EXPECT_EQ(row.batchable, server->accepts.operations && command_name(row) != "apply")
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

}  // namespace
}  // namespace proxyd::control
