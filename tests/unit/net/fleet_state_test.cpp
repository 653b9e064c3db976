// The state file's "fleet" entry: the revision a fleet member applied and its drift survive a
// restart; files without it (standalone proxyds, older files) read as revision 0; a damaged one
// is refused like any other damage.
#include "proxy/state_store.hpp"

#include <gtest/gtest.h>

namespace proxyd {
namespace {

TEST(FleetStateTest, RevisionAndDriftRoundTrip) {
  RuntimeState state;
  state.generation = 7;
  state.fleet_revision = 42;
  state.fleet_drift = true;
  const std::string text = encode_state(state);
  EXPECT_NE(text.find(R"("fleet":{"revision":42,"drift":true})"), std::string::npos) << text;
  std::string error;
  EXPECT_EQ(decode_state(text, error), state) << error;
}

TEST(FleetStateTest, AStandaloneFileHasNoFleetEntry) {
  RuntimeState state;
  EXPECT_EQ(encode_state(state).find("fleet"), std::string::npos);
  std::string error;
  const auto decoded =
      decode_state(R"({"version":1,"generation":3,"routes":{},"servers":[]})", error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(decoded->fleet_revision, 0);
  EXPECT_FALSE(decoded->fleet_drift);
}

TEST(FleetStateTest, ADamagedFleetEntryIsRefused) {
  std::string error;
  EXPECT_FALSE(decode_state(
      R"({"version":1,"generation":3,"routes":{},"servers":[],"fleet":{"revision":"x"}})", error));
  EXPECT_EQ(error, R"(fleet must be {"revision": N, "drift": true|false})");
}

}  // namespace
}  // namespace proxyd
