// Tests for the server flight parser against real handshakes produced by OpenSSL (TLS 1.2 and 1.3 over an
// in-memory BIO pair) with a certificate whose every field is known, plus hand-built broken flights.
#include "dataplane/tls/server_flight.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace vgate::dataplane::tls {
namespace {

using Bytes = std::vector<uint8_t>;

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
// vgate_tls links libcrypto only, and this test's link line belongs to the component's CMakeLists, so libssl
// (needed only to produce real handshakes) is opened at run time. Each member is named after the function it
// points to; declarations come from <openssl/ssl.h>, so the signatures are checked by the compiler.
#define VGATE_LIBSSL_FUNCTIONS(X) \
  X(TLS_server_method)            \
  X(TLS_client_method)            \
  X(SSL_CTX_new)                  \
  X(SSL_CTX_free)                 \
  X(SSL_CTX_use_certificate)      \
  X(SSL_CTX_use_PrivateKey)       \
  X(SSL_CTX_set_alpn_select_cb)   \
  X(SSL_CTX_ctrl)                 \
  X(SSL_CTX_set_verify)           \
  X(SSL_new)                      \
  X(SSL_free)                     \
  X(SSL_set_alpn_protos)          \
  X(SSL_set_bio)                  \
  X(SSL_set_connect_state)        \
  X(SSL_set_accept_state)         \
  X(SSL_do_handshake)             \
  X(SSL_get_current_cipher)       \
  X(SSL_CIPHER_get_protocol_id)   \
  X(SSL_version)                  \
  X(SSL_select_next_proto)

struct LibSsl {
#define VGATE_DECLARE(name) decltype(&::name) name = nullptr;
  VGATE_LIBSSL_FUNCTIONS(VGATE_DECLARE)
#undef VGATE_DECLARE
  bool loaded = false;

  // The test links libssl (the data path links only libcrypto): the table binds the real functions.
  static const LibSsl& get() {
    static const LibSsl instance = [] {
      LibSsl lib;
#define VGATE_BIND(name) lib.name = &::name;
      VGATE_LIBSSL_FUNCTIONS(VGATE_BIND)
#undef VGATE_BIND
      lib.loaded = true;
      return lib;
    }();
    return instance;
  }
};

const LibSsl& ssl() { return LibSsl::get(); }

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { ssl().SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* s) const { ssl().SSL_free(s); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Ctx = std::unique_ptr<SSL_CTX, CtxFree>;
using Ssl = std::unique_ptr<SSL, SslFree>;

constexpr int64_t kNotBefore = 1700000000;  // 2023-11-14T22:13:20Z
constexpr int64_t kNotAfter = 1800000000;   // 2027-01-15T08:00:00Z

struct NameEntry {
  const char* field;
  std::string value;
  int set = 0;  // 0: a new RDN; -1: joins the previous RDN (multi-valued)
};

struct CertSpec {
  std::vector<NameEntry> subject = {
      {"C", "US"}, {"ST", "California"}, {"O", "Example"}, {"CN", "www.example.com"}};
  std::vector<NameEntry> issuer = {{"C", "US"}, {"O", "Example CA"}, {"CN", "Example Root"}};
  const char* serialHex = "A1B2C3D4E5";  // high bit set: DER adds a leading 00
  std::string sans = "DNS:a.example,DNS:b.example,IP:192.0.2.1";
};

Key makeKey() { return Key(EVP_EC_gen("P-256")); }

void addNames(X509_NAME* name, const std::vector<NameEntry>& entries) {
  for (const NameEntry& entry : entries) {
    ASSERT_EQ(1, X509_NAME_add_entry_by_txt(name, entry.field, MBSTRING_ASC,
                                            reinterpret_cast<const unsigned char*>(entry.value.c_str()), -1,
                                            -1, entry.set));
  }
}

Cert makeCert(EVP_PKEY* key, const CertSpec& spec) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  BIGNUM* serial = nullptr;
  BN_hex2bn(&serial, spec.serialHex);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), kNotBefore);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), kNotAfter);
  addNames(X509_get_subject_name(cert.get()), spec.subject);
  addNames(X509_get_issuer_name(cert.get()), spec.issuer);
  X509_set_pubkey(cert.get(), key);
  if (!spec.sans.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, spec.sans.c_str());
    EXPECT_NE(ext, nullptr);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  return cert;
}

