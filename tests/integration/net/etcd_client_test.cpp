// The etcd v3 JSON-gateway client against a real etcd 3.4: every call, the compare-and-swap, a
// lease that expires, a watch that sees puts in order, and failover past a dead endpoint.
#include "proxy/etcd_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <future>

#include "tests/support/etcd_process.hpp"
#include "tests/support/fake_upstream.hpp"

namespace proxyd {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

// Runs `task` on a fresh io_context to completion (every call has its own deadline).
template <class T>
T run(net::io_context& io, net::awaitable<T> task) {
  std::future<T> result = net::co_spawn(io, std::move(task), net::use_future);
  io.restart();
  io.run();
  return result.get();
}

Endpoint local(std::uint16_t port) { return Endpoint{"127.0.0.1", port}; }

TEST(EtcdBase64Test, RoundTrips) {
  for (const std::string text : {"", "a", "ab", "abc", "abcd", "/proxyd/prod/desired"}) {
    EXPECT_EQ(etcd::base64_decode(etcd::base64_encode(text)), text);
  }
  EXPECT_EQ(etcd::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(etcd::base64_encode("ab"), "YWI=");
  EXPECT_EQ(etcd::base64_decode("YWI="), "ab");
  EXPECT_EQ(etcd::base64_decode("YWI"), std::nullopt);
  EXPECT_EQ(etcd::prefix_end("/p/"), "/p0");
}

TEST(EtcdClientTest, PutRangeTxnRemove) {
  auto etcd = test::EtcdProcess::launch();
  ASSERT_TRUE(etcd);
  net::io_context io;
  etcd::Client client(io.get_executor(), {local(etcd->port())}, 2s);

  const etcd::Range missing = run(io, client.range("/t/desired"));
  ASSERT_EQ(missing.error, "");
  EXPECT_TRUE(missing.kvs.empty());
  EXPECT_GT(missing.revision, 0);

  // Created only if absent (mod_revision 0), then only at the revision it was read at.
  const etcd::Written created = run(io, client.put_if_revision("/t/desired", "{\"a\":1}", 0));
  ASSERT_EQ(created.error, "");
  EXPECT_TRUE(created.succeeded);
  const etcd::Written again = run(io, client.put_if_revision("/t/desired", "{}", 0));
  ASSERT_EQ(again.error, "");
  EXPECT_FALSE(again.succeeded);
  const etcd::Range read = run(io, client.range("/t/desired"));
  ASSERT_EQ(read.kvs.size(), 1u);
  EXPECT_EQ(read.kvs[0].value, "{\"a\":1}");
  EXPECT_EQ(read.kvs[0].mod_revision, created.revision);
  const etcd::Written swapped =
      run(io, client.put_if_revision("/t/desired", "{\"a\":2}", created.revision));
  EXPECT_TRUE(swapped.succeeded);
  EXPECT_EQ(swapped.revision, created.revision + 1);

  ASSERT_EQ(run(io, client.put("/t/members/a", "1")).error, "");
  ASSERT_EQ(run(io, client.put("/t/members/b", "2")).error, "");
  ASSERT_EQ(run(io, client.put("/t/membersx", "3")).error, "");
  const etcd::Range members = run(io, client.range("/t/members/", true));
  ASSERT_EQ(members.kvs.size(), 2u);
  EXPECT_EQ(members.kvs[0].key, "/t/members/a");
  EXPECT_EQ(members.kvs[1].key, "/t/members/b");
  ASSERT_EQ(run(io, client.remove("/t/members/a")).error, "");
  EXPECT_EQ(run(io, client.range("/t/members/", true)).kvs.size(), 1u);
}

TEST(EtcdClientTest, LeaseKeepsAKeyAliveUntilItIsNotKeptAlive) {
  auto etcd = test::EtcdProcess::launch();
  ASSERT_TRUE(etcd);
  net::io_context io;
  etcd::Client client(io.get_executor(), {local(etcd->port())}, 2s);
  const etcd::Lease lease = run(io, client.grant(2));
  ASSERT_EQ(lease.error, "");
  EXPECT_EQ(lease.ttl, 2);
  ASSERT_EQ(run(io, client.put("/t/hosts/a", "up", lease.id)).error, "");
  const etcd::Lease kept = run(io, client.keepalive(lease.id));
  ASSERT_EQ(kept.error, "");
  EXPECT_EQ(kept.ttl, 2);
  // Not kept alive: the key goes within the TTL (bounded poll).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline &&
         !run(io, client.range("/t/hosts/a")).kvs.empty())
    std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(run(io, client.range("/t/hosts/a")).kvs.empty());
  const etcd::Lease gone = run(io, client.keepalive(lease.id));
  ASSERT_EQ(gone.error, "");
  EXPECT_EQ(gone.ttl, 0);
}

TEST(EtcdClientTest, WatchSeesEveryPutInOrderFromItsStartRevision) {
  auto etcd = test::EtcdProcess::launch();
  ASSERT_TRUE(etcd);
  net::io_context io;
  etcd::Client client(io.get_executor(), {local(etcd->port())}, 2s);
  const etcd::Written first = run(io, client.put("/t/desired", "1"));
  ASSERT_EQ(first.error, "");
  std::vector<std::pair<std::int64_t, std::string>> seen;
  auto watching = [&]() -> net::awaitable<std::string> {
    co_return co_await client.watch("/t/desired", first.revision,
                                    [&](const etcd::Event& e) -> net::awaitable<void> {
                                      seen.emplace_back(e.kv.mod_revision, e.kv.value);
                                      if (seen.size() == 3) client.stop_watch();
                                      co_return;
                                    });
  };
  auto writes = [&]() -> net::awaitable<void> {
    co_await client.put("/t/other", "x");
    co_await client.put("/t/desired", "2");
    co_await client.put("/t/desired", "3");
  };
  std::future<std::string> ended = net::co_spawn(io, watching(), net::use_future);
  net::co_spawn(io, writes(), net::detached);
  io.restart();
  io.run_for(10s);
  ASSERT_EQ(ended.wait_for(0s), std::future_status::ready);
  EXPECT_NE(ended.get(), "");
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], (std::pair<std::int64_t, std::string>{first.revision, "1"}));
  EXPECT_EQ(seen[1], (std::pair<std::int64_t, std::string>{first.revision + 2, "2"}));
  EXPECT_EQ(seen[2], (std::pair<std::int64_t, std::string>{first.revision + 3, "3"}));
}

TEST(EtcdClientTest, ADeadEndpointIsSkippedAndAllDeadIsAnError) {
  auto etcd = test::EtcdProcess::launch();
  ASSERT_TRUE(etcd);
  net::io_context io;
  const test::RefusingPort refusing;
  const std::uint16_t dead = refusing.port();
  etcd::Client client(io.get_executor(), {local(dead), local(etcd->port())}, 2s);
  ASSERT_EQ(run(io, client.put("/t/k", "v")).error, "");
  EXPECT_EQ(client.endpoint(), "127.0.0.1:" + std::to_string(etcd->port()));
  etcd->stop();
  const etcd::Range failed = run(io, client.range("/t/k"));
  EXPECT_NE(failed.error.find("cannot connect to 127.0.0.1:" + std::to_string(dead)),
            std::string::npos)
      << failed.error;
  EXPECT_NE(failed.error.find("cannot connect to 127.0.0.1:" + std::to_string(etcd->port())),
            std::string::npos)
      << failed.error;
}

}  // namespace
}  // namespace proxyd
