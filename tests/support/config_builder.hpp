// Builds the proxyd config an integration test starts with, so tests state only what they are
// about instead of pasting the same YAML: one listener on 127.0.0.1:0, the admin files under the
// test's temporary directory (@DIR@, see ProxydProcess), and the pools, routes and limits given.
//   auto yaml = ConfigBuilder().pool("blue", {blue.address()}).route("web", "/", "blue").yaml();
// Header-only and Beast-free.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace proxyd::test {

class ConfigBuilder {
 public:
  ConfigBuilder& workers(int n) {
    workers_ = std::to_string(n);
    return *this;
  }
  // A listener on 127.0.0.1:0; `extra` is more of its keys in flow style ("slot: passive").
  ConfigBuilder& listener(std::string name, std::string extra = "") {
    listeners_.emplace_back(std::move(name), std::move(extra));
    return *this;
  }
  ConfigBuilder& pool(std::string name, const std::vector<std::string>& servers,
                      std::string extra = "") {
    std::string list;
    for (const std::string& server : servers) list += (list.empty() ? "" : ", ") + server;
    pools_ += "  " + name + ":\n    servers: [" + list + "]\n";
    if (!extra.empty()) pools_ += "    " + extra + "\n";
    return *this;
  }
  // A route matching `path_prefix`; passive defaults to the live pool. `extra`: more keys, one
  // per line, as they go under the route ("weight: 5").
  ConfigBuilder& route(std::string name, std::string path_prefix, std::string live,
                       std::string passive = "", std::vector<std::string> extra = {}) {
    return route_matching(std::move(name), "path_prefix: " + path_prefix, std::move(live),
                          std::move(passive), std::move(extra));
  }
  // The same with any match, in flow style ("host: api.example.test").
  ConfigBuilder& route_matching(std::string name, std::string match, std::string live,
                                std::string passive = "", std::vector<std::string> extra = {}) {
    routes_ += "  - name: " + name + "\n    match: {" + match + "}\n    live: " + live +
               "\n    passive: " + (passive.empty() ? live : passive) + "\n";
    for (const std::string& line : extra) routes_ += "    " + line + "\n";
    return *this;
  }
  // Flow-style maps: timeouts("client_header: 300ms, upstream_connect: 200ms").
  ConfigBuilder& timeouts(std::string flow) {
    timeouts_ = std::move(flow);
    return *this;
  }
  ConfigBuilder& limits(std::string flow) {
    limits_ = std::move(flow);
    return *this;
  }
  // The admin listener on 127.0.0.1:0 (its port: ProxydProcess::port("admin.metrics")).
  ConfigBuilder& metrics() {
    metrics_ = true;
    return *this;
  }
  // "stdout" (the default: tests read it), "off", or a path.
  ConfigBuilder& access_log(std::string where) {
    access_log_ = std::move(where);
    return *this;
  }

  // admin.log_level: debug, info, warning or error (unset: proxyd's default, info).
  ConfigBuilder& log_level(std::string level) {
    log_level_ = std::move(level);
    return *this;
  }

  std::string yaml() const {
    std::string out = "workers: " + workers_ + "\nlisteners:\n";
    auto listeners = listeners_;
    if (listeners.empty()) listeners.emplace_back("public", "");
    for (const auto& [name, extra] : listeners) {
      out += "  - {name: " + name + ", address: 127.0.0.1:0" + (extra.empty() ? "" : ", " + extra) +
             "}\n";
    }
    out += "admin:\n  control_socket: \"@DIR@/control.sock\"\n  state_file: \"@DIR@/state.json\"\n"
           "  access_log: \"" + access_log_ + "\"\n";
    if (metrics_) out += "  metrics: 127.0.0.1:0\n";
    if (!log_level_.empty()) out += "  log_level: " + log_level_ + "\n";
    out += "pools:\n" + pools_ + "routes:\n" + routes_;
    out += "timeouts: {" + (timeouts_.empty() ? "drain: 2s" : timeouts_) + "}\n";
    if (!limits_.empty()) out += "limits: {" + limits_ + "}\n";
    return out;
  }

 private:
  std::string workers_ = "1";
  std::vector<std::pair<std::string, std::string>> listeners_;
  std::string pools_;
  std::string routes_;
  std::string timeouts_;
  std::string limits_;
  std::string access_log_ = "stdout";
  std::string log_level_;
  bool metrics_ = false;
};

}  // namespace proxyd::test
