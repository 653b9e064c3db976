// The takeover's last step, the old proxyd's verdict on the new one's "ok" (proxy/takeover.hpp),
// with one side played by this test through proxyd's own functions and the other a real proxyd:
// - a new proxyd whose "ok" comes after the old one's timeouts.takeover is told "serving on":
//   the old one serves on, and takes its control socket back only once the new one let go;
// - a new proxyd told "serving on" closes its control socket, takeover socket and metrics
//   listener before its connection, answers what it accepted, and exits 1; until the verdict it
//   serves, but refuses changes;
// - from an old proxyd of protocol 1 (no verdict), "ok" sent is done, as before.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "proxy/takeover.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kConfig = R"(workers: 1
listeners:
  - {name: public, address: 127.0.0.1:@PORT@}
admin:
  control_socket: @STATE@/control.sock
  state_file: @STATE@/state.json
  audit_log: "off"
  access_log: "off"
  metrics: 127.0.0.1:0
pools:
  blue: {servers: [@BLUE@]}
  green: {servers: [@GREEN@]}
routes:
  - {name: api, match: {path_prefix: /}, live: blue, passive: green}
timeouts: {drain: 10s, takeover: 1s}
)";

// An owned descriptor: closed with the test, however it ends.
struct Fd {
  int fd = -1;
  explicit Fd(int owned = -1) : fd(owned) {}
  Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd, other.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool readable(int fd, std::chrono::milliseconds within) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(within.count())) == 1;
}

// Bytes up to and including the first newline, read one at a time (nothing past it is taken).
std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (readable(fd, 10s) && ::recv(fd, &c, 1, 0) == 1) {
    line += c;
    if (c == '\n') break;
  }
  return line;
}

