// The request target and host as the policy judges them: the path normalized the way Envoy normalizes it
// for its own route and RBAC matching (normalize_path, merge_slashes, escaped slashes rejected), the host
// without port, case or trailing dot. DESIGN.md "HTTP judging" has the rules and why each exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/http/http_request.h"

namespace vgate::dataplane::http {

enum class TargetStatus : uint8_t {
  kOk,
  kBadPercent,     // '%' not followed by two hex digits
  kEncodedNul,     // %00: a C backend ends the path there
  kEscapedSlash,   // %2F or %5C: whether it splits a segment is the backend's choice (Envoy REJECT_REQUEST)
  kBadByte,        // a control byte in the path (the parser refuses them: defence in depth)
  kNotOriginForm,  // neither "/...", an http(s) absolute URI nor "*": CONNECT's authority-form and junk
  kBadAuthority,   // an absolute URI's authority with userinfo or a bad host, or a Host with '%'
  kTooLong,        // the target was cut by the parser, or the normalized path does not fit
  kCount
};

const char* targetStatusName(TargetStatus status);

struct NormalizedTarget {
  char path[kMaxUrlLength + 1] = {};  // normalized, without query or fragment, NUL-terminated
  char host[kMaxHostLength + 1] = {};
  uint16_t pathLength = 0;
  uint16_t hostLength = 0;
  bool hasHost = false;  // the request named a host (Host header or absolute-form authority)
};

// Normalizes `path` (a path already split from its query, starting with '/') into `out`, at most
// `capacity` bytes plus a NUL. Steps, in order:
// 1. Percent-decoding: %XX of an unreserved character (ALPHA DIGIT - . _ ~) becomes the character; any
//    other %XX is kept with upper-case hex; %2F, %5C and %00 are refused; a '%' without two hex digits is
//    refused. Raw bytes >= 0x80 become %XX (as Envoy's URL library encodes them); a raw '\' becomes '/'.
// 2. Dot segments (RFC 3986 5.2.4) removed after decoding, so "%2e%2e" is "..": ".." above the root stays
//    at the root. A last segment "." or ".." leaves a trailing '/'.
// 3. Runs of '/' merged into one.
TargetStatus normalizePath(std::string_view path, char* out, size_t capacity, size_t& length);

// The request's target and host as judged. The path comes from origin-form ("/p?q"), absolute-form
// ("http://host/p?q", whose authority is then the host, RFC 9112 3.2.2) or asterisk-form ("*"); the query
// and fragment are cut off first. The host is lower-case, without port or trailing dot.
TargetStatus normalizeTarget(const HttpRequest& request, NormalizedTarget& out);

}  // namespace vgate::dataplane::http
