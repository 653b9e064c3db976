// The access-log line, field by field, from an outcome record: the format docs/configuration.md
// documents and the integration tests parse.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "proxy/access_log.hpp"

namespace proxyd {
namespace {

using namespace std::chrono_literals;

// 2026-11-29T14:31:05.123Z
std::chrono::system_clock::time_point at_fixed_time() {
  return std::chrono::system_clock::time_point(1'795'962'665s + 123ms);
}

struct Fixture {
  Fixture() {
    route.name = "api";
    pool.name = "green";
    refused.name = "127.0.0.1:9010";
    server.name = "127.0.0.1:9011";
  }
  Route route;
  Pool pool;
  Server refused;
  Server server;
};

// A request routed to api's passive slot, retried after a refused connect.
RequestOutcome retried_request(const Fixture& f) {
  RequestOutcome r;
  r.listener = "public";
  r.client = "10.0.0.7:51000";
  r.method = "GET";
  r.target = "/api/x?y=1";
  r.route = &f.route;
  r.slot = SlotName::passive;
  r.pool = &f.pool;
  r.server = &f.server;
  r.status = 200;
  r.end = RequestEnd::relayed;
  r.bytes_in = 0;
  r.bytes_out = 512;
  r.total = 2500us;
  r.upstream_connect = 125us;
  r.first_byte = 2000us;
  r.add_attempt({&f.refused, false, AttemptEnd::connect_failed});
  r.add_attempt({&f.server, false, AttemptEnd::ok});
  return r;
}

TEST(AccessLogFormat, ARetriedRequest) {
  Fixture f;
  const RequestOutcome r = retried_request(f);
  std::string line;
  AccessLog::format(line, r, at_fixed_time());
  EXPECT_EQ(line,
            "2026-11-29T14:31:05.123Z listener=public client=10.0.0.7:51000 method=GET "
            "target=/api/x?y=1 status=200 route=api slot=passive pool=green "
            "server=127.0.0.1:9011 duration_ms=2.500 connect_ms=0.125 ttfb_ms=2.000 bytes_in=0 "
            "bytes_out=512 attempts=2 failed=127.0.0.1:9010/connect_failed end=relayed "
            "reason=- proto=HTTP/1.1\n");
}

TEST(AccessLogFormat, ALocalReplyBeforeRouting) {
  RequestOutcome r;
  r.listener = "public";
  r.client = "10.0.0.7:51000";
  r.status = 400;
  r.reason = LocalReason::bad_request;
  r.end = RequestEnd::local_reply;
  r.protocol = ClientProtocol::h2;
  std::string line;
  AccessLog::format(line, r, at_fixed_time());
  EXPECT_EQ(line,
            "2026-11-29T14:31:05.123Z listener=public client=10.0.0.7:51000 method=- target=- "
            "status=400 route=- slot=- pool=- server=- duration_ms=0.000 connect_ms=- ttfb_ms=- "
            "bytes_in=0 bytes_out=0 attempts=0 failed=- end=local_reply reason=bad_request "
            "proto=HTTP/2\n");
}

TEST(AccessLogJson, ARetriedRequest) {
  Fixture f;
  const RequestOutcome r = retried_request(f);
  std::string line;
  AccessLog::format_json(line, r, at_fixed_time());
  EXPECT_EQ(line,
            R"({"time":"2026-11-29T14:31:05.123Z","listener":"public","client":"10.0.0.7:51000",)"
            R"("method":"GET","target":"/api/x?y=1","status":200,"route":"api","slot":"passive",)"
            R"("pool":"green","server":"127.0.0.1:9011","duration_ms":2.500,"connect_ms":0.125,)"
            R"("ttfb_ms":2.000,"bytes_in":0,"bytes_out":512,"attempts":2,)"
            R"("failed":[{"server":"127.0.0.1:9010","end":"connect_failed"}],"end":"relayed",)"
            R"("reason":null,"proto":"HTTP/1.1"})"
            "\n");
}

TEST(AccessLogJson, NullsForWhatDidNotHappenAndEscapedTargets) {
  RequestOutcome r;
  r.listener = "public";
  r.client = "10.0.0.7:51000";
  r.method = "GET";
  r.target = "/a\"b\\c\x01\xe9";
  r.protocol = ClientProtocol::http1_0;
  r.status = 400;
  r.reason = LocalReason::bad_request;
  r.end = RequestEnd::local_reply;
  std::string line;
  AccessLog::format_json(line, r, at_fixed_time());
  EXPECT_EQ(line,
            R"({"time":"2026-11-29T14:31:05.123Z","listener":"public","client":"10.0.0.7:51000",)"
            R"("method":"GET","target":"/a\"b\\c\u0001\u00e9","status":400,"route":null,)"
            R"("slot":null,"pool":null,"server":null,"duration_ms":0.000,"connect_ms":null,)"
            R"("ttfb_ms":null,"bytes_in":0,"bytes_out":0,"attempts":0,"failed":[],)"
            R"("end":"local_reply","reason":"bad_request","proto":"HTTP/1.0"})"
            "\n");
}

}  // namespace
}  // namespace proxyd
