// The control socket itself, spoken to with raw bytes: garbage, oversized and half-sent requests,
// deadlines, the connection limit, the socket file's mode, stale and live sockets at the path,
// and peer-credential refusals (as a real other user when the tests run as root).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <grp.h>
#include <sys/syscall.h>

#include <fstream>
#include <functional>
#include <thread>

#include "tests/integration/control/control_harness.hpp"
#include "tests/support/run_as_nobody.hpp"

namespace proxyd::control::test {
namespace {

namespace json = boost::json;

const std::string kStatus = R"({"v":1,"command":"status"})";

// One ControlServer per test on TEMP/control.sock over a FakeAdminApi; members are destroyed in
// reverse order, so the server stops before the api and the directory go.
class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override { api_.set_status(sample_status()); }

  // Starts a server on dir_/control.sock with `tune` applied to the default options.
  ControlServer& start(const std::function<void(ControlServer::Options&)>& tune = {}) {
    ControlServer::Options options;
    options.path = socket_;
    if (tune) tune(options);
    server_ = std::make_unique<ControlServer>(api_, options);
    std::string error;
    EXPECT_TRUE(server_->start(error)) << error;
    return *server_;
  }

  static json::value parse(const std::optional<std::string>& line) {
    EXPECT_TRUE(line.has_value());
    return json::parse(line.value_or("null"));
  }

  TempDir dir_;
  const std::string socket_ = dir_.file("control.sock");
  FakeAdminApi api_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, GarbageGetsAnErrorReplyAndTheConnectionGoesOn) {
  start();
  RawClient client(socket_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("hello proxyd\n"));
  json::value reply = parse(client.read_line());
  EXPECT_EQ(reply.at("ok"), false);
  EXPECT_EQ(reply.at("error").at("kind"), "bad_request");
  EXPECT_EQ(reply.at("error").at("message"), "the request is not valid JSON: syntax error");

  ASSERT_TRUE(client.send(std::string("\x00\xff\xfe{\"v\":1}\n", 11)));
  EXPECT_EQ(parse(client.read_line()).at("error").at("kind"), "bad_request");
  ASSERT_TRUE(client.send(R"({"v":1,"command":"status","operations":"all"})" "\n"));
  EXPECT_EQ(parse(client.read_line()).at("error").at("message"),
            R"("operations" must be an array)");
  ASSERT_TRUE(client.send(R"({"v":1,"command":"self-destruct"})" "\n"));
  EXPECT_TRUE(parse(client.read_line())
                  .at("error")
                  .at("message")
                  .as_string()
                  .starts_with(R"(unknown command "self-destruct" (proxyd's commands: status, )"));
  ASSERT_TRUE(client.send(R"({"v":9,"command":"status"})" "\n"));
  reply = parse(client.read_line());
  EXPECT_EQ(reply.at("v"), 1);
  EXPECT_EQ(reply.at("error").at("kind"), "unsupported_version");
  ASSERT_TRUE(client.send("\n"));
  EXPECT_EQ(parse(client.read_line()).at("error").at("kind"), "bad_request");

  // Still serving, on the same connection.
  ASSERT_TRUE(client.send(kStatus + "\r\n"));
  reply = parse(client.read_line());
  EXPECT_EQ(reply.at("ok"), true);
  EXPECT_EQ(reply.at("generation"), 7);
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ControlServerTest, ADuplicateKeyIsABadRequestAndChangesNothing) {
  start();
  RawClient client(socket_);
  ASSERT_TRUE(client.send(R"({"v":1,"command":"set-weight","operations":[{"op":"set_weight",)"
                          R"("route":"api","weight_ppm":1,"weight_ppm":999999}]})" "\n"));
  const json::value reply = parse(client.read_line());
  EXPECT_EQ(reply.at("ok"), false);
  EXPECT_EQ(reply.at("error").at("kind"), "bad_request");
  EXPECT_EQ(reply.at("error").at("message"),
            R"(duplicate key "weight_ppm" (a key may appear once in an object))");
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ControlServerTest, SeveralRequestsInOneWriteAreAnsweredInOrder) {
  start();
  RawClient client(socket_);
  ASSERT_TRUE(client.send(kStatus + "\n" + R"({"v":1,"command":"history","limit":2})" "\n"));
  EXPECT_TRUE(parse(client.read_line()).at("result").as_object().contains("routes"));
  EXPECT_TRUE(parse(client.read_line()).at("result").as_object().contains("entries"));
  EXPECT_EQ(api_.history_limits(), std::vector<std::size_t>{2});
}

TEST_F(ControlServerTest, ALastRequestWithoutNewlineIsAnsweredAtEof) {
  start();
  RawClient client(socket_);
  // As `printf '{...}' | socat - UNIX-CONNECT:PATH` sends it: no newline, then end of input.
  ASSERT_TRUE(client.send(kStatus));
  client.shutdown_write();
  EXPECT_EQ(parse(client.read_line()).at("ok"), true);
  EXPECT_TRUE(client.closed_within(milliseconds(5000)));
}

TEST_F(ControlServerTest, OversizedLineIsTooLargeAndClosed) {
  start([](ControlServer::Options& o) { o.max_request_bytes = 1024; });
  {
    // Exactly the limit, newline included: accepted.
    RawClient client(socket_);
    std::string line = R"({"v":1,"command":"status","text":")";
    line += std::string(1024 - line.size() - 3, 'x') + "\"}\n";
    ASSERT_EQ(line.size(), 1024u);
    ASSERT_TRUE(client.send(line));
    EXPECT_EQ(parse(client.read_line()).at("ok"), true);
  }
  {
    // One byte more: refused, and the connection is closed.
    RawClient client(socket_);
    std::string line = R"({"v":1,"command":"status","text":")";
    line += std::string(1025 - line.size() - 3, 'x') + "\"}\n";
    ASSERT_TRUE(client.send(line));
    const json::value reply = parse(client.read_line());
    EXPECT_EQ(reply.at("error").at("kind"), "too_large");
    EXPECT_EQ(reply.at("error").at("message"), "the request line is longer than 1024 bytes");
    EXPECT_TRUE(client.closed_within(milliseconds(5000)));
  }
}

