// Config loading: every key and default, every error message (exact text, so a reworded or
// mislocated message is a deliberate change).
#include "proxy/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

namespace proxyd {
namespace {

using namespace std::chrono_literals;
using Errors = std::vector<std::string>;

// Lets a test write its YAML as R"(<newline>...)": the first line of the text is line 1.
std::string strip_first_newline(std::string text) {
  if (!text.empty() && text.front() == '\n') text.erase(0, 1);
  return text;
}

ConfigResult load(const std::string& text) {
  return load_config_text(strip_first_newline(text), "t.yaml");
}

Errors errors_of(const std::string& text) {
  Errors out;
  for (const ConfigError& error : load(text).errors) out.push_back(error.text());
  return out;
}

// Loads text that must be valid and returns its config.
Config valid(const std::string& text) {
  ConfigResult result = load(text);
  EXPECT_EQ(errors_of(text), Errors{});
  return result.config.value_or(Config{});
}

// Listeners and pools (lines 1-5); a test appends `routes:` at line 6.
const std::string kListenersPools = R"(
listeners:
  - {name: public, address: 127.0.0.1:0}
pools:
  blue: {servers: [127.0.0.1:9001]}
  green: {servers: [127.0.0.1:9011]}
)";

// Pools and routes, for tests about listeners that come before them.
const std::string kPoolsRoutes = R"(pools:
  blue: {servers: [127.0.0.1:9001]}
routes:
  - {name: web, live: blue}
)";

// A valid config of 7 lines; a test appends a section that starts at line 8.
const std::string kBase = kListenersPools + R"(routes:
  - {name: web, live: blue}
)";

// --- happy paths ------------------------------------------------------------------------------

TEST(ConfigTest, MinimalConfigGetsEveryDefault) {
  const ConfigResult result = load(kBase);
  ASSERT_TRUE(result.errors.empty());
  ASSERT_TRUE(result.config.has_value());
  const Config& config = *result.config;
  EXPECT_EQ(config.path, "t.yaml");
  EXPECT_EQ(config.workers, 0);

  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].name, "public");
  EXPECT_EQ(config.listeners[0].address.host, "127.0.0.1");
  EXPECT_EQ(config.listeners[0].address.port, 0);
  EXPECT_FALSE(config.listeners[0].tls.has_value());
  EXPECT_FALSE(config.listeners[0].slot.has_value());
  EXPECT_EQ(config.listeners[0].line, 2);

  EXPECT_EQ(config.admin.control_socket, "/run/proxyd/control.sock");
  EXPECT_FALSE(config.admin.metrics.has_value());
  EXPECT_EQ(config.admin.state_file, "/var/lib/proxyd/state.json");
  EXPECT_EQ(config.admin.access_log, "stdout");
  EXPECT_EQ(config.admin.audit_log, "/var/lib/proxyd/audit.log");
  EXPECT_EQ(config.admin.control_mode, 0600u);
  EXPECT_EQ(config.admin.control_group, "");
  EXPECT_TRUE(config.admin.control_allow_uids.empty());
  EXPECT_TRUE(config.admin.control_allow_gids.empty());
  EXPECT_TRUE(config.admin.control_read_uids.empty());
  EXPECT_TRUE(config.admin.control_read_gids.empty());

  ASSERT_EQ(config.pools.size(), 2u);
  EXPECT_EQ(config.pools[0].name, "blue");
  EXPECT_EQ(config.pools[0].line, 4);
  ASSERT_EQ(config.pools[0].servers.size(), 1u);
  EXPECT_EQ(config.pools[0].servers[0].text(), "127.0.0.1:9001");
  EXPECT_EQ(config.pools[0].balance, Balance::round_robin);
  EXPECT_FALSE(config.pools[0].health.has_value());
  EXPECT_EQ(config.pools[1].name, "green");

  ASSERT_EQ(config.routes.size(), 1u);
  const RouteConfig& route = config.routes[0];
  EXPECT_EQ(route.name, "web");
  EXPECT_EQ(route.host, "");
  EXPECT_EQ(route.path_prefix, "");
  EXPECT_EQ(route.live, "blue");
  EXPECT_EQ(route.passive, "blue");  // an omitted passive is the live pool
  EXPECT_EQ(route.weight_ppm, 0u);
  EXPECT_EQ(route.sticky.kind, StickyConfig::Kind::none);
  EXPECT_EQ(route.preview_header, "");
  EXPECT_EQ(route.line, 7);

  EXPECT_EQ(config.timeouts.client_header, 10s);
  EXPECT_EQ(config.timeouts.client_idle, 60s);
  EXPECT_EQ(config.timeouts.client_body, 60s);
  EXPECT_EQ(config.timeouts.upstream_connect, 2s);
  EXPECT_EQ(config.timeouts.upstream_response, 60s);
  EXPECT_EQ(config.timeouts.upstream_idle, 30s);
  EXPECT_EQ(config.timeouts.drain, 30s);
  EXPECT_EQ(config.timeouts.takeover, 60s);
  EXPECT_EQ(config.limits.max_header_bytes, 16384u);
  EXPECT_EQ(config.limits.max_body_bytes, 100u * 1024 * 1024);
  EXPECT_EQ(config.limits.upstream_idle_per_server, 1024u);
  EXPECT_FALSE(config.limits.max_connections.has_value());  // derived from the descriptor limit
}

