// Reads one access-log line (logfmt: a timestamp, then key=value pairs) into a map, so tests
// assert on fields by name rather than on substrings.
#pragma once

#include <map>
#include <sstream>
#include <string>

namespace proxyd::test {

inline std::map<std::string, std::string> log_fields(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  std::string word;
  in >> word;  // the timestamp
  out["time"] = word;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

}  // namespace proxyd::test
