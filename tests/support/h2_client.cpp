// The raw HTTP/2 test client of h2_client.hpp.
#include "tests/support/h2_client.hpp"

#include <nghttp2/nghttp2.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace proxyd::test {

struct H2TestClient::Body {
  std::string data;
  std::uint64_t size = 0;  // data.size(), or the generated length
  std::uint64_t sent = 0;
  std::uint64_t stop = UINT64_MAX;  // no byte past this is sent: the stream stays open
  bool generated = false;
};

struct H2TestCallbacks {
  static H2TestClient& self(void* user) { return *static_cast<H2TestClient*>(user); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t, void* user) {
    H2TestClient::Result& r = self(user).results_[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      r.status = static_cast<unsigned>(std::stoul(v));
      if (r.status / 100 == 1) r.interim.push_back(r.status);
    } else if (r.in_trailers) {
      r.trailers.emplace_back(std::move(n), std::move(v));
    } else {
      r.headers.emplace_back(std::move(n), std::move(v));
    }
    return 0;
  }
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2TestClient::Result& r = self(user).results_[frame->hd.stream_id];
    r.in_trailers = r.status >= 200;
    return 0;
  }
  static int on_data(nghttp2_session*, std::uint8_t, std::int32_t stream_id,
                     const std::uint8_t* data, std::size_t len, void* user) {
    H2TestClient::Result& r = self(user).results_[stream_id];
    r.body_bytes += len;
    if (r.body.size() < 64 * 1024) r.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int on_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t code, void* user) {
    H2TestClient::Result& r = self(user).results_[stream_id];
    r.closed = true;
    r.error = code;
    self(user).close_order_.push_back(stream_id);
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self(user).goaway_ = true;
      self(user).goaway_error_ = frame->goaway.error_code;
    }
    return 0;
  }
  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* body = static_cast<H2TestClient::Body*>(source->ptr);
    const std::uint64_t end = std::min(body->size, body->stop);
    if (body->sent == end && end < body->size) return NGHTTP2_ERR_DEFERRED;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(length, end - body->sent));
    if (body->generated) {
      for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<std::uint8_t>('a' + (body->sent + i) % 26);
    } else {
      std::memcpy(buf, body->data.data() + body->sent, n);
    }
    body->sent += n;
    if (body->sent == body->size) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

std::uint64_t H2TestClient::body_sent(std::int32_t stream_id) const {
  auto it = bodies_.find(stream_id);
  return it == bodies_.end() ? 0 : it->second->sent;
}

std::int32_t H2TestClient::send_window(std::int32_t stream_id) const {
  return nghttp2_session_get_stream_remote_window_size(static_cast<nghttp2_session*>(session_),
                                                       stream_id);
}

std::int32_t H2TestClient::connection_send_window() const {
  return nghttp2_session_get_remote_window_size(static_cast<nghttp2_session*>(session_));
}

std::uint32_t H2TestClient::server_setting(int id) const {
  return nghttp2_session_get_remote_settings(static_cast<nghttp2_session*>(session_),
                                             static_cast<nghttp2_settings_id>(id));
}

std::string H2TestClient::Result::header(const std::string& name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return v;
  return {};
}

H2TestClient::H2TestClient(std::uint16_t port, int receive_buffer,
                           std::uint32_t fixed_stream_window) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (receive_buffer > 0)
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, H2TestCallbacks::on_header);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks,
                                                          H2TestCallbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, H2TestCallbacks::on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, H2TestCallbacks::on_close);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, H2TestCallbacks::on_frame_recv);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  if (fixed_stream_window != 0) nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_session* session = nullptr;
  nghttp2_session_client_new2(&session, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  session_ = session;
  const std::uint32_t window = fixed_stream_window != 0 ? fixed_stream_window : 1u << 20;
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
                                             {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
}

H2TestClient::~H2TestClient() {
  if (session_ != nullptr) nghttp2_session_del(static_cast<nghttp2_session*>(session_));
  if (fd_ >= 0) ::close(fd_);
}

std::int32_t H2TestClient::request(const std::string& method, const std::string& path,
                                   const std::vector<std::pair<std::string, std::string>>& fields,
                                   std::string body) {
  auto nv = [](const std::string& n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                      v.size(), NGHTTP2_NV_FLAG_NONE};
  };
  const std::string m = ":method", p = ":path", s = ":scheme", a = ":authority", http = "http",
                    host = "localhost";
  std::vector<nghttp2_nv> nva{nv(m, method), nv(p, path), nv(s, http), nv(a, host)};
  // Names as given (nghttp2 would lowercase a copy): kept alive by the client until it is gone.
  for (const auto& [n, v] : fields) {
    const std::string& name = kept_.emplace_back(n);
    nghttp2_nv field = nv(name, v);
    field.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
    nva.push_back(field);
  }
  auto* session = static_cast<nghttp2_session*>(session_);
  if (session == nullptr) return -1;
  if (body.empty()) {
    const std::int32_t id =
        nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), nullptr, nullptr);
    if (id > 0) results_[id];
    return id;
  }
  auto owned = std::make_unique<Body>();
  owned->size = body.size();
  owned->data = std::move(body);
  return submit(nva.data(), nva.size(), std::move(owned));
}

