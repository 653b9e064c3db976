// Local reply bytes and counters: built once, shared read-only by every worker.
#include "local_reply.hpp"

#include <string>

namespace proxyd {
namespace {

struct Prebuilt {
  std::array<std::string, kLocalReplies.size()> keep;
  std::array<std::string, kLocalReplies.size()> close;
  std::array<std::string, kLocalReplies.size()> body;

  Prebuilt() {
    for (std::size_t i = 0; i < kLocalReplies.size(); ++i) {
      const LocalReplyInfo& info = kLocalReplies[i];
      std::string body = std::to_string(info.status) + " " + std::string(info.status_text) +
                         " (" + std::string(info.name) + ")\n";
      std::string head = "HTTP/1.1 " + std::to_string(info.status) + " " +
                         std::string(info.status_text) +
                         "\r\nContent-Type: text/plain\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n";
      keep[i] = head + "\r\n" + body;
      this->body[i] = body;
      close[i] = head + "Connection: close\r\n\r\n" + body;
    }
  }
};

const Prebuilt& prebuilt() {
  static const Prebuilt instance;
  return instance;
}

}  // namespace

LocalReplyCounters& local_reply_counters() {
  static LocalReplyCounters counters;
  return counters;
}

std::string_view local_reply_bytes(LocalReason reason, bool close) {
  auto i = static_cast<std::size_t>(reason);
  return close ? prebuilt().close[i] : prebuilt().keep[i];
}

std::string_view local_reply_body(LocalReason reason) {
  return prebuilt().body[static_cast<std::size_t>(reason)];
}

}  // namespace proxyd
