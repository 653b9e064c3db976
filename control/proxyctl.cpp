// proxyctl: the command-line client of proxyd's control socket. argv -> the command table ->
// one request line -> the socket -> one reply line -> a table for humans or the JSON for scripts
// (--json) -> the exit code deploy scripts test: 0 done, 1 refused, 2 usage error, 3 cannot reach
// proxyd. Plain POSIX sockets with poll() deadlines: a client this small needs no Asio.
#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "control/commands.hpp"
#include "control/fleet_rollout.hpp"
#include "control/man_page.hpp"
#include "control/protocol.hpp"
#include "proxy/rollout.hpp"
#include "proxy/rollout_json.hpp"

namespace proxyd::control {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum ExitCode : int { kDone = 0, kRefused = 1, kUsage = 2, kUnreachable = 3, kNotAcknowledged = 4 };

constexpr milliseconds kConnectTimeout{5000};
// Generous: a reload resolves server names, and DNS can be slow; a deploy script would rather wait
// than be told "cannot reach" about a reload that then succeeds. PROXYCTL_TIMEOUT overrides it.
constexpr milliseconds kDefaultReplyTimeout{60'000};
constexpr milliseconds kWaitHealthyInterval{500};
constexpr milliseconds kRolloutPollInterval{1000};
constexpr auto kRolloutProgressEvery = std::chrono::seconds(5);
// A fleet rollout judges as often as proxyd judges its own (kRolloutTick); the members' counts are
// as fresh as their reports, refreshed every ~1.7 s while they change.
constexpr milliseconds kFleetRolloutPollInterval{500};
constexpr std::size_t kMaxReplyBytes = 64u << 20;
// A batch file larger than this is certainly a wrong path (say /dev/zero).
constexpr std::size_t kMaxBatchBytes = 16u << 20;

int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Owns one file descriptor and closes it when it goes out of scope. Single-threaded.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct Exchange {
  bool ok = false;
  std::string reply;  // the reply line, without its newline
  std::string error;  // why there is no reply
};

// Sends one request line and reads one reply line: connect within kConnectTimeout, the rest
// within `reply_timeout`.
Exchange exchange(const std::string& path, const std::string& request_line,
                  milliseconds reply_timeout) {
  Exchange out;
  sockaddr_un address{};
  if (path.size() >= sizeof(address.sun_path)) {
    out.error = "the path is too long for a Unix socket";
    return out;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) {
    out.error = std::string("socket: ") + std::strerror(errno);
    return out;
  }

  const auto connect_deadline = Clock::now() + kConnectTimeout;
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
      break;
    }
    if (errno == EINTR) continue;
    // EAGAIN: proxyd's listen backlog is full; it is alive, so try again until the deadline.
    if (errno == EAGAIN && Clock::now() < connect_deadline) {
      ::poll(nullptr, 0, 20);
      continue;
    }
    out.error = errno == EAGAIN ? "connect: timed out after " + format_duration(kConnectTimeout)
                                : std::string("connect: ") + std::strerror(errno);
    return out;
  }

  const auto deadline = Clock::now() + reply_timeout;
  const std::string data = request_line + "\n";
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd.get(), POLLOUT, 0};
      if (::poll(&p, 1, millis_until(deadline)) == 0) {
        out.error = "timed out sending the request";
        return out;
      }
      continue;
    }
    // proxyd closed early, e.g. after answering that the request is too large: read that answer.
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) break;
    out.error = std::string("send: ") + std::strerror(errno);
    return out;
  }

  std::string reply;
  char buffer[64 * 1024];
  for (;;) {
    if (const std::size_t newline = reply.find('\n'); newline != std::string::npos) {
      out.reply = reply.substr(0, newline);
      out.ok = true;
      return out;
    }
    if (reply.size() > kMaxReplyBytes) {
      out.error = "the reply is larger than " + std::to_string(kMaxReplyBytes >> 20) + " MiB";
      return out;
    }
    const int wait = millis_until(deadline);
    pollfd p{fd.get(), POLLIN, 0};
    if (wait == 0 || ::poll(&p, 1, wait) == 0) {
      out.error = "no reply within " + format_duration(reply_timeout);
      return out;
    }
    const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      reply.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      out.error = reply.empty() ? "proxyd closed the connection without a reply"
                                : "the reply was cut short";
      return out;
    } else if (errno != EINTR && errno != EAGAIN) {
      out.error = std::string("recv: ") + std::strerror(errno);
      return out;
    }
  }
}

