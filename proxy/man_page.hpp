// proxyd(8), generated from what proxyd itself declares: its command-line options (the CLI11 app
// main() builds), the signals it waits for (kSignals, which main() blocks and sigwaits on) and the
// admin paths' defaults (AdminConfig). `proxyd --man` prints it; the build gzips it into proxyd.8.gz.
#pragma once

#include <csignal>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace proxyd {

struct SignalRow {
  int number;
  std::string_view name;
  std::string_view effect;  // one sentence or two for the manual
};

// The signals proxyd handles, one row each: main() waits for exactly these.
inline constexpr SignalRow kSignals[] = {
    {SIGHUP, "SIGHUP",
     "Re-read the configuration file, as proxyctl reload does, without dropping a connection. A "
     "file with errors is refused and the running configuration stays. Runtime values (set with "
     "proxyctl) keep winning over the file until proxyctl reset."},
    {SIGTERM, "SIGTERM",
     "Drain: stop accepting connections, let in-flight requests finish within timeouts.drain, "
     "then exit 0."},
    {SIGINT, "SIGINT", "As SIGTERM."},
    {SIGUSR1, "SIGUSR1",
     "Open the access log file again (after logrotate renamed it) and close the old one once the "
     "new one is open; if it cannot be opened, keep writing the old one."},
};

// The page in man(7) markup, from `app`'s visible options.
std::string man_page(const CLI::App& app);

}  // namespace proxyd
