// etcd v3 through its JSON gateway (grpc-gateway: POST /v3/kv/range, /v3/kv/put, /v3/kv/txn,
// /v3/kv/deleterange, /v3/lease/grant, /v3/lease/keepalive, /v3/watch; keys and values base64)
// over Beast HTTP/1.1 (over TLS for https:// endpoints) and Boost.JSON. Debian packages no C++
// etcd client and the gRPC one would bring gRPC and protobuf for five calls; etcd 3.4 serves the
// gateway on its client port under /v3/ (and /v3beta/), measured with etcd 3.4.23 (docs/fleet.md).
// With credentials, every call carries the token of etcd's auth, fetched again when etcd says it
// is no longer valid.
// Owner: FleetAgent. Thread: the agent's own io_context, never a worker's; every call is a
// coroutine on it. Each unary call opens its own connection with a deadline on the whole
// exchange; the endpoints are tried in turn, starting with the last one that answered.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/values.hpp"

namespace proxyd::etcd {

std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

// The key just after every key that starts with `prefix`: a range's range_end.
std::string prefix_end(std::string_view prefix);

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;
};

// Every result: `error` empty when the call succeeded; `revision` is the store's revision then.
struct Range {
  std::string error;
  std::int64_t revision = 0;
  std::vector<KeyValue> kvs;
};

struct Written {
  std::string error;
  std::int64_t revision = 0;  // the revision the write made (put, txn that succeeded)
  bool succeeded = true;      // a txn: whether its compare held (false: nothing written)
};

struct Lease {
  std::string error;
  std::int64_t id = 0;
  std::int64_t ttl = 0;  // keepalive: 0 when the lease is gone (expired or revoked)
};

// One event of a watch: a put (value set) or a delete of the watched key.
struct Event {
  bool deleted = false;
  KeyValue kv;
};

// etcd's authentication (`etcdctl auth enable`): a user and its password, exchanged for a token
// (POST /v3/auth/authenticate) that every request then carries in its Authorization field.
// Empty user: etcd without auth.
struct Credentials {
  std::string user;
  std::string password;
};

// TLS to https:// endpoints: the server's certificate checked against `ca` (the system's CAs
// when empty) and the endpoint's host name or address; `cert` and `key`: this client's own, for
// an etcd that asks for one (--client-cert-auth). PEM files.
struct TlsFiles {
  bool enabled = false;
  std::string ca;
  std::string cert;
  std::string key;
};

class Client {
 public:
  Client(boost::asio::any_io_executor executor, std::vector<Endpoint> endpoints,
         std::chrono::milliseconds timeout, Credentials credentials = {}, TlsFiles tls = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // `key` alone, or with `prefix` every key starting with it.
  boost::asio::awaitable<Range> range(std::string key, bool prefix = false);
  boost::asio::awaitable<Written> put(std::string key, std::string value, std::int64_t lease = 0);
  // Puts only if `key`'s mod_revision is still `expected` (0: the key does not exist).
  boost::asio::awaitable<Written> put_if_revision(std::string key, std::string value,
                                                  std::int64_t expected);
  boost::asio::awaitable<Written> remove(std::string key);
  boost::asio::awaitable<Lease> grant(std::int64_t ttl_seconds);
  boost::asio::awaitable<Lease> keepalive(std::int64_t id);

  // Streams `key`'s events from `start_revision` to `on_event` (awaited in order, so an event is
  // handled before the next is read) until the stream fails or stop_watch() is called; returns
  // why it ended. "compacted": the revisions wanted are gone; read the key again and watch on.
  using OnEvent = std::function<boost::asio::awaitable<void>(const Event&)>;
  boost::asio::awaitable<std::string> watch(std::string key, std::int64_t start_revision,
                                            OnEvent on_event);
  // Ends the running watch, if any. On the client's executor.
  void stop_watch();

  // The endpoint the next call goes to first, as "HOST:PORT".
  std::string endpoint() const;

 private:
  struct Reply {
    std::string error;
    boost::json::object body;
  };
  static Written written(Reply reply);
  boost::asio::awaitable<Reply> call(std::string_view path, const boost::json::object& request);
  // One exchange with the current endpoint, carrying `token` when not empty; `reached` says
  // whether the endpoint answered at all (else try the next).
  boost::asio::awaitable<Reply> exchange(std::string_view path, const std::string& body,
                                         const std::string& token, bool& reached);
  // The current endpoint's token, asked for when there is none (etcd 3.4's simple tokens are a
  // member's own: one per endpoint). "" without credentials.
  boost::asio::awaitable<Reply> token();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proxyd::etcd
