// The per-worker idle connection cache on real loopback sockets, driven by a test-owned
// io_context: a connection holds a relay buffer only once its response arrives, anything that
// arrives on it while it idles (data or EOF) closes it, a connection is checked once more when
// taken (on a TLS connection, OpenSSL's read-ahead too), and the system calls its waits cost are
// counted (SyscallWatch): no epoll_ctl once its responses were small, no recv() before the bytes
// of a response to a request on a connection just taken.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "proxy/read_readiness.hpp"
#include "proxy/routing_snapshot.hpp"
#include "proxy/upstream_pool.hpp"
#include "syscall_counts.hpp"
#include "tests/support/tls_fixtures.hpp"

namespace proxyd {
namespace {

using namespace std::chrono_literals;

// The outcome of one UpstreamCache::read_some.
struct Read {
  bool done = false;
  error_code ec;
  std::size_t n = 0;
};

class UpstreamCacheTest : public ::testing::Test {
 protected:
  UpstreamCacheTest() {
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    server_.name = "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
    server_.address.bytes = {127, 0, 0, 1};
    server_.address.port = acceptor_.local_endpoint().port();
    server_.state = std::make_shared<ServerState>();
  }

  // A connected upstream connection as a session leaves it after a clean response (holding the
  // buffer its response was read into), and the server's end of it. `lent`: false for one just
  // connected, before its first read.
  std::unique_ptr<UpstreamConn> connect(Socket& peer, bool lent = true) {
    auto conn = cache_.fresh(io_.get_executor());
    conn->stream.socket().connect(to_endpoint(server_.address));
    acceptor_.accept(peer);
    conn->server = server_.state;
    conn->address = server_.address;
    EXPECT_FALSE(conn->buffer.has_storage()) << "a new connection has no buffer before a read";
    if (lent) cache_.lend_buffer(conn->buffer);
    return conn;
  }

  // Starts cache_.read_some on `conn`; `into` tells when it ended, and how.
  void start_read(UpstreamConn& conn, Read& into, std::size_t max = 64 * 1024) {
    into = Read{};
    net::co_spawn(io_, [this, &conn, &into, max]() -> Task<> {
      std::tie(into.ec, into.n) = co_await cache_.read_some(conn, max);
      into.done = true;
    }, net::detached);
  }

  // Runs handlers until `done` or two seconds have passed.
  template <class Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!done() && std::chrono::steady_clock::now() < deadline) io_.run_one_for(50ms);
    return done();
  }

  net::io_context io_;
  Acceptor acceptor_{io_.get_executor()};
  Server server_;
  UpstreamCache cache_;
};

TEST_F(UpstreamCacheTest, AnIdleConnectionHoldsNoRelayBuffer) {
  Socket peer(io_.get_executor());
  auto conn = connect(peer);
  EXPECT_TRUE(conn->buffer.has_storage());
  cache_.put(std::move(conn), Clock::now(), 16);
  EXPECT_EQ(cache_.idle_count(), 1u);
  EXPECT_EQ(cache_.spare_buffers(), 1u) << "the idle connection gave its buffer back";
  auto taken = cache_.take(server_, false);
  ASSERT_TRUE(taken);
  EXPECT_FALSE(taken->buffer.has_storage()) << "lent by the read that finds its response";
  EXPECT_EQ(cache_.spare_buffers(), 1u);
  EXPECT_EQ(cache_.idle_count(), 0u);
}

// A response body spliced from this connection gives its buffer back for the rest of the body
// (relay.hpp); the connection then idles without one, and gives back nothing more.
TEST_F(UpstreamCacheTest, ABufferGivenBackDuringARequestIsNotGivenBackTwice) {
  Socket peer(io_.get_executor());
  auto conn = connect(peer);
  cache_.return_buffer(conn->buffer);
  EXPECT_FALSE(conn->buffer.has_storage());
  EXPECT_EQ(conn->buffer.size(), 0u);
  EXPECT_EQ(cache_.spare_buffers(), 1u);
  cache_.put(std::move(conn), Clock::now(), 16);
  EXPECT_EQ(cache_.spare_buffers(), 1u) << "nothing more to give back";
  auto taken = cache_.take(server_, false);
  ASSERT_TRUE(taken);
  EXPECT_FALSE(taken->buffer.has_storage());
  EXPECT_EQ(cache_.spare_buffers(), 1u);
}

