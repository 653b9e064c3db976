// Request framing policy through the real proxyd: every ambiguous or malformed request that Beast
// 1.81 lets through (docs/architecture.md, "Framing policy") gets a 400, its connection is closed, and
// nothing reaches the upstream; oversized headers get 431 and oversized bodies 413; an upstream
// connection that had bytes left over after a response is never reused.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<ProxydProcess> start_proxy(const FakeUpstream& blue, int workers = 2) {
  return ProxydProcess::start(
      ConfigBuilder()
          .workers(workers)
          .pool("blue", {blue.address()})
          .route("web", "/", "blue")
          .timeouts("client_header: 2s, client_idle: 10s, upstream_connect: 500ms, "
                    "upstream_response: 5s, drain: 2s")
          .limits("max_header_bytes: 4096, max_body_bytes: 1KiB")
          .yaml());
}

struct BadRequest {
  const char* name;
  std::string bytes;
};

void PrintTo(const BadRequest& request, std::ostream* out) { *out << request.name; }

// Each is followed, where it matters, by a second request that would reach the upstream if the
// first one's body were framed differently than the client meant (request smuggling).
const BadRequest kBadRequests[] = {
    {"te_gzip",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"
     "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
    {"te_gzip_then_content_length",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello"},
    {"te_chunked_chunked",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
    {"te_chunked_twice",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
     "\r\n\r\n0\r\n\r\n"},
    {"te_gzip_chunked",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
    {"te_and_content_length",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
     "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
    {"chunked_in_http10",
     "POST /sink HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
    {"content_length_differing",
     "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
    {"content_length_list", "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!"},
    {"content_length_malformed",
     "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello"},
    {"content_length_negative", "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"},
    {"obs_fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"},
    {"obs_fold_transfer_encoding",
     "POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n"
     "0\r\n\r\n"},
    {"missing_host", "GET / HTTP/1.1\r\n\r\n"},
    {"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
    {"target_not_origin_form", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n"},
    {"target_control_char", std::string("GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n")},
    {"target_with_tab", "GET /a\tz HTTP/1.1\r\nHost: a\r\n\r\n"},
    {"space_before_colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
};

class BadRequestTest : public ::testing::TestWithParam<BadRequest> {};

TEST_P(BadRequestTest, Gets400ClosesAndReachesNoUpstream) {
  FakeUpstream blue("blue-1");
  auto proxy = start_proxy(blue);
  ASSERT_TRUE(proxy);
  HttpClient client(proxy->port("public"), 3s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  ASSERT_TRUE(client.send_raw(GetParam().bytes));
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 400u);
  EXPECT_FALSE(r.has("x-upstream"));
  EXPECT_TRUE(client.is_closed_by_peer()) << "the connection must be closed after a 400";
  EXPECT_EQ(blue.requests_served(), 0u);
  EXPECT_TRUE(proxy->running());
}

INSTANTIATE_TEST_SUITE_P(Framing, BadRequestTest, ::testing::ValuesIn(kBadRequests),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(FramingLimits, HeaderOverMaxHeaderBytesGets431) {
  FakeUpstream blue("blue-1");
  auto proxy = start_proxy(blue);
  ASSERT_TRUE(proxy);

  // Just under the limit passes.
  Response fits = fetch(proxy->port("public"), "/", {{"X-Big", std::string(3000, 'x')}});
  ASSERT_TRUE(fits.ok()) << fits.error;
  EXPECT_EQ(fits.status, 200u);

  HttpClient client(proxy->port("public"), 3s);
  ASSERT_TRUE(client.connected()) << client.connect_error();
  client.send_raw("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(8000, 'x') + "\r\n\r\n");
  Response r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 431u);
  EXPECT_TRUE(client.is_closed_by_peer());
  EXPECT_EQ(blue.requests_served(), 1u);
}

TEST(FramingLimits, BodyOverMaxBodyBytesGets413) {
  FakeUpstream blue("blue-1");
  auto proxy = start_proxy(blue);
  ASSERT_TRUE(proxy);
  const auto port = proxy->port("public");

  {  // Exactly the limit passes.
    HttpClient client(port, 3s);
    ASSERT_TRUE(client.send_raw("POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n"));
    ASSERT_TRUE(client.send_pattern(1024));
    Response r = client.read_response();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, "1024");
  }
  {  // A declared length over the limit is refused before anything is forwarded.
    const auto before = blue.requests_served();
    HttpClient client(port, 3s);
    ASSERT_TRUE(client.send_raw("POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n"));
    client.send_pattern(2048);
    Response r = client.read_response();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 413u);
    EXPECT_EQ(blue.requests_served(), before);
  }
  {  // A chunked body is only known to be too large once it is; still 413.
    HttpClient client(port, 3s);
    ASSERT_TRUE(
        client.send_raw("POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"));
    client.send_chunked_pattern(4096, 1000);
    Response r = client.read_response();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 413u);
  }
  EXPECT_TRUE(proxy->running());
}

TEST(FramingUpstream, ConnectionWithLeftoverBytesIsNotReused) {
  FakeUpstream blue("blue-1");
  auto proxy = start_proxy(blue, 1);
  ASSERT_TRUE(proxy);
  HttpClient client(proxy->port("public"));
  ASSERT_TRUE(client.connected()) << client.connect_error();

  Response leftover = client.get("/leftover");
  ASSERT_TRUE(leftover.ok()) << leftover.error;
  EXPECT_EQ(leftover.status, 200u);
  EXPECT_EQ(leftover.body, "ok");
  const std::string first_seq = leftover.header("x-conn-seq");

  for (int i = 0; i < 3; ++i) {
    Response next = client.get("/");
    ASSERT_TRUE(next.ok()) << next.error;
    EXPECT_EQ(next.status, 200u);
    EXPECT_EQ(next.body, "blue-1\n");
    EXPECT_NE(next.header("x-conn-seq"), first_seq) << "reused a connection with leftover bytes";
  }
  // The connection after the leftover one is kept and reused as usual.
  EXPECT_EQ(blue.connections_accepted(), 2u);
}

// A 204 or 304 ends at its header: a proxy expecting a body there would hand the next response's
// bytes to this one. Whether the upstream connection is reused afterwards is proxyd's choice.
TEST(FramingUpstream, NoBodyResponsesDoNotDesyncTheNextResponse) {
  FakeUpstream blue("blue-1");
  auto proxy = start_proxy(blue, 1);
  ASSERT_TRUE(proxy);
  HttpClient client(proxy->port("public"));
  ASSERT_TRUE(client.connected()) << client.connect_error();
  for (const char* target : {"/status?code=204", "/", "/status?code=304", "/", "/status?code=204",
                             "/status?code=204", "/"}) {
    Response r = client.get(target);
    ASSERT_TRUE(r.ok()) << target << ": " << r.error;
    EXPECT_EQ(r.header("x-upstream"), "blue-1") << target;
    if (target[1] == 's') {
      EXPECT_EQ(r.body, "") << target;
    } else {
      EXPECT_EQ(r.status, 200u);
      EXPECT_EQ(r.body, "blue-1\n");
    }
  }
}

}  // namespace
}  // namespace proxyd::test
