// The header transform and the request/response framing policy, on raw bytes parsed by the same
// parsers the session uses (HeadParser for requests, parse_response for responses) plus our
// checks, as a client or an upstream would hit them.
#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>

#include <string>

#include "proxy/header_transform.hpp"
#include "proxy/http_head.hpp"
#include "proxy/response_head.hpp"

namespace proxyd {
namespace {

constexpr std::uint64_t kMaxBody = 1000;

// Parses a request head; the outcome is what a client would get: nullopt means accepted.
struct Parsed {
  std::string bytes;  // owns what the head's views point into
  RequestHead head;
  RequestPlan plan;
  std::optional<LocalReason> refusal;
};

std::unique_ptr<Parsed> parse_request(std::string raw) {
  auto p = std::make_unique<Parsed>();
  p->bytes = std::move(raw);
  std::size_t scanned = 0;
  if (scan_head(p->bytes, scanned).state == HeadScan::State::obs_fold) {
    p->refusal = LocalReason::bad_request;
    return p;
  }
  HeadParser<true> parser(p->head);
  parser.header_limit(64 * 1024);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(p->bytes), ec);
  if (ec || !parser.is_header_done()) {
    p->refusal = LocalReason::bad_request;
    return p;
  }
  p->refusal = check_request(p->head, kMaxBody, p->plan);
  return p;
}

std::optional<LocalReason> verdict(const std::string& raw) { return parse_request(raw)->refusal; }

// The head scan, byte by byte as a slow peer sends it and whole: the same answer either way.
HeadScan scan_whole(std::string_view bytes) {
  std::size_t scanned = 0;
  return scan_head(bytes, scanned);
}

HeadScan scan_bytewise(std::string_view bytes) {
  std::size_t scanned = 0;
  HeadScan scan;
  for (std::size_t n = 1; n <= bytes.size(); ++n) {
    scan = scan_head(bytes.substr(0, n), scanned);
    if (scan.state != HeadScan::State::incomplete) return scan;
  }
  return scan;
}

TEST(HeadScan, FindsTheEndOfAHeadAfterTheLastCrlfCrlf) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (auto scan : {scan_whole(head + "body"), scan_bytewise(head + "body")}) {
    EXPECT_EQ(scan.state, HeadScan::State::complete);
    EXPECT_EQ(scan.length, head.size());
  }
  EXPECT_EQ(scan_whole("HTTP/1.1 204 No Content\r\n\r\n").length, 27u);
}

TEST(HeadScan, IncompleteUntilTheBlankLine) {
  for (const char* partial : {"", "GET / HTTP/1.1", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\n",
                              "GET / HTTP/1.1\r\nHost: a\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r"}) {
    EXPECT_EQ(scan_whole(partial).state, HeadScan::State::incomplete) << partial;
    EXPECT_EQ(scan_bytewise(partial).state, HeadScan::State::incomplete) << partial;
  }
}

TEST(HeadScan, BareLfAnywhereIsRefusedAtOnce) {
  for (const char* bad : {"GET / HTTP/1.1\nHost: a\n\n", "GET / HTTP/1.1\r\nHost: a\n\r\n",
                          "\n", "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
                          "GET / HTTP/1.1\r\nHost: a\r\n\n"}) {
    EXPECT_EQ(scan_whole(bad).state, HeadScan::State::bare_lf) << bad;
    EXPECT_EQ(scan_bytewise(bad).state, HeadScan::State::bare_lf) << bad;
  }
  // Found as soon as the first bare LF is in, not at the end of the head.
  EXPECT_EQ(scan_whole("HTTP/1.1 200 OK\n").state, HeadScan::State::bare_lf);
}

TEST(Idempotency, PerRfc9110) {
  for (auto verb : {http::verb::get, http::verb::head, http::verb::options, http::verb::trace,
                    http::verb::put, http::verb::delete_})
    EXPECT_TRUE(is_idempotent(verb)) << http::to_string(verb);
  for (auto verb : {http::verb::post, http::verb::patch, http::verb::connect, http::verb::unknown})
    EXPECT_FALSE(is_idempotent(verb)) << http::to_string(verb);
}

