// Parsed HTTP/1.x message heads as views into the connection's read buffer, and the parser that
// fills them. Beast's basic_parser checks syntax; we keep the fields in a reused vector instead of
// basic_fields (no allocation per field) and apply the proxy's own framing policy on top
// (header_transform.hpp). Views stay valid until the owner consumes the header bytes.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxyd {

namespace http = boost::beast::http;

struct HeadField {
  http::field id;  // http::field::unknown for names Beast does not know
  std::string_view name;
  std::string_view value;
};

struct RequestHead {
  http::verb method = http::verb::unknown;
  std::string_view method_text;
  std::string_view target;
  unsigned version = 11;  // 10 or 11
  std::vector<HeadField> fields;

  void clear() {
    fields.clear();
    method = http::verb::unknown;
  }
};

struct ResponseHead {
  unsigned status = 0;
  std::string_view reason;
  unsigned version = 11;
  std::vector<HeadField> fields;
  // The head as received, from the status line through the CRLF of its last field line, when
  // parse_response (response_head.hpp) read it: `reason` and the fields are views into it, and
  // every field line in it ends with CRLF. write_client_response copies the lines it forwards
  // unchanged from here. Empty when the head came from elsewhere.
  std::string_view raw;

  void clear() {
    fields.clear();
    raw = {};
  }
};

// Parses one message head into `Head`, then (optionally) one chunked body, handing decoded body
// bytes to a sink one piece at a time. Non-eager: each put() does one step, so a full sink can
// stop the parser (an eager Beast parser would spin when a callback consumes nothing).
// Trailer fields are dropped (they arrive after the head has been forwarded), unless a trailer
// sink is set: the HTTP/2 path relays a response's trailers as a trailing HEADERS frame. A
// Content-Length or Transfer-Encoding among them is ignored, not an error (decode_chunks).
template <bool isRequest>
class HeadParser : public http::basic_parser<isRequest> {
 public:
  using Head = std::conditional_t<isRequest, RequestHead, ResponseHead>;

  explicit HeadParser(Head& head) : head_(&head) {
    head_->clear();
    this->eager(false);
  }

  // A parser for a response's body only, whose head parse_response (response_head.hpp) read.
  // Only a chunked body needs it: prime_chunked() feeds it a minimal chunked head, so that put()
  // starts at the first chunk line; a body framed otherwise never touches it.
  struct BodyOnly {};
  explicit HeadParser(BodyOnly) { this->eager(false); }
  void prime_chunked() {
    static constexpr std::string_view kHead =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    this->body_limit(boost::none);
    boost::system::error_code ec;
    this->put(boost::asio::const_buffer(kHead.data(), kHead.size()), ec);
  }

  // Where decoded chunk bytes go: up to `capacity` bytes at `out`, `size` counts what is there.
  void set_sink(char* out, std::size_t capacity, std::size_t* size) {
    sink_ = out;
    sink_capacity_ = capacity;
    sink_size_ = size;
  }

  // Where a chunked body's trailer fields go, copied (the bytes they were parsed from are
  // consumed); null: dropped. As many as the upstream buffer holds at once.
  void set_trailer_sink(std::vector<std::pair<std::string, std::string>>* out) { trailers_ = out; }

  std::vector<std::pair<std::string, std::string>>* trailer_sink() const { return trailers_; }

  // Whether a chunk header has been parsed, the last chunk's included.
  bool seen_chunk() const { return seen_chunk_; }

  // Where the trailer section starts, in the bytes of the put() that reached the last chunk (null
  // before it): Beast has found the whole section in them before it parses any field. Read right
  // after that put(), by decode_chunks when Beast refused a field of the section.
  const char* trailer_begin() const { return trailer_begin_; }

  // The message is complete: Beast's parser is, or decode_chunks parsed a trailer section Beast
  // refused again without its framing fields (chunked.cpp), leaving Beast at the refused field.
  bool finished() const { return this->is_done() || trailer_reparsed_; }
  void set_trailer_reparsed() { trailer_reparsed_ = true; }

  std::optional<std::uint64_t> length() const {
    auto n = this->content_length();
    return n ? std::optional<std::uint64_t>(*n) : std::nullopt;
  }

 private:
  // Beast hands out boost::core::string_view; we store std::string_view (same bytes, no copy).
  void on_request_impl(http::verb method, boost::beast::string_view method_text,
                       boost::beast::string_view target, int version,
                       boost::system::error_code&) override {
    if constexpr (isRequest) {
      head_->method = method;
      head_->method_text = method_text;
      head_->target = target;
      head_->version = static_cast<unsigned>(version);
    }
  }

  void on_response_impl(int status, boost::beast::string_view reason, int version,
                        boost::system::error_code&) override {
    if constexpr (!isRequest) {
      if (head_ == nullptr) return;
      head_->status = static_cast<unsigned>(status);
      head_->reason = reason;
      head_->version = static_cast<unsigned>(version);
    }
  }

  void on_field_impl(http::field id, boost::beast::string_view name,
                     boost::beast::string_view value,
                     boost::system::error_code&) override {
    if (!head_done_) {
      if (head_ != nullptr) head_->fields.push_back({id, name, value});
    } else if (trailers_ != nullptr) {
      trailers_->emplace_back(std::string(name.data(), name.size()),
                              std::string(value.data(), value.size()));
    }
  }

  void on_header_impl(boost::system::error_code&) override { head_done_ = true; }

  void on_body_init_impl(boost::optional<std::uint64_t> const&,
                         boost::system::error_code&) override {}

  std::size_t on_body_impl(boost::beast::string_view body, boost::system::error_code& ec) override {
    return deliver(body, ec);
  }

  void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions,
                            boost::system::error_code& ec) override {
    // Beast 1.81 puts no bound on chunk extensions; we forward none, so refuse long ones.
    if (extensions.size() > 256) ec = http::error::bad_chunk_extension;
    // The last chunk's line ends with CRLF right after its extensions; Beast calls this for it
    // only once the whole trailer section is in the input (basic_parser::parse_chunk_header).
    if (size == 0) trailer_begin_ = extensions.data() + extensions.size() + 2;
    seen_chunk_ = true;
  }

  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                 boost::system::error_code& ec) override {
    return deliver(body, ec);
  }

  void on_finish_impl(boost::system::error_code&) override {}

  std::size_t deliver(boost::beast::string_view body, boost::system::error_code& ec) {
    if (sink_ == nullptr) {
      ec = http::error::unexpected_body;
      return 0;
    }
    std::size_t n = std::min(body.size(), sink_capacity_ - *sink_size_);
    std::memcpy(sink_ + *sink_size_, body.data(), n);
    *sink_size_ += n;
    return n;
  }

  // Beast's own "done" misses a section parsed again: ask finished().
  using http::basic_parser<isRequest>::is_done;

  Head* head_ = nullptr;  // null: BodyOnly
  bool head_done_ = false;
  bool seen_chunk_ = false;
  bool trailer_reparsed_ = false;
  const char* trailer_begin_ = nullptr;
  char* sink_ = nullptr;
  std::size_t sink_capacity_ = 0;
  std::size_t* sink_size_ = nullptr;
  std::vector<std::pair<std::string, std::string>>* trailers_ = nullptr;
};

}  // namespace proxyd