struct Context {
  std::string path;
  bool json = false;
  milliseconds reply_timeout = kDefaultReplyTimeout;
};

void print_unreachable(const Context& context, const std::string& why) {
  std::cerr << "proxyctl: cannot reach proxyd at " << context.path << ": " << why << "\n";
}

// A reply, or the exit code to return when there is none.
struct Reply {
  std::optional<Response> response;
  std::string line;
  int exit_code = kUnreachable;
};

Reply call(const Context& context, const Request& request) {
  Reply out;
  const Exchange exchanged = exchange(context.path, encode_request(request), context.reply_timeout);
  if (!exchanged.ok) {
    print_unreachable(context, exchanged.error);
    return out;
  }
  DecodedResponse decoded = decode_response(exchanged.reply);
  if (!decoded.response) {
    print_unreachable(context, "garbled reply: " + decoded.error);
    return out;
  }
  out.response = std::move(decoded.response);
  out.line = exchanged.reply;
  return out;
}

// The exit code of an error reply: `busy` means the command never reached proxyd's handler.
int error_exit(const Response& response) {
  return response.error.kind == ErrorKind::busy ? kUnreachable : kRefused;
}

int send_and_render(const Context& context, const Invocation& invocation) {
  const Reply reply = call(context, invocation.request);
  if (!reply.response) return reply.exit_code;
  const Response& response = *reply.response;
  if (context.json) std::cout << reply.line << "\n";
  if (response.ok) {
    if (!context.json) std::cout << invocation.row->render(response);
    return kDone;
  }
  std::cerr << "proxyctl: " << to_string(response.error.kind) << ": "
            << error_text(invocation, response.error) << "\n";
  return error_exit(response);
}

int wait_healthy(const Context& context, const Invocation& invocation) {
  const auto deadline = Clock::now() + invocation.timeout;
  for (;;) {
    const Reply reply = call(context, invocation.request);
    if (!reply.response) return reply.exit_code;
    const Response& response = *reply.response;
    // Busy is passing: ask again at the next poll, unless time is up.
    if (!response.ok && (response.error.kind != ErrorKind::busy || Clock::now() >= deadline)) {
      if (context.json) std::cout << reply.line << "\n";
      std::cerr << "proxyctl: " << to_string(response.error.kind) << ": "
                << response.error.message << "\n";
      return error_exit(response);
    }
    if (response.ok) {
      const Status status = status_from_json(response.result, response.generation.value_or(0));
      const HealthCount count = count_healthy(status, invocation.pool);
      // Waiting cannot help: no such pool, or too few servers in it.
      const auto refuse = [&](const std::string& message) {
        if (context.json) {
          std::cout << encode_response(error_response(ErrorKind::refused, message)) << "\n";
        }
        std::cerr << "proxyctl: " << message << "\n";
        return kRefused;
      };
      if (!count.found) return refuse(unknown_pool(status, invocation.pool));
      // A gate must not pass on assumptions: an unchecked server is only assumed up.
      if (!count.checked) return refuse(not_checked(invocation.pool));
      // By default every server of the pool, as the pool is now (a reload may change it).
      const std::uint32_t min = invocation.min_healthy.value_or(
          static_cast<std::uint32_t>(std::max<std::size_t>(count.total, 1)));
      if (count.total < min) return refuse(too_few_servers(invocation.pool, count, min));
      const bool met = count.healthy >= min;
      if (met || Clock::now() >= deadline) {
        const std::string timed_out =
            met ? "" : wait_healthy_timed_out(invocation.pool, count, min, invocation.timeout);
        if (context.json) {
          boost::json::object result;
          result["pool"] = invocation.pool;
          result["healthy"] = count.healthy;
          result["servers"] = count.total;
          result["min"] = min;
          boost::json::array not_healthy;
          for (const std::string& line : count.not_healthy) not_healthy.emplace_back(line);
          result["not_healthy"] = std::move(not_healthy);
          const Response out = met ? ok_response(response.generation, std::move(result))
                                   : error_response(ErrorKind::timeout, timed_out);
          std::cout << encode_response(out) << "\n";
        }
        if (met) {
          if (!context.json) std::cout << wait_healthy_met(invocation.pool, count, min) << "\n";
          return kDone;
        }
        std::cerr << "proxyctl: " << timed_out << "\n";
        return kRefused;
      }
    }
    std::this_thread::sleep_for(
        std::min<milliseconds>(kWaitHealthyInterval, milliseconds(millis_until(deadline))));
  }
}

