// A datagram socket standing in for systemd's notify socket (sd_notify(3)): tests set
// NOTIFY_SOCKET to its path before starting proxyd and read what proxyd sends.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>

#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {

// A datagram socket standing in for systemd's notify socket. Owner: the test.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = make_temp_dir("proxyd-notify-") + "/notify.sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~NotifySocket() {
    close(fd_);
    std::error_code ignored;
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path(), ignored);
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }
  // The next datagram, or "" when none comes within the timeout.
  std::string next(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buffer[4096];
    const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

}  // namespace proxyd::test
