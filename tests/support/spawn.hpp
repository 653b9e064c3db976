// Starting a server process for a test (Prometheus, etcd): its stdout and stderr appended to a log
// file (no pipe to drain, and the file is there to print when a test fails), no standard input,
// killed with the test (PR_SET_PDEATHSIG tied to the calling thread: call it on the test thread).
#pragma once

#include <string>
#include <vector>

namespace proxyd::test {

// Forks and execs argv[0] with the rest as arguments. Returns the pid, or -1 with `error` set.
int spawn_logged(const std::vector<std::string>& args, const std::string& log_path,
                 std::string& error);

}  // namespace proxyd::test
