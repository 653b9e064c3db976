// The etcd v3 JSON-gateway client of etcd_client.hpp: one HTTP/1.1 POST per unary call on a
// connection of its own (Connection: close; a fleet makes a few calls a second, so reuse would buy
// nothing), and a long-lived chunked response per watch whose newline-separated JSON messages are
// handed on as they arrive.
#include "proxy/etcd_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/evp.h>

#include <charconv>
#include <optional>

#include "proxy/awaitable_frames.hpp"

namespace proxyd::etcd {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
// A reply larger than this is not one proxyd asked for (the desired state is a few KiB).
constexpr std::uint64_t kMaxReply = 16 * 1024 * 1024;

// The gateway writes int64 fields as JSON strings ("revision":"7"); accept numbers too.
std::int64_t int_field(const json::object& object, std::string_view name) {
  const json::value* v = object.if_contains(name);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  if (!v->is_string()) return 0;
  const json::string& s = v->get_string();
  std::int64_t out = 0;
  std::from_chars(s.data(), s.data() + s.size(), out);
  return out;
}

std::string string_field(const json::object& object, std::string_view name) {
  const json::value* v = object.if_contains(name);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t header_revision(const json::object& body) {
  const json::value* header = body.if_contains("header");
  return header != nullptr && header->is_object() ? int_field(header->get_object(), "revision") : 0;
}

KeyValue key_value(const json::object& kv) {
  KeyValue out;
  out.key = base64_decode(string_field(kv, "key")).value_or("");
  out.value = base64_decode(string_field(kv, "value")).value_or("");
  out.create_revision = int_field(kv, "create_revision");
  out.mod_revision = int_field(kv, "mod_revision");
  out.lease = int_field(kv, "lease");
  return out;
}

// An error body of the gateway: {"error": "...", "message": "...", "code": N}, or for a stream
// {"error": {"message": ...}}.
std::string gateway_error(const json::object& body) {
  if (const json::value* e = body.if_contains("error")) {
    if (e->is_string()) return std::string(e->get_string());
    if (e->is_object()) return string_field(e->get_object(), "message");
  }
  return "";
}

http::request<http::string_body> post(const Endpoint& endpoint, std::string_view path,
                                      std::string body, bool keep_alive, const std::string& token) {
  http::request<http::string_body> request{http::verb::post, path, 11};
  request.set(http::field::host, endpoint.text());
  // The gateway hands this field to etcd as the request's auth token.
  if (!token.empty()) request.set(http::field::authorization, token);
  request.set(http::field::content_type, "application/json");
  request.set(http::field::user_agent, "proxyd-fleet");
  request.keep_alive(keep_alive);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

// One call's or watch's connection to an endpoint: TCP, or TLS over it when the endpoints are
// https:// ones. Every wait is within the TCP stream's deadline (set by the caller).
class Connection {
 public:
  Connection(const net::any_io_executor& executor, net::ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(executor, *tls);
    } else {
      tcp_.emplace(executor);
    }
  }
  beast::tcp_stream& tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *tcp_; }

  // Resolves, connects and (TLS) shakes hands, checking the certificate names `endpoint.host`.
  net::awaitable<std::string> open(const Endpoint& endpoint) {
    tcp::resolver resolver(tcp().get_executor());
    auto [rec, results] = co_await resolver.async_resolve(endpoint.host,
                                                          std::to_string(endpoint.port), use_tuple);
    if (rec) co_return "cannot resolve " + endpoint.host + ": " + rec.message();
    auto [cec, connected] = co_await tcp().async_connect(results, use_tuple);
    if (cec) co_return "cannot connect to " + endpoint.text() + ": " + cec.message();
    if (!tls_) co_return std::string();
    boost::system::error_code not_ip;
    net::ip::make_address(endpoint.host, not_ip);
    // SNI names a host, never an address (RFC 6066).
    if (not_ip) SSL_set_tlsext_host_name(tls_->native_handle(), endpoint.host.c_str());
    tls_->set_verify_callback(net::ssl::host_name_verification(endpoint.host));
    auto [hec] = co_await tls_->async_handshake(net::ssl::stream_base::client, use_tuple);
    if (hec) co_return "TLS handshake with " + endpoint.text() + " failed: " + hec.message();
    co_return std::string();
  }

  net::awaitable<beast::error_code> write(http::request<http::string_body> request) {
    co_return co_await on_stream([&](auto& s) { return http::async_write(s, request, use_tuple); });
  }
  template <class Parser>
  net::awaitable<beast::error_code> read(beast::flat_buffer& buffer, Parser& parser) {
    co_return co_await on_stream(
        [&](auto& s) { return http::async_read(s, buffer, parser, use_tuple); });
  }
  template <class Parser>
  net::awaitable<beast::error_code> read_header(beast::flat_buffer& buffer, Parser& parser) {
    co_return co_await on_stream(
        [&](auto& s) { return http::async_read_header(s, buffer, parser, use_tuple); });
  }
  template <class Parser>
  net::awaitable<beast::error_code> read_some(beast::flat_buffer& buffer, Parser& parser) {
    co_return co_await on_stream(
        [&](auto& s) { return http::async_read_some(s, buffer, parser, use_tuple); });
  }

 private:
  // `op` (an async operation started on the stream it is given, as_tuple'd) on the TLS stream or
  // the TCP one; its error code. (An if, not `?:`: GCC 12 destroys a temporary twice around a
  // co_await in a conditional.)
  template <class Op>
  net::awaitable<beast::error_code> on_stream(Op op) {
    if (tls_) {
      auto [ec, n] = co_await op(*tls_);
      co_return ec;
    }
    auto [ec, n] = co_await op(*tcp_);
    co_return ec;
  }

  std::optional<beast::tcp_stream> tcp_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
};

}  // namespace

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes: drop one per '='.
  std::size_t size = static_cast<std::size_t>(n);
  for (std::size_t i = text.size(); i > 0 && text[i - 1] == '=' && size > 0; --i) --size;
  out.resize(size);
  return out;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

