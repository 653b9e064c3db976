// libFuzzer: a client's request head through scan, parse, check and the upstream rewrite
// (tests/fuzz/head_roundtrip.hpp says what must hold). Build and run: docs/architecture.md,
// "Fuzzing the head transform".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/head_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string fault = proxyd::test::request_roundtrip_fault(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!fault.empty()) {
    std::fprintf(stderr, "%s\n", fault.c_str());
    std::abort();
  }
  return 0;
}
