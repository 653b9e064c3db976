// libFuzzer: a control request line, a state file, a fleet desired state or a config file, as
// the first byte picks (tests/fuzz/inputs_roundtrip.hpp says what must hold). Build and run:
// docs/architecture.md, "Fuzzing the head transform".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/inputs_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string fault = proxyd::test::input_fault_from_bytes(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!fault.empty()) {
    std::fprintf(stderr, "%s\n", fault.c_str());
    std::abort();
  }
  return 0;
}
