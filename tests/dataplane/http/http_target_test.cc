// Tests of request target normalization: a table of path evasions (each raw target and what the policy
// sees), the refusals, absolute-form and host normalization.
#include "dataplane/http/http_target.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace vgate::dataplane::http {
namespace {

HttpRequest requestFor(const std::string& url, const char* host = "example.com") {
  HttpRequest request;
  std::strncpy(request.url, url.c_str(), kMaxUrlLength);
  request.urlTruncated = url.size() > kMaxUrlLength;
  if (host != nullptr) {
    std::strncpy(request.host, host, kMaxHostLength);
    request.hasHost = true;
  }
  return request;
}

struct PathCase {
  const char* raw;
  const char* normalized;
};

// Each of these reaches /admin/secret on a server that decodes and resolves paths (python's http.server,
// nginx, Envoy itself), so each must be judged as /admin/secret.
const std::vector<PathCase> kEvasions = {
    {"/admin/secret", "/admin/secret"},
    {"/%61dmin/secret", "/admin/secret"},
    {"/%61%64%6D%69%6E/secret", "/admin/secret"},
    {"/%61%64%6d%69%6e/%73ecret", "/admin/secret"},
    {"/admin/../admin/secret", "/admin/secret"},
    {"/public/../admin/secret", "/admin/secret"},
    {"//admin/secret", "/admin/secret"},
    {"///admin//secret", "/admin/secret"},
    {"/./admin/secret", "/admin/secret"},
    {"/admin/./secret", "/admin/secret"},
    {"/../admin/secret", "/admin/secret"},
    {"/../../../admin/secret", "/admin/secret"},
    {"/%2e/admin/secret", "/admin/secret"},
    {"/%2E%2E/admin/secret", "/admin/secret"},
    {"/public/%2e%2e/admin/secret", "/admin/secret"},
    {"/public/.%2e/admin/secret", "/admin/secret"},
    {"/admin\\secret", "/admin/secret"},
    {"/public\\..\\admin\\secret", "/admin/secret"},
    {"/admin/secret?x=1", "/admin/secret"},
    {"/admin/secret#frag", "/admin/secret"},
    {"/admin/secret?a=/../public", "/admin/secret"},
    {"/admin/x/..//secret", "/admin/secret"},
};

// Not evasions: what the normalization keeps, so that paths keep their meaning.
const std::vector<PathCase> kKept = {
    {"/", "/"},
    {"//", "/"},
    {"/..", "/"},
    {"/admin/", "/admin/"},
    {"/admin/.", "/admin/"},
    {"/admin/..", "/"},
    {"/admin/x/..", "/admin/"},
    {"/a/.../b", "/a/.../b"},
    {"/a/..b/c", "/a/..b/c"},
    {"/a%20b", "/a%20b"},
    {"/a%3fb", "/a%3Fb"},  // an encoded '?' is not a query
    {"/a%25b", "/a%25b"},  // an encoded '%' stays one
    {"/a%7e", "/a~"},
    {"/caf\xc3\xa9", "/caf%C3%A9"},
    {"/caf%c3%a9", "/caf%C3%A9"},
    {"/a;b=c/d", "/a;b=c/d"},
    {"/A/B", "/A/B"},  // paths are case-sensitive
    {"*", "*"},
};

void expectNormalized(const std::vector<PathCase>& cases) {
  for (const PathCase& c : cases) {
    NormalizedTarget target;
    ASSERT_EQ(normalizeTarget(requestFor(c.raw), target), TargetStatus::kOk) << c.raw;
    EXPECT_STREQ(target.path, c.normalized) << c.raw;
    EXPECT_EQ(target.pathLength, std::strlen(c.normalized)) << c.raw;
  }
}

TEST(HttpTargetTest, EvasionsOfADeniedPathNormalizeToIt) { expectNormalized(kEvasions); }

TEST(HttpTargetTest, NormalizationKeepsWhatChangesMeaning) { expectNormalized(kKept); }

TEST(HttpTargetTest, PathsThatCannotBeNormalizedSafelyAreRefused) {
  const struct {
    const char* raw;
    TargetStatus status;
  } cases[] = {
      {"/admin%2Fsecret", TargetStatus::kEscapedSlash},
      {"/admin%2fsecret", TargetStatus::kEscapedSlash},
      {"/admin%5Csecret", TargetStatus::kEscapedSlash},
      {"/public/..%2Fadmin", TargetStatus::kEscapedSlash},
      {"/admin%00.png", TargetStatus::kEncodedNul},
      {"/admin%", TargetStatus::kBadPercent},
      {"/admin%4", TargetStatus::kBadPercent},
      {"/admin%zz", TargetStatus::kBadPercent},
      {"/admin%%41", TargetStatus::kBadPercent},
      {"/a\x01", TargetStatus::kBadByte},
      {"admin/secret", TargetStatus::kNotOriginForm},
      {"example.com:443", TargetStatus::kNotOriginForm},  // CONNECT's authority-form
      {"ftp://example.com/admin", TargetStatus::kNotOriginForm},
      {"http://user@example.com/admin", TargetStatus::kBadAuthority},
      {"http:///admin", TargetStatus::kBadAuthority},
      {"http://example.com:x/admin", TargetStatus::kBadAuthority},
  };
  for (const auto& c : cases) {
    NormalizedTarget target;
    EXPECT_EQ(normalizeTarget(requestFor(c.raw), target), c.status) << c.raw;
  }
  NormalizedTarget target;
  EXPECT_EQ(normalizeTarget(requestFor(std::string(kMaxUrlLength + 1, 'a')), target), TargetStatus::kTooLong);
  // Raw non-ASCII bytes triple when encoded: a path that then no longer fits is refused, not cut.
  EXPECT_EQ(normalizeTarget(requestFor("/" + std::string(kMaxUrlLength / 2, '\xff')), target),
            TargetStatus::kTooLong);
}

TEST(HttpTargetTest, AbsoluteFormTakesItsHostFromTheAuthority) {
  NormalizedTarget target;
  ASSERT_EQ(
      normalizeTarget(requestFor("http://Admin.Example.COM:8080/%61dmin/secret?q", "other.example"), target),
      TargetStatus::kOk);
  EXPECT_STREQ(target.path, "/admin/secret");
  EXPECT_STREQ(target.host, "admin.example.com");
  EXPECT_TRUE(target.hasHost);
  ASSERT_EQ(normalizeTarget(requestFor("HTTPS://example.com.", nullptr), target), TargetStatus::kOk);
  EXPECT_STREQ(target.path, "/");
  EXPECT_STREQ(target.host, "example.com");
  ASSERT_EQ(normalizeTarget(requestFor("http://[2001:DB8::1]:80/a//b", nullptr), target), TargetStatus::kOk);
  EXPECT_STREQ(target.host, "[2001:db8::1]");
  EXPECT_STREQ(target.path, "/a/b");
}

TEST(HttpTargetTest, HostsCompareWithoutPortCaseOrTrailingDot) {
  // The parser lower-cases the Host header and takes its port off; the trailing dot goes here.
  NormalizedTarget target;
  ASSERT_EQ(normalizeTarget(requestFor("/", "admin.example.com."), target), TargetStatus::kOk);
  EXPECT_STREQ(target.host, "admin.example.com");
  EXPECT_TRUE(target.hasHost);
  ASSERT_EQ(normalizeTarget(requestFor("/", nullptr), target), TargetStatus::kOk);
  EXPECT_FALSE(target.hasHost);
  // A percent-encoded host would be a second spelling of a name that no host pattern can match.
  EXPECT_EQ(normalizeTarget(requestFor("/", "adm%69n.example.com"), target), TargetStatus::kBadAuthority);
}

TEST(HttpTargetTest, NormalizePathNeverWritesPastItsCapacity) {
  char out[8];
  size_t length = 0;
  EXPECT_EQ(normalizePath("/abcdef", out, 7, length), TargetStatus::kOk);
  EXPECT_STREQ(out, "/abcdef");
  EXPECT_EQ(normalizePath("/abcdefg", out, 7, length), TargetStatus::kTooLong);
  EXPECT_EQ(normalizePath("/abc\xff", out, 7, length), TargetStatus::kOk);
  EXPECT_STREQ(out, "/abc%FF");
  EXPECT_EQ(normalizePath("/abcd\xff", out, 7, length), TargetStatus::kTooLong);
  EXPECT_EQ(normalizePath("", out, 7, length), TargetStatus::kNotOriginForm);
}

}  // namespace
}  // namespace vgate::dataplane::http
