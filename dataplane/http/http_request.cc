// HTTP/1.x request head parser: one forward pass over the bytes given, no allocation, strict where a lenient
// reading could let a request mean one thing to vgate and another to the origin.
#include "dataplane/http/http_request.h"

#include <cstring>
#include <string_view>

namespace vgate::dataplane::http {

namespace {

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
// "~" / DIGIT / ALPHA.
constexpr bool isTchar(uint8_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

constexpr bool isDigit(uint8_t c) { return c >= '0' && c <= '9'; }
constexpr bool isHexDigit(uint8_t c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
constexpr bool isOws(uint8_t c) { return c == ' ' || c == '\t'; }
constexpr uint8_t toLower(uint8_t c) { return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c + 32) : c; }

// RFC 3986 reg-name characters (unreserved, pct-encoded's '%', sub-delims); this also covers IPv4 literals.
constexpr bool isRegNameChar(uint8_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '%':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

bool equalsIgnoreCase(const uint8_t* s, size_t length, std::string_view lower) {
  if (length != lower.size()) return false;
  for (size_t i = 0; i < length; ++i) {
    if (toLower(s[i]) != static_cast<uint8_t>(lower[i])) return false;
  }
  return true;
}

// State carried across header lines besides what lands in the HttpRequest.
struct HeaderState {
  bool seenUserAgent = false;
};

// Host value (OWS already trimmed): host [":" port], host being a reg-name/IPv4 or a bracketed IPv6 literal.
bool parseHost(const uint8_t* v, size_t n, HttpRequest& out) {
  out.hasHost = true;
  if (n == 0) return true;  // allowed when the target has no authority (RFC 9110 7.2)
  size_t hostEnd = 0;
  if (v[0] == '[') {
    size_t i = 1;
    while (i < n && v[i] != ']') {
      // IPv6 with optional embedded IPv4; IPvFuture and zone ids are not seen from real clients.
      if (!isHexDigit(v[i]) && v[i] != ':' && v[i] != '.') return false;
      ++i;
    }
    if (i == n || i == 1) return false;
    hostEnd = i + 1;
  } else {
    while (hostEnd < n && v[hostEnd] != ':') {
      if (!isRegNameChar(v[hostEnd])) return false;
      ++hostEnd;
    }
    if (hostEnd == 0) return false;
  }
  if (hostEnd > kMaxHostLength) return false;
  uint32_t port = 0;
  if (hostEnd < n) {
    if (v[hostEnd] != ':') return false;
    // An empty port ("host:") is allowed by RFC 3986 and means the default.
    const size_t digits = n - hostEnd - 1;
    if (digits > 5) return false;
    for (size_t i = hostEnd + 1; i < n; ++i) {
      if (!isDigit(v[i])) return false;
      port = port * 10 + (v[i] - '0');
    }
    if (port > 65535) return false;
  }
  for (size_t i = 0; i < hostEnd; ++i) out.host[i] = static_cast<char>(toLower(v[i]));
  out.host[hostEnd] = '\0';
  out.hostPort = static_cast<uint16_t>(port);
  return true;
}

// One header line without its line ending. Returns false when it is malformed.
bool parseHeaderLine(const uint8_t* line, size_t n, HttpRequest& out, HeaderState& state) {
  // obs-fold: a continuation line would let the origin see a value we did not (RFC 9112 5.2 allows
  // rejecting).
  if (isOws(line[0])) return false;
  size_t colon = 0;
  while (colon < n && line[colon] != ':') {
    // Whitespace before the colon is a known smuggling vector (RFC 9112 5.1: MUST reject).
    if (!isTchar(line[colon])) return false;
    ++colon;
  }
  if (colon == n || colon == 0) return false;
  size_t begin = colon + 1;
  size_t end = n;
  while (begin < end && isOws(line[begin])) ++begin;
  while (end > begin && isOws(line[end - 1])) --end;
  for (size_t i = begin; i < end; ++i) {
    const uint8_t c = line[i];
    // field-vchar, SP, HTAB and obs-text; NUL, bare CR and other controls are rejected (RFC 9110 5.5).
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  if (equalsIgnoreCase(line, colon, "host")) {
    if (out.hasHost) return false;  // two Hosts: which one the origin uses is anyone's guess
    return parseHost(line + begin, end - begin, out);
  }
  if (equalsIgnoreCase(line, colon, "user-agent") && !state.seenUserAgent) {
    state.seenUserAgent = true;
    size_t length = end - begin;
    if (length > kMaxUserAgentLength) length = kMaxUserAgentLength;
    std::memcpy(out.userAgent, line + begin, length);
    out.userAgent[length] = '\0';
  }
  return true;
}

HttpStatus parseHead(const uint8_t* p, size_t n, HttpRequest& out) {
  size_t i = 0;

  // Method: a token, the only place where "this is not HTTP at all" is decided.
  for (;; ++i) {
    if (i == n) return HttpStatus::kNeedMoreData;
    const uint8_t c = p[i];
    if (c == ' ') break;
    if (!isTchar(c) || i == kMaxMethodLength) return HttpStatus::kNotHttp;
    out.method[i] = static_cast<char>(c);
  }
  if (i == 0) return HttpStatus::kNotHttp;
  const size_t methodLength = i;
  ++i;

  // Request target, up to the next SP.
  const size_t targetStart = i;
  for (;; ++i) {
    if (i == n) return HttpStatus::kNeedMoreData;
    const uint8_t c = p[i];
    if (c == ' ') break;
    if (c < 0x20 || c == 0x7f) return HttpStatus::kMalformed;
    const size_t k = i - targetStart;
    if (k < kMaxUrlLength) {
      out.url[k] = static_cast<char>(c);
    } else {
      out.urlTruncated = true;
    }
  }
  if (i == targetStart) return HttpStatus::kMalformed;
  const size_t targetLength = i - targetStart;
  ++i;

  // Version: HTTP/<digit>.<digit>, checked byte by byte so a bad one fails before its line ends.
  static constexpr char kVersionShape[] = "HTTP/d.d";
  for (size_t k = 0; k < 8; ++k, ++i) {
    if (i == n) return HttpStatus::kNeedMoreData;
    const uint8_t c = p[i];
    if (kVersionShape[k] == 'd' ? !isDigit(c) : c != static_cast<uint8_t>(kVersionShape[k])) {
      return HttpStatus::kMalformed;
    }
    out.protocol[k] = static_cast<char>(c);
  }
  if (out.protocol[5] != '1') {
    const bool h2Preface = methodLength == 3 && std::memcmp(out.method, "PRI", 3) == 0 && targetLength == 1 &&
                           out.url[0] == '*' && std::memcmp(out.protocol, "HTTP/2.0", 8) == 0;
    return h2Preface ? HttpStatus::kNotHttp : HttpStatus::kMalformed;
  }
  if (i == n) return HttpStatus::kNeedMoreData;
  if (p[i] == '\r') {
    ++i;
    if (i == n) return HttpStatus::kNeedMoreData;
  }
  if (p[i] != '\n') return HttpStatus::kMalformed;
  ++i;

  // Header lines up to the empty one. A line is only judged once its LF has arrived.
  HeaderState state;
  for (;;) {
    const void* lf = std::memchr(p + i, '\n', n - i);
    if (lf == nullptr) return HttpStatus::kNeedMoreData;
    const size_t lineEnd = static_cast<size_t>(static_cast<const uint8_t*>(lf) - p);
    size_t contentEnd = lineEnd;
    if (contentEnd > i && p[contentEnd - 1] == '\r') --contentEnd;
    const size_t lineStart = i;
    i = lineEnd + 1;
    if (contentEnd == lineStart) {
      if (!out.hasHost && out.protocol[7] != '0') return HttpStatus::kMalformed;  // RFC 9112 3.2
      return HttpStatus::kComplete;
    }
    if (!parseHeaderLine(p + lineStart, contentEnd - lineStart, out, state)) return HttpStatus::kMalformed;
  }
}

}  // namespace

const char* httpStatusName(HttpStatus status) {
  switch (status) {
    case HttpStatus::kComplete:
      return "complete";
    case HttpStatus::kNeedMoreData:
      return "need_more_data";
    case HttpStatus::kNotHttp:
      return "not_http";
    case HttpStatus::kMalformed:
      return "malformed";
    case HttpStatus::kTooLarge:
      return "too_large";
    case HttpStatus::kCount:
      break;
  }
  return "unknown";
}

HttpStatus parseHttpRequest(const uint8_t* data, size_t length, HttpRequest& out) {
  out = HttpRequest{};
  if (data == nullptr) length = 0;
  // Only the first kMaxRequestHeadLength bytes are looked at, so the answer for a given head never depends
  // on how much of the body happened to arrive with it.
  const size_t limit = length < kMaxRequestHeadLength ? length : kMaxRequestHeadLength;
  const HttpStatus status = parseHead(data, limit, out);
  if (status == HttpStatus::kNeedMoreData && length >= kMaxRequestHeadLength) return HttpStatus::kTooLarge;
  return status;
}

bool looksLikeHttpRequest(const uint8_t* data, size_t length) {
  static constexpr std::string_view kMethods[] = {"GET ",     "POST ",  "PUT ",     "DELETE ", "HEAD ",
                                                  "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "};
  if (data == nullptr) return false;
  for (const std::string_view method : kMethods) {
    if (length >= method.size() && std::memcmp(data, method.data(), method.size()) == 0) return true;
  }
  return false;
}

}  // namespace vgate::dataplane::http
