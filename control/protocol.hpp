// The control protocol: one JSON object per line, versioned ("v":1). A client sends a request line
// and reads one response line; docs/control-protocol.md is the reference. This file turns lines
// into typed requests and responses and back, for both ends (proxyctl and the control server).
// Boost.JSON only: no Asio, no sockets, so everything here is unit tested without I/O.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/admin_api.hpp"
#include "proxy/values.hpp"

namespace proxyd::control {

inline constexpr std::int64_t kProtocolVersion = 1;

// history: how many audit-log entries one request may ask for (a reply has no size cap otherwise).
inline constexpr std::size_t kMaxHistoryLimit = 10'000;
inline constexpr std::size_t kDefaultHistoryLimit = 20;

// Why proxyd said no. The wire spelling is the enumerator's name (to_string).
enum class ErrorKind {
  refused,              // valid request, not done: unknown route, generation moved, save failed...
  bad_request,          // not a valid request: not JSON, wrong types, unknown command or field
  unsupported_version,  // "v" is not a version this proxyd speaks
  forbidden,            // the peer's uid/gid may not use the control socket
  too_large,            // the request line is longer than the server's limit
  timeout,              // the request line did not arrive within the server's deadline
  busy,                 // too many control connections are open; try again
  internal,             // proxyd failed while handling it (a bug); nothing is known to have changed
};

std::string_view to_string(ErrorKind kind);
std::optional<ErrorKind> error_kind_from_string(std::string_view text);

// Every field a request can carry; which ones a command uses is in docs/control-protocol.md.
struct Request {
  std::string command;                         // "status", "set-weight", "server drain", "apply"...
  std::vector<Operation> operations;           // commands that change something
  std::optional<std::uint64_t> if_generation;  // refuse unless the generation is still this
  std::string text;                            // the command as typed, for the audit log
  std::vector<std::string> routes;             // status: only these routes (empty: all)
  std::optional<std::size_t> limit;            // history: how many entries
  std::optional<std::int64_t> window;          // stats: seconds, one of kStatsWindows
  bool force = false;  // changes: go ahead where the health gate or max_step would refuse
  std::optional<RolloutPlan> plan;  // rollout: the plan to run on routes[0]
  bool local = false;  // a change on a fleet member: this host alone (an override, shown as drift)
  std::optional<std::int64_t> if_revision;  // fleet changes: refuse unless the desired state is here
  std::string host;                         // fleet forget: the member

  bool operator==(const Request&) const = default;
};

struct Error {
  ErrorKind kind = ErrorKind::internal;
  std::string message;
  // A refused change: the index in "operations" of the operation to blame, when one is.
  std::optional<std::size_t> operation;
};

struct Response {
  bool ok = false;
  std::optional<std::uint64_t> generation;  // the generation after the command, when known
  boost::json::object result;               // ok: the command's result (see the docs)
  Error error;                              // !ok: why
};

// A decoded request, or the error reply to send instead.
struct DecodedRequest {
  std::optional<Request> request;
  Error error;  // meaningful when request is empty
};

// One line without its newline. Never throws; anything malformed is bad_request, a version other
// than kProtocolVersion is unsupported_version.
DecodedRequest decode_request(std::string_view line);
std::string encode_request(const Request& request);  // no trailing newline

struct DecodedResponse {
  std::optional<Response> response;
  std::string error;  // why the line is not a valid response
};
DecodedResponse decode_response(std::string_view line);
std::string encode_response(const Response& response);  // no trailing newline

Response ok_response(std::optional<std::uint64_t> generation, boost::json::object result = {});
Response error_response(ErrorKind kind, std::string message,
                        std::optional<std::uint64_t> generation = std::nullopt);

// An operation on the wire: {"op":"set_weight","route":"api","weight_ppm":5000}, only the fields
// its kind uses.
boost::json::value to_json(const Operation& op);

// Status <-> the result of `status`. from_json is lenient (missing fields keep their defaults) so a
// newer proxyd that adds fields still renders; it throws nothing.
boost::json::object status_to_json(const Status& status);
// The result of `fleet status` and back (from_json lenient like status_from_json).
boost::json::object fleet_view_to_json(const FleetView& view);
FleetView fleet_view_from_json(const boost::json::object& result);
Status status_from_json(const boost::json::object& result, std::uint64_t generation);

// The rollouts of `rollout status` (and of `status`, and the rollout a rollout command leaves):
// the objects of proxy/rollout_json.hpp. from_json skips entries it cannot read.
boost::json::array rollouts_to_json(const std::vector<RolloutStatus>& rollouts);
std::vector<RolloutStatus> rollouts_from_json(const boost::json::value* value);

// RuntimeDiff <-> the result of `diff` and of `reload`; from_json is lenient like status_from_json.
boost::json::object diff_to_json(const RuntimeDiff& diff);
RuntimeDiff diff_from_json(const boost::json::object& result, std::uint64_t generation);

// Stats <-> the result of `stats`. to_json also writes what follows from the counts (requests per
// second, share of the route, error ratio) for scripts; from_json reads the counts back and is
// lenient like status_from_json.
boost::json::object stats_to_json(const Stats& stats);
Stats stats_from_json(const boost::json::object& result, std::uint64_t generation);

// A window as proxyctl and the docs write it: "10s", "1m", "5m" (else "Ns").
std::string window_name(std::int64_t seconds);

std::string_view to_string(Source source);  // admin states: admin_name/parse_admin (admin_api.hpp)

}  // namespace proxyd::control
