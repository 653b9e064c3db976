// One client connection: the keep-alive loop and the phases of each request (docs/architecture.md,
// "Life of a request"): read header -> check -> route -> pick server -> get connection -> write
// header -> relay body -> read response -> relay -> log -> keep-alive or close.
#pragma once

#include "net.hpp"

namespace proxyd {

class Worker;
struct ListenerRuntime;

// Runs a session to completion on the worker's thread. The coroutine frame owns the session.
// `peer`: the client's address, as the accept gave it.
Task<void> run_session(Worker& worker, Socket socket, tcp::endpoint peer,
                       ListenerRuntime listener);

}  // namespace proxyd
