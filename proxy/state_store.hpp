// The durable runtime state (admin.state_file): written before a command is acknowledged, read at
// start. Writes are atomic (temporary file, fsync, rename, fsync of the directory); a file that
// cannot be read back is moved aside, never overwritten silently.
// Owner: the Proxy; used under its change mutex, never on a worker thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "runtime_state.hpp"

namespace proxyd {

std::string encode_state(const RuntimeState& state);
std::optional<RuntimeState> decode_state(std::string_view text, std::string& error);

struct StateLoad {
  std::optional<RuntimeState> state;  // nullopt: no file, or a corrupt one (see error)
  std::string error;                  // why the file was not used
  std::string moved_to;               // where a corrupt file was put
};

class StateStore {
 public:
  explicit StateStore(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  // Missing file: empty result, no error. Unreadable or corrupt: moved to PATH.corrupt-TIME.
  StateLoad load() const;

  // Replaces the file atomically and durably; returns the reason on failure (nothing changed).
  std::optional<std::string> save(const RuntimeState& state) const;

 private:
  std::string path_;
};

}  // namespace proxyd
