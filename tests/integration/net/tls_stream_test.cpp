// TlsStream (proxy/tls_stream.hpp) on real loopback sockets, against Asio's own ssl::stream as
// the peer (an independent TLS implementation over the same OpenSSL), driven by a test-owned
// io_context: bytes both ways exactly, a gathered write as one call, a mebibyte each way at once
// on one connection, the system calls of a keep-alive wait, how a peer's close or reset is reported
// (found by a read, by a read already waiting, or right after part of a record), cancels (on the
// socket and through a cancellation slot) that lose no bytes, and plaintext to the TLS side.
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>

#include "proxy/tls_stream.hpp"
#include "syscall_counts.hpp"
#include "tests/support/tls_fixtures.hpp"

namespace proxyd {
namespace {

using namespace std::chrono_literals;
using ClientTls = net::ssl::stream<Socket>;

std::string pattern(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return out;
}

class TlsStreamTest : public ::testing::Test {
 protected:
  TlsStreamTest() {
    const test::CertFiles files = pki_.issue("server", "localhost");
    server_ctx_ = SSL_CTX_new(TLS_server_method());
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(server_ctx_, files.cert.c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(server_ctx_, files.key.c_str(), SSL_FILETYPE_PEM), 1);
    client_ctx_.set_verify_mode(net::ssl::verify_none);
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    client_.next_layer().connect(acceptor_.local_endpoint());
    acceptor_.accept(server_socket_);
    server_.emplace(server_socket_, SSL_new(server_ctx_));
  }
  ~TlsStreamTest() override {
    server_.reset();
    SSL_CTX_free(server_ctx_);
  }

  // Runs both sides' coroutines until all `n` finished (true) or five seconds have passed.
  bool run_until_done(const int& finished, int n) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    io_.restart();  // the context stops whenever it runs out of work, as after a handshake
    while (finished < n && std::chrono::steady_clock::now() < deadline) io_.run_one_for(50ms);
    return finished == n;
  }

  // Starts one side's handshake in a coroutine of its own: when it ends, `ec` is its error and
  // `finished` counts up.
  void start_server_handshake(int& finished, error_code& ec) {
    spawn([&]() -> Task<> {
      std::tie(ec) = co_await server_->async_handshake(TlsStream::Role::server, use_task);
      ++finished;
    });
  }
  void start_client_handshake(int& finished, error_code& ec) {
    spawn([&]() -> Task<> {
      std::tie(ec) = co_await client_.async_handshake(ClientTls::client, use_task);
      ++finished;
    });
  }

  // Both handshakes, each side in its own coroutine.
  void handshake() {
    int finished = 0;
    error_code server_ec = net::error::would_block, client_ec = net::error::would_block;
    start_server_handshake(finished, server_ec);
    start_client_handshake(finished, client_ec);
    ASSERT_TRUE(run_until_done(finished, 2));
    ASSERT_FALSE(server_ec) << server_ec.message();
    ASSERT_FALSE(client_ec) << client_ec.message();
  }

  // `f` (a lambda returning Task<>) lives in the coroutine frame of the wrapper, as long as the
  // coroutine it starts, whose captures are f's.
  template <class F>
  void spawn(F f) {
    net::co_spawn(io_.get_executor(), [](F body) -> Task<> { co_await body(); }(std::move(f)),
                  net::detached);
  }

  // Starts one read on the server side: when it ends, `ec` is its error, `got` (if given) holds
  // what it read and `finished` counts up.
  void start_read(int& finished, error_code& ec, std::string* got = nullptr) {
    spawn([&finished, &ec, got, this]() -> Task<> {
      std::array<char, 64> buffer{};
      std::size_t n = 0;
      std::tie(ec, n) = co_await server_->async_read_some(net::buffer(buffer), use_task);
      if (got != nullptr) got->assign(buffer.data(), n);
      ++finished;
    });
  }

