// The streaming body pump, one for both directions (request bodies client -> upstream, response
// bodies upstream -> client): read a piece, write it, then read again, so the slower side sets
// the pace (back-pressure) and no body is ever held whole. A Content-Length body is copied as
// read; a chunked body is decoded by the message's parser (which enforces the size limit) into a
// stage and re-framed; a close-delimited body is read until EOF. The output framing is chosen by
// the caller (a chunked or close-delimited response goes to an HTTP/1.1 client chunked).
// Owner: one Session; runs on its worker's thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "byte_buffer.hpp"
#include "chunked.hpp"
#include "config.hpp"
#include "header_transform.hpp"
#include "http_head.hpp"
#include "net.hpp"
#include "stream.hpp"

namespace proxyd {

class Worker;
class UpstreamCache;
struct Deadline;

// Where a body comes from and goes to, and the wait limit on each side.
struct PumpEnds {
  Stream& from;
  ByteBuffer& from_buffer;  // may already hold the first body bytes
  Duration read_timeout;
  Stream& to;
  Duration write_timeout;
  // Set when from_buffer is an upstream connection's, lent by this cache: it goes back to the
  // cache's spares, empty, while the rest of the body is spliced, so that a thousand 1 MiB
  // responses in flight do not hold a thousand read buffers.
  UpstreamCache* from_lender = nullptr;
};

// How the body arrives and how it leaves. `remaining`: the bytes still to come of a
// Content-Length body (those already sent elsewhere are not counted).
struct PumpFraming {
  BodyFraming in = BodyFraming::none;
  std::uint64_t remaining = 0;
  BodyFraming out = BodyFraming::none;
};

// Why a pump stopped.
enum class PumpEnd : std::uint8_t {
  done,           // the whole body went through
  read_failed,    // the source closed or failed before the body's end
  read_timeout,   // the source was silent for read_timeout
  write_failed,   // the destination closed or failed
  write_timeout,  // the destination did not take the bytes within write_timeout
  bad_body,       // malformed chunked framing
  too_large,      // a chunked body over the parser's body limit
};

class BodyPump {
 public:
  BodyPump(Worker& worker, Deadline& deadline) : worker_(worker), deadline_(deadline) {}

  // Relays one body. `prefix` (a response head) goes out with the first body bytes in one write,
  // even when the body is empty. `moved` counts the body bytes written. The parser is the one
  // that read the message's head (it decodes chunked bodies).
  template <bool isRequest>
  Task<PumpEnd> relay(HeadParser<isRequest>& parser, PumpEnds ends, PumpFraming framing,
                      std::string_view prefix, std::uint64_t& moved);

  // Whether the last relay() wrote its prefix (true when it had none). A response whose upstream
  // failed before any of it reached the client can still be answered with a local reply.
  bool prefix_written() const { return prefix_written_; }

  // A connection that moved this much without waiting yields to the worker's other sessions
  // (docs/architecture.md, "Performance choices").
  static constexpr std::uint64_t kFairnessBytes = 256 * 1024;
  // The rest of a Content-Length body at least this large, between two plain TCP sockets, goes
  // through a kernel pipe with splice(2) (pipe_pool.hpp), at most kSpliceStep bytes a call.
  static constexpr std::uint64_t kSpliceMin = 64 * 1024;
  static constexpr std::size_t kSpliceStep = 64 * 1024;
  // Decoded chunk bytes are staged here before being re-framed.
  static constexpr std::size_t kStageSize = 64 * 1024;

 private:
  class Run;
  char* stage();

  Worker& worker_;
  Deadline& deadline_;
  std::unique_ptr<char[]> stage_;  // allocated for the session's first chunked body
  bool prefix_written_ = true;
};

}  // namespace proxyd
