// Stream::write_all (proxy/stream.hpp) on real loopback sockets, driven by a test-owned
// io_context: what the socket takes at once goes out without a turn of the worker's queue, and
// what it cannot take follows in order, byte for byte.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>

#include <array>
#include <string>
#include <thread>

#include "proxy/stream.hpp"

namespace proxyd {
namespace {

std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    out[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return out;
}

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    peer_.connect(acceptor_.local_endpoint());
    Socket accepted(io_);
    acceptor_.accept(accepted);
    stream_.emplace(std::move(accepted));
  }

  // Runs `task` to its end; the number of handlers the io_context ran for it.
  template <class F>
  std::size_t run(F task) {
    net::co_spawn(io_, task(), net::detached);
    io_.restart();
    return io_.run();
  }

  net::io_context io_;
  Acceptor acceptor_{io_};
  Socket peer_{io_};
  std::optional<Stream> stream_;
};

TEST_F(StreamTest, WhatTheSocketTakesAtOnceGoesOutWithoutATurnOfTheQueue) {
  const std::size_t idle = run([]() -> Task<> { co_return; });

  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  const std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer("hello", 5)};
  error_code ec = net::error::would_block;
  std::size_t written = 0;
  const std::size_t handlers = run([&]() -> Task<> {
    std::tie(ec, written) = co_await stream_->write_all(buffers);
  });
  EXPECT_EQ(ec, error_code());
  EXPECT_EQ(written, head.size() + 5);
  EXPECT_EQ(handlers, idle);  // no completion posted

  std::string got(head.size() + 5, '\0');
  net::read(peer_, net::buffer(got));
  EXPECT_EQ(got, head + "hello");

  // Asio's own composed write completes through one more handler: what write_all saves.
  const std::size_t composed = run([&]() -> Task<> {
    std::tie(ec, written) = co_await stream_->async_write_all(buffers, use_task);
  });
  EXPECT_EQ(composed, idle + 1);
  net::read(peer_, net::buffer(got));
  EXPECT_EQ(got, head + "hello");
}

TEST_F(StreamTest, WhatTheSocketCannotTakeAtOnceFollowsInOrder) {
  stream_->socket().set_option(net::socket_base::send_buffer_size(16384));
  peer_.set_option(net::socket_base::receive_buffer_size(16384));
  const std::string body = pattern(4 << 20);
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n";

  std::string got(head.size() + body.size(), '\0');
  std::thread reader([&] {
    error_code ignored;
    net::read(peer_, net::buffer(got), ignored);
  });
  const std::size_t idle = run([]() -> Task<> { co_return; });
  error_code ec = net::error::would_block;
  std::size_t written = 0;
  const std::size_t handlers = run([&]() -> Task<> {
    const std::array<net::const_buffer, 2> buffers{net::buffer(head), net::buffer(body)};
    std::tie(ec, written) = co_await stream_->write_all(buffers);
  });
  reader.join();
  EXPECT_EQ(ec, error_code());
  EXPECT_EQ(written, head.size() + body.size());
  EXPECT_GT(handlers, idle);  // the socket filled: the rest waited for room
  EXPECT_TRUE(got == head + body) << "the bytes arrived out of order or changed";
}

TEST_F(StreamTest, AWriteToAClosedPeerFailsWithItsError) {
  peer_.set_option(net::socket_base::linger(true, 0));
  peer_.close();  // a reset
  const std::string data(1024, 'x');
  error_code ec;
  run([&]() -> Task<> {
    // The first write may still be taken (the reset may not have arrived); the next one fails.
    for (int i = 0; i < 100 && !ec; ++i)
      std::tie(ec, std::ignore) = co_await stream_->write_all(net::buffer(data));
  });
  EXPECT_TRUE(ec == net::error::connection_reset || ec == net::error::broken_pipe) << ec.message();
}

}  // namespace
}  // namespace proxyd