  // Starts one read on the server side whose cancellation slot is `signal`'s.
  void start_read_with_slot(net::cancellation_signal& signal, int& finished, error_code& ec) {
    const auto on_read = [&finished, &ec](error_code read_ec, std::size_t) {
      ec = read_ec;
      ++finished;
    };
    server_->async_read_some(net::buffer(slot_read_buffer_),
                             net::bind_cancellation_slot(signal.slot(), on_read));
  }

  // Starts one read on the server side and runs until it waits for the socket.
  void start_waiting_read(int& finished, error_code& ec, std::string* got = nullptr) {
    start_read(finished, ec, got);
    io_.restart();
    io_.poll();
    EXPECT_EQ(finished, 0) << "the read found nothing and waits";
  }

  // Part of a record, then a reset, both there before the waiting read runs (as when the worker
  // is busy): with the kernel's count (which counts a FIN, not a reset), the read that takes the
  // part says it left the socket empty, and the reset's event is spent. The read for the rest of
  // the record must still find the reset at once, not wait for an event that never comes (until
  // its deadline, in proxyd). `part` is how much of a TLS 1.3 application-data record header
  // (announcing 64 bytes) is sent: OpenSSL holds a part of the header and a whole one differently.
  void reset_after_part_of_a_record(std::size_t part) {
    ASSERT_TRUE(report_bytes_left(server_socket_));
    handshake();
    int finished = 0;
    error_code reset_ec;
    start_waiting_read(finished, reset_ec);
    const std::array<unsigned char, 5> header{0x17, 0x03, 0x03, 0x00, 0x40};
    net::write(client_.next_layer(), net::buffer(header.data(), part));
    reset_client();
    ASSERT_TRUE(run_until_done(finished, 1));
    EXPECT_EQ(reset_ec, net::error::connection_reset) << reset_ec.message();
  }

  // The client gives up: a reset (SO_LINGER 0), no close_notify.
  void reset_client() {
    client_.next_layer().set_option(net::socket_base::linger(true, 0));
    client_.next_layer().close();
  }

  // One read on the server side, to its end.
  error_code read_once() {
    int finished = 0;
    error_code ec;
    start_read(finished, ec);
    EXPECT_TRUE(run_until_done(finished, 1));
    return ec;
  }