// With no spare buffer, three requests wait for their responses and hold none between them; the
// one answered is lent a new one and reads its bytes (at most `max` a read); one whose wait is
// cancelled (a deadline) and one whose server closes end without one. With a spare, a wait takes
// it at once.
TEST_F(UpstreamCacheTest, WithNoSpareBufferAResponseStillComingHoldsNoneUntilItsBytesArrive) {
  std::array<Socket, 3> peers{Socket(io_.get_executor()), Socket(io_.get_executor()),
                              Socket(io_.get_executor())};
  std::array<std::unique_ptr<UpstreamConn>, 3> conns;
  std::array<Read, 3> reads;
  for (std::size_t i = 0; i < 3; ++i) {
    conns[i] = connect(peers[i], false);
    start_read(*conns[i], reads[i]);
  }
  io_.poll();
  io_.restart();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(reads[i].done) << i;
    EXPECT_FALSE(conns[i]->buffer.has_storage()) << i;
  }

  const std::string head = "HTTP/1.1 204 No Content\r\n\r\n";
  net::write(peers[1], net::buffer(head));
  ASSERT_TRUE(run_until([&] { return reads[1].done; }));
  EXPECT_EQ(reads[1].ec, error_code());
  ASSERT_EQ(reads[1].n, head.size());
  conns[1]->buffer.commit(reads[1].n);
  EXPECT_EQ(conns[1]->buffer.view(), head);
  EXPECT_EQ(conns[1]->buffer.capacity(), UpstreamConn::kBufferSize);
  // With its buffer, a read takes at most `max`.
  net::write(peers[1], net::buffer(std::string_view("abcdefgh")));
  start_read(*conns[1], reads[1], 3);
  ASSERT_TRUE(run_until([&] { return reads[1].done; }));
  EXPECT_EQ(reads[1].ec, error_code());
  EXPECT_EQ(reads[1].n, 3u);
  EXPECT_FALSE(reads[0].done);
  EXPECT_FALSE(reads[2].done);

  conns[2]->stream.socket().cancel();
  ASSERT_TRUE(run_until([&] { return reads[2].done; }));
  EXPECT_EQ(reads[2].ec, net::error::operation_aborted);
  EXPECT_FALSE(conns[2]->buffer.has_storage());
  EXPECT_EQ(cache_.spare_buffers(), 0u) << "no buffer was made for the cancel";

  peers[0].close();
  ASSERT_TRUE(run_until([&] { return reads[0].done; }));
  EXPECT_EQ(reads[0].ec, net::error::eof);
  EXPECT_EQ(reads[0].n, 0u);
  EXPECT_FALSE(conns[0]->buffer.has_storage());
  EXPECT_EQ(cache_.spare_buffers(), 1u) << "the buffer lent to the read that found EOF, back";

  // With a spare, a new wait takes it at once and reads into it, as a worker with few requests
  // in flight does for every response.
  start_read(*conns[2], reads[2]);
  io_.restart();  // the context may have stopped when it ran out of work
  io_.poll();
  EXPECT_FALSE(reads[2].done);
  EXPECT_TRUE(conns[2]->buffer.has_storage()) << "a spare is taken while waiting";
  EXPECT_EQ(cache_.spare_buffers(), 0u);
  net::write(peers[2], net::buffer(head));
  ASSERT_TRUE(run_until([&] { return reads[2].done; }));
  EXPECT_EQ(reads[2].ec, error_code());
  EXPECT_EQ(reads[2].n, head.size());
}

