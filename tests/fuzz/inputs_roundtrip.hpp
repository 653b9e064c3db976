// The inputs proxyd reads from outside its data plane, checked on any bytes: a control-socket
// request line, the state file, the fleet's desired state (from etcd) and a config file. Each
// decoder must refuse what it cannot read with an error and never crash or throw; what it accepts
// must survive being written and read again unchanged (the state file and the desired state are
// written by proxyd itself and read back at the next start, so a value that does not round-trip
// is runtime state lost). Used by the libFuzzer harness fuzz_inputs and, on fixed-seed mutations
// of valid documents, by tests/unit/net/inputs_roundtrip_test.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace proxyd::test {

enum class Input { control_request, state_file, fleet_desired, config_file };
inline constexpr Input kInputs[] = {Input::control_request, Input::state_file,
                                    Input::fleet_desired, Input::config_file};

// "" when every property holds, else what broke; `accepted`, when given, says whether the
// decoder took the input.
std::string input_fault(Input which, std::string_view text, bool* accepted = nullptr);

// From fuzz bytes: the first picks the input, the rest is its text.
std::string input_fault_from_bytes(std::string_view bytes);

// Valid documents of each kind, written by proxyd's own encoders (the config: a small file
// using every section).
std::vector<std::string> input_seeds(Input which);

}  // namespace proxyd::test
