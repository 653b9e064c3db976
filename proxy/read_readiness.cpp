// read_on_next_event: clears the flag with which Asio 1.81's epoll reactor remembers that a
// descriptor's last event said readable. The reactor tries a read at once ("speculatively") while
// the flag is set, and only an EOF clears it; so every read for an upstream response, started
// right after the request went out, began with a recv() that found nothing: one system call of
// about five per proxied request (docs/benchmarks.md, run 51). Asio has no public way to clear
// it, so this reaches the member through the one door C++ leaves open to it (an explicit
// instantiation may name a private member). Built against any other Asio version, or another
// reactor, the function does nothing: the test that counts the recv() calls then skips.
#include "read_readiness.hpp"

#include <boost/version.hpp>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define PROXYD_READ_ON_NEXT_EVENT 1
#include <boost/asio/detail/epoll_reactor.hpp>
#endif

namespace proxyd {

#ifdef PROXYD_READ_ON_NEXT_EVENT
namespace {

using Reactor = net::detail::epoll_reactor;
using DescriptorState = Reactor::descriptor_state;
using SpeculativeFlags = bool (DescriptorState::*)[Reactor::max_ops];

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

}  // namespace

bool read_on_next_event(Socket& socket) {
  DescriptorState* state = SocketImpl::of(socket).reactor_data_;
  if (state == nullptr) return false;  // not open, or not registered with the reactor
  // The worker's thread is the only one that runs this socket's reactor work (one thread per
  // io_context), so the descriptor's mutex has nothing to keep out here.
  (state->*try_speculative_member())[Reactor::read_op] = false;
  return true;
}

#else

bool read_on_next_event(Socket&) { return false; }

#endif

}  // namespace proxyd