// On a connection whose responses were small, a wait without a buffer costs no epoll_ctl (which
// a wait for readability would: Asio re-arms the descriptor for each): it reads at most the connection's first_bytes (and at most `max`),
// those bytes move into a buffer lent then, and when they fill first_bytes the rest of a response
// of a few KiB is read at once, in the same read.
TEST_F(UpstreamCacheTest, AWaitWithoutABufferCostsNoEpollCtlAndReadsAFewKiBAtOnce) {
  constexpr std::size_t kFirst = std::tuple_size_v<decltype(UpstreamConn::first_bytes)>;
  std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n";
  for (std::size_t i = 0; response.size() < 3000; ++i) response += static_cast<char>('a' + i % 26);
  ASSERT_GT(response.size(), kFirst);
  std::array<Socket, 2> peers{Socket(io_.get_executor()), Socket(io_.get_executor())};
  std::array<std::unique_ptr<UpstreamConn>, 2> conns;
  std::array<Read, 2> reads;
  conns[0] = connect(peers[0], false);
  conns[1] = connect(peers[1], false);
  conns[0]->small_responses = conns[1]->small_responses = true;  // as after a small response
  const test::SyscallWatch watch(conns[1]->stream.socket().native_handle());
  start_read(*conns[0], reads[0], 10);
  start_read(*conns[1], reads[1]);
  io_.poll();
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(reads[i].done) << i;
    EXPECT_FALSE(conns[i]->buffer.has_storage()) << "no spare: the wait holds none";
    net::write(peers[i], net::buffer(response));
  }
  ASSERT_TRUE(run_until([&] { return reads[0].done && reads[1].done; }));
  EXPECT_EQ(reads[0].ec, error_code());
  EXPECT_EQ(reads[0].n, 10u) << "at most max";
  EXPECT_EQ(reads[1].ec, error_code());
  ASSERT_EQ(reads[1].n, response.size()) << "the first bytes, then the rest at once";
  EXPECT_EQ(watch.counts().epoll_ctls, 0);
  EXPECT_EQ(watch.counts().socket_reads, 3) << "one that found nothing, the first bytes, the rest";
  UpstreamConn& conn = *conns[1];
  ASSERT_TRUE(conn.buffer.has_storage());
  EXPECT_EQ(conn.buffer.capacity(), UpstreamConn::kBufferSize);
  conn.buffer.commit(reads[1].n);
  EXPECT_EQ(conn.buffer.view(), response);
  EXPECT_TRUE(conn.small_responses) << "3000 bytes: short of max";
  EXPECT_EQ(cache_.spare_buffers(), 0u);
}

// A plain connection taken from the cache has just been found quiet: the read for its response
// waits for the bytes' event, with no recv() first that finds nothing (read_readiness.hpp). Bytes
// that come after the take, whether the loop saw their event before the read started or after,
// are all read, exactly once each.
TEST_F(UpstreamCacheTest, AReadAfterTakeWaitsForTheResponseWithoutARecvThatFindsNothing) {
  Socket probe_peer(io_.get_executor());
  auto probe = connect(probe_peer);
  if (!read_on_next_event(probe->stream.socket()))
    GTEST_SKIP() << "built against another Asio reactor: reads try at once, as Asio's do";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (int when : {0, 1, 2}) {  // bytes sent after the read started; before it; seen by the loop
    Socket peer(io_.get_executor());
    cache_.put(connect(peer), Clock::now(), 16);
    std::unique_ptr<UpstreamConn> conn = cache_.take(server_, false);
    ASSERT_NE(conn, nullptr) << when;
    const test::SyscallWatch watch(conn->stream.socket().native_handle());
    Read read;
    io_.restart();
    if (when != 0) net::write(peer, net::buffer(response));
    if (when == 2) io_.poll();  // the loop takes the bytes' event before the read starts
    io_.restart();
    start_read(*conn, read);
    io_.poll();
    if (when == 0) {
      EXPECT_FALSE(read.done);
      EXPECT_EQ(watch.counts().socket_reads, 0) << "no recv() before the bytes' event";
      net::write(peer, net::buffer(response));
    }
    ASSERT_TRUE(run_until([&] { return read.done; })) << when;
    EXPECT_EQ(read.ec, error_code()) << when;
    ASSERT_EQ(read.n, response.size()) << when;
    conn->buffer.commit(read.n);
    EXPECT_EQ(conn->buffer.view(), response) << when;
    EXPECT_EQ(watch.counts().socket_reads, 1) << when;
    EXPECT_EQ(watch.counts().epoll_ctls, 0) << when;
    cache_.discard(std::move(conn));
  }
  // Without the take, Asio tries the read at once: the recv() the take saves.
  Socket peer(io_.get_executor());
  auto conn = connect(peer);
  const test::SyscallWatch untaken(conn->stream.socket().native_handle());
  Read read;
  io_.restart();
  start_read(*conn, read);
  io_.poll();
  EXPECT_FALSE(read.done);
  EXPECT_EQ(untaken.counts().socket_reads, 1) << "a recv() that found nothing";
  net::write(peer, net::buffer(response));
  ASSERT_TRUE(run_until([&] { return read.done; }));
  EXPECT_EQ(read.n, response.size());
  EXPECT_EQ(untaken.counts().socket_reads, 2);
}

