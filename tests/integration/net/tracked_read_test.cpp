// async_read_some_tracked (proxy/read_readiness.hpp) on real loopback sockets, driven by a
// test-owned io_context, with the system calls counted on the read socket (syscall_counts.hpp):
// a read that left the socket empty lets the next one wait for its event with no recv() first,
// and no byte, FIN or cancel is missed or delayed for it.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <string>
#include <string_view>

#include "proxy/read_readiness.hpp"
#include "syscall_counts.hpp"

namespace proxyd {
namespace {

using namespace std::chrono_literals;

struct Read {
  bool done = false;
  error_code ec;
  std::size_t n = 0;
};

class TrackedReadTest : public ::testing::Test {
 protected:
  TrackedReadTest() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    peer_.connect(acceptor_.local_endpoint());
    acceptor_.accept(socket_);
  }

  bool tracking() const {
#ifdef PROXYD_READ_READINESS
    return true;
#else
    return false;
#endif
  }

  // Starts a tracked read into buf_ (at most `size` bytes) and runs what is ready, without
  // waiting: the read is done only if it found bytes, an EOF or an error at once.
  void start(Read& into, std::size_t size = kBufferSize) {
    into = Read{};
    net::co_spawn(io_, [this, &into, size]() -> Task<> {
      std::tie(into.ec, into.n) =
          co_await async_read_some_tracked(socket_, net::buffer(buf_.data(), size), use_task);
      into.done = true;
    }, net::detached);
    io_.restart();
    io_.poll();
  }

  // Lets the loop take the socket's events with no read pending, as it does when the bytes come
  // before the read starts. Without it, an event taken in the same poll() as the read starts but
  // handled after it sets the flag again: one recv() more, never one less, and a test of what a
  // read does after another that left bytes or a FIN behind would pass by that alone.
  void take_events() {
    io_.restart();
    io_.poll();
  }

  // Sends `bytes`, lets the loop take their event, and reads them with one tracked read.
  void read_sent(Read& read, std::string_view bytes) {
    send(bytes);
    take_events();
    start(read);
    ASSERT_TRUE(finish(read));
    EXPECT_EQ(read.ec, error_code());
    ASSERT_EQ(got(read), bytes);
  }

  // Runs handlers until the read is done or two seconds have passed.
  bool finish(const Read& read) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    io_.restart();
    while (!read.done && std::chrono::steady_clock::now() < deadline) io_.run_one_for(50ms);
    return read.done;
  }

  std::string got(const Read& read) const { return std::string(buf_.data(), read.n); }

  void send(std::string_view bytes) { net::write(peer_, net::buffer(bytes)); }

  static constexpr std::size_t kBufferSize = 4096;
  net::io_context io_;
  // So that poll() runs the reactor even with no read pending: the loop takes events then.
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  Acceptor acceptor_{io_.get_executor()};
  Socket peer_{io_.get_executor()};
  Socket socket_{io_.get_executor()};
  std::array<char, kBufferSize> buf_{};
};

