// systemd's notify protocol (sd_notify(3), the documented datagram protocol, without libsystemd):
// with `Type=notify` systemd passes NOTIFY_SOCKET, and proxyd tells it READY=1 once listening,
// RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a reload, STOPPING=1 when it drains, and a
// one-line STATUS= each time. Without NOTIFY_SOCKET every call does nothing.
// Owner: main. Thread: main's only.
#pragma once

#include <string>
#include <string_view>

namespace proxyd {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET (a path, or "@name" for the abstract namespace) once.
  SystemdNotifier();
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // `main_pid`: this process takes over the unit's main process (a takeover, takeover.hpp):
  // MAINPID= goes with READY=1 (the unit needs NotifyAccess=all for systemd to accept it).
  void ready(std::string_view status, bool main_pid = false);
  void reloading();
  void stopping(std::string_view status);

  // Sends one datagram of newline-separated assignments; false if it could not.
  bool send(std::string_view state);

 private:
  int fd_ = -1;
  std::string address_;  // the sockaddr_un path bytes ("\0name" for an abstract socket)
};

}  // namespace proxyd
