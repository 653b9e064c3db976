// The allocator the real binary runs on: the build links mimalloc ahead of libc (sanitizer builds
// and PROXYD_MIMALLOC=OFF keep glibc's), and the ready line says which one malloc() turned out to
// be, so a link order that lost the override shows here rather than only in the benchmarks.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

TEST(Allocator, TheReadyLineNamesTheAllocatorTheBuildChose) {
  FakeUpstream blue("blue");
  auto proxy = ProxydProcess::start(
      ConfigBuilder().workers(2).pool("blue", {blue.address()}).route("web", "/", "blue").yaml());
  ASSERT_TRUE(proxy);
  const auto ready = proxy->wait_for_line("proxyd: ready ", 10s);
  ASSERT_TRUE(ready.has_value()) << proxy->stderr_text();
  EXPECT_NE(ready->find(" allocator=" PROXYD_ALLOCATOR), std::string::npos) << *ready;

  const Response response = fetch(proxy->port("public"), "/");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("x-upstream"), "blue");
}

}  // namespace
}  // namespace proxyd::test
