// Fuzzes the HTTP/1 request parser: no crash or over-read on any input, well-formed output fields, and a
// final answer that more bytes cannot change; the target normalization of what it parsed (bounded,
// idempotent, no dot segment or double slash left), the chunked body reader (the same answer in any
// split) and the request line shape checks.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "dataplane/http/http_request.h"
#include "dataplane/http/http_target.h"

namespace {

using vgate::dataplane::http::HttpRequest;
using vgate::dataplane::http::HttpStatus;

void check(bool ok) {
  if (!ok) std::abort();
}

template <size_t N>
size_t terminatedLength(const char (&field)[N]) {
  const void* nul = std::memchr(field, '\0', N);
  check(nul != nullptr);
  return static_cast<size_t>(static_cast<const char*>(nul) - field);
}

bool sameFields(const HttpRequest& a, const HttpRequest& b) {
  return std::strcmp(a.method, b.method) == 0 && std::strcmp(a.url, b.url) == 0 &&
         std::strcmp(a.host, b.host) == 0 && std::strcmp(a.userAgent, b.userAgent) == 0 &&
         std::strcmp(a.protocol, b.protocol) == 0 && a.hostPort == b.hostPort && a.hasHost == b.hasHost &&
         a.urlTruncated == b.urlTruncated;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vgate::dataplane::http;
  static HttpRequest request;
  static HttpRequest longer;
  const HttpStatus status = parseHttpRequest(data, size, request);
  check(status < HttpStatus::kCount);
  check(std::strlen(httpStatusName(status)) > 0);
  (void)looksLikeHttpRequest(data, size);

  terminatedLength(request.method);
  terminatedLength(request.url);
  const size_t hostLength = terminatedLength(request.host);
  terminatedLength(request.userAgent);
  terminatedLength(request.protocol);

  if (status == HttpStatus::kComplete) {
    check(terminatedLength(request.method) > 0);
    check(std::strncmp(request.protocol, "HTTP/1.", 7) == 0);
    check(request.hasHost || std::strcmp(request.protocol, "HTTP/1.0") == 0);
    for (size_t i = 0; i < hostLength; ++i) check(!(request.host[i] >= 'A' && request.host[i] <= 'Z'));
    check(!request.urlTruncated || std::strlen(request.url) == kMaxUrlLength);
  }

  if (status == HttpStatus::kComplete) {
    check(request.headLength > 0 && request.headLength <= size);
    static NormalizedTarget target;
    static NormalizedTarget again;
    if (normalizeTarget(request, target) == TargetStatus::kOk) {
      check(std::strlen(target.path) == target.pathLength && target.pathLength <= kMaxUrlLength);
      check(std::strlen(target.host) == target.hostLength);
      const std::string_view path(target.path, target.pathLength);
      check(path.find("//") == std::string_view::npos && path.find("/./") == std::string_view::npos &&
            path.find("/../") == std::string_view::npos);
      if (path != "*") {
        // Normalizing a normalized path changes nothing.
        size_t length = 0;
        check(normalizePath(path, again.path, kMaxUrlLength, length) == TargetStatus::kOk);
        check(std::string_view(again.path, length) == path);
      }
    }
  }
  (void)requestLineShape(data, size);
  (void)requestStartShape(data, size);
  {
    // A chunked body read whole and read a byte at a time give the same answer at the same place.
    ChunkedState whole;
    size_t usedWhole = 0;
    const ChunkedStatus statusWhole = consumeChunked(whole, data, size, usedWhole);
    check(usedWhole <= size);
    ChunkedState bytewise;
    ChunkedStatus statusBytes = ChunkedStatus::kNeedMoreData;
    size_t usedBytes = 0;
    for (size_t i = 0; i < size && statusBytes == ChunkedStatus::kNeedMoreData; ++i) {
      size_t used = 0;
      statusBytes = consumeChunked(bytewise, data + i, 1, used);
      usedBytes += used;
    }
    check(statusWhole == statusBytes);
    if (statusWhole == ChunkedStatus::kDone) check(usedWhole == usedBytes);
  }

  // A verdict other than "need more" is final: one more byte (of either kind) must not change it, short of
  // reaching the head-length limit.
  if (status != HttpStatus::kNeedMoreData && size + 1 < kMaxRequestHeadLength) {
    std::vector<uint8_t> extended(data, data + size);
    for (uint8_t extra : {uint8_t{'\n'}, uint8_t{0x00}}) {
      extended.push_back(extra);
      const HttpStatus again = parseHttpRequest(extended.data(), extended.size(), longer);
      check(again == status);
      if (status == HttpStatus::kComplete) check(sameFields(request, longer));
      extended.pop_back();
    }
  }
  return 0;
}