// One event of a followed rollout in --json mode: {"event":"step","rollout":{...}}.
void print_event(std::string_view event, const RolloutStatus& rollout) {
  json::object line;
  line["event"] = event;
  line["rollout"] = rollout_to_json(rollout);
  std::cout << json::serialize(line) << std::endl;
}

// An event of a followed rollout: its line for a human (over the live line on a terminal), or
// its JSON object with --json.
void announce(const Context& context, bool tty, std::string_view event,
              const RolloutStatus& rollout, const std::string& text) {
  if (context.json) {
    print_event(event, rollout);
  } else {
    std::cout << (tty ? "\r\033[K" : "") << text << std::endl;
  }
}

// proxyctl rollout ROUTE: starts the plan, then follows it in proxyd (which runs it) until it
// completes (exit 0) or aborts (exit 1). A line per step, pause and resume; on a terminal, a live
// line under them; with --json, one JSON object per event and a progress event every 5 seconds.
// proxyd going away ends the following, not the rollout (exit 3).
int follow_rollout(const Context& context, const Invocation& invocation) {
  const Reply started = call(context, invocation.request);
  if (!started.response) return started.exit_code;
  if (!started.response->ok) {
    if (context.json) std::cout << started.line << "\n";
    std::cerr << "proxyctl: " << to_string(started.response->error.kind) << ": "
              << started.response->error.message << "\n";
    return error_exit(*started.response);
  }
  const json::value* first = started.response->result.if_contains("rollout");
  std::string error;
  std::optional<RolloutStatus> rollout =
      first != nullptr ? rollout_from_json(*first, error) : std::nullopt;
  if (!rollout) {
    print_unreachable(context, "the reply carries no rollout");
    return kUnreachable;
  }
  const std::int64_t id = rollout->started_at;
  const std::string route = rollout->route;
  const bool tty = !context.json && isatty(STDOUT_FILENO) == 1;
  const auto say = [&](std::string_view event, const std::string& text) {
    announce(context, tty, event, *rollout, text);
  };
  say("started", route + ": rollout started, passive " + rollout->passive + " against live " +
                     rollout->live + "\n" + route + " " + rollout_step_text(*rollout));

  Request poll;
  poll.command = "rollout status";
  poll.routes = {route};
  std::size_t step = rollout->step;
  RolloutPhase phase = rollout->phase;
  auto last_progress = Clock::now();
  for (;;) {
    std::this_thread::sleep_for(kRolloutPollInterval);
    const Reply reply = call(context, poll);
    if (!reply.response) {
      std::cerr << "proxyctl: the rollout goes on inside proxyd; `proxyctl rollout status " << route
                << "` shows it\n";
      return reply.exit_code;
    }
    if (!reply.response->ok) {
      if (reply.response->error.kind == ErrorKind::busy) continue;
      std::cerr << "proxyctl: " << to_string(reply.response->error.kind) << ": "
                << reply.response->error.message << "\n";
      return error_exit(*reply.response);
    }
    const std::vector<RolloutStatus> now =
        rollouts_from_json(reply.response->result.if_contains("rollouts"));
    if (now.empty() || now.front().started_at != id) {
      std::cerr << "proxyctl: the rollout of " << route << " is gone (the route was removed?)\n";
      return kRefused;
    }
    rollout = now.front();
    // A step shorter than the poll interval is still reported, each in turn.
    while (step < rollout->step) {
      RolloutStatus at = *rollout;
      at.step = ++step;
      say("step", route + " " + rollout_step_text(at));
    }
    if (rollout->phase == RolloutPhase::aborted || rollout->phase == RolloutPhase::completed) {
      say(phase_name(rollout->phase), rollout_end_line(*rollout));
      return rollout->phase == RolloutPhase::completed ? kDone : kRefused;
    }
    if (rollout->phase != phase) {
      phase = rollout->phase;
      say(phase == RolloutPhase::paused ? "paused" : "resumed",
          phase == RolloutPhase::paused ? rollout_end_line(*rollout)
                                        : route + " resumed at " + rollout_step_text(*rollout));
    }
    if (tty) {
      std::cout << "\r\033[K" << rollout_progress_line(*rollout) << std::flush;
    } else if (context.json && Clock::now() - last_progress >= kRolloutProgressEvery) {
      last_progress = Clock::now();
      print_event("progress", *rollout);
    }
  }
}

