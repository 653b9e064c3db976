// Signal (proxy/signal.hpp): a wait ends at a notify, a deadline or a cancel and only then, a
// notify before the wait is kept, and a coroutine suspended on one is freed with the io_context
// or with the signal, as one suspended on a socket is.
#include "proxy/signal.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "proxy/awaitable_frames.hpp"

namespace proxyd {
namespace {

struct SetOnDestruction {
  bool& flag;
  ~SetOnDestruction() { flag = true; }
};

// Waits on `s` twice, as proxyd's waiters do (consuming the notify that woke it), counting each
// wake-up by a notify in `woken`.
Task<void> wait_twice(Signal& s, int& woken) {
  for (int i = 0; i < 2; ++i) {
    co_await s.wait();
    if (s.consume()) ++woken;
  }
}

TEST(SignalTest, AWaitEndsAtANotifyAndOnlyThen) {
  net::io_context io;
  Signal signal(io.get_executor(), signal_service(io.get_executor()));
  int woken = 0;
  net::co_spawn(io, wait_twice(signal, woken), net::detached);
  io.poll();
  EXPECT_EQ(woken, 0);
  EXPECT_FALSE(io.stopped());
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
  // Through wait(): it completes without another notify, and once that notify is consumed the
  // next wait waits.
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

// As a worker runs it (one thread, the UNSAFE_IO hint, so wake-ups go through the thread's own
// queue) and as a stream uses it: the deadline's firing wakes the wait without counting as a
// notify, and a notify in the same turn as the firing counts.
TEST(SignalTest, TheDeadlineWakesAWaitWithoutCountingAsANotify) {
  net::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  Signal signal(io.get_executor(), signal_service(io.get_executor()));
  std::vector<bool> notified;
  net::co_spawn(
      io,
      [](Signal& s, std::vector<bool>& notified) -> Task<void> {
        for (int i = 0; i < 3; ++i) {
          co_await s.wait();
          notified.push_back(s.consume());
        }
      }(signal, notified),
      net::detached);
  signal.deadline_fired();  // no wait parked yet: nothing to wake, nothing kept
  io.poll();
  EXPECT_TRUE(notified.empty());
  net::post(io, [&] { signal.deadline_fired(); });
  io.poll();
  EXPECT_EQ(notified, (std::vector<bool>{false}));
  net::post(io, [&] { signal.notify(); });
  io.poll();
  EXPECT_EQ(notified, (std::vector<bool>{false, true}));
  net::post(io, [&] {
    signal.deadline_fired();
    signal.notify();
  });
  io.run_for(std::chrono::seconds(10));  // bounded: a wake-up missed would leave it parked
  EXPECT_EQ(notified, (std::vector<bool>{false, true, true}));
  EXPECT_TRUE(io.stopped());
}

// A cancellation through the waiter's slot (what an awaitable operator does to its other branch)
// ends the wait with operation_aborted.
TEST(SignalTest, ACancelThroughTheSlotEndsTheWait) {
  net::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  net::cancellation_signal cancel;  // before the signal: it outlives a wait left parked
  Signal signal(io.get_executor(), signal_service(io.get_executor()));
  error_code ended;
  net::co_spawn(
      io,
      [](Signal& s, error_code& ended) -> Task<void> {
        try {
          co_await s.wait();
        } catch (const boost::system::system_error& e) {
          ended = e.code();
        }
      }(signal, ended),
      net::bind_cancellation_slot(cancel.slot(), net::detached));
  io.poll();
  EXPECT_FALSE(ended);
  cancel.emit(net::cancellation_type::terminal);
  io.run_for(std::chrono::seconds(10));  // bounded: a wait the cancel missed would stay parked
  EXPECT_EQ(ended, net::error::operation_aborted);
  EXPECT_TRUE(io.stopped());  // the wait and its work were given back
}

// Waits once on `s`, counting a wake-up by a notify in `woken` and an end by an error in `ended`.
Task<void> wait_once(Signal& s, int& woken, error_code& ended) {
  try {
    co_await s.wait();
    if (s.consume()) ++woken;
  } catch (const boost::system::system_error& e) {
    ended = e.code();
  }
}

// The cancel handler acts on its own wait only. Here the first wait is cancelled, a second one
// parks on the same signal before the first resumes, and the first's slot is emitted again (the
// handler stays in it until its waiter resumes): the second wait goes on.
TEST(SignalTest, ACancelHandlerReachesNoOtherWait) {
  net::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  net::cancellation_signal first_cancel, second_cancel;  // before the signal, as above
  Signal signal(io.get_executor(), signal_service(io.get_executor()));
  int first_woken = 0, second_woken = 0;
  error_code first_ended, second_ended;
  net::co_spawn(io, wait_once(signal, first_woken, first_ended),
                net::bind_cancellation_slot(first_cancel.slot(), net::detached));
  io.poll();  // the first wait is parked
  // In the worker's queue: the cancel (which queues the first waiter's end), the second waiter
  // (which parks), the cancel again, then the first waiter's end.
  net::post(io, [&] { first_cancel.emit(net::cancellation_type::terminal); });
  net::co_spawn(io, wait_once(signal, second_woken, second_ended),
                net::bind_cancellation_slot(second_cancel.slot(), net::detached));
  net::post(io, [&] { first_cancel.emit(net::cancellation_type::terminal); });
  io.poll();
  EXPECT_EQ(first_ended, net::error::operation_aborted);
  EXPECT_EQ(first_woken, 0);
  EXPECT_FALSE(second_ended);
  EXPECT_FALSE(io.stopped());  // the second wait is still parked
  signal.notify();
  io.run_for(std::chrono::seconds(10));
  EXPECT_EQ(second_woken, 1);
  EXPECT_FALSE(second_ended);
  EXPECT_TRUE(io.stopped());
}

// A signal destroyed with a wait parked under a cancellation slot (a worker torn down with an
// HTTP/2 write loop waiting) leaves nothing in the slot: a cancel emitted afterwards reaches no
// signal. (Under AddressSanitizer, a handler left behind would read the freed signal.)
TEST(SignalTest, ASignalDestroyedWithAParkedWaitLeavesItsSlotEmpty) {
  net::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  net::cancellation_signal cancel;
  auto signal = std::make_unique<Signal>(io.get_executor(), signal_service(io.get_executor()));
  int woken = 0;
  error_code ended;
  net::co_spawn(io, wait_once(*signal, woken, ended),
                net::bind_cancellation_slot(cancel.slot(), net::detached));
  io.poll();
  signal.reset();  // its wait is destroyed; the coroutine's unwinding is queued
  cancel.emit(net::cancellation_type::terminal);
  io.run_for(std::chrono::seconds(10));
  EXPECT_EQ(woken, 0);
  EXPECT_FALSE(ended);  // unwound, never resumed
  EXPECT_TRUE(io.stopped());
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

// A signal destroyed with a wait parked on it (never in proxyd): the wait's coroutine is unwound
// and its work given back, so run() returns.
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
