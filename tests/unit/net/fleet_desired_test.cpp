// The fleet's desired-state document: encoding both ways, every decoding error, the operations a
// member applies, and how fleet commands edit it (a flip of a route the document does not name
// yet swaps the member's own slots).
#include "proxy/fleet_desired.hpp"

#include <gtest/gtest.h>

namespace proxyd {
namespace {

Status local_status() {
  Status status;
  RouteStatus api;
  api.name = "api";
  api.live = "blue";
  api.passive = "green";
  RouteStatus web = api;
  web.name = "web";
  status.routes = {api, web};
  for (const char* name : {"blue", "green"}) {
    PoolStatus pool;
    pool.name = name;
    ServerStatus server;
    server.name = std::string(name) == "blue" ? "127.0.0.1:9001" : "127.0.0.1:9011";
    pool.servers.push_back(server);
    status.pools.push_back(pool);
  }
  return status;
}

TEST(FleetDesiredTest, EncodesAndDecodesEveryField) {
  Desired desired;
  desired.routes["api"] = DesiredRoute{"green", "blue", 5000};
  desired.routes["web"].weight_ppm = 0;
  desired.servers[{"blue", "127.0.0.1:9001"}] = ServerAdmin::draining;
  desired.force = true;
  desired.command = "fleet flip api";
  const std::string text = encode_desired(desired);
  EXPECT_EQ(text,
            R"({"routes":{"api":{"live":"green","passive":"blue","weight_ppm":5000},"web":{"weight_ppm":0}},)"
            R"("servers":{"blue/127.0.0.1:9001":"draining"},"force":true,"command":"fleet flip api"})");
  std::string error;
  EXPECT_EQ(decode_desired(text, error), desired) << error;
}

TEST(FleetDesiredTest, DecodingErrors) {
  const auto error_of = [](std::string_view text) {
    std::string error;
    EXPECT_FALSE(decode_desired(text, error));
    return error;
  };
  EXPECT_EQ(error_of("nope"), "not JSON: syntax error");
  EXPECT_EQ(error_of("[]"), "not a JSON object");
  EXPECT_EQ(error_of(R"({"routes":{"api":1}})"), "route api is not an object");
  EXPECT_EQ(error_of(R"({"routes":{"api":{"weight_ppm":1000001}}})"), "route api: bad key weight_ppm");
  EXPECT_EQ(error_of(R"({"servers":{"x":"enabled"}})"),
            R"(server x: expected "POOL/SERVER": "enabled", "draining" or "disabled")");
  EXPECT_EQ(error_of(R"({"routs":{}})"), "bad key routs");
}

TEST(FleetDesiredTest, OperationsNameOnlyWhatTheDocumentSays) {
  Desired desired;
  desired.routes["api"].weight_ppm = 5000;
  desired.routes["web"].live = "green";
  desired.servers[{"blue", "127.0.0.1:9001"}] = ServerAdmin::disabled;
  const std::vector<Operation> ops = desired_operations(desired);
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].kind, Operation::Kind::set_weight);
  EXPECT_EQ(ops[0].route, "api");
  EXPECT_EQ(ops[0].weight_ppm, 5000u);
  EXPECT_EQ(ops[1].kind, Operation::Kind::set_live);
  EXPECT_EQ(ops[1].pool, "green");
  EXPECT_EQ(ops[2].kind, Operation::Kind::server_admin);
  EXPECT_EQ(ops[2].admin, ServerAdmin::disabled);
}

TEST(FleetDesiredTest, EditsResolveFlipsAgainstTheDocumentThenTheMember) {
  Desired desired;
  Operation flip;
  flip.kind = Operation::Kind::flip;
  flip.route = "api";
  ASSERT_EQ(edit_desired(desired, {flip}, local_status()), std::nullopt);
  EXPECT_EQ(desired.routes["api"], (DesiredRoute{"green", "blue", 0}));
  // Flipped again: from the document's values, not the member's.
  ASSERT_EQ(edit_desired(desired, {flip}, local_status()), std::nullopt);
  EXPECT_EQ(desired.routes["api"], (DesiredRoute{"blue", "green", 0}));
  Operation all;
  all.kind = Operation::Kind::flip_all;
  ASSERT_EQ(edit_desired(desired, {all}, local_status()), std::nullopt);
  EXPECT_EQ(desired.routes["web"], (DesiredRoute{"green", "blue", 0}));
}

TEST(FleetDesiredTest, EditsRefuseUnknownNamesAndReset) {
  Desired desired;
  Operation op;
  op.kind = Operation::Kind::set_weight;
  op.route = "nope";
  EXPECT_EQ(edit_desired(desired, {op}, local_status()), "no route named nope");
  op.kind = Operation::Kind::set_live;
  op.route = "api";
  op.pool = "purple";
  EXPECT_EQ(edit_desired(desired, {op}, local_status()), "no pool named purple");
  op.kind = Operation::Kind::server_admin;
  op.pool = "blue";
  op.server = "127.0.0.1:1";
  EXPECT_EQ(edit_desired(desired, {op}, local_status()), "no server 127.0.0.1:1 in pool blue");
  op.kind = Operation::Kind::reset;
  EXPECT_NE(edit_desired(desired, {op}, local_status()), std::nullopt);
}

}  // namespace
}  // namespace proxyd