TEST(ConfigTest, EveryKeyIsRead) {
  const Config config = valid(R"(
workers: 4
listeners:
  - name: public
    address: 0.0.0.0:8080
    slot: live
  - name: public-tls
    address: "[::1]:8443"
    tls: {cert: /etc/proxyd/site.pem, key: /etc/proxyd/site.key}
  - name: preview
    address: 127.0.0.1:8081
    slot: passive
admin:
  control_socket: /tmp/p/control.sock
  metrics: 127.0.0.1:9145
  state_file: /tmp/p/state.json
  access_log: /var/log/proxyd/access.log
  audit_log: /tmp/p/audit.log
  control_mode: 0660
  control_group: deploy
  control_allow_uids: [1001, 0]
  control_allow_gids: [4294967294]
  control_read_uids: [1003]
  control_read_gids: [1004, 1005]
pools:
  blue:
    servers: [127.0.0.1:9001, app.internal:80]
    balance: least_request
    health: {path: /ready, interval: 500ms, timeout: 250ms, rise: 3, fall: 5}
  green:
    servers: [127.0.0.1:9011]
    balance: round_robin
routes:
  - name: api
    match: {host: api.example.com, path_prefix: /api/}
    live: blue
    passive: green
    weight: 0.5
    sticky: {cookie: sessionid}
    preview_header: X-Preview
  - name: web
    match: {path_prefix: /}
    live: green
    passive: blue
    weight: 100%
    sticky: {header: X-User-Id}
timeouts:
  client_header: 1s
  client_idle: 2m
  client_body: 3s
  upstream_connect: 100ms
  upstream_response: 1h
  upstream_idle: 5s
  drain: 7s
  takeover: 90s
limits: {max_header_bytes: 8KiB, max_body_bytes: 1GiB, upstream_idle_per_server: 0,
         max_connections: 5000}
)");
  EXPECT_EQ(config.workers, 4);

  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[0].slot, SlotName::live);
  EXPECT_EQ(config.listeners[0].address.text(), "0.0.0.0:8080");
  EXPECT_EQ(config.listeners[1].name, "public-tls");
  EXPECT_EQ(config.listeners[1].address.host, "::1");
  EXPECT_EQ(config.listeners[1].address.port, 8443);
  EXPECT_EQ(config.listeners[1].address.text(), "[::1]:8443");
  ASSERT_TRUE(config.listeners[1].tls.has_value());
  ASSERT_EQ(config.listeners[1].tls->certificates.size(), 1u);
  EXPECT_EQ(config.listeners[1].tls->certificates[0].cert, "/etc/proxyd/site.pem");
  EXPECT_EQ(config.listeners[1].tls->certificates[0].key, "/etc/proxyd/site.key");
  EXPECT_EQ(config.listeners[1].tls->certificates[0].where, "listeners[1].tls");
  EXPECT_EQ(config.listeners[1].tls->min_version, TlsVersion::v1_2);
  EXPECT_EQ(config.listeners[1].tls->ciphers, "");
  EXPECT_FALSE(config.listeners[1].slot.has_value());
  EXPECT_EQ(config.listeners[2].slot, SlotName::passive);
  EXPECT_EQ(config.listeners[2].line, 9);

  EXPECT_EQ(config.admin.control_socket, "/tmp/p/control.sock");
  ASSERT_TRUE(config.admin.metrics.has_value());
  EXPECT_EQ(config.admin.metrics->text(), "127.0.0.1:9145");
  EXPECT_EQ(config.admin.state_file, "/tmp/p/state.json");
  EXPECT_EQ(config.admin.access_log, "/var/log/proxyd/access.log");
  EXPECT_EQ(config.admin.audit_log, "/tmp/p/audit.log");
  EXPECT_EQ(config.admin.control_mode, 0660u);
  EXPECT_EQ(config.admin.control_group, "deploy");
  EXPECT_EQ(config.admin.control_allow_uids, (std::vector<std::int64_t>{1001, 0}));
  EXPECT_EQ(config.admin.control_allow_gids, (std::vector<std::int64_t>{4294967294}));
  EXPECT_EQ(config.admin.control_read_uids, (std::vector<std::int64_t>{1003}));
  EXPECT_EQ(config.admin.control_read_gids, (std::vector<std::int64_t>{1004, 1005}));

  ASSERT_EQ(config.pools.size(), 2u);
  const PoolConfig& blue = config.pools[0];
  ASSERT_EQ(blue.servers.size(), 2u);
  EXPECT_EQ(blue.servers[1].host, "app.internal");
  EXPECT_EQ(blue.servers[1].port, 80);
  EXPECT_EQ(blue.balance, Balance::least_request);
  ASSERT_TRUE(blue.health.has_value());
  EXPECT_EQ(blue.health->path, "/ready");
  EXPECT_EQ(blue.health->interval, 500ms);
  EXPECT_EQ(blue.health->timeout, 250ms);
  EXPECT_EQ(blue.health->rise, 3);
  EXPECT_EQ(blue.health->fall, 5);
  EXPECT_EQ(config.pools[1].balance, Balance::round_robin);
  EXPECT_FALSE(config.pools[1].health.has_value());

  ASSERT_EQ(config.routes.size(), 2u);
  const RouteConfig& api = config.routes[0];
  EXPECT_EQ(api.host, "api.example.com");
  EXPECT_EQ(api.path_prefix, "/api/");
  EXPECT_EQ(api.live, "blue");
  EXPECT_EQ(api.passive, "green");
  EXPECT_EQ(api.weight_ppm, 5000u);
  EXPECT_EQ(api.sticky.kind, StickyConfig::Kind::cookie);
  EXPECT_EQ(api.sticky.name, "sessionid");
  EXPECT_EQ(api.preview_header, "X-Preview");
  const RouteConfig& web = config.routes[1];
  EXPECT_EQ(web.live, "green");
  EXPECT_EQ(web.passive, "blue");
  EXPECT_EQ(web.weight_ppm, kPpmMax);
  EXPECT_EQ(web.sticky.kind, StickyConfig::Kind::header);
  EXPECT_EQ(web.sticky.name, "X-User-Id");

  EXPECT_EQ(config.timeouts.client_header, 1s);
  EXPECT_EQ(config.timeouts.client_idle, 2min);
  EXPECT_EQ(config.timeouts.client_body, 3s);
  EXPECT_EQ(config.timeouts.upstream_connect, 100ms);
  EXPECT_EQ(config.timeouts.upstream_response, 1h);
  EXPECT_EQ(config.timeouts.upstream_idle, 5s);
  EXPECT_EQ(config.timeouts.drain, 7s);
  EXPECT_EQ(config.timeouts.takeover, 90s);
  EXPECT_EQ(config.limits.max_header_bytes, 8192u);
  EXPECT_EQ(config.limits.max_body_bytes, 1024u * 1024 * 1024);
  EXPECT_EQ(config.limits.upstream_idle_per_server, 0u);
  EXPECT_EQ(config.limits.max_connections, 5000u);
}

TEST(ConfigTest, WorkersAuto) { EXPECT_EQ(valid(kBase + "workers: auto\n").workers, 0); }

TEST(ConfigTest, HealthWithoutKeysUsesDefaults) {
  const Config config = valid(R"(
listeners: [{name: public, address: 127.0.0.1:0}]
pools:
  blue:
    servers: [127.0.0.1:9001]
    health: {}
routes: [{name: web, live: blue}]
)");
  ASSERT_TRUE(config.pools[0].health.has_value());
  EXPECT_EQ(config.pools[0].health->path, "/healthz");
  EXPECT_EQ(config.pools[0].health->interval, 2s);
  EXPECT_EQ(config.pools[0].health->timeout, 1s);
  EXPECT_EQ(config.pools[0].health->rise, 2);
  EXPECT_EQ(config.pools[0].health->fall, 3);
}

TEST(ConfigTest, StickyClientIp) {
  const Config config = valid(kListenersPools + R"(routes:
  - {name: web, live: blue, sticky: {client_ip: true}}
)");
  EXPECT_EQ(config.routes[0].sticky.kind, StickyConfig::Kind::client_ip);
  EXPECT_EQ(config.routes[0].sticky.name, "");
}

TEST(ConfigTest, WildcardHostAndSamePrefixOnOtherHosts) {
  const Config config = valid(kListenersPools + R"(routes:
  - {name: shop, match: {host: "*.shop.example.com", path_prefix: /}, live: green}
  - {name: api, match: {host: api.example.com}, live: blue}
  - {name: web, match: {path_prefix: /}, live: blue}
)");
  EXPECT_EQ(config.routes[0].host, "*.shop.example.com");
  EXPECT_EQ(config.routes[1].path_prefix, "");
}

TEST(ConfigTest, MetricsOff) {
  EXPECT_FALSE(valid(kBase + "admin: {metrics: off}\n").admin.metrics.has_value());
}

TEST(ConfigTest, AccessLogOff) {
  EXPECT_EQ(valid(kBase + "admin: {access_log: off}\n").admin.access_log, "off");
}

TEST(ConfigTest, LogLevel) {
  EXPECT_EQ(valid(kBase).admin.log_level, LogLevel::info);
  EXPECT_EQ(valid(kBase + "admin: {log_level: debug}\n").admin.log_level, LogLevel::debug);
  EXPECT_EQ(valid(kBase + "admin: {log_level: info}\n").admin.log_level, LogLevel::info);
  EXPECT_EQ(valid(kBase + "admin: {log_level: warning}\n").admin.log_level, LogLevel::warning);
  EXPECT_EQ(valid(kBase + "admin: {log_level: error}\n").admin.log_level, LogLevel::error);
}

TEST(ConfigTest, EmptyAdminSectionKeepsDefaults) {
  EXPECT_EQ(valid(kBase + "admin:\n").admin.control_socket, "/run/proxyd/control.sock");
}

TEST(ConfigTest, ListenersMayShareOnlyPortZero) {
  const Config config = valid(R"(
listeners:
  - {name: a, address: 127.0.0.1:0}
  - {name: b, address: 127.0.0.1:0}
)" + kPoolsRoutes);
  EXPECT_EQ(config.listeners.size(), 2u);
}

TEST(ConfigTest, QuotedScalarsAreAccepted) {
  const Config config = valid(kListenersPools + R"(routes:
  - {name: web, live: blue, weight: "0.5%"}
)");
  EXPECT_EQ(config.routes[0].weight_ppm, 5000u);
}

// --- file loading and the error format ----------------------------------------------------------

TEST(ConfigTest, LoadsFile) {
  const std::string path = testing::TempDir() + "proxyd_config_test.yaml";
  std::ofstream(path) << kBase;
  const ConfigResult result = load_config_file(path);
  std::remove(path.c_str());
  EXPECT_TRUE(result.errors.empty());
  ASSERT_TRUE(result.config.has_value());
  EXPECT_EQ(result.config->path, path);
}

TEST(ConfigTest, MissingFileIsOneErrorWithoutLine) {
  const ConfigResult result = load_config_file("/nonexistent/proxyd.yaml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].key, "");
  EXPECT_EQ(result.errors[0].text(),
            "/nonexistent/proxyd.yaml: cannot open: No such file or directory");
}

TEST(ConfigTest, DirectoryIsNotAConfig) {
  const ConfigResult result = load_config_file("/");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].text(), "/: cannot read: Is a directory");
}

TEST(ConfigTest, ErrorTextLeavesOutLineZeroAndEmptyKey) {
  EXPECT_EQ((ConfigError{"f.yaml", 3, "routes[1].weight", "bad"}).text(),
            "f.yaml:3: routes[1].weight: bad");
  EXPECT_EQ((ConfigError{"f.yaml", 3, "", "bad"}).text(), "f.yaml:3: bad");
  EXPECT_EQ((ConfigError{"f.yaml", 0, "", "bad"}).text(), "f.yaml: bad");
}