std::int32_t H2TestClient::request_generated(
    const std::string& method, const std::string& path, std::uint64_t size,
    const std::vector<std::pair<std::string, std::string>>& fields, std::uint64_t stop_after) {
  auto owned = std::make_unique<Body>();
  owned->size = size;
  owned->stop = stop_after;
  owned->generated = true;
  const std::string m = ":method", p = ":path", s = ":scheme", a = ":authority", http = "http",
                    host = "localhost";
  auto nv = [](const std::string& n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(),
                      v.size(), NGHTTP2_NV_FLAG_NONE};
  };
  std::vector<nghttp2_nv> nva{nv(m, method), nv(p, path), nv(s, http), nv(a, host)};
  for (const auto& [n, v] : fields) nva.push_back(nv(n, v));
  return submit(nva.data(), nva.size(), std::move(owned));
}

std::int32_t H2TestClient::submit(const void* nv, std::size_t count, std::unique_ptr<Body> owned) {
  auto* session = static_cast<nghttp2_session*>(session_);
  if (session == nullptr) return -1;
  const auto* nva = static_cast<const nghttp2_nv*>(nv);
  nghttp2_data_provider provider{};
  provider.source.ptr = owned.get();
  provider.read_callback = H2TestCallbacks::read_body;
  const std::int32_t id =
      nghttp2_submit_request(session, nullptr, nva, count, &provider, nullptr);
  if (id > 0) {
    bodies_[id] = std::move(owned);
    results_[id];
  }
  return id;
}

void H2TestClient::reset(std::int32_t stream_id) {
  if (session_ == nullptr) return;
  nghttp2_submit_rst_stream(static_cast<nghttp2_session*>(session_), NGHTTP2_FLAG_NONE, stream_id,
                            NGHTTP2_CANCEL);
}

bool H2TestClient::send_raw(const std::string& bytes) {
  if (fd_ < 0 || !flush()) return false;
  for (std::size_t off = 0; off < bytes.size();) {
    const ssize_t w = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

bool H2TestClient::flush() {
  auto* session = static_cast<nghttp2_session*>(session_);
  if (session == nullptr) return false;
  for (;;) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n <= 0) return n == 0;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::send(fd_, data + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += w;
    }
  }
}

bool H2TestClient::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto* session = static_cast<nghttp2_session*>(session_);
  std::uint8_t buf[16384];
  for (;;) {
    // A failed send (the server closed, maybe with a GOAWAY we have not read yet) ends the
    // sending only: what the server said before closing is still read, up to the end of it.
    if (!eof_ && !send_failed_ && !flush()) send_failed_ = true;
    if (done()) return true;
    if (eof_) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100))) <= 0) continue;
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      continue;
    }
    if (nghttp2_session_mem_recv(session, buf, static_cast<std::size_t>(n)) < 0) eof_ = true;
  }
}

bool H2TestClient::wait_closed(std::int32_t stream_id, std::chrono::milliseconds timeout) {
  run_until([&] { return results_[stream_id].closed; }, timeout);
  return results_[stream_id].closed;
}

bool H2TestClient::wait_all_closed(std::chrono::milliseconds timeout) {
  const auto all_closed = [&] {
    for (const auto& [id, r] : results_)
      if (!r.closed) return false;
    return true;
  };
  run_until(all_closed, timeout);
  return all_closed();
}

}  // namespace proxyd::test
