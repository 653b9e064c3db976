// proxyctl stats through the real proxyd and proxyctl: a route with live blue and passive green at
// weight 50, green answering 503 to everything. Every request the clients saw is counted once, per
// slot, over the windows (two workers, merged), the passive slot's error ratio is 1 and the live
// slot's 0, and the text table shows the same rows; proxyd's own 5xx replies are errors too.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

class StatsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    green_.set_every_status(503);
    std::string gone;  // a port nothing listens on any more: proxyd answers 502 itself
    {
      FakeUpstream closed("closed");
      gone = closed.address();
    }
    proxy_ = ProxydProcess::start(ConfigBuilder()
                                      .workers(2)
                                      .access_log("off")
                                      .pool("blue", {blue_.address()})
                                      .pool("green", {green_.address()})
                                      .pool("gone", {gone})
                                      .route("dead", "/dead/", "blue", "gone", {"weight: 100"})
                                      .route("api", "/", "blue", "green", {"weight: 50"})
                                      .yaml());
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("public");
  }

  CommandResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {PROXYCTL_BINARY, "-s", proxy_->dir() + "/control.sock"});
    return run_program(args, 20s);
  }

  // `stats --json` for `window`, parsed: slot -> its object.
  std::map<std::string, json::object> stats_json(const std::string& window,
                                                 const std::string& route = "api") {
    const CommandResult r = ctl({"--json", "stats", route, "--window", window});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::map<std::string, json::object> out;
    boost::system::error_code ec;
    const json::value reply = json::parse(r.output, ec);
    if (ec) {
      ADD_FAILURE() << "not JSON: " << r.output;
      return out;
    }
    const json::object& result = reply.at("result").as_object();
    EXPECT_EQ(result.at("routes").as_array().size(), 1u) << r.output;
    for (const json::value& slot : result.at("routes").at(0).at("slots").as_array()) {
      out[std::string(slot.at("slot").as_string())] = slot.as_object();
    }
    return out;
  }

  static std::int64_t requests(const std::map<std::string, json::object>& stats,
                               const std::string& slot) {
    const auto found = stats.find(slot);
    return found == stats.end() ? -1 : found->second.at("requests").as_int64();
  }

  FakeUpstream blue_{"blue-1"};
  FakeUpstream green_{"green-1"};
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
};

std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

std::string percent(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f%%", decimals, value);
  return text;
}