TEST(ConfigTest, EveryErrorIsReportedInFileOrder) {
  // Found in reading order (pools before routes before timeouts), printed in file order.
  EXPECT_EQ(errors_of(R"(
timeouts: {drain: 0s}
routes: [{name: web, live: blue, weight: 101}]
listeners: [{name: public, address: 127.0.0.1:0, slot: both}]
pools: {blue: {servers: []}}
)"),
            (Errors{"t.yaml:1: timeouts.drain: must be greater than 0",
                    "t.yaml:2: routes[0].weight: percentage \"101\" is above 100",
                    "t.yaml:3: listeners[0].slot: expected live or passive, got \"both\"",
                    "t.yaml:4: pools.blue.servers: a pool needs at least one server"}));
}

// --- errors: the document ---------------------------------------------------------------------

TEST(ConfigErrorTest, YamlSyntaxError) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - {name: public, address: 127.0.0.1:0
pools: {}
)"),
            Errors{"t.yaml:3: invalid YAML: end of map flow not found"});
}

TEST(ConfigErrorTest, TabIndentation) {
  EXPECT_EQ(errors_of("listeners:\n\t- name: public\n"),
            Errors{"t.yaml:2: invalid YAML: illegal block entry"});
}

// yaml-cpp 0.7's LoadAll loops forever, allocating, on this input (yaml-cpp issue #1040).
TEST(ConfigErrorTest, StrayCommaDoesNotHang) {
  EXPECT_EQ(errors_of("# a comment\n,\n"), Errors{"t.yaml:2: invalid YAML: unexpected \",\""});
  EXPECT_EQ(errors_of("[a],\n"), Errors{"t.yaml:1: invalid YAML: unexpected \",\""});
}

TEST(ConfigErrorTest, NestedTooDeeply) {
  EXPECT_EQ(errors_of(std::string(10'000, '[')),
            Errors{"t.yaml:1: invalid YAML: nested too deeply"});
}

TEST(ConfigErrorTest, EmptyFile) {
  EXPECT_EQ(errors_of("# nothing here\n"),
            Errors{"t.yaml: the file is empty (expected listeners, pools and routes)"});
}

TEST(ConfigErrorTest, SecondDocument) {
  EXPECT_EQ(errors_of(kBase + "---\nworkers: 2\n"),
            Errors{"t.yaml:8: only one YAML document is allowed"});
}

TEST(ConfigErrorTest, TopLevelNotAMap) {
  EXPECT_EQ(errors_of("- listeners\n"),
            Errors{"t.yaml:1: expected a map of settings at the top level, got a list"});
}

TEST(ConfigErrorTest, RequiredSectionsMissing) {
  EXPECT_EQ(errors_of("workers: 2\n"), (Errors{"t.yaml:1: listeners: required key is missing",
                                               "t.yaml:1: pools: required key is missing",
                                               "t.yaml:1: routes: required key is missing"}));
}

TEST(ConfigErrorTest, RequiredSectionsEmpty) {
  EXPECT_EQ(errors_of("listeners: []\npools: {}\nroutes:\n"),
            (Errors{"t.yaml:1: listeners: at least one listener is required",
                    "t.yaml:2: pools: at least one pool is required",
                    "t.yaml:3: routes: at least one route is required"}));
}

TEST(ConfigErrorTest, DuplicateKey) {
  EXPECT_EQ(errors_of(kBase + "workers: 2\nworkers: 3\n"),
            Errors{"t.yaml:9: workers: duplicate key (first at line 8)"});
}

TEST(ConfigErrorTest, SectionOfWrongType) {
  EXPECT_EQ(errors_of(kBase + "timeouts: [1s]\nlimits: 5\n"),
            (Errors{"t.yaml:8: timeouts: expected a map, got a list",
                    "t.yaml:9: limits: expected a map, got a single value"}));
}

TEST(ConfigErrorTest, ListOfWrongType) {
  EXPECT_EQ(errors_of("listeners: {name: public}\n" + kPoolsRoutes),
            Errors{"t.yaml:1: listeners: expected a list, got a map"});
}

TEST(ConfigErrorTest, ValueOfWrongType) {
  EXPECT_EQ(errors_of(kBase + "workers: [1, 2]\n"),
            Errors{"t.yaml:8: workers: expected a single value, got a list"});
}

TEST(ConfigErrorTest, NonScalarKey) {
  EXPECT_EQ(errors_of(kBase + "? [a, b]\n: 1\n"),
            Errors{"t.yaml:8: expected a plain key, got a list"});
}

// Unknown keys at every level: a typo must never pass silently.
struct UnknownKeyCase {
  std::string name;
  std::string yaml;
  std::string error;
};

// Names the case in test listings instead of gtest's byte dump.
void PrintTo(const UnknownKeyCase& c, std::ostream* out) { *out << c.name; }

class UnknownKeyTest : public testing::TestWithParam<UnknownKeyCase> {};

TEST_P(UnknownKeyTest, IsAnError) {
  EXPECT_EQ(errors_of(GetParam().yaml), Errors{GetParam().error});
}

INSTANTIATE_TEST_SUITE_P(
    EveryLevel, UnknownKeyTest,
    testing::Values(
        UnknownKeyCase{"top", kBase + "worker: 2\n",
                       "t.yaml:8: worker: unknown key (expected one of: workers, listeners, admin, "
                       "pools, routes, timeouts, limits, fleet)"},
        UnknownKeyCase{"listener",
                       "listeners: [{name: a, address: 127.0.0.1:0, slots: live}]\n" + kPoolsRoutes,
                       "t.yaml:1: listeners[0].slots: unknown key (expected one of: name, "
                       "address, tls, slot, http2)"},
        UnknownKeyCase{"tls",
                       "listeners: [{name: a, address: 127.0.0.1:0, tls: {cert: c, key: k, "
                       "ca: x}}]\n" +
                           kPoolsRoutes,
                       "t.yaml:1: listeners[0].tls.ca: unknown key (expected one of: cert, key, "
                       "ocsp, certificates, min_version, ciphers)"},
        UnknownKeyCase{"admin", kBase + "admin: {statefile: /x}\n",
                       "t.yaml:8: admin.statefile: unknown key (expected one of: control_socket, "
                       "metrics, state_file, access_log, access_log_format, audit_log, control_mode, "
                       "control_group, "
                       "control_allow_uids, control_allow_gids, control_read_uids, "
                       "control_read_gids, log_level)"},
        UnknownKeyCase{"pool",
                       "listeners: [{name: a, address: 127.0.0.1:0}]\n"
                       "pools: {blue: {servers: [127.0.0.1:1], balanse: round_robin}}\n"
                       "routes: [{name: web, live: blue}]\n",
                       "t.yaml:2: pools.blue.balanse: unknown key (expected one of: servers, "
                       "balance, health, passive, fail_open, tls)"},
        UnknownKeyCase{"health",
                       "listeners: [{name: a, address: 127.0.0.1:0}]\n"
                       "pools: {blue: {servers: [127.0.0.1:1], health: {intervall: 1s}}}\n"
                       "routes: [{name: web, live: blue}]\n",
                       "t.yaml:2: pools.blue.health.intervall: unknown key (expected one of: "
                       "path, interval, timeout, rise, fall, expect, host)"},
        UnknownKeyCase{"route", kListenersPools + "routes: [{name: web, live: blue, wieght: 5}]\n",
                       "t.yaml:6: routes[0].wieght: unknown key (expected one of: name, match, "
                       "live, passive, weight, sticky, preview_header, max_step, drain)"},
        UnknownKeyCase{"match",
                       kListenersPools + "routes: [{name: web, live: blue, match: {path: /}}]\n",
                       "t.yaml:6: routes[0].match.path: unknown key (expected one of: host, "
                       "path_prefix)"},
        UnknownKeyCase{
            "sticky",
            kListenersPools + "routes: [{name: web, live: blue, sticky: {cookie: a, cokie: b}}]\n",
            "t.yaml:6: routes[0].sticky.cokie: unknown key (expected one of: cookie, "
            "header, client_ip, set)"},
        UnknownKeyCase{"timeouts", kBase + "timeouts: {upstream_read: 1s}\n",
                       "t.yaml:8: timeouts.upstream_read: unknown key (expected one of: "
                       "client_header, client_idle, client_body, upstream_connect, "
                       "upstream_response, upstream_idle, tls_handshake, drain, takeover)"},
        UnknownKeyCase{"limits", kBase + "limits: {max_body: 1}\n",
                       "t.yaml:8: limits.max_body: unknown key (expected one of: "
                       "max_header_bytes, max_body_bytes, upstream_idle_per_server, "
                       "max_connections)"}),
    [](const testing::TestParamInfo<UnknownKeyCase>& info) { return info.param.name; });

// --- errors: workers --------------------------------------------------------------------------

TEST(ConfigErrorTest, WorkersNotPositive) {
  const std::string expected =
      "t.yaml:8: workers: expected auto or a whole number from 1 to 1024, got ";
  EXPECT_EQ(errors_of(kBase + "workers: 0\n"), Errors{expected + "\"0\""});
  EXPECT_EQ(errors_of(kBase + "workers: -2\n"), Errors{expected + "\"-2\""});
  EXPECT_EQ(errors_of(kBase + "workers: 1.5\n"), Errors{expected + "\"1.5\""});
  EXPECT_EQ(errors_of(kBase + "workers: many\n"), Errors{expected + "\"many\""});
  EXPECT_EQ(errors_of(kBase + "workers: 1025\n"), Errors{expected + "\"1025\""});
  EXPECT_EQ(errors_of(kBase + "workers:\n"), Errors{expected + "\"\""});
}

// --- errors: listeners ------------------------------------------------------------------------

TEST(ConfigErrorTest, ListenerNameAndAddressRequired) {
  EXPECT_EQ(errors_of("listeners:\n  - slot: live\n" + kPoolsRoutes),
            (Errors{"t.yaml:2: listeners[0].name: required key is missing",
                    "t.yaml:2: listeners[0].address: required key is missing"}));
}

TEST(ConfigErrorTest, ListenerNotAMap) {
  EXPECT_EQ(errors_of("listeners:\n  - 127.0.0.1:80\n" + kPoolsRoutes),
            Errors{"t.yaml:2: listeners[0]: expected a map, got a single value"});
}

TEST(ConfigErrorTest, InvalidName) {
  EXPECT_EQ(errors_of("listeners: [{name: my listener, address: 127.0.0.1:0}]\n" + kPoolsRoutes),
            Errors{"t.yaml:1: listeners[0].name: invalid name \"my listener\" (use letters, "
                   "digits, '-', '_' and '.')"});
}

TEST(ConfigErrorTest, EmptyName) {
  EXPECT_EQ(errors_of("listeners: [{name: \"\", address: 127.0.0.1:0}]\n" + kPoolsRoutes),
            Errors{"t.yaml:1: listeners[0].name: must not be empty"});
}

TEST(ConfigErrorTest, DuplicateListenerName) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - name: public
    address: 127.0.0.1:8080
  - address: 127.0.0.1:8081
    name: public
)" + kPoolsRoutes),
            Errors{"t.yaml:5: listeners[1].name: duplicate listener name \"public\" (first at "
                   "line 2)"});
}

