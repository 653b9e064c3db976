// Two hints to Asio's epoll reactor that spare a recv() which cannot find anything:
// - read_on_next_event, for a socket whose next read answers something we are about to send
//   (docs/architecture.md, "Idle upstream connections");
// - async_read_some_tracked, a read that tells the reactor when it left the socket empty, for a
//   client connection whose next read waits for a request that is not sent yet
//   (docs/architecture.md, "Reads that leave a socket empty").
// Both act on the flag with which Asio 1.81's epoll reactor remembers that a descriptor's last
// event said readable: while it is set, a new read first tries recv() at once, and only an EOF
// clears it. Built against any other Asio version or reactor, both do what Asio's own reads do.
// And an accept that spares two system calls per connection (accept_connection), which tells the
// socket's state what accept4() already made of the descriptor.
// Owner: the caller's socket, on its worker's thread (the thread that runs its reactor).
#pragma once

#include <boost/version.hpp>

#include <cstddef>
#include <utility>

#include "net.hpp"

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define PROXYD_READ_READINESS 1
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactive_socket_service_base.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#endif

namespace proxyd {

// After this call, the next read started on `socket` waits for the next event that says it is
// readable (or closed, or failed) instead of trying recv() at once; later reads behave as Asio's
// do. Any byte that arrives from here on raises such an event, so none is left unread. Call it
// before sending the request a read will wait for, in the same turn of the worker's loop as the
// check that nothing else is waiting to be read: bytes that came before and whose event the
// worker already took would otherwise wait for the next one.
// Returns false, and changes nothing, where the reactor is not the one this was written against
// (Boost.Asio 1.81's epoll reactor); the read then tries at once, as before.
bool read_on_next_event(Socket& socket);

// The next read started on `socket` tries recv() at once, as Asio's first read does. For a read
// that continues what a tracked read began (the rest of a request head, its body): the tracked
// read clears the flag when the kernel says nothing is left, which it also says after a reset
// that came with the bytes read (TCP_INQ counts a FIN, not an RST), and that reset's event is
// spent, so waiting for the next event would wait until the timeout. Over TLS, a session asks it
// through Stream::read_next_at_once, which sets it only for a read that needs the socket.
void read_at_once(Socket& socket);

// Asks the kernel to say, with each read by async_read_some_tracked, how much the socket still
// holds, a FIN counting as one byte (TCP_INQ, Linux 4.18). Once per connection. Without it the
// tracked reads are Asio's reads. False when the kernel refused, or the socket is not TCP.
bool report_bytes_left(Socket& socket);

// Accepts a connection waiting on `acceptor` into `socket` (closed) with its peer's address in
// `peer`, as acceptor.accept(socket, peer, ec) does, in one system call: accept4() makes the
// descriptor non-blocking and close-on-exec, and the socket's state says it is non-blocking and
// no duplicate of another descriptor, so that its close makes no EPOLL_CTL_DEL first, as for a
// socket Asio opens itself (assign(), which Asio's accept uses too, could not know). With Asio's
// accept, the session took the address with getpeername(), Asio's first asynchronous operation
// (or TlsStream) set ioctl(FIONBIO), and the close took the descriptor out of the epoll set.
// `ec` as Asio's: would_block when no connection waits on the (non-blocking) acceptor. A
// connection that failed while it waited (a reset, or a network error Linux passes on,
// accept(2)) is skipped for the next one. Built against another Asio, the state is set with
// Asio's own ioctl, and the close takes the descriptor out first.
void accept_connection(Acceptor& acceptor, Socket& socket, tcp::endpoint& peer, error_code& ec);

// Opens `socket` (closed) on `fd`, a descriptor that accept_connection() accepted and a Socket
// then released (a connection handed to another worker), which must still be non-blocking: its
// state says so, and Asio's operations would otherwise block the worker. On failure `socket`
// stays closed and the caller keeps `fd`.
void adopt_connection(Socket& socket, const tcp& protocol, int fd, error_code& ec);

// Reads into `buffer` as socket.async_read_some does, with one difference: a read that leaves
// the socket empty (the kernel says nothing is left, not even a FIN; report_bytes_left) clears
// the reactor's flag, in the reactor, in the same step as the recv. The next read then waits
// for the socket's next event without trying first: the recv() that found nothing after every
// keep-alive response is gone. Nothing can be missed: a byte or a FIN that arrives after the
// recv raises an event, which sets the flag again, and no event is taken between the recv and
// the clear (the reactor does both while it holds the descriptor).
// Completes with (error_code, bytes): eof at the end, operation_aborted when cancelled (through
// the socket, or the handler's cancellation slot, as Asio's reads). One read at a time per socket.
template <class Token>
auto async_read_some_tracked(Socket& socket, net::mutable_buffer buffer, Token&& token);

#ifdef PROXYD_READ_READINESS
namespace read_readiness_detail {

using Reactor = net::detail::epoll_reactor;
using ReactorOp = net::detail::reactor_op;

// What a read is started on: the socket's reactor, its registration and its descriptor, made
// non-blocking first as Asio's own operations make it (`ec` if that failed).
struct ReadTarget {
  Reactor* reactor;
  Reactor::per_descriptor_data* registration;
  int fd;
  error_code ec;
};
ReadTarget read_target(Socket& socket);

// The reactor's side of a tracked read: one recvmsg() with room for the kernel's TCP_CM_INQ.
class TrackedRecvBase : public ReactorOp {
 protected:
  TrackedRecvBase(int fd, net::mutable_buffer buffer, func_type complete)
      : ReactorOp(error_code(), &TrackedRecvBase::perform, complete), fd_(fd), buffer_(buffer) {}

