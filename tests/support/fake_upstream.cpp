// The fake upstream: one accept loop and one coroutine per connection on a private io_context,
// with request bodies read through buffer_body pieces so /echo and /sink stream instead of
// buffering. Replies are written as raw bytes: the tests need exact control of framing (chunked,
// close- delimited, leftover bytes, malformed status lines), which Beast's serializer would
// normalise.
#include "tests/support/fake_upstream.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "proxy/awaitable_frames.hpp"

namespace proxyd::test {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Parser = http::request_parser<http::buffer_body>;

constexpr auto kUseTuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t kPiece = 64 * 1024;

// kPiece bytes of pattern starting at any phase 0..25, so a write at offset o uses &kPattern[o %
// 26].
const std::array<char, kPiece + 26>& pattern_block() {
  static const auto block = [] {
    std::array<char, kPiece + 26> b{};
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern_byte(i);
    return b;
  }();
  return block;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// True if the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    auto comma = value.find(',');
    auto item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::uint64_t to_u64(std::string_view text, std::uint64_t fallback) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return (ec == std::errc{} && p == text.data() + text.size()) ? v : fallback;
}

struct Target {
  std::string path;
  std::map<std::string, std::string, std::less<>> query;
  std::string param(std::string_view name, std::string fallback = {}) const {
    auto it = query.find(name);
    return it == query.end() ? fallback : it->second;
  }
};

Target split_target(std::string_view target) {
  Target t;
  auto q = target.find('?');
  t.path = std::string(target.substr(0, q));
  if (q == std::string_view::npos) return t;
  auto rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto item = rest.substr(0, amp);
    auto eq = item.find('=');
    t.query[std::string(item.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return t;
}

std::string reason_for(unsigned code) {
  auto text = http::obsolete_reason(http::int_to_status(code));
  return text == "<unknown-status>" ? std::string("Whatever") : std::string(text);
}

}  // namespace

// Owner: FakeUpstream. Thread: everything below runs on `thread`, except the counters and the
// condition variable, which tests read from their own threads.
struct FakeUpstream::Impl {
  std::string tag;
  // Sockets of live connections, so stop() can close them; touched only on the I/O thread.
  // Declared before `ioc` so it outlives the coroutine frames destroyed with the io_context.
  std::set<tcp::socket*> live;
  // Connections waiting for their next request with nothing buffered; changed on the I/O thread
  // under `mu` (set_idle), read on it.
  std::set<tcp::socket*> idle;
  // Keys of /close-silently?once=KEY already closed once; I/O thread only.
  std::set<std::string> closed_once;
  // The timers of /gate requests held until open_gate(), and whether it was called; I/O thread.
  std::set<net::steady_timer*> gates;
  bool gate_open = false;
  net::io_context ioc{1};
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> closed{0};  // connections ended, by either side
  std::atomic<std::size_t> idle_count{0};  // idle.size(), for other threads
  std::atomic<std::uint64_t> health_checks{0};   // requests for /healthz
  std::atomic<unsigned> health_status{200};      // what /healthz answers
  std::atomic<unsigned> every_status{0};         // when set, what every request gets
  std::atomic<unsigned> fault_error_every{0};    // set_faults: every Nth default reply is a 500
  std::atomic<unsigned> fault_delay_ms{0};       // set_faults: default replies wait this long
  std::atomic<std::uint64_t> default_replies{0};
  std::string health_request;                    // the last /healthz request's head, under mu
  std::optional<std::string> metrics_text;       // what /metrics answers once set, under mu
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::thread thread;

  Impl(std::string t, const std::string& address, std::uint16_t want_port) : tag(std::move(t)) {
    tcp::endpoint ep(net::ip::make_address(address), want_port);
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(net::socket_base::max_listen_connections);
    port = acceptor.local_endpoint().port();
    net::co_spawn(ioc, accept_loop(), net::detached);
    thread = std::thread([this] { ioc.run(); });
  }

  ~Impl() {
    // Close from the I/O thread (sockets are not thread-safe), then stop; frames still suspended
    // are destroyed with the io_context, which closes their sockets.
    net::post(ioc, [this] {
      beast::error_code ec;
      acceptor.close(ec);
      for (auto* s : live) s->close(ec);
      ioc.stop();
    });
    thread.join();
  }

  void count_health_check() {
    {
      std::lock_guard lock(mu);
      health_checks.fetch_add(1);
    }
    cv.notify_all();
  }

  void set_idle(tcp::socket* sock, bool waiting) {
    {
      std::lock_guard lock(mu);
      if (waiting) {
        idle.insert(sock);
      } else {
        idle.erase(sock);
      }
      idle_count.store(idle.size());
    }
    cv.notify_all();
  }

  // Keeps `live` accurate for the lifetime of one connection coroutine.
  struct LiveGuard {
    Impl& impl;
    tcp::socket* sock;
    LiveGuard(Impl& i, tcp::socket* s) : impl(i), sock(s) { impl.live.insert(sock); }
    ~LiveGuard() { impl.live.erase(sock); }
  };

  net::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(kUseTuple);
      if (!acceptor.is_open()) co_return;
      if (ec) continue;
      std::uint64_t seq = connections.fetch_add(1) + 1;
      sock.set_option(tcp::no_delay(true), ec);
      net::co_spawn(ioc, session(std::move(sock), seq), net::detached);
    }
  }

