// The control protocol, the state file, the fleet's desired state and the config file on valid
// documents and on mutations of them (tests/fuzz/inputs_roundtrip.hpp): the fixed-seed stand-in
// for the fuzz_inputs harness in the suite.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "tests/fuzz/head_roundtrip.hpp"
#include "tests/fuzz/inputs_roundtrip.hpp"

namespace proxyd::test {
namespace {

const char* name(Input which) {
  switch (which) {
    case Input::control_request: return "control request";
    case Input::state_file: return "state file";
    case Input::fleet_desired: return "fleet desired state";
    case Input::config_file: return "config file";
  }
  return "?";
}

TEST(InputsRoundTrip, EverySeedIsAcceptedAndRoundTrips) {
  for (Input which : kInputs) {
    for (const std::string& seed : input_seeds(which)) {
      bool accepted = false;
      EXPECT_EQ(input_fault(which, seed, &accepted), "") << name(which) << ": " << seed;
      EXPECT_TRUE(accepted) << name(which) << ": " << seed;
    }
  }
}

// Five thousand mutations of each kind's seeds: refused with a message or read back unchanged.
TEST(InputsRoundTrip, FiveThousandMutationsOfEachKind) {
  std::mt19937 rng(20261201);
  for (Input which : kInputs) {
    const std::vector<std::string> seeds = input_seeds(which);
    int accepted_count = 0;
    for (int i = 0; i < 5000; ++i) {
      const std::string text =
          mutate(seeds[std::uniform_int_distribution<std::size_t>(0, seeds.size() - 1)(rng)], rng);
      bool accepted = false;
      ASSERT_EQ(input_fault(which, text, &accepted), "") << name(which) << ": " << text;
      accepted_count += accepted;
    }
    // Both outcomes come up in numbers: mutations that stay valid and ones that do not.
    EXPECT_GT(accepted_count, 100) << name(which);
    EXPECT_LT(accepted_count, 4750) << name(which);
  }
}

}  // namespace
}  // namespace proxyd::test
