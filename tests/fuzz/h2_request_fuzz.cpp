// libFuzzer: an HTTP/2 request's header list through a real nghttp2 client and server session,
// then proxyd's check and upstream rewrite (tests/fuzz/h2_roundtrip.hpp says what must hold and
// how the bytes become a list). Build and run: docs/architecture.md, "Fuzzing the head transform".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/h2_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bool body = false;
  const proxyd::test::H2Fields fields = proxyd::test::h2_fields_from_bytes(
      std::string_view(reinterpret_cast<const char*>(data), size), body);
  const std::string fault = proxyd::test::h2_request_fault(fields, body);
  if (!fault.empty()) {
    std::fprintf(stderr, "%s\n", fault.c_str());
    std::abort();
  }
  return 0;
}