TEST_F(StatsE2E, CountsWhatTheClientsSawPerSlotWithErrorsAndLatency) {
  constexpr int kRequests = 100;
  std::int64_t live = 0;
  std::int64_t passive = 0;
  for (int i = 0; i < kRequests; ++i) {
    const Response r = fetch(port_, "/x");  // a new connection each: both workers take some
    if (r.ok() && r.status == 200 && r.header("x-upstream") == "blue-1") {
      ++live;
    } else if (r.ok() && r.status == 503 && r.header("x-upstream") == "green-1") {
      ++passive;
    } else {
      ADD_FAILURE() << "request " << i << ": " << r.status << " " << r.error;
    }
  }
  ASSERT_GT(live, 0);
  ASSERT_GT(passive, 0);

  // A request is counted just after its response went out: ask again until the counts catch up.
  std::map<std::string, json::object> stats;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    stats = stats_json("10s");
  } while ((requests(stats, "live") != live || requests(stats, "passive") != passive) &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(requests(stats, "live"), live);
  ASSERT_EQ(requests(stats, "passive"), passive);
  EXPECT_EQ(stats["live"].at("pool"), "blue");
  EXPECT_EQ(stats["passive"].at("pool"), "green");
  EXPECT_EQ(stats["live"].at("errors"), 0);
  EXPECT_EQ(stats["passive"].at("errors"), passive);
  EXPECT_EQ(stats["live"].at("error_ratio").as_double(), 0.0);
  EXPECT_EQ(stats["passive"].at("error_ratio").as_double(), 1.0);
  EXPECT_DOUBLE_EQ(stats["passive"].at("share").as_double(),
                   static_cast<double>(passive) / kRequests);
  EXPECT_DOUBLE_EQ(stats["live"].at("per_second").as_double(), live / 10.0);
  for (const char* slot : {"live", "passive"}) {
    EXPECT_TRUE(stats[slot].at("p50_ms").is_double()) << slot;
    EXPECT_TRUE(stats[slot].at("p99_ms").is_double()) << slot;
    EXPECT_EQ(stats[slot].at("p99_over"), false) << slot;
  }
  // The longer windows hold the same requests.
  const std::map<std::string, json::object> five = stats_json("5m");
  EXPECT_EQ(requests(five, "live"), live);
  EXPECT_EQ(requests(five, "passive"), passive);

  // The text table: the same rows.
  const CommandResult text = ctl({"stats", "api", "--window", "1m"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  std::istringstream lines(text.output);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(line, "window 1m (60 s)");
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(words_of(line), (std::vector<std::string>{"ROUTE", "SLOT", "POOL", "REQUESTS",
                                                       "REQ/S", "SHARE", "WEIGHT", "ERRORS",
                                                       "ERROR%", "P50", "MS", "P99", "MS"}));
  ASSERT_TRUE(std::getline(lines, line));
  std::vector<std::string> row = words_of(line);
  ASSERT_EQ(row.size(), 11u) << line;
  EXPECT_EQ((std::vector<std::string>(row.begin(), row.begin() + 4)),
            (std::vector<std::string>{"api", "live", "blue", std::to_string(live)}));
  EXPECT_EQ(row[5], percent(100.0 * static_cast<double>(live) / kRequests, 1));
  EXPECT_EQ(row[6], "50%");
  EXPECT_EQ(row[7], "0");
  EXPECT_EQ(row[8], "0.00%");
  ASSERT_TRUE(std::getline(lines, line));
  row = words_of(line);
  ASSERT_EQ(row.size(), 11u) << line;
  EXPECT_EQ((std::vector<std::string>(row.begin(), row.begin() + 4)),
            (std::vector<std::string>{"api", "passive", "green", std::to_string(passive)}));
  EXPECT_EQ(row[5], percent(100.0 * static_cast<double>(passive) / kRequests, 1));
  EXPECT_EQ(row[6], "50%");
  EXPECT_EQ(row[7], std::to_string(passive));
  EXPECT_EQ(row[8], "100.00%");
  EXPECT_FALSE(std::getline(lines, line)) << line;
}

TEST_F(StatsE2E, AnUnknownRouteIsRefusedAndAnOtherWindowIsAUsageError) {
  const CommandResult unknown = ctl({"stats", "nope"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_EQ(unknown.output, "proxyctl: refused: no route named nope\n");
  const CommandResult window = ctl({"stats", "--window", "2m"});
  EXPECT_EQ(window.exit_code, 2) << window.output;
  EXPECT_NE(window.output.find("--window needs 10s, 1m or 5m, got \"2m\""), std::string::npos)
      << window.output;
  // Nothing counted yet: every row says so.
  const CommandResult empty = ctl({"stats", "api"});
  EXPECT_EQ(empty.exit_code, 0) << empty.output;
  EXPECT_NE(empty.output.find("api    live     blue   0         0.0    -      50%"),
            std::string::npos)
      << empty.output;
}

// proxyd's own 5xx replies count as errors too: here 502, the passive pool's server is gone.
TEST_F(StatsE2E, ProxydsOwnFailuresAreErrors) {
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(fetch(port_, "/dead/x").status, 502u);
  std::map<std::string, json::object> stats;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    stats = stats_json("1m", "dead");
  } while (requests(stats, "passive") != kRequests && std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(requests(stats, "passive"), kRequests);
  EXPECT_EQ(stats["passive"].at("pool"), "gone");
  EXPECT_EQ(stats["passive"].at("errors"), kRequests);
  EXPECT_EQ(stats["passive"].at("error_ratio").as_double(), 1.0);
  EXPECT_EQ(requests(stats, "live"), 0);
  EXPECT_TRUE(stats["live"].at("error_ratio").is_null());
  EXPECT_TRUE(stats["live"].at("p50_ms").is_null());
}

}  // namespace
}  // namespace proxyd::test
