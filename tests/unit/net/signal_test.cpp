// Signal (proxy/signal.hpp): a wait ends at a notify and only then, a notify before the wait is
// kept, a parked wait is the io_context's work, and a coroutine suspended on one is freed with
// the io_context or with the signal, as one suspended on a socket is.
#include "proxy/signal.hpp"

#include <gtest/gtest.h>

#include <boost/asio/detached.hpp>

#include <memory>
#include <optional>

#include "proxy/awaitable_frames.hpp"

namespace proxyd {
namespace {

struct SetOnDestruction {
  bool& flag;
  ~SetOnDestruction() { flag = true; }
};

// Waits on `s` twice, counting each wake-up in `woken`.
Task<void> wait_twice(Signal& s, int& woken) {
  co_await s.wait();
  ++woken;
  co_await s.wait();
  ++woken;
}

TEST(SignalTest, AWaitEndsAtANotifyAndOnlyThen) {
  net::io_context io;
  Signal signal(io.get_executor(), signal_service(io.get_executor()));
  int woken = 0;
  net::co_spawn(io, wait_twice(signal, woken), net::detached);
  io.poll();
  EXPECT_EQ(woken, 0);
  EXPECT_FALSE(io.stopped());  // the parked wait is work: run() would not return
  signal.notify();
  io.poll();
  EXPECT_EQ(woken, 1);
  EXPECT_FALSE(io.stopped());
  signal.notify();
  io.run();  // returns: nothing is left to wait for
  EXPECT_EQ(woken, 2);
  EXPECT_TRUE(io.stopped());
}

TEST(SignalTest, ANotifyBeforeTheWaitIsKeptOnce) {
  net::io_context io;
  Signal signal(io.get_executor(), signal_service(io.get_executor()));
  signal.notify();
  signal.notify();
  EXPECT_TRUE(signal.consume());
  EXPECT_FALSE(signal.consume());
  // Through wait(): it completes without another notify, and the next wait waits.
  signal.notify();
  int woken = 0;
  net::co_spawn(io, wait_twice(signal, woken), net::detached);
  io.poll();
  EXPECT_EQ(woken, 1);
  EXPECT_FALSE(io.stopped());
  signal.notify();
  io.run();
  EXPECT_EQ(woken, 2);
}

// As an HTTP/2 stream: the coroutine holds the object that holds the signal it waits on, a
// cycle only the io_context's destruction ends (a worker torn down with streams waiting).
TEST(SignalTest, ACoroutineParkedOnTheSignalOfItsOwnObjectIsFreedWithTheIoContext) {
  struct Holder {
    Holder(Executor executor, bool& freed)
        : signal(executor, signal_service(executor)), gone{freed} {}
    Signal signal;
    SetOnDestruction gone;
  };
  bool freed = false;
  bool resumed = false;
  {
    net::io_context io;
    auto holder = std::make_shared<Holder>(io.get_executor(), freed);
    net::co_spawn(
        io,
        [](std::shared_ptr<Holder> h, bool& resumed) -> Task<void> {
          co_await h->signal.wait();
          resumed = true;
        }(holder, resumed),
        net::detached);
    holder.reset();
    io.poll();
    EXPECT_FALSE(freed);
  }
  EXPECT_TRUE(freed);
  EXPECT_FALSE(resumed);
}

// A signal destroyed with a wait parked on it: the wait's coroutine is freed and its work given
// back, so run() returns.
TEST(SignalTest, ASignalDestroyedWithAParkedWaitFreesItsCoroutine) {
  net::io_context io;
  auto signal = std::make_unique<Signal>(io.get_executor(), signal_service(io.get_executor()));
  bool freed = false;
  net::co_spawn(
      io,
      [](Signal& s, bool& freed) -> Task<void> {
        SetOnDestruction gone{freed};
        co_await s.wait();
      }(*signal, freed),
      net::detached);
  io.poll();
  EXPECT_FALSE(freed);
  signal.reset();
  io.run();
  EXPECT_TRUE(freed);
  EXPECT_TRUE(io.stopped());
}

}  // namespace
}  // namespace proxyd
