// proxyctl(8), generated from the command table and `proxyctl help` (the same words, so the
// manual never lists a command or option the binary does not have). Pure: no I/O.
#pragma once

#include <string>

namespace proxyd::control {

// The page in man(7) markup: NAME, SYNOPSIS, DESCRIPTION, COMMANDS (every row of command_table()
// with its `help COMMAND` text), OPTIONS and ENVIRONMENT (the lists of `proxyctl help`), EXIT
// STATUS, FILES, SEE ALSO. `proxyctl --man` prints it; the build gzips it into proxyctl.8.gz.
std::string man_page();

}  // namespace proxyd::control
