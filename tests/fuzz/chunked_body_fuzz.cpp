// libFuzzer: a chunked body through decode_chunks as the relay drives it, against Beast's own
// parser (tests/fuzz/chunked_roundtrip.hpp says what must hold and how the first bytes choose
// the side, the stage, the buffer and the pieces). Build and run: docs/architecture.md,
// "Fuzzing the head transform".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/chunked_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string fault = proxyd::test::chunked_fault_from_bytes(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!fault.empty()) {
    std::fprintf(stderr, "%s\n", fault.c_str());
    std::abort();
  }
  return 0;
}
