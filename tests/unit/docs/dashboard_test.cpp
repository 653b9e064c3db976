// The Grafana dashboard of docs/metrics.md: it parses, has the route template and the repeated
// route row, and every PromQL expression in it names only metrics of the contract (a renamed or
// misspelled metric would leave a panel empty without any error in Grafana). The metric names are
// found by a small PromQL scanner: strings, label matchers, ranges, grouping label lists,
// functions, keywords and Grafana variables are skipped; what is left are metric names.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace json = boost::json;

// The metric contract of docs/metrics.md, plus Prometheus's own `up`.
const std::set<std::string, std::less<>> kContract = {
    "proxyd_requests_total",
    "proxyd_request_duration_seconds_bucket",
    "proxyd_request_duration_seconds_sum",
    "proxyd_request_duration_seconds_count",
    "proxyd_upstream_failures_total",
    "proxyd_local_replies_total",
    "proxyd_route_weight_ratio",
    "proxyd_route_slot_info",
    "proxyd_server_healthy",
    "proxyd_in_flight_requests",
    "proxyd_connections_active",
    "proxyd_state_generation",
    "proxyd_config_reloads_total",
    "proxyd_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "up",
};

// Aggregation operators (followed by `by (...)` or `(`), binary keywords, modifiers and literals:
// identifiers that are never metric names.
const std::set<std::string, std::less<>> kNotMetrics = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"};

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':';
}
bool ident_char(char c) {
  return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0;
}

// Index just past the bracket that closes the one at `open` (strings inside are skipped).
std::size_t skip_bracketed(std::string_view s, std::size_t open, char close) {
  std::size_t i = open + 1;
  while (i < s.size() && s[i] != close) {
    if (s[i] == '"' || s[i] == '\'' || s[i] == '`') {
      const char quote = s[i++];
      while (i < s.size() && s[i] != quote) i += s[i] == '\\' ? 2 : 1;
    }
    ++i;
  }
  return i + 1;
}

