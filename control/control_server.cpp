// The control socket server: accepts Unix-socket connections on its own thread, checks each peer's
// credentials, reads bounded request lines with a deadline, runs each command through AdminApi and
// writes the reply. One async style: C++20 coroutines with as_tuple (errors are values, never
// exceptions), and `||` with a timer for every deadline.
#include "control/control_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <thread>
#include <utility>

#include "control/server_commands.hpp"
#include "proxy/log.hpp"

namespace proxyd::control {

namespace net = boost::asio;
using local = net::local::stream_protocol;
using error_code = boost::system::error_code;
using namespace net::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// How long the accept loop pauses after an accept error (say, out of descriptors) so that it does
// not spin this thread at 100% while the condition lasts.
constexpr std::chrono::milliseconds kAcceptErrorPause{100};

void log_exception(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_line(std::string("internal error: ") + e.what());
  } catch (...) {
    log_line("internal error: unknown exception");
  }
}

// SO_PEERCRED for uid, gid and pid; SO_PEERGROUPS (Linux 4.13+) for the supplementary groups,
// left empty where the kernel does not have it.
bool peer_credentials(int fd, Caller& caller, std::vector<gid_t>& groups) {
  ucred cred{};
  socklen_t length = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return false;
  caller.uid = cred.uid;
  caller.gid = cred.gid;
  caller.pid = cred.pid;
#ifdef SO_PEERGROUPS
  std::vector<gid_t> buffer(64);
  socklen_t bytes = static_cast<socklen_t>(buffer.size() * sizeof(gid_t));
  int rc = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buffer.data(), &bytes);
  if (rc != 0 && errno == ERANGE) {
    buffer.resize(bytes / sizeof(gid_t));
    rc = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buffer.data(), &bytes);
  }
  if (rc == 0) {
    buffer.resize(bytes / sizeof(gid_t));
    groups = std::move(buffer);
  }
#endif
  return true;
}

