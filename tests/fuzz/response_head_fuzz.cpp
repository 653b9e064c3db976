// libFuzzer: an upstream's response head through both parsers, the check and the client
// rewrite (tests/fuzz/head_roundtrip.hpp says what must hold). The first byte chooses the
// request (HEAD or not) and the client (HTTP/1.0 or 1.1, keep-alive or not). Build and run:
// docs/architecture.md, "Fuzzing the head transform".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/head_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string fault = proxyd::test::response_roundtrip_fault(
      std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), (data[0] & 1) != 0,
      (data[0] & 2) != 0 ? 0 : 1, (data[0] & 4) != 0);
  if (!fault.empty()) {
    std::fprintf(stderr, "%s\n", fault.c_str());
    std::abort();
  }
  return 0;
}
