// The body pump of relay.hpp. One loop per input framing; the output framing only changes how
// each piece is written (as is, or as one chunk).
#include "relay.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cerrno>
#include <span>

#include "pipe_pool.hpp"
#include "worker.hpp"

namespace proxyd {

// The state of one relay call: the prefix not yet written, the fairness count, the byte count.
class BodyPump::Run {
 public:
  Run(BodyPump& pump, PumpEnds& ends, BodyFraming out, std::string_view prefix,
      std::uint64_t& moved)
      : pump_(pump), ends_(ends), out_(out), prefix_(prefix), moved_(moved) {}

  bool prefix_pending() const { return !prefix_.empty(); }

  // Writes `body` framed for the destination, behind the prefix if it has not gone out yet;
  // yields to the worker's other sessions every kFairnessBytes.
  Task<PumpEnd> send(std::string_view body) {
    std::array<char, 20> line;
    std::array<net::const_buffer, 4> b{};
    std::size_t count = 0;
    if (!prefix_.empty()) b[count++] = net::buffer(prefix_);
    if (!body.empty()) {
      if (out_ == BodyFraming::chunked) {
        b[count++] = net::buffer(chunk_size_line(body.size(), line));
        b[count++] = net::buffer(body);
        b[count++] = net::buffer("\r\n", 2);
      } else {
        b[count++] = net::buffer(body);
      }
    }
    if (count == 0) co_return PumpEnd::done;
    pump_.worker_.arm(pump_.deadline_, ends_.write_timeout);
    auto [ec, n] = co_await ends_.to.write_all(std::span(b.data(), count));
    if (ec) co_return write_failure();
    written_prefix();
    moved_ += body.size();
    since_yield_ += body.size();
    if (since_yield_ >= kFairnessBytes) {
      since_yield_ = 0;
      co_await net::post(pump_.worker_.executor(), net::use_awaitable_t<Executor>{});
    }
    co_return PumpEnd::done;
  }

  // Whether finish() has anything to write.
  bool finish_pending() const { return !prefix_.empty() || out_ == BodyFraming::chunked; }

  // The end of the body: the last chunk when re-chunking, and the prefix if still pending.
  Task<PumpEnd> finish() {
    std::array<net::const_buffer, 2> b{};
    std::size_t count = 0;
    if (!prefix_.empty()) b[count++] = net::buffer(prefix_);
    if (out_ == BodyFraming::chunked) b[count++] = net::buffer(kLastChunk);
    pump_.worker_.arm(pump_.deadline_, ends_.write_timeout);
    auto [ec, n] = co_await ends_.to.write_all(std::span(b.data(), count));
    if (ec) co_return write_failure();
    written_prefix();
    co_return PumpEnd::done;
  }

  // Whether the rest of a Content-Length body can go through a kernel pipe: both ends plain TCP
  // and the body written as it comes (not re-chunked).
  bool can_splice() const {
    return ends_.from.tls() == nullptr && ends_.to.tls() == nullptr &&
           out_ != BodyFraming::chunked && prefix_.empty();
  }

  // The rest of a Content-Length body, socket -> pipe -> socket with splice(2) (pipe_pool.hpp):
  // the same waits, deadlines, byte count and fairness as the copying path, and never a byte past
  // the body. It returns done with `remaining` left to the copying path, the source buffer lent
  // again, when there is no pipe to be had, or when the source stopped at TCP urgent data: splice
  // cannot pass the urgent mark (tcp_read_sock stops there) while poll says readable, so waiting
  // again would spin; recv() steps over the urgent byte, and the next call splices on.
  Task<PumpEnd> splice(std::uint64_t& remaining) {
    PipeLease lease(pump_.worker_.pipes());
    if (!lease) co_return PumpEnd::done;
    if (ends_.from_lender != nullptr && ends_.from_buffer.empty())
      ends_.from_lender->return_buffer(ends_.from_buffer);
    const PumpEnd end = co_await splice_through(lease, remaining);
    if (end == PumpEnd::done && remaining > 0 && ends_.from_lender != nullptr)
      ends_.from_lender->lend_buffer(ends_.from_buffer);
    co_return end;
  }