  test::TestPki pki_;
  SSL_CTX* server_ctx_ = nullptr;
  net::ssl::context client_ctx_{net::ssl::context::tls_client};
  net::io_context io_;
  Acceptor acceptor_{io_.get_executor()};
  ClientTls client_{io_.get_executor(), client_ctx_};
  Socket server_socket_{io_.get_executor()};
  std::optional<TlsStream> server_;
  std::array<char, 16> slot_read_buffer_{};
};

TEST_F(TlsStreamTest, BytesGoBothWaysExactlyAndSmallBuffersAreWrittenInOneCall) {
  handshake();
  int finished = 0;
  std::string request(5, '\0');
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  const std::string body = pattern(100, 1);
  const std::string tail = "trailing";
  std::size_t one_write = 0;
  error_code read_ec, write_ec;
  spawn([&]() -> Task<> {
    co_await net::async_write(client_, net::buffer(std::string_view("hello")), use_task);
    std::string response(head.size() + body.size() + tail.size(), '\0');
    auto [ec, n] = co_await net::async_read(client_, net::buffer(response), use_task);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(response, head + body + tail);
    ++finished;
  });
  spawn([&]() -> Task<> {
    auto [rec, n] = co_await net::async_read(*server_, net::buffer(request), use_task);
    read_ec = rec;
    const std::array buffers{net::buffer(head), net::buffer(body), net::buffer(tail)};
    std::tie(write_ec, one_write) = co_await server_->async_write_some(buffers, use_task);
    ++finished;
  });
  ASSERT_TRUE(run_until_done(finished, 2));
  EXPECT_FALSE(read_ec) << read_ec.message();
  EXPECT_EQ(request, "hello");
  EXPECT_FALSE(write_ec) << write_ec.message();
  EXPECT_EQ(one_write, head.size() + body.size() + tail.size())
      << "three buffers under a record's size went out in one write";
}

// Reads and writes pending at once on one stream, each side writing more than the socket buffers
// hold: only a stream that reads while its write waits gets through.
TEST_F(TlsStreamTest, AMebibyteEachWayAtOnce) {
  handshake();
  constexpr std::size_t kSize = 1 << 20;
  const std::string up = pattern(kSize, 2);
  const std::string down = pattern(kSize, 3);
  std::string server_got(kSize, '\0'), client_got(kSize, '\0');
  int finished = 0;
  spawn([&]() -> Task<> {
    auto [ec, n] = co_await net::async_write(client_, net::buffer(up), use_task);
    EXPECT_FALSE(ec) << ec.message();
    ++finished;
  });
  spawn([&]() -> Task<> {
    auto [ec, n] = co_await net::async_read(client_, net::buffer(client_got), use_task);
    EXPECT_FALSE(ec) << ec.message();
    ++finished;
  });
  spawn([&]() -> Task<> {
    auto [ec, n] = co_await net::async_write(*server_, net::buffer(down), use_task);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(n, kSize);
    ++finished;
  });
  spawn([&]() -> Task<> {
    auto [ec, n] = co_await net::async_read(*server_, net::buffer(server_got), use_task);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(n, kSize);
    ++finished;
  });
  ASSERT_TRUE(run_until_done(finished, 4));
  EXPECT_TRUE(server_got == up) << "the server read exactly what the client wrote";
  EXPECT_TRUE(client_got == down) << "the client read exactly what the server wrote";
}

// Bytes that reach the socket as a cancel lands are not lost: the cancelled read either left
// them in the socket or took them into the stream, and the next read returns them.
TEST_F(TlsStreamTest, BytesThatArriveWithACancelAreReadNext) {
  handshake();
  net::cancellation_signal signal;
  int finished = 0;
  error_code read_ec;
  start_read_with_slot(signal, finished, read_ec);
  io_.restart();
  io_.poll();  // the read finds nothing and waits
  ASSERT_EQ(finished, 0);
  net::write(client_, net::buffer(std::string_view("hello")));
  // Queued behind the reactor's turn, which may already complete the read with the bytes.
  net::post(io_, [&] { signal.emit(net::cancellation_type::terminal); });
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(read_ec, net::error::operation_aborted) << read_ec.message();

  std::string got;
  error_code next_ec;
  start_read(finished, next_ec, &got);
  ASSERT_TRUE(run_until_done(finished, 2));
  EXPECT_FALSE(next_ec) << next_ec.message();
  EXPECT_EQ(got, "hello");
}

// A handshake begun before the client sent anything (a connection just accepted): OpenSSL's
// recv() finds the socket empty, and the inbox read that follows waits for the socket's next event
// instead of trying again at once: one recv() before the ClientHello comes, no epoll_ctl.
TEST_F(TlsStreamTest, AHandshakeBegunBeforeTheClientHelloTriesTheSocketOnce) {
  int finished = 0;
  error_code server_ec = net::error::would_block, client_ec = net::error::would_block;
  {
    const test::SyscallWatch watch(server_socket_.native_handle());
    start_server_handshake(finished, server_ec);
    io_.restart();
    io_.poll();
    EXPECT_EQ(finished, 0) << "the handshake waits for the ClientHello";
#ifdef PROXYD_READ_READINESS
    EXPECT_EQ(watch.counts().socket_reads, 1);
#else
    EXPECT_EQ(watch.counts().socket_reads, 2);  // Asio's read tries once more before it waits
#endif
    EXPECT_EQ(watch.counts().epoll_ctls, 0);
  }
  start_client_handshake(finished, client_ec);
  ASSERT_TRUE(run_until_done(finished, 2));
  EXPECT_FALSE(server_ec) << server_ec.message();
  EXPECT_FALSE(client_ec) << client_ec.message();
  // And the connection works both ways after it.
  net::write(client_, net::buffer(std::string_view("ping")));
  std::string got;
  int read = 0;
  error_code ec;
  start_read(read, ec, &got);
  ASSERT_TRUE(run_until_done(read, 1));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "ping");
}

