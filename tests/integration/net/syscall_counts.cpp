// Counting definitions of recv, recvfrom, recvmsg and epoll_ctl (syscall_counts.hpp).
#include "syscall_counts.hpp"

#include <dlfcn.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>

namespace {

std::atomic<int> watched{-1};
std::atomic<int> socket_reads{0};
std::atomic<int> epoll_ctls{0};

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

}  // extern "C"

namespace proxyd::test {

SyscallWatch::SyscallWatch(int fd) {
  socket_reads.store(0);
  epoll_ctls.store(0);
  watched.store(fd);
}

SyscallWatch::~SyscallWatch() { watched.store(-1); }

SyscallCounts SyscallWatch::counts() const { return {socket_reads.load(), epoll_ctls.load()}; }

}  // namespace proxyd::test
