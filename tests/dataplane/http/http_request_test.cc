// Tests of the HTTP/1 request head parser: request heads as real clients send them, fed at every prefix
// length, then the edge and hostile cases each as a table row.
#include "dataplane/http/http_request.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace vgate::dataplane::http {
namespace {

// Parses exactly `text` from a heap copy of its own size, so AddressSanitizer flags any read past `length`.
HttpStatus parse(const std::string& text, HttpRequest& out) {
  std::vector<uint8_t> bytes(text.begin(), text.end());
  return parseHttpRequest(bytes.data(), bytes.size(), out);
}

struct Expected {
  const char* method;
  const char* url;
  const char* host;
  uint16_t port;
  const char* userAgent;
  const char* protocol;
  bool hasHost;
};

struct ClientCase {
  const char* name;
  std::string head;  // through the empty line
  std::string body;  // what follows in the same stream, if anything
  Expected expected;
};

void expectFields(const HttpRequest& r, const Expected& e, const std::string& context) {
  EXPECT_STREQ(r.method, e.method) << context;
  EXPECT_STREQ(r.url, e.url) << context;
  EXPECT_STREQ(r.host, e.host) << context;
  EXPECT_EQ(r.hostPort, e.port) << context;
  EXPECT_STREQ(r.userAgent, e.userAgent) << context;
  EXPECT_STREQ(r.protocol, e.protocol) << context;
  EXPECT_EQ(r.hasHost, e.hasHost) << context;
  EXPECT_FALSE(r.urlTruncated) << context;
}

const std::vector<ClientCase>& clientCases() {
  static const std::vector<ClientCase> cases = {
      {"curl",
       "GET /path HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
       "",
       {"GET", "/path", "x", 0, "curl/7.88.1", "HTTP/1.1", true}},
      {"curl_post_with_port",
       "POST /api/v1/items?id=7 HTTP/1.1\r\nHost: api.example.com:8080\r\nUser-Agent: curl/7.88.1\r\n"
       "Accept: */*\r\nContent-Length: 7\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
       "a=b&c=d",
       {"POST", "/api/v1/items?id=7", "api.example.com", 8080, "curl/7.88.1", "HTTP/1.1", true}},
      {"curl_via_proxy_absolute_form",
       "GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
       "Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n",
       "",
       {"GET", "http://example.com/p?q=1", "example.com", 0, "curl/7.88.1", "HTTP/1.1", true}},
      {"curl_connect",
       "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/7.88.1\r\n"
       "Proxy-Connection: Keep-Alive\r\n\r\n",
       "",
       {"CONNECT", "example.com:443", "example.com", 443, "curl/7.88.1", "HTTP/1.1", true}},
      {"wget",
       "GET /debian/ HTTP/1.1\r\nHost: deb.debian.org\r\nUser-Agent: Wget/1.21.3\r\nAccept: */*\r\n"
       "Accept-Encoding: identity\r\nConnection: Keep-Alive\r\n\r\n",
       "",
       {"GET", "/debian/", "deb.debian.org", 0, "Wget/1.21.3", "HTTP/1.1", true}},
      {"python_requests",
       "GET /get?x=1&y=%20z HTTP/1.1\r\nHost: httpbin.org\r\nUser-Agent: python-requests/2.28.1\r\n"
       "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
       "",
       {"GET", "/get?x=1&y=%20z", "httpbin.org", 0, "python-requests/2.28.1", "HTTP/1.1", true}},
      {"firefox",
       "GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n"
       "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
       "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
       "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
       "Upgrade-Insecure-Requests: 1\r\n\r\n",
       "",
       {"GET", "/index.html", "www.example.com", 0,
        "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0", "HTTP/1.1", true}},
      {"chrome",
       "GET / HTTP/1.1\r\nHost: neverssl.com\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n"
       "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/119.0.0.0 Safari/537.36\r\n"
       "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;"
       "q=0.8,application/signed-exchange;v=b3;q=0.7\r\nAccept-Encoding: gzip, deflate\r\n"
       "Accept-Language: en-US,en;q=0.9\r\n\r\n",
       "",
       {"GET", "/", "neverssl.com", 0,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
        "Safari/537.36",
        "HTTP/1.1", true}},
      {"apachebench_http10",
       "GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n",
       "",
       {"GET", "/", "localhost", 0, "ApacheBench/2.3", "HTTP/1.0", true}},
      {"http10_without_host",
       "GET /status HTTP/1.0\r\nUser-Agent: probe\r\n\r\n",
       "",
       {"GET", "/status", "", 0, "probe", "HTTP/1.0", false}},
      {"http10_no_headers", "HEAD / HTTP/1.0\r\n\r\n", "", {"HEAD", "/", "", 0, "", "HTTP/1.0", false}},
      {"lf_only_lines",
       "GET /lf HTTP/1.1\nHost: lf.example\nUser-Agent: nc\n\n",
       "",
       {"GET", "/lf", "lf.example", 0, "nc", "HTTP/1.1", true}},
      {"mixed_line_endings",
       "GET /mix HTTP/1.1\nHost: mix.example\r\nUser-Agent: nc\n\r\n",
       "",
       {"GET", "/mix", "mix.example", 0, "nc", "HTTP/1.1", true}},
  };
  return cases;
}

TEST(HttpRequestTest, RealClientsAtEveryPrefix) {
  for (const auto& c : clientCases()) {
    const std::string stream = c.head + c.body;
    for (size_t length = 0; length <= stream.size(); ++length) {
      const std::string context = std::string(c.name) + " length " + std::to_string(length);
      HttpRequest r;
      const HttpStatus status = parse(stream.substr(0, length), r);
      if (length < c.head.size()) {
        ASSERT_EQ(status, HttpStatus::kNeedMoreData) << context;
      } else {
        ASSERT_EQ(status, HttpStatus::kComplete) << context;
        expectFields(r, c.expected, context);
      }
    }
  }
}

TEST(HttpRequestTest, RealClientsLookLikeHttp) {
  for (const auto& c : clientCases()) {
    EXPECT_TRUE(looksLikeHttpRequest(reinterpret_cast<const uint8_t*>(c.head.data()), c.head.size()))
        << c.name;
  }
}

struct StatusCase {
  const char* name;
  std::string input;
  HttpStatus status;
};

TEST(HttpRequestTest, StatusTable) {
  const std::string longHost(256, 'a');
  const std::vector<StatusCase> cases = {
      // Not HTTP, decided from the first bytes.
      {"tls_client_hello", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
       HttpStatus::kNotHttp},
      {"tls_first_byte", "\x16", HttpStatus::kNotHttp},
      {"ssh_banner", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u1\r\n", HttpStatus::kNotHttp},
      {"redis_resp", "*1\r\n$4\r\nPING\r\n", HttpStatus::kNotHttp},
      {"nul_bytes", std::string(8, '\0'), HttpStatus::kNotHttp},
      {"leading_space", " GET / HTTP/1.1\r\n", HttpStatus::kNotHttp},
      {"leading_empty_line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kNotHttp},
      {"method_17_chars", "ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n", HttpStatus::kNotHttp},
      {"h2_preface", std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HttpStatus::kNotHttp},
      // Method tokens beyond the common ones are HTTP.
      {"method_16_chars", "ABCDEFGHIJKLMNOP / HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kComplete},
      {"webdav_method", "PROPFIND /dav/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kComplete},
      {"prefix_of_long_token", "SSH-2.0-", HttpStatus::kNeedMoreData},
      {"empty", "", HttpStatus::kNeedMoreData},
      // Request line errors after the method.
      {"control_char_in_target", "GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"tab_in_target", "GET /a\tz HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"del_in_target", "GET /a\x7fz HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"cr_in_target_http09", "GET /\r\n", HttpStatus::kMalformed},
      {"double_space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"http2_version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"lowercase_version", "GET / http/1.1\r\n", HttpStatus::kMalformed},
      {"bad_version_early", "GET / HTTX", HttpStatus::kMalformed},
      {"version_too_long", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"space_after_version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"cr_not_followed_by_lf", "GET / HTTP/1.1\rHost: a\r\n\r\n", HttpStatus::kMalformed},
      {"utf8_in_target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HttpStatus::kComplete},
      // Header errors.
      {"header_without_colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", HttpStatus::kMalformed},
      {"empty_header_name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", HttpStatus::kMalformed},
      {"space_before_colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", HttpStatus::kMalformed},
      {"obs_fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Long: b\r\n c\r\n\r\n", HttpStatus::kMalformed},
      {"fold_right_after_request_line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", HttpStatus::kMalformed},
      {"nul_in_value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35),
       HttpStatus::kMalformed},
      {"bare_cr_in_value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", HttpStatus::kMalformed},
      {"cr_only_empty_line", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", HttpStatus::kMalformed},
      // Host rules.
      {"two_host_headers", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
       HttpStatus::kMalformed},
      {"two_host_headers_same_value", "GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n", HttpStatus::kMalformed},
      {"http11_without_host", "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", HttpStatus::kMalformed},
      {"host_port_too_big", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", HttpStatus::kMalformed},
      {"host_port_not_digits", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", HttpStatus::kMalformed},
      {"host_port_too_many_digits", "GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n", HttpStatus::kMalformed},
      {"host_with_userinfo", "GET / HTTP/1.1\r\nHost: good.example@evil.example\r\n\r\n",
       HttpStatus::kMalformed},
      {"host_with_path", "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n", HttpStatus::kMalformed},
      {"host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HttpStatus::kMalformed},
      {"host_only_port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", HttpStatus::kMalformed},
      {"bare_ipv6_host", "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", HttpStatus::kMalformed},
      {"unclosed_ipv6_host", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", HttpStatus::kMalformed},
      {"junk_after_ipv6_host", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", HttpStatus::kMalformed},
      {"empty_ipv6_host", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", HttpStatus::kMalformed},
      {"host_too_long", "GET / HTTP/1.1\r\nHost: " + longHost + "\r\n\r\n", HttpStatus::kMalformed},
      {"host_255_chars", "GET / HTTP/1.1\r\nHost: " + longHost.substr(1) + "\r\n\r\n", HttpStatus::kComplete},
      // A partial line is only judged once complete.
      {"partial_bad_header", "GET / HTTP/1.1\r\nHost a", HttpStatus::kNeedMoreData},
  };
  for (const auto& c : cases) {
    HttpRequest r;
    EXPECT_EQ(parse(c.input, r), c.status)
        << c.name << ": got " << httpStatusName(parse(c.input, r)) << " want " << httpStatusName(c.status);
  }
}

TEST(HttpRequestTest, HostValues) {
  struct HostCase {
    const char* value;
    const char* host;
    uint16_t port;
  };
  const HostCase cases[] = {
      {"Example.COM", "example.com", 0},
      {"WWW.EXAMPLE.COM:8080", "www.example.com", 8080},
      {" \t example.com \t ", "example.com", 0},
      {"example.com:", "example.com", 0},
      {"example.com:65535", "example.com", 65535},
      {"10.0.0.1:80", "10.0.0.1", 80},
      {"[::1]:8080", "[::1]", 8080},
      {"[2001:DB8::1]", "[2001:db8::1]", 0},
      {"[::ffff:10.0.0.1]:443", "[::ffff:10.0.0.1]", 443},
      {"", "", 0},
  };
  for (const auto& c : cases) {
    HttpRequest r;
    const std::string text = std::string("GET / HTTP/1.1\r\nHost:") + c.value + "\r\n\r\n";
    ASSERT_EQ(parse(text, r), HttpStatus::kComplete) << c.value;
    EXPECT_TRUE(r.hasHost);
    EXPECT_STREQ(r.host, c.host) << c.value;
    EXPECT_EQ(r.hostPort, c.port) << c.value;
  }
}

TEST(HttpRequestTest, LongUrlIsTruncated) {
  const std::string path = "/" + std::string(2999, 'p');
  HttpRequest r;
  ASSERT_EQ(parse("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n", r), HttpStatus::kComplete);
  EXPECT_TRUE(r.urlTruncated);
  EXPECT_EQ(std::strlen(r.url), kMaxUrlLength);
  EXPECT_EQ(std::string(r.url), path.substr(0, kMaxUrlLength));
  EXPECT_STREQ(r.host, "a");
}

TEST(HttpRequestTest, UrlOfExactlyMaxLengthIsNotTruncated) {
  const std::string path = "/" + std::string(kMaxUrlLength - 1, 'p');
  HttpRequest r;
  ASSERT_EQ(parse("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n", r), HttpStatus::kComplete);
  EXPECT_FALSE(r.urlTruncated);
  EXPECT_EQ(std::string(r.url), path);
}

TEST(HttpRequestTest, UserAgentFirstKeptAndTruncated) {
  HttpRequest r;
  const std::string ua(400, 'u');
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nuser-agent: " + ua + "\r\nHost: a\r\nUser-Agent: second\r\n\r\n", r),
            HttpStatus::kComplete);
  EXPECT_EQ(std::string(r.userAgent), ua.substr(0, kMaxUserAgentLength));
}

TEST(HttpRequestTest, OversizedHeadersAreTooLarge) {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (head.size() < kMaxRequestHeadLength + 100) head += "X-Filler: " + std::string(100, 'f') + "\r\n";
  const std::string full = head + "\r\n";
  HttpRequest r;
  EXPECT_EQ(parse(full, r), HttpStatus::kTooLarge);
  EXPECT_EQ(parse(full.substr(0, kMaxRequestHeadLength), r), HttpStatus::kTooLarge);
  EXPECT_EQ(parse(full.substr(0, kMaxRequestHeadLength - 1), r), HttpStatus::kNeedMoreData);
  // One endless header line, too.
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nX: " + std::string(kMaxRequestHeadLength, 'x'), r),
            HttpStatus::kTooLarge);
}

TEST(HttpRequestTest, BodyBeyondLimitDoesNotMatter) {
  const std::string head = "POST /upload HTTP/1.1\r\nHost: up.example\r\nContent-Length: 100000\r\n\r\n";
  HttpRequest r;
  EXPECT_EQ(parse(head + std::string(100000, 'b'), r), HttpStatus::kComplete);
  EXPECT_STREQ(r.host, "up.example");
}

TEST(HttpRequestTest, NullDataIsNeedMore) {
  HttpRequest r;
  EXPECT_EQ(parseHttpRequest(nullptr, 0, r), HttpStatus::kNeedMoreData);
  EXPECT_FALSE(looksLikeHttpRequest(nullptr, 0));
}

TEST(HttpRequestTest, OutIsResetBetweenCalls) {
  HttpRequest r;
  ASSERT_EQ(parse("GET /a HTTP/1.1\r\nHost: a:81\r\nUser-Agent: x\r\n\r\n", r), HttpStatus::kComplete);
  ASSERT_EQ(parse("GET /b HTTP/1.0\r\n\r\n", r), HttpStatus::kComplete);
  EXPECT_STREQ(r.url, "/b");
  EXPECT_STREQ(r.host, "");
  EXPECT_EQ(r.hostPort, 0);
  EXPECT_STREQ(r.userAgent, "");
  EXPECT_FALSE(r.hasHost);
}

TEST(HttpRequestTest, LooksLikeHttpRequest) {
  auto looks = [](const std::string& s) {
    std::vector<uint8_t> bytes(s.begin(), s.end());
    return looksLikeHttpRequest(bytes.data(), bytes.size());
  };
  for (const char* method :
       {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}) {
    const std::string withSpace = std::string(method) + " ";
    EXPECT_TRUE(looks(withSpace)) << method;
    EXPECT_TRUE(looks(withSpace + "/ HTTP/1.1\r\n")) << method;
    EXPECT_FALSE(looks(method)) << method << " without its space";
    EXPECT_FALSE(looks(withSpace.substr(0, withSpace.size() - 2))) << method;
  }
  EXPECT_FALSE(looks("get / HTTP/1.1\r\n"));
  EXPECT_FALSE(looks("GETX / HTTP/1.1\r\n"));
  EXPECT_FALSE(looks("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  EXPECT_FALSE(looks(std::string("\x16\x03\x01\x00\xa5", 5)));
  EXPECT_FALSE(looks("SSH-2.0-OpenSSH_9.2p1\r\n"));
  EXPECT_FALSE(looks(""));
}

TEST(HttpRequestTest, StatusNames) {
  EXPECT_STREQ(httpStatusName(HttpStatus::kComplete), "complete");
  EXPECT_STREQ(httpStatusName(HttpStatus::kNeedMoreData), "need_more_data");
  EXPECT_STREQ(httpStatusName(HttpStatus::kNotHttp), "not_http");
  EXPECT_STREQ(httpStatusName(HttpStatus::kMalformed), "malformed");
  EXPECT_STREQ(httpStatusName(HttpStatus::kTooLarge), "too_large");
  EXPECT_STREQ(httpStatusName(HttpStatus::kCount), "unknown");
}

// Framing: where the body ends and so where a kept-alive connection's next request starts.
TEST(HttpRequestTest, FramingTable) {
  struct FramingCase {
    const char* name;
    std::string headers;  // between the request line and the empty line
    HttpStatus status;
    HttpBody body;
    HttpUnframed unframed;
    uint64_t contentLength;
  };
  const std::vector<FramingCase> cases = {
      {"none", "", HttpStatus::kComplete, HttpBody::kNone, HttpUnframed::kNone, 0},
      {"length", "Content-Length: 12\r\n", HttpStatus::kComplete, HttpBody::kLength, HttpUnframed::kNone, 12},
      {"length_zero", "Content-Length: 0\r\n", HttpStatus::kComplete, HttpBody::kNone, HttpUnframed::kNone,
       0},
      {"length_ows", "content-length: \t7 \r\n", HttpStatus::kComplete, HttpBody::kLength,
       HttpUnframed::kNone, 7},
      {"chunked", "Transfer-Encoding: chunked\r\n", HttpStatus::kComplete, HttpBody::kChunked,
       HttpUnframed::kNone, 0},
      {"chunked_caseless", "transfer-encoding: ChUnKeD\r\n", HttpStatus::kComplete, HttpBody::kChunked,
       HttpUnframed::kNone, 0},
      {"gzip_then_chunked", "Transfer-Encoding: gzip, chunked\r\n", HttpStatus::kComplete, HttpBody::kChunked,
       HttpUnframed::kNone, 0},
      {"codings_over_two_headers", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
       HttpStatus::kComplete, HttpBody::kChunked, HttpUnframed::kNone, 0},
      // Malformed: two lengths, lists, signs, too many digits.
      {"two_lengths", "Content-Length: 5\r\nContent-Length: 5\r\n", HttpStatus::kMalformed, HttpBody::kNone,
       HttpUnframed::kNone, 0},
      {"length_list", "Content-Length: 5, 5\r\n", HttpStatus::kMalformed, HttpBody::kNone,
       HttpUnframed::kNone, 0},
      {"length_sign", "Content-Length: +5\r\n", HttpStatus::kMalformed, HttpBody::kNone, HttpUnframed::kNone,
       0},
      {"length_empty", "Content-Length:\r\n", HttpStatus::kMalformed, HttpBody::kNone, HttpUnframed::kNone,
       0},
      {"length_19_digits", "Content-Length: 1234567890123456789\r\n", HttpStatus::kMalformed, HttpBody::kNone,
       HttpUnframed::kNone, 0},
      // Complete, but what follows cannot be framed.
      {"gzip_only", "Transfer-Encoding: gzip\r\n", HttpStatus::kComplete, HttpBody::kUnframed,
       HttpUnframed::kTransferEncoding, 0},
      {"chunked_then_gzip", "Transfer-Encoding: chunked, gzip\r\n", HttpStatus::kComplete,
       HttpBody::kUnframed, HttpUnframed::kTransferEncoding, 0},
      {"chunked_twice", "Transfer-Encoding: chunked, chunked\r\n", HttpStatus::kComplete, HttpBody::kUnframed,
       HttpUnframed::kTransferEncoding, 0},
      {"coding_list_empty_element", "Transfer-Encoding: ,chunked\r\n", HttpStatus::kComplete,
       HttpBody::kUnframed, HttpUnframed::kTransferEncoding, 0},
      {"coding_quoted", "Transfer-Encoding: \"chunked\"\r\n", HttpStatus::kComplete, HttpBody::kUnframed,
       HttpUnframed::kTransferEncoding, 0},
      {"length_and_chunked", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", HttpStatus::kComplete,
       HttpBody::kUnframed, HttpUnframed::kLengthAndEncoding, 4},
      {"upgrade", "Connection: Upgrade\r\nUpgrade: websocket\r\n", HttpStatus::kComplete, HttpBody::kUnframed,
       HttpUnframed::kUpgrade, 0},
      {"h2c_upgrade",
       "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
       HttpStatus::kComplete, HttpBody::kUnframed, HttpUnframed::kUpgrade, 0},
  };
  for (const auto& c : cases) {
    HttpRequest r;
    const std::string head = "POST /p HTTP/1.1\r\nHost: a\r\n" + c.headers + "\r\n";
    ASSERT_EQ(parse(head, r), c.status) << c.name;
    if (c.status != HttpStatus::kComplete) continue;
    EXPECT_EQ(r.headLength, head.size()) << c.name;
    EXPECT_EQ(r.body, c.body) << c.name;
    EXPECT_EQ(r.unframed, c.unframed) << c.name << ": " << httpUnframedName(r.unframed);
    EXPECT_EQ(r.contentLength, c.contentLength) << c.name;
  }
  HttpRequest r;
  ASSERT_EQ(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", r),
            HttpStatus::kComplete);
  EXPECT_EQ(r.body, HttpBody::kUnframed);
  EXPECT_EQ(r.unframed, HttpUnframed::kConnect);
  ASSERT_EQ(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", r), HttpStatus::kComplete);
  EXPECT_EQ(r.unframed, HttpUnframed::kHttp10Encoding);
}

TEST(HttpRequestTest, HeadLengthStopsAtTheEmptyLineOfPipelinedRequests) {
  const std::string first = "GET / HTTP/1.1\nHost: a\n\n";  // bare LF, as accepted
  const std::string second = "GET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n";
  HttpRequest r;
  ASSERT_EQ(parse(first + second, r), HttpStatus::kComplete);
  EXPECT_EQ(r.headLength, first.size());
  EXPECT_STREQ(r.url, "/");
  ASSERT_EQ(parse((first + second).substr(first.size()), r), HttpStatus::kComplete);
  EXPECT_STREQ(r.url, "/admin/secret");
  EXPECT_EQ(r.headLength, second.size());
}

TEST(HttpRequestTest, RequestLineShape) {
  auto shape = [](const std::string& s) {
    std::vector<uint8_t> bytes(s.begin(), s.end());
    return requestLineShape(bytes.data(), bytes.size());
  };
  EXPECT_EQ(shape("GET / HTTP/1.1\r\n"), LineShape::kHttp);
  EXPECT_EQ(shape("PROPFIND /dav HTTP/1.1"), LineShape::kHttp);
  EXPECT_EQ(shape("get /admin HTTP/"), LineShape::kHttp);
  EXPECT_EQ(shape("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), LineShape::kHttp);
  EXPECT_EQ(shape("PROPFIND /dav HTT"), LineShape::kNeedMoreData);
  EXPECT_EQ(shape("PROPFIND /dav"), LineShape::kNeedMoreData);
  EXPECT_EQ(shape("SET a b\r\n"), LineShape::kNotHttp);  // Redis inline command
  EXPECT_EQ(shape("SSH-2.0-OpenSSH_9.2p1\r\n"), LineShape::kNotHttp);
  EXPECT_EQ(shape(std::string("\x16\x03\x01", 3)), LineShape::kNotHttp);
  EXPECT_EQ(shape("GET  / HTTP/1.1"), LineShape::kNotHttp);
  EXPECT_EQ(shape(""), LineShape::kNeedMoreData);
}

TEST(HttpRequestTest, RequestStartShape) {
  auto shape = [](const std::string& s) {
    std::vector<uint8_t> bytes(s.begin(), s.end());
    return requestStartShape(bytes.data(), bytes.size());
  };
  EXPECT_EQ(shape("GET /"), LineShape::kHttp);
  EXPECT_EQ(shape("OPTIONS *"), LineShape::kHttp);
  EXPECT_EQ(shape("PROPFIND /dav"), LineShape::kHttp);
  EXPECT_EQ(shape("GET http:"), LineShape::kHttp);
  EXPECT_EQ(shape("GET HTTPS://a"), LineShape::kHttp);
  EXPECT_EQ(shape("GET htt"), LineShape::kNeedMoreData);
  EXPECT_EQ(shape("GET "), LineShape::kNeedMoreData);
  EXPECT_EQ(shape("GET"), LineShape::kNeedMoreData);
  EXPECT_EQ(shape("{\"a\": 1}"), LineShape::kNotHttp);
  EXPECT_EQ(shape("a=b&c=d"), LineShape::kNotHttp);
  EXPECT_EQ(shape("hello world"), LineShape::kNotHttp);
  EXPECT_EQ(shape("GET hello"), LineShape::kNotHttp);
  EXPECT_EQ(shape("ABCDEFGHIJKLMNOPQ /"), LineShape::kNotHttp);
}

// Feeds a chunked body in pieces of `step` bytes; returns the status and the bytes consumed in all.
ChunkedStatus consumeInSteps(const std::string& body, size_t step, size_t& consumed) {
  ChunkedState state;
  consumed = 0;
  std::vector<uint8_t> bytes(body.begin(), body.end());
  while (consumed < bytes.size()) {
    const size_t n = std::min(step, bytes.size() - consumed);
    size_t used = 0;
    ChunkedStatus status = consumeChunked(state, bytes.data() + consumed, n, used);
    consumed += used;
    if (status != ChunkedStatus::kNeedMoreData) return status;
    EXPECT_EQ(used, n);
  }
  return ChunkedStatus::kNeedMoreData;
}

TEST(HttpRequestTest, ChunkedBodiesEndWhereTheNextRequestStarts) {
  const std::string next = "GET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::vector<std::string> bodies = {
      "0\r\n\r\n",
      "5\r\nhello\r\n0\r\n\r\n",
      "5;name=value\r\nhello\r\nA\r\n0123456789\r\n000\r\n\r\n",
      "1a\r\n" + std::string(26, 'x') + "\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
      // Chunk data that looks like a request is data, not the next request.
      "27\r\nGET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n",
  };
  for (const std::string& body : bodies) {
    for (size_t step : {size_t{1}, size_t{3}, size_t{1000}}) {
      size_t consumed = 0;
      EXPECT_EQ(consumeInSteps(body + next, step, consumed), ChunkedStatus::kDone)
          << body << " step " << step;
      EXPECT_EQ(consumed, body.size()) << body << " step " << step;
    }
  }
}

TEST(HttpRequestTest, ChunkedFramingErrors) {
  const std::vector<std::string> bad = {
      "\r\n",                   // no size
      "x\r\n",                  // not hex
      "5\nhello\r\n0\r\n\r\n",  // bare LF after the size
      "5\r\nhello\n0\r\n\r\n",  // bare LF after the data
      "5\r\nhelloX\r\n",        // data longer than its size
      "0\r\n\n",                // bare LF ending the trailers
      "0\r\nX: a\rb\r\n\r\n",   // bare CR in a trailer
      "5;a\x01\r\nhello\r\n",   // control byte in an extension
      "1000000000000000\r\n",   // 16 hex digits
  };
  for (const std::string& body : bad) {
    size_t consumed = 0;
    EXPECT_EQ(consumeInSteps(body, 1, consumed), ChunkedStatus::kMalformed) << body;
    EXPECT_EQ(consumeInSteps(body, 100, consumed), ChunkedStatus::kMalformed) << body;
  }
}

}  // namespace
}  // namespace vgate::dataplane::http