// A keep-alive connection's wait for its next request: no epoll_ctl, which a wait for the
// socket's readiness would cost (Asio re-arms the descriptor for each such wait), and no read
// that finds the socket empty beyond the one Asio's read tries before it waits (Boost 1.81 tries
// once whenever the descriptor was last seen readable): two recv() per request at most, the
// request's bytes read once.
TEST_F(TlsStreamTest, AKeepAliveRequestCostsNoEpollCtlAndAtMostTwoRecvs) {
  handshake();
  for (int request = 0; request < 3; ++request) {
    const test::SyscallWatch watch(server_socket_.native_handle());
    int finished = 0;
    std::string got;
    error_code ec;
    start_waiting_read(finished, ec, &got);
    EXPECT_LE(watch.counts().socket_reads, 1) << "request " << request;
    net::write(client_, net::buffer(std::string_view("GET / HTTP/1.1\r\n\r\n")));
    ASSERT_TRUE(run_until_done(finished, 1));
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(got, "GET / HTTP/1.1\r\n\r\n");
    EXPECT_GE(watch.counts().socket_reads, 1) << "request " << request;
    EXPECT_LE(watch.counts().socket_reads, 2) << "request " << request;
    EXPECT_EQ(watch.counts().epoll_ctls, 0) << "request " << request;
  }
}

// With the kernel's count of what is left (report_bytes_left, as a worker asks for every client
// connection), the inbox read that brings a request says it left the socket empty, and the next
// one waits for the next request's event: one recv() per keep-alive request, none before its
// bytes come (read_readiness.hpp).
TEST_F(TlsStreamTest, WithTheKernelsCountAKeepAliveRequestCostsOneRecv) {
  ASSERT_TRUE(report_bytes_left(server_socket_));
  handshake();
  for (int request = 0; request < 4; ++request) {
    const test::SyscallWatch watch(server_socket_.native_handle());
    int finished = 0;
    std::string got;
    error_code ec;
    start_waiting_read(finished, ec, &got);
#ifdef PROXYD_READ_READINESS
    if (request > 0) {
      EXPECT_EQ(watch.counts().socket_reads, 0) << "request " << request;
    }
#endif
    net::write(client_, net::buffer(std::string_view("GET / HTTP/1.1\r\n\r\n")));
    ASSERT_TRUE(run_until_done(finished, 1));
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(got, "GET / HTTP/1.1\r\n\r\n");
#ifdef PROXYD_READ_READINESS
    if (request > 0) {
      EXPECT_EQ(watch.counts().socket_reads, 1) << "request " << request;
    }
#endif
    EXPECT_EQ(watch.counts().epoll_ctls, 0) << "request " << request;
  }
}

TEST_F(TlsStreamTest, APeersCloseNotifyIsEof) {
  handshake();
  int finished = 0;
  error_code shutdown_ec, read_ec;
  spawn([&]() -> Task<> {
    std::tie(shutdown_ec) = co_await client_.async_shutdown(use_task);
    ++finished;
  });
  spawn([&]() -> Task<> {
    std::array<char, 16> buffer{};
    std::size_t n = 0;
    std::tie(read_ec, n) = co_await server_->async_read_some(net::buffer(buffer), use_task);
    // Answer the client's close_notify, which its shutdown waits for.
    SSL_set_shutdown(server_->native_handle(), SSL_RECEIVED_SHUTDOWN);
    co_await server_->async_shutdown(use_task);
    ++finished;
  });
  ASSERT_TRUE(run_until_done(finished, 2));
  EXPECT_EQ(read_ec, net::error::eof) << read_ec.message();
  EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
}