TEST(ConfigErrorTest, DuplicateListenerAddress) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - {name: a, address: 127.0.0.1:8080}
  - {name: b, address: 127.0.0.1:8080}
)" + kPoolsRoutes),
            Errors{"t.yaml:3: listeners[1].address: address 127.0.0.1:8080 is already used by "
                   "listener \"a\" (line 2)"});
}

TEST(ConfigErrorTest, InvalidSlot) {
  EXPECT_EQ(
      errors_of("listeners: [{name: a, address: 127.0.0.1:0, slot: pasive}]\n" + kPoolsRoutes),
      Errors{"t.yaml:1: listeners[0].slot: expected live or passive, got \"pasive\""});
}

TEST(ConfigErrorTest, TlsNeedsCertAndKey) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - name: a
    address: 127.0.0.1:0
    tls: {cert: /c.pem}
  - name: b
    address: 127.0.0.1:0
    tls:
      key: /k.pem
  - name: c
    address: 127.0.0.1:0
    tls:
)" + kPoolsRoutes),
            (Errors{"t.yaml:4: listeners[0].tls.key: required key is missing",
                    "t.yaml:7: listeners[1].tls.cert: required key is missing",
                    "t.yaml:11: listeners[2].tls.cert: required key is missing",
                    "t.yaml:11: listeners[2].tls.key: required key is missing"}));
}

TEST(ConfigTest, TlsLongForm) {
  const Config config = valid(R"(
listeners:
  - name: a
    address: 127.0.0.1:0
    tls:
      certificates:
        - {cert: /a.pem, key: /a.key}
        - {cert: /b.pem, key: /b.key, ocsp: /b.ocsp}
      min_version: "1.3"
      ciphers: ECDHE-ECDSA-AES128-GCM-SHA256
)" + kPoolsRoutes);
  const TlsConfig& tls = config.listeners[0].tls.value();
  ASSERT_EQ(tls.certificates.size(), 2u);
  EXPECT_EQ(tls.certificates[1].cert, "/b.pem");
  EXPECT_EQ(tls.certificates[1].key, "/b.key");
  EXPECT_EQ(tls.certificates[0].ocsp, "");
  EXPECT_EQ(tls.certificates[1].ocsp, "/b.ocsp");
  EXPECT_EQ(tls.certificates[1].where, "listeners[0].tls.certificates[1]");
  EXPECT_EQ(tls.certificates[1].line, 7);
  EXPECT_EQ(tls.min_version, TlsVersion::v1_3);
  EXPECT_EQ(tls.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_EQ(config.timeouts.tls_handshake, Duration(10'000));
}

TEST(ConfigErrorTest, TlsBothFormsOrBadVersion) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - name: a
    address: 127.0.0.1:0
    tls: {cert: /a.pem, key: /a.key, certificates: [{cert: /b.pem, key: /b.key}]}
  - name: b
    address: 127.0.0.1:1
    tls: {cert: /a.pem, key: /a.key, min_version: "1.1"}
  - name: c
    address: 127.0.0.1:2
    tls: {certificates: []}
)" + kPoolsRoutes),
            (Errors{"t.yaml:4: listeners[0].tls: use cert, key and ocsp, or certificates, not both",
                    "t.yaml:7: listeners[1].tls.min_version: expected 1.2 or 1.3, got \"1.1\"",
                    "t.yaml:10: listeners[2].tls.certificates: at least one certificate is "
                    "required"}));
}

TEST(ConfigTest, PoolTls) {
  const Config config = valid(R"(
listeners:
  - {name: public, address: 127.0.0.1:0}
pools:
  blue:
    servers: [127.0.0.1:9001]
    tls: {ca: /ca.pem, sni: app.internal}
  green:
    servers: [127.0.0.1:9011]
    tls: {verify: false}
routes:
  - {name: web, live: blue, passive: green}
timeouts: {tls_handshake: 3s}
)");
  ASSERT_TRUE(config.pools[0].tls.has_value());
  EXPECT_EQ(config.pools[0].tls->ca, "/ca.pem");
  EXPECT_EQ(config.pools[0].tls->sni, "app.internal");
  EXPECT_TRUE(config.pools[0].tls->verify);
  EXPECT_EQ(config.pools[0].tls->where, "pools.blue.tls");
  EXPECT_FALSE(config.pools[1].tls->verify);
  EXPECT_EQ(config.timeouts.tls_handshake, Duration(3'000));
}

TEST(ConfigErrorTest, TlsEmptyPath) {
  EXPECT_EQ(errors_of("listeners: [{name: a, address: 127.0.0.1:0, tls: {cert: \"\", key: "
                      "/k}}]\n" +
                      kPoolsRoutes),
            Errors{"t.yaml:1: listeners[0].tls.cert: must not be empty"});
}

// Every way an address can be wrong, on a listener (where port 0 is fine).
struct AddressCase {
  std::string name;
  std::string address;
  std::string message;
};

void PrintTo(const AddressCase& c, std::ostream* out) { *out << c.address; }

class BadAddressTest : public testing::TestWithParam<AddressCase> {};

TEST_P(BadAddressTest, IsAnError) {
  EXPECT_EQ(
      errors_of("listeners: [{name: a, address: '" + GetParam().address + "'}]\n" + kPoolsRoutes),
      Errors{"t.yaml:1: listeners[0].address: invalid address \"" + GetParam().address +
             "\": " + GetParam().message});
}

INSTANTIATE_TEST_SUITE_P(
    Listener, BadAddressTest,
    testing::Values(
        AddressCase{"NoPort", "localhost", "expected host:port, e.g. 127.0.0.1:8080"},
        AddressCase{"Empty", "", "expected host:port, e.g. 127.0.0.1:8080"},
        AddressCase{"EmptyHost", ":8080", "the host is empty"},
        AddressCase{"EmptyPort", "localhost:", "the port must be a number from 0 to 65535"},
        AddressCase{"PortTooLarge", "localhost:65536", "the port must be a number from 0 to 65535"},
        AddressCase{"PortNegative", "localhost:-1", "the port must be a number from 0 to 65535"},
        AddressCase{"PortNotNumeric", "localhost:http",
                    "the port must be a number from 0 to 65535"},
        AddressCase{"BadHostChars", "my host:80", "invalid host name \"my host\""},
        AddressCase{"HostStartsWithDot", ".example.com:80", "invalid host name \".example.com\""},
        AddressCase{"UnbracketedIpv6", "::1:80", "an IPv6 address needs brackets, e.g. [::1]:8080"},
        AddressCase{"BracketsWithoutPort", "[::1]", "expected [IPv6]:port, e.g. [::1]:8080"},
        AddressCase{"NotIpv6", "[localhost]:80", "invalid IPv6 address \"localhost\""}),
    [](const testing::TestParamInfo<AddressCase>& info) { return info.param.name; });

TEST(ConfigErrorTest, ServerPortZero) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue:
    servers:
      - 127.0.0.1:9001
      - 127.0.0.1:0
routes: [{name: web, live: blue}]
)"),
            Errors{"t.yaml:6: pools.blue.servers[1]: invalid address \"127.0.0.1:0\": the port "
                   "must be a number from 1 to 65535"});
}

