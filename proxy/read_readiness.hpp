// One hint to Asio's epoll reactor for a socket whose next read answers something we are about
// to send: start that read waiting for the socket's next readiness event, without first trying
// a recv() that cannot find the answer yet (docs/architecture.md, "Idle upstream connections").
// Owner: the caller's socket, on its worker's thread (the thread that runs its reactor).
#pragma once

#include "net.hpp"

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

}  // namespace proxyd
