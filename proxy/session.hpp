// One client connection: the keep-alive loop and the phases of each request (docs/architecture.md,
// "Life of a request"): read header -> check -> route -> pick server -> get connection -> write
// header -> relay body -> read response -> relay -> log -> keep-alive or close.
#pragma once

#include "net.hpp"

namespace proxyd {

class Worker;
struct ListenerRuntime;

// Runs a session to completion on the worker's thread. The coroutine frame owns the session.
Task<void> run_session(Worker& worker, Socket socket, ListenerRuntime listener);

}  // namespace proxyd