int selectH2(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
             unsigned int inLength, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (ssl().SSL_select_next_proto(&selected, outLength, kH2, sizeof(kH2), in, inLength) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

void drain(BIO* from, BIO* to, Bytes* record) {
  uint8_t chunk[4096];
  int n;
  while ((n = BIO_read(from, chunk, sizeof(chunk))) > 0) {
    if (record != nullptr) record->insert(record->end(), chunk, chunk + n);
    BIO_write(to, chunk, n);
  }
}

struct Handshake {
  Bytes serverBytes;  // everything the server wrote, from its first byte
  uint16_t cipher = 0;
  int version = 0;
};

// Runs a full handshake between an OpenSSL client and server in memory and records the server's bytes.
Handshake runHandshake(EVP_PKEY* key, X509* cert, int maxVersion) {
  Handshake result;
  const LibSsl& lib = ssl();
  Ctx serverCtx(lib.SSL_CTX_new(lib.TLS_server_method()));
  Ctx clientCtx(lib.SSL_CTX_new(lib.TLS_client_method()));
  EXPECT_EQ(1, lib.SSL_CTX_use_certificate(serverCtx.get(), cert));
  EXPECT_EQ(1, lib.SSL_CTX_use_PrivateKey(serverCtx.get(), key));
  lib.SSL_CTX_set_alpn_select_cb(serverCtx.get(), selectH2, nullptr);
  lib.SSL_CTX_ctrl(clientCtx.get(), SSL_CTRL_SET_MAX_PROTO_VERSION, maxVersion, nullptr);
  lib.SSL_CTX_set_verify(clientCtx.get(), SSL_VERIFY_NONE, nullptr);

  Ssl server(lib.SSL_new(serverCtx.get()));
  Ssl client(lib.SSL_new(clientCtx.get()));
  static const unsigned char kProtos[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  lib.SSL_set_alpn_protos(client.get(), kProtos, sizeof(kProtos));
  BIO* clientIn = BIO_new(BIO_s_mem());
  BIO* clientOut = BIO_new(BIO_s_mem());
  BIO* serverIn = BIO_new(BIO_s_mem());
  BIO* serverOut = BIO_new(BIO_s_mem());
  lib.SSL_set_bio(client.get(), clientIn, clientOut);  // the SSLs own the BIOs from here
  lib.SSL_set_bio(server.get(), serverIn, serverOut);
  lib.SSL_set_connect_state(client.get());
  lib.SSL_set_accept_state(server.get());

  bool clientDone = false;
  bool serverDone = false;
  for (int round = 0; round < 20 && !(clientDone && serverDone); ++round) {
    if (!clientDone) clientDone = lib.SSL_do_handshake(client.get()) == 1;
    drain(clientOut, serverIn, nullptr);
    if (!serverDone) serverDone = lib.SSL_do_handshake(server.get()) == 1;
    drain(serverOut, clientIn, &result.serverBytes);
  }
  EXPECT_TRUE(clientDone && serverDone);
  result.cipher =
      static_cast<uint16_t>(lib.SSL_CIPHER_get_protocol_id(lib.SSL_get_current_cipher(client.get())));
  result.version = lib.SSL_version(client.get());
  ERR_clear_error();
  return result;
}

struct Message {
  uint8_t type;
  Bytes body;
};

// The handshake messages of a TLS <= 1.2 flight, up to its first ChangeCipherSpec (in clear).
std::vector<Message> clearMessages(const Bytes& flight) {
  Bytes handshake;
  for (size_t offset = 0; offset + 5 <= flight.size();) {
    const size_t length = (size_t{flight[offset + 3]} << 8) | flight[offset + 4];
    if (flight[offset] != 22) break;
    handshake.insert(handshake.end(), flight.begin() + offset + 5, flight.begin() + offset + 5 + length);
    offset += 5 + length;
  }
  std::vector<Message> messages;
  for (size_t offset = 0; offset + 4 <= handshake.size();) {
    const size_t length =
        (size_t{handshake[offset + 1]} << 16) | (size_t{handshake[offset + 2]} << 8) | handshake[offset + 3];
    messages.push_back(
        {handshake[offset], Bytes(handshake.begin() + offset + 4, handshake.begin() + offset + 4 + length)});
    offset += 4 + length;
  }
  return messages;
}

void appendU24(Bytes& out, size_t value) {
  out.push_back(static_cast<uint8_t>(value >> 16));
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

Bytes u24(size_t value) {
  Bytes bytes;
  appendU24(bytes, value);
  return bytes;
}

Bytes serialize(const std::vector<Message>& messages) {
  Bytes handshake;
  for (const Message& message : messages) {
    handshake.push_back(message.type);
    const Bytes length = u24(message.body.size());
    handshake.insert(handshake.end(), length.begin(), length.end());
    handshake.insert(handshake.end(), message.body.begin(), message.body.end());
  }
  return handshake;
}

// Frames handshake bytes as records of at most `recordSize` bytes each.
Bytes frame(const Bytes& handshake, size_t recordSize) {
  Bytes out;
  for (size_t offset = 0; offset < handshake.size(); offset += recordSize) {
    const size_t length = std::min(recordSize, handshake.size() - offset);
    out.insert(out.end(), {22, 3, 3, static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)});
    out.insert(out.end(), handshake.begin() + offset, handshake.begin() + offset + length);
  }
  return out;
}

Bytes frameMessages(const std::vector<Message>& messages, size_t recordSize = 16384) {
  return frame(serialize(messages), recordSize);
}

// A ServerHello body: TLS 1.2, a 32-byte session id, the given cipher and raw extensions block (if any).
Bytes serverHelloBody(uint16_t cipher, const Bytes& extensions, bool withExtensions = true) {
  Bytes body = {3, 3};
  body.insert(body.end(), 32, 0x42);
  body.push_back(32);
  body.insert(body.end(), 32, 0x17);
  body.insert(body.end(), {static_cast<uint8_t>(cipher >> 8), static_cast<uint8_t>(cipher), 0});
  if (withExtensions) {
    body.insert(body.end(),
                {static_cast<uint8_t>(extensions.size() >> 8), static_cast<uint8_t>(extensions.size())});
    body.insert(body.end(), extensions.begin(), extensions.end());
  }
  return body;
}

// A Certificate message body carrying the given DER entries.
Bytes certificateBody(const std::vector<Bytes>& entries) {
  Bytes list;
  for (const Bytes& entry : entries) {
    appendU24(list, entry.size());
    list.insert(list.end(), entry.begin(), entry.end());
  }
  // The length goes in front of the list rather than the list behind a 3-byte vector: GCC 12 reports a false
  // -Warray-bounds on the latter.
  list.insert(list.begin(), 3, 0);
  Bytes length = u24(list.size() - 3);
  std::copy(length.begin(), length.end(), list.begin());
  return list;
}

Bytes derOf(X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  Bytes out(der, der + length);
  OPENSSL_free(der);
  return out;
}

std::string sha1Fingerprint(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(cert, EVP_sha1(), digest, &length);
  std::string out;
  char hex[4];
  for (unsigned int i = 0; i < length; ++i) {
    snprintf(hex, sizeof(hex), i == 0 ? "%02x" : ":%02x", digest[i]);
    out += hex;
  }
  return out;
}

ServerFlightStatus parse(const Bytes& flight, ServerFlight& out) {
  return parseServerFlight(flight.data(), flight.size(), out);
}

class ServerFlightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ssl().loaded) GTEST_SKIP() << "libssl.so.3 could not be opened; it produces the real handshakes";
    key_ = makeKey();
    ASSERT_NE(key_, nullptr);
    cert_ = makeCert(key_.get(), CertSpec{});
    ASSERT_NE(cert_, nullptr);
  }

  void expectCertificate(const ServerFlight& flight) {
    ASSERT_TRUE(flight.hasCertificate);
    const ServerCertificate& c = flight.certificate;
    EXPECT_STREQ(c.subject, "C=US, ST=California, O=Example, CN=www.example.com");
    EXPECT_STREQ(c.issuer, "C=US, O=Example CA, CN=Example Root");
    EXPECT_STREQ(c.serial, "00:A1:B2:C3:D4:E5");
    EXPECT_EQ(std::string(c.fingerprint), sha1Fingerprint(cert_.get()));
    EXPECT_EQ(c.notBefore, kNotBefore);
    EXPECT_EQ(c.notAfter, kNotAfter);
    ASSERT_EQ(c.sanCount, 3);
    EXPECT_STREQ(c.sans[0], "a.example");
    EXPECT_STREQ(c.sans[1], "b.example");
    EXPECT_STREQ(c.sans[2], "192.0.2.1");
  }

  Key key_;
  Cert cert_;
};