// A socket file left by a proxyd that died is replaced; one that answers belongs to a running
// proxyd and is left alone; anything else at the path is not ours to delete.
bool clear_stale_socket(const std::string& path, std::string& error) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    error = "cannot check " + path + ": " + std::strerror(errno);
    return false;
  }
  if (!S_ISSOCK(st.st_mode)) {
    error = path + " exists and is not a socket; not replacing it";
    return false;
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("cannot create a socket: ") + std::strerror(errno);
    return false;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int connect_errno = errno;
  ::close(fd);
  // EAGAIN: a listener whose backlog is full is alive all the same.
  if (rc == 0 || connect_errno == EAGAIN || connect_errno == EINPROGRESS) {
    error = "another process is already serving the control socket " + path +
            " (is another proxyd running?)";
    return false;
  }
  if (connect_errno != ECONNREFUSED && connect_errno != ENOENT) {
    error = "cannot check " + path + ": " + std::strerror(connect_errno);
    return false;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    error = "cannot remove the stale socket " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

net::awaitable<bool> write_line(local::socket& socket, net::steady_timer& timer,
                                std::chrono::milliseconds timeout, std::string line) {
  line += '\n';
  timer.expires_after(timeout);
  const auto outcome = co_await (net::async_write(socket, net::buffer(line), use_tuple) ||
                                 timer.async_wait(use_tuple));
  co_return outcome.index() == 0 && !std::get<0>(std::get<0>(outcome));
}

}  // namespace

namespace {

// Is the peer root or `self`, or named by `uids`, or in one of `gids` (by its primary group or a
// supplementary one)?
bool peer_matches(const Caller& caller, const std::vector<gid_t>& groups,
                  const std::vector<uid_t>& uids, const std::vector<gid_t>& gids) {
  const auto uid = static_cast<uid_t>(caller.uid);
  if (std::find(uids.begin(), uids.end(), uid) != uids.end()) return true;
  const auto in_gids = [&](gid_t gid) {
    return std::find(gids.begin(), gids.end(), gid) != gids.end();
  };
  if (caller.gid >= 0 && in_gids(static_cast<gid_t>(caller.gid))) return true;
  return std::any_of(groups.begin(), groups.end(), in_gids);
}

}  // namespace

Access peer_access(const Caller& caller, const std::vector<gid_t>& groups,
                   const ControlServerOptions& options, uid_t self) {
  if (caller.uid < 0) return Access::none;
  const auto uid = static_cast<uid_t>(caller.uid);
  if (uid == 0 || uid == self) return Access::change;
  if (peer_matches(caller, groups, options.allowed_uids, options.allowed_gids)) {
    return Access::change;
  }
  if (peer_matches(caller, groups, options.read_uids, options.read_gids)) return Access::read;
  return Access::none;
}

std::string handle_line(AdminApi& api, std::string_view line, const Caller& caller,
                        Access granted) {
  try {
    const DecodedRequest decoded = decode_request(line);
    if (!decoded.request) {
      return encode_response(error_response(decoded.error.kind, decoded.error.message));
    }
    return encode_response(execute(api, *decoded.request, caller, granted));
  } catch (const std::exception& e) {
    log_line(std::string("internal error: ") + e.what());
    return encode_response(error_response(ErrorKind::internal, "internal error"));
  }
}

// The server's state. Owner: ControlServer. Thread: built and torn down on the owner's thread;
// between start() and stop() only the server thread touches it (options_ is read-only).
struct ControlServer::Impl {
  Impl(AdminApi& api, Options options) : api_(api), options_(std::move(options)) {}

  bool start(std::string& error);
  void stop();
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(local::socket socket);
  void refuse_busy(local::socket& socket);
  void remove_socket_file();

  AdminApi& api_;
  const Options options_;
  const uid_t self_uid_ = ::geteuid();
  std::size_t open_connections_ = 0;  // the server thread only
  log::Throttle accept_logged_{std::chrono::seconds(10)};  // the server thread only
  // The socket file this server created, so stop() never removes another process's socket.
  bool created_ = false;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  // Declared after the state the connection coroutines touch: destroying the io_context destroys
  // the coroutines still suspended in it.
  std::unique_ptr<net::io_context> io_ = std::make_unique<net::io_context>(1);
  std::optional<local::acceptor> acceptor_;
  std::thread thread_;
};

bool ControlServer::Impl::start(std::string& error) {
  if (thread_.joinable() || !io_) {
    error = "the control server was already started";
    return false;
  }
  const std::string& path = options_.path;
  if (path.empty()) {
    error = "no control socket path";
    return false;
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    error = "control socket path " + path + " is too long (" + std::to_string(path.size()) +
            " bytes; the limit is " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ")";
    return false;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code fs_error;
    std::filesystem::create_directories(parent, fs_error);
    if (fs_error) {
      error = "cannot create directory " + parent.string() + ": " + fs_error.message();
      return false;
    }
  }
  if (!clear_stale_socket(path, error)) return false;

  const auto fail = [&](const std::string& what, const error_code& ec) {
    error = what + ": " + ec.message();
    acceptor_.reset();
    remove_socket_file();
    return false;
  };
  const auto fail_errno = [&](const std::string& what) {
    return fail(what, error_code(errno, boost::system::system_category()));
  };
  error_code ec;
  acceptor_.emplace(*io_);
  acceptor_->open(local(), ec);
  if (ec) return fail("cannot create the control socket", ec);
  // The file appears with the process umask's mode until the chmod below; that window is
  // harmless because every connection's credentials are checked anyway.
  acceptor_->bind(local::endpoint(path), ec);
  if (ec) return fail("cannot bind the control socket " + path, ec);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    created_ = true;
    device_ = st.st_dev;
    inode_ = st.st_ino;
  }
  if (::chmod(path.c_str(), options_.mode) != 0) {
    return fail_errno("cannot set the mode of " + path);
  }
  if (options_.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *options_.group) != 0) {
    return fail_errno("cannot set the group of " + path + " to gid " +
                      std::to_string(*options_.group));
  }
  acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on " + path, ec);

  net::co_spawn(*io_, accept_loop(), log_exception);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "proxyd-control");
    // A handler that throws must not end the control plane: log it and keep serving.
    for (;;) {
      try {
        io_->run();
        return;
      } catch (...) {
        log_exception(std::current_exception());
      }
    }
  });
  return true;
}

void ControlServer::Impl::stop() {
  if (thread_.joinable()) {
    io_->stop();
    thread_.join();
  }
  // The thread is gone: the acceptor and the suspended connections (closed by destroying the
  // io_context that holds them) are touched by nobody else now.
  acceptor_.reset();
  io_.reset();
  remove_socket_file();
}

void ControlServer::Impl::remove_socket_file() {
  if (!created_) return;
  created_ = false;
  struct stat st {};
  if (::lstat(options_.path.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) {
    ::unlink(options_.path.c_str());
  }
}

void ControlServer::Impl::refuse_busy(local::socket& socket) {
  // Best effort and never blocking: a reply that does not fit right away is dropped.
  const std::string reply =
      encode_response(error_response(ErrorKind::busy, "too many control connections (" +
                                                          std::to_string(options_.max_connections) +
                                                          " open); try again")) +
      "\n";
  error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(reply), ec);
  socket.close(ec);
}