// The metric names an expression selects. Grafana's `label_values(METRIC, LABEL)` counts as
// METRIC.
std::set<std::string> metric_names(std::string_view expr) {
  std::set<std::string> names;
  std::size_t i = 0;
  while (i < expr.size()) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`' || c == '{' || c == '[') {
      i = c == '{' ? skip_bracketed(expr, i, '}')
          : c == '[' ? skip_bracketed(expr, i, ']')
                     : skip_bracketed(expr, i, c);
    } else if (c == '$') {  // a Grafana variable: $name or ${name}
      ++i;
      if (i < expr.size() && expr[i] == '{') {
        i = skip_bracketed(expr, i, '}');
      } else {
        while (i < expr.size() && ident_char(expr[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '.') {
      while (i < expr.size() && (ident_char(expr[i]) || expr[i] == '.')) ++i;  // 0.99, 1e3, 5m
    } else if (ident_start(c)) {
      const std::size_t start = i;
      while (i < expr.size() && ident_char(expr[i])) ++i;
      const std::string word(expr.substr(start, i - start));
      std::size_t next = i;
      while (next < expr.size() && std::isspace(static_cast<unsigned char>(expr[next])) != 0) {
        ++next;
      }
      const bool call = next < expr.size() && expr[next] == '(';
      if (word == "by" || word == "without" || word == "on" || word == "ignoring" ||
          word == "group_left" || word == "group_right") {
        if (call) i = skip_bracketed(expr, next, ')');  // a list of label names
      } else if (word == "label_values" && call) {
        // label_values(METRIC, LABEL): drop ", LABEL" by scanning only up to the last comma.
        const std::size_t end = skip_bracketed(expr, next, ')');
        const auto inner = expr.substr(next + 1, end - next - 2);
        const auto comma = inner.rfind(',');
        for (auto& n : metric_names(inner.substr(0, comma))) names.insert(n);
        i = end;
      } else if (!call && !kNotMetrics.contains(word)) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json::value load_dashboard() {
  const auto text = read_file(PROXYD_SOURCE_DIR "/docs/grafana/proxyd-dashboard.json");
  EXPECT_FALSE(text.empty()) << "docs/grafana/proxyd-dashboard.json is missing or empty";
  return json::parse(text);
}

// Every PromQL expression: panel targets' `expr` and query variables' `query`.
void collect_expressions(const json::value& v, std::vector<std::string>& out) {
  if (const auto* o = v.if_object()) {
    for (const auto& [key, child] : *o) {
      if (key == "expr" && child.is_string()) {
        out.emplace_back(child.as_string());
      } else {
        collect_expressions(child, out);
      }
    }
  } else if (const auto* a = v.if_array()) {
    for (const auto& child : *a) collect_expressions(child, out);
  }
}

const json::object* find_variable(const json::object& dashboard, std::string_view name) {
  for (const auto& var : dashboard.at("templating").at("list").as_array()) {
    if (var.as_object().at("name").as_string() == name) return &var.as_object();
  }
  return nullptr;
}

std::string variable_query(const json::object& var) {
  const auto& q = var.at("query");
  return std::string(q.is_string() ? q.as_string() : q.at("query").as_string());
}

TEST(PromqlScanner, FindsMetricNamesOnly) {
  EXPECT_EQ(metric_names(R"(sum by (route, slot) (rate(proxyd_requests_total{code=~"5..",)"
                         R"(route="$route"}[$__rate_interval])))"),
            (std::set<std::string>{"proxyd_requests_total"}));
  EXPECT_EQ(metric_names("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1e3"),
            (std::set<std::string>{"a_bucket"}));
  EXPECT_EQ(metric_names("x and on (instance, pool) y{route=\"api\"} or group_left (slot) z"),
            (std::set<std::string>{"x", "y", "z"}));
  EXPECT_EQ(metric_names("label_values(proxyd_build_info, instance)"),
            (std::set<std::string>{"proxyd_build_info"}));
  EXPECT_EQ(metric_names("max(m{a='}'}) offset 5m"), (std::set<std::string>{"m"}));
}

TEST(Dashboard, ParsesWithItsTemplatesAndTheRouteRow) {
  const auto dashboard = load_dashboard();
  const auto& d = dashboard.as_object();
  EXPECT_GE(d.at("schemaVersion").to_number<int>(), 36);

  const auto* ds = find_variable(d, "datasource");
  ASSERT_NE(ds, nullptr) << "no datasource variable";
  EXPECT_EQ(ds->at("type").as_string(), "datasource");
  EXPECT_EQ(ds->at("query").as_string(), "prometheus");

  const auto* route = find_variable(d, "route");
  ASSERT_NE(route, nullptr) << "no route variable";
  EXPECT_EQ(variable_query(*route), "label_values(proxyd_requests_total, route)");

  // The panels after the repeated row, up to the next row, are the per-route ones.
  std::set<std::int64_t> ids;
  std::vector<const json::object*> route_panels;
  bool in_route_row = false;
  for (const auto& p : d.at("panels").as_array()) {
    const auto& panel = p.as_object();
    EXPECT_TRUE(ids.insert(panel.at("id").to_number<std::int64_t>()).second)
        << "duplicate panel id " << panel.at("id");
    if (panel.at("type").as_string() == "row") {
      const auto* repeat = panel.if_contains("repeat");
      in_route_row = repeat != nullptr && repeat->as_string() == "route";
      continue;
    }
    // Every panel and target queries the data source of the variable, never a fixed one.
    EXPECT_EQ(panel.at("datasource").at("uid").as_string(), "${datasource}")
        << panel.at("title");
    for (const auto& t : panel.at("targets").as_array()) {
      EXPECT_EQ(t.at("datasource").at("uid").as_string(), "${datasource}") << panel.at("title");
    }
    if (in_route_row) route_panels.push_back(&panel);
  }
  ASSERT_GE(route_panels.size(), 4U) << "the repeated route row needs split, errors, latency, "
                                        "health";
  std::string route_exprs;
  for (const auto* panel : route_panels) {
    std::vector<std::string> exprs;
    collect_expressions(json::value(*panel), exprs);
    for (const auto& e : exprs) {
      EXPECT_NE(e.find("route=\"$route\""), std::string::npos)
          << panel->at("title") << ": not filtered by the row's route: " << e;
      route_exprs += e + "\n";
    }
  }
  // What the row must show: split against weight, 5xx by slot, p50/p99 by slot, health.
  for (const char* needle : {"proxyd_route_weight_ratio", "slot=\"passive\"", "code=~\"5..\"",
                             "histogram_quantile(0.5,", "histogram_quantile(0.99,",
                             "by (slot, le)", "proxyd_server_healthy"}) {
    EXPECT_NE(route_exprs.find(needle), std::string::npos) << "the route row lacks " << needle;
  }
}

TEST(Dashboard, NamesOnlyMetricsOfTheContract) {
  const auto dashboard = load_dashboard();
  std::vector<std::string> exprs;
  collect_expressions(dashboard, exprs);
  for (const auto& var : dashboard.at("templating").at("list").as_array()) {
    if (var.at("type").as_string() == "query") exprs.push_back(variable_query(var.as_object()));
  }
  ASSERT_GE(exprs.size(), 10U);
  for (const auto& e : exprs) {
    const auto names = metric_names(e);
    EXPECT_FALSE(names.empty()) << "no metric found in: " << e;
    for (const auto& n : names) EXPECT_TRUE(kContract.contains(n)) << n << " in: " << e;
  }
}

TEST(MetricsDoc, DescribesEveryMetricOfTheContract) {
  const auto doc = read_file(PROXYD_SOURCE_DIR "/docs/metrics.md");
  ASSERT_FALSE(doc.empty());
  std::set<std::string> documented = {"proxyd_request_duration_seconds"};
  for (const auto& name : kContract) {
    if (name != "up" && !name.starts_with("proxyd_request_duration_seconds_")) {
      documented.insert(name);
    }
  }
  for (const auto& name : documented) {
    EXPECT_NE(doc.find("`" + name + "`"), std::string::npos) << name;
  }
}

}  // namespace