TEST_F(ServerFlightTest, Tls12RealHandshake) {
  const Handshake handshake = runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION);
  ASSERT_EQ(handshake.version, TLS1_2_VERSION);
  ServerFlight flight;
  ASSERT_EQ(parse(handshake.serverBytes, flight), ServerFlightStatus::kComplete);
  EXPECT_EQ(flight.version, 0x0303);
  EXPECT_EQ(flight.cipherSuite, handshake.cipher);
  EXPECT_NE(flight.cipherSuite, 0);
  EXPECT_STREQ(flight.alpn, "h2");
  expectCertificate(flight);
}

TEST_F(ServerFlightTest, Tls13RealHandshakeIsEncrypted) {
  const Handshake handshake = runHandshake(key_.get(), cert_.get(), TLS1_3_VERSION);
  ASSERT_EQ(handshake.version, TLS1_3_VERSION);
  ServerFlight flight;
  ASSERT_EQ(parse(handshake.serverBytes, flight), ServerFlightStatus::kEncrypted);
  EXPECT_EQ(flight.version, 0x0304);
  EXPECT_EQ(flight.cipherSuite, handshake.cipher);
  EXPECT_FALSE(flight.hasCertificate);
}

TEST_F(ServerFlightTest, EveryPrefixNeedsMoreDataUntilComplete) {
  const Handshake handshake = runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION);
  const Bytes& bytes = handshake.serverBytes;
  bool complete = false;
  for (size_t n = 0; n <= bytes.size(); ++n) {
    // A copy of exactly n bytes, so that ASan sees any read past the prefix.
    const Bytes prefix(bytes.begin(), bytes.begin() + n);
    ServerFlight flight;
    const ServerFlightStatus status = parseServerFlight(prefix.data(), prefix.size(), flight);
    if (complete) {
      ASSERT_EQ(status, ServerFlightStatus::kComplete) << "prefix " << n;
      continue;
    }
    if (status == ServerFlightStatus::kComplete) {
      complete = true;
      expectCertificate(flight);
      continue;
    }
    ASSERT_EQ(status, ServerFlightStatus::kNeedMoreData) << "prefix " << n;
  }
  EXPECT_TRUE(complete);
}