  std::string head(unsigned code, std::uint64_t seq, std::string_view fields) const {
    std::string h = "HTTP/1.1 " + std::to_string(code) + " " + reason_for(code) + "\r\n";
    h += "x-upstream: " + tag + "\r\n";
    h += "x-conn-seq: " + std::to_string(seq) + "\r\n";
    h += fields;
    h += "\r\n";
    return h;
  }

  static net::awaitable<bool> write_all(tcp::socket& sock, std::string_view bytes) {
    auto [ec, n] = co_await net::async_write(sock, net::buffer(bytes), kUseTuple);
    co_return !ec;
  }

  // A complete reply with a Content-Length body (none for 204/304, none sent for HEAD).
  net::awaitable<bool> reply(tcp::socket& sock, std::uint64_t seq, unsigned code,
                             std::string_view body, bool keep, bool head_only,
                             std::string fields = "content-type: text/plain\r\n") {
    bool bodiless = code == 204 || code == 304;
    if (!bodiless) fields += "content-length: " + std::to_string(body.size()) + "\r\n";
    if (!keep) fields += "connection: close\r\n";
    std::string out = head(code, seq, fields);
    if (!bodiless && !head_only) out += body;
    bool ok = co_await write_all(sock, out);
    co_return ok&& keep;
  }

  // Reads the next piece of the request body into `storage`. {no error, 0} means the body is done.
  static net::awaitable<std::pair<beast::error_code, std::size_t>> read_piece(
      tcp::socket& sock, beast::flat_buffer& buf, Parser& parser, std::span<char> storage) {
    while (!parser.is_done()) {
      auto& body = parser.get().body();
      body.data = storage.data();
      body.size = storage.size();
      auto [ec, n] = co_await http::async_read_some(sock, buf, parser, kUseTuple);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return std::pair{ec, std::size_t{0}};
      std::size_t got = storage.size() - parser.get().body().size;
      if (got > 0) co_return std::pair{beast::error_code{}, got};
    }
    co_return std::pair{beast::error_code{}, std::size_t{0}};
  }

  // Reads and drops the request body; returns its size, or -1 on a read error.
  static net::awaitable<std::int64_t> discard_body(tcp::socket& sock, beast::flat_buffer& buf,
                                                   Parser& parser) {
    std::vector<char> storage(kPiece);
    std::int64_t total = 0;
    for (;;) {
      auto [ec, n] = co_await read_piece(sock, buf, parser, storage);
      if (ec) co_return -1;
      if (n == 0) co_return total;
      total += static_cast<std::int64_t>(n);
    }
  }