// A new connection, and one whose last response filled `max` (a large one), wait without a
// buffer for readability; once a response comes back short of `max`, the connection's waits read
// its first bytes instead. Both deliver the same bytes; an EOF ends either without a buffer.
TEST_F(UpstreamCacheTest, ANewConnectionWaitsForReadabilityUntilAResponseIsShortOfMax) {
  std::string response(5000, 'x');
  for (std::size_t i = 0; i < response.size(); ++i) response[i] = static_cast<char>('a' + i % 26);
  Socket peer(io_.get_executor());
  auto conn = connect(peer, false);
  EXPECT_FALSE(conn->small_responses);
  const int fd = conn->stream.socket().native_handle();
  std::vector<ByteBuffer> held;  // the buffers each read gives back, so that none is spare
  held.reserve(8);
  Read read;
  std::string got;
  // One read_some without a buffer; returns its epoll_ctl calls.
  const auto read_without_buffer = [&](std::size_t max) {
    const test::SyscallWatch watch(fd);
    io_.restart();
    start_read(*conn, read, max);
    EXPECT_TRUE(run_until([&] { return read.done; }));
    conn->buffer.commit(read.n);
    got += conn->buffer.view();
    conn->buffer.consume(read.n);
    cache_.return_buffer(conn->buffer);
    held.emplace_back();
    cache_.lend_buffer(held.back());
    EXPECT_EQ(cache_.spare_buffers(), 0u);
    return watch.counts().epoll_ctls;
  };
  net::write(peer, net::buffer(response));
  EXPECT_EQ(read_without_buffer(2048), 1) << "a wait for readability";
  EXPECT_EQ(read.ec, error_code());
  EXPECT_EQ(read.n, 2048u);
  EXPECT_FALSE(conn->small_responses) << "max filled";
  EXPECT_EQ(read_without_buffer(2048), 1) << "again";
  EXPECT_EQ(read.n, 2048u);
  EXPECT_EQ(read_without_buffer(4096), 1);
  EXPECT_EQ(read.n, 5000u - 4096u);
  EXPECT_TRUE(conn->small_responses) << "short of max";
  EXPECT_EQ(got, response);

  got.clear();
  net::write(peer, net::buffer(response));
  EXPECT_EQ(read_without_buffer(4096), 0) << "the first bytes, then the rest at once";
  EXPECT_EQ(read.ec, error_code());
  EXPECT_EQ(read.n, 4096u);
  EXPECT_FALSE(conn->small_responses) << "max filled";
  EXPECT_EQ(read_without_buffer(4096), 1);
  EXPECT_EQ(read.n, 5000u - 4096u);
  EXPECT_EQ(got, response);

  // Either way, an EOF ends the wait without a buffer.
  EXPECT_TRUE(conn->small_responses);
  peer.close();
  io_.restart();
  start_read(*conn, read);
  ASSERT_TRUE(run_until([&] { return read.done; }));
  EXPECT_EQ(read.ec, net::error::eof);
  EXPECT_EQ(read.n, 0u);
  EXPECT_FALSE(conn->buffer.has_storage());
  EXPECT_EQ(cache_.spare_buffers(), 0u) << "no buffer was made for it";
}

