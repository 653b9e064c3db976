// The state file: encoding round trip, every way a file can be corrupt (moved aside, never
// reused), and a save that fails leaving the previous file intact.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdlib.h>

#include "proxy/state_store.hpp"

namespace proxyd {
namespace {

namespace fs = std::filesystem;

RuntimeState sample() {
  RuntimeState s;
  s.generation = 42;
  s.routes["api"].live = "green";
  s.routes["api"].passive = "blue";
  s.routes["api"].weight_ppm = 5000;
  s.routes["web"].weight_ppm = 0;
  s.servers[{"blue", "127.0.0.1:9001"}] = ServerAdmin::draining;
  RolloutStatus rollout;
  rollout.route = "api";
  rollout.live = "blue";
  rollout.passive = "green";
  rollout.plan.steps_ppm = {5000, 200'000, 1'000'000};
  rollout.plan.interval_ms = 60'000;
  rollout.plan.then = RolloutThen::hold;
  rollout.phase = RolloutPhase::aborted;
  rollout.step = 1;
  rollout.started_at = 1714557800000;
  rollout.step_started_at = 1714557860000;
  rollout.ended_at = 1714557870000;
  rollout.salt = 0xfedc'ba98'7654'3210ull;  // above 2^63: must survive as an unsigned number
  rollout.reason = "error ratio: passive 3/3 (100.00%) ...";
  rollout.abort_code = "error_ratio";
  rollout.passive_figures = {3, 3, Quantile{2.5, false}};
  rollout.live_figures = {2000, 1, std::nullopt};
  s.rollouts["api"] = rollout;
  return s;
}

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/proxyd-state-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { fs::remove_all(dir); }
  void write(const std::string& text) { std::ofstream(path()) << text; }
  std::string path() const { return (dir / "state.json").string(); }
  std::vector<fs::path> files() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir;
};

TEST_F(StateStoreTest, SaveThenLoadRoundTrips) {
  StateStore store(path());
  ASSERT_FALSE(store.save(sample()));
  StateLoad loaded = store.load();
  EXPECT_TRUE(loaded.error.empty());
  ASSERT_TRUE(loaded.state);
  EXPECT_EQ(*loaded.state, sample());
  EXPECT_EQ(files(), std::vector<fs::path>{"state.json"});  // no temporary left behind
}

TEST_F(StateStoreTest, ABadRolloutEntryMakesTheFileCorrupt) {
  std::string error;
  EXPECT_FALSE(decode_state(
      R"({"version":1,"generation":3,"routes":{},"servers":[],"rollouts":[{"route":"api","phase":"going"}]})",
      error));
  EXPECT_EQ(error, "a rollout entry: phase must be running, paused, aborted or completed");
  EXPECT_FALSE(decode_state(
      R"({"version":1,"generation":3,"routes":{},"servers":[],"rollouts":[{"route":"api","step":7}]})",
      error));
  EXPECT_EQ(error, "a rollout entry: step must be a step of the plan");
  // A plan the control socket would have refused: a ratio of 5, steps not increasing.
  EXPECT_FALSE(decode_state(
      R"({"version":1,"generation":3,"routes":{},"servers":[],"rollouts":[{"route":"api",)"
      R"("plan":{"steps_ppm":[1000],"max_error_ratio":5}}]})",
      error));
  EXPECT_EQ(error,
            "a rollout entry: plan: --max-error-ratio: must be from 0 up to (not including) 1");
  EXPECT_FALSE(decode_state(
      R"({"version":1,"generation":3,"routes":{},"servers":[],"rollouts":[{"route":"api",)"
      R"("plan":{"steps_ppm":[50000,5000]}}]})",
      error));
  EXPECT_EQ(error, "a rollout entry: plan: --steps: steps must increase");
  // A file from before rollouts existed has none.
  const auto old = decode_state(R"({"version":1,"generation":3,"routes":{},"servers":[]})", error);
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->rollouts.empty());
}

TEST_F(StateStoreTest, MissingFileIsNotAnError) {
  StateLoad loaded = StateStore(path()).load();
  EXPECT_FALSE(loaded.state);
  EXPECT_TRUE(loaded.error.empty());
}

TEST_F(StateStoreTest, CorruptFilesAreMovedAsideAndReported) {
  const std::string full = encode_state(sample());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {full.substr(0, full.size() / 2), "not JSON"},  // truncated by a crash or a full disk
      {"", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"version":2,"generation":1,"routes":{},"servers":[]})", "unsupported or missing version"},
      {R"({"version":1,"generation":0,"routes":{},"servers":[]})", "generation must be a positive"},
      {R"({"version":1,"generation":3,"routes":{"api":{"weight_ppm":1000001}},"servers":[]})",
       "route api: bad weight_ppm"},
      {R"({"version":1,"generation":3,"routes":{"api":{"colour":"x"}},"servers":[]})",
       "route api: bad key colour"},
      {R"({"version":1,"generation":3,"routes":{},"servers":[{"pool":"b","server":"s","admin":"x"}]})",
       "server admin state must be"},
  };
  for (const auto& [text, reason] : cases) {
    write(text);
    StateLoad loaded = StateStore(path()).load();
    EXPECT_FALSE(loaded.state) << text;
    EXPECT_NE(loaded.error.find(reason), std::string::npos) << loaded.error;
    ASSERT_FALSE(loaded.moved_to.empty());
    EXPECT_FALSE(fs::exists(path()));
    std::ifstream kept(loaded.moved_to);
    std::stringstream content;
    content << kept.rdbuf();
    EXPECT_EQ(content.str(), text);  // the evidence is kept, byte for byte
    fs::remove(loaded.moved_to);
  }
}

TEST_F(StateStoreTest, FailedSaveKeepsThePreviousFile) {
  StateStore store(path());
  ASSERT_FALSE(store.save(sample()));
  // Replace the directory by a file: every later save must fail, and say why.
  const fs::path moved = dir.string() + ".moved";
  fs::rename(dir, moved);
  std::ofstream(dir) << "not a directory";
  RuntimeState changed = sample();
  changed.generation = 43;
  auto error = store.save(changed);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("cannot create"), std::string::npos) << *error;
  fs::remove(dir);
  fs::rename(moved, dir);
  StateLoad loaded = store.load();
  ASSERT_TRUE(loaded.state);
  EXPECT_EQ(loaded.state->generation, 42u);
}

}  // namespace
}  // namespace proxyd
