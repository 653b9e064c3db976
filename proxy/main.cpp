// proxyd: args, load config (fatal on error), start the Proxy, then wait for signals:
// SIGHUP reloads, SIGTERM/SIGINT drain and exit 0.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <memory>
#include <pthread.h>

#include "config.hpp"
#include "routing_snapshot.hpp"
#include "server.hpp"

namespace {

void print_errors(const std::vector<proxyd::ConfigError>& errors) {
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.text().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"proxyd: a reverse proxy for blue/green deploys and canaries"};
  std::string config_path = "/etc/proxyd/proxyd.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check", check_only, "validate the configuration and exit");
  app.set_version_flag("--version", "proxyd " PROXYD_VERSION);
  CLI11_PARSE(app, argc, argv);

  proxyd::ConfigResult loaded = proxyd::load_config_file(config_path);
  if (!loaded.errors.empty()) {
    print_errors(loaded.errors);
    return 1;
  }
  auto config = std::make_shared<const proxyd::Config>(std::move(*loaded.config));
  proxyd::SnapshotResult built = proxyd::build_snapshot(config, 1, nullptr);
  if (!built.errors.empty()) {
    print_errors(built.errors);
    return 1;
  }
  if (check_only) {
    std::fprintf(stderr, "%s: ok\n", config_path.c_str());
    return 0;
  }

  // Signals are taken by this thread with sigwait; every worker thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  proxyd::Proxy proxy(config, std::move(built.snapshot));
  for (const auto& warning : proxy.restore())
    std::fprintf(stderr, "proxyd: warning: %s\n", warning.c_str());
  std::string error;
  if (!proxy.start(error)) {
    std::fprintf(stderr, "proxyd: %s\n", error.c_str());
    return 1;
  }
  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGHUP) {
      proxyd::ChangeResult result = proxy.reload(proxyd::Caller{});
      if (result.ok)
        std::fprintf(stderr, "proxyd: reload ok generation=%llu\n",
                     static_cast<unsigned long long>(result.generation));
      else
        std::fprintf(stderr, "proxyd: reload failed: %s\n", result.error.c_str());
      for (const auto& warning : proxy.take_warnings())
        std::fprintf(stderr, "proxyd: warning: %s\n", warning.c_str());
      continue;
    }
    std::fprintf(stderr, "proxyd: draining\n");
    bool clean = proxy.drain();
    std::fprintf(stderr, "proxyd: stopped%s\n", clean ? "" : " (drain timeout: requests cut)");
    return 0;
  }
}
