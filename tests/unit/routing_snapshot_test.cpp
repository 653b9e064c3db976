// The snapshot builder over hand-filled Config structs and a fake resolver (no DNS): pool and route
// indexes, errors with file, line and key, and ServerState/admin reuse across generations.
#include "proxy/routing_snapshot.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/split_policy.hpp"

namespace proxyd {
namespace {

ResolvedAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                   std::uint16_t port) {
  ResolvedAddress address;
  address.bytes = {a, b, c, d};
  address.port = port;
  return address;
}

// Offline stand-in for DNS: a fixed table. Anything else fails the way getaddrinfo would.
std::vector<ResolvedAddress> fake_resolve(const std::string& host, std::uint16_t port,
                                          std::string& error) {
  if (host == "127.0.0.1") return {v4(127, 0, 0, 1, port)};
  if (host == "10.0.0.5") return {v4(10, 0, 0, 5, port)};
  if (host == "app.internal") return {v4(10, 0, 0, 7, port), v4(10, 0, 0, 8, port)};
  if (host == "::1") {
    ResolvedAddress address;
    address.v6 = true;
    address.bytes[15] = 1;
    address.port = port;
    return {address};
  }
  if (host == "silent.internal") return {};
  error = "Name or service not known";
  return {};
}

PoolConfig pool(std::string name, std::vector<Endpoint> servers, int line) {
  PoolConfig config;
  config.name = std::move(name);
  config.servers = std::move(servers);
  config.line = line;
  return config;
}

RouteConfig route(std::string name, std::string live, std::string passive, int line) {
  RouteConfig config;
  config.name = std::move(name);
  config.live = std::move(live);
  config.passive = std::move(passive);
  config.line = line;
  return config;
}

// blue (two servers), green (one, least-request); routes api (/api/, 5%, cookie) and web.
std::shared_ptr<Config> base_config() {
  auto config = std::make_shared<Config>();
  config->path = "/etc/proxyd/proxyd.yaml";
  config->pools.push_back(pool("blue", {{"127.0.0.1", 9001}, {"127.0.0.1", 9002}}, 12));
  config->pools.push_back(pool("green", {{"app.internal", 80}}, 16));
  config->pools.back().balance = Balance::least_request;
  RouteConfig api = route("api", "blue", "green", 20);
  api.host = "api.example.com";
  api.path_prefix = "/api/";
  api.weight_ppm = 50'000;
  api.sticky = {StickyConfig::Kind::cookie, "sessionid", std::nullopt};
  api.preview_header = "X-Preview";
  config->routes.push_back(api);
  config->routes.push_back(route("web", "green", "blue", 27));
  return config;
}

std::shared_ptr<const RoutingSnapshot> build(std::shared_ptr<const Config> config,
                                             std::uint64_t generation = 1,
                                             const RoutingSnapshot* previous = nullptr) {
  SnapshotResult result = build_snapshot(std::move(config), generation, previous, fake_resolve);
  EXPECT_TRUE(result.errors.empty())
      << result.errors.front().key << ": " << result.errors.front().message;
  return result.snapshot;
}

void expect_error(const ConfigError& error, int line, const std::string& key,
                  const std::string& message) {
  EXPECT_EQ(error.file, "/etc/proxyd/proxyd.yaml");
  EXPECT_EQ(error.line, line);
  EXPECT_EQ(error.key, key);
  EXPECT_EQ(error.message, message);
}

TEST(RoutingSnapshot, ResolvedAddressText) {
  EXPECT_EQ(v4(127, 0, 0, 1, 9001).text(), "127.0.0.1:9001");
  ResolvedAddress v6;
  v6.v6 = true;
  v6.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  v6.port = 443;
  EXPECT_EQ(v6.text(), "[2001:db8::1]:443");
}

// Numeric hosts take the inet_pton path and never reach getaddrinfo, so this stays offline.
TEST(RoutingSnapshot, ResolveSystemNumericHosts) {
  std::string error;
  const auto v4_result = resolve_system("192.0.2.10", 8080, error);
  ASSERT_EQ(v4_result.size(), 1u);
  EXPECT_EQ(v4_result[0].text(), "192.0.2.10:8080");
  for (const char* host : {"::1", "[::1]"}) {
    const auto v6_result = resolve_system(host, 9001, error);
    ASSERT_EQ(v6_result.size(), 1u) << host;
    EXPECT_TRUE(v6_result[0].v6);
    EXPECT_EQ(v6_result[0].text(), "[::1]:9001");
  }
  EXPECT_TRUE(error.empty());
}

TEST(RoutingSnapshot, BuildsPoolsAndRoutesWithIndexes) {
  const auto config = base_config();
  const auto snapshot = build(config, 7);
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->generation, 7u);
  EXPECT_EQ(snapshot->config, config);

