// The fleet's desired state: the JSON document at PREFIX/desired (docs/fleet.md) and how it turns
// into the operations a member applies, and how a `proxyctl fleet ...` command edits it. Pure:
// Boost.JSON only, no I/O, so every rule is unit-tested.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/admin_types.hpp"

namespace proxyd {

struct DesiredRoute {
  std::optional<std::string> live;
  std::optional<std::string> passive;
  std::optional<std::uint32_t> weight_ppm;

  bool operator==(const DesiredRoute&) const = default;
};

// Only what the fleet decided: a route or server the document does not name keeps each member's
// own value (the config file's, or a --local change).
struct Desired {
  std::map<std::string, DesiredRoute> routes;
  std::map<std::pair<std::string, std::string>, ServerAdmin> servers;  // (pool, server)
  bool force = false;   // members apply it even where their change gate would refuse
  std::string command;  // the last command that wrote it, as typed (for people reading etcd)

  bool operator==(const Desired&) const = default;
};

// {"routes":{"api":{"live":"blue","passive":"green","weight_ppm":5000}},
//  "servers":{"blue/127.0.0.1:9001":"draining"},"force":false,"command":"..."}
std::string encode_desired(const Desired& desired);
std::optional<Desired> decode_desired(std::string_view text, std::string& error);

// What a member applies: per route set_live, set_passive, set_weight (each only if named), then
// the servers' admin states, in name order.
std::vector<Operation> desired_operations(const Desired& desired);

// Applies a fleet command's `operations` to `desired`. `local` is the status of a member's config
// file alone: a flip of a route the document does not name yet swaps the file's slots, and names
// are checked against it (the fleet's members share a config). reset is refused: the fleet has no
// file values of its own to go back to.
std::optional<std::string> edit_desired(Desired& desired, const std::vector<Operation>& operations,
                                        const Status& local);

}  // namespace proxyd