  Task<PumpEnd> splice_through(PipeLease& lease, std::uint64_t& remaining) {
    Socket& from = ends_.from.socket();
    Socket& to = ends_.to.socket();
    const int in = from.native_handle();
    const int out = to.native_handle();
    const Pipe& pipe = lease.pipe();
    constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    // read_failed once the source closed or failed before the body's end: what it sent until
    // then still goes out first, as on the copying path.
    PumpEnd source_end = PumpEnd::done;
    bool woken = false;  // the last wait for the source said readable
    while ((remaining > 0 && source_end == PumpEnd::done) || lease.held > 0) {
      // Fill the pipe until the source has nothing more for now (or the pipe is full).
      if (remaining > 0 && source_end == PumpEnd::done) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kSpliceStep));
        pump_.worker_.arm(pump_.deadline_, ends_.read_timeout);
        const ssize_t n = ::splice(in, nullptr, pipe.write, nullptr, want, kFlags);
        if (n > 0) {
          remaining -= static_cast<std::size_t>(n);
          lease.held += static_cast<std::size_t>(n);
          woken = false;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          source_end = PumpEnd::read_failed;
        } else if (errno == EAGAIN && lease.held == 0) {
          int at_mark = 0;
          if (woken && ::ioctl(in, SIOCATMARK, &at_mark) == 0 && at_mark != 0)
            co_return PumpEnd::done;  // urgent data: the copying path steps over it
          if (PumpEnd end = co_await wait(from, Socket::wait_read); end != PumpEnd::done)
            co_return end;
          woken = true;
          continue;
        }
      }
      if (lease.held == 0) continue;
      // Empty it into the destination.
      pump_.worker_.arm(pump_.deadline_, ends_.write_timeout);
      const ssize_t n = ::splice(pipe.read, nullptr, out, nullptr, lease.held, kFlags);
      if (n > 0) {
        lease.held -= static_cast<std::size_t>(n);
        moved_ += static_cast<std::size_t>(n);
        since_yield_ += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        if (PumpEnd end = co_await wait(to, Socket::wait_write); end != PumpEnd::done)
          co_return end;
      } else if (n == 0 || errno != EINTR) {
        co_return write_failure();
      }
      if (since_yield_ >= kFairnessBytes) {
        since_yield_ = 0;
        co_await net::post(pump_.worker_.executor(), net::use_awaitable_t<Executor>{});
      }
    }
    co_return source_end;
  }

  // One read of at most `limit` bytes into the source buffer (compacted first). A clean EOF is
  // reported as `eof` so a close-delimited body can end there.
  struct Read {
    PumpEnd end = PumpEnd::done;
    bool eof = false;
  };
  Task<Read> read(std::size_t limit) {
    ByteBuffer& in = ends_.from_buffer;
    in.compact();
    const std::size_t want = std::min(in.writable(), limit);
    pump_.worker_.arm(pump_.deadline_, ends_.read_timeout);
    // A body's next bytes, or a reset that came with the last ones, whose event the tracked read
    // that took them (the head's, or over TLS the inbox read) may have spent: try at once.
    ends_.from.read_next_at_once();
    auto [ec, n] = co_await ends_.from.async_read_some(net::buffer(in.write_ptr(), want), use_task);
    in.commit(n);
    if (!ec) co_return Read{};
    if (pump_.deadline_.fired) co_return Read{PumpEnd::read_timeout};
    co_return Read{PumpEnd::read_failed, ec == net::error::eof};
  }

 private:
  void written_prefix() {
    if (!prefix_.empty()) pump_.prefix_written_ = true;
    prefix_ = {};
  }

  PumpEnd write_failure() const {
    return pump_.deadline_.fired ? PumpEnd::write_timeout : PumpEnd::write_failed;
  }

  // Waits for the source to be readable or the destination writable, within that side's timeout.
  Task<PumpEnd> wait(Socket& socket, Socket::wait_type type) {
    const bool reading = type == Socket::wait_read;
    pump_.worker_.arm(pump_.deadline_, reading ? ends_.read_timeout : ends_.write_timeout);
    auto [ec] = co_await socket.async_wait(type, use_task);
    if (!ec) co_return PumpEnd::done;
    if (reading) co_return pump_.deadline_.fired ? PumpEnd::read_timeout : PumpEnd::read_failed;
    co_return write_failure();
  }

  BodyPump& pump_;
  PumpEnds& ends_;
  const BodyFraming out_;
  std::string_view prefix_;
  std::uint64_t& moved_;
  std::uint64_t since_yield_ = 0;
};