// --- errors: admin ----------------------------------------------------------------------------

TEST(ConfigErrorTest, AccessLogEmpty) {
  EXPECT_EQ(errors_of(kBase + "admin: {access_log: ''}\n"),
            Errors{"t.yaml:8: admin.access_log: must not be empty (use stdout, off or a file "
                   "path)"});
}

TEST(ConfigErrorTest, LogLevelUnknown) {
  EXPECT_EQ(errors_of(kBase + "admin: {log_level: verbose}\n"),
            Errors{"t.yaml:8: admin.log_level: expected debug, info, warning or error, got "
                   "\"verbose\""});
  EXPECT_EQ(errors_of(kBase + "admin:\n  log_level: WARNING\n"),
            Errors{"t.yaml:9: admin.log_level: expected debug, info, warning or error, got "
                   "\"WARNING\""});
}

TEST(ConfigErrorTest, ControlSocketEmpty) {
  EXPECT_EQ(errors_of(kBase + "admin:\n  control_socket:\n"),
            Errors{"t.yaml:9: admin.control_socket: must not be empty"});
}

TEST(ConfigErrorTest, ControlSocketTooLong) {
  const std::string path = "/tmp/" + std::string(103, 'x');  // 108 bytes
  EXPECT_EQ(errors_of(kBase + "admin: {control_socket: " + path + "}\n"),
            Errors{"t.yaml:8: admin.control_socket: too long for a Unix socket path (at most "
                   "107 bytes)"});
}

TEST(ConfigErrorTest, StateFileEmpty) {
  EXPECT_EQ(errors_of(kBase + "admin: {state_file: ''}\n"),
            Errors{"t.yaml:8: admin.state_file: must not be empty"});
}

TEST(ConfigErrorTest, AuditLogEmpty) {
  EXPECT_EQ(errors_of(kBase + "admin: {audit_log: ''}\n"),
            Errors{"t.yaml:8: admin.audit_log: must not be empty"});
}

TEST(ConfigTest, ControlModeWithoutLeadingZeroIsOctal) {
  EXPECT_EQ(valid(kBase + "admin: {control_mode: 660}\n").admin.control_mode, 0660u);
}

TEST(ConfigErrorTest, ControlModeNotOctal) {
  const std::string expected =
      "t.yaml:8: admin.control_mode: expected an octal file mode from 000 to 0777, e.g. 0660, got ";
  EXPECT_EQ(errors_of(kBase + "admin: {control_mode: 0680}\n"), Errors{expected + "\"0680\""});
  EXPECT_EQ(errors_of(kBase + "admin: {control_mode: 1660}\n"), Errors{expected + "\"1660\""});
  EXPECT_EQ(errors_of(kBase + "admin: {control_mode: 66}\n"), Errors{expected + "\"66\""});
  EXPECT_EQ(errors_of(kBase + "admin: {control_mode: rw}\n"), Errors{expected + "\"rw\""});
}

TEST(ConfigErrorTest, ControlGroupInvalid) {
  EXPECT_EQ(errors_of(kBase + "admin: {control_group: -wheel}\n"),
            Errors{"t.yaml:8: admin.control_group: invalid group name \"-wheel\""});
}

TEST(ConfigErrorTest, ControlAllowIdsInvalid) {
  EXPECT_EQ(errors_of(kBase + R"(admin:
  control_allow_uids: [1000, -1]
  control_allow_gids: [4294967295, deploy]
)"),
            (Errors{"t.yaml:9: admin.control_allow_uids[1]: expected a whole number from 0 to "
                    "4294967294, got \"-1\"",
                    "t.yaml:10: admin.control_allow_gids[0]: expected a whole number from 0 to "
                    "4294967294, got \"4294967295\"",
                    "t.yaml:10: admin.control_allow_gids[1]: expected a whole number from 0 to "
                    "4294967294, got \"deploy\""}));
}

TEST(ConfigErrorTest, MetricsBadAddress) {
  EXPECT_EQ(errors_of(kBase + "admin: {metrics: 9145}\n"),
            Errors{"t.yaml:8: admin.metrics: invalid address \"9145\": expected host:port, e.g. "
                   "127.0.0.1:8080"});
}

// --- errors: pools ----------------------------------------------------------------------------

TEST(ConfigErrorTest, PoolWithoutServers) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue:
    servers: []
  green:
    balance: round_robin
  red:
routes: [{name: web, live: blue}]
)"),
            (Errors{"t.yaml:4: pools.blue.servers: a pool needs at least one server",
                    "t.yaml:5: pools.green.servers: required key is missing",
                    "t.yaml:7: pools.red.servers: required key is missing"}));
}

TEST(ConfigErrorTest, ServersNotAList) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue: {servers: 127.0.0.1:9001}
routes: [{name: web, live: blue}]
)"),
            Errors{"t.yaml:3: pools.blue.servers: expected a list, got a single value"});
}

TEST(ConfigErrorTest, PoolsNotAMap) {
  // Without any pool, route pool names are not checked: the pools error is the one to fix.
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  - blue
routes: [{name: web, live: blue}]
)"),
            Errors{"t.yaml:2: pools: expected a map, got a list"});
}

TEST(ConfigErrorTest, DuplicatePoolName) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue: {servers: [127.0.0.1:9001]}
  blue: {servers: [127.0.0.1:9002]}
routes: [{name: web, live: blue}]
)"),
            Errors{"t.yaml:4: pools.blue: duplicate pool name (first at line 3)"});
}

TEST(ConfigErrorTest, InvalidPoolName) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue/2: {servers: [127.0.0.1:9001]}
routes: [{name: web, live: blue/2}]
)"),
            Errors{"t.yaml:3: pools.blue/2: invalid pool name \"blue/2\" (use letters, digits, "
                   "'-', '_' and '.')"});
}

TEST(ConfigErrorTest, DuplicateServer) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue: {servers: [127.0.0.1:9001, 127.0.0.1:9001]}
routes: [{name: web, live: blue}]
)"),
            Errors{"t.yaml:3: pools.blue.servers[1]: duplicate server 127.0.0.1:9001 (first at "
                   "line 3)"});
}

TEST(ConfigErrorTest, InvalidBalance) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue: {servers: [127.0.0.1:9001], balance: random}
routes: [{name: web, live: blue}]
)"),
            Errors{"t.yaml:3: pools.blue.balance: expected round_robin or least_request, got "
                   "\"random\""});
}

TEST(ConfigErrorTest, InvalidHealth) {
  EXPECT_EQ(errors_of(R"(
listeners: [{name: a, address: 127.0.0.1:0}]
pools:
  blue:
    servers: [127.0.0.1:9001]
    health:
      path: healthz
      interval: 1.5s
      timeout: 0ms
      rise: 0
      fall: 101
routes: [{name: web, live: blue}]
)"),
            (Errors{"t.yaml:6: pools.blue.health.path: must start with /, got \"healthz\"",
                    "t.yaml:7: pools.blue.health.interval: invalid duration \"1.5s\": expected a "
                    "whole number and a unit (ms, s, m or h), e.g. 500ms or 2s",
                    "t.yaml:8: pools.blue.health.timeout: must be greater than 0",
                    "t.yaml:9: pools.blue.health.rise: expected a whole number from 1 to 100, "
                    "got \"0\"",
                    "t.yaml:10: pools.blue.health.fall: expected a whole number from 1 to 100, "
                    "got \"101\""}));
}