  static void graceful_close(tcp::socket& sock) {
    beast::error_code ec;
    sock.shutdown(tcp::socket::shutdown_send, ec);
    sock.close(ec);
  }

  net::awaitable<void> session(tcp::socket sock, std::uint64_t seq) {
    LiveGuard guard(*this, &sock);
    beast::flat_buffer buf;
    for (;;) {
      Parser parser;
      parser.header_limit(1024 * 1024);
      parser.body_limit(boost::none);
      if (buf.size() == 0) set_idle(&sock, true);
      auto [ec, n] = co_await http::async_read_header(sock, buf, parser, kUseTuple);
      set_idle(&sock, false);
      if (ec) break;
      {
        std::lock_guard lock(mu);
        requests.fetch_add(1);
      }
      cv.notify_all();
      if (!co_await handle(sock, buf, parser, seq)) break;
    }
    if (sock.is_open()) graceful_close(sock);
    {
      std::lock_guard lock(mu);
      closed.fetch_add(1);
    }
    cv.notify_all();
  }

  // Answers one request; returns whether the connection stays open for the next one.
  net::awaitable<bool> handle(tcp::socket& sock, beast::flat_buffer& buf, Parser& parser,
                              std::uint64_t seq) {
    auto& req = parser.get();
    const Target target = split_target(req.target());
    const bool keep = req.keep_alive();
    const bool head_only = req.method() == http::verb::head;

    if (iequals(req[http::field::expect], "100-continue") && !parser.is_done()) {
      if (!co_await write_all(sock, "HTTP/1.1 100 Continue\r\n\r\n")) co_return false;
    }

    if (iequals(req[http::field::upgrade], "websocket") &&
        has_token(req[http::field::connection], "upgrade")) {
      co_return co_await upgrade_echo(sock, buf, parser, seq);
    }

    if (target.path == "/reset") {
      beast::error_code ec;
      sock.set_option(net::socket_base::linger(true, 0), ec);
      sock.close(ec);
      co_return false;
    }
    if (target.path == "/echo") co_return co_await echo(sock, buf, parser, seq, keep);
    if (target.path == "/hold") {
      // Never read the body, never answer: the sender's window and buffers fill. Held until an
      // error on the socket or the server stops (which closes it).
      co_await sock.async_wait(tcp::socket::wait_error, kUseTuple);
      co_return false;
    }

    const std::int64_t body_bytes = co_await discard_body(sock, buf, parser);
    if (body_bytes < 0) co_return false;

    if (target.path == "/healthz") {
      std::ostringstream head;
      head << req.base();
      std::lock_guard lock(mu);
      health_request = head.str();
    }
    if (const unsigned every = every_status.load(); every != 0) {
      if (target.path == "/healthz") count_health_check();
      co_return co_await reply(sock, seq, every, "status " + std::to_string(every) + "\n", keep,
                               head_only);
    }
    if (target.path == "/healthz") {
      count_health_check();
      const unsigned code = health_status.load();
      co_return co_await reply(sock, seq, code, "health " + std::to_string(code) + "\n", keep,
                               head_only);
    }

    if (target.path == "/metrics") {
      std::optional<std::string> text;
      {
        std::lock_guard lock(mu);
        text = metrics_text;
      }
      if (text) co_return co_await reply(sock, seq, 200, *text, keep, head_only);
    }
    if (target.path.ends_with("/set-cookie")) {
      co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only,
                               "set-cookie: " + std::string(target.param("v")) + "\r\n");
    }
    if (target.path == "/headers") {
      std::string body = std::string(req.method_string()) + " " + std::string(req.target()) +
                         " HTTP/" + std::to_string(req.version() / 10) + "." +
                         std::to_string(req.version() % 10) + "\n";
      for (const auto& field : req) {
        body += std::string(field.name_string()) + ": " + std::string(field.value()) + "\n";
      }
      co_return co_await reply(sock, seq, 200, body, keep, head_only);
    }
    if (target.path == "/sink") {
      co_return co_await reply(sock, seq, 200, std::to_string(body_bytes), keep, head_only);
    }
    if (target.path == "/bytes") {
      co_return co_await bytes(sock, seq, to_u64(target.param("n"), 0), target.param("mode", "cl"),
                               keep, head_only);
    }
    if (target.path == "/delay") {
      net::steady_timer timer(ioc);
      timer.expires_after(std::chrono::milliseconds(to_u64(target.param("ms"), 0)));
      auto [ec] = co_await timer.async_wait(kUseTuple);
      if (ec) co_return false;
      co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only);
    }
    if (target.path == "/gate") {
      if (!gate_open) {
        net::steady_timer held(ioc, net::steady_timer::time_point::max());
        gates.insert(&held);
        co_await held.async_wait(kUseTuple);  // cancelled by open_gate()
        gates.erase(&held);
      }
      co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only);
    }
    if (target.path == "/stall") {
      // Never answer; hold the socket until the peer closes it or the server stops.
      std::array<char, 4096> sink{};
      for (;;) {
        auto [ec, n] = co_await sock.async_read_some(net::buffer(sink), kUseTuple);
        if (ec) co_return false;
      }
    }
    if (target.path == "/garbage") {
      co_await write_all(sock, "HTTP/1.1 2x0 what\r\nx-upstream: " + tag + "\r\n\r\n");
      graceful_close(sock);
      co_return false;
    }
    if (target.path == "/status") {
      auto code = static_cast<unsigned>(to_u64(target.param("code"), 400));
      if (code < 200 || code > 599) code = 400;
      co_return co_await reply(sock, seq, code, "status " + std::to_string(code) + "\n", keep,
                               head_only);
    }
    if (target.path == "/leftover") {
      std::string out = head(200, seq, "content-length: 2\r\n") + "okEXTRA";
      co_return (co_await write_all(sock, out)) && keep;
    }
    if (target.path == "/interim") {
      // n interim responses (102 Processing), `ms` apart, then the final 200.
      const std::uint64_t n = to_u64(target.param("n"), 1);
      const auto gap = std::chrono::milliseconds(to_u64(target.param("ms"), 0));
      for (std::uint64_t i = 0; i < n; ++i) {
        if (gap.count() > 0) {
          net::steady_timer timer(ioc, gap);
          auto [ec] = co_await timer.async_wait(kUseTuple);
          if (ec) co_return false;
        }
        if (!co_await write_all(sock, "HTTP/1.1 102 Processing\r\n\r\n")) co_return false;
      }
      co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only);
    }
    if (target.path == "/bare-lf") {
      // Lines ending in LF alone; the connection then stays open and silent.
      if (!co_await write_all(sock, "HTTP/1.1 200 OK\nx-upstream: " + tag +
                                        "\ncontent-length: 2\n\nok")) {
        co_return false;
      }
      std::array<char, 4096> sink{};
      for (;;) {
        auto [ec, n] = co_await sock.async_read_some(net::buffer(sink), kUseTuple);
        if (ec) co_return false;
      }
    }
    if (target.path == "/obs-fold") {
      // Two fields continued on a second line (obs-fold, RFC 9112 5.2).
      const std::string out = head(200, seq, "x-a: one\r\n two\r\nx-b: three\r\n four\r\ncontent-length: 2\r\n") + "ok";
      co_return (co_await write_all(sock, out)) && keep;
    }
    if (target.path == "/big-head") {
      const std::string fields = "content-length: 2\r\nx-big: ";
      const std::size_t bare = head(200, seq, fields + "\r\n").size();
      const std::size_t want = std::max<std::size_t>(to_u64(target.param("bytes"), 0), 128);
      const std::string out =
          head(200, seq, fields + std::string(want > bare ? want - bare : 0, 'a') + "\r\n") + "ok";
      co_return (co_await write_all(sock, out)) && keep;
    }
    if (target.path == "/close-silently") {
      // The request is read, then the connection closes without a byte of response; with
      // once=KEY only the first request with that key, later ones get the usual reply.
      const std::string once = target.param("once");
      if (once.empty() || closed_once.insert(once).second) {
        graceful_close(sock);
        co_return false;
      }
      co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only);
    }
    if (target.path == "/trailers") {
      // A chunked body "hello" then two trailer fields; field names in both cases, as HTTP/1.1
      // allows (HTTP/2 needs them lowercase).
      // framing=1: a Content-Length and a Transfer-Encoding among them too, which a sender must
      // not put in trailers (RFC 9110 6.5.1).
      const std::string framing = target.param("framing") == "1"
                                      ? "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                                      : "";
      const std::string out =
          head(200, seq,
               "transfer-encoding: chunked\r\ntrailer: x-checksum, x-count\r\n"
               "X-Mixed-Case: Yes\r\n") +
          "5\r\nhello\r\n0\r\nx-checksum: 5d41402a\r\n" + framing + "X-Count: 1\r\n\r\n";
      co_return (co_await write_all(sock, out)) && keep;
    }
    if (target.path == "/bad-chunks") {
      // A chunked response that fails before its first byte of body: a chunk-size line that is
      // not hex (case=line), or the connection closed after the head (case=close).
      std::string out = head(200, seq, "transfer-encoding: chunked\r\n");
      if (target.param("case") == "line") out += "zz\r\nhello\r\n";
      if (co_await write_all(sock, out)) graceful_close(sock);
      co_return false;
    }
    if (target.path == "/odd-lengths") {
      // Content-Length where an HTTP/2 client would refuse it as sent: a list of equal values
      // (case=list), on a 204 (case=no-content), on a 103 before the final response
      // (case=interim).
      const std::string which = target.param("case");
      if (which == "no-content") {
        co_return (co_await write_all(sock, head(204, seq, "content-length: 5\r\n"))) && keep;
      }
      if (which == "interim" &&
          !co_await write_all(sock, "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n"
                                    "content-length: 7\r\n\r\n")) {
        co_return false;
      }
      // Built before the co_await: GCC 12 destroys a conditional temporary twice inside one.
      std::string out = head(200, seq, "content-length: 2, 2\r\n");
      if (!head_only) out += "ok";
      co_return (co_await write_all(sock, out)) && keep;
    }
    if (target.path == "/early-hints") {
      if (!co_await write_all(sock, "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n")) {
        co_return false;
      }
      co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only);
    }
    // The default reply, with the faults set_faults() asked for.
    if (const unsigned ms = fault_delay_ms.load(); ms != 0) {
      net::steady_timer timer(ioc);
      timer.expires_after(std::chrono::milliseconds(ms));
      auto [ec] = co_await timer.async_wait(kUseTuple);
      if (ec) co_return false;
    }
    if (const unsigned every = fault_error_every.load(); every != 0) {
      if (default_replies.fetch_add(1) % every == 0)
        co_return co_await reply(sock, seq, 500, "fault\n", keep, head_only);
    }
    co_return co_await reply(sock, seq, 200, tag + "\n", keep, head_only);
  }

  // /echo: a chunked response whose chunks are the request body's pieces as they arrive.
  net::awaitable<bool> echo(tcp::socket& sock, beast::flat_buffer& buf, Parser& parser,
                            std::uint64_t seq, bool keep) {
    std::string fields = "content-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n";
    if (!keep) fields += "connection: close\r\n";
    if (!co_await write_all(sock, head(200, seq, fields))) co_return false;
    std::vector<char> storage(kPiece);
    for (;;) {
      auto [ec, n] = co_await read_piece(sock, buf, parser, storage);
      if (ec) co_return false;
      if (n == 0) break;
      char size_line[32];
      auto [end, size_ec] = std::to_chars(size_line, size_line + 16, n, 16);
      *end++ = '\r';
      *end++ = '\n';
      std::array<net::const_buffer, 3> chunk{
          net::buffer(size_line, static_cast<std::size_t>(end - size_line)),
          net::buffer(storage.data(), n), net::buffer("\r\n", 2)};
      auto [wec, wn] = co_await net::async_write(sock, chunk, kUseTuple);
      if (wec) co_return false;
    }
    co_return (co_await write_all(sock, "0\r\n\r\n")) && keep;
  }

  // /bytes: n pattern bytes in kPiece writes with the requested framing.
  net::awaitable<bool> bytes(tcp::socket& sock, std::uint64_t seq, std::uint64_t n,
                             const std::string& mode, bool keep, bool head_only) {
    const bool chunked = mode == "chunked";
    const bool cut = mode == "short";
    const bool close = mode == "close" || cut;
    std::string fields = "content-type: application/octet-stream\r\n";
    if (chunked) {
      fields += "transfer-encoding: chunked\r\n";
    } else if (mode != "close") {
      fields += "content-length: " + std::to_string(n) + "\r\n";
    }
    if (close || !keep) fields += "connection: close\r\n";
    if (!co_await write_all(sock, head(200, seq, fields))) co_return false;
    if (head_only) co_return keep && !close;
    if (cut) n /= 2;
    const auto& block = pattern_block();
    for (std::uint64_t off = 0; off < n;) {
      const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, n - off));
      net::const_buffer data(block.data() + off % 26, len);
      beast::error_code ec;
      if (chunked) {
        char size_line[32];
        auto [end, size_ec] = std::to_chars(size_line, size_line + 16, len, 16);
        *end++ = '\r';
        *end++ = '\n';
        std::array<net::const_buffer, 3> chunk{
            net::buffer(size_line, static_cast<std::size_t>(end - size_line)), data,
            net::buffer("\r\n", 2)};
        std::tie(ec, std::ignore) = co_await net::async_write(sock, chunk, kUseTuple);
      } else {
        std::tie(ec, std::ignore) = co_await net::async_write(sock, data, kUseTuple);
      }
      if (ec) co_return false;
      off += len;
    }
    if (chunked && !co_await write_all(sock, "0\r\n\r\n")) co_return false;
    if (close) {
      graceful_close(sock);
      co_return false;
    }
    co_return keep;
  }

  // After 101 the connection is a byte pipe: echo everything until EOF, then close.
  net::awaitable<bool> upgrade_echo(tcp::socket& sock, beast::flat_buffer& buf, Parser& parser,
                                    std::uint64_t seq) {
    // /upgrade-without-field: a 101 that names no protocol (no Upgrade field), which RFC 9110
    // 7.8 forbids.
    const bool name_it = split_target(parser.get().target()).path != "/upgrade-without-field";
    std::string fields = name_it ? "upgrade: websocket\r\nconnection: Upgrade\r\n"
                                 : "connection: Upgrade\r\n";
    // Intermediaries may check the handshake (HAProxy does), so answer it as a real server would.
    if (auto key = parser.get()[http::field::sec_websocket_key]; !key.empty()) {
      beast::websocket::detail::sec_ws_accept_type accept;
      beast::websocket::detail::make_sec_ws_accept(accept, key);
      fields += "sec-websocket-accept: " + std::string(accept.data(), accept.size()) + "\r\n";
    }
    if (co_await discard_body(sock, buf, parser) < 0) co_return false;
    if (!co_await write_all(sock, head(101, seq, fields))) co_return false;
    if (buf.size() > 0) {
      auto [ec, n] = co_await net::async_write(sock, buf.data(), kUseTuple);
      if (ec) co_return false;
      buf.consume(buf.size());
    }
    std::array<char, 16 * 1024> storage{};
    for (;;) {
      auto [ec, n] = co_await sock.async_read_some(net::buffer(storage), kUseTuple);
      if (ec) break;
      auto [wec, wn] = co_await net::async_write(sock, net::buffer(storage.data(), n), kUseTuple);
      if (wec) break;
    }
    graceful_close(sock);
    co_return false;
  }
};

