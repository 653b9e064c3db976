// proxyd: args, load config (fatal on error), start the Proxy and the control socket, then wait
// for signals: SIGHUP reloads, SIGUSR1 reopens the access log, SIGUSR2 upgrades (takeover),
// SIGCHLD reaps an upgrade's process that failed, SIGTERM/SIGINT drain and exit 0.
#include <CLI/CLI.hpp>

#include <grp.h>
#include <pthread.h>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/control_server.hpp"

#include "allocator.hpp"
#include "build_revision.hpp"
#include "config.hpp"
#include "man_page.hpp"
#include "routing_snapshot.hpp"
#include "server.hpp"
#include "takeover.hpp"
#include "tls.hpp"

namespace {

// Raised by the takeover socket's thread when a new proxyd asks for the listeners (takeover.hpp);
// from anyone else, it asks for an upgrade: proxyd starts `proxyd --takeover` itself.
constexpr int kTakeoverSignal = SIGUSR2;
// How long a proxyd that told a late new one it serves on waits for it to close what it opened
// (control socket, takeover socket, metrics listener) before opening them again.
constexpr std::chrono::milliseconds kLetGoWait{10'000};

// The file a bare command name runs, looked up in PATH now as a shell does (an empty entry is the
// current directory); "" when no directory of PATH has it.
std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  for (;;) {
    const std::size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    const std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + name;
    struct stat file {};
    if (::stat(candidate.c_str(), &file) == 0 && S_ISREG(file.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (colon == std::string_view::npos) return "";
    dirs.remove_prefix(colon + 1);
  }
}

// Starts `BINARY -c CONFIG --takeover` with proxyd's environment and output (NOTIFY_SOCKET
// included, so under systemd the new process becomes the unit's main process). A bare name
// (`proxyd`, started from a shell) is looked up in PATH now, as the shell did: the binary
// installed there now, not the running one, which is started only if PATH has none.
void spawn_takeover(const std::string& binary, const std::string& config_path) {
  std::string program = binary;
  if (binary.find('/') == std::string::npos) {
    program = find_in_path(binary);
    if (program.empty()) {
      proxyd::log_warning("upgrade: no " + binary + " in PATH; starting the running binary");
      program = "/proc/self/exe";
    }
  }
  std::vector<std::string> words{program, "-c", config_path, "--takeover"};
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  // Only stdin, stdout and stderr: a client connection the child held a copy of would stay open
  // after this proxyd closes it, and the client would wait for an answer that never comes. The
  // listening sockets reach the child through the takeover socket.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, program.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) {
    proxyd::log::error("upgrade: cannot start " + program + ": " + std::strerror(rc));
    return;
  }
  proxyd::log::info("upgrade: started " + program + " --takeover, pid " + std::to_string(pid));
}

void print_errors(const std::vector<proxyd::ConfigError>& errors) {
  for (const auto& e : errors) proxyd::log::write(proxyd::LogLevel::error, e.text());
}

// The control socket's options from admin.*; a group that does not exist is an error.
bool control_options(const proxyd::AdminConfig& admin, proxyd::control::ControlServerOptions& out,
                     std::string& error) {
  out.path = admin.control_socket;
  out.mode = static_cast<mode_t>(admin.control_mode);
  if (!admin.control_group.empty()) {
    const group* g = getgrnam(admin.control_group.c_str());
    if (g == nullptr) {
      error = "admin.control_group: no group named " + admin.control_group;
      return false;
    }
    out.group = g->gr_gid;
    // Giving the socket a group means that group may use it (the file mode lets it connect;
    // the peer check must agree), as with docker.sock.
    out.allowed_gids.push_back(g->gr_gid);
  }
  for (auto uid : admin.control_allow_uids) out.allowed_uids.push_back(static_cast<uid_t>(uid));
  for (auto gid : admin.control_allow_gids) out.allowed_gids.push_back(static_cast<gid_t>(gid));
  for (auto uid : admin.control_read_uids) out.read_uids.push_back(static_cast<uid_t>(uid));
  for (auto gid : admin.control_read_gids) out.read_gids.push_back(static_cast<gid_t>(gid));
  return true;
}

// The soft RLIMIT_NOFILE up to the hard one. The usual soft limit, 1024, is there for programs
// that use select(), which proxyd does not: systemd advises such services to raise it themselves
// (Go's runtime does the same). limits.max_connections' default follows from it.
void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
    proxyd::log_warning(std::string("cannot raise the open files limit: ") + std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  proxyd::allocator::configure();
  // The path or command name this proxyd was started by: an upgrade starts what is there now.
  // Without one (an empty argv[0]) only the running binary can be named.
  const std::string binary =
      argc > 0 && argv[0] != nullptr && *argv[0] != '\0' ? argv[0] : "/proc/self/exe";
  CLI::App app{"proxyd: a reverse proxy for blue/green deploys and canaries"};
  std::string config_path = "/etc/proxyd/proxyd.yaml";
  bool check_only = false;
  bool man = false;
  app.add_option("-c,--config", config_path, "configuration file")
      ->capture_default_str()
      ->type_name("FILE");
  app.add_flag("--check", check_only, "validate the configuration and exit");
  bool takeover = false;
  // The newlines keep --help within 80 columns (CLI11 indents the lines after one; it does not
  // wrap); the manual page joins them.
  app.add_flag("--takeover", takeover,
               "take the listening sockets over from the proxyd\n"
               "running with this config (an upgrade without\n"
               "dropping a connection); it drains and exits");
  // "proxyd 0.1.0 (git 1a3b080)"; without the commit when built outside a git checkout.
  std::string version = "proxyd " PROXYD_VERSION;
  if (*proxyd::kBuildRevision != '\0')
    version += std::string(" (git ") + proxyd::kBuildRevision + ")";
  app.set_version_flag("--version", version);
  // Hidden (group ""): the build runs it to write proxyd.8 (proxy/man_page.hpp).
  app.add_flag("--man", man)->group("");
  CLI11_PARSE(app, argc, argv);
  if (man) {
    std::fputs(proxyd::man_page(app).c_str(), stdout);
    return 0;
  }

  proxyd::ConfigResult loaded = proxyd::load_config_file(config_path);
  if (!loaded.errors.empty()) {
    print_errors(loaded.errors);
    return 1;
  }
  // TLS files are read and checked by --check too: a certificate that would not load is found
  // before a deploy, not at the restart.
  proxyd::TlsBuild tls = proxyd::build_tls(*loaded.config);
  if (!tls.errors.empty()) {
    print_errors(tls.errors);
    return 1;
  }
  // --check validates the file and the TLS files it names: no DNS, no state file
  // (docs/configuration.md).
  if (check_only) {
    for (const auto& w : loaded.warnings) std::fprintf(stderr, "%s\n", w.warning_text().c_str());
    std::fprintf(stderr, "%s: ok\n", config_path.c_str());
    return 0;
  }
  proxyd::log::set_level(loaded.config->admin.log_level);
  for (const auto& w : loaded.warnings) proxyd::log_warning(w.text());
  auto config = std::make_shared<const proxyd::Config>(std::move(*loaded.config));
  proxyd::SnapshotResult built =
      proxyd::build_snapshot(config, 1, nullptr, proxyd::resolve_system, std::move(tls.contexts));
  if (!built.errors.empty()) {
    print_errors(built.errors);
    return 1;
  }

  // Signals are taken by this thread with sigwait; every worker thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (const proxyd::SignalRow& row : proxyd::kSignals) sigaddset(&signals, row.number);
  sigaddset(&signals, kTakeoverSignal);
  sigaddset(&signals, SIGCHLD);  // an upgrade's process that failed: reaped, not left a zombie
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string error;
  const std::string takeover_path = config->admin.control_socket + std::string(proxyd::kTakeoverSuffix);
  // An upgrade: the running proxyd's sockets and runtime state (it changes nothing from the
  // moment it answers).
  proxyd::TakeoverGrant grant;
  if (takeover) {
    grant = proxyd::request_takeover(takeover_path, std::chrono::seconds(30), error);
    if (grant.empty()) {
      proxyd::log::error("takeover: " + error);
      return 1;
    }
  }
  raise_descriptor_limit();
  proxyd::Proxy proxy(config, std::move(built.snapshot));
  std::string state_error;
  const std::vector<std::string> warnings = proxy.restore(state_error, &grant);
  if (!state_error.empty()) {  // the old proxyd, never told ok, serves on with its state
    proxyd::log::error("takeover: " + state_error);
    return 1;
  }
  for (const auto& warning : warnings) proxyd::log_warning(warning);
  if (takeover) proxy.seed_health(grant.healthy());
  proxyd::control::ControlServerOptions control;
  if (!control_options(config->admin, control, error) || !proxy.start(error, &grant)) {
    proxyd::log::error(error);
    return 1;
  }
  auto control_server = std::make_unique<proxyd::control::ControlServer>(proxy, control);
  proxyd::TakeoverListener takeover_listener;
  // From here the workers serve: a failure drains what they accepted before exiting 1 (systemd
  // hears nothing from this one). In a takeover the old proxyd serves on: what it takes back
  // (control socket, takeover socket, metrics listener) is closed first, then the connection it
  // waits for.
  const auto fail_serving = [&](const std::string& what) {
    proxyd::log::error(what);
    if (takeover) {
      control_server->stop();
      takeover_listener.stop();
      proxy.hand_over_begin();
      grant.let_go();
    }
    proxy.drain(takeover);
    return 1;
  };
  if (!control_server->start(error)) return fail_serving("control socket: " + error);
  if (!takeover_listener.start(takeover_path, kTakeoverSignal, error))
    return fail_serving("takeover socket: " + error);
  if (takeover) {
    std::string why;
    switch (grant.done(why)) {
      case proxyd::TakeoverVerdict::draining:
        break;
      case proxyd::TakeoverVerdict::gone:
        proxyd::log_warning("takeover: the old proxyd went away first (" + why + ")");
        break;
      case proxyd::TakeoverVerdict::serving_on:
        return fail_serving(
            "takeover: the old proxyd gave up waiting for this one (its timeouts.takeover) and "
            "serves on; this one stops");
    }
    proxy.take_over_done();
  }
  proxyd::log::info("ready workers=" + std::to_string(proxy.worker_count()) +
                    " generation=" + std::to_string(proxy.status().generation) +
                    " allocator=" + std::string(proxyd::allocator::name()));
  // Type=notify: READY=1 (and MAINPID= after a takeover); reloads and the drain notify on their
  // own.
  proxy.notify_ready(takeover);
  bool handed_over = false;
  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGCHLD) {
      while (::waitpid(-1, nullptr, WNOHANG) > 0) {
      }
      continue;
    }
    if (signal == kTakeoverSignal) {
      const int connection = takeover_listener.take();
      if (connection < 0) {
        // SIGUSR2 from outside (`systemctl kill -s USR2 --kill-whom=main proxyd`): an upgrade.
        // The binary at the path (or PATH name) this one was started by (the upgraded one, after
        // a package upgrade) takes over; its request raises SIGUSR2 again, with a connection.
        spawn_takeover(binary, config_path);
        continue;
      }
      // Nothing may change from here: the new proxyd reads the state file next.
      control_server->stop();
      takeover_listener.stop();
      proxy.hand_over_begin();
      const proxyd::TakeoverOffer offer = proxy.takeover_offer();
      proxyd::OkWait outcome = proxyd::OkWait::failed;
      if (proxyd::send_offer(connection, offer, error)) {
        outcome = proxyd::await_ok(connection, std::chrono::steady_clock::now() + offer.ok_within,
                                   error);
      }
      if (outcome == proxyd::OkWait::late) {
        // Told so: the new proxyd closes what it opened, then the connection.
        error = "the new proxyd did not say it serves within " +
                proxyd::format_duration(offer.ok_within) + " (timeouts.takeover)";
        proxyd::log_warning("takeover: " + error + "; told it this one serves on");
        if (!proxyd::wait_let_go(connection, kLetGoWait))
          proxyd::log_warning("takeover: the new proxyd did not close its connection within " +
                              proxyd::format_duration(kLetGoWait));
      }
      ::close(connection);
      if (outcome == proxyd::OkWait::ok) {
        proxyd::log::info("handed the listeners over to a new proxyd");
        handed_over = true;
        break;
      }
      // The new proxyd failed: this one serves on as if nothing happened. Said once the
      // control and takeover sockets are back, so that whoever acts on the line (a retried
      // upgrade, proxyctl) finds them.
      const std::string why = error;
      proxy.hand_over_abort();
      control_server = std::make_unique<proxyd::control::ControlServer>(proxy, control);
      if (!control_server->start(error)) proxyd::log::error("control socket: " + error);
      if (!takeover_listener.start(takeover_path, kTakeoverSignal, error))
        proxyd::log::error("takeover socket: " + error);
      proxyd::log_warning("takeover failed, serving on: " + why);
      continue;
    }
    if (signal == SIGUSR1) {
      proxy.reopen_logs();
      continue;
    }
    if (signal == SIGHUP) {
      proxyd::ChangeResult result = proxy.reload(proxyd::Caller::signal(), std::nullopt);
      if (!result.ok) {
        proxyd::log::error("reload failed: " + result.error);
        continue;
      }
      // Runtime values win over the file until reset: say so, or an edit they mask would look
      // as if it had taken effect.
      std::string winning;
      if (const std::size_t n = result.overrides.size(); n > 0) {
        winning = "; " + std::to_string(n) +
                  (n == 1 ? " runtime value still wins" : " runtime values still win") +
                  " over the file (proxyctl diff lists them, proxyctl reset drops them)";
      }
      proxyd::log::info("reload ok generation=" + std::to_string(result.generation) + winning);
      continue;
    }
    break;
  }
  control_server->stop();
  takeover_listener.stop();
  const bool clean = proxy.drain(handed_over);
  proxyd::log::info(std::string("stopped") + (clean ? "" : " (drain timeout: requests cut)"));
  return 0;
}
