// HTTP/1.x request head parser: one forward pass over the bytes given, no allocation, strict where a lenient
// reading could let a request mean one thing to vgate and another to the origin.
#include "dataplane/http/http_request.h"

#include <algorithm>
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
  bool seenContentLength = false;
  bool seenTransferEncoding = false;
  bool chunkedLast = false;  // the last coding listed so far is chunked
  bool chunkedSeen = false;
  bool chunkedTwice = false;  // chunked applied twice is not one chunked body (RFC 9112 6.1)
  bool badCodingList = false;
  bool seenUpgrade = false;
};

// Content-Length: 1*DIGIT, and no list ("5, 5"): every value a server might take must be the one we take.
bool parseContentLength(const uint8_t* v, size_t n, HttpRequest& out) {
  if (n == 0 || n > 18) return false;
  uint64_t value = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!isDigit(v[i])) return false;
    value = value * 10 + (v[i] - '0');
  }
  out.contentLength = value;
  return true;
}

// Transfer-Encoding: #transfer-coding, each a token with optional parameters. Only whether chunked is the
// final coding, and the only chunked one, matters for framing.
void parseTransferEncoding(const uint8_t* v, size_t n, HeaderState& state) {
  size_t i = 0;
  for (;;) {
    while (i < n && isOws(v[i])) ++i;
    const size_t begin = i;
    while (i < n && isTchar(v[i])) ++i;
    const size_t end = i;
    if (end == begin) {
      state.badCodingList = true;  // an empty element or a non-token: how the server lists it is a guess
      return;
    }
    const bool chunked = equalsIgnoreCase(v + begin, end - begin, "chunked");
    if (chunked && state.chunkedSeen) state.chunkedTwice = true;
    state.chunkedSeen = state.chunkedSeen || chunked;
    state.chunkedLast = chunked;
    while (i < n && v[i] != ',') ++i;  // parameters, if any, do not change the framing
    if (i == n) return;
    ++i;
  }
}

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
  if (equalsIgnoreCase(line, colon, "content-length")) {
    if (state.seenContentLength) return false;  // two lengths: RFC 9112 6.3 makes it unrecoverable
    state.seenContentLength = true;
    return parseContentLength(line + begin, end - begin, out);
  }
  if (equalsIgnoreCase(line, colon, "transfer-encoding")) {
    state.seenTransferEncoding = true;
    parseTransferEncoding(line + begin, end - begin, state);
    return true;
  }
  if (equalsIgnoreCase(line, colon, "upgrade")) state.seenUpgrade = true;
  if (equalsIgnoreCase(line, colon, "user-agent") && !state.seenUserAgent) {
    state.seenUserAgent = true;
    size_t length = end - begin;
    if (length > kMaxUserAgentLength) length = kMaxUserAgentLength;
    std::memcpy(out.userAgent, line + begin, length);
    out.userAgent[length] = '\0';
  }
  return true;
}