FakeUpstream::FakeUpstream(std::string tag) : FakeUpstream(std::move(tag), "127.0.0.1", 0) {}

FakeUpstream::FakeUpstream(std::string tag, const std::string& address, std::uint16_t port)
    : impl_(std::make_unique<Impl>(std::move(tag), address, port)) {}

FakeUpstream::~FakeUpstream() = default;

std::uint16_t FakeUpstream::port() const { return impl_->port; }
std::string FakeUpstream::address() const { return "127.0.0.1:" + std::to_string(impl_->port); }
const std::string& FakeUpstream::tag() const { return impl_->tag; }
std::uint64_t FakeUpstream::connections_accepted() const { return impl_->connections.load(); }
std::uint64_t FakeUpstream::requests_served() const { return impl_->requests.load(); }

std::uint64_t FakeUpstream::connections_closed() const { return impl_->closed.load(); }
std::uint64_t FakeUpstream::health_checks() const { return impl_->health_checks.load(); }
void FakeUpstream::set_health_status(unsigned code) { impl_->health_status.store(code); }
void FakeUpstream::set_every_status(unsigned code) { impl_->every_status.store(code); }
void FakeUpstream::open_gate() {
  net::post(impl_->ioc, [impl = impl_.get()] {
    impl->gate_open = true;
    for (net::steady_timer* held : impl->gates) held->cancel();
  });
}