// A FIN without close_notify: the response may have been cut, as Asio's ssl::stream says it.
TEST_F(TlsStreamTest, AFinWithoutCloseNotifyIsStreamTruncated) {
  handshake();
  client_.next_layer().shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(read_once(), net::ssl::error::stream_truncated);
}

TEST_F(TlsStreamTest, AResetIsConnectionReset) {
  handshake();
  reset_client();
  EXPECT_EQ(read_once(), net::error::connection_reset);
}

// The same two ends, found by a read that was already waiting for the socket.
TEST_F(TlsStreamTest, AFinEndsAReadAlreadyWaiting) {
  handshake();
  int finished = 0;
  error_code fin_ec;
  start_waiting_read(finished, fin_ec);
  client_.next_layer().shutdown(tcp::socket::shutdown_send);
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(fin_ec, net::ssl::error::stream_truncated) << fin_ec.message();
}

TEST_F(TlsStreamTest, AResetEndsAReadAlreadyWaiting) {
  handshake();
  int finished = 0;
  error_code reset_ec;
  start_waiting_read(finished, reset_ec);
  reset_client();
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(reset_ec, net::error::connection_reset) << reset_ec.message();
}

TEST_F(TlsStreamTest, AResetRightAfterPartOfARecordHeaderEndsTheReadAtOnce) {
  reset_after_part_of_a_record(3);
}

TEST_F(TlsStreamTest, AResetRightAfterARecordHeaderEndsTheReadAtOnce) {
  reset_after_part_of_a_record(5);
}

// A whole record and a reset together: the read that takes the record leaves the kernel's count
// at 0 and spends the reset's event. The next read continues what the layer above began (the rest
// of a request), says so (read_next_at_once), and finds the reset at once.
TEST_F(TlsStreamTest, AReadAskedToContinueFindsAResetThatCameWithTheLastRecord) {
  ASSERT_TRUE(report_bytes_left(server_socket_));
  handshake();
  int finished = 0;
  error_code first_ec;
  std::string got;
  start_waiting_read(finished, first_ec, &got);
  net::write(client_, net::buffer(std::string_view("PUT /x HTTP/1.1\r\n")));
  reset_client();
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_FALSE(first_ec) << first_ec.message();
  EXPECT_EQ(got, "PUT /x HTTP/1.1\r\n");
  server_->read_next_at_once();
  EXPECT_EQ(read_once(), net::error::connection_reset);
}

// The request lapses when OpenSSL serves the read from bytes it read ahead: a later read, for
// something new, still waits for the socket's event without a recv() first.
TEST_F(TlsStreamTest, AReadServedFromReadAheadBytesLeavesNoRequestForTheNextOne) {
  ASSERT_TRUE(report_bytes_left(server_socket_));
  handshake();
  int finished = 0;
  error_code ec;
  std::string got;
  start_waiting_read(finished, ec, &got);
  // Two records, both there when the waiting read runs: its inbox read takes both, and OpenSSL
  // hands out one record per read.
  net::write(client_, net::buffer(std::string_view("first")));
  net::write(client_, net::buffer(std::string_view("second")));
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(got, "first");
  server_->read_next_at_once();
  finished = 0;
  start_read(finished, ec, &got);
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "second");
  const test::SyscallWatch watch(server_socket_.native_handle());
  finished = 0;
  start_waiting_read(finished, ec, &got);
#ifdef PROXYD_READ_READINESS
  EXPECT_EQ(watch.counts().socket_reads, 0);
#endif
  net::write(client_, net::buffer(std::string_view("third")));
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(got, "third");
}