// --- errors: routes ---------------------------------------------------------------------------

TEST(ConfigErrorTest, RouteNameAndLiveRequired) {
  EXPECT_EQ(errors_of(kListenersPools + "routes:\n  - passive: green\n"),
            (Errors{"t.yaml:7: routes[0].name: required key is missing",
                    "t.yaml:7: routes[0].live: required key is missing"}));
}

TEST(ConfigErrorTest, UnknownPool) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - name: web
    live: bleu
    passive: gren
)"),
            (Errors{"t.yaml:8: routes[0].live: unknown pool \"bleu\"",
                    "t.yaml:9: routes[0].passive: unknown pool \"gren\""}));
}

TEST(ConfigErrorTest, EmptyPoolName) {
  EXPECT_EQ(errors_of(kListenersPools + "routes: [{name: web, live: ''}]\n"),
            Errors{"t.yaml:6: routes[0].live: must not be empty"});
}

TEST(ConfigErrorTest, DuplicateRouteName) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - {name: api, match: {path_prefix: /api/}, live: blue}
  - {name: api, match: {path_prefix: /}, live: blue}
)"),
            Errors{"t.yaml:8: routes[1].name: duplicate route name \"api\" (first at line 7)"});
}

TEST(ConfigErrorTest, WeightAbove100) {
  EXPECT_EQ(errors_of(kListenersPools + "routes: [{name: web, live: blue, weight: 100.0001}]\n"),
            Errors{"t.yaml:6: routes[0].weight: percentage \"100.0001\" is above 100"});
}

TEST(ConfigErrorTest, WeightNotANumber) {
  EXPECT_EQ(errors_of(kListenersPools + "routes: [{name: web, live: blue, weight: -5}]\n"),
            Errors{"t.yaml:6: routes[0].weight: invalid percentage \"-5\": expected a number "
                   "from 0 to 100, e.g. 0.5, 0.5% or 100"});
}

TEST(ConfigErrorTest, WeightTooPrecise) {
  EXPECT_EQ(errors_of(kListenersPools + "routes: [{name: web, live: blue, weight: 0.00005}]\n"),
            Errors{"t.yaml:6: routes[0].weight: too many decimals in \"0.00005\" (the resolution "
                   "is 0.0001%)"});
}

TEST(ConfigErrorTest, StickyWithoutKind) {
  EXPECT_EQ(errors_of(kListenersPools + "routes: [{name: web, live: blue, sticky: {}}]\n"),
            Errors{"t.yaml:6: routes[0].sticky: expected exactly one of cookie, header or "
                   "client_ip"});
}

TEST(ConfigErrorTest, StickyWithTwoKinds) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - name: web
    live: blue
    sticky: {cookie: sid, header: X-User}
)"),
            Errors{"t.yaml:9: routes[0].sticky: expected exactly one of cookie, header or "
                   "client_ip"});
}

TEST(ConfigTest, StickyCookieSetDefaultsAndAttributes) {
  const auto defaults = valid(kListenersPools +
                                 "routes: [{name: web, live: blue, sticky: {cookie: cohort, set: true}}]\n");
  ASSERT_TRUE(defaults.routes[0].sticky.set);
  EXPECT_EQ(defaults.routes[0].sticky.set->attributes(), "; Path=/; HttpOnly; SameSite=Lax");
  const auto off = valid(kListenersPools +
                            "routes: [{name: web, live: blue, sticky: {cookie: cohort, set: false}}]\n");
  EXPECT_FALSE(off.routes[0].sticky.set);
  const auto all = valid(kListenersPools + R"(routes:
  - name: web
    live: blue
    sticky:
      cookie: cohort
      set: {path: /app, domain: example.com, max_age: 720h, secure: true, http_only: false, same_site: None}
)");
  ASSERT_TRUE(all.routes[0].sticky.set);
  EXPECT_EQ(all.routes[0].sticky.set->attributes(),
            "; Path=/app; Domain=example.com; Max-Age=2592000; Secure; SameSite=None");
}

TEST(ConfigErrorTest, StickyCookieSetErrors) {
  EXPECT_EQ(errors_of(kListenersPools +
                      "routes: [{name: web, live: blue, sticky: {header: X-User, set: true}}]\n"),
            Errors{"t.yaml:6: routes[0].sticky: set: only a cookie can be set (sticky: {cookie: "
                   "NAME, set: true})"});
  EXPECT_EQ(errors_of(kListenersPools +
                      "routes: [{name: web, live: blue, sticky: {cookie: c, set: {same_site: None}}}]\n"),
            Errors{"t.yaml:6: routes[0].sticky.set: same_site: None needs secure: true (browsers "
                   "drop the cookie otherwise)"});
  EXPECT_EQ(errors_of(kListenersPools +
                      "routes: [{name: web, live: blue, sticky: {cookie: c, set: {same_site: lax}}}]\n"),
            Errors{"t.yaml:6: routes[0].sticky.set.same_site: expected Lax, Strict or None, got "
                   "\"lax\""});
  EXPECT_EQ(errors_of(kListenersPools +
                      "routes: [{name: web, live: blue, sticky: {cookie: c, set: {path: \"/a;b\"}}}]\n"),
            Errors{"t.yaml:6: routes[0].sticky.set.path: must start with / and hold no ; or blank, "
                   "got \"/a;b\""});
  EXPECT_EQ(errors_of(kListenersPools +
                      "routes: [{name: web, live: blue, sticky: {cookie: c, set: yes please}}]\n"),
            Errors{"t.yaml:6: routes[0].sticky.set: expected true or false"});
}

TEST(ConfigErrorTest, StickyClientIpFalse) {
  EXPECT_EQ(
      errors_of(kListenersPools + "routes: [{name: web, live: blue, sticky: {client_ip: no}}]\n"),
      Errors{"t.yaml:6: routes[0].sticky.client_ip: must be true (leave sticky out for no "
             "stickiness)"});
}

TEST(ConfigErrorTest, StickyInvalidNames) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - {name: api, match: {path_prefix: /api/}, live: blue, sticky: {cookie: "a=b"}}
  - {name: web, live: blue, sticky: {header: "X User"}}
)"),
            (Errors{"t.yaml:7: routes[0].sticky.cookie: invalid cookie name \"a=b\"",
                    "t.yaml:8: routes[1].sticky.header: invalid header name \"X User\""}));
}

TEST(ConfigErrorTest, InvalidPreviewHeader) {
  EXPECT_EQ(errors_of(kListenersPools +
                      "routes: [{name: web, live: blue, preview_header: 'X-Preview:'}]\n"),
            Errors{"t.yaml:6: routes[0].preview_header: invalid header name \"X-Preview:\""});
}

TEST(ConfigErrorTest, InvalidMatch) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - name: web
    match: {host: "api.example.com:8080", path_prefix: api}
    live: blue
)"),
            (Errors{"t.yaml:8: routes[0].match.host: invalid host \"api.example.com:8080\" "
                    "(expected a host name like api.example.com or *.example.com)",
                    "t.yaml:8: routes[0].match.path_prefix: must start with /, got \"api\""}));
}

TEST(ConfigErrorTest, RouteThatNeverMatches) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - name: web
    live: blue
    match: {path_prefix: /}
  - name: api
    live: blue
    match: {path_prefix: /api/}
)"),
            Errors{"t.yaml:12: routes[1].match: never matches: route \"web\" (line 7) comes "
                   "first and matches every request this one would"});
}

TEST(ConfigErrorTest, RouteWithoutMatchAfterCatchAll) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - {name: all, live: blue}
  - {name: other, live: green, match: {host: "*.example.com"}}
)"),
            Errors{"t.yaml:8: routes[1].match: never matches: route \"all\" (line 7) comes first "
                   "and matches every request this one would"});
}

TEST(ConfigErrorTest, WildcardHostCoversItsSubdomains) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - {name: shop, live: blue, match: {host: "*.Example.com"}}
  - {name: api, live: green, match: {host: api.example.com, path_prefix: /api/}}
)"),
            Errors{"t.yaml:8: routes[1].match: never matches: route \"shop\" (line 7) comes "
                   "first and matches every request this one would"});
}

