// The control protocol's encoding: requests and responses survive a round trip, and every way a
// request line can be malformed gets its own error kind and message (never an exception).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "control/protocol.hpp"
#include "tests/support/control_fixtures.hpp"

namespace proxyd::control {
namespace {

namespace json = boost::json;

Request round_trip(const Request& request) {
  const DecodedRequest decoded = decode_request(encode_request(request));
  EXPECT_TRUE(decoded.request.has_value()) << decoded.error.message;
  return decoded.request.value_or(Request{});
}

Operation op(Operation::Kind kind) {
  Operation out;
  out.kind = kind;
  return out;
}

TEST(ProtocolRequest, EveryOperationKindRoundTrips) {
  Request request;
  request.command = "apply";
  request.text = "apply: set-weight api 0.5; ...";
  request.if_generation = 12;
  Operation weight = op(Operation::Kind::set_weight);
  weight.route = "api";
  weight.weight_ppm = 5000;
  Operation live = op(Operation::Kind::set_live);
  live.route = "api";
  live.pool = "green";
  Operation passive = op(Operation::Kind::set_passive);
  passive.route = "web";
  passive.pool = "blue";
  Operation flip = op(Operation::Kind::flip);
  flip.route = "web";
  Operation drain = op(Operation::Kind::server_admin);
  drain.pool = "blue";
  drain.server = "127.0.0.1:9001";
  drain.admin = ServerAdmin::draining;
  request.operations = {weight, live, passive, flip, op(Operation::Kind::flip_all), drain};
  EXPECT_EQ(round_trip(request), request);
  request.force = true;
  EXPECT_EQ(round_trip(request), request);
  EXPECT_NE(encode_request(request).find(R"("force":true)"), std::string::npos);
}

TEST(ProtocolRequest, StatusAndHistoryFieldsRoundTrip) {
  Request status;
  status.command = "status";
  status.routes = {"api", "web"};
  EXPECT_EQ(round_trip(status), status);
  Request history;
  history.command = "history";
  history.limit = 20;
  EXPECT_EQ(round_trip(history), history);
  Request stats;
  stats.command = "stats";
  stats.routes = {"api"};
  stats.window = 300;
  EXPECT_EQ(round_trip(stats), stats);
  EXPECT_EQ(encode_request(stats), R"({"v":1,"command":"stats","routes":["api"],"window":300})");
}

TEST(ProtocolRequest, EncodesTheDocumentedShape) {
  Request request;
  request.command = "set-weight";
  request.text = "set-weight api 0.5";
  request.if_generation = 12;
  Operation weight = op(Operation::Kind::set_weight);
  weight.route = "api";
  weight.weight_ppm = 5000;
  request.operations = {weight};
  EXPECT_EQ(json::parse(encode_request(request)),
            json::parse(R"({"v":1,"command":"set-weight","operations":[{"op":"set_weight",)"
                        R"("route":"api","weight_ppm":5000}],"if_generation":12,)"
                        R"("text":"set-weight api 0.5"})"));
  const std::string line = encode_request(request);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(ProtocolRequest, ServerAdminSpellings) {
  for (const auto& [admin, name] : {std::pair{ServerAdmin::enabled, "enabled"},
                                    std::pair{ServerAdmin::draining, "draining"},
                                    std::pair{ServerAdmin::disabled, "disabled"}}) {
    Operation server = op(Operation::Kind::server_admin);
    server.pool = "blue";
    server.server = "127.0.0.1:9001";
    server.admin = admin;
    EXPECT_EQ(to_json(server).as_object().at("admin").as_string(), name);
    EXPECT_EQ(parse_admin(name), admin);
  }
  EXPECT_EQ(parse_admin("drained"), std::nullopt);
}

struct BadLine {
  std::string line;
  ErrorKind kind;
  std::string message;
};

class ProtocolBadRequest : public ::testing::TestWithParam<BadLine> {};

TEST_P(ProtocolBadRequest, IsAnErrorNotACrash) {
  const DecodedRequest decoded = decode_request(GetParam().line);
  ASSERT_FALSE(decoded.request.has_value());
  EXPECT_EQ(decoded.error.kind, GetParam().kind);
  EXPECT_EQ(decoded.error.message, GetParam().message);
}

const std::string kOps = R"({"v":1,"command":"apply","operations":[)";

INSTANTIATE_TEST_SUITE_P(
    Lines, ProtocolBadRequest,
    ::testing::Values(
        BadLine{"", ErrorKind::bad_request,
                "the request is not valid JSON: incomplete JSON"},
        BadLine{"status", ErrorKind::bad_request, "the request is not valid JSON: syntax error"},
        BadLine{R"({"v":1,"command":"status")", ErrorKind::bad_request,
                "the request is not valid JSON: incomplete JSON"},
        BadLine{R"({"v":1} trailing)", ErrorKind::bad_request,
                "the request is not valid JSON: extra data"},
        BadLine{std::string(100, '[') + std::string(100, ']'), ErrorKind::bad_request,
                "the request is not valid JSON: too deep"},
        BadLine{"[1,2]", ErrorKind::bad_request, "a request must be a JSON object"},
        BadLine{kOps + R"({"op":"flip_all"}],"force":"yes"})", ErrorKind::bad_request,
                R"("force" must be true or false)"},
        BadLine{R"({"v":1,"command":"stats","window":30})", ErrorKind::bad_request,
                R"("window" must be 10, 60 or 300 (seconds))"},
        BadLine{R"({"v":1,"command":"stats","window":"1m"})", ErrorKind::bad_request,
                R"("window" must be 10, 60 or 300 (seconds))"},
        // Duplicate keys at any depth: Boost.JSON alone would keep the last one.
        BadLine{kOps + R"({"op":"set_weight","route":"api","weight_ppm":1,"weight_ppm":999999}]})",
                ErrorKind::bad_request,
                R"(duplicate key "weight_ppm" (a key may appear once in an object))"},
        BadLine{R"({"v":1,"command":"status","command":"reload"})", ErrorKind::bad_request,
                R"(duplicate key "command" (a key may appear once in an object))"},
        BadLine{R"({"v":1,"v":2,"command":"status"})", ErrorKind::bad_request,
                R"(duplicate key "v" (a key may appear once in an object))"},
        BadLine{R"({"v":1,"command":"status","x":[{"a":{"b":1,"b":2}}]})", ErrorKind::bad_request,
                R"(duplicate key "b" (a key may appear once in an object))"},
        // An escape makes the parser hand a key over in parts; it is compared decoded and whole.
        BadLine{R"({"v":1,"command":"status","route\u0073":[],"routes":[]})",
                ErrorKind::bad_request,
                R"(duplicate key "routes" (a key may appear once in an object))"},
        BadLine{R"({"command":"status"})", ErrorKind::bad_request,
                R"(missing "v" (the protocol version; this proxyd speaks 1))"},
        BadLine{R"({"v":"1","command":"status"})", ErrorKind::bad_request,
                R"("v" must be an integer)"},
        BadLine{R"({"v":1.0,"command":"status"})", ErrorKind::bad_request,
                R"("v" must be an integer)"},
        BadLine{R"({"v":2,"command":"status","new_field":true})",
                ErrorKind::unsupported_version,
                "protocol version 2 is not supported; this proxyd speaks version 1"},
        BadLine{R"({"v":-1,"command":"status"})", ErrorKind::unsupported_version,
                "protocol version -1 is not supported; this proxyd speaks version 1"},
        BadLine{R"({"v":1})", ErrorKind::bad_request, R"(missing "command")"},
        BadLine{R"({"v":1,"command":""})", ErrorKind::bad_request,
                R"("command" must be a non-empty string)"},
        BadLine{R"({"v":1,"command":7})", ErrorKind::bad_request,
                R"("command" must be a non-empty string)"},
        BadLine{R"({"v":1,"command":"status","text":1})", ErrorKind::bad_request,
                R"("text" must be a string)"},
        BadLine{R"({"v":1,"command":"status","routes":"api"})", ErrorKind::bad_request,
                R"("routes" must be an array of route names)"},
        BadLine{R"({"v":1,"command":"status","routes":[1]})", ErrorKind::bad_request,
                R"("routes" must be an array of route names)"},
        BadLine{R"({"v":1,"command":"history","limit":0})", ErrorKind::bad_request,
                R"("limit" must be an integer from 1 to 10000)"},
        BadLine{R"({"v":1,"command":"history","limit":10001})", ErrorKind::bad_request,
                R"("limit" must be an integer from 1 to 10000)"},
        BadLine{R"({"v":1,"command":"flip","if_generation":-3})", ErrorKind::bad_request,
                R"("if_generation" must be a non-negative integer)"},
        BadLine{R"({"v":1,"command":"flip","if_generation":"3"})", ErrorKind::bad_request,
                R"("if_generation" must be a non-negative integer)"},
        BadLine{R"({"v":1,"command":"status","rouets":["api"]})", ErrorKind::bad_request,
                R"(unknown field "rouets")"},
        BadLine{R"({"v":1,"command":"flip","operations":{}})", ErrorKind::bad_request,
                R"("operations" must be an array)"},
        BadLine{kOps + "1]}", ErrorKind::bad_request,
                "operations[0]: an operation must be a JSON object"},
        BadLine{kOps + R"({"route":"api"}]})", ErrorKind::bad_request,
                R"(operations[0]: missing "op" (a string such as "set_weight"))"},
        BadLine{kOps + R"({"op":"flip","route":"a"},{"op":"frob"}]})", ErrorKind::bad_request,
                R"(operations[1]: unknown op "frob")"},
        BadLine{kOps + R"({"op":"flip"}]})", ErrorKind::bad_request,
                R"(operations[0]: missing "route" for op flip)"},
        BadLine{kOps + R"({"op":"set_weight","route":"api","weight_ppm":5,"pool":"x"}]})",
                ErrorKind::bad_request,
                R"(operations[0]: unexpected field "pool" for op set_weight)"},
        BadLine{kOps + R"({"op":"set_weight","route":"api","weight_ppm":1000001}]})",
                ErrorKind::bad_request,
                R"(operations[0]: "weight_ppm" must be an integer from 0 to 1000000)"},
        BadLine{kOps + R"({"op":"set_weight","route":"api","weight_ppm":0.5}]})",
                ErrorKind::bad_request,
                R"(operations[0]: "weight_ppm" must be an integer from 0 to 1000000)"},
        BadLine{kOps + R"({"op":"set_live","route":"api","pool":3}]})", ErrorKind::bad_request,
                R"(operations[0]: "pool" must be a string)"},
        BadLine{kOps + R"({"op":"server_admin","pool":"b","server":"s","admin":"off"}]})",
                ErrorKind::bad_request,
                R"(operations[0]: "admin" must be "enabled", "draining" or "disabled")"},
        BadLine{kOps + R"({"op":"flip_all","route":"api"}]})", ErrorKind::bad_request,
                R"(operations[0]: unexpected field "route" for op flip_all)"}));

TEST(ProtocolRequest, TheSameKeyInDifferentObjectsIsFine) {
  const DecodedRequest decoded = decode_request(
      kOps + R"({"op":"flip","route":"api"},{"op":"flip","route":"web"}],"text":"route"})");
  ASSERT_TRUE(decoded.request.has_value()) << decoded.error.message;
  EXPECT_EQ(decoded.request->operations.size(), 2u);
}

TEST(ProtocolBadRequestBinary, ControlBytesAndInvalidUtf8AreRefused) {
  const std::string line = std::string("{\"v\":1,\"command\":\"st\xff\xfe\"}");
  const DecodedRequest decoded = decode_request(line);
  EXPECT_FALSE(decoded.request.has_value());
  EXPECT_EQ(decoded.error.kind, ErrorKind::bad_request);
  const DecodedRequest nul = decode_request(std::string("{\"v\":1,\0}", 9));
  EXPECT_FALSE(nul.request.has_value());
}

TEST(ProtocolResponse, OkRoundTrips) {
  json::object result;
  result["x"] = 1;
  const Response response = ok_response(13, result);
  const std::string line = encode_response(response);
  EXPECT_EQ(json::parse(line),
            json::parse(R"({"v":1,"ok":true,"generation":13,"result":{"x":1}})"));
  const DecodedResponse decoded = decode_response(line);
  ASSERT_TRUE(decoded.response.has_value()) << decoded.error;
  EXPECT_TRUE(decoded.response->ok);
  EXPECT_EQ(decoded.response->generation, 13u);
  EXPECT_EQ(decoded.response->result, result);
}

TEST(ProtocolResponse, EveryErrorKindRoundTrips) {
  for (const ErrorKind kind :
       {ErrorKind::refused, ErrorKind::bad_request, ErrorKind::unsupported_version,
        ErrorKind::forbidden, ErrorKind::too_large, ErrorKind::timeout, ErrorKind::busy,
        ErrorKind::internal}) {
    const std::string line = encode_response(error_response(kind, "why", 7));
    EXPECT_EQ(json::parse(line).at("error").at("kind").as_string(), to_string(kind));
    const DecodedResponse decoded = decode_response(line);
    ASSERT_TRUE(decoded.response.has_value()) << decoded.error;
    EXPECT_FALSE(decoded.response->ok);
    EXPECT_EQ(decoded.response->error.kind, kind);
    EXPECT_EQ(decoded.response->error.message, "why");
    EXPECT_EQ(decoded.response->generation, 7u);
    EXPECT_EQ(error_kind_from_string(to_string(kind)), kind);
  }
}

TEST(ProtocolResponse, TheOperationToBlameRoundTrips) {
  Response refused = error_response(ErrorKind::refused, "no route named x", 7);
  refused.error.operation = 2;
  const std::string line = encode_response(refused);
  EXPECT_EQ(json::parse(line),
            json::parse(R"({"v":1,"ok":false,"generation":7,"error":{"kind":"refused",)"
                        R"("message":"no route named x","operation":2}})"));
  const DecodedResponse decoded = decode_response(line);
  ASSERT_TRUE(decoded.response.has_value()) << decoded.error;
  EXPECT_EQ(decoded.response->error.operation, 2u);
  // Without one, none is written or read.
  const std::string plain = encode_response(error_response(ErrorKind::refused, "why", 7));
  EXPECT_FALSE(json::parse(plain).at("error").as_object().contains("operation"));
  EXPECT_EQ(decode_response(plain).response->error.operation, std::nullopt);
}

TEST(ProtocolResponse, GarbledRepliesSayWhy) {
  EXPECT_EQ(decode_response("hello").error, "not JSON (syntax error)");
  EXPECT_EQ(decode_response("[]").error, "not a JSON object");
  EXPECT_EQ(decode_response(R"({"ok":true})").error, "not a protocol version 1 reply");
  EXPECT_EQ(decode_response(R"({"v":2,"ok":true})").error, "not a protocol version 1 reply");
  EXPECT_EQ(decode_response(R"({"v":1})").error, R"(no "ok" field)");
  EXPECT_EQ(decode_response(R"({"v":1,"ok":false})").error,
            R"(a failed reply without an "error" object)");
}

TEST(ProtocolResponse, UnknownFieldsAndKindsFromANewerProxydAreTolerated) {
  const DecodedResponse decoded = decode_response(
      R"({"v":1,"ok":false,"extra":1,"error":{"kind":"rate_limited","message":"slow down"}})");
  ASSERT_TRUE(decoded.response.has_value());
  EXPECT_EQ(decoded.response->error.kind, ErrorKind::refused);
  EXPECT_EQ(decoded.response->error.message, "slow down");
}

TEST(ProtocolStats, RoundTripsThroughJsonWithWhatFollowsFromTheCounts) {
  const Stats stats = test::sample_stats(10);
  const json::object encoded = stats_to_json(stats);
  EXPECT_EQ(encoded.at("window_s"), 10);
  const json::value& api = encoded.at("routes").at(0);
  EXPECT_EQ(api.at("weight_percent"), "0.5");
  EXPECT_EQ(api.at("requests"), 12000);
  const json::value& green = api.at("slots").at(1);
  EXPECT_DOUBLE_EQ(green.at("per_second").as_double(), 6.0);
  EXPECT_DOUBLE_EQ(green.at("share").as_double(), 0.005);
  EXPECT_DOUBLE_EQ(green.at("error_ratio").as_double(), 0.1);
  EXPECT_DOUBLE_EQ(green.at("p99_ms").as_double(), 9.875);
  EXPECT_EQ(green.at("p99_over"), false);
  const json::value& idle = encoded.at("routes").at(1).at("slots").at(1);
  EXPECT_TRUE(idle.at("share").is_number());  // web had requests, on its live slot
  EXPECT_TRUE(idle.at("error_ratio").is_null());
  EXPECT_TRUE(idle.at("p50_ms").is_null());
  EXPECT_EQ(stats_from_json(encoded, 7), stats);
  EXPECT_EQ(stats_from_json(json::object{}, 3), (Stats{3, 0, {}}));
}

TEST(ProtocolStatus, RoundTripsThroughJson) {
  const Status status = test::status_after_runtime_changes();
  const json::object encoded = status_to_json(status);
  EXPECT_EQ(encoded.at("routes").at(0).at("weight_percent").as_string(), "0.5");
  EXPECT_EQ(encoded.at("routes").at(0).at("weight_source").as_string(), "runtime");
  EXPECT_EQ(encoded.at("pools").at(0).at("servers").at(0).at("health").as_string(), "unchecked");
  EXPECT_EQ(encoded.at("pools").at(1).at("checked").as_bool(), true);
  const Status decoded = status_from_json(encoded, 13);
  EXPECT_EQ(decoded.generation, 13u);
  EXPECT_EQ(decoded.config_path, status.config_path);
  ASSERT_EQ(decoded.routes.size(), 2u);
  EXPECT_EQ(decoded.routes[0].weight_ppm, 5000u);
  EXPECT_EQ(decoded.routes[0].weight_source, Source::runtime);
  EXPECT_EQ(decoded.routes[0].live_source, Source::runtime);
  EXPECT_EQ(decoded.routes[1].live_source, Source::config);
  EXPECT_EQ(decoded.routes[0].sticky, "cookie sessionid");
  ASSERT_EQ(decoded.pools.size(), 2u);
  ASSERT_EQ(decoded.pools[0].servers.size(), 2u);
  EXPECT_EQ(decoded.pools[0].servers[0].health, Health::unchecked);
  EXPECT_EQ(decoded.pools[0].servers[1].health, Health::unhealthy);
  EXPECT_EQ(decoded.pools[0].servers[1].admin, ServerAdmin::draining);
  EXPECT_EQ(decoded.pools[0].servers[1].admin_source, Source::runtime);
  ASSERT_EQ(decoded.pools[1].servers.size(), 1u);
  EXPECT_EQ(decoded.pools[1].servers[0].health, Health::healthy);
  EXPECT_FALSE(decoded.pools[0].checked);
  EXPECT_TRUE(decoded.pools[1].checked);
}

TEST(ProtocolRollout, ThePlanAndTheRolloutRoundTrip) {
  Request request;
  request.command = "rollout";
  request.routes = {"api"};
  request.plan = RolloutPlan{};
  request.plan->steps_ppm = {5000, 1'000'000};
  request.plan->interval_ms = 30'000;
  request.plan->max_error_ratio = 0.02;
  request.plan->then = RolloutThen::hold;
  const DecodedRequest decoded = decode_request(encode_request(request));
  ASSERT_TRUE(decoded.request) << decoded.error.message;
  EXPECT_EQ(*decoded.request, request);

  Status status;
  RolloutStatus rollout;
  rollout.route = "api";
  rollout.live = "blue";
  rollout.passive = "green";
  rollout.phase = RolloutPhase::running;
  rollout.held_ms = 1500;
  rollout.waiting_for = "28s and 12 more requests";
  rollout.passive_figures = {88, 0, Quantile{4.9, false}};
  status.rollouts = {rollout};
  const Status back = status_from_json(status_to_json(status), 0);
  EXPECT_EQ(back.rollouts, status.rollouts);
}

TEST(ProtocolRollout, ABadPlanIsABadRequest) {
  const DecodedRequest decoded = decode_request(
      R"({"v":1,"command":"rollout","routes":["api"],"plan":{"then":"later"}})");
  ASSERT_FALSE(decoded.request);
  EXPECT_EQ(decoded.error.message, R"("plan": then must be flip or hold)");
}

TEST(ProtocolStatus, MissingFieldsKeepDefaults) {
  const Status decoded = status_from_json(
      json::parse(R"({"routes":[{"name":"api"},3],"pools":[{"servers":[{}]}]})").as_object(), 1);
  ASSERT_EQ(decoded.routes.size(), 1u);
  EXPECT_EQ(decoded.routes[0].weight_ppm, 0u);
  ASSERT_EQ(decoded.pools.size(), 1u);
  EXPECT_EQ(decoded.pools[0].servers[0].admin, ServerAdmin::enabled);
}

}  // namespace
}  // namespace proxyd::control