// At most kMaxLentWaits reads waiting for a response hold a buffer: past that, a wait leaves a
// spare for the bytes that arrive.
TEST_F(UpstreamCacheTest, AtMostMaxLentWaitsHoldABufferWhileWaiting) {
  constexpr std::size_t kLent = UpstreamCache::kMaxLentWaits;
  static_assert(kLent <= UpstreamCache::kMaxSpareBuffers);
  std::vector<ByteBuffer> spares(kLent);
  for (ByteBuffer& b : spares) cache_.lend_buffer(b);
  for (ByteBuffer& b : spares) cache_.return_buffer(b);
  ASSERT_EQ(cache_.spare_buffers(), kLent);

  std::vector<Socket> peers;
  std::vector<std::unique_ptr<UpstreamConn>> conns;
  std::vector<Read> reads(kLent + 3);
  peers.reserve(kLent + 3);
  const auto wait = [&] {
    const std::size_t i = conns.size();
    peers.emplace_back(io_.get_executor());
    conns.push_back(connect(peers.back(), false));
    start_read(*conns[i], reads[i]);
    io_.restart();
    io_.poll();
  };
  for (std::size_t i = 0; i < kLent; ++i) wait();
  for (std::size_t i = 0; i < kLent; ++i) EXPECT_TRUE(conns[i]->buffer.has_storage()) << i;
  EXPECT_EQ(cache_.spare_buffers(), 0u);
  wait();
  EXPECT_FALSE(conns[kLent]->buffer.has_storage()) << "none spare";

  ByteBuffer extra;
  cache_.lend_buffer(extra);
  cache_.return_buffer(extra);
  wait();
  EXPECT_FALSE(conns[kLent + 1]->buffer.has_storage()) << "kMaxLentWaits already hold one";
  EXPECT_EQ(cache_.spare_buffers(), 1u) << "left for the bytes that arrive";

  // One of the lent waits ends: the next wait may hold a buffer again.
  const std::string head = "HTTP/1.1 204 No Content\r\n\r\n";
  net::write(peers[0], net::buffer(head));
  ASSERT_TRUE(run_until([&] { return reads[0].done; }));
  EXPECT_EQ(reads[0].n, head.size());
  wait();
  EXPECT_FALSE(reads[kLent + 2].done);
  EXPECT_TRUE(conns[kLent + 2]->buffer.has_storage());
  EXPECT_EQ(cache_.spare_buffers(), 0u);
  // Every wait ends before the test's locals go.
  for (auto& c : conns) c->stream.socket().cancel();
  io_.restart();
  EXPECT_TRUE(run_until([&] {
    return std::all_of(reads.begin(), reads.end(), [](const Read& r) { return r.done; });
  }));
}