  ASSERT_EQ(snapshot->pools.size(), 2u);
  const Pool& blue = snapshot->pools[0];
  EXPECT_EQ(blue.name, "blue");
  EXPECT_EQ(blue.index, 0u);
  EXPECT_EQ(blue.balance, Balance::round_robin);
  ASSERT_EQ(blue.servers.size(), 2u);
  EXPECT_EQ(blue.servers[0].name, "127.0.0.1:9001");
  EXPECT_EQ(blue.servers[1].address.text(), "127.0.0.1:9002");
  const Pool& green = snapshot->pools[1];
  EXPECT_EQ(green.index, 1u);
  EXPECT_EQ(green.balance, Balance::least_request);
  ASSERT_EQ(green.servers.size(), 1u);
  EXPECT_EQ(green.servers[0].name, "app.internal:80");
  // One server for the name; its other addresses are tried in the resolver's order.
  EXPECT_EQ(green.servers[0].address.text(), "10.0.0.7:80");
  ASSERT_EQ(green.servers[0].fallback_addresses.size(), 1u);
  EXPECT_EQ(green.servers[0].fallback_addresses[0].text(), "10.0.0.8:80");
  EXPECT_TRUE(blue.servers[0].fallback_addresses.empty());

  for (const Pool& pool : snapshot->pools) {
    for (const Server& server : pool.servers) {
      EXPECT_EQ(server.admin, ServerAdmin::enabled);
      ASSERT_NE(server.state, nullptr);
      EXPECT_EQ(server.state->in_flight.load(), 0);
    }
  }
  EXPECT_NE(blue.servers[0].state, blue.servers[1].state);

  ASSERT_EQ(snapshot->routes.size(), 2u);
  const Route& api = snapshot->routes[0];
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.index, 0u);
  EXPECT_EQ(api.host, "api.example.com");
  EXPECT_EQ(api.path_prefix, "/api/");
  EXPECT_EQ(api.live_pool, 0u);
  EXPECT_EQ(api.passive_pool, 1u);
  EXPECT_EQ(api.weight_ppm, 50'000u);
  EXPECT_EQ(api.sticky.kind, StickyConfig::Kind::cookie);
  EXPECT_EQ(api.sticky.name, "sessionid");
  EXPECT_EQ(api.preview_header, "X-Preview");
  EXPECT_EQ(api.sticky_salt, fnv1a64("api"));
  const Route& web = snapshot->routes[1];
  EXPECT_EQ(web.index, 1u);
  EXPECT_EQ(web.live_pool, 1u);
  EXPECT_EQ(web.passive_pool, 0u);
  EXPECT_NE(web.sticky_salt, api.sticky_salt);

  EXPECT_EQ(snapshot->find_pool("green"), &green);
  EXPECT_EQ(snapshot->find_pool("red"), nullptr);
  EXPECT_EQ(snapshot->find_route("web"), &web);
  EXPECT_EQ(snapshot->find_route("admin"), nullptr);
}

TEST(RoutingSnapshot, Ipv6ServerNameIsBracketed) {
  auto config = base_config();
  config->pools[0].servers = {{"::1", 9001}};
  const auto snapshot = build(config);
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->pools[0].servers[0].name, "[::1]:9001");
  EXPECT_EQ(snapshot->pools[0].servers[0].address.text(), "[::1]:9001");
}

TEST(RoutingSnapshot, UnresolvableServersAreErrorsNamingThePool) {
  auto config = base_config();
  config->pools[0].servers.push_back({"nowhere.invalid", 9003});
  config->pools[1].servers = {{"silent.internal", 80}};
  const SnapshotResult result = build_snapshot(config, 1, nullptr, fake_resolve);
  EXPECT_EQ(result.snapshot, nullptr);
  ASSERT_EQ(result.errors.size(), 2u);
  expect_error(result.errors[0], 12, "pools.blue.servers[2]",
               "cannot resolve nowhere.invalid: Name or service not known");
  expect_error(result.errors[1], 16, "pools.green.servers[0]",
               "cannot resolve silent.internal: no address");
}