TEST_F(ControlServerTest, DefaultLimitIs64KiB) {
  start();
  RawClient client(socket_);
  // A flood with no newline at all: the server stops reading at 64 KiB and answers.
  client.send(std::string(70'000, 'x'));
  const json::value reply = parse(client.read_line());
  EXPECT_EQ(reply.at("error").at("kind"), "too_large");
  EXPECT_EQ(reply.at("error").at("message"), "the request line is longer than 65536 bytes");
  EXPECT_TRUE(client.closed_within(milliseconds(5000)));
}

TEST_F(ControlServerTest, HalfSentRequestIsClosedAfterTheTimeout) {
  start([](ControlServer::Options& o) { o.io_timeout = milliseconds(300); });
  RawClient client(socket_);
  const auto sent = Clock::now();
  ASSERT_TRUE(client.send(R"({"v":1,"comm)"));
  const std::optional<std::string> line = client.read_line(milliseconds(5000));
  const auto waited = Clock::now() - sent;
  const json::value reply = parse(line);
  EXPECT_EQ(reply.at("error").at("kind"), "timeout");
  EXPECT_EQ(reply.at("error").at("message"), "no complete request line within 300ms");
  EXPECT_TRUE(client.closed_within(milliseconds(5000)));
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LT(waited, milliseconds(5000));

  // A client that says nothing at all gets the same.
  RawClient silent(socket_);
  EXPECT_EQ(parse(silent.read_line(milliseconds(5000))).at("error").at("kind"), "timeout");
  EXPECT_TRUE(silent.closed_within(milliseconds(5000)));

  // The server is fine afterwards.
  RawClient next(socket_);
  ASSERT_TRUE(next.send(kStatus + "\n"));
  EXPECT_EQ(parse(next.read_line()).at("ok"), true);
}

TEST_F(ControlServerTest, AnIdleConnectionAfterAReplyJustCloses) {
  start([](ControlServer::Options& o) { o.io_timeout = milliseconds(300); });
  RawClient client(socket_);
  ASSERT_TRUE(client.send(kStatus + "\n"));
  EXPECT_EQ(parse(client.read_line()).at("ok"), true);
  EXPECT_EQ(client.read_line(milliseconds(5000)), std::nullopt);
  EXPECT_TRUE(client.closed_within(milliseconds(100)));
}

TEST_F(ControlServerTest, ConnectionsOverTheLimitAreTurnedAway) {
  start([](ControlServer::Options& o) { o.max_connections = 2; });
  auto first = std::make_unique<RawClient>(socket_);
  RawClient second(socket_);
  // A reply proves each connection was accepted and counted; both stay open.
  for (RawClient* client : {first.get(), &second}) {
    ASSERT_TRUE(client->send(kStatus + "\n"));
    EXPECT_EQ(parse(client->read_line()).at("ok"), true);
  }
  RawClient third(socket_);
  const json::value reply = parse(third.read_line());
  EXPECT_EQ(reply.at("error").at("kind"), "busy");
  EXPECT_EQ(reply.at("error").at("message"), "too many control connections (2 open); try again");
  EXPECT_TRUE(third.closed_within(milliseconds(5000)));

  // proxyctl reports it as "cannot get through" (3).
  const RunResult r = run_proxyctl({"-s", socket_, "status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "proxyctl: busy: too many control connections (2 open); try again\n");

  // Once one closes there is room again, as soon as the server has seen the close.
  first.reset();
  bool served = false;
  for (const auto deadline = Clock::now() + milliseconds(5000);
       !served && Clock::now() < deadline;) {
    RawClient again(socket_);
    again.send(kStatus + "\n");
    const std::optional<std::string> line = again.read_line();
    served = line && json::parse(*line).at("ok") == true;
    if (!served) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(served);
}

TEST_F(ControlServerTest, SocketFileIs0600ByDefault) {
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ControlServerTest, ModeAndGroupAreApplied) {
  start([](ControlServer::Options& o) {
    o.mode = 0660;
    o.group = ::getegid();
  });
  struct stat st {};
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, ::getegid());
}

TEST_F(ControlServerTest, ASecondServerOnALiveSocketRefuses) {
  start();
  FakeAdminApi other_api;
  ControlServer::Options options;
  options.path = socket_;
  ControlServer second(other_api, options);
  std::string error;
  EXPECT_FALSE(second.start(error));
  EXPECT_EQ(error, "another process is already serving the control socket " + socket_ +
                       " (is another proxyd running?)");
  second.stop();  // must not remove the first server's socket
  RawClient client(socket_);
  ASSERT_TRUE(client.send(kStatus + "\n"));
  EXPECT_EQ(parse(client.read_line()).at("ok"), true);
}

TEST_F(ControlServerTest, AStaleSocketFileIsReplaced) {
  {
    // A socket file nobody listens on, as a proxyd killed with -9 leaves behind.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_.c_str(), sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    ::close(fd);
  }
  ASSERT_TRUE(std::filesystem::exists(socket_));
  start();
  RawClient client(socket_);
  ASSERT_TRUE(client.send(kStatus + "\n"));
  EXPECT_EQ(parse(client.read_line()).at("ok"), true);
}

TEST_F(ControlServerTest, AFileThatIsNotASocketIsLeftAlone) {
  std::ofstream(socket_) << "precious";
  ControlServer::Options options;
  options.path = socket_;
  ControlServer server(api_, options);
  std::string error;
  EXPECT_FALSE(server.start(error));
  EXPECT_EQ(error, socket_ + " exists and is not a socket; not replacing it");
  server.stop();
  std::ifstream in(socket_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(ControlServerTest, TheParentDirectoryIsCreated) {
  const std::string nested = dir_.file("run/proxyd/control.sock");
  ControlServer::Options options;
  options.path = nested;
  ControlServer server(api_, options);
  std::string error;
  ASSERT_TRUE(server.start(error)) << error;
  RawClient client(nested);
  ASSERT_TRUE(client.send(kStatus + "\n"));
  EXPECT_EQ(parse(client.read_line()).at("ok"), true);
}

TEST_F(ControlServerTest, APathTooLongIsAnError) {
  ControlServer::Options options;
  options.path = dir_.file(std::string(120, 'x'));
  ControlServer server(api_, options);
  std::string error;
  EXPECT_FALSE(server.start(error));
  EXPECT_TRUE(error.starts_with("control socket path " + options.path + " is too long (")) << error;
  EXPECT_TRUE(error.ends_with("bytes; the limit is 107)")) << error;
}

TEST_F(ControlServerTest, StopRemovesItsSocketFileOnly) {
  start();
  server_->stop();
  EXPECT_FALSE(std::filesystem::exists(socket_));
  server_->stop();  // twice is fine

  // If something else took the path meanwhile, stop leaves it alone.
  ControlServer& again = start();
  ASSERT_EQ(::unlink(socket_.c_str()), 0);
  std::ofstream(socket_) << "someone else's";
  again.stop();
  EXPECT_TRUE(std::filesystem::exists(socket_));
}

TEST_F(ControlServerTest, StopWithAConnectionOpenClosesIt) {
  start();
  RawClient client(socket_);
  ASSERT_TRUE(client.send(R"({"v":1,)"));
  server_->stop();
  EXPECT_TRUE(client.closed_within(milliseconds(5000)));
}

// Runs `proxyctl -s PATH ARGS...` (default: status) as uid/gid 65534 (nobody).
RunResult run_as_nobody(const std::string& path, std::vector<std::string> args = {"status"}) {
  args.insert(args.begin(), {PROXYCTL_BINARY, "-s", path});
  const proxyd::test::NobodyResult r = proxyd::test::run_as_nobody(std::move(args));
  return RunResult{r.exit_code, r.out, r.err};
}

TEST_F(ControlServerTest, AnotherUserIsRefusedAndLogged) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  ::chmod(dir_.path().c_str(), 0755);
  start([](ControlServer::Options& o) { o.mode = 0666; });
  ::testing::internal::CaptureStderr();
  const RunResult r = run_as_nobody(socket_);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err,
            "proxyctl: forbidden: uid 65534 may not use the control socket (allowed: root, "
            "proxyd's own user, admin.control_allow_uids, admin.control_allow_gids; read only: "
            "admin.control_read_uids, admin.control_read_gids)\n");
  EXPECT_NE(log.find("proxyd: control: refused uid=65534 pid="), std::string::npos) << log;
  EXPECT_EQ(api_.status_calls(), 0);
}

TEST_F(ControlServerTest, AnAllowedUidOrGidGetsIn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  ::chmod(dir_.path().c_str(), 0755);
  start([](ControlServer::Options& o) {
    o.mode = 0666;
    o.allowed_uids = {65534};
  });
  RunResult r = run_as_nobody(socket_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  server_.reset();
  start([](ControlServer::Options& o) {
    o.mode = 0666;
    o.allowed_gids = {65534};
  });
  r = run_as_nobody(socket_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ControlServerTest, AReadOnlyPeerMayLookButNotChange) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  ::chmod(dir_.path().c_str(), 0755);
  start([](ControlServer::Options& o) {
    o.mode = 0666;
    o.read_uids = {65534};
  });
  EXPECT_EQ(run_as_nobody(socket_).exit_code, 0);
  EXPECT_EQ(run_as_nobody(socket_, {"history"}).exit_code, 0);
  EXPECT_EQ(run_as_nobody(socket_, {"diff"}).exit_code, 0);
  ::testing::internal::CaptureStderr();
  const RunResult r = run_as_nobody(socket_, {"set-weight", "api", "5"});
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err,
            "proxyctl: forbidden: uid 65534 may only read (status, stats, history, diff, rollout status, fleet status); set-weight "
            "changes something\n");
  EXPECT_NE(log.find("proxyd: control: refused set-weight from uid=65534 pid="), std::string::npos)
      << log;
  EXPECT_TRUE(api_.applied().empty());
}

TEST_F(ControlServerTest, TheSocketModeKeepsOtherUsersOutFirst) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  ::chmod(dir_.path().c_str(), 0755);
  start();  // 0600, owned by root
  const RunResult r = run_as_nobody(socket_);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err,
            "proxyctl: cannot reach proxyd at " + socket_ + ": connect: Permission denied\n");
}

}  // namespace
}  // namespace proxyd::control::test