TEST_F(ServerFlightTest, Tls13PrefixesNeedMoreDataUntilEncrypted) {
  const Handshake handshake = runHandshake(key_.get(), cert_.get(), TLS1_3_VERSION);
  const Bytes& bytes = handshake.serverBytes;
  bool done = false;
  for (size_t n = 0; n <= bytes.size() && !done; ++n) {
    const Bytes prefix(bytes.begin(), bytes.begin() + n);
    ServerFlight flight;
    const ServerFlightStatus status = parseServerFlight(prefix.data(), prefix.size(), flight);
    done = status == ServerFlightStatus::kEncrypted;
    if (!done) {
      ASSERT_EQ(status, ServerFlightStatus::kNeedMoreData) << "prefix " << n;
    }
  }
  EXPECT_TRUE(done);
}

TEST_F(ServerFlightTest, SplitAcrossManyRecords) {
  const Handshake handshake = runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION);
  const std::vector<Message> messages = clearMessages(handshake.serverBytes);
  ASSERT_GE(messages.size(), 3u);
  EXPECT_EQ(messages[0].type, 2);
  EXPECT_EQ(messages[1].type, 11);
  for (size_t recordSize : {1, 2, 3, 7, 64, 500, 16384}) {
    ServerFlight flight;
    ASSERT_EQ(parse(frameMessages(messages, recordSize), flight), ServerFlightStatus::kComplete)
        << "records of " << recordSize;
    EXPECT_EQ(flight.cipherSuite, handshake.cipher);
    EXPECT_STREQ(flight.alpn, "h2");
    expectCertificate(flight);
  }
}

