// proxyd(8): the options of proxyd's command line, its signals, files and exit status. The option
// list is read from the CLI11 app main() declares, so `proxyd --help` and the manual agree.
#include "man_page.hpp"

#include <CLI/CLI.hpp>

#include "config.hpp"
#include "proxy/roff.hpp"

namespace proxyd {

namespace {

// "-c,--config" as the manual writes it: "-c, --config FILE".
std::string option_tag(const CLI::Option& option) {
  std::string names = option.get_name(false, true);
  for (std::size_t at = names.find(','); at != std::string::npos; at = names.find(',', at + 2)) {
    names.replace(at, 1, ", ");
  }
  if (!option.get_type_name().empty()) names += " " + option.get_type_name();
  return names;
}

}  // namespace

std::string man_page(const CLI::App& app) {
  // Options in a hidden group (group "") have no name: the manual leaves them out, as --help does.
  const auto options = app.get_options([](const CLI::Option* o) { return !o->get_group().empty(); });
  std::string out =
      roff::header("proxyd", PROXYD_VERSION, "reverse proxy for blue/green deploys and canaries");

  out += roff::section("SYNOPSIS") + ".B proxyd\n";
  for (const CLI::Option* option : options) {
    std::string usage = option->get_name();  // the long name if there is one
    if (!option->get_type_name().empty()) usage += " " + option->get_type_name();
    out += "[" + roff::escape(usage) + "]\n";
  }

  out += roff::section("DESCRIPTION");
  out += roff::escape(
      "proxyd is an asynchronous HTTP/1.1 reverse proxy that owns blue/green deploys and\n"
      "canaries: named pools of servers, routes (traffic classes) with a live and a passive\n"
      "slot each, a weight that sends a share of a route's requests to its passive pool,\n"
      "sticky cohorts, health checks, and Prometheus metrics per route, slot and pool.\n"
      "Runtime changes are made with proxyctl(8) over the control socket; they are atomic,\n"
      "kept in the state file across restarts, and recorded in the audit log.\n");
  out += roff::paragraph(
      "The configuration is one YAML file; every key is described in\n"
      "/usr/share/doc/proxyd/configuration.md. Errors are reported as FILE:LINE: key: message.\n"
      "Under systemd (Type=notify) proxyd reports READY=1 once its listeners are open,\n"
      "RELOADING=1 and READY=1 around a reload, and STOPPING=1 when it drains.");

  out += roff::section("OPTIONS");
  for (const CLI::Option* option : options) {
    std::string text = option->get_description();
    if (!option->get_default_str().empty()) text += " (default: " + option->get_default_str() + ")";
    out += roff::tagged(option_tag(*option), text + ".");
  }

  out += roff::section("SIGNALS");
  for (const SignalRow& signal : kSignals) out += roff::tagged(signal.name, signal.effect);

  out += roff::section("FILES");
  const AdminConfig defaults;
  out += roff::tagged("/etc/proxyd/proxyd.yaml", "The configuration file (-c).");
  out += roff::tagged(defaults.control_socket,
                      "The control socket proxyctl(8) talks to (admin.control_socket).");
  out += roff::tagged(defaults.state_file,
                      "Runtime changes, kept across restarts (admin.state_file); the audit log "
                      "is written beside it (admin.audit_log).");
  out += roff::tagged("/var/log/proxyd/access.log",
                      "The access log of the packaged configuration (admin.access_log), rotated "
                      "by /etc/logrotate.d/proxyd with SIGUSR1.");

  out += roff::section("ENVIRONMENT");
  out += roff::tagged("NOTIFY_SOCKET",
                      "Set by systemd for Type=notify services: proxyd sends its readiness, "
                      "reload and stop notifications there (sd_notify(3)).");

  out += roff::section("DIAGNOSTICS");
  out += roff::escape(
      "Messages go to standard error, one line each, starting with \"proxyd: \" (configuration\n"
      "errors: FILE:LINE: key: message). admin.log_level (debug, info, warning or error; info by\n"
      "default) drops the lines below it. When standard error is the journal's stream\n"
      "(JOURNAL_STREAM), each line starts with its syslog priority, as sd-daemon(3) describes,\n"
      "so journalctl -p warning shows warnings and errors only. The access log is separate\n"
      "(admin.access_log).\n");

  out += roff::section("EXIT STATUS");
  out += roff::escape(
      "0 after a drain (SIGTERM, SIGINT) or a successful --check; 1 when the configuration\n"
      "has errors or proxyd cannot start (a listener or the control socket cannot be opened).\n");

  out += roff::section("SEE ALSO");
  out += ".BR proxyctl (8),\n.BR systemctl (1),\n.BR journalctl (1),\n" +
         roff::escape(
             "/usr/share/doc/proxyd/operations.md (the service, logs and upgrades)\n");
  return out;
}

}  // namespace proxyd
