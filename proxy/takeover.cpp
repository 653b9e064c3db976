// Takeover of the listening sockets between two proxyd processes. See takeover.hpp.
#include "takeover.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

namespace proxyd {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// The most sockets one offer carries: listeners x workers, far above any real config.
constexpr std::size_t kMaxFds = 1024;
// The most bytes of the offer's line: the runtime state it carries grows with routes and servers.
constexpr std::size_t kMaxOfferBytes = 16 << 20;
// How long after the old proxyd's own deadline (ok_within after its offer) the new one still
// waits for the verdict: the old one answers the moment "ok" arrives, or at that deadline.
constexpr std::chrono::seconds kVerdictGrace{10};
// read_line's error when `deadline` passed.
constexpr std::string_view kNoAnswer = "no answer in time";

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool fill_address(const std::string& path, sockaddr_un& address, std::string& error) {
  if (path.size() >= sizeof(address.sun_path)) {
    error = path + ": too long for a Unix socket path";
    return false;
  }
  address = {};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Waits until `fd` is readable or `deadline` passes.
bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
}

// Reads up to the first newline (kept out), bounded in size and time; attached sockets are
// collected into `fds`.
bool read_line(int fd, Clock::time_point deadline, std::string& line, std::vector<int>* fds,
               std::string& error) {
  line.clear();
  for (;;) {
    if (!wait_readable(fd, deadline)) {
      error = kNoAnswer;
      return false;
    }
    char buffer[64 * 1024];
    iovec io{buffer, sizeof buffer};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    if (fds != nullptr) {
      message.msg_control = control;
      message.msg_controllen = sizeof control;
    }
    const ssize_t n = ::recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno_text("recvmsg");
      return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int received = -1;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (fds != nullptr) fds->push_back(received);
      }
    }
    if ((message.msg_flags & MSG_CTRUNC) != 0) {
      error = "too many sockets in one message";
      return false;
    }
    if (n == 0) {
      error = "the other proxyd closed the connection";
      return false;
    }
    line.append(buffer, static_cast<std::size_t>(n));
    if (const auto end = line.find('\n'); end != std::string::npos) {
      line.resize(end);
      return true;
    }
    if (line.size() > kMaxOfferBytes) {
      error = "the answer is too long";
      return false;
    }
  }
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Sends `fds` in batches (the kernel takes at most 253 per message), each with one byte of the
// text, then the rest of the text.
bool send_with_fds(int fd, std::string_view text, const std::vector<int>& fds) {
  std::size_t sent = 0;
  while (sent < fds.size()) {
    const std::size_t batch = std::min<std::size_t>(253, fds.size() - sent);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)] = {};
    char byte = text.front();
    iovec io{&byte, 1};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * batch);
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * batch);
    std::memcpy(CMSG_DATA(c), fds.data() + sent, sizeof(int) * batch);
    ssize_t n;
    do {
      n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != 1) return false;
    text.remove_prefix(1);
    sent += batch;
  }
  return write_all(fd, text);
}

}  // namespace

TakeoverGrant::TakeoverGrant(int connection, TakeoverOffer offer)
    : connection_(connection), offer_(std::move(offer)), received_(Clock::now()) {}

TakeoverGrant::~TakeoverGrant() {
  for (const auto& listener : offer_.listeners)
    for (const int fd : listener.fds) ::close(fd);
  if (connection_ >= 0) ::close(connection_);
}

TakeoverGrant::TakeoverGrant(TakeoverGrant&& other) noexcept
    : connection_(std::exchange(other.connection_, -1)),
      offer_(std::move(other.offer_)),
      received_(other.received_) {
  other.offer_ = {};
}

TakeoverGrant& TakeoverGrant::operator=(TakeoverGrant&& other) noexcept {
  if (this != &other) {
    TakeoverGrant gone(std::move(*this));
    connection_ = std::exchange(other.connection_, -1);
    offer_ = std::move(other.offer_);
    received_ = other.received_;
    other.offer_ = {};
  }
  return *this;
}

std::vector<int> TakeoverGrant::take(const std::string& name, const std::string& address) {
  const auto host = [](std::string_view text) { return text.substr(0, text.rfind(':')); };
  const bool any_port = address.ends_with(":0");
  for (auto& listener : offer_.listeners) {
    if (listener.name != name) continue;
    if (listener.address == address || (any_port && host(listener.address) == host(address)))
      return std::exchange(listener.fds, {});
  }
  return {};
}