TEST_F(ServerFlightTest, TolerantOfHelloRequestAndStatusMessages) {
  std::vector<Message> messages =
      clearMessages(runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION).serverBytes);
  messages.insert(messages.begin(), Message{0, {}});  // HelloRequest before ServerHello
  messages.insert(messages.begin() + 2,
                  Message{4, Bytes(10, 0)});  // an unexpected message before Certificate
  ServerFlight flight;
  ASSERT_EQ(parse(frameMessages(messages), flight), ServerFlightStatus::kComplete);
  expectCertificate(flight);
}

TEST_F(ServerFlightTest, CorruptedDerIsBadCertificate) {
  std::vector<Message> messages =
      clearMessages(runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION).serverBytes);
  ASSERT_EQ(messages[1].type, 11);
  // The leaf's DER starts after the list length and the entry length; break its outer SEQUENCE tag, then
  // (separately) the TBS's tag, keeping every TLS length intact.
  for (size_t offset : {size_t{6}, size_t{10}}) {
    std::vector<Message> broken = messages;
    broken[1].body[offset] ^= 0xff;
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kBadCertificate) << offset;
    EXPECT_FALSE(flight.hasCertificate);
  }
  // An empty leaf, and a leaf of garbage.
  for (const Bytes& leaf : {Bytes{}, Bytes{0x30, 0x03, 0x02, 0x01, 0x01}, Bytes(40, 0xAA)}) {
    std::vector<Message> broken = messages;
    broken[1].body = certificateBody({leaf, derOf(cert_.get())});
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kBadCertificate);
  }
}

