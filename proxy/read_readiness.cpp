// read_on_next_event and the tracked read: both act on the flag with which Asio 1.81's epoll
// reactor remembers that a descriptor's last event said readable. The reactor tries a read at once
// ("speculatively") while the flag is set, and only an EOF clears it; so every read for an
// upstream response, started right after the request went out, and every read for a client's
// next request, started right after the response went out, began with a recv() that found
// nothing: two system calls of about six per proxied request (docs/benchmarks.md, runs 51 and 53).
// Asio has no public way to clear the flag. read_on_next_event reaches the member through the one
// door C++ leaves open to it (an explicit instantiation may name a private member); the tracked
// read is a reactor operation of ours, which the reactor lets clear the flag by saying its recv
// left the socket empty. Built against any other Asio version, or another reactor, neither is
// compiled: the tests that count the recv() calls then skip.
#include "read_readiness.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace proxyd {

#ifdef PROXYD_READ_READINESS
namespace {

using Reactor = net::detail::epoll_reactor;
using DescriptorState = Reactor::descriptor_state;
using SpeculativeFlags = bool (DescriptorState::*)[Reactor::max_ops];
using ReactorOf = Reactor* DescriptorState::*;

// The socket's implementation (its descriptor and the reactor's per-descriptor state) is a
// protected member of basic_socket: a derived class may form a pointer to it.
struct SocketImpl : Socket {
  static auto& of(Socket& socket) { return (socket.*(&SocketImpl::impl_)).get_implementation(); }
};

// descriptor_state::try_speculative_ is private; the explicit instantiation below names it, and
// the friend function hands the member pointer out.
SpeculativeFlags try_speculative_member();
template <SpeculativeFlags Member>
struct ExposeTrySpeculative {
  friend SpeculativeFlags try_speculative_member() { return Member; }
};
template struct ExposeTrySpeculative<&DescriptorState::try_speculative_>;

// descriptor_state::reactor_, the same way: the reactor a registered socket belongs to.
ReactorOf reactor_member();
template <ReactorOf Member>
struct ExposeReactor {
  friend ReactorOf reactor_member() { return Member; }
};
template struct ExposeReactor<&DescriptorState::reactor_>;

}  // namespace

bool read_on_next_event(Socket& socket) {
  DescriptorState* state = SocketImpl::of(socket).reactor_data_;
  if (state == nullptr) return false;  // not open, or not registered with the reactor
  // The worker's thread is the only one that runs this socket's reactor work (one thread per
  // io_context), so the descriptor's mutex has nothing to keep out here.
  (state->*try_speculative_member())[Reactor::read_op] = false;
  return true;
}

void read_at_once(Socket& socket) {
  DescriptorState* state = SocketImpl::of(socket).reactor_data_;
  if (state != nullptr) (state->*try_speculative_member())[Reactor::read_op] = true;
}

namespace read_readiness_detail {

ReadTarget read_target(Socket& socket) {
  auto& impl = SocketImpl::of(socket);
  // A socket not open has no registration: start_op then completes the read with
  // bad_descriptor, as Asio's own read would.
  Reactor* reactor = impl.reactor_data_ != nullptr
                         ? impl.reactor_data_->*reactor_member()
                         : &net::use_service<Reactor>(socket.get_executor().context());
  // Asio makes a socket non-blocking at its first asynchronous operation; this may be the first,
  // and the socket's other users (splice(2) in the body pump) rely on it.
  error_code ec;
  if (impl.reactor_data_ != nullptr && (impl.state_ & net::detail::socket_ops::non_blocking) == 0)
    net::detail::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, ec);
  return {reactor, &impl.reactor_data_, impl.socket_, ec};
}