// The keep-alive case: a request read whole, the response sent, the next read started before the
// next request comes. It makes no recv() until that request's event, then exactly one.
TEST_F(TrackedReadTest, AReadThatLeftTheSocketEmptyLetsTheNextWaitWithoutARecv) {
  if (!tracking()) GTEST_SKIP() << "built against another Asio reactor: Asio's reads";
  ASSERT_TRUE(report_bytes_left(socket_));
  const test::SyscallWatch watch(socket_.native_handle());
  Read read;
  ASSERT_NO_FATAL_FAILURE(read_sent(read, "GET /1 HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(watch.counts().socket_reads, 1);

  for (int i = 2; i <= 4; ++i) {
    start(read);
    EXPECT_FALSE(read.done) << i;
    EXPECT_EQ(watch.counts().socket_reads, i - 1) << "no recv() before the bytes' event, " << i;
    const std::string request = "GET /" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
    send(request);
    ASSERT_TRUE(finish(read)) << i;
    EXPECT_EQ(read.ec, error_code()) << i;
    EXPECT_EQ(got(read), request) << i;
    EXPECT_EQ(watch.counts().socket_reads, i) << "exactly one recv() per request, " << i;
  }
  EXPECT_EQ(watch.counts().epoll_ctls, 0);
}

// The control: the same reads without report_bytes_left are Asio's, each after the first trying
// a recv() that finds nothing before it waits (the call the tracked read saves).
TEST_F(TrackedReadTest, WithoutTheKernelsCountEachReadTriesARecvFirstAsAsiosDo) {
  const test::SyscallWatch watch(socket_.native_handle());
  Read read;
  ASSERT_NO_FATAL_FAILURE(read_sent(read, "one"));
  EXPECT_EQ(watch.counts().socket_reads, 1);
  start(read);
  EXPECT_FALSE(read.done);
  EXPECT_EQ(watch.counts().socket_reads, 2) << "a recv() that found nothing";
  send("two");
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(got(read), "two");
  EXPECT_EQ(watch.counts().socket_reads, 3);
}

// Bytes that came after the last read, whose event the loop took before the next read started
// (a pipelined request, sent while the response was being made): read at once, not left waiting
// for an event that already passed.
TEST_F(TrackedReadTest, BytesWhoseEventPassedBeforeTheReadStartedAreReadAtOnce) {
  ASSERT_TRUE(report_bytes_left(socket_));
  Read read;
  ASSERT_NO_FATAL_FAILURE(read_sent(read, "first"));
  send("second");
  take_events();  // with no read pending
  const test::SyscallWatch watch(socket_.native_handle());
  start(read);
  EXPECT_TRUE(read.done) << "read at once";
  EXPECT_EQ(read.ec, error_code());
  EXPECT_EQ(got(read), "second");
  EXPECT_EQ(watch.counts().socket_reads, 1);
}

// A read that did not take everything (the buffer was smaller) leaves the socket as it is: the
// next read takes the rest at once.
TEST_F(TrackedReadTest, AReadThatLeftBytesBehindIsFollowedByAnImmediateRead) {
  ASSERT_TRUE(report_bytes_left(socket_));
  Read read;
  send("abcdefghij");
  take_events();
  start(read, 4);
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(got(read), "abcd");
  start(read, 4);
  EXPECT_TRUE(read.done) << "the rest is there";
  EXPECT_EQ(got(read), "efgh");
  start(read, 4);
  EXPECT_TRUE(read.done);
  EXPECT_EQ(got(read), "ij");
  start(read, 4);
  EXPECT_FALSE(read.done) << "now empty: waits";
  send("k");
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(got(read), "k");
}

// A client that sends its request and its FIN together (a half-close): the request's read is
// not taken for one that left the socket empty, and the next read ends with EOF at once, not
// after an idle timeout. A FIN that comes later raises its own event.
TEST_F(TrackedReadTest, AFinThatCameWithTheBytesEndsTheNextReadAtOnce) {
  ASSERT_TRUE(report_bytes_left(socket_));
  Read read;
  send("GET / HTTP/1.1\r\n\r\n");
  peer_.shutdown(tcp::socket::shutdown_send);
  take_events();
  start(read);
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(read.ec, error_code());
  EXPECT_EQ(got(read), "GET / HTTP/1.1\r\n\r\n");
  start(read);
  EXPECT_TRUE(read.done) << "the FIN is read at once";
  EXPECT_EQ(read.ec, net::error::eof);
  EXPECT_EQ(read.n, 0u);
  start(read);
  EXPECT_TRUE(read.done) << "and again after it";
  EXPECT_EQ(read.ec, net::error::eof);
}

TEST_F(TrackedReadTest, AFinThatComesWhileTheReadWaitsEndsIt) {
  ASSERT_TRUE(report_bytes_left(socket_));
  Read read;
  ASSERT_NO_FATAL_FAILURE(read_sent(read, "x"));
  start(read);
  EXPECT_FALSE(read.done);
  peer_.shutdown(tcp::socket::shutdown_send);
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(read.ec, net::error::eof);
}

// A pending tracked read ends with operation_aborted on the socket's cancel (a deadline) and on
// its handler's cancellation slot (an awaitable operator), and the socket reads on after either.
TEST_F(TrackedReadTest, APendingReadIsCancelledByTheSocketAndByItsSlot) {
  ASSERT_TRUE(report_bytes_left(socket_));
  Read read;
  ASSERT_NO_FATAL_FAILURE(read_sent(read, "x"));
  start(read);
  ASSERT_FALSE(read.done);
  socket_.cancel();
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(read.ec, net::error::operation_aborted);

  net::cancellation_signal signal;
  Read slotted;
  async_read_some_tracked(socket_, net::buffer(buf_),
                          net::bind_cancellation_slot(signal.slot(), [&](error_code ec,
                                                                         std::size_t n) {
                            slotted = {true, ec, n};
                          }));
  io_.restart();
  io_.poll();
  ASSERT_FALSE(slotted.done);
  signal.emit(net::cancellation_type::terminal);
  ASSERT_TRUE(finish(slotted));
  EXPECT_EQ(slotted.ec, net::error::operation_aborted);

  send("after");
  start(read);
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(read.ec, error_code());
  EXPECT_EQ(got(read), "after");
}

// Asio makes a socket non-blocking at its first asynchronous operation, and the socket's other
// users count on it (splice(2) of a request body from the client socket would block the worker):
// a tracked read that is the socket's first operation does the same.
TEST_F(TrackedReadTest, TheFirstReadMakesTheSocketNonBlockingAsAsiosOperationsDo) {
  const int fd = socket_.native_handle();
  ASSERT_EQ(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0) << "accepted blocking";
  Read read;
  start(read);
  EXPECT_FALSE(read.done);
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  send("x");
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(got(read), "x");
}

// A socket closed, or never opened: the read fails as Asio's does, with no crash.
TEST_F(TrackedReadTest, AReadOnAClosedSocketFailsWithBadDescriptor) {
  socket_.close();
  Read read;
  start(read);
  ASSERT_TRUE(finish(read));
  EXPECT_EQ(read.ec, net::error::bad_descriptor);
}

}  // namespace
}  // namespace proxyd
