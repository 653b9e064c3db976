// The audit log (admin.audit_log): one JSON object per line for every accepted or refused
// mutating command: time, by (who), command, routes, servers, before, after, generation, result
// and, when refused, reason (docs/control-protocol.md). Appended and flushed to disk before the
// command is answered; `proxyctl history` reads its tail.
// Owner: the Proxy; used under its change mutex.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace proxyd {

class AuditLog {
 public:
  explicit AuditLog(std::string path) : path_(std::move(path)) {}

  // Appends `line` (one JSON object, no newline) durably. Returns the reason on failure.
  std::optional<std::string> append(const std::string& line) const;

  // The last `max_entries` lines, oldest first. Reads at most the file's last 1 MiB.
  std::vector<std::string> tail(std::size_t max_entries) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace proxyd