TEST_F(ServerFlightTest, LyingLengthsAreMalformed) {
  const std::vector<Message> messages =
      clearMessages(runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION).serverBytes);
  const Bytes der = derOf(cert_.get());

  {  // The certificate list claims one byte more than the message holds.
    std::vector<Message> broken = messages;
    broken[1].body = certificateBody({der});
    broken[1].body[2] += 1;
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed);
  }
  {  // A certificate entry longer than the list.
    std::vector<Message> broken = messages;
    broken[1].body = certificateBody({der});
    broken[1].body[5] += 1;
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed);
  }
  {  // A second entry truncated inside its length.
    std::vector<Message> broken = messages;
    broken[1].body = certificateBody({der});
    broken[1].body.insert(broken[1].body.end(), {0, 0});
    const Bytes length = u24(broken[1].body.size() - 3);
    std::copy(length.begin(), length.end(), broken[1].body.begin());
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed);
  }
  {  // ServerHello: a session id of 33 bytes, then one that runs past the message.
    for (uint8_t sessionIdLength : {33, 32 + 1 + 2 + 1 + 10}) {
      std::vector<Message> broken = messages;
      broken[0].body = serverHelloBody(0xc02f, {});
      broken[0].body[34] = sessionIdLength;
      ServerFlight flight;
      EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed);
    }
  }
  {  // ServerHello: extensions block shorter and longer than announced, and an extension running past it.
    const Bytes alpn = {0, 16, 0, 5, 0, 3, 2, 'h', '2'};
    for (int delta : {-1, 1}) {
      std::vector<Message> broken = messages;
      broken[0].body = serverHelloBody(0xc02f, alpn);
      broken[0].body[broken[0].body.size() - alpn.size() - 1] += static_cast<uint8_t>(delta);
      ServerFlight flight;
      EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed) << delta;
    }
    Bytes lying = alpn;
    lying[3] = 9;
    std::vector<Message> broken = messages;
    broken[0].body = serverHelloBody(0xc02f, lying);
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed);
  }
  {  // ALPN whose inner lengths disagree, and supported_versions of the wrong size.
    for (const Bytes& ext : {Bytes{0, 16, 0, 5, 0, 4, 2, 'h', '2'}, Bytes{0, 16, 0, 5, 0, 3, 3, 'h', '2'},
                             Bytes{0, 43, 0, 3, 3, 3, 0}}) {
      std::vector<Message> broken = messages;
      broken[0].body = serverHelloBody(0xc02f, ext);
      ServerFlight flight;
      EXPECT_EQ(parse(frameMessages(broken), flight), ServerFlightStatus::kMalformed);
    }
  }
  {  // A record longer than TLS allows.
    const Bytes flightBytes = {22, 3, 3, 0x48, 0x01, 2, 0, 0, 0};
    ServerFlight flight;
    EXPECT_EQ(parse(flightBytes, flight), ServerFlightStatus::kMalformed);
  }
  {  // The first message is not a ServerHello.
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages({messages[1]}), flight), ServerFlightStatus::kMalformed);
  }
  {  // Garbage where the next record header should be.
    Bytes flightBytes = frameMessages({messages[0]});
    flightBytes.insert(flightBytes.end(), {0x47, 0x45, 0x54});
    ServerFlight flight;
    EXPECT_EQ(parse(flightBytes, flight), ServerFlightStatus::kMalformed);
  }
}

TEST_F(ServerFlightTest, NotTls) {
  const std::string http = "HTTP/1.1 200 OK\r\n\r\n";
  ServerFlight flight;
  EXPECT_EQ(parseServerFlight(reinterpret_cast<const uint8_t*>(http.data()), http.size(), flight),
            ServerFlightStatus::kNotTls);
  EXPECT_EQ(parse(Bytes{22, 2}, flight), ServerFlightStatus::kNotTls);
  EXPECT_EQ(parse(Bytes{21, 3, 3, 0, 2, 2, 40}, flight), ServerFlightStatus::kNotTls);
  EXPECT_EQ(parse(Bytes{}, flight), ServerFlightStatus::kNeedMoreData);
  EXPECT_EQ(parse(Bytes{22}, flight), ServerFlightStatus::kNeedMoreData);
}

TEST_F(ServerFlightTest, TooLarge) {
  const std::vector<Message> messages =
      clearMessages(runHandshake(key_.get(), cert_.get(), TLS1_2_VERSION).serverBytes);
  {  // A Certificate message announced at 1 MiB is refused from its header alone.
    Bytes handshake = serialize({messages[0]});
    handshake.insert(handshake.end(), {11, 0x10, 0, 0});
    ServerFlight flight;
    EXPECT_EQ(parse(frame(handshake, 16384), flight), ServerFlightStatus::kTooLarge);
  }
  {  // A flight of unknown messages that never reaches Certificate.
    std::vector<Message> many = {messages[0]};
    for (int i = 0; i < 10; ++i) many.push_back(Message{4, Bytes(8000, 0)});
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages(many), flight), ServerFlightStatus::kTooLarge);
  }
}