// One recvmsg(). Reported to the reactor as Asio's recv op reports its own, except that a read
// after which the kernel says nothing is left (TCP_CM_INQ 0: no byte, no FIN) is
// done_and_exhausted, on which the reactor clears the flag. An EOF or an error keeps the flag:
// a read after it finds the same at once.
ReactorOp::status TrackedRecvBase::perform(ReactorOp* base) {
  auto* op = static_cast<TrackedRecvBase*>(base);
  if (op->buffer_.size() == 0) return done;
  iovec iov{op->buffer_.data(), op->buffer_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do n = ::recvmsg(op->fd_, &msg, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
    op->ec_ = error_code(errno, boost::system::system_category());
    return done;
  }
  if (n == 0) {
    op->ec_ = net::error::eof;
    return done;
  }
  op->bytes_transferred_ = static_cast<std::size_t>(n);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
      int left = 0;
      std::memcpy(&left, CMSG_DATA(c), sizeof(left));
      return left == 0 ? done_and_exhausted : done;
    }
  }
  return done;  // the socket was not asked to say (report_bytes_left)
}

}  // namespace read_readiness_detail

namespace {

// Tells the socket's state what accept4() made of its descriptor:
// - non-blocking already: both of Asio's flags, so that its own operations skip the
//   ioctl(FIONBIO) that sets the first, and socket.non_blocking() (which TlsStream asks) reads
//   the second;
// - no duplicate of another descriptor: assign() (through which Asio's own accept goes too)
//   cannot know that and marks it `possible_dup`, for which Asio's close first takes the
//   descriptor out of the epoll set (EPOLL_CTL_DEL). A descriptor nothing duplicated leaves the
//   set with its close, as a socket Asio opens itself does: one system call fewer per
//   connection. proxyd duplicates no client connection: takeover passes listeners only, a
//   connection handed to another worker is release()d (which still takes it out), and the one
//   posix_spawn (an upgrade) closes every inherited descriptor in the child; in the microseconds
//   before it does, a connection closed meanwhile may stay in the set, and at worst wakes the
//   socket that reuses its registration once, as an upstream connection, opened by Asio, may.
void mark_accepted(Socket& socket, error_code&) {
  auto& state = SocketImpl::of(socket).state_;
  state |= net::detail::socket_ops::non_blocking;
  state &= static_cast<net::detail::socket_ops::state_type>(~net::detail::socket_ops::possible_dup);
}

}  // namespace

#else

bool read_on_next_event(Socket&) { return false; }

void read_at_once(Socket&) {}

namespace {

// Without the door to Asio's state: its own way, one ioctl(FIONBIO).
void mark_accepted(Socket& socket, error_code& ec) { socket.non_blocking(true, ec); }

}  // namespace

#endif

namespace {

// An error that accept() reports for the connection it took, not for the listener: Linux passes
// a network error already pending on the new connection (accept(2) asks to retry on these), and
// a connection reset while it waited is ECONNABORTED, which Asio's accept skips too.
bool skip_connection(int error) {
  switch (error) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

}  // namespace

void accept_connection(Acceptor& acceptor, Socket& socket, tcp::endpoint& peer, error_code& ec) {
  if (socket.is_open()) {  // as Asio's accept: the connection stays for another
    ec = net::error::already_open;
    return;
  }
  socklen_t size;
  int fd;
  do {
    size = static_cast<socklen_t>(peer.capacity());
    fd = ::accept4(acceptor.native_handle(), peer.data(), &size, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && skip_connection(errno));
  if (fd < 0) {
    ec = error_code(errno, boost::system::system_category());
    return;
  }
  peer.resize(size);
  adopt_connection(socket, peer.protocol(), fd, ec);
  if (ec) ::close(fd);
}

void adopt_connection(Socket& socket, const tcp& protocol, int fd, error_code& ec) {
  socket.assign(protocol, fd, ec);
  if (!ec) mark_accepted(socket, ec);
  error_code ignored;
  if (ec && socket.is_open()) socket.release(ignored);  // the caller closes `fd`, as on failure
}

bool report_bytes_left(Socket& socket) {
  const int on = 1;
  return ::setsockopt(socket.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof(on)) == 0;
}

}  // namespace proxyd
