// The system calls a test counts on one descriptor: the reads of a socket (recv, recvfrom,
// recvmsg), epoll_ctl and ioctl. This test executable defines those functions itself
// (syscall_counts.cpp); the linker binds every call made by the executable's code, Asio's and
// proxyd's included, to them, and each counts a call on the watched descriptor and then calls
// the next definition (the C library's, or a sanitizer's interceptor).
#pragma once

namespace proxyd::test {

struct SyscallCounts {
  int socket_reads = 0;
  int epoll_ctls = 0;
  int ioctls = 0;
};

// Counts calls on `fd` while it lives; one at a time.
class SyscallWatch {
 public:
  explicit SyscallWatch(int fd);
  ~SyscallWatch();
  SyscallWatch(const SyscallWatch&) = delete;
  SyscallWatch& operator=(const SyscallWatch&) = delete;

  SyscallCounts counts() const;
};

}  // namespace proxyd::test