TakeoverVerdict TakeoverGrant::done(std::string& why) {
  for (auto& listener : offer_.listeners)
    for (const int fd : std::exchange(listener.fds, {})) ::close(fd);
  if (connection_ < 0) {
    why = "no connection to the old proxyd";
    return TakeoverVerdict::gone;
  }
  if (!write_all(connection_, kTakeoverDone)) {
    why = errno_text("cannot send ok");
    let_go();
    return TakeoverVerdict::gone;
  }
  if (offer_.protocol < 2) {  // it says nothing: "ok" sent is done
    let_go();
    return TakeoverVerdict::draining;
  }
  std::string line;
  if (!read_line(connection_, received_ + offer_.ok_within + kVerdictGrace, line, nullptr, why)) {
    let_go();
    return TakeoverVerdict::gone;
  }
  if (line + "\n" == kTakeoverServingOn) return TakeoverVerdict::serving_on;
  let_go();
  if (line + "\n" == kTakeoverDraining) return TakeoverVerdict::draining;
  why = "the old proxyd answered \"" + line.substr(0, 100) + "\"";
  return TakeoverVerdict::gone;
}

void TakeoverGrant::let_go() {
  for (auto& listener : offer_.listeners)
    for (const int fd : std::exchange(listener.fds, {})) ::close(fd);
  if (connection_ >= 0) ::close(std::exchange(connection_, -1));
}

TakeoverGrant request_takeover(const std::string& path, std::chrono::milliseconds timeout,
                               std::string& error) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_un address{};
  if (!fill_address(path, address, error)) return {};
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = errno_text("socket");
    return {};
  }
  std::vector<int> fds;
  const auto fail = [&](std::string why) {
    error = std::move(why);
    for (const int received : fds) ::close(received);
    ::close(fd);
    return TakeoverGrant{};
  };
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return fail(errno_text("cannot connect to " + path + " (is proxyd running there?)"));
  if (!write_all(fd, kTakeoverRequest)) return fail(errno_text("cannot send the request"));
  std::string line;
  std::string why;
  if (!read_line(fd, deadline, line, &fds, why)) return fail(path + ": " + why);

  boost::system::error_code ec;
  const json::value reply = json::parse(line, ec);
  const json::object* root = ec ? nullptr : reply.if_object();
  if (root == nullptr) return fail(path + ": the answer is not JSON");
  if (const json::value* refused = root->if_contains("error"); refused && refused->is_string())
    return fail(path + ": " + std::string(refused->get_string()));
  TakeoverOffer offer;
  std::size_t used = 0;
  const json::value* listeners = root->if_contains("listeners");
  if (listeners == nullptr || !listeners->is_array()) return fail(path + ": no listeners");
  for (const json::value& entry : listeners->get_array()) {
    const json::object* l = entry.if_object();
    const json::value* name = l ? l->if_contains("name") : nullptr;
    const json::value* where = l ? l->if_contains("address") : nullptr;
    const json::value* count = l ? l->if_contains("fds") : nullptr;
    if (!name || !where || !count || !name->is_string() || !where->is_string() ||
        !count->is_int64() || count->get_int64() < 1 ||
        used + static_cast<std::size_t>(count->get_int64()) > fds.size())
      return fail(path + ": a malformed listener entry");
    TakeoverOffer::Listener listener;
    listener.name = std::string(name->get_string());
    listener.address = std::string(where->get_string());
    const auto n = static_cast<std::size_t>(count->get_int64());
    listener.fds.assign(fds.begin() + static_cast<long>(used),
                        fds.begin() + static_cast<long>(used + n));
    used += n;
    offer.listeners.push_back(std::move(listener));
  }
  if (used != fds.size()) return fail(path + ": more sockets than listeners");
  if (const json::value* healthy = root->if_contains("healthy"); healthy && healthy->is_array()) {
    for (const json::value& server : healthy->get_array())
      if (server.is_string()) offer.healthy.emplace_back(server.get_string());
  }
  if (const json::value* state = root->if_contains("state"); state && state->is_string())
    offer.state = std::string(state->get_string());
  if (const json::value* file = root->if_contains("state_file"); file && file->is_string())
    offer.state_file = std::string(file->get_string());
  const json::value* protocol = root->if_contains("protocol");
  offer.protocol = protocol && protocol->is_int64() ? static_cast<int>(protocol->get_int64()) : 1;
  if (const json::value* within = root->if_contains("ok_within_ms");
      within && within->is_int64() && within->get_int64() > 0)  // at most a day: no overflow
    offer.ok_within = std::chrono::milliseconds(std::min<std::int64_t>(within->get_int64(),
                                                                       86'400'000));
  fds.clear();  // owned by the offer from here
  return TakeoverGrant(fd, std::move(offer));
}

TakeoverListener::~TakeoverListener() { stop(); }

bool TakeoverListener::start(const std::string& path, int signal, std::string& error) {
  sockaddr_un address{};
  if (!fill_address(path, address, error)) return false;
  // The control socket, opened first, already proved that no other proxyd runs here.
  ::unlink(path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
    error = errno_text("takeover socket");
    stop();
    return false;
  }
  const mode_t old_mask = ::umask(0177);  // 0600: this user (and root) only
  const int rc = ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::umask(old_mask);
  if (rc != 0 || ::listen(listen_fd_, 4) != 0) {
    error = errno_text("cannot listen on " + path);
    stop();
    return false;
  }
  path_ = path;
  thread_ = std::thread([this, signal] {
    pthread_setname_np(pthread_self(), "proxyd-takeover");
    run(signal);
  });
  return true;
}