TEST(RoutingSnapshot, UnknownPoolIsAnError) {
  auto config = base_config();
  config->routes[1].live = "red";
  config->routes[1].passive = "black";
  const SnapshotResult result = build_snapshot(config, 1, nullptr, fake_resolve);
  EXPECT_EQ(result.snapshot, nullptr);
  ASSERT_EQ(result.errors.size(), 2u);
  expect_error(result.errors[0], 27, "routes[1].live", "unknown pool red");
  expect_error(result.errors[1], 27, "routes[1].passive", "unknown pool black");
}

TEST(RoutingSnapshot, DuplicateNamesAndOutOfRangeWeightAreErrors) {
  auto config = base_config();
  config->pools.push_back(pool("blue", {{"10.0.0.5", 1}}, 30));
  config->routes.push_back(route("api", "blue", "blue", 40));
  config->routes[1].weight_ppm = kPpmMax + 1;
  const SnapshotResult result = build_snapshot(config, 1, nullptr, fake_resolve);
  EXPECT_EQ(result.snapshot, nullptr);
  ASSERT_EQ(result.errors.size(), 3u);
  expect_error(result.errors[0], 30, "pools.blue", "duplicate pool name");
  expect_error(result.errors[1], 27, "routes[1].weight", "must be between 0 and 100 percent");
  expect_error(result.errors[2], 40, "routes[2].name", "duplicate route name api");
}

TEST(RoutingSnapshot, WeightBoundsAreValid) {
  auto config = base_config();
  config->routes[0].weight_ppm = kPpmMax;
  config->routes[1].weight_ppm = 0;
  EXPECT_NE(build(config), nullptr);
}

TEST(RoutingSnapshot, NullConfigIsAnError) {
  const SnapshotResult result = build_snapshot(nullptr, 1, nullptr, fake_resolve);
  EXPECT_EQ(result.snapshot, nullptr);
  EXPECT_EQ(result.errors.size(), 1u);
}

TEST(RoutingSnapshot, EmptyConfigBuildsAnEmptySnapshot) {
  const auto snapshot = build(std::make_shared<Config>());
  ASSERT_NE(snapshot, nullptr);
  EXPECT_TRUE(snapshot->pools.empty());
  EXPECT_TRUE(snapshot->routes.empty());
}

// A reload keeps each surviving server's counters and the operator's drain/disable decisions;
// servers that are new, moved to another pool or renamed start fresh.
TEST(RoutingSnapshot, ServerStateAndAdminSurviveANewGeneration) {
  const auto first = build(base_config(), 1);
  ASSERT_NE(first, nullptr);
  first->pools[0].servers[0].state->in_flight = 3;

  // A control command's next snapshot: a copy of the current one with one server drained.
  RoutingSnapshot current = *first;
  current.pools[0].servers[1].admin = ServerAdmin::draining;
  current.pools[1].servers[0].admin = ServerAdmin::disabled;

  auto config = base_config();
  config->pools[0].servers = {{"127.0.0.1", 9002}, {"127.0.0.1", 9001}, {"10.0.0.5", 9009}};
  config->pools[1].servers = {{"app.internal", 80}};
  config->pools.push_back(pool("red", {{"127.0.0.1", 9001}}, 40));
  const auto second = build(config, 2, &current);
  ASSERT_NE(second, nullptr);

  const Pool& blue = second->pools[0];
  EXPECT_EQ(blue.servers[0].state, first->pools[0].servers[1].state);  // 9002, moved up
  EXPECT_EQ(blue.servers[0].admin, ServerAdmin::draining);
  EXPECT_EQ(blue.servers[1].state, first->pools[0].servers[0].state);  // 9001
  EXPECT_EQ(blue.servers[1].state->in_flight.load(), 3);
  EXPECT_EQ(blue.servers[1].admin, ServerAdmin::enabled);
  EXPECT_EQ(blue.servers[2].admin, ServerAdmin::enabled);  // new server
  EXPECT_EQ(blue.servers[2].state->in_flight.load(), 0);

  EXPECT_EQ(second->pools[1].servers[0].state, first->pools[1].servers[0].state);
  EXPECT_EQ(second->pools[1].servers[0].admin, ServerAdmin::disabled);

  // The same address in another pool is another server: its own counter.
  const Pool& red = second->pools[2];
  EXPECT_NE(red.servers[0].state, first->pools[0].servers[0].state);
  EXPECT_EQ(red.servers[0].state->in_flight.load(), 0);
}