 private:
  static status perform(ReactorOp* base);
  int fd_;
  net::mutable_buffer buffer_;
};

// The completion, as Asio's reactive_socket_recv_op completes its handler.
template <class Handler>
class TrackedRecv : public TrackedRecvBase {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(TrackedRecv);

  TrackedRecv(int fd, net::mutable_buffer buffer, Handler& handler, const Executor& io_executor)
      : TrackedRecvBase(fd, buffer, &TrackedRecv::complete),
        handler_(std::move(handler)),
        work_(handler_, io_executor) {}

  static void complete(void* owner, net::detail::operation* base, const error_code&,
                       std::size_t) {
    auto* op = static_cast<TrackedRecv*>(base);
    ptr p = {net::detail::addressof(op->handler_), op, op};
    net::detail::handler_work<Handler, Executor> work(std::move(op->work_));
    // The handler is moved out before the operation's memory is given back (it may own it).
    net::detail::binder2<Handler, error_code, std::size_t> bound(op->handler_, op->ec_,
                                                                  op->bytes_transferred_);
    p.h = net::detail::addressof(bound.handler_);
    p.reset();
    if (owner != nullptr) {  // null: the io_context is being destroyed, nothing is called
      net::detail::fenced_block fence(net::detail::fenced_block::half);
      work.complete(bound, bound.handler_);
    }
  }

 private:
  Handler handler_;
  net::detail::handler_work<Handler, Executor> work_;
};

// A cancellation slot's handler that cancels this read only: the one Asio's own socket reads
// use, a protected type of its socket service, named through a class derived from it (never
// instantiated).
struct SocketServiceTypes : net::detail::reactive_socket_service_base {
  using reactive_socket_service_base::reactor_op_cancellation;
};
using CancelRead = SocketServiceTypes::reactor_op_cancellation;

template <class Handler>
void start_tracked_read(Socket& socket, net::mutable_buffer buffer, Handler handler) {
  const ReadTarget target = read_target(socket);
  const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
  auto slot = net::get_associated_cancellation_slot(handler);
  using Op = TrackedRecv<Handler>;
  typename Op::ptr p = {net::detail::addressof(handler), Op::ptr::allocate(handler), nullptr};
  p.p = new (p.v) Op(target.fd, buffer, handler, socket.get_executor());
  if (slot.is_connected())
    p.p->cancellation_key_ =
        &slot.template emplace<CancelRead>(target.reactor, target.registration, target.fd,
                                           Reactor::read_op);
  if (target.ec) {
    p.p->ec_ = target.ec;
    target.reactor->post_immediate_completion(p.p, is_continuation);
    p.v = p.p = nullptr;
    return;
  }
  // Speculative as Asio's own reads: at once while the flag is set, else on the next event.
  target.reactor->start_op(Reactor::read_op, target.fd, *target.registration, p.p,
                           is_continuation, true);
  p.v = p.p = nullptr;
}

}  // namespace read_readiness_detail

template <class Token>
auto async_read_some_tracked(Socket& socket, net::mutable_buffer buffer, Token&& token) {
  return net::async_initiate<Token, void(error_code, std::size_t)>(
      [](auto handler, Socket* s, net::mutable_buffer b) {
        read_readiness_detail::start_tracked_read(*s, b, std::move(handler));
      },
      token, &socket, buffer);
}

#else

template <class Token>
auto async_read_some_tracked(Socket& socket, net::mutable_buffer buffer, Token&& token) {
  return socket.async_read_some(buffer, std::forward<Token>(token));
}

#endif

}  // namespace proxyd