char* BodyPump::stage() {
  if (!stage_) stage_ = std::make_unique_for_overwrite<char[]>(kStageSize);
  return stage_.get();
}

template <bool isRequest>
Task<PumpEnd> BodyPump::relay(HeadParser<isRequest>& parser, PumpEnds ends, PumpFraming framing,
                              std::string_view prefix, std::uint64_t& moved) {
  Run run(*this, ends, framing.out, prefix, moved);
  prefix_written_ = prefix.empty();
  ByteBuffer& in = ends.from_buffer;
  switch (framing.in) {
    case BodyFraming::none:
      break;

    case BodyFraming::length: {
      std::uint64_t remaining = framing.remaining;
      for (;;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining));
        if (n > 0 || run.prefix_pending()) {
          if (PumpEnd end = co_await run.send({in.data(), n}); end != PumpEnd::done) co_return end;
          in.consume(n);
          remaining -= n;
        }
        if (remaining == 0) break;
        if (remaining >= kSpliceMin && run.can_splice()) {
          if (PumpEnd end = co_await run.splice(remaining); end != PumpEnd::done) co_return end;
          if (remaining == 0) break;  // else a read is copied below (see splice())
        }
        // Never read past this body: what follows belongs to the next message.
        Run::Read r = co_await run.read(static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining, in.capacity())));
        if (r.end != PumpEnd::done) co_return r.end;
      }
      break;
    }

    case BodyFraming::until_close:
      for (;;) {
        if (!in.empty() || run.prefix_pending()) {
          const std::size_t n = in.size();
          if (PumpEnd end = co_await run.send(in.view()); end != PumpEnd::done) co_return end;
          in.consume(n);
        }
        Run::Read r = co_await run.read(in.capacity());
        if (r.eof) break;
        if (r.end != PumpEnd::done) co_return r.end;
      }
      break;

    case BodyFraming::chunked: {
      std::size_t staged = 0;
      parser.set_sink(stage(), kStageSize, &staged);
      for (;;) {
        error_code ec;
        const Decode step = decode_chunks(parser, in, staged, kStageSize, ec);
        if (step == Decode::error)
          co_return ec == http::error::body_limit ? PumpEnd::too_large : PumpEnd::bad_body;
        if (staged > 0) {
          if (PumpEnd end = co_await run.send({stage(), staged}); end != PumpEnd::done)
            co_return end;
          staged = 0;
        }
        if (step == Decode::done) break;
        if (step == Decode::need_more) {
          in.compact();
          if (in.writable() == 0) co_return PumpEnd::bad_body;  // a chunk line longer than that
          Run::Read r = co_await run.read(in.capacity());
          if (r.end != PumpEnd::done) co_return r.end;
        }
      }
      break;
    }
  }
  if (!run.finish_pending()) co_return PumpEnd::done;
  co_return co_await run.finish();
}

template Task<PumpEnd> BodyPump::relay<true>(HeadParser<true>&, PumpEnds, PumpFraming,
                                            std::string_view, std::uint64_t&);
template Task<PumpEnd> BodyPump::relay<false>(HeadParser<false>&, PumpEnds, PumpFraming,
                                             std::string_view, std::uint64_t&);

}  // namespace proxyd