struct Client::Impl {
  net::any_io_executor executor;
  std::vector<Endpoint> endpoints;
  std::chrono::milliseconds timeout;
  Credentials credentials;
  std::vector<std::string> tokens;  // per endpoint; "" until asked for
  std::optional<net::ssl::context> tls;  // https:// endpoints
  std::string setup_error;  // the TLS files could not be loaded: every call fails with it
  std::size_t current = 0;  // the endpoint tried first: the last one that answered
  beast::tcp_stream* watching = nullptr;  // the running watch's stream, for stop_watch()
};

Client::Client(net::any_io_executor executor, std::vector<Endpoint> endpoints,
               std::chrono::milliseconds timeout, Credentials credentials, TlsFiles tls)
    : impl_(std::make_unique<Impl>(Impl{std::move(executor), std::move(endpoints), timeout,
                                        std::move(credentials), {}, {}, {}})) {
  impl_->tokens.resize(impl_->endpoints.size());
  if (!tls.enabled) return;
  net::ssl::context& context = impl_->tls.emplace(net::ssl::context::tls_client);
  context.set_options(net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 |
                      net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  context.set_verify_mode(net::ssl::verify_peer);
  boost::system::error_code ec;
  const auto load = [&](const char* what, const std::string& file, auto&& step) {
    if (ec || file.empty()) return;
    step(ec);
    if (ec) impl_->setup_error = std::string("cannot load fleet.") + what + " " + file + ": " + ec.message();
  };
  if (tls.ca.empty()) {
    context.set_default_verify_paths(ec);
    if (ec) impl_->setup_error = "cannot load the system's CA certificates: " + ec.message();
  }
  load("ca", tls.ca, [&](auto& e) { context.load_verify_file(tls.ca, e); });
  load("cert", tls.cert, [&](auto& e) { context.use_certificate_chain_file(tls.cert, e); });
  load("key", tls.key, [&](auto& e) { context.use_private_key_file(tls.key, net::ssl::context::pem, e); });
}

Client::~Client() = default;

std::string Client::endpoint() const {
  return impl_->endpoints.empty() ? "" : impl_->endpoints[impl_->current].text();
}

net::awaitable<Client::Reply> Client::exchange(std::string_view path, const std::string& body,
                                               const std::string& token, bool& reached) {
  const Endpoint& endpoint = impl_->endpoints[impl_->current];
  Reply reply;
  reached = false;
  Connection connection(impl_->executor, impl_->tls ? &*impl_->tls : nullptr);
  connection.tcp().expires_after(impl_->timeout);  // the whole exchange: connect, write, read
  reply.error = co_await connection.open(endpoint);
  if (reply.error.empty()) {
    const beast::error_code wec =
        co_await connection.write(post(endpoint, path, body, false, token));
    if (wec) reply.error = "cannot send to " + endpoint.text() + ": " + wec.message();
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReply);
  if (reply.error.empty()) {
    const beast::error_code rec = co_await connection.read(buffer, parser);
    if (rec) reply.error = "no reply from " + endpoint.text() + ": " + rec.message();
  }
  if (!reply.error.empty()) co_return reply;
  // etcd answered: any problem from here on is the request's, not the endpoint's.
  reached = true;
  const auto& response = parser.get();
  json::error_code jec;
  json::value parsed = json::parse(response.body(), jec);
  if (jec || !parsed.is_object()) {
    reply.error = "etcd " + endpoint.text() + " answered HTTP " +
                  std::to_string(response.result_int()) + " without a JSON object";
    co_return reply;
  }
  reply.body = std::move(parsed.get_object());
  if (response.result_int() != 200) {
    reply.error = "etcd " + endpoint.text() + " answered HTTP " +
                  std::to_string(response.result_int()) + ": " + gateway_error(reply.body);
  }
  co_return reply;
}

net::awaitable<Client::Reply> Client::token() {
  Reply out;
  std::string& token = impl_->tokens[impl_->current];
  if (impl_->credentials.user.empty() || !token.empty()) co_return out;
  const std::string body = json::serialize(json::object{
      {"name", impl_->credentials.user}, {"password", impl_->credentials.password}});
  bool reached = false;
  out = co_await exchange("/v3/auth/authenticate", body, "", reached);
  if (!out.error.empty()) {
    if (reached) out.error = "etcd refused user " + impl_->credentials.user + ": " + out.error;
    co_return out;
  }
  token = string_field(out.body, "token");
  if (token.empty()) out.error = "etcd gave user " + impl_->credentials.user + " no token";
  co_return out;
}

net::awaitable<Client::Reply> Client::call(std::string_view path, const json::object& request) {
  if (!impl_->setup_error.empty()) co_return Reply{impl_->setup_error, {}};
  const std::string body = json::serialize(request);
  std::string failures;
  // Each endpoint once, starting with the one that answered last: an etcd member that is down
  // costs one connect attempt per call until it is back.
  for (std::size_t attempt = 0; attempt < impl_->endpoints.size(); ++attempt) {
    bool reached = false;
    Reply reply = co_await token();
    if (reply.error.empty()) {
      reply = co_await exchange(path, body, impl_->tokens[impl_->current], reached);
      // A token etcd no longer knows (it expired, or the member restarted): one new one, once.
      if (reached && reply.error.find("invalid auth token") != std::string::npos) {
        impl_->tokens[impl_->current].clear();
        reply = co_await token();
        if (reply.error.empty())
          reply = co_await exchange(path, body, impl_->tokens[impl_->current], reached);
      }
    } else {
      // Refused credentials are the request's problem, not the endpoint's: say so at once.
      reached = reply.error.starts_with("etcd refused user");
    }
    if (reached) co_return reply;
    failures += (failures.empty() ? "" : "; ") + reply.error;
    impl_->current = (impl_->current + 1) % impl_->endpoints.size();
  }
  Reply failed;
  failed.error = failures.empty() ? "no etcd endpoint" : failures;
  co_return failed;
}

Written Client::written(Reply reply) {
  Written out;
  out.error = std::move(reply.error);
  out.revision = header_revision(reply.body);
  return out;
}

net::awaitable<Range> Client::range(std::string key, bool prefix) {
  json::object request{{"key", base64_encode(key)}};
  if (prefix) request["range_end"] = base64_encode(prefix_end(key));
  Reply reply = co_await call("/v3/kv/range", request);
  Range out;
  out.error = std::move(reply.error);
  if (!out.error.empty()) co_return out;
  out.revision = header_revision(reply.body);
  if (const json::value* kvs = reply.body.if_contains("kvs"); kvs != nullptr && kvs->is_array()) {
    for (const json::value& kv : kvs->get_array())
      if (kv.is_object()) out.kvs.push_back(key_value(kv.get_object()));
  }
  co_return out;
}

net::awaitable<Written> Client::put(std::string key, std::string value, std::int64_t lease) {
  json::object request{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) request["lease"] = std::to_string(lease);
  co_return written(co_await call("/v3/kv/put", request));
}

net::awaitable<Written> Client::put_if_revision(std::string key, std::string value,
                                                std::int64_t expected) {
  const std::string k = base64_encode(key);
  json::object request{
      {"compare", json::array{json::object{{"key", k},
                                           {"result", "EQUAL"},
                                           {"target", "MOD"},
                                           {"mod_revision", std::to_string(expected)}}}},
      {"success", json::array{json::object{
                      {"request_put", json::object{{"key", k}, {"value", base64_encode(value)}}}}}}};
  Reply reply = co_await call("/v3/kv/txn", request);
  // The gateway leaves false out: "succeeded" is there only when the compare held.
  const json::value* succeeded = reply.body.if_contains("succeeded");
  const bool held = succeeded != nullptr && succeeded->is_bool() && succeeded->get_bool();
  Written out = written(std::move(reply));
  out.succeeded = held;
  co_return out;
}

net::awaitable<Written> Client::remove(std::string key) {
  // Requests are built into locals before co_await: GCC 12 miscompiles an initializer list that
  // lives across a suspension ("array used as initializer").
  const json::object request{{"key", base64_encode(key)}};
  co_return written(co_await call("/v3/kv/deleterange", request));
}

net::awaitable<Lease> Client::grant(std::int64_t ttl_seconds) {
  const json::object request{{"TTL", ttl_seconds}};
  Reply reply = co_await call("/v3/lease/grant", request);
  Lease out;
  out.error = std::move(reply.error);
  out.id = int_field(reply.body, "ID");
  out.ttl = int_field(reply.body, "TTL");
  if (out.error.empty() && out.id == 0) out.error = "etcd granted no lease: " + gateway_error(reply.body);
  co_return out;
}

net::awaitable<Lease> Client::keepalive(std::int64_t id) {
  // A stream of one message each way: the reply is {"result": {"ID", "TTL"}}, without TTL when
  // the lease is gone.
  const json::object request{{"ID", std::to_string(id)}};
  Reply reply = co_await call("/v3/lease/keepalive", request);
  Lease out;
  out.error = std::move(reply.error);
  out.id = id;
  if (!out.error.empty()) co_return out;
  const json::value* result = reply.body.if_contains("result");
  if (result == nullptr || !result->is_object()) {
    out.error = "etcd: keepalive: " + gateway_error(reply.body);
    co_return out;
  }
  out.ttl = int_field(result->get_object(), "TTL");
  co_return out;
}

void Client::stop_watch() {
  if (impl_->watching != nullptr) impl_->watching->socket().close();
}

net::awaitable<std::string> Client::watch(std::string key, std::int64_t start_revision,
                                          OnEvent on_event) {
  if (impl_->endpoints.empty()) co_return "no etcd endpoint";
  if (!impl_->setup_error.empty()) co_return impl_->setup_error;
  const Endpoint endpoint = impl_->endpoints[impl_->current];
  Connection connection(impl_->executor, impl_->tls ? &*impl_->tls : nullptr);
  impl_->watching = &connection.tcp();
  struct Forget {  // stop_watch() must not reach a stream that is gone
    Impl& impl;
    ~Forget() { impl.watching = nullptr; }
  } forget{*impl_};
  if (Reply auth = co_await token(); !auth.error.empty()) co_return auth.error;
  connection.tcp().expires_after(impl_->timeout);
  if (std::string error = co_await connection.open(endpoint); !error.empty()) {
    impl_->current = (impl_->current + 1) % impl_->endpoints.size();
    co_return error;
  }
  const json::object create{{"create_request", json::object{{"key", base64_encode(key)},
                                                            {"start_revision", start_revision}}}};
  const beast::error_code wec = co_await connection.write(
      post(endpoint, "/v3/watch", json::serialize(create), true, impl_->tokens[impl_->current]));
  if (wec) co_return "cannot send to " + endpoint.text() + ": " + wec.message();

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  std::string pending;  // bytes of a message not yet ended by its newline
  auto on_chunk = [&](std::uint64_t, std::string_view data, beast::error_code&) {
    pending.append(data);
    return data.size();  // consumed here: the string body stays empty
  };
  parser.on_chunk_body(on_chunk);
  const beast::error_code hec = co_await connection.read_header(buffer, parser);
  if (hec) co_return "no reply from " + endpoint.text() + ": " + hec.message();
  if (parser.get().result_int() != 200)
    co_return "etcd " + endpoint.text() + " answered the watch with HTTP " +
        std::to_string(parser.get().result_int());
  // A watch is quiet as long as the key is: no deadline from here. The agent's lease keepalive
  // notices a dead etcd and calls stop_watch().
  connection.tcp().expires_never();
  while (!parser.is_done()) {
    const beast::error_code rec = co_await connection.read_some(buffer, parser);
    if (rec) co_return "watch on " + endpoint.text() + " ended: " + rec.message();
    std::size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      json::error_code jec;
      json::value message = json::parse(line, jec);
      if (jec || !message.is_object()) continue;
      const json::value* result = message.get_object().if_contains("result");
      if (result == nullptr || !result->is_object()) {
        co_return "watch on " + endpoint.text() + ": " + gateway_error(message.get_object());
      }
      const json::object& r = result->get_object();
      if (int_field(r, "compact_revision") != 0) co_return "compacted";
      if (const json::value* canceled = r.if_contains("canceled");
          canceled != nullptr && canceled->is_bool() && canceled->get_bool())
        co_return "watch canceled by etcd: " + string_field(r, "cancel_reason");
      const json::value* events = r.if_contains("events");
      if (events == nullptr || !events->is_array()) continue;
      for (const json::value& e : events->get_array()) {
        if (!e.is_object()) continue;
        const json::value* kv = e.get_object().if_contains("kv");
        if (kv == nullptr || !kv->is_object()) continue;
        Event event;
        event.deleted = string_field(e.get_object(), "type") == "DELETE";
        event.kv = key_value(kv->get_object());
        co_await on_event(event);
      }
    }
  }
  co_return "watch on " + endpoint.text() + " ended";
}

}  // namespace proxyd::etcd