TEST(RequestFraming, AcceptsPlainRequests) {
  auto p = parse_request("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n");
  ASSERT_FALSE(p->refusal);
  EXPECT_EQ(p->plan.framing, BodyFraming::none);
  EXPECT_EQ(p->plan.host, "example.com");
  EXPECT_TRUE(p->plan.keep_alive);
}

TEST(RequestFraming, ContentLengthBody) {
  auto p = parse_request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
  ASSERT_FALSE(p->refusal);
  EXPECT_EQ(p->plan.framing, BodyFraming::length);
  EXPECT_EQ(p->plan.length, 12u);
}

TEST(RequestFraming, ChunkedBody) {
  auto p = parse_request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_FALSE(p->refusal);
  EXPECT_EQ(p->plan.framing, BodyFraming::chunked);
}

TEST(RequestFraming, TransferEncodingOtherThanChunkedIsRefused) {
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"),
            LocalReason::bad_request);
}

TEST(RequestFraming, TransferEncodingWithContentLengthIsRefused) {
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                    "Content-Length: 5\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 5\r\n\r\n"),
            LocalReason::bad_request);
}

TEST(RequestFraming, ChunkedInHttp10IsRefused) {
  EXPECT_EQ(verdict("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            LocalReason::bad_request);
}

TEST(RequestFraming, BadContentLengthIsRefused) {
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            LocalReason::bad_request);
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"),
            LocalReason::bad_request);
}

TEST(RequestFraming, BodyOverTheLimitIsTooLarge) {
  EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n"),
            LocalReason::body_too_large);
  EXPECT_FALSE(verdict("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"));
}

TEST(RequestFraming, ObsFoldIsRefused) {
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n"), LocalReason::bad_request);
}

TEST(HeadScan, ObsFoldIsRefusedAtOnceHoweverTheBytesArrive) {
  for (const char* bad : {"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  2\r\n\r\n",
                          "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\n\tchunked\r\n\r\n",
                          "HTTP/1.1 200 OK\r\n x: 1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nx-a: one\r\n two\r\ncontent-length: 2\r\n\r\nok"}) {
    EXPECT_EQ(scan_whole(bad).state, HeadScan::State::obs_fold) << bad;
    EXPECT_EQ(scan_bytewise(bad).state, HeadScan::State::obs_fold) << bad;
  }
  // Not before the byte after the line's LF is in: it may still be an ordinary field.
  EXPECT_EQ(scan_whole("HTTP/1.1 200 OK\r\nx-a: one\r\n").state, HeadScan::State::incomplete);
  const std::string good = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1 2\r\n\r\n";
  EXPECT_EQ(scan_whole(good).state, HeadScan::State::complete);
  EXPECT_EQ(scan_bytewise(good).state, HeadScan::State::complete);
  EXPECT_EQ(scan_bytewise(good).length, good.size());
}