// A Unix socket listening at `path`; -1 if it cannot be.
Fd listen_unix(const std::string& path) {
  Fd socket{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  if (::bind(socket.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(socket.fd, 4) != 0)
    ::close(std::exchange(socket.fd, -1));
  return socket;
}

bool refuses_connections(std::uint16_t port) {
  Fd probe{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(probe.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
         errno == ECONNREFUSED;
}

class TakeoverVerdict : public ::testing::Test {
 protected:
  void SetUp() override { state_ = make_temp_dir("proxyd-verdict"); }
  void TearDown() override { std::filesystem::remove_all(state_); }

  std::string yaml(std::uint16_t port) const {
    return substitute(kConfig, {{"@PORT@", std::to_string(port)},
                                {"@STATE@", state_},
                                {"@BLUE@", blue_.address()},
                                {"@GREEN@", green_.address()}});
  }
  CommandResult ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", state_ + "/control.sock"});
    return run_program(args, 20s);
  }
  bool exists(const std::string& name) const {
    return std::filesystem::exists(std::filesystem::symlink_status(state_ + "/" + name));
  }

  // This test as the old proxyd: a listening socket on loopback, and the takeover socket a new
  // proxyd started with --takeover asks at.
  void listen_as_old_proxyd() {
    listener_.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener_.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address),
              0);
    ASSERT_EQ(::listen(listener_.fd, 128), 0);
    socklen_t size = sizeof address;
    ::getsockname(listener_.fd, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);

    takeover_socket_ = listen_unix(state_ + "/control.sock" + std::string(kTakeoverSuffix));
    ASSERT_GE(takeover_socket_.fd, 0);
  }
  // Takes the new proxyd's request and sends it the listening socket, in `protocol`; the
  // connection, or -1.
  int offer_listener(int protocol) {
    if (!readable(takeover_socket_.fd, 10s)) return -1;
    const int connection = ::accept4(takeover_socket_.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (read_line(connection) != kTakeoverRequest) return -1;
    TakeoverOffer offer;
    offer.listeners.push_back({"public", "127.0.0.1:" + std::to_string(port_), {listener_.fd}});
    offer.protocol = protocol;
    std::string error;
    EXPECT_TRUE(send_offer(connection, offer, error)) << error;
    return connection;
  }

  std::string state_;
  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  Fd listener_;
  Fd takeover_socket_;
  std::uint16_t port_ = 0;
};

// The real old proxyd, and this test as a new proxyd that says "ok" after timeouts.takeover.
TEST_F(TakeoverVerdict, AnOkAfterTheOldProxydsTimeoutIsToldItServesOn) {
  auto old_proxy = ProxydProcess::start(yaml(0));
  ASSERT_TRUE(old_proxy);
  const std::uint16_t port = old_proxy->port("public");
  std::string error;
  TakeoverGrant grant =
      request_takeover(state_ + "/control.sock" + std::string(kTakeoverSuffix), 10s, error);
  ASSERT_FALSE(grant.empty()) << error;
  ASSERT_TRUE(old_proxy->wait_for_line(
      "takeover: the new proxyd did not say it serves within 1s (timeouts.takeover); told it "
      "this one serves on",
      10s))
      << old_proxy->stderr_text();
  // Its control socket stays closed until this "new proxyd" lets go: this one listens there,
  // as a new proxyd's control socket does before its "ok", and closes it before letting go.
  EXPECT_FALSE(exists("control.sock"));
  Fd control = listen_unix(state_ + "/control.sock");
  std::string why;
  EXPECT_EQ(grant.done(why), proxyd::TakeoverVerdict::serving_on) << why;
  EXPECT_FALSE(old_proxy->wait_for_line("takeover failed", 0ms));
  ::close(std::exchange(control.fd, -1));
  std::filesystem::remove(state_ + "/control.sock");
  grant.let_go();
  ASSERT_TRUE(old_proxy->wait_for_line(
      "takeover failed, serving on: the new proxyd did not say it serves within 1s", 10s))
      << old_proxy->stderr_text();
  // It serves and takes changes, as before.
  EXPECT_TRUE(old_proxy->running());
  const Response response = fetch(port, "/after");
  EXPECT_EQ(response.status, 200u) << response.error;
  EXPECT_EQ(response.body, "blue-1\n");
  const CommandResult weight = ctl({"set-weight", "api", "10"});
  EXPECT_EQ(weight.exit_code, 0) << weight.output;
  EXPECT_FALSE(old_proxy->wait_for_line("handed the listeners over", 0ms));
}

// This test as an old proxyd that gave up waiting, and a real new proxyd.
TEST_F(TakeoverVerdict, ANewProxydToldTheOldServesOnLetsGoAnswersWhatItTookAndExits1) {
  listen_as_old_proxyd();
  ProxydProcess new_proxy(yaml(port_), {"--takeover"});
  Fd connection{offer_listener(2)};
  ASSERT_GE(connection.fd, 0);
  ASSERT_TRUE(readable(connection.fd, 10s)) << new_proxy.stderr_text();  // its "ok"
  ASSERT_TRUE(new_proxy.wait_for_line("proxyd: listening admin.metrics ", 10s));
  const std::uint16_t metrics = new_proxy.port("admin.metrics");
  ASSERT_NE(metrics, 0);

  // Before the verdict it serves on the socket (this test never accepts on it)...
  auto held = std::async(std::launch::async, [&] { return fetch(port_, "/gate", {}, 30s); });
  ASSERT_TRUE(blue_.wait_for_requests(1, 10s));
  // ...and answers, but makes no change: the old proxyd may yet serve on.
  EXPECT_EQ(ctl({"status"}).exit_code, 0);
  const CommandResult refused = ctl({"set-weight", "api", "10"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("proxyd is still taking over from the old proxyd process; try "
                                "again"),
            std::string::npos)
      << refused.output;

  // Its "ok" came after this proxyd's deadline.
  std::string error;
  EXPECT_EQ(await_ok(connection.fd, Clock::now() - 1ms, error), OkWait::late) << error;
  ASSERT_TRUE(wait_let_go(connection.fd, 10s)) << new_proxy.stderr_text();
  // When it let go, what the old proxyd takes back was closed.
  EXPECT_FALSE(exists("control.sock"));
  EXPECT_FALSE(exists("control.sock.takeover"));
  EXPECT_TRUE(refuses_connections(metrics));

  // The request it took is answered whole; then it exits 1, never ready.
  blue_.open_gate();
  const Response answered = held.get();
  EXPECT_EQ(answered.status, 200u) << answered.error;
  EXPECT_EQ(answered.body, "blue-1\n");
  EXPECT_EQ(new_proxy.wait_exit(30s), 1);
  EXPECT_TRUE(new_proxy.wait_for_line("takeover: the old proxyd gave up waiting for this one (its "
                                      "timeouts.takeover) and serves on; this one stops",
                                      0ms))
      << new_proxy.stderr_text();
  EXPECT_FALSE(new_proxy.wait_for_line("proxyd: ready", 0ms));
}

// An old proxyd of protocol 1 sends no verdict: the new one serves once its "ok" is sent.
TEST_F(TakeoverVerdict, FromAnOldProxydOfProtocolOneOkSentIsDone) {
  listen_as_old_proxyd();
  ProxydProcess new_proxy(yaml(port_), {"--takeover"});
  Fd connection{offer_listener(1)};
  ASSERT_GE(connection.fd, 0);
  EXPECT_EQ(read_line(connection.fd), kTakeoverDone);
  // No answer yet, and the connection still open: it is ready and takes changes.
  ASSERT_TRUE(new_proxy.wait_ready()) << new_proxy.stderr_text();
  const CommandResult weight = ctl({"set-weight", "api", "10"});
  EXPECT_EQ(weight.exit_code, 0) << weight.output;
  EXPECT_EQ(fetch(port_, "/x").status, 200u);
  EXPECT_TRUE(new_proxy.signal(SIGTERM));
  EXPECT_EQ(new_proxy.wait_exit(20s), 0);
}

}  // namespace
}  // namespace proxyd::test