TEST(RoutingSnapshot, RenamedPoolStartsFresh) {
  const auto first = build(base_config(), 1);
  ASSERT_NE(first, nullptr);
  auto config = base_config();
  config->pools[0].name = "black";
  config->routes[0].live = config->routes[1].passive = "black";
  const auto second = build(config, 2, first.get());
  ASSERT_NE(second, nullptr);
  EXPECT_NE(second->pools[0].servers[0].state, first->pools[0].servers[0].state);
  EXPECT_EQ(second->pools[1].servers[0].state, first->pools[1].servers[0].state);
}

TEST(RoutingSnapshot, RepeatedServerKeepsSeparateCountersAcrossGenerations) {
  auto config = base_config();
  config->pools[0].servers = {{"127.0.0.1", 9001}, {"127.0.0.1", 9001}};
  const auto first = build(config, 1);
  ASSERT_NE(first, nullptr);
  EXPECT_NE(first->pools[0].servers[0].state, first->pools[0].servers[1].state);
  const auto second = build(config, 2, first.get());
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->pools[0].servers[0].state, first->pools[0].servers[0].state);
  EXPECT_EQ(second->pools[0].servers[1].state, first->pools[0].servers[1].state);
}

}  // namespace
}  // namespace proxyd

namespace proxyd {
namespace {

// Health at a build: a new server of a checked pool must prove itself; one already serving keeps
// serving when its pool gains a health block (until it fails `fall` checks); a pool without a
// block is unchecked; a health state reached by checks survives a reload.
TEST(RoutingSnapshot, HealthStartsUnhealthyForNewServersOfACheckedPool) {
  auto config = base_config();
  config->pools[0].health = HealthConfig{};
  const auto first = build(config, 1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->pools[0].servers[0].state->health.load(), Health::unhealthy);
  EXPECT_EQ(first->pools[1].servers[0].state->health.load(), Health::unchecked);
  EXPECT_TRUE(first->pools[0].health.has_value());
  EXPECT_FALSE(first->pools[1].health.has_value());

  first->pools[0].servers[1].state->health = Health::healthy;  // as its checks decided
  auto second_config = base_config();
  second_config->pools[0].health = HealthConfig{};
  second_config->pools[0].servers.push_back({"10.0.0.5", 9009});
  second_config->pools[1].health = HealthConfig{};  // green gains a health block
  const auto second = build(second_config, 2, first.get());
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->pools[0].servers[0].state->health.load(), Health::unhealthy);
  EXPECT_EQ(second->pools[0].servers[1].state->health.load(), Health::healthy);
  EXPECT_EQ(second->pools[0].servers[2].state->health.load(), Health::unhealthy);  // new
  EXPECT_EQ(second->pools[1].servers[0].state->health.load(), Health::healthy);  // was serving

  const auto third = build(base_config(), 3, second.get());  // the blocks are gone
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->pools[0].servers[1].state->health.load(), Health::unchecked);
  EXPECT_EQ(third->pools[1].servers[0].state->health.load(), Health::unchecked);
}

TEST(RoutingSnapshot, PoolAndRouteSettingsAreCopied) {
  auto config = base_config();
  config->pools[1].fail_open = true;
  config->pools[1].passive.failures = 9;
  config->routes[0].max_step_ppm = 50'000;
  config->routes[1].drain = Duration(5000);
  config->timeouts.drain = Duration(12'000);
  const auto snapshot = build(config);
  ASSERT_NE(snapshot, nullptr);
  EXPECT_TRUE(snapshot->pools[1].fail_open);
  EXPECT_EQ(snapshot->pools[1].passive.failures, 9);
  EXPECT_EQ(snapshot->routes[0].max_step_ppm, 50'000u);
  EXPECT_EQ(snapshot->routes[0].drain, Duration(12'000));  // timeouts.drain by default
  EXPECT_EQ(snapshot->routes[1].drain, Duration(5000));
}

}  // namespace
}  // namespace proxyd
