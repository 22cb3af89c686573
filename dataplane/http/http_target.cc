// Request target normalization: see http_target.h.
#include "dataplane/http/http_target.h"

#include <cstring>

namespace vgate::dataplane::http {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool isUnreserved(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

constexpr uint8_t toLower(uint8_t c) { return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c + 32) : c; }

// Step 1 of normalizePath into `out`; the result still has its dot segments and repeated slashes.
TargetStatus decode(std::string_view in, char* out, size_t capacity, size_t& length) {
  size_t n = 0;
  auto emitEncoded = [&](uint8_t value) {
    if (n + 3 > capacity) return false;
    out[n++] = '%';
    out[n++] = kHex[value >> 4];
    out[n++] = kHex[value & 15];
    return true;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<uint8_t>(in[i]);
    if (c == '%') {
      if (i + 2 >= in.size()) return TargetStatus::kBadPercent;
      const int high = hexDigit(in[i + 1]);
      const int low = hexDigit(in[i + 2]);
      if (high < 0 || low < 0) return TargetStatus::kBadPercent;
      const auto value = static_cast<uint8_t>(high << 4 | low);
      i += 2;
      if (value == 0) return TargetStatus::kEncodedNul;
      if (value == '/' || value == '\\') return TargetStatus::kEscapedSlash;
      if (isUnreserved(value)) {
        if (n + 1 > capacity) return TargetStatus::kTooLong;
        out[n++] = static_cast<char>(value);
      } else if (!emitEncoded(value)) {
        return TargetStatus::kTooLong;
      }
      continue;
    }
    if (c < 0x20 || c == 0x7f) return TargetStatus::kBadByte;
    if (c >= 0x80) {
      if (!emitEncoded(c)) return TargetStatus::kTooLong;
      continue;
    }
    if (n + 1 > capacity) return TargetStatus::kTooLong;
    out[n++] = c == '\\' ? '/' : static_cast<char>(c);
  }
  length = n;
  return TargetStatus::kOk;
}

// Steps 2 and 3, in place: `path` starts with '/'. Segments are copied down over the removed ones, so the
// result never grows.
size_t removeDotSegments(char* path, size_t length) {
  size_t out = 0;  // path[0, out) is the result so far: "" or "/seg/seg"
  bool trailingSlash = false;
  size_t i = 0;
  while (i < length) {
    // path[i] is '/': the segment runs to the next '/'.
    size_t begin = i + 1;
    size_t end = begin;
    while (end < length && path[end] != '/') ++end;
    const size_t size = end - begin;
    const bool last = end >= length;
    if (size == 0 || (size == 1 && path[begin] == '.')) {
      trailingSlash = last;
    } else if (size == 2 && path[begin] == '.' && path[begin + 1] == '.') {
      while (out > 0 && path[out - 1] != '/') --out;  // drop the last segment, if any
      if (out > 0) --out;
      trailingSlash = last;
    } else {
      path[out++] = '/';
      std::memmove(path + out, path + begin, size);
      out += size;
      trailingSlash = false;
    }
    i = end;
  }
  if (out == 0 || trailingSlash) path[out++] = '/';
  return out;
}

// A host as the policy compares it: lower-case, no trailing dot; only reg-name characters without '%' (a
// host matched encoded would be a second spelling of the same name) or a bracketed IPv6 literal.
bool normalizeHost(std::string_view host, NormalizedTarget& out) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > kMaxHostLength) return false;
  const bool literal = !host.empty() && host.front() == '[';
  for (size_t i = 0; i < host.size(); ++i) {
    const auto c = static_cast<uint8_t>(host[i]);
    const bool ok = isUnreserved(c) || std::strchr("!$&'()*+,;=", c) != nullptr ||
                    (literal && (c == '[' || c == ']' || c == ':'));
    if (!ok || c == 0) return false;
    out.host[i] = static_cast<char>(toLower(c));
  }
  out.host[host.size()] = '\0';
  out.hostLength = static_cast<uint16_t>(host.size());
  out.hasHost = true;
  return true;
}

bool startsWithCaseless(std::string_view text, std::string_view lowerPrefix) {
  if (text.size() < lowerPrefix.size()) return false;
  for (size_t i = 0; i < lowerPrefix.size(); ++i) {
    if (toLower(static_cast<uint8_t>(text[i])) != static_cast<uint8_t>(lowerPrefix[i])) return false;
  }
  return true;
}

// An absolute URI's authority: [userinfo@]host[:port]. Userinfo is refused (RFC 9110 4.2.4 tells
// recipients to treat it as an error), the port is dropped.
bool parseAuthority(std::string_view authority, NormalizedTarget& out) {
  if (authority.find('@') != std::string_view::npos || authority.empty()) return false;
  std::string_view host = authority;
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    host = host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  const size_t colon = authority.size() > host.size() ? host.size() : std::string_view::npos;
  if (colon != std::string_view::npos) {
    for (char c : authority.substr(colon + 1)) {
      if (c < '0' || c > '9') return false;
    }
  }
  return !host.empty() && normalizeHost(host, out);
}

}  // namespace

const char* targetStatusName(TargetStatus status) {
  static constexpr const char* kNames[] = {"ok",       "bad_percent",     "encoded_nul",   "escaped_slash",
                                           "bad_byte", "not_origin_form", "bad_authority", "too_long"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(TargetStatus::kCount));
  return status < TargetStatus::kCount ? kNames[static_cast<size_t>(status)] : "unknown";
}

TargetStatus normalizePath(std::string_view path, char* out, size_t capacity, size_t& length) {
  length = 0;
  if (path.empty() || path.front() != '/') return TargetStatus::kNotOriginForm;
  size_t decoded = 0;
  if (TargetStatus status = decode(path, out, capacity, decoded); status != TargetStatus::kOk) return status;
  length = removeDotSegments(out, decoded);
  out[length] = '\0';
  return TargetStatus::kOk;
}

TargetStatus normalizeTarget(const HttpRequest& request, NormalizedTarget& out) {
  out.pathLength = 0;
  out.hostLength = 0;
  out.path[0] = out.host[0] = '\0';
  out.hasHost = false;
  if (request.urlTruncated) return TargetStatus::kTooLong;
  std::string_view target(request.url);
  target = target.substr(0, target.find_first_of("?#"));
  std::string_view path = target;
  bool authorityHost = false;
  if (target == "*") {
    out.path[0] = '*';
    out.path[1] = '\0';
    out.pathLength = 1;
  } else {
    if (target.empty() || target.front() != '/') {
      size_t schemeLength = startsWithCaseless(target, "http://")    ? 7
                            : startsWithCaseless(target, "https://") ? 8
                                                                     : 0;
      if (schemeLength == 0) return TargetStatus::kNotOriginForm;
      const std::string_view rest = target.substr(schemeLength);
      const size_t slash = rest.find('/');
      if (!parseAuthority(rest.substr(0, slash), out)) return TargetStatus::kBadAuthority;
      authorityHost = true;
      path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    }
    size_t length = 0;
    TargetStatus status = normalizePath(path, out.path, kMaxUrlLength, length);
    if (status != TargetStatus::kOk) return status;
    out.pathLength = static_cast<uint16_t>(length);
  }
  if (!authorityHost && request.hasHost && !normalizeHost(request.host, out)) {
    return TargetStatus::kBadAuthority;
  }
  return TargetStatus::kOk;
}

}  // namespace vgate::dataplane::http