TEST(ConfigErrorTest, StarHostCoversEveryHost) {
  EXPECT_EQ(errors_of(kListenersPools + R"(routes:
  - {name: all, live: blue, match: {host: "*"}}
  - {name: api, live: green, match: {host: api.example.com}}
)"),
            Errors{"t.yaml:8: routes[1].match: never matches: route \"all\" (line 7) comes first "
                   "and matches every request this one would"});
}

TEST(ConfigErrorTest, PrefixWithoutSlashIsNotAssumedToCover) {
  // Whether "/api" takes "/apix" depends on the router's prefix rule, so it is not refused.
  valid(kListenersPools + R"(routes:
  - {name: api, live: blue, match: {path_prefix: /api}}
  - {name: apix, live: green, match: {path_prefix: /apix}}
)");
}

// --- errors: timeouts and limits --------------------------------------------------------------

TEST(ConfigErrorTest, TimeoutBadDuration) {
  EXPECT_EQ(errors_of(kBase + "timeouts: {client_header: 10}\n"),
            Errors{"t.yaml:8: timeouts.client_header: invalid duration \"10\": expected a whole "
                   "number and a unit (ms, s, m or h), e.g. 500ms or 2s"});
}

TEST(ConfigErrorTest, TimeoutZero) {
  EXPECT_EQ(errors_of(kBase + "timeouts: {drain: 0s}\n"),
            Errors{"t.yaml:8: timeouts.drain: must be greater than 0"});
}

TEST(ConfigErrorTest, TimeoutTooLong) {
  EXPECT_EQ(errors_of(kBase + "timeouts: {upstream_idle: 8761h}\n"),
            Errors{"t.yaml:8: timeouts.upstream_idle: duration \"8761h\" is too long (at most 365 "
                   "days)"});
}

TEST(ConfigErrorTest, TimeoutsInFileOrder) {
  EXPECT_EQ(errors_of(kBase + "timeouts: {drain: 1, client_header: 2}\n"),
            (Errors{"t.yaml:8: timeouts.drain: invalid duration \"1\": expected a whole number "
                    "and a unit (ms, s, m or h), e.g. 500ms or 2s",
                    "t.yaml:8: timeouts.client_header: invalid duration \"2\": expected a whole "
                    "number and a unit (ms, s, m or h), e.g. 500ms or 2s"}));
}

TEST(ConfigErrorTest, LimitBadSize) {
  EXPECT_EQ(errors_of(kBase + "limits: {max_body_bytes: 10MB}\n"),
            Errors{"t.yaml:8: limits.max_body_bytes: invalid size \"10MB\": expected a whole "
                   "number of bytes, optionally with KiB, MiB or GiB, e.g. 16384 or 100MiB"});
}

TEST(ConfigErrorTest, LimitZero) {
  EXPECT_EQ(errors_of(kBase + "limits: {max_header_bytes: 0}\n"),
            Errors{"t.yaml:8: limits.max_header_bytes: must be greater than 0"});
}

TEST(ConfigErrorTest, LimitOverflow) {
  EXPECT_EQ(errors_of(kBase + "limits: {max_body_bytes: 17179869184GiB}\n"),
            Errors{"t.yaml:8: limits.max_body_bytes: size \"17179869184GiB\" is too large"});
}

TEST(ConfigErrorTest, HeaderLimitAbove32Bits) {
  EXPECT_EQ(errors_of(kBase + "limits: {max_header_bytes: 4GiB}\n"),
            Errors{"t.yaml:8: limits.max_header_bytes: must be at most 4294967295 bytes"});
}

TEST(ConfigErrorTest, IdlePerServerOutOfRange) {
  EXPECT_EQ(errors_of(kBase + "limits: {upstream_idle_per_server: 65536}\n"),
            Errors{"t.yaml:8: limits.upstream_idle_per_server: expected a whole number from 0 to "
                   "65535, got \"65536\""});
}

TEST(ConfigErrorTest, MaxConnectionsOutOfRange) {
  EXPECT_EQ(errors_of(kBase + "limits: {max_connections: 0}\n"),
            Errors{"t.yaml:8: limits.max_connections: expected a whole number from 1 to "
                   "10000000, got \"0\""});
  EXPECT_EQ(errors_of(kBase + "limits: {max_connections: 10000001}\n"),
            Errors{"t.yaml:8: limits.max_connections: expected a whole number from 1 to "
                   "10000000, got \"10000001\""});
}

// --- warnings: keys that are read and checked but do nothing yet --------------------------------

Errors warnings_of(const std::string& text) {
  Errors out;
  for (const ConfigError& warning : load(text).warnings) out.push_back(warning.text());
  return out;
}

TEST(ConfigWarningTest, NoneWithoutThoseKeys) {
  EXPECT_EQ(warnings_of(kBase), Errors{});
  EXPECT_EQ(warnings_of(kBase + "admin: {metrics: off}\n"), Errors{});
}

TEST(ConfigWarningTest, WarningTextPutsWarningBeforeTheMessage) {
  EXPECT_EQ((ConfigError{"f.yaml", 3, "admin.metrics", "m"}).warning_text(),
            "f.yaml:3: admin.metrics: warning: m");
}

TEST(ConfigWarningTest, HealthPassiveAndFailOpenWarnNothing) {
  const std::string yaml = R"(
listeners: [{name: public, address: 127.0.0.1:0}]
pools:
  blue:
    servers: [127.0.0.1:9001]
    health:
      path: /ready
      rise: 3
    passive: {failures: 2}
    fail_open: true
  green: {servers: [127.0.0.1:9011], health: {}, passive: off}
routes: [{name: web, live: blue}]
)";
  EXPECT_EQ(errors_of(yaml), Errors{});
  EXPECT_EQ(warnings_of(yaml), Errors{});
}

TEST(ConfigWarningTest, MetricsIsAnAddressAndNoWarning) {
  const Config config = valid(kBase + "admin:\n  metrics: \"[::1]:9145\"\n");
  ASSERT_TRUE(config.admin.metrics.has_value());
  EXPECT_EQ(config.admin.metrics->text(), "[::1]:9145");
  EXPECT_EQ(warnings_of(kBase + "admin:\n  metrics: \"[::1]:9145\"\n"), Errors{});
}

TEST(ConfigWarningTest, MetricsWithABadAddressIsOnlyAnError) {
  EXPECT_EQ(warnings_of(kBase + "admin: {metrics: 9145}\n"), Errors{});
}

// TLS termination landed: a tls block is no longer a warning.
TEST(ConfigWarningTest, TlsIsNoLongerAWarning) {
  const std::string yaml = R"(
listeners:
  - {name: public, address: 127.0.0.1:0}
  - name: public-tls
    address: 127.0.0.1:0
    tls: {cert: /c.pem, key: /k.pem}
)" + kPoolsRoutes;
  EXPECT_EQ(errors_of(yaml), Errors{});
  EXPECT_EQ(warnings_of(yaml), Errors{});
}

}  // namespace
}  // namespace proxyd

namespace proxyd {
namespace {

TEST(ConfigAdmin, AuditLogDefaultsToTheStateFilesDirectory) {
  EXPECT_EQ(valid(kBase + "admin: {state_file: /srv/p/state.json}\n").admin.audit_log,
            "/srv/p/audit.log");
  EXPECT_EQ(valid(kBase + "admin: {state_file: state.json}\n").admin.audit_log, "./audit.log");
  EXPECT_EQ(valid(kBase + "admin: {state_file: /srv/p/s.json, audit_log: /log/a.log}\n")
                .admin.audit_log,
            "/log/a.log");
}

}  // namespace
}  // namespace proxyd