// Reads a batch from FILE or "-" (standard input); on failure `error` says why.
std::optional<std::string> read_batch(const std::string& source, std::string& error) {
  std::string text;
  std::istream* in = &std::cin;
  std::ifstream file;
  if (source != "-") {
    file.open(source, std::ios::binary);
    if (!file) {
      error = "cannot read " + source + ": " + std::strerror(errno);
      return std::nullopt;
    }
    in = &file;
  }
  char buffer[64 * 1024];
  while (in->read(buffer, sizeof(buffer)) || in->gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in->gcount()));
    if (text.size() > kMaxBatchBytes) {
      error = (source == "-" ? std::string("standard input") : source) + " is larger than " +
              std::to_string(kMaxBatchBytes >> 20) + " MiB";
      return std::nullopt;
    }
  }
  if (in->bad()) {
    error = "cannot read " + source;
    return std::nullopt;
  }
  return text;
}

// Polls `fleet status` until every member reports `revision` or `deadline` passes. `waiting`:
// the members that have not, each with why (empty: all have); `view`: the last one read. No
// `waiting`: proxyd could not be reached (`exit_code` says so, the reason is printed).
struct Applied {
  std::optional<std::vector<std::string>> waiting;
  int exit_code = kDone;
  FleetView view;
};
Applied wait_applied(const Context& context, std::int64_t revision, Clock::time_point deadline) {
  Request poll;
  poll.command = "fleet status";
  Applied out;
  for (;;) {
    const Reply status = call(context, poll);
    if (!status.response) {
      out.exit_code = status.exit_code;
      return out;
    }
    std::vector<std::string> waiting{"(fleet status: " + status.response->error.message + ")"};
    if (status.response->ok) {
      out.view = fleet_view_from_json(status.response->result);
      waiting = fleet_laggards(out.view, revision);
    }
    if (waiting.empty() || Clock::now() >= deadline) {
      out.waiting = std::move(waiting);
      return out;
    }
    // Bounded by the deadline. Each poll is one control-socket call and three etcd reads, cheap
    // enough to poll often: the figure printed is then the fleet's, not the poll interval's.
    std::this_thread::sleep_for(
        std::min<milliseconds>(milliseconds(25), milliseconds(millis_until(deadline))));
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::size_t member_count(const FleetView& view) {
  std::size_t members = 0;
  for (const FleetHost& host : view.hosts) members += host.member ? 1 : 0;
  return members;
}

// A fleet change: written by proxyd to etcd, then `fleet status` polled until every member
// reports the new revision (exit 0) or --timeout passes (exit 4, naming those that have not).
int fleet_write(const Context& context, const Invocation& invocation) {
  const auto start = Clock::now();
  const Reply reply = call(context, invocation.request);
  if (!reply.response) return reply.exit_code;
  const Response& response = *reply.response;
  if (context.json) std::cout << reply.line << "\n";
  if (!response.ok) {
    std::cerr << "proxyctl: " << to_string(response.error.kind) << ": "
              << error_text(invocation, response.error) << "\n";
    return error_exit(response);
  }
  const json::value* written = response.result.if_contains("revision");
  const std::int64_t revision = written != nullptr && written->is_int64() ? written->as_int64() : 0;
  if (!context.json) std::cout << invocation.row->render(response);
  const Applied applied = wait_applied(context, revision, start + invocation.timeout);
  if (!applied.waiting) return applied.exit_code;
  if (applied.waiting->empty()) {
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    if (!context.json)
      std::cout << "revision " << revision << " applied by all " << member_count(applied.view)
                << " members in " << took.count() << " ms\n";
    return kDone;
  }
  std::cerr << "proxyctl: revision " << revision << " is written but was not applied within "
            << invocation.timeout.count() << " ms by: " << joined(*applied.waiting)
            << " (they apply it when they can)\n";
  return kNotAcknowledged;
}

// proxyctl fleet rollout ROUTE (docs/fleet.md, "Fleet rollout"): the plan of `proxyctl rollout`,
// run here. Each step is a `fleet set-weight` conditional on the revision the previous one wrote;
// its interval starts once every member applied it; twice a second the members' counts (their
// reports, through `fleet status`) are summed and judged with rollout.hpp's rules. An abort writes
// weight 0 for the fleet, forced. Exit 0 completed, 1 aborted or refused, 3 proxyd unreachable,
// 4 the final flip written but not applied by every member within --timeout.
int fleet_rollout(const Context& context, const Invocation& invocation) {
  RolloutStatus rollout;
  rollout.route = invocation.request.routes.front();
  rollout.plan = *invocation.request.plan;
  rollout.phase = RolloutPhase::running;
  const std::string& route = rollout.route;
  const bool tty = !context.json && isatty(STDOUT_FILENO) == 1;
  const auto say = [&](std::string_view event, const std::string& text) {
    announce(context, tty, event, rollout, text);
  };
  const auto refuse = [&](const std::string& why) {
    std::cerr << "proxyctl: refused: " << why << "\n";
    return kRefused;
  };

  Request status_request;
  status_request.command = "fleet status";
  const Reply first = call(context, status_request);
  if (!first.response) return first.exit_code;
  if (!first.response->ok) return refuse(first.response->error.message);
  const FleetRoute target = fleet_route(fleet_view_from_json(first.response->result), route);
  if (!target.error.empty()) return refuse(target.error);
  rollout.live = target.live;
  rollout.passive = target.passive;
  FleetCounts counts(route, rollout.live, rollout.passive);

  // Writes one operation into the desired state as `fleet set-weight` / `fleet flip` do; the
  // revision written, or why not.
  struct Written {
    std::int64_t revision = 0;
    std::string error;
  };
  const auto write = [&](Operation operation, bool force, std::optional<std::int64_t> if_revision,
                         const std::string& text) {
    Request request;
    request.command = operation.kind == Operation::Kind::flip ? "fleet flip" : "fleet set-weight";
    request.operations = {std::move(operation)};
    request.force = force;
    request.if_revision = if_revision;
    request.text = "fleet rollout " + route + ": " + text;
    const Reply reply = call(context, request);
    if (!reply.response) return Written{0, "proxyd could not be reached"};
    if (!reply.response->ok) return Written{0, reply.response->error.message};
    const json::value* revision = reply.response->result.if_contains("revision");
    return Written{revision != nullptr && revision->is_int64() ? revision->as_int64() : 0, ""};
  };
  const auto weight = [&](std::uint32_t ppm) {
    Operation op;
    op.kind = Operation::Kind::set_weight;
    op.route = route;
    op.weight_ppm = ppm;
    return op;
  };
  const auto weight_stays = [&] {
    std::cerr << "proxyctl: the fleet rollout of " << route << " stops here; its weight stays at "
              << format_percent(rollout.plan.steps_ppm[rollout.step])
              << "% fleet-wide (proxyctl fleet set-weight " << route << " 0 takes it back)\n";
  };
  // Weight 0 for the whole fleet, forced and whatever the revision: the rollout ends aborted.
  const auto abort = [&](const std::string& code, const std::string& reason) {
    rollout.phase = RolloutPhase::aborted;
    rollout.abort_code = code;
    rollout.reason = reason;
    say("aborted", rollout_end_line(rollout));
    const Written back = write(weight(0), true, std::nullopt, "abort");
    if (!back.error.empty()) {
      std::cerr << "proxyctl: weight 0 could not be written: " << back.error << "\n";
      weight_stays();
      return kRefused;
    }
    const Applied applied = wait_applied(context, back.revision, Clock::now() + invocation.timeout);
    if (applied.waiting && applied.waiting->empty()) {
      if (!context.json)
        std::cout << route << ": weight 0 (revision " << back.revision << ") applied by all "
                  << member_count(applied.view) << " members\n";
    } else if (applied.waiting) {
      std::cerr << "proxyctl: weight 0 (revision " << back.revision
                << ") is written but was not applied within " << invocation.timeout.count()
                << " ms by: " << joined(*applied.waiting) << " (they apply it when they can)\n";
    }
    return kRefused;
  };

  std::optional<std::int64_t> expected = invocation.request.if_revision;
  StepCounts at;
  for (std::size_t step = 0;; ++step) {
    rollout.step = step;
    const Written written =
        write(weight(rollout.plan.steps_ppm[step]), false, expected, rollout_step_text(rollout));
    if (!written.error.empty()) {
      if (step == 0) return refuse(written.error);  // nothing written
      return abort("conflict", rollout_step_text(rollout) + " not written: " + written.error);
    }
    expected = written.revision;
    const Applied applied = wait_applied(context, written.revision, Clock::now() + invocation.timeout);
    if (!applied.waiting) {
      weight_stays();
      return applied.exit_code;
    }
    if (!applied.waiting->empty()) {
      return abort("unapplied", "revision " + std::to_string(written.revision) +
                                    " not applied within " + format_duration(invocation.timeout) +
                                    " by: " + joined(*applied.waiting));
    }
    // The step starts now: its counts are from the reports that acknowledged it.
    counts.update(applied.view);
    at.live_at_step = counts.live();
    at.passive_at_step = counts.passive();
    if (step == 0) at.live_at_start = at.live_at_step;
    const std::string applied_line = route + " " + rollout_step_text(rollout) + ": revision " +
                                     std::to_string(written.revision) + " applied by all " +
                                     std::to_string(member_count(applied.view)) + " members";
    if (step == 0) {
      say("started", route + ": fleet rollout started on " + std::to_string(target.members) +
                         " members, passive " + rollout.passive + " against live " +
                         rollout.live + "\n" + applied_line);
    } else {
      say("step", applied_line);
    }
    const auto step_start = Clock::now();
    auto last_read = step_start;
    auto last_progress = step_start;
    for (;;) {
      std::this_thread::sleep_for(kFleetRolloutPollInterval);
      const Reply reply = call(context, status_request);
      if (!reply.response) {
        weight_stays();
        return reply.exit_code;
      }
      if (!reply.response->ok) {
        // etcd out of reach for a moment: the members keep serving; judge again once it is back.
        if (Clock::now() - last_read < invocation.timeout) continue;
        return abort("unreachable", "the fleet could not be read for " +
                                        format_duration(invocation.timeout) + ": " +
                                        reply.response->error.message);
      }
      last_read = Clock::now();
      const FleetView view = fleet_view_from_json(reply.response->result);
      if (view.desired_revision != *expected) {
        return abort("conflict", "the desired state was changed by another command during the "
                                 "rollout (revision " + std::to_string(view.desired_revision) +
                                     ", the rollout wrote " + std::to_string(*expected) + ")");
      }
      counts.update(view);
      at.live_now = counts.live();
      at.passive_now = counts.passive();
      rollout.held_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - step_start).count();
      const StepJudgement judged = judge_step(at, rollout.plan, rollout.held_ms);
      rollout.live_figures = judged.live;
      rollout.passive_figures = judged.passive;
      rollout.waiting_for = judged.wait.waiting_for;
      if (judged.verdict.abort) return abort(judged.verdict.code, judged.verdict.reason);
      if (judged.wait.done) break;
      if (tty) {
        std::cout << "\r\033[K" << rollout_progress_line(rollout) << std::flush;
      } else if (context.json && Clock::now() - last_progress >= kRolloutProgressEvery) {
        last_progress = Clock::now();
        print_event("progress", rollout);
      }
    }
    if (step + 1 < rollout.plan.steps_ppm.size()) continue;

    // The last step held: flip everywhere, or hold the weight.
    if (rollout.plan.then == RolloutThen::flip) {
      Operation flip;
      flip.kind = Operation::Kind::flip;
      flip.route = route;
      const Written flipped = write(flip, false, expected, "complete, then flip");
      if (!flipped.error.empty()) return abort("conflict", "the flip was refused: " + flipped.error);
      const Applied done = wait_applied(context, flipped.revision, Clock::now() + invocation.timeout);
      if (!done.waiting) return done.exit_code;
      rollout.phase = RolloutPhase::completed;
      say("completed", rollout_end_line(rollout));
      if (!done.waiting->empty()) {
        std::cerr << "proxyctl: the flip (revision " << flipped.revision
                  << ") is written but was not applied within " << invocation.timeout.count()
                  << " ms by: " << joined(*done.waiting) << " (they apply it when they can)\n";
        return kNotAcknowledged;
      }
      return kDone;
    }
    rollout.phase = RolloutPhase::completed;
    say("completed", rollout_end_line(rollout));
    return kDone;
  }
}

// `proxyctl COMMAND ... --help`: the help of the command the arguments start with.
std::vector<const CommandRow*> help_rows_for(const std::vector<std::string>& args) {
  if (args.size() >= 2) {
    if (const CommandRow* row = find_command(args[0] + " " + args[1])) return {row};
  }
  const Parsed parsed = parse_command_line({"help", args[0]});
  return parsed.ok() ? parsed.invocation.help_rows : std::vector<const CommandRow*>{};
}

int run(int argc, char** argv) {
  // Global options only; everything else (the command and its own options) goes to the table.
  CLI::App app{"proxyctl", "proxyctl"};
  app.set_help_flag();
  app.allow_extras();
  std::string socket_path;
  std::string if_generation;
  bool json = false;
  bool help = false;
  bool man = false;
  bool local = false;
  CLI::Option* socket_option = app.add_option("-s,--socket", socket_path);
  CLI::Option* generation_option = app.add_option("--if-generation", if_generation);
  app.add_flag("--json", json);
  app.add_flag("--local", local);
  app.add_flag("-h,--help", help);
  // Not in help: the build runs it to write proxyctl.8 (control/man_page.hpp).
  app.add_flag("--man", man);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own exit codes never leak: any problem with the options is a usage error.
    std::cerr << "proxyctl: " << e.what() << "\nrun `proxyctl help` for the list of commands\n";
    return kUsage;
  }
  const std::vector<std::string> args = app.remaining();

  if (man) {
    std::cout << man_page();
    return kDone;
  }
  if (help) {
    if (args.empty()) {
      std::cout << help_text();
      return kDone;
    }
    const std::vector<const CommandRow*> rows = help_rows_for(args);
    if (rows.empty()) {
      std::cerr << usage_message(parse_command_line(args));
      return kUsage;
    }
    std::cout << help_text(rows);
    return kDone;
  }
  if (args.empty()) {
    std::cerr << help_text();
    return kUsage;
  }

  std::optional<std::string> generation;
  if (generation_option->count() > 0) generation = if_generation;
  Parsed parsed = parse_command_line(args, generation);
  if (!parsed.ok()) {
    std::cerr << usage_message(parsed);
    return kUsage;
  }
  Invocation& invocation = parsed.invocation;
  // A fleet member refuses local changes without it (docs/fleet.md).
  if (local) {
    // `rollout ROUTE` (a start) changes weights; pause, resume and abort only act on a rollout
    // that was started with it.
    const bool rollout_start = invocation.row->words.size() == 1 && invocation.row->words[0] == "rollout";
    if (!invocation.row->mutates || invocation.row->words[0] == "fleet" ||
        (invocation.row->words[0] == "rollout" && !rollout_start)) {
      std::cerr << "proxyctl: --local applies only to local changes (set-weight, set-live, "
                   "set-passive, flip, apply, reset, server ..., rollout ROUTE)\n";
      return kUsage;
    }
    invocation.request.local = true;
  }
  if (invocation.action == Action::help) {
    std::cout << (invocation.help_rows.empty() ? help_text() : help_text(invocation.help_rows));
    return kDone;
  }

  Context context;
  context.json = json;
  if (socket_option->count() > 0) {
    if (socket_path.empty()) {
      std::cerr << "proxyctl: -s needs a path\nrun `proxyctl help` for the list of commands\n";
      return kUsage;
    }
    context.path = socket_path;
  } else if (const char* env = std::getenv(std::string(kSocketEnv).c_str()); env && *env) {
    context.path = env;
  } else {
    context.path = std::string(kDefaultSocketPath);
  }
  if (const char* env = std::getenv("PROXYCTL_TIMEOUT"); env && *env) {
    const std::optional<milliseconds> timeout = parse_timeout(env);
    if (!timeout) {
      std::cerr << "proxyctl: PROXYCTL_TIMEOUT needs seconds (e.g. 30) or a duration (500ms, "
                   "90s, 2m), got \""
                << env << "\"\n";
      return kUsage;
    }
    context.reply_timeout = *timeout;
  }

  switch (invocation.action) {
    case Action::send:
      return send_and_render(context, invocation);
    case Action::wait_healthy:
      return wait_healthy(context, invocation);
    case Action::rollout:
      return follow_rollout(context, invocation);
    case Action::fleet_write:
      return fleet_write(context, invocation);
    case Action::fleet_rollout:
      return fleet_rollout(context, invocation);
    case Action::apply_batch: {
      std::string error;
      const std::optional<std::string> text = read_batch(invocation.batch_source, error);
      if (!text) {
        std::cerr << "proxyctl: apply: " << error << "\nusage: proxyctl "
                  << invocation.row->usage << "\n";
        return kUsage;
      }
      const std::string source = invocation.batch_source == "-" ? "stdin" : invocation.batch_source;
      Parsed batch = parse_batch(*text, source, generation);
      if (!batch.ok()) {
        std::cerr << usage_message(batch);
        return kUsage;
      }
      batch.invocation.request.force = invocation.request.force;
      batch.invocation.request.local = invocation.request.local;
      if (invocation.row->words[0] == "fleet") {
        batch.invocation.row = invocation.row;
        batch.invocation.request.command = invocation.request.command;
        batch.invocation.request.if_revision = invocation.request.if_revision;
        batch.invocation.timeout = invocation.timeout;
        return fleet_write(context, batch.invocation);
      }
      return send_and_render(context, batch.invocation);
    }
    case Action::help:
      break;
  }
  return kDone;
}

}  // namespace
}  // namespace proxyd::control

int main(int argc, char** argv) {
  // A closed stdout (proxyctl status | head -1) must not kill it before its exit code is set.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return proxyd::control::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "proxyctl: " << e.what() << "\n";
    return proxyd::control::kUnreachable;
  }
}
