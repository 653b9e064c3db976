// accept_connection and adopt_connection (proxy/read_readiness.hpp) on real loopback sockets,
// driven by a test-owned io_context, with the system calls counted on the accepted descriptor
// (syscall_counts.hpp): the peer's address comes with the accept, the descriptor is non-blocking
// and close-on-exec from the start, and neither Asio's operations nor TlsStream make it
// non-blocking again (Boost 1.81's Asio; elsewhere Asio's own ioctl does it once), its close
// makes no epoll_ctl; a connection handed to another Socket keeps all of that.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>

#include "proxy/read_readiness.hpp"
#include "proxy/tls_stream.hpp"
#include "syscall_counts.hpp"

namespace proxyd {
namespace {

using namespace std::chrono_literals;

class AcceptConnectionTest : public ::testing::Test {
 protected:
  AcceptConnectionTest() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    acceptor_.non_blocking(true);  // as the workers' accept loops make theirs
  }

  // One read on `socket` to its end (or five seconds), with the system calls on it counted
  // from its start: `peer_` sends "x" once the read has begun.
  test::SyscallCounts read_one_byte(Socket& socket) {
    const test::SyscallWatch watch(socket.native_handle());
    bool done = false;
    std::array<char, 8> buffer{};
    std::size_t n = 0;
    error_code ec;
    net::co_spawn(io_, [&]() -> Task<> {
      std::tie(ec, n) = co_await async_read_some_tracked(socket, net::buffer(buffer), use_task);
      done = true;
    }, net::detached);
    io_.restart();
    io_.poll();
    net::write(peer_, net::buffer(std::string_view("x")));
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < deadline) io_.run_one_for(50ms);
    EXPECT_TRUE(done);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(std::string(buffer.data(), n), "x");
    return watch.counts();
  }

  // `peer_` connects, and accept_connection() takes its connection into a new socket.
  Socket accept_peer(tcp::endpoint& from) {
    peer_.connect(acceptor_.local_endpoint());
    Socket socket(io_.get_executor());
    error_code ec;
    accept_connection(acceptor_, socket, from, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(socket.is_open());
    return socket;
  }

  // A read on `socket` to its end, with no ioctl where Asio's state can be told that the
  // descriptor is non-blocking (Boost 1.81; elsewhere Asio's own ioctl sets it once).
  void expect_read_without_ioctl(Socket& socket) {
    [[maybe_unused]] const test::SyscallCounts counts = read_one_byte(socket);
#ifdef PROXYD_READ_READINESS
    EXPECT_EQ(counts.ioctls, 0);
#endif
  }

  static bool non_blocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }
  static bool close_on_exec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

  net::io_context io_;
  Acceptor acceptor_{io_.get_executor()};
  tcp::socket peer_{io_};
};

TEST_F(AcceptConnectionTest, ThePeersAddressComesWithTheAcceptAndNoIoctlSetsItNonBlockingAgain) {
  tcp::endpoint from;
  Socket socket = accept_peer(from);
  ASSERT_TRUE(socket.is_open());
  EXPECT_EQ(from, peer_.local_endpoint());
  const int fd = socket.native_handle();
  EXPECT_TRUE(non_blocking(fd));
  EXPECT_TRUE(socket.non_blocking());
  EXPECT_TRUE(close_on_exec(fd));
  expect_read_without_ioctl(socket);
}

// TlsStream makes a socket non-blocking unless it is already: on an accepted one, no ioctl.
TEST_F(AcceptConnectionTest, ATlsStreamOverAnAcceptedSocketMakesNoIoctl) {
  tcp::endpoint from;
  Socket socket = accept_peer(from);
  ASSERT_TRUE(socket.is_open());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ASSERT_NE(ctx, nullptr);
  {
    const test::SyscallWatch watch(socket.native_handle());
    std::optional<TlsStream> tls(std::in_place, socket, SSL_new(ctx));
    EXPECT_TRUE(non_blocking(socket.native_handle()));
#ifdef PROXYD_READ_READINESS
    EXPECT_EQ(watch.counts().ioctls, 0);
#endif
  }
  SSL_CTX_free(ctx);
}

