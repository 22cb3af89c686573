// HTTP/1.x request line and headers of a flow's first request: method, URL, Host, User-Agent. Bounded, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgate::dataplane::http {

inline constexpr size_t kMaxMethodLength = 16;
inline constexpr size_t kMaxUrlLength = 2048;
inline constexpr size_t kMaxHostLength = 255;
inline constexpr size_t kMaxUserAgentLength = 255;

enum class HttpStatus : uint8_t {
  kComplete,      // request line and all headers (through the empty line) read
  kNeedMoreData,  // could still be HTTP: feed more bytes of the stream
  kNotHttp,       // the first bytes are not an HTTP/1 request line
  kMalformed,
  kTooLarge,      // headers longer than the caller's buffer can hold
  kCount
};

const char* httpStatusName(HttpStatus status);

struct HttpRequest {
  char method[kMaxMethodLength + 1] = {};
  char url[kMaxUrlLength + 1] = {};  // as sent (origin-form path?query, or absolute-form)
  char host[kMaxHostLength + 1] = {};  // Host header value without port, lower-cased
  char userAgent[kMaxUserAgentLength + 1] = {};
  char protocol[9] = {};  // "HTTP/1.0" or "HTTP/1.1"
  uint16_t hostPort = 0;  // port from the Host header, 0 when absent
  bool urlTruncated = false;
  bool hasHost = false;
};

// Parses the client's stream from its first byte. `length` is the contiguous prefix available.
HttpStatus parseHttpRequest(const uint8_t* data, size_t length, HttpRequest& out);

// Whether the first bytes look like an HTTP/1 request (a known method token followed by a space): a cheap test
// to choose the parser for a new TCP stream. Returns false when fewer bytes than needed are given.
bool looksLikeHttpRequest(const uint8_t* data, size_t length);

}  // namespace vgate::dataplane::http
