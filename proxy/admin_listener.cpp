// The admin listener: see admin_listener.hpp. Beast parses the request (a head only: the admin
// endpoints take no body); the answers are written by hand.
#include "proxy/admin_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <pthread.h>

#include <atomic>
#include <set>
#include <thread>

#include "proxy/awaitable_frames.hpp"

namespace proxyd {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using namespace net::experimental::awaitable_operators;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
constexpr auto kDeadline = std::chrono::seconds(5);
constexpr std::size_t kMaxConnections = 64;
constexpr std::uint32_t kMaxHead = 8 * 1024;
// How long the accept loop pauses after an accept error (out of descriptors, say): the pending
// connection stays in the backlog, and retrying at once would spin this thread at 100%.
constexpr auto kAcceptErrorPause = std::chrono::milliseconds(100);

std::string response(unsigned status, std::string_view reason, std::string_view content_type,
                     std::string_view body, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                    "\r\nContent-Type: " + std::string(content_type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

}  // namespace

struct AdminListener::Impl {
  std::function<std::string()> metrics;
  std::function<bool()> ready;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::set<tcp::socket*> open;  // admin thread only
  std::size_t serving = 0;      // connections accepted and not ended yet (admin thread only)
  // Cancelled when a connection ends: the accept loop waits on it while kMaxConnections are open.
  net::steady_timer slot_free{io, net::steady_timer::time_point::max()};
  std::uint16_t port = 0;

  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(tcp::socket socket);
  std::string answer(const http::request<http::empty_body>& request);
};

AdminListener::AdminListener(std::function<std::string()> metrics, std::function<bool()> ready)
    : impl_(std::make_unique<Impl>()) {
  impl_->metrics = std::move(metrics);
  impl_->ready = std::move(ready);
}

AdminListener::~AdminListener() { stop(); }

bool AdminListener::start(const Endpoint& address, std::string& error) {
  error_code ec;
  const auto ip = net::ip::make_address(address.host, ec);
  if (ec) {
    error = "admin.metrics: " + address.host + " is not an IP address";
    return false;
  }
  const tcp::endpoint endpoint(ip, address.port);
  Impl& i = *impl_;
  i.acceptor.open(endpoint.protocol(), ec);
  if (!ec) i.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(endpoint, ec);
  if (!ec) i.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + address.text() + " (admin.metrics): " + ec.message();
    return false;
  }
  i.port = i.acceptor.local_endpoint().port();
  net::co_spawn(i.io, i.accept_loop(), net::detached);
  i.thread = std::thread([&i] {
    pthread_setname_np(pthread_self(), "proxyd-admin");
    i.io.run();
  });
  return true;
}

void AdminListener::stop() {
  Impl& i = *impl_;
  if (!i.thread.joinable()) return;
  net::post(i.io, [&i] {
    error_code ignored;
    i.acceptor.close(ignored);
    i.slot_free.cancel();
    for (tcp::socket* s : i.open) s->close(ignored);
  });
  i.thread.join();
}

std::uint16_t AdminListener::port() const { return impl_->port; }

// At kMaxConnections open, the next connections wait in the listen backlog, as at nginx's
// worker_connections or HAProxy's maxconn, and each is served when one ends (each gets at most
// kDeadline): a scrape or a probe of /healthz behind a burst is late, not refused.
net::awaitable<void> AdminListener::Impl::accept_loop() {
  for (;;) {
    while (serving >= kMaxConnections && acceptor.is_open()) {
      co_await slot_free.async_wait(use_tuple);
    }
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (!acceptor.is_open()) co_return;
    if (ec) {
      net::steady_timer pause(io, kAcceptErrorPause);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    ++serving;
    net::co_spawn(io, serve(std::move(socket)), net::detached);
  }
}

// One request, one answer, then close; the whole exchange within kDeadline.
net::awaitable<void> AdminListener::Impl::serve(tcp::socket socket) {
  open.insert(&socket);
  struct Forget {
    Impl& impl;
    tcp::socket* socket;
    ~Forget() {
      impl.open.erase(socket);
      --impl.serving;
      impl.slot_free.cancel();
    }
  } forget{*this, &socket};
  if (!acceptor.is_open()) co_return;  // accepted just before stop(), which closes `open`
  net::steady_timer deadline(io);
  deadline.expires_after(kDeadline);
  boost::beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(kMaxHead);
  parser.body_limit(0);
  auto read = co_await (http::async_read(socket, buffer, parser, use_tuple) ||
                        deadline.async_wait(use_tuple));
  if (read.index() == 1) co_return;
  std::string out;
  if (std::get<0>(std::get<0>(read))) {
    out = response(400, "Bad Request", "text/plain", "bad request\n", false);
  } else {
    out = answer(parser.get());
  }
  co_await (net::async_write(socket, net::buffer(out), use_tuple) || deadline.async_wait(use_tuple));
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

std::string AdminListener::Impl::answer(const http::request<http::empty_body>& request) {
  const bool head = request.method() == http::verb::head;
  if (request.method() != http::verb::get && !head)
    return response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
  std::string_view target = request.target();
  target = target.substr(0, target.find('?'));
  if (target == "/metrics") {
    return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", metrics(), head);
  }
  if (target == "/healthz") return response(200, "OK", "text/plain", "ok\n", head);
  if (target == "/ready") {
    return ready() ? response(200, "OK", "text/plain", "ready\n", head)
                   : response(503, "Service Unavailable", "text/plain", "draining\n", head);
  }
  return response(404, "Not Found", "text/plain", "not found: /metrics, /healthz, /ready\n", head);
}

}  // namespace proxyd
