// HTTP/1.x request heads: method, URL, Host, User-Agent, and the framing that says where the next request
// of a kept-alive connection starts (Content-Length, chunked). Bounded, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgate::dataplane::http {

inline constexpr size_t kMaxMethodLength = 16;
inline constexpr size_t kMaxUrlLength = 2048;
inline constexpr size_t kMaxHostLength = 255;
inline constexpr size_t kMaxUserAgentLength = 255;
// The request line and headers must end (empty line included) within this many bytes, else kTooLarge. It
// matches the 16 KiB stream buffer; a caller keeping fewer bytes should treat a full buffer that still gives
// kNeedMoreData as kTooLarge itself.
inline constexpr size_t kMaxRequestHeadLength = 16 * 1024;

enum class HttpStatus : uint8_t {
  kComplete,      // request line and all headers (through the empty line) read
  kNeedMoreData,  // could still be HTTP: feed more bytes of the stream
  kNotHttp,       // the first bytes are not an HTTP/1 request line
  kMalformed,     // starts like an HTTP/1 request but breaks its grammar or a rule listed at parseHttpRequest
  kTooLarge,      // headers longer than the caller's buffer can hold (kMaxRequestHeadLength)
  kCount
};

const char* httpStatusName(HttpStatus status);

// How the request's body is delimited (RFC 9112 6.3), which is where the connection's next request starts.
enum class HttpBody : uint8_t {
  kNone,      // neither Content-Length nor Transfer-Encoding: the request ends with its head
  kLength,    // contentLength bytes follow the head
  kChunked,   // chunked is the final transfer coding: consumeChunked() finds the body's end
  kUnframed,  // what follows the head cannot be told apart from a next request (unframed says why)
};

enum class HttpUnframed : uint8_t {
  kNone,
  kTransferEncoding,   // a Transfer-Encoding whose final coding is not chunked, or chunked twice
  kLengthAndEncoding,  // Content-Length and Transfer-Encoding both (a request smuggling classic)
  kHttp10Encoding,     // Transfer-Encoding in HTTP/1.0, which RFC 9112 6.1 says to treat as faulty framing
  kUpgrade,            // an Upgrade header: the server may switch protocols after this request
  kConnect,            // CONNECT: a tunnel follows
};

const char* httpUnframedName(HttpUnframed reason);

struct HttpRequest {
  char method[kMaxMethodLength + 1] = {};
  char url[kMaxUrlLength + 1] = {};    // as sent (origin-form path?query, or absolute-form)
  char host[kMaxHostLength + 1] = {};  // Host header value without port, lower-cased
  char userAgent[kMaxUserAgentLength + 1] = {};
  char protocol[9] = {};  // "HTTP/1.0" or "HTTP/1.1"
  uint16_t hostPort = 0;  // port from the Host header, 0 when absent
  bool urlTruncated = false;
  bool hasHost = false;
  HttpBody body = HttpBody::kNone;
  HttpUnframed unframed = HttpUnframed::kNone;
  uint32_t headLength = 0;  // bytes of the request line and headers, through the empty line (kComplete)
  uint64_t contentLength = 0;
};

// Parses the client's stream from its first byte. `length` is the contiguous prefix available. `out` is reset
// first; its fields are meaningful for kComplete (partly filled otherwise). Choices, all on the strict side
// because a proxy that reads a request differently from the origin can be steered around its policy:
// - kNotHttp only while the method token is read (a non-tchar before the first SP, or a token longer than
//   kMaxMethodLength), and for the HTTP/2 prior-knowledge preface "PRI * HTTP/2.0"; any later error is
//   kMalformed.
// - Exactly one SP between request-line parts; bare LF accepted for CRLF everywhere; target bytes < 0x20 and
//   0x7f are kMalformed, bytes >= 0x80 are kept (clients do send raw UTF-8). Version must be HTTP/1.<digit>.
// - Headers: obs-fold (a line starting with SP/HT), a missing colon, a non-tchar name (including whitespace
//   before the colon) or a control character in a value are kMalformed.
// - Host: a second Host header is kMalformed (request smuggling defence); so is an HTTP/1.1 request without
//   one (RFC 9112 3.2); HTTP/1.0 without Host is kComplete with hasHost = false. An IPv6 literal keeps its
//   brackets ("[::1]:8080" -> host "[::1]", port 8080) so it can never be confused with a host:port pair. A
//   host with characters outside RFC 3986 reg-name / IP-literal, longer than kMaxHostLength, or with a bad
//   port is kMalformed rather than truncated or guessed at. An empty Host value is allowed (RFC 9110 7.2).
// - User-Agent: the first one is kept, truncated to kMaxUserAgentLength.
// - Framing: Content-Length must be one header of 1 to 18 digits, else kMalformed. Transfer-Encoding is a
//   list of codings (over any number of headers); the body is chunked when chunked is the last and only
//   chunked coding. Anything the bytes after the head could be read two ways by is kComplete with body
//   kUnframed and the reason in `unframed`: the caller, which alone knows whether the rest of the stream
//   matters, decides.
HttpStatus parseHttpRequest(const uint8_t* data, size_t length, HttpRequest& out);

// Whether the first bytes look like an HTTP/1 request (a known method token followed by a space): a cheap
// test to choose the parser for a new TCP stream. Returns false when fewer bytes than needed are given. Known
// methods: GET POST PUT DELETE HEAD OPTIONS PATCH CONNECT TRACE. PRI is deliberately not one: "PRI * " starts
// the HTTP/2 prior-knowledge preface, whose Host travels HPACK-encoded, which this HTTP/1 parser cannot read;
// parseHttpRequest reports it as kNotHttp.
bool looksLikeHttpRequest(const uint8_t* data, size_t length);

enum class LineShape : uint8_t { kHttp, kNotHttp, kNeedMoreData };

// Whether the first bytes have the shape of an HTTP/1 request line, whatever the method: a token of at
// most kMaxMethodLength tchars, SP, a target without SP or control bytes, SP, "HTTP/". Wider than
// looksLikeHttpRequest, for streams where a method vgate does not know (WebDAV's PROPFIND, a custom one)
// must still be read as HTTP rather than let through unjudged. "PRI * HTTP/2.0" has the shape.
LineShape requestLineShape(const uint8_t* data, size_t length);

// Whether these bytes could begin a request line: a method token, SP, and the start of a target ('/', '*'
// or "http:"/"https:"). For the first bytes of a body: a server that reads no body (python's http.server
// with a handler that does not read it) takes them for its next request, which then is never judged.
LineShape requestStartShape(const uint8_t* data, size_t length);

// Reading a chunked body (RFC 9112 7.1) as it streams past, without keeping it: chunk sizes, extensions,
// data, the last chunk and the trailer section. Strict: every line ends in CRLF (a bare CR or LF is
// kMalformed, as a server that ended the line elsewhere would read different chunks), a size has at most
// 15 hex digits, and extension and trailer bytes are printable or HTAB.
struct ChunkedState {
  uint8_t phase = 0;
  uint8_t digits = 0;
  uint64_t remaining = 0;  // chunk data bytes left
};

enum class ChunkedStatus : uint8_t { kNeedMoreData, kDone, kMalformed };

// Consumes the body's next `length` bytes. `used` is set to what was consumed: all of it for kNeedMoreData,
// through the trailer section's final CRLF for kDone (the next request starts right after).
ChunkedStatus consumeChunked(ChunkedState& state, const uint8_t* data, size_t length, size_t& used);

}  // namespace vgate::dataplane::http