TEST_F(ServerFlightTest, ResumptionAndAnonymousHaveNoCertificate) {
  const Bytes alpn = {0, 16, 0, 5, 0, 3, 2, 'h', '2'};
  Bytes resumed = frameMessages({Message{2, serverHelloBody(0xc02f, alpn)}});
  resumed.insert(resumed.end(), {20, 3, 3, 0, 1, 1});
  resumed.insert(resumed.end(), {22, 3, 3, 0, 40});
  resumed.insert(resumed.end(), 40, 0x99);  // the encrypted Finished
  ServerFlight flight;
  ASSERT_EQ(parse(resumed, flight), ServerFlightStatus::kComplete);
  EXPECT_FALSE(flight.hasCertificate);
  EXPECT_EQ(flight.cipherSuite, 0xc02f);
  EXPECT_EQ(flight.version, 0x0303);
  EXPECT_STREQ(flight.alpn, "h2");

  const Bytes anonymous = frameMessages(
      {Message{2, serverHelloBody(0x0034, {}, false)}, Message{12, Bytes(20, 1)}, Message{14, {}}});
  ASSERT_EQ(parse(anonymous, flight), ServerFlightStatus::kComplete);
  EXPECT_FALSE(flight.hasCertificate);
  EXPECT_EQ(flight.cipherSuite, 0x0034);

  // ChangeCipherSpec before ServerHello is not a flight.
  EXPECT_EQ(parse(Bytes{22, 3, 3, 0, 0, 20, 3, 3, 0, 1, 1}, flight), ServerFlightStatus::kMalformed);
}

TEST_F(ServerFlightTest, HandBuiltTls13AndDraftVersionsAreEncrypted) {
  for (uint16_t version : {uint16_t{0x0304}, uint16_t{0x7f1c}}) {
    const Bytes ext = {0, 43, 0, 2, static_cast<uint8_t>(version >> 8), static_cast<uint8_t>(version)};
    ServerFlight flight;
    EXPECT_EQ(parse(frameMessages({Message{2, serverHelloBody(0x1301, ext)}}), flight),
              ServerFlightStatus::kEncrypted);
    EXPECT_EQ(flight.version, version);
  }
}

TEST_F(ServerFlightTest, NameFormatsMultiValuedRdnsAndTruncates) {
  CertSpec spec;
  spec.subject = {{"C", "FR"},     {"ST", "Some-State"}, {"O", "Internet Widgits Pty Ltd"},
                  {"CN", "Test1"}, {"CN", "Test2", -1},  {"emailAddress", "ops@example.com"}};
  std::string longSans;
  for (int i = 0; i < 20; ++i) longSans += (i ? ",DNS:host" : "DNS:host") + std::to_string(i) + ".example";
  spec.sans = longSans;
  for (int i = 0; i < 12; ++i) spec.issuer.push_back({"OU", std::string(60, static_cast<char>('a' + i))});
  Cert cert = makeCert(key_.get(), spec);
  const Bytes flightBytes = frameMessages(
      {Message{2, serverHelloBody(0xc02f, {})}, Message{11, certificateBody({derOf(cert.get())})}});
  ServerFlight flight;
  ASSERT_EQ(parse(flightBytes, flight), ServerFlightStatus::kComplete);
  const ServerCertificate& c = flight.certificate;
  // The example from x509-parser's own test of the format Suricata logs, plus an e-mail attribute.
  EXPECT_STREQ(c.subject,
               "C=FR, ST=Some-State, O=Internet Widgits Pty Ltd, CN=Test1 + CN=Test2, "
               "emailAddress=ops@example.com");
  EXPECT_EQ(strlen(c.issuer), kMaxDnLength);
  EXPECT_EQ(std::string(c.issuer).rfind("C=US, O=Example CA, CN=Example Root, OU=aaaa", 0), 0u);
  EXPECT_EQ(c.sanCount, kMaxSanEntries);
  EXPECT_STREQ(c.sans[15], "host15.example");
  EXPECT_EQ(std::string(c.fingerprint), sha1Fingerprint(cert.get()));
}

TEST(ServerFlightStatusNameTest, StableNames) {
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kComplete), "complete");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kEncrypted), "encrypted");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kNeedMoreData), "need_more_data");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kNotTls), "not_tls");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kMalformed), "malformed");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kBadCertificate), "bad_certificate");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kTooLarge), "too_large");
  EXPECT_STREQ(serverFlightStatusName(ServerFlightStatus::kCount), "unknown");
}

}  // namespace
}  // namespace vgate::dataplane::tls