// A sweep once the connection has idled for kWatchAfter starts its watch; one before does not.
TEST_F(UpstreamCacheTest, DataArrivingWhileIdleClosesTheConnection) {
  Socket peer(io_.get_executor());
  const auto idle_since = Clock::now();
  cache_.put(connect(peer), idle_since, 16);
  cache_.sweep(idle_since + UpstreamCache::kWatchAfter / 2, 1h);
  net::write(peer, net::buffer(std::string_view("early")));
  io_.poll();
  io_.restart();  // poll() found no work left and stopped the context
  EXPECT_EQ(cache_.idle_count(), 1u) << "not watched yet: nothing woke up";
  cache_.sweep(idle_since + UpstreamCache::kWatchAfter, 1h);
  EXPECT_EQ(cache_.idle_count(), 0u) << "the sweep's peek found the early bytes";
  EXPECT_EQ(cache_.closed_while_idle(), 1u);

  Socket peer2(io_.get_executor());
  cache_.put(connect(peer2), idle_since, 16);
  cache_.sweep(idle_since + UpstreamCache::kWatchAfter, 1h);
  EXPECT_EQ(cache_.idle_count(), 1u);
  net::write(peer2, net::buffer(std::string_view("HTTP/1.1 200 OK\r\n\r\n")));
  EXPECT_TRUE(run_until([&] { return cache_.idle_count() == 0; }));
  EXPECT_EQ(cache_.closed_while_idle(), 2u);
  EXPECT_EQ(cache_.take(server_, false), nullptr);
  // proxyd closed its end (with a reset: it never read the bytes).
  char byte = 0;
  error_code ec;
  peer2.read_some(net::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
}

TEST_F(UpstreamCacheTest, EofWhileIdleClosesTheConnection) {
  Socket peer(io_.get_executor());
  cache_.put(connect(peer), Clock::now(), 16);
  cache_.sweep(Clock::now() + UpstreamCache::kWatchAfter, 1h);
  peer.close();
  EXPECT_TRUE(run_until([&] { return cache_.idle_count() == 0; }));
  EXPECT_EQ(cache_.closed_while_idle(), 1u);
}

// Before any sweep (not watched yet), or watched with the handler not run yet (no handler runs
// here): the check when taken finds the bytes, and the connection is closed, not handed out.
TEST_F(UpstreamCacheTest, BytesThatArrivedWhileIdleAreFoundWhenTaken) {
  for (bool watched : {false, true}) {
    Socket peer(io_.get_executor());
    cache_.put(connect(peer), Clock::now(), 16);
    if (watched) cache_.sweep(Clock::now() + UpstreamCache::kWatchAfter, 1h);
    net::write(peer, net::buffer(std::string_view("x")));
    EXPECT_EQ(cache_.take(server_, false), nullptr) << watched;
    EXPECT_EQ(cache_.idle_count(), 0u) << watched;
  }
  EXPECT_EQ(cache_.closed_while_idle(), 2u);
}

// A TLS connection whose upstream sent a record after the response: OpenSSL read it ahead with
// the response, so the socket is empty, and only the stream knows. The same connection without
// the extra record is reused.
TEST_F(UpstreamCacheTest, BytesOpenSslReadAheadAreFoundWhenTaken) {
  test::TestPki pki;
  const test::CertFiles files = pki.issue("upstream", "localhost");
  net::ssl::context server_ctx(net::ssl::context::tls_server);
  server_ctx.use_certificate_chain_file(files.cert);
  server_ctx.use_private_key_file(files.key, net::ssl::context::pem);
  net::ssl::context client_ctx(net::ssl::context::tls_client);
  for (bool extra : {true, false}) {
    Socket peer(io_.get_executor());
    auto conn = connect(peer);
    net::ssl::stream<Socket&> server_tls(peer, server_ctx);
    conn->stream.start_tls(SSL_new(client_ctx.native_handle()));
    int done = 0;
    conn->stream.tls()->async_handshake(TlsStream::Role::client, [&](error_code ec) {
      EXPECT_FALSE(ec) << ec.message();
      ++done;
    });
    server_tls.async_handshake(net::ssl::stream_base::server, [&](error_code ec) {
      EXPECT_FALSE(ec) << ec.message();
      ++done;
    });
    ASSERT_TRUE(run_until([&] { return done == 2; }));
    io_.restart();
    // The response, then (or not) another record, each its own write and so its own record.
    const std::string response = "HTTP/1.1 204 No Content\r\n\r\n";
    net::write(server_tls, net::buffer(response));
    if (extra) net::write(server_tls, net::buffer(std::string_view("HTTP/1.1 200 OK\r\n")));
    std::string got(response.size(), '\0');
    done = 0;
    conn->stream.async_read_some(net::buffer(got), [&](error_code ec, std::size_t n) {
      EXPECT_FALSE(ec) << ec.message();
      got.resize(n);
      ++done;
    });
    ASSERT_TRUE(run_until([&] { return done == 1; }));
    io_.restart();
    EXPECT_EQ(got, response);
    cache_.put(std::move(conn), Clock::now(), 16);
    auto taken = cache_.take(server_, true);
    EXPECT_EQ(taken == nullptr, extra) << extra;
    EXPECT_EQ(cache_.closed_while_idle(), 1u) << extra;
  }
}

// Bytes that came before the watch was started would not wake it: the sweep looks first.
TEST_F(UpstreamCacheTest, TheSweepClosesAConnectionThatReceivedBytesBeforeItsWatch) {
  Socket peer(io_.get_executor());
  cache_.put(connect(peer), Clock::now(), 16);
  net::write(peer, net::buffer(std::string_view("x")));
  cache_.sweep(Clock::now() + UpstreamCache::kWatchAfter, 1h);
  EXPECT_EQ(cache_.idle_count(), 0u);
  EXPECT_EQ(cache_.closed_while_idle(), 1u);
}

TEST_F(UpstreamCacheTest, TheSweepClosesConnectionsIdleTooLong) {
  Socket peer1(io_.get_executor());
  Socket peer2(io_.get_executor());
  const auto start = Clock::now();
  cache_.put(connect(peer1), start, 16);
  cache_.put(connect(peer2), start + 10s, 16);
  cache_.sweep(start + 15s, 10s);
  EXPECT_EQ(cache_.idle_count(), 1u);
  EXPECT_EQ(cache_.closed_while_idle(), 0u);
}

TEST_F(UpstreamCacheTest, AQuietConnectionIsReusedMostRecentFirst) {
  Socket peer1(io_.get_executor());
  Socket peer2(io_.get_executor());
  auto first = connect(peer1);
  auto second = connect(peer2);
  UpstreamConn* second_raw = second.get();
  cache_.put(std::move(first), Clock::now(), 16);
  cache_.put(std::move(second), Clock::now(), 16);
  cache_.sweep(Clock::now() + UpstreamCache::kWatchAfter, 1h);  // both watched
  auto taken = cache_.take(server_, false);
  EXPECT_EQ(taken.get(), second_raw);
  // The cancelled watch completes as aborted and closes nothing.
  io_.poll();
  EXPECT_EQ(cache_.idle_count(), 1u);
  EXPECT_EQ(cache_.closed_while_idle(), 0u);
}

TEST_F(UpstreamCacheTest, AtMostMaxPerServerIdle) {
  Socket peer1(io_.get_executor());
  Socket peer2(io_.get_executor());
  auto first = connect(peer1);
  auto second = connect(peer2);
  cache_.put(std::move(first), Clock::now(), 1);
  cache_.put(std::move(second), Clock::now(), 1);
  EXPECT_EQ(cache_.idle_count(), 1u);
  EXPECT_EQ(cache_.spare_buffers(), 2u) << "the closed one's buffer is kept too";
}

}  // namespace
}  // namespace proxyd

namespace proxyd {
namespace {

// Draining: the idle connections of servers not kept (a pool out of every slot, a disabled
// server) are closed; the others stay.
TEST_F(UpstreamCacheTest, CloseUnlessKeepsOnlyTheServersGiven) {
  Socket peer1(io_.get_executor());
  Socket peer2(io_.get_executor());
  Socket other_peer(io_.get_executor());
  cache_.put(connect(peer1), Clock::now(), 16);
  cache_.put(connect(peer2), Clock::now(), 16);
  auto other_state = std::make_shared<ServerState>();
  auto other = connect(other_peer);
  other->server = other_state;
  cache_.put(std::move(other), Clock::now(), 16);
  ASSERT_EQ(cache_.idle_count(), 3u);

  EXPECT_EQ(cache_.close_unless({other_state.get()}), 2u);
  EXPECT_EQ(cache_.idle_count(), 1u);
  EXPECT_EQ(cache_.take(server_, false), nullptr);
  // The server's ends see the close.
  char byte = 0;
  error_code ec;
  peer1.read_some(net::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, net::error::eof);
  EXPECT_EQ(cache_.close_unless({}), 1u);
  EXPECT_EQ(cache_.idle_count(), 0u);
}

}  // namespace
}  // namespace proxyd
