// Counting definitions of recv, recvfrom, recvmsg, epoll_ctl and ioctl (syscall_counts.hpp).
#include "syscall_counts.hpp"

#include <dlfcn.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdarg>

namespace {

std::atomic<int> watched{-1};
std::atomic<int> socket_reads{0};
std::atomic<int> epoll_ctls{0};
std::atomic<int> ioctls{0};

// The definition this executable's hides: the C library's, or a sanitizer's in front of it.
template <class Function>
Function next(const char* name) {
  return reinterpret_cast<Function>(dlsym(RTLD_NEXT, name));
}

void count(std::atomic<int>& counter, int fd) {
  if (fd >= 0 && fd == watched.load(std::memory_order_relaxed))
    counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

extern "C" {

ssize_t recv(int fd, void* buffer, size_t size, int flags) {
  static const auto real = next<ssize_t (*)(int, void*, size_t, int)>("recv");
  count(socket_reads, fd);
  return real(fd, buffer, size, flags);
}

ssize_t recvfrom(int fd, void* buffer, size_t size, int flags, sockaddr* from,
                 socklen_t* from_size) {
  static const auto real =
      next<ssize_t (*)(int, void*, size_t, int, sockaddr*, socklen_t*)>("recvfrom");
  count(socket_reads, fd);
  return real(fd, buffer, size, flags, from, from_size);
}

ssize_t recvmsg(int fd, msghdr* message, int flags) {
  static const auto real = next<ssize_t (*)(int, msghdr*, int)>("recvmsg");
  count(socket_reads, fd);
  return real(fd, message, flags);
}

int epoll_ctl(int epoll_fd, int op, int fd, epoll_event* event) noexcept {
  static const auto real = next<int (*)(int, int, int, epoll_event*)>("epoll_ctl");
  count(epoll_ctls, fd);
  return real(epoll_fd, op, fd, event);
}

// Every ioctl request this executable makes (Asio's FIONBIO and FIONREAD, the tests' own) passes
// exactly one pointer argument, which is forwarded as one.
int ioctl(int fd, unsigned long request, ...) noexcept {
  static const auto real = next<int (*)(int, unsigned long, ...)>("ioctl");
  va_list args;
  va_start(args, request);
  void* argument = va_arg(args, void*);
  va_end(args);
  count(ioctls, fd);
  return real(fd, request, argument);
}

}  // extern "C"

namespace proxyd::test {

SyscallWatch::SyscallWatch(int fd) {
  socket_reads.store(0);
  epoll_ctls.store(0);
  ioctls.store(0);
  watched.store(fd);
}

SyscallWatch::~SyscallWatch() { watched.store(-1); }

SyscallCounts SyscallWatch::counts() const {
  return {socket_reads.load(), epoll_ctls.load(), ioctls.load()};
}

}  // namespace proxyd::test
