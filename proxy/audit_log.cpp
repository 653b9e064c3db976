// Audit log append (O_APPEND + fdatasync) and tail.
#include "audit_log.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace proxyd {

std::optional<std::string> AuditLog::append(const std::string& line) const {
  std::error_code ignored;
  std::filesystem::path p(path_);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ignored);
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return "cannot open audit log " + path_ + ": " + std::strerror(errno);
  std::string record = line + "\n";
  // One write() with O_APPEND keeps a line whole even if someone else appends too.
  ssize_t n = ::write(fd, record.data(), record.size());
  int sync = n == static_cast<ssize_t>(record.size()) ? ::fdatasync(fd) : -1;
  std::string error = sync != 0 ? "cannot write audit log " + path_ + ": " + std::strerror(errno)
                                : "";
  ::close(fd);
  if (!error.empty()) return error;
  return std::nullopt;
}

std::vector<std::string> AuditLog::tail(std::size_t max_entries) const {
  std::vector<std::string> lines;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return lines;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff window = 1024 * 1024;
  const std::streamoff start = size > window ? size - window : 0;
  in.seekg(start);
  std::string line;
  if (start > 0) std::getline(in, line);  // a partial first line
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  if (lines.size() > max_entries)
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(max_entries));
  return lines;
}

}  // namespace proxyd