// Released by one Socket and opened by another (a connection handed to another worker): still
// non-blocking, as the new Socket's state says, and its reads make no ioctl.
TEST_F(AcceptConnectionTest, AnAdoptedConnectionStaysNonBlockingWithoutAnIoctl) {
  tcp::endpoint from;
  Socket first = accept_peer(from);
  ASSERT_TRUE(first.is_open());
  error_code ec;
  const int fd = first.release(ec);
  ASSERT_FALSE(ec) << ec.message();
  Socket adopted(io_.get_executor());
  adopt_connection(adopted, from.protocol(), fd, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(adopted.non_blocking());
  EXPECT_TRUE(non_blocking(fd));
  expect_read_without_ioctl(adopted);
}

// Closing an accepted connection makes no epoll_ctl: its descriptor is no duplicate, so its close
// takes it out of the reactor's epoll set, as for a socket Asio opens itself (assign(), which
// Asio's own accept uses too, left an EPOLL_CTL_DEL first). The set is then clean: the next
// connection, which gets the same descriptor number, is registered and read as usual. A
// connection handed to another Socket closes the same way.
TEST_F(AcceptConnectionTest, ClosingAnAcceptedConnectionMakesNoEpollCtl) {
  tcp::endpoint from;
  std::optional<Socket> first(accept_peer(from));
  ASSERT_TRUE(first->is_open());
  read_one_byte(*first);  // registered with the reactor and read through it
  const int fd = first->native_handle();
  {
    const test::SyscallWatch watch(fd);
    first.reset();
#ifdef PROXYD_READ_READINESS
    EXPECT_EQ(watch.counts().epoll_ctls, 0);
#endif
  }
  peer_.close();
  tcp::endpoint again;
  Socket second = accept_peer(again);
  ASSERT_TRUE(second.is_open());
  EXPECT_EQ(second.native_handle(), fd);
  read_one_byte(second);

  error_code ec;
  const int handed = second.release(ec);
  ASSERT_FALSE(ec) << ec.message();
  std::optional<Socket> adopted(std::in_place, io_.get_executor());
  adopt_connection(*adopted, again.protocol(), handed, ec);
  ASSERT_FALSE(ec) << ec.message();
  read_one_byte(*adopted);
  const test::SyscallWatch watch(handed);
  adopted.reset();
#ifdef PROXYD_READ_READINESS
  EXPECT_EQ(watch.counts().epoll_ctls, 0);
#endif
}

// No connection waiting: would_block, as the workers' loops expect to end a batch, and the
// socket stays closed.
TEST_F(AcceptConnectionTest, WithNoConnectionWaitingItIsWouldBlock) {
  Socket socket(io_.get_executor());
  tcp::endpoint from;
  error_code ec;
  accept_connection(acceptor_, socket, from, ec);
  EXPECT_EQ(ec, net::error::would_block) << ec.message();
  EXPECT_FALSE(socket.is_open());
}

// Accepting into a socket already open fails as Asio's accept does, before the accept: the
// connection still waits, for the next accept to take.
TEST_F(AcceptConnectionTest, AcceptingIntoAnOpenSocketFailsAndLeavesTheConnectionWaiting) {
  peer_.connect(acceptor_.local_endpoint());
  Socket socket(io_.get_executor());
  socket.open(tcp::v4());
  tcp::endpoint from;
  error_code ec;
  accept_connection(acceptor_, socket, from, ec);
  EXPECT_EQ(ec, net::error::already_open) << ec.message();
  Socket fresh(io_.get_executor());
  accept_connection(acceptor_, fresh, from, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(from, peer_.local_endpoint());
}

}  // namespace
}  // namespace proxyd