// RFC 9112 6.1-6.3, read for a request: what delimits the body, or why nothing reliably does.
void setFraming(const HeaderState& state, size_t methodLength, HttpRequest& out) {
  HttpUnframed unframed = HttpUnframed::kNone;
  if (methodLength == 7 && std::memcmp(out.method, "CONNECT", 7) == 0) {
    unframed = HttpUnframed::kConnect;
  } else if (state.seenUpgrade) {
    unframed = HttpUnframed::kUpgrade;
  } else if (state.seenTransferEncoding) {
    if (out.protocol[7] == '0') {
      unframed = HttpUnframed::kHttp10Encoding;
    } else if (state.seenContentLength) {
      unframed = HttpUnframed::kLengthAndEncoding;
    } else if (state.badCodingList || !state.chunkedLast || state.chunkedTwice) {
      unframed = HttpUnframed::kTransferEncoding;
    } else {
      out.body = HttpBody::kChunked;
      return;
    }
  } else if (state.seenContentLength) {
    out.body = out.contentLength > 0 ? HttpBody::kLength : HttpBody::kNone;
    return;
  } else {
    out.body = HttpBody::kNone;
    return;
  }
  out.body = HttpBody::kUnframed;
  out.unframed = unframed;
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
      out.headLength = static_cast<uint32_t>(i);
      setFraming(state, methodLength, out);
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

const char* httpUnframedName(HttpUnframed reason) {
  switch (reason) {
    case HttpUnframed::kNone:
      return "none";
    case HttpUnframed::kTransferEncoding:
      return "transfer_encoding";
    case HttpUnframed::kLengthAndEncoding:
      return "length_and_encoding";
    case HttpUnframed::kHttp10Encoding:
      return "http10_encoding";
    case HttpUnframed::kUpgrade:
      return "upgrade";
    case HttpUnframed::kConnect:
      return "connect";
  }
  return "unknown";
}

LineShape requestLineShape(const uint8_t* data, size_t length) {
  if (data == nullptr) return LineShape::kNeedMoreData;
  size_t i = 0;
  for (;; ++i) {
    if (i == length) return LineShape::kNeedMoreData;
    if (data[i] == ' ') break;
    if (!isTchar(data[i]) || i == kMaxMethodLength) return LineShape::kNotHttp;
  }
  if (i == 0) return LineShape::kNotHttp;
  const size_t targetStart = ++i;
  for (;; ++i) {
    if (i == length) return LineShape::kNeedMoreData;
    if (data[i] == ' ') break;
    if (data[i] < 0x20 || data[i] == 0x7f) return LineShape::kNotHttp;
  }
  if (i == targetStart) return LineShape::kNotHttp;
  ++i;
  static constexpr char kVersion[] = "HTTP/";
  for (size_t k = 0; k < 5; ++k, ++i) {
    if (i == length) return LineShape::kNeedMoreData;
    if (data[i] != static_cast<uint8_t>(kVersion[k])) return LineShape::kNotHttp;
  }
  return LineShape::kHttp;
}

LineShape requestStartShape(const uint8_t* data, size_t length) {
  if (data == nullptr) return LineShape::kNeedMoreData;
  size_t i = 0;
  while (i < length && isTchar(data[i])) {
    if (++i > kMaxMethodLength) return LineShape::kNotHttp;
  }
  if (i == length) return LineShape::kNeedMoreData;
  if (i == 0 || data[i] != ' ') return LineShape::kNotHttp;
  ++i;
  if (i == length) return LineShape::kNeedMoreData;
  if (data[i] == '/' || data[i] == '*') return LineShape::kHttp;
  // Absolute-form: "http:" or "https:", caseless.
  static constexpr char kScheme[] = "https:";
  for (size_t k = 0; k < 6; ++k, ++i) {
    if (i == length) return LineShape::kNeedMoreData;
    const uint8_t c = toLower(data[i]);
    if (k == 4 && c == ':') return LineShape::kHttp;
    if (c != static_cast<uint8_t>(kScheme[k])) return LineShape::kNotHttp;
  }
  return LineShape::kHttp;
}

namespace {

enum ChunkPhase : uint8_t {
  kSize,       // hex digits of a chunk size
  kExtension,  // after the size: extensions up to CR
  kSizeLf,     // LF ending the size line
  kData,       // `remaining` bytes of chunk data
  kDataCr,     // CRLF after chunk data
  kDataLf,
  kTrailerStart,  // the start of a trailer line, or the CR of the final empty line
  kTrailerLine,   // a trailer field line, up to CR
  kTrailerLf,
  kEndLf,  // LF of the final empty line
};

int hexValue(uint8_t c) {
  if (isDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool isLineByte(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

}  // namespace

ChunkedStatus consumeChunked(ChunkedState& state, const uint8_t* data, size_t length, size_t& used) {
  size_t i = 0;
  while (i < length) {
    const uint8_t c = data[i];
    switch (state.phase) {
      case kSize: {
        const int digit = hexValue(c);
        if (digit >= 0) {
          if (++state.digits > 15) return ChunkedStatus::kMalformed;
          state.remaining = state.remaining << 4 | static_cast<uint64_t>(digit);
          ++i;
          continue;
        }
        if (state.digits == 0) return ChunkedStatus::kMalformed;
        state.phase = kExtension;
        continue;  // this byte is the extension's (or the CR)
      }
      case kExtension:
        if (c == '\r') {
          state.phase = kSizeLf;
        } else if (!isLineByte(c)) {
          return ChunkedStatus::kMalformed;
        }
        ++i;
        continue;
      case kSizeLf:
        if (c != '\n') return ChunkedStatus::kMalformed;
        ++i;
        state.digits = 0;
        state.phase = state.remaining == 0 ? kTrailerStart : kData;
        continue;
      case kData: {
        const uint64_t take = std::min<uint64_t>(state.remaining, length - i);
        i += take;
        state.remaining -= take;
        if (state.remaining == 0) state.phase = kDataCr;
        continue;
      }
      case kDataCr:
        if (c != '\r') return ChunkedStatus::kMalformed;
        ++i;
        state.phase = kDataLf;
        continue;
      case kDataLf:
        if (c != '\n') return ChunkedStatus::kMalformed;
        ++i;
        state.phase = kSize;
        continue;
      case kTrailerStart:
        if (c == '\r') {
          state.phase = kEndLf;
          ++i;
          continue;
        }
        state.phase = kTrailerLine;
        continue;
      case kTrailerLine:
        if (c == '\r') {
          state.phase = kTrailerLf;
        } else if (!isLineByte(c)) {
          return ChunkedStatus::kMalformed;
        }
        ++i;
        continue;
      case kTrailerLf:
        if (c != '\n') return ChunkedStatus::kMalformed;
        ++i;
        state.phase = kTrailerStart;
        continue;
      case kEndLf:
        if (c != '\n') return ChunkedStatus::kMalformed;
        used = i + 1;
        state = ChunkedState{};
        return ChunkedStatus::kDone;
      default:
        return ChunkedStatus::kMalformed;
    }
  }
  used = length;
  return ChunkedStatus::kNeedMoreData;
}

}  // namespace vgate::dataplane::http