// A read whose own recv() (straight into OpenSSL's buffer, after an inbox read that filled the
// inbox) found the socket empty in the middle of a record does not try it a second time: a reset
// there would have failed that recv(), and a later one raises an event.
TEST_F(TlsStreamTest, ARecvThatFoundTheSocketEmptyInARecordIsNotRepeated) {
  ASSERT_TRUE(report_bytes_left(server_socket_));
  handshake();
  int finished = 0;
  error_code ec;
  start_waiting_read(finished, ec);
  // The first 4,096 bytes (the inbox's size) of a record announcing 5,000.
  std::string part(TlsStream::kInboxSize, 'x');
  part.replace(0, 5, std::string("\x17\x03\x03\x13\x88", 5));
  const test::SyscallWatch watch(server_socket_.native_handle());
  net::write(client_.next_layer(), net::buffer(part));
  io_.restart();
  for (int i = 0; i < 100 && watch.counts().socket_reads < 2; ++i) io_.run_one_for(50ms);
  io_.poll();
  EXPECT_EQ(finished, 0) << "the read waits for the rest of the record";
#ifdef PROXYD_READ_READINESS
  EXPECT_EQ(watch.counts().socket_reads, 2);  // the inbox read, and OpenSSL's own recv()
#endif
  server_socket_.cancel();
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(ec, net::error::operation_aborted) << ec.message();
}

// A deadline cancels the socket: a read waiting on it ends with operation_aborted.
TEST_F(TlsStreamTest, CancellingTheSocketEndsAPendingRead) {
  handshake();
  int finished = 0;
  error_code read_ec;
  start_waiting_read(finished, read_ec);
  server_socket_.cancel();
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(read_ec, net::error::operation_aborted) << read_ec.message();
}

// The tunnel's `||` cancels the losing pipe through its cancellation slot, not on the socket: a
// read waiting for a record's remaining bytes must end with operation_aborted.
TEST_F(TlsStreamTest, ACancelThroughTheSlotEndsAReadWaitingForTheRestOfARecord) {
  handshake();
  net::cancellation_signal signal;
  int finished = 0;
  error_code read_ec;
  start_read_with_slot(signal, finished, read_ec);
  // A TLS 1.3 application-data record header without its 64 bytes: the read takes it and waits.
  const std::array<unsigned char, 5> header{0x17, 0x03, 0x03, 0x00, 0x40};
  net::write(client_.next_layer(), net::buffer(header));
  io_.restart();
  io_.poll();
  EXPECT_EQ(finished, 0);
  signal.emit(net::cancellation_type::terminal);
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(read_ec, net::error::operation_aborted) << read_ec.message();
}

// A deadline's cancel that lands between two of a read's waits: the read took part of a record
// at once (its bytes were there) and its completion has not run yet, so the socket's cancel finds
// nothing to cancel. The stream's cancelled() ends the read anyway; it used to start a wait for
// the rest of the record that nothing ended.
TEST_F(TlsStreamTest, ACancelBetweenTwoWaitsEndsAReadWhoseRecordIsPartial) {
  handshake();
  const std::array<unsigned char, 5> header{0x17, 0x03, 0x03, 0x00, 0x40};
  net::write(client_.next_layer(), net::buffer(header));
  int finished = 0;
  error_code read_ec;
  start_read(finished, read_ec);
  io_.restart();
  io_.poll_one();  // the read begins: its first recv takes the header, its completion is queued
  EXPECT_EQ(finished, 0);
  server_socket_.cancel();
  server_->cancelled();
  ASSERT_TRUE(run_until_done(finished, 1));
  EXPECT_EQ(read_ec, net::error::operation_aborted) << read_ec.message();
}

TEST_F(TlsStreamTest, PlaintextIsAnSslErrorWithOpenSslsReason) {
  const std::string_view request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  net::write(client_.next_layer(), net::buffer(request));
  int finished = 0;
  error_code ec;
  spawn([&]() -> Task<> {
    std::tie(ec) = co_await server_->async_handshake(TlsStream::Role::server, use_task);
    ++finished;
  });
  ASSERT_TRUE(run_until_done(finished, 1));
  ASSERT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
  EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(ec.value())), SSL_R_HTTP_REQUEST);
}

}  // namespace
}  // namespace proxyd