namespace proxyd {
namespace {

// Health checks, passive checks, fail_open, and a route's max_step and drain.
const std::string kHealthPools = R"(
listeners:
  - {name: public, address: 127.0.0.1:0}
pools:
  blue:
    servers: [127.0.0.1:9001]
)";

TEST(ConfigHealth, ExpectHostPassiveAndFailOpen) {
  const Config config = valid(kHealthPools + R"(    health: {path: /ready, expect: "200-299, 301", host: "app.internal:8080"}
    passive: {failures: 3, ejection: 10s, max_ejection: 1m, max_ejected_percent: 34}
    fail_open: true
  green:
    servers: [127.0.0.1:9011]
    passive: off
routes:
  - {name: web, live: blue, passive: green, max_step: 5, drain: 45s}
)");
  const PoolConfig& blue = config.pools[0];
  ASSERT_TRUE(blue.health);
  EXPECT_EQ(blue.health->path, "/ready");
  EXPECT_EQ(blue.health->expect, (std::vector<StatusRange>{{200, 299}, {301, 301}}));
  EXPECT_EQ(blue.health->host, "app.internal:8080");
  EXPECT_TRUE(blue.passive.enabled);
  EXPECT_EQ(blue.passive.failures, 3);
  EXPECT_EQ(blue.passive.ejection, Duration(10'000));
  EXPECT_EQ(blue.passive.max_ejection, Duration(60'000));
  EXPECT_EQ(blue.passive.max_ejected_percent, 34);
  EXPECT_TRUE(blue.fail_open);
  const PoolConfig& green = config.pools[1];
  EXPECT_FALSE(green.health);
  EXPECT_FALSE(green.passive.enabled);
  EXPECT_FALSE(green.fail_open);
  EXPECT_EQ(config.routes[0].max_step_ppm, 50'000u);
  EXPECT_EQ(config.routes[0].drain, Duration(45'000));
}

TEST(ConfigHealth, Defaults) {
  const Config config = valid(kHealthPools + R"(    health: {}
routes:
  - {name: web, live: blue}
)");
  const HealthConfig& health = *config.pools[0].health;
  EXPECT_EQ(health.expect, (std::vector<StatusRange>{{200, 399}}));
  EXPECT_EQ(health.host, "");
  const PassiveConfig& passive = config.pools[0].passive;
  EXPECT_TRUE(passive.enabled);
  EXPECT_EQ(passive.failures, 5);
  EXPECT_EQ(passive.ejection, Duration(30'000));
  EXPECT_EQ(passive.max_ejection, Duration(300'000));
  EXPECT_EQ(passive.max_ejected_percent, 50);
  EXPECT_EQ(config.routes[0].max_step_ppm, std::nullopt);
  EXPECT_EQ(config.routes[0].drain, std::nullopt);
}

TEST(ConfigHealthError, BadValues) {
  EXPECT_EQ(errors_of(kHealthPools + R"(    health: {expect: "200-99", host: "a b", interval: 1s, timeout: 2s}
    passive: {failures: 0, ejection: 1m, max_ejection: 10s, max_ejected_percent: 101}
    fail_open: maybe
routes:
  - {name: web, live: blue, max_step: 0, drain: 0s}
)"),
            (Errors{
                "t.yaml:6: pools.blue.health.expect: expected status codes from 100 to 599 as "
                "ranges, e.g. 200-399 or 200-299, 301, got \"200-99\"",
                "t.yaml:6: pools.blue.health.host: invalid host \"a b\" (a host name, with a port "
                "if any)",
                "t.yaml:6: pools.blue.health.timeout: must not be longer than interval (1s)",
                "t.yaml:7: pools.blue.passive.failures: expected a whole number from 1 to 1000, "
                "got \"0\"",
                "t.yaml:7: pools.blue.passive.max_ejection: must not be shorter than ejection (1m)",
                "t.yaml:7: pools.blue.passive.max_ejected_percent: expected a whole number from 0 "
                "to 100, got \"101\"",
                "t.yaml:8: pools.blue.fail_open: expected true or false",
                "t.yaml:10: routes[0].max_step: must be greater than 0",
                "t.yaml:10: routes[0].drain: must be greater than 0",
            }));
  EXPECT_EQ(errors_of(kHealthPools + R"(    passive: on
routes:
  - {name: web, live: blue}
)"),
            Errors{"t.yaml:6: pools.blue.passive: expected off or a map of failures, ejection, "
                   "max_ejection, max_ejected_percent, got \"on\""});
}

}  // namespace
}  // namespace proxyd

namespace proxyd {
namespace {

// --- HTTP/2 (listeners[].http2) ------------------------------------------------------------------

TEST(ConfigTest, Http2DefaultsOnForTlsOffForPlaintext) {
  ListenerConfig plain;
  EXPECT_FALSE(plain.speaks_h2());
  ListenerConfig tls;
  tls.tls.emplace();
  EXPECT_TRUE(tls.speaks_h2());
  const Config config = valid(R"(
listeners:
  - {name: h2c, address: 127.0.0.1:0, http2: true}
  - {name: plain, address: 127.0.0.1:0, http2: false}
  - {name: default, address: 127.0.0.1:0}
)" + kPoolsRoutes);
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_TRUE(config.listeners[0].speaks_h2());
  EXPECT_FALSE(config.listeners[1].speaks_h2());
  EXPECT_FALSE(config.listeners[2].speaks_h2());
}

TEST(ConfigTest, Http2MustBeABoolean) {
  EXPECT_EQ(errors_of("listeners:\n  - {name: public, address: 127.0.0.1:0, http2: h2c}\n" +
                      kPoolsRoutes),
            Errors{"t.yaml:2: listeners[0].http2: expected true or false"});
  EXPECT_EQ(errors_of("listeners:\n  - {name: public, address: 127.0.0.1:0, http2: [true]}\n" +
                      kPoolsRoutes),
            Errors{"t.yaml:2: listeners[0].http2: expected true or false"});
}

TEST(ConfigTest, Http2LongFormSetsLimitsAndTurnsItOn) {
  const Config config = valid(R"(
listeners:
  - {name: tuned, address: 127.0.0.1:0, http2: {max_concurrent_streams: 10, max_header_list_size: 8KiB, initial_window_size: 64KiB}}
  - {name: some, address: 127.0.0.1:0, http2: {max_concurrent_streams: 1}}
  - {name: empty, address: 127.0.0.1:0, http2: {}}
  - {name: short, address: 127.0.0.1:0, http2: true}
)" + kPoolsRoutes);
  ASSERT_EQ(config.listeners.size(), 4u);
  const Http2Limits& tuned = config.listeners[0].http2_limits;
  EXPECT_TRUE(config.listeners[0].speaks_h2());
  EXPECT_EQ(tuned.max_concurrent_streams, 10u);
  EXPECT_EQ(tuned.max_header_list_size, std::optional<std::uint32_t>(8192));
  EXPECT_EQ(tuned.initial_window_size, 65536u);
  const Http2Limits& some = config.listeners[1].http2_limits;
  EXPECT_EQ(some.max_concurrent_streams, 1u);
  EXPECT_EQ(some.max_header_list_size, std::nullopt);
  EXPECT_EQ(some.initial_window_size, 262144u);
  EXPECT_TRUE(config.listeners[2].speaks_h2());
  EXPECT_EQ(config.listeners[2].http2_limits, Http2Limits{});
  EXPECT_EQ(config.listeners[3].http2_limits, Http2Limits{});
  EXPECT_EQ(Http2Limits{}.max_concurrent_streams, 128u);
}

TEST(ConfigTest, Http2LimitsOutOfRangeAreErrorsNamingTheKey) {
  const auto with = [](const std::string& limits) {
    return errors_of("listeners:\n  - {name: a, address: 127.0.0.1:0, http2: {" + limits +
                     "}}\n" + kPoolsRoutes);
  };
  EXPECT_EQ(with("max_concurrent_streams: 0"),
            Errors{"t.yaml:2: listeners[0].http2.max_concurrent_streams: expected a whole "
                   "number from 1 to 1024, got \"0\""});
  EXPECT_EQ(with("max_concurrent_streams: 1025"),
            Errors{"t.yaml:2: listeners[0].http2.max_concurrent_streams: expected a whole "
                   "number from 1 to 1024, got \"1025\""});
  EXPECT_EQ(with("max_header_list_size: 1023"),
            Errors{"t.yaml:2: listeners[0].http2.max_header_list_size: must be from 1024 to "
                   "1048576 bytes, got 1023"});
  EXPECT_EQ(with("max_header_list_size: 2MiB"),
            Errors{"t.yaml:2: listeners[0].http2.max_header_list_size: must be from 1024 to "
                   "1048576 bytes, got 2097152"});
  EXPECT_EQ(with("initial_window_size: 17MiB"),
            Errors{"t.yaml:2: listeners[0].http2.initial_window_size: must be from 1024 to "
                   "16777216 bytes, got 17825792"});
  EXPECT_EQ(with("initial_window_size: lots"),
            Errors{"t.yaml:2: listeners[0].http2.initial_window_size: invalid size \"lots\": "
                   "expected a whole number of bytes, optionally with KiB, MiB or GiB, e.g. 16384 "
                   "or 100MiB"});
  EXPECT_EQ(with("max_streams: 10"),
            Errors{"t.yaml:2: listeners[0].http2.max_streams: unknown key (expected one of: "
                   "max_concurrent_streams, max_header_list_size, initial_window_size)"});
}

}  // namespace
}  // namespace proxyd