net::awaitable<void> ControlServer::Impl::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_->async_accept(use_tuple);
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor_->is_open()) co_return;
      // Out of descriptors, this comes back after every pause.
      if (accept_logged_.allow(std::chrono::steady_clock::now()))
        log_line("accept: " + ec.message() + " (the next 10 s of these are not logged)");
      net::steady_timer pause(*io_, kAcceptErrorPause);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (open_connections_ >= options_.max_connections) {
      refuse_busy(socket);
      continue;
    }
    net::co_spawn(*io_, serve(std::move(socket)), log_exception);
  }
}

// GCC 12 inlines the coroutine frame's operator new (Asio's aligned_alloc) and operator delete
// differently and then reports them as mismatched; they are the pair Asio defines. A false
// positive, silenced for this one function.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
net::awaitable<void> ControlServer::Impl::serve(local::socket socket) {
  ++open_connections_;
  struct Release {
    std::size_t& count;
    ~Release() { --count; }
  } release{open_connections_};
  net::steady_timer timer(*io_);
  const auto timeout = options_.io_timeout;

  Caller caller;
  std::vector<gid_t> groups;
  if (!peer_credentials(socket.native_handle(), caller, groups)) {
    log_line(std::string("cannot read the peer's credentials: ") + std::strerror(errno));
    co_return;
  }
  const Access granted = peer_access(caller, groups, options_, self_uid_);
  if (granted == Access::none) {
    log_line("refused uid=" + std::to_string(caller.uid) + " pid=" + std::to_string(caller.pid) +
             " gid=" + std::to_string(caller.gid) +
             ": not root, not proxyd's user, not in admin.control_allow_uids, "
             "admin.control_allow_gids, admin.control_read_uids or admin.control_read_gids");
    co_await write_line(
        socket, timer, timeout,
        encode_response(error_response(
            ErrorKind::forbidden,
            "uid " + std::to_string(caller.uid) +
                " may not use the control socket (allowed: root, proxyd's own user, "
                "admin.control_allow_uids, admin.control_allow_gids; read only: "
                "admin.control_read_uids, admin.control_read_gids)")));
    co_return;
  }

  std::string buffer;
  bool answered = false;
  // Several request lines may come one after another; each gets its reply before the next is read.
  for (;;) {
    // Intent: read one whole request line within the deadline and the size limit.
    timer.expires_after(timeout);
    const auto outcome = co_await (
        net::async_read_until(socket, net::dynamic_buffer(buffer, options_.max_request_bytes), '\n',
                              use_tuple) ||
        timer.async_wait(use_tuple));
    if (outcome.index() == 1) {
      // Half a request, or none at all, in time: say why and close. After a reply, an idle
      // connection just closes.
      if (!answered || !buffer.empty()) {
        co_await write_line(socket, timer, timeout,
                            encode_response(error_response(
                                ErrorKind::timeout, "no complete request line within " +
                                                        format_duration(timeout))));
      }
      co_return;
    }
    const auto [ec, length] = std::get<0>(outcome);
    std::string line;
    bool last = false;
    if (ec == net::error::not_found) {
      co_await write_line(socket, timer, timeout,
                          encode_response(error_response(
                              ErrorKind::too_large,
                              "the request line is longer than " +
                                  std::to_string(options_.max_request_bytes) + " bytes")));
      co_return;
    }
    if (ec == net::error::eof) {
      // A last line without its newline (`printf '...' | socat`) is still a request.
      if (buffer.empty()) co_return;
      line = std::move(buffer);
      last = true;
    } else if (ec) {
      co_return;
    } else {
      line = buffer.substr(0, length - 1);
      buffer.erase(0, length);
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();

    // Intent: run the command. Synchronously on this one thread, so commands never overlap.
    const std::string reply = handle_line(api_, line, caller, granted);
    answered = true;
    if (!co_await write_line(socket, timer, timeout, reply) || last) co_return;
  }
}
#pragma GCC diagnostic pop

ControlServer::ControlServer(AdminApi& api, Options options)
    : impl_(std::make_unique<Impl>(api, std::move(options))) {}

ControlServer::~ControlServer() { stop(); }

bool ControlServer::start(std::string& error) { return impl_->start(error); }

void ControlServer::stop() { impl_->stop(); }

const ControlServer::Options& ControlServer::options() const { return impl_->options_; }

}  // namespace proxyd::control