TEST(RequestFraming, HostIsRequiredOnceInHttp11) {
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\n\r\n"), LocalReason::bad_request);
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), LocalReason::bad_request);
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), LocalReason::bad_request);
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), LocalReason::bad_request);
  EXPECT_FALSE(verdict("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_FALSE(verdict("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"));
}

TEST(RequestFraming, TargetMustBeOriginOrAbsoluteForm) {
  EXPECT_EQ(verdict("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), LocalReason::bad_request);
  EXPECT_FALSE(verdict("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(verdict("GET //a/ HTTP/1.1\r\nHost: a\r\n\r\n"), std::nullopt);  // a path
  EXPECT_EQ(verdict("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), LocalReason::bad_request);
  EXPECT_EQ(verdict("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), LocalReason::bad_request);
  EXPECT_EQ(verdict("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), LocalReason::bad_request);
  EXPECT_FALSE(verdict("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"));
}

TEST(RequestFraming, KeepAliveFollowsVersionAndConnection) {
  EXPECT_FALSE(parse_request("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")->plan.keep_alive);
  EXPECT_FALSE(parse_request("GET / HTTP/1.0\r\n\r\n")->plan.keep_alive);
  EXPECT_TRUE(parse_request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->plan.keep_alive);
}

TEST(RequestFraming, TooManyConnectionTokensIsRefused) {
  std::string list = "a";
  for (int i = 0; i < 40; ++i) list += ", t" + std::to_string(i);
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: a\r\nConnection: " + list + "\r\n\r\n"),
            LocalReason::bad_request);
}

TEST(RequestFraming, UpgradeOnlyForGetWithConnectionUpgrade) {
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n")->plan.upgrade,
            "websocket");
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")->plan.upgrade,
            "");
  EXPECT_EQ(parse_request("POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n")->plan.upgrade,
            "");
}

std::string upstream_head(const std::string& raw, bool tls = false) {
  auto p = parse_request(raw);
  EXPECT_FALSE(p->refusal);
  std::string out;
  write_upstream_request(p->head, p->plan, ForwardInfo{"10.1.2.3", tls, "192.0.2.1:8080"}, out);
  return out;
}

// RFC 9112 3.2.2: a server accepts the absolute-form; its authority is the host, whatever Host
// says, and the upstream gets the origin-form with that authority as Host.
TEST(RequestFraming, AbsoluteFormIsAcceptedAndItsAuthorityIsTheHost) {
  auto p = parse_request("GET http://a.example:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_FALSE(p->refusal);
  EXPECT_TRUE(p->plan.absolute);
  EXPECT_EQ(p->plan.target, "/p?q=1");
  EXPECT_EQ(p->plan.host, "a.example:8080");
  EXPECT_EQ(upstream_head("GET http://a.example:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"),
            "GET /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a.example:8080\r\n\r\n");
  auto https = parse_request("GET HTTPS://A.Example/x HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_FALSE(https->refusal);
  EXPECT_EQ(https->plan.target, "/x");
  EXPECT_EQ(https->plan.host, "A.Example");
  // An origin-form target is its own.
  auto origin = parse_request("GET /o HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_FALSE(origin->plan.absolute);
  EXPECT_EQ(origin->plan.target, "/o");
  // Still a 400: a query without a path, another scheme, an empty or bad authority, no Host in
  // HTTP/1.1.
  for (const char* bad : {"GET http://a.example?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET http://a.example#f HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET ftp://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET http://a@b/x HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET http://a.example/x HTTP/1.1\r\n\r\n"})
    EXPECT_EQ(verdict(bad), LocalReason::bad_request) << bad;
}

// An empty path is "/" (RFC 9112 3.2.1), as nginx and HAProxy forward it; for OPTIONS it is "*",
// which the last proxy sends for an OPTIONS with neither path nor query (RFC 9112 3.2.4).
TEST(RequestFraming, AnAbsoluteFormTargetWithoutAPathIsTheRoot) {
  auto get = parse_request("GET http://a.example:8080 HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_FALSE(get->refusal);
  EXPECT_TRUE(get->plan.absolute);
  EXPECT_EQ(get->plan.target, "/");
  EXPECT_EQ(get->plan.host, "a.example:8080");
  EXPECT_EQ(upstream_head("HEAD HTTPS://A.Example HTTP/1.1\r\nHost: other\r\n\r\n"),
            "HEAD / HTTP/1.1\r\nHost: A.Example\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: A.Example\r\n\r\n");
  EXPECT_EQ(upstream_head("OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            "OPTIONS * HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a.example\r\n\r\n");
  // With a path, OPTIONS keeps it.
  EXPECT_EQ(parse_request("OPTIONS http://a.example/ HTTP/1.1\r\nHost: a\r\n\r\n")->plan.target,
            "/");
}

TEST(HeaderTransform, RemovesHopByHopAndConnectionNamedFields) {
  std::string out = upstream_head(
      "GET /x HTTP/1.1\r\nHost: site\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n"
      "X-Secret: 1\r\nTE: trailers\r\nProxy-Connection: x\r\nProxy-Authorization: b\r\n"
      "Upgrade: h2c\r\nTrailer: x\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(out,
            "GET /x HTTP/1.1\r\nHost: site\r\nAccept: */*\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: site\r\n\r\n");
}

// A client cannot strip Host by naming it in Connection: proxyd routed on it, and HTTP/1.1
// requires it upstream (RFC 9112 3.2). The other named fields still go.
TEST(HeaderTransform, HostStaysWhenConnectionNamesIt) {
  std::string out = upstream_head(
      "GET /x HTTP/1.1\r\nHost: site\r\nConnection: Host, X-Secret\r\nX-Secret: 1\r\n\r\n");
  EXPECT_EQ(out,
            "GET /x HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: site\r\n\r\n");
  out = upstream_head(
      "GET /x HTTP/1.0\r\nHost: site\r\nConnection: keep-alive, host\r\n\r\n");
  EXPECT_EQ(out,
            "GET /x HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: site\r\n\r\n");
}

TEST(HeaderTransform, AppendsToXForwardedForAndReplacesProtoAndHost) {
  std::string out = upstream_head(
      "GET / HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n"
      "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n",
      false);
  EXPECT_NE(out.find("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-Proto: http\r\n"), std::string::npos);
  EXPECT_EQ(out.find("https"), std::string::npos);
  EXPECT_EQ(out.find("evil"), std::string::npos);
  EXPECT_NE(out.find("X-Forwarded-Host: site\r\n"), std::string::npos);
  EXPECT_NE(upstream_head("GET / HTTP/1.1\r\nHost: s\r\n\r\n", true).find("X-Forwarded-Proto: https"),
            std::string::npos);
}

TEST(HeaderTransform, RestatesFramingAndAnswersExpectItself) {
  std::string out = upstream_head(
      "PUT /u HTTP/1.1\r\nHost: s\r\nContent-Length: 00010\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_NE(out.find("Content-Length: 10\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("00010"), std::string::npos);
  EXPECT_EQ(out.find("Expect"), std::string::npos);
  out = upstream_head("POST /u HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_NE(out.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
}

TEST(HeaderTransform, Http10RequestGoesUpstreamAsHttp11) {
  // Without Host, it gets the listener's address as Host (HTTP/1.1 requires one); with one, it
  // keeps it.
  EXPECT_EQ(upstream_head("GET / HTTP/1.0\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: 192.0.2.1:8080\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\n\r\n");
  EXPECT_EQ(upstream_head("GET / HTTP/1.0\r\nHost: site\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: site\r\n\r\n");
}

TEST(HeaderTransform, UpgradeIsForwardedExplicitly) {
  std::string out = upstream_head(
      "GET /ws HTTP/1.1\r\nHost: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: k\r\n\r\n");
  EXPECT_NE(out.find("Connection: upgrade\r\nUpgrade: websocket\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Sec-WebSocket-Key: k\r\n"), std::string::npos);
}

struct ParsedResponse {
  std::string bytes;
  ResponseHead head;
  ResponsePlan plan;
  bool accepted = false;
};

std::unique_ptr<ParsedResponse> parse_response(std::string raw, bool head_request = false) {
  auto p = std::make_unique<ParsedResponse>();
  p->bytes = std::move(raw);
  ResponseFraming framing;
  if (!proxyd::parse_response(p->bytes, p->head, framing)) return p;
  p->accepted = check_response(p->head, framing.length, framing.chunked, head_request, p->plan);
  return p;
}

std::string client_head(const ParsedResponse& r, bool keep_alive, unsigned version) {
  std::string out;
  write_client_response(r.head, r.plan, client_framing(r.plan.framing, version), keep_alive,
                        version, out);
  return out;
}

TEST(ResponseFraming, Framings) {
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")->plan.framing,
            BodyFraming::length);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")->plan.framing,
            BodyFraming::chunked);
  auto close = parse_response("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(close->plan.framing, BodyFraming::until_close);
  EXPECT_FALSE(close->plan.upstream_keep_alive);
  EXPECT_EQ(parse_response("HTTP/1.1 204 No Content\r\n\r\n")->plan.framing, BodyFraming::none);
  EXPECT_EQ(parse_response("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")->plan.framing,
            BodyFraming::none);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)->plan.framing,
            BodyFraming::none);
}

TEST(ResponseFraming, NonChunkedTransferEncodingIsRejected) {
  EXPECT_FALSE(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")->accepted);
  EXPECT_FALSE(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")->accepted);
  EXPECT_FALSE(parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                              "Content-Length: 3\r\n\r\n")->accepted);
}

// RFC 9110 15: 100..599 only. "010" parses (three digits) but could only go out as "10".
TEST(ResponseFraming, StatusOutside100To599IsRejected) {
  const auto with_status = [](const char* status) {
    return std::string("HTTP/1.1 ") + status + " X\r\nContent-Length: 0\r\n\r\n";
  };
  for (const char* status : {"000", "010", "099", "600", "799", "999"})
    EXPECT_FALSE(parse_response(with_status(status))->accepted) << status;
  for (const char* status : {"100", "200", "599"})
    EXPECT_TRUE(parse_response(with_status(status))->accepted) << status;
}

TEST(ResponseFraming, SwitchingProtocolsWithoutUpgradeIsRejected) {
  EXPECT_FALSE(
      parse_response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n")->accepted);
  EXPECT_TRUE(parse_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n")
                  ->accepted);
}

TEST(ResponseFraming, UpstreamConnectionClose) {
  EXPECT_FALSE(parse_response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")
                   ->plan.upstream_keep_alive);
  EXPECT_FALSE(parse_response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")->plan.upstream_keep_alive);
}

TEST(HeaderTransform, ClientResponseHead) {
  auto r = parse_response(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: X-Internal\r\nX-Internal: 1\r\n"
      "Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(r->accepted);
  EXPECT_EQ(client_head(*r, true, 11),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(client_head(*r, false, 11),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n");
  // An HTTP/1.0 client cannot read chunked: the body is delimited by the close instead.
  EXPECT_EQ(client_head(*r, false, 10), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
}

// Lines written "Name: value" are copied as received, consecutive ones in one piece; any other
// spacing is written out again as "Name: value", and an HTTP/1.0 status line as HTTP/1.1's. The
// dropped fields between them (Connection, what it names, Content-Length) stay out either way.
TEST(HeaderTransform, ClientResponseHeadCopiesWhatItCanAndRewritesTheRest) {
  auto r = parse_response(
      "HTTP/1.0 200 Fine\r\nA: 1\r\nB:2\r\nC: 3 \r\nConnection: X-D, keep-alive\r\nX-D: 4\r\n"
      "E: 5\r\nF:\t6\r\nG:  7\r\nH: \r\nContent-Length: 3\r\nI: 8\r\nJ: 9\r\n\r\n");
  ASSERT_TRUE(r->accepted);
  EXPECT_EQ(client_head(*r, true, 11),
            "HTTP/1.1 200 Fine\r\nA: 1\r\nB: 2\r\nC: 3\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: \r\n"
            "I: 8\r\nJ: 9\r\nContent-Length: 3\r\n\r\n");
  // The same fields written one by one (a head whose bytes are not at hand) come out the same.
  ResponseHead rewritten = r->head;
  rewritten.raw = {};
  std::string out;
  write_client_response(rewritten, r->plan, BodyFraming::length, true, 11, out);
  EXPECT_EQ(out, client_head(*r, true, 11));
}

TEST(HeaderTransform, HeadResponseKeepsContentLength) {
  auto r = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true);
  ASSERT_TRUE(r->accepted);
  EXPECT_EQ(client_head(*r, true, 11), "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
}

// A list of equal values is one length (RFC 9110 8.6), passed on as one value, once; a 204 or a
// 1xx passes none.
TEST(HeaderTransform, ContentLengthGoesOnAsOneValueAndNeverOnA204) {
  auto head = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nX-A: 1\r\n"
                             "content-length: 7\r\n\r\n",
                             true);
  ASSERT_TRUE(head->accepted);
  EXPECT_EQ(head->plan.content_length, 7u);
  EXPECT_EQ(client_head(*head, true, 11), "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-A: 1\r\n\r\n");
  auto body = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n");
  ASSERT_TRUE(body->accepted);
  EXPECT_EQ(client_head(*body, true, 11), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
  auto no_content = parse_response("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
  ASSERT_TRUE(no_content->accepted);
  EXPECT_EQ(client_head(*no_content, true, 11), "HTTP/1.1 204 No Content\r\n\r\n");
  auto hints = parse_response("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nContent-Length: 7\r\n\r\n");
  ASSERT_TRUE(hints->accepted);
  EXPECT_EQ(client_head(*hints, true, 11), "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
}

TEST(HeaderTransform, KeepAliveForHttp10Client) {
  auto r = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(client_head(*r, true, 10),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HeaderTransform, SwitchingProtocols) {
  auto r = parse_response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n");
  ASSERT_TRUE(r->accepted);
  EXPECT_EQ(client_head(*r, true, 11),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n"
            "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
}

}  // namespace
}  // namespace proxyd