void TakeoverListener::run(int signal) {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    const int connection = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) {
      // Out of descriptors, say: the connection stays in the backlog, and polling again at once
      // would spin this thread at 100% while that lasts. Pause 100 ms (a stop still wakes it).
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        pollfd wake{wake_[0], POLLIN, 0};
        if (::poll(&wake, 1, 100) > 0) return;
      }
      continue;
    }
    // Only this process's own user (or root) may take its sockets.
    ucred peer{};
    socklen_t size = sizeof peer;
    std::string line;
    std::string ignored;
    const bool allowed =
        ::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0 &&
        (peer.uid == 0 || peer.uid == ::geteuid());
    if (!allowed ||
        !read_line(connection, Clock::now() + std::chrono::seconds(5), line, nullptr, ignored) ||
        line + "\n" != kTakeoverRequest) {
      write_all(connection, allowed ? "{\"error\":\"not a takeover request\"}\n"
                                    : "{\"error\":\"only proxyd's own user may take over\"}\n");
      ::close(connection);
      continue;
    }
    // One at a time: a second request while the first waits for main is turned away.
    int expected = -1;
    if (!pending_.compare_exchange_strong(expected, connection)) {
      write_all(connection, "{\"error\":\"a takeover is already in progress\"}\n");
      ::close(connection);
      continue;
    }
    ::kill(::getpid(), signal);
  }
}

int TakeoverListener::take() { return pending_.exchange(-1); }

void TakeoverListener::stop() {
  if (thread_.joinable()) {
    const char byte = 0;
    [[maybe_unused]] const ssize_t n = ::write(wake_[1], &byte, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) ::close(std::exchange(*fd, -1));
  }
  if (const int pending = pending_.exchange(-1); pending >= 0) ::close(pending);
  if (!path_.empty()) ::unlink(std::exchange(path_, {}).c_str());
}

bool send_offer(int connection, const TakeoverOffer& offer, std::string& error) {
  json::array listeners;
  std::vector<int> fds;
  for (const auto& listener : offer.listeners) {
    listeners.push_back(json::object{{"name", listener.name},
                                     {"address", listener.address},
                                     {"fds", static_cast<std::int64_t>(listener.fds.size())}});
    fds.insert(fds.end(), listener.fds.begin(), listener.fds.end());
  }
  json::array healthy;
  for (const std::string& server : offer.healthy) healthy.emplace_back(server);
  json::object reply{{"listeners", std::move(listeners)}, {"healthy", std::move(healthy)}};
  if (offer.protocol >= 2) {  // protocol 1 (a test plays an older proxyd) says neither
    reply["protocol"] = offer.protocol;
    reply["ok_within_ms"] = static_cast<std::int64_t>(offer.ok_within.count());
  }
  if (offer.state) {
    reply["state"] = *offer.state;
    reply["state_file"] = offer.state_file;
  }
  const std::string text = json::serialize(reply) + "\n";
  // A new proxyd that stops reading (stopped, or swapped out) cannot hold this thread, which
  // refuses every change meanwhile, past the timeout.
  const auto timeout = offer.ok_within.count();
  const timeval send_timeout{static_cast<time_t>(timeout / 1000),
                             static_cast<suseconds_t>(timeout % 1000 * 1000)};
  ::setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  if (text.size() > kMaxOfferBytes || fds.size() > kMaxFds) {
    error = "the offer is too large (" + std::to_string(text.size()) + " bytes, " +
            std::to_string(fds.size()) + " sockets)";
    return false;
  }
  if (!send_with_fds(connection, text, fds)) {
    error = errno_text("cannot send the sockets");
    return false;
  }
  return true;
}

OkWait await_ok(int connection, Clock::time_point deadline, std::string& error) {
  std::string line;
  if (read_line(connection, deadline, line, nullptr, error)) {
    if (line + "\n" != kTakeoverDone) {
      error = "the new proxyd answered \"" + line.substr(0, 100) + "\"";
      return OkWait::failed;
    }
    // Best effort: a protocol 1 proxyd does not read it, and may have closed already.
    write_all(connection, kTakeoverDraining);
    return OkWait::ok;
  }
  if (error != kNoAnswer) return OkWait::failed;
  // Said whether or not "ok" is on its way: this proxyd serves on from here, whatever comes.
  write_all(connection, kTakeoverServingOn);
  return OkWait::late;
}

bool wait_let_go(int connection, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!wait_readable(connection, deadline)) return false;
    char discarded[256];  // a late "ok"
    const ssize_t n = ::recv(connection, discarded, sizeof discarded, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
}

}  // namespace proxyd