void FakeUpstream::set_faults(unsigned error_every, unsigned delay_ms) {
  impl_->fault_error_every.store(error_every);
  impl_->fault_delay_ms.store(delay_ms);
}
void FakeUpstream::set_metrics_text(std::string text) {
  std::lock_guard lock(impl_->mu);
  impl_->metrics_text = std::move(text);
}
std::string FakeUpstream::last_health_request() const {
  std::lock_guard lock(impl_->mu);
  return impl_->health_request;
}

bool FakeUpstream::wait_for_health_checks(std::uint64_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->health_checks.load() >= n; });
}

bool FakeUpstream::wait_for_idle(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->idle_count.load() >= n; });
}

std::size_t FakeUpstream::push_to_idle(std::string bytes, bool close_after) {
  std::promise<std::size_t> done;
  std::future<std::size_t> written = done.get_future();
  net::post(impl_->ioc, [this, &done, bytes = std::move(bytes), close_after] {
    std::size_t count = 0;
    for (tcp::socket* sock : impl_->idle) {
      beast::error_code ec;
      net::write(*sock, net::buffer(bytes), ec);  // small: fits the socket's send buffer
      if (ec) continue;
      ++count;
      if (close_after) sock->shutdown(tcp::socket::shutdown_both, ec);
    }
    done.set_value(count);
  });
  return written.get();
}

