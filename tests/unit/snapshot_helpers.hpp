// What the unit tests of runtime changes share: an offline resolver for build_snapshot and short
// constructors of operations.
#pragma once

#include <string>
#include <vector>

#include "proxy/routing_snapshot.hpp"

namespace proxyd::test {

// Resolves every host to 127.0.0.1, so snapshots build offline.
inline std::vector<ResolvedAddress> numeric_only(const std::string&, std::uint16_t port,
                                                 std::string&) {
  ResolvedAddress a;
  a.bytes[0] = 127;
  a.bytes[3] = 1;
  a.port = port;
  return {a};
}

inline Operation op(Operation::Kind kind, std::string route_name, std::string pool = "",
                    std::uint32_t weight = 0) {
  Operation o;
  o.kind = kind;
  o.route = std::move(route_name);
  o.pool = std::move(pool);
  o.weight_ppm = weight;
  return o;
}

inline Operation server_op(std::string pool, std::string server, ServerAdmin admin) {
  Operation o;
  o.kind = Operation::Kind::server_admin;
  o.pool = std::move(pool);
  o.server = std::move(server);
  o.admin = admin;
  return o;
}

}  // namespace proxyd::test