bool FakeUpstream::wait_for_closed(std::uint64_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->closed.load() >= n; });
}

bool FakeUpstream::wait_for_requests(std::uint64_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->requests.load() >= n; });
}

namespace {

// A TCP socket bound to a free loopback port, not listening; the port through `port`.
int bind_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "bind 127.0.0.1:0");
  }
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

std::uint16_t unused_port() {
  std::uint16_t port = 0;
  ::close(bind_loopback(port));
  return port;
}

RefusingPort::RefusingPort() { fd_ = bind_loopback(port_); }

RefusingPort::~RefusingPort() { ::close(fd_); }

std::string RefusingPort::address() const { return "127.0.0.1:" + std::to_string(port_); }

Blackhole::Blackhole() {
  auto fail = [this](const char* what) {
    int err = errno;
    for (int fd : fillers_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw std::system_error(err, std::generic_category(), what);
  };
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fail("getsockname");
  }
  if (::listen(listen_fd_, 0) != 0) fail("listen");
  port_ = ntohs(addr.sin_port);
  // With backlog 0 the accept queue holds one connection; ours fills it. The kernel completes
  // this handshake without accept(), so a blocking connect returns at once.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  fillers_.push_back(fd);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("connect");
}

Blackhole::~Blackhole() {
  for (int fd : fillers_) ::close(fd);
  ::close(listen_fd_);
}

std::string Blackhole::address() const { return "127.0.0.1:" + std::to_string(port_); }

}  // namespace proxyd::test
