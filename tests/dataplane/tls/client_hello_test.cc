// Tests for the ClientHello parser: real hellos from OpenSSL, re-framed, truncated and corrupted; hand-built
// hellos for GREASE, ECH and the published JA3 (Salesforce) and JA4 (FoxIO) reference values.
#include "dataplane/tls/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vgate::dataplane::tls {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

// A length field written by the builder: where it is, how wide, so that a test can make it lie.
struct LengthField {
  std::string name;
  size_t offset;
  size_t width;
};

struct Extension {
  uint16_t type;
  Bytes data;
  std::vector<LengthField> inner;  // offsets relative to `data`
};

Extension rawExtension(uint16_t type, Bytes data = {}) { return {type, std::move(data), {}}; }

Extension sniExtension(const std::string& name) {
  Extension ext{0x0000, {}, {{"sni list", 0, 2}, {"sni name", 3, 2}}};
  put16(ext.data, static_cast<uint16_t>(name.size() + 3));
  ext.data.push_back(0);  // host_name
  put16(ext.data, static_cast<uint16_t>(name.size()));
  ext.data.insert(ext.data.end(), name.begin(), name.end());
  return ext;
}

Extension alpnExtension(const std::vector<Bytes>& protocols) {
  Extension ext{0x0010, {0, 0}, {{"alpn list", 0, 2}}};
  for (const Bytes& protocol : protocols) {
    ext.inner.push_back({"alpn entry", ext.data.size(), 1});
    ext.data.push_back(static_cast<uint8_t>(protocol.size()));
    ext.data.insert(ext.data.end(), protocol.begin(), protocol.end());
  }
  const size_t listLength = ext.data.size() - 2;
  ext.data[0] = static_cast<uint8_t>(listLength >> 8);
  ext.data[1] = static_cast<uint8_t>(listLength);
  return ext;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

Extension u16ListExtension(uint16_t type, const std::vector<uint16_t>& values, const char* name) {
  Extension ext{type, {}, {{name, 0, 2}}};
  put16(ext.data, static_cast<uint16_t>(values.size() * 2));
  for (uint16_t value : values) put16(ext.data, value);
  return ext;
}
Extension groupsExtension(const std::vector<uint16_t>& groups) {
  return u16ListExtension(0x000a, groups, "groups list");
}
Extension sigAlgsExtension(const std::vector<uint16_t>& algorithms) {
  return u16ListExtension(0x000d, algorithms, "sigalgs list");
}

Extension versionsExtension(const std::vector<uint16_t>& versions) {
  Extension ext{0x002b, {static_cast<uint8_t>(versions.size() * 2)}, {{"versions list", 0, 1}}};
  for (uint16_t version : versions) put16(ext.data, version);
  return ext;
}

Extension pointFormatsExtension(const Bytes& formats) {
  Extension ext{0x000b, {static_cast<uint8_t>(formats.size())}, {{"point formats list", 0, 1}}};
  ext.data.insert(ext.data.end(), formats.begin(), formats.end());
  return ext;
}

struct HelloSpec {
  uint16_t legacyVersion = 0x0303;
  std::vector<uint16_t> ciphers;
  std::vector<Extension> extensions;
  bool withExtensionsBlock = true;
};

struct Built {
  Bytes message;  // the handshake message, header included
  std::vector<LengthField> lengths;
};

Built build(const HelloSpec& spec) {
  Built built;
  Bytes& m = built.message;
  m = {1, 0, 0, 0};
  built.lengths.push_back({"handshake", 1, 3});
  put16(m, spec.legacyVersion);
  for (int i = 0; i < 32; ++i) m.push_back(static_cast<uint8_t>(i));  // random
  built.lengths.push_back({"session id", m.size(), 1});
  m.push_back(32);
  for (int i = 0; i < 32; ++i) m.push_back(static_cast<uint8_t>(0x40 + i));
  built.lengths.push_back({"ciphers", m.size(), 2});
  put16(m, static_cast<uint16_t>(spec.ciphers.size() * 2));
  for (uint16_t cipher : spec.ciphers) put16(m, cipher);
  built.lengths.push_back({"compression", m.size(), 1});
  m.push_back(1);
  m.push_back(0);
  if (spec.withExtensionsBlock) {
    built.lengths.push_back({"extensions", m.size(), 2});
    const size_t blockStart = m.size();
    put16(m, 0);
    for (const Extension& ext : spec.extensions) {
      put16(m, ext.type);
      built.lengths.push_back(
          {(ext.inner.empty() ? "opaque extension " : "extension ") + std::to_string(ext.type), m.size(), 2});
      put16(m, static_cast<uint16_t>(ext.data.size()));
      for (const LengthField& field : ext.inner)
        built.lengths.push_back({field.name, m.size() + field.offset, field.width});
      m.insert(m.end(), ext.data.begin(), ext.data.end());
    }
    const size_t blockLength = m.size() - blockStart - 2;
    m[blockStart] = static_cast<uint8_t>(blockLength >> 8);
    m[blockStart + 1] = static_cast<uint8_t>(blockLength);
  }
  const size_t bodyLength = m.size() - 4;
  m[1] = static_cast<uint8_t>(bodyLength >> 16);
  m[2] = static_cast<uint8_t>(bodyLength >> 8);
  m[3] = static_cast<uint8_t>(bodyLength);
  return built;
}

// Frames handshake bytes into TLS records of at most `chunk` bytes each.
Bytes frame(const Bytes& handshake, size_t chunk, uint16_t recordVersion = 0x0301) {
  Bytes out;
  for (size_t offset = 0; offset < handshake.size(); offset += chunk) {
    const size_t length = std::min(chunk, handshake.size() - offset);
    out.push_back(22);
    put16(out, recordVersion);
    put16(out, static_cast<uint16_t>(length));
    out.insert(out.end(), handshake.begin() + offset, handshake.begin() + offset + length);
  }
  return out;
}

// Undoes the record layer (all records are handshake records in these tests).
Bytes unframe(const Bytes& records) {
  Bytes out;
  size_t offset = 0;
  while (offset + 5 <= records.size()) {
    const size_t length = (records[offset + 3] << 8) | records[offset + 4];
    out.insert(out.end(), records.begin() + offset + 5, records.begin() + offset + 5 + length);
    offset += 5 + length;
  }
  return out;
}

std::string digestHex(const char* algorithm, const std::string& input) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_get_digestbyname(algorithm), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    char pair[3];
    snprintf(pair, sizeof(pair), "%02x", digest[i]);
    hex += pair;
  }
  return hex;
}

// Recomputes the hashed fingerprints from the raw strings with OpenSSL directly.
void expectHashesMatchRaw(const ClientHello& hello, const std::string& ja3Raw, const std::string& ja4Raw) {
  EXPECT_EQ(hello.ja3, digestHex("MD5", ja3Raw));
  // JA4_r = a_ciphers_extensions[_sigalgs]: split at the first two underscores.
  const size_t first = ja4Raw.find('_');
  const size_t second = ja4Raw.find('_', first + 1);
  ASSERT_NE(second, std::string::npos) << ja4Raw;
  const std::string ciphers = ja4Raw.substr(first + 1, second - first - 1);
  const std::string rest = ja4Raw.substr(second + 1);
  const auto hash12 = [](const std::string& s) {
    return s.empty() ? "000000000000" : digestHex("SHA256", s).substr(0, 12);
  };
  EXPECT_EQ(std::string(hello.ja4), ja4Raw.substr(0, first) + "_" + hash12(ciphers) + "_" + hash12(rest));
}

class ClientHelloTest : public ::testing::Test {
 protected:
  ClientHelloTest() { parser_.setRawOutput(ja3Raw_, sizeof(ja3Raw_), ja4Raw_, sizeof(ja4Raw_)); }

  ClientHelloStatus records(const Bytes& bytes, size_t length = SIZE_MAX) {
    return parser_.parseRecords(bytes.data(), std::min(length, bytes.size()), hello_);
  }
  ClientHelloStatus handshake(const Bytes& bytes, TlsTransport transport = TlsTransport::kTcp,
                              size_t length = SIZE_MAX) {
    return parser_.parseHandshake(bytes.data(), std::min(length, bytes.size()), transport, hello_);
  }

  ClientHelloParser parser_;
  ClientHello hello_;
  char ja3Raw_[8192] = {};
  char ja4Raw_[8192] = {};
};

// ---- Real ClientHellos written by OpenSSL's client
// -------------------------------------------------------------

struct OpenSslHello {
  Bytes records;
  std::vector<uint16_t> offeredCiphers;  // what SSL_get1_supported_ciphers says the client offers, in order
};

OpenSslHello opensslClientHello(const char* sni, const std::vector<std::string>& alpn, int maxVersion) {
  OpenSslHello result;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (maxVersion != 0) SSL_CTX_set_max_proto_version(ctx, maxVersion);
  if (maxVersion == TLS1_1_VERSION) {
    // OpenSSL 3 allows TLS 1.1 only at security level 0 (and distributions raise the minimum version).
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  }
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  if (sni != nullptr) SSL_set_tlsext_host_name(ssl, sni);
  if (!alpn.empty()) {
    Bytes wire;
    for (const std::string& protocol : alpn) {
      wire.push_back(static_cast<uint8_t>(protocol.size()));
      wire.insert(wire.end(), protocol.begin(), protocol.end());
    }
    SSL_set_alpn_protos(ssl, wire.data(), static_cast<unsigned>(wire.size()));
  }
  SSL_do_handshake(ssl);  // writes the ClientHello, then wants to read
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  result.records.assign(data, data + length);
  STACK_OF(SSL_CIPHER)* ciphers = SSL_get1_supported_ciphers(ssl);
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    result.offeredCiphers.push_back(SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(ciphers, i)));
  }
  sk_SSL_CIPHER_free(ciphers);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return result;
}

struct OpenSslCase {
  const char* name;
  const char* sni;
  std::vector<std::string> alpn;
  int maxVersion;
  uint16_t expectedMaxVersion;
  const char* expectedJa4Prefix;  // ja4_a without the counts: protocol, version, d/i ... then ALPN
  const char* expectedAlpnChars;
};

const OpenSslCase kOpenSslCases[] = {
    {"tls13_sni_h2", "www.example.com", {"h2", "http/1.1"}, 0, 0x0304, "t13d", "h2"},
    {"tls13_no_sni_http11", nullptr, {"http/1.1"}, 0, 0x0304, "t13i", "h1"},
    {"tls12_sni_no_alpn", "api.example.org", {}, TLS1_2_VERSION, 0x0303, "t12d", "00"},
    {"tls11", "old.example.net", {"h2"}, TLS1_1_VERSION, 0x0302, "t11d", "h2"},
};

class OpenSslHelloTest : public ClientHelloTest, public ::testing::WithParamInterface<OpenSslCase> {};

TEST_P(OpenSslHelloTest, FieldsAndFingerprints) {
  const OpenSslCase& c = GetParam();
  const OpenSslHello generated = opensslClientHello(c.sni, c.alpn, c.maxVersion);
  ASSERT_GT(generated.records.size(), 50u);
  ASSERT_EQ(records(generated.records), ClientHelloStatus::kComplete);
  EXPECT_EQ(hello_.hasSni, c.sni != nullptr);
  if (c.sni != nullptr) {
    EXPECT_EQ(std::string(hello_.sni, hello_.sniLength), c.sni);
  }
  EXPECT_EQ(hello_.legacyVersion, c.maxVersion == TLS1_1_VERSION ? 0x0302 : 0x0303);
  EXPECT_EQ(hello_.maxSupportedVersion, c.expectedMaxVersion);
  ASSERT_EQ(hello_.alpnCount, c.alpn.size());
  for (size_t i = 0; i < c.alpn.size(); ++i) EXPECT_EQ(hello_.alpn[i], c.alpn[i]);
  EXPECT_FALSE(hello_.alpnTruncated);
  EXPECT_FALSE(hello_.echOuter);
  EXPECT_EQ(hello_.messageLength + 5u, generated.records.size());

  // The cipher field of JA3 must be what OpenSSL says it offers, plus the renegotiation SCSV (0x00ff) that
  // OpenSSL appends on an initial handshake (RFC 5746 3.4).
  std::string ciphers;
  for (uint16_t cipher : generated.offeredCiphers)
    ciphers += (ciphers.empty() ? "" : "-") + std::to_string(cipher);
  ciphers += "-255";
  const std::string ja3(ja3Raw_);
  EXPECT_EQ(ja3.substr(0, ja3.find(',', 4) + 1), std::to_string(hello_.legacyVersion) + "," + ciphers + ",");

  const std::string ja4(hello_.ja4);
  ASSERT_EQ(ja4.size(), 36u);
  EXPECT_EQ(ja4.substr(0, 4), c.expectedJa4Prefix);
  char cipherCount[3];
  snprintf(cipherCount, sizeof(cipherCount), "%02zu", generated.offeredCiphers.size() + 1);
  EXPECT_EQ(ja4.substr(4, 2), cipherCount);
  EXPECT_EQ(ja4.substr(8, 2), c.expectedAlpnChars);
  expectHashesMatchRaw(hello_, ja3Raw_, ja4Raw_);

  // The same bytes from the handshake layer give the same result; QUIC only changes the first letter.
  const ClientHello fromRecords = hello_;
  const Bytes message = unframe(generated.records);
  ASSERT_EQ(handshake(message), ClientHelloStatus::kComplete);
  EXPECT_STREQ(hello_.ja4, fromRecords.ja4);
  EXPECT_STREQ(hello_.ja3, fromRecords.ja3);
  ASSERT_EQ(handshake(message, TlsTransport::kQuic), ClientHelloStatus::kComplete);
  EXPECT_EQ(hello_.ja4[0], 'q');
  EXPECT_STREQ(hello_.ja4 + 1, fromRecords.ja4 + 1);
}

TEST_P(OpenSslHelloTest, ReframedAcrossRecordsGivesTheSameResult) {
  const OpenSslHello generated = opensslClientHello(GetParam().sni, GetParam().alpn, GetParam().maxVersion);
  ASSERT_EQ(records(generated.records), ClientHelloStatus::kComplete);
  const ClientHello expected = hello_;
  const Bytes message = unframe(generated.records);
  for (size_t chunk : {message.size() / 2 + 1, size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{64}}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    const Bytes reframed = frame(message, chunk);
    ASSERT_EQ(records(reframed), ClientHelloStatus::kComplete);
    EXPECT_EQ(std::memcmp(&hello_, &expected, sizeof(hello_)), 0);
    // Trailing bytes after the ClientHello (the next flight, garbage) do not matter.
    Bytes withTrailer = reframed;
    withTrailer.insert(withTrailer.end(), {23, 3, 3, 0, 1, 0});
    ASSERT_EQ(records(withTrailer), ClientHelloStatus::kComplete);
    EXPECT_STREQ(hello_.ja4, expected.ja4);
  }
}

TEST_P(OpenSslHelloTest, EveryTruncationNeedsMoreData) {
  const OpenSslHello generated = opensslClientHello(GetParam().sni, GetParam().alpn, GetParam().maxVersion);
  const Bytes message = unframe(generated.records);
  for (size_t chunk : {message.size(), size_t{1}, size_t{7}, size_t{100}}) {
    const Bytes stream = frame(message, chunk);
    for (size_t length = 0; length < stream.size(); ++length) {
      ASSERT_EQ(records(stream, length), ClientHelloStatus::kNeedMoreData)
          << "chunk " << chunk << " length " << length;
    }
    ASSERT_EQ(records(stream), ClientHelloStatus::kComplete);
  }
  for (size_t length = 0; length < message.size(); ++length) {
    ASSERT_EQ(handshake(message, TlsTransport::kQuic, length), ClientHelloStatus::kNeedMoreData) << length;
  }
}

INSTANTIATE_TEST_SUITE_P(OpenSsl, OpenSslHelloTest, ::testing::ValuesIn(kOpenSslCases),
                         [](const auto& test) { return std::string(test.param.name); });

// ---- Published reference values
// --------------------------------------------------------------------------------

// The FoxIO JA4 specification's worked example (github.com/FoxIO-LLC/ja4, technical_details/JA4.md, "Example"
// and "Raw Output"): its cipher, extension and signature algorithm lists in their original order.
const std::vector<uint16_t> kFoxIoCiphers = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
                                             0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
const std::vector<uint16_t> kFoxIoSigAlgs = {0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601};

HelloSpec foxIoExample(const std::vector<uint16_t>& sigAlgs) {
  HelloSpec spec;
  spec.ciphers = kFoxIoCiphers;
  // 001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015
  spec.extensions = {rawExtension(0x001b, {2, 0, 2}),
                     sniExtension("example.com"),
                     rawExtension(0x0033, {0, 0}),
                     alpnExtension({text("h2"), text("http/1.1")}),
                     rawExtension(0x4469, {0, 3, 2, 'h', '2'}),
                     rawExtension(0x0017),
                     rawExtension(0x002d, {1, 1}),
                     sigAlgsExtension(sigAlgs),
                     rawExtension(0x0005, {1, 0, 0, 0, 0}),
                     rawExtension(0x0023),
                     rawExtension(0x0012),
                     versionsExtension({0x0304, 0x0303}),
                     rawExtension(0xff01, {0}),
                     pointFormatsExtension({0}),
                     groupsExtension({0x001d, 0x0017, 0x0018}),
                     rawExtension(0x0015, Bytes(20, 0))};
  return spec;
}

TEST_F(ClientHelloTest, FoxIoSpecificationExample) {
  const Built built = build(foxIoExample(kFoxIoSigAlgs));
  ASSERT_EQ(records(frame(built.message, 16384)), ClientHelloStatus::kComplete);
  EXPECT_STREQ(hello_.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
  EXPECT_STREQ(
      ja4Raw_,
      "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,"
      "000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601");
}

TEST_F(ClientHelloTest, FoxIoExampleWithoutSignatureAlgorithmsEndsWithoutUnderscore) {
  // Same document: "0005,...,4469,ff01 = 6d807ffa2a79" when the hello carries no signature algorithms.
  const Built built = build(foxIoExample({}));
  ASSERT_EQ(handshake(built.message), ClientHelloStatus::kComplete);
  EXPECT_STREQ(hello_.ja4, "t13d1516h2_8daaf6152771_6d807ffa2a79");
}

TEST_F(ClientHelloTest, ChromeWithEchAndGreaseMatchesPublishedCapture) {
  // A Chrome 143 ClientHello as reported by browserleaks.com (github.com/service0427/v2_cp_app, tls.md):
  // ja3_text, ja3_hash, ja4 and ja4_r. The capture's GREASE values are put back (first cipher, first and last
  // extension, first group and version) since the published strings already have them removed.
  HelloSpec spec;
  spec.ciphers = {0x3a3a, 4865,  4866,  4867,  49195, 49199, 49196, 49200,
                  52393,  52392, 49171, 49172, 156,   157,   47,    53};
  spec.extensions = {rawExtension(0x2a2a),
                     rawExtension(45, {1, 1}),
                     rawExtension(51, {0, 0}),
                     alpnExtension({text("h2"), text("http/1.1")}),
                     rawExtension(65037, {0, 0, 1, 0, 1, 0x2c, 0, 0, 0, 0}),
                     rawExtension(23),
                     rawExtension(17613, {0, 3, 2, 'h', '2'}),
                     sniExtension("tls-outer.browserleaks.com"),
                     pointFormatsExtension({0}),
                     groupsExtension({0x8a8a, 4588, 29, 23, 24}),
                     versionsExtension({0x5a5a, 0x0304, 0x0303}),
                     rawExtension(65281, {0}),
                     rawExtension(35),
                     rawExtension(18),
                     rawExtension(5, {1, 0, 0, 0, 0}),
                     sigAlgsExtension(kFoxIoSigAlgs),
                     rawExtension(27, {2, 0, 2}),
                     rawExtension(0xdada, {0})};
  const Built built = build(spec);
  ASSERT_EQ(records(frame(built.message, 300)), ClientHelloStatus::kComplete);
  EXPECT_STREQ(ja3Raw_,
               "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
               "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0");
  EXPECT_STREQ(hello_.ja3, "98487aa16281980e7d1120d399efb6a4");
  EXPECT_STREQ(hello_.ja4, "t13d1516h2_8daaf6152771_d8a2da3f94cd");
  EXPECT_STREQ(
      ja4Raw_,
      "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,"
      "000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_0403,0804,0401,0503,0805,0501,0806,0601");
  EXPECT_TRUE(hello_.echOuter);
  EXPECT_STREQ(hello_.sni, "tls-outer.browserleaks.com");
  EXPECT_EQ(hello_.maxSupportedVersion, 0x0304);
}

TEST_F(ClientHelloTest, SalesforceJa3ReadmeExamples) {
  // github.com/salesforce/ja3 README: "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0
  // --> ada70206e40642a3e4461f35503241d5" and, for a hello without extensions,
  // "769,4-5-10-9-100-98-3-6-19-18-99,,,
  // --> de350869b8c85de67a350c8d186f11e6".
  HelloSpec spec;
  spec.legacyVersion = 0x0301;
  spec.ciphers = {47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4};
  spec.extensions = {sniExtension("example.com"), groupsExtension({23, 24, 25}), pointFormatsExtension({0})};
  ASSERT_EQ(handshake(build(spec).message), ClientHelloStatus::kComplete);
  EXPECT_STREQ(ja3Raw_, "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0");
  EXPECT_STREQ(hello_.ja3, "ada70206e40642a3e4461f35503241d5");

  HelloSpec bare;
  bare.legacyVersion = 0x0301;
  bare.ciphers = {4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99};
  bare.withExtensionsBlock = false;
  ASSERT_EQ(records(frame(build(bare).message, 1000)), ClientHelloStatus::kComplete);
  EXPECT_STREQ(ja3Raw_, "769,4-5-10-9-100-98-3-6-19-18-99,,,");
  EXPECT_STREQ(hello_.ja3, "de350869b8c85de67a350c8d186f11e6");
  // No SNI, no ALPN, no extensions: "i", "00", and the FoxIO rule that an empty list hashes to twelve zeros.
  EXPECT_EQ(std::string(hello_.ja4).substr(0, 11), "t10i110000_");
  EXPECT_EQ(std::string(hello_.ja4).substr(23), "_000000000000");
  EXPECT_FALSE(hello_.hasSni);
  EXPECT_EQ(hello_.maxSupportedVersion, 0x0301);
}

// ---- GREASE, ECH, ALPN and version rules
// ------------------------------------------------------------------------

TEST_F(ClientHelloTest, GreaseDoesNotChangeFingerprints) {
  const HelloSpec plain = foxIoExample(kFoxIoSigAlgs);
  ASSERT_EQ(handshake(build(plain).message), ClientHelloStatus::kComplete);
  const ClientHello expected = hello_;

  HelloSpec greased = plain;
  greased.ciphers.insert(greased.ciphers.begin(), 0x0a0a);
  greased.ciphers.insert(greased.ciphers.begin() + 7, 0xfafa);
  greased.extensions.insert(greased.extensions.begin(), rawExtension(0x1a1a));
  greased.extensions.insert(greased.extensions.begin() + 5, rawExtension(0x9a9a, {1, 2, 3}));
  greased.extensions.push_back(rawExtension(0xeaea, {0}));
  for (Extension& ext : greased.extensions) {
    if (ext.type == 0x002b) ext = versionsExtension({0x7a7a, 0x0304, 0x0303});
    if (ext.type == 0x000a) ext = groupsExtension({0x4a4a, 0x001d, 0x0017, 0x0018});
    if (ext.type == 0x000d) {
      std::vector<uint16_t> algorithms = kFoxIoSigAlgs;
      algorithms.insert(algorithms.begin() + 2, 0x3a3a);
      ext = sigAlgsExtension(algorithms);
    }
  }
  ASSERT_EQ(handshake(build(greased).message), ClientHelloStatus::kComplete);
  EXPECT_STREQ(hello_.ja3, expected.ja3);
  EXPECT_STREQ(hello_.ja4, expected.ja4);
  EXPECT_EQ(hello_.maxSupportedVersion, 0x0304);

  // A version list of nothing but GREASE falls back to legacy_version.
  HelloSpec onlyGrease = plain;
  for (Extension& ext : onlyGrease.extensions) {
    if (ext.type == 0x002b) ext = versionsExtension({0x2a2a});
  }
  ASSERT_EQ(handshake(build(onlyGrease).message), ClientHelloStatus::kComplete);
  EXPECT_EQ(hello_.maxSupportedVersion, 0x0303);
  EXPECT_EQ(std::string(hello_.ja4).substr(0, 3), "t12");
}

TEST_F(ClientHelloTest, EchExtensionIsFlagged) {
  HelloSpec spec = foxIoExample(kFoxIoSigAlgs);
  ASSERT_EQ(handshake(build(spec).message), ClientHelloStatus::kComplete);
  EXPECT_FALSE(hello_.echOuter);
  spec.extensions.push_back(rawExtension(0xfe0d, {0, 0, 1, 0, 1, 7, 0, 0, 0, 0}));
  ASSERT_EQ(handshake(build(spec).message), ClientHelloStatus::kComplete);
  EXPECT_TRUE(hello_.echOuter);
  EXPECT_STREQ(hello_.sni, "example.com");
  EXPECT_EQ(std::string(hello_.ja4).substr(0, 10), "t13d1517h2");
}

struct AlpnCase {
  Bytes first;
  const char* expected;
};

TEST_F(ClientHelloTest, AlpnCharactersFollowTheFoxIoRules) {
  // The examples of FoxIO's JA4.md, "ALPN Extension Value", plus its single-character and empty rules.
  const AlpnCase cases[] = {
      {text("h2"), "h2"},
      {text("http/1.1"), "h1"},
      {text("h3"), "h3"},
      {text("x"), "xx"},
      {{0xab}, "ab"},
      {{0xab, 0xcd}, "ad"},
      {{0x30, 0xab}, "3b"},
      {{0x30, 0x31, 0xab, 0xcd}, "3d"},
      {{0x30, 0xab, 0xcd, 0x31}, "01"},
      {{}, "00"},
  };
  for (const AlpnCase& c : cases) {
    HelloSpec spec;
    spec.ciphers = {0x1301};
    spec.extensions = {alpnExtension({c.first, text("h2")})};
    ASSERT_EQ(handshake(build(spec).message), ClientHelloStatus::kComplete) << c.expected;
    EXPECT_EQ(std::string(hello_.ja4).substr(8, 2), c.expected);
    EXPECT_EQ(hello_.alpnCount, 2);
  }
}

TEST_F(ClientHelloTest, AlpnEntriesBeyondTheLimitsAreTruncated) {
  std::vector<Bytes> protocols;
  for (size_t i = 0; i < kMaxAlpnEntries + 2; ++i) protocols.push_back(text("p" + std::to_string(i)));
  protocols.insert(protocols.begin() + 1, Bytes(kMaxAlpnLength + 1, 'a'));
  HelloSpec spec;
  spec.ciphers = {0x1301};
  spec.extensions = {alpnExtension(protocols)};
  ASSERT_EQ(handshake(build(spec).message), ClientHelloStatus::kComplete);
  EXPECT_EQ(hello_.alpnCount, kMaxAlpnEntries);
  EXPECT_TRUE(hello_.alpnTruncated);
  EXPECT_STREQ(hello_.alpn[0], "p0");
  EXPECT_STREQ(hello_.alpn[1], "p1");  // the over-long entry is skipped, not cut
}

TEST_F(ClientHelloTest, VersionStrings) {
  const std::pair<std::vector<uint16_t>, const char*> cases[] = {
      {{0x0304, 0x0303}, "13"}, {{0x0303}, "12"}, {{0x0302, 0x0301}, "11"}, {{0x0301}, "10"},
      {{0x0300}, "s3"},         {{0x0305}, "00"}, {{0x0303, 0x0304}, "13"},
  };
  for (const auto& [versions, expected] : cases) {
    HelloSpec spec;
    spec.ciphers = {0x1301};
    spec.extensions = {versionsExtension(versions)};
    ASSERT_EQ(handshake(build(spec).message), ClientHelloStatus::kComplete);
    EXPECT_EQ(std::string(hello_.ja4).substr(1, 2), expected);
  }
  HelloSpec legacy;
  legacy.legacyVersion = 0x0300;
  legacy.ciphers = {0x000a};
  ASSERT_EQ(handshake(build(legacy).message), ClientHelloStatus::kComplete);
  EXPECT_EQ(std::string(hello_.ja4).substr(0, 4), "ts3i");
}

TEST_F(ClientHelloTest, CountsAreCappedAt99) {
  HelloSpec spec;
  for (uint16_t i = 0; i < 120; ++i) spec.ciphers.push_back(static_cast<uint16_t>(0x1000 + i));
  for (uint16_t i = 0; i < 105; ++i)
    spec.extensions.push_back(rawExtension(static_cast<uint16_t>(0x3000 + i)));
  ASSERT_EQ(records(frame(build(spec).message, 512)), ClientHelloStatus::kComplete);
  EXPECT_EQ(std::string(hello_.ja4).substr(0, 10), "t12i999900");
  expectHashesMatchRaw(hello_, ja3Raw_, ja4Raw_);
}

// ---- Record layer, sizes and errors
// ------------------------------------------------------------------------------

TEST_F(ClientHelloTest, LargeHelloAcrossFullRecords) {
  HelloSpec spec = foxIoExample(kFoxIoSigAlgs);
  spec.extensions.back() =
      rawExtension(0x0015, Bytes(20000, 0));  // padding: the message spans two full records
  const Built built = build(spec);
  ASSERT_GT(built.message.size(), 16384u);
  ASSERT_EQ(records(frame(built.message, 16384)), ClientHelloStatus::kComplete);
  EXPECT_STREQ(hello_.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
  EXPECT_EQ(hello_.messageLength, built.message.size());

  spec.extensions.back() = rawExtension(0x0015, Bytes(kMaxClientHelloLength, 0));
  const Built tooLarge = build(spec);
  EXPECT_EQ(records(frame(tooLarge.message, 16384)), ClientHelloStatus::kTooLarge);
  EXPECT_EQ(records(frame(tooLarge.message, 2)), ClientHelloStatus::kTooLarge);
  EXPECT_EQ(handshake(tooLarge.message), ClientHelloStatus::kTooLarge);
  EXPECT_EQ(handshake(tooLarge.message, TlsTransport::kQuic, 4), ClientHelloStatus::kTooLarge);
}

TEST_F(ClientHelloTest, NotTlsNotClientHello) {
  const Bytes hello = build(foxIoExample(kFoxIoSigAlgs)).message;
  const std::pair<Bytes, ClientHelloStatus> cases[] = {
      {text("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ClientHelloStatus::kNotTls},
      {{0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5}, ClientHelloStatus::kNotTls},  // application data first
      {{0x16, 2, 0}, ClientHelloStatus::kNotTls},                       // not a 3.x record version
      {{0x16}, ClientHelloStatus::kNeedMoreData},
      {{0x16, 3}, ClientHelloStatus::kNeedMoreData},
      {{0x16, 3, 1, 0, 4, 2, 0, 0, 0}, ClientHelloStatus::kNotClientHello},  // a ServerHello
      {{0x16, 3, 1, 0, 1, 2}, ClientHelloStatus::kNotClientHello},
      {{0x16, 3, 1, 0, 0}, ClientHelloStatus::kMalformed},        // empty handshake record (RFC 8446 5.1)
      {{0x16, 3, 1, 0x48, 0x01}, ClientHelloStatus::kMalformed},  // longer than any record may be
  };
  for (const auto& [bytes, expected] : cases) {
    EXPECT_EQ(records(bytes), expected) << clientHelloStatusName(expected);
  }
  // A record after the first that is not a handshake record breaks the ClientHello.
  Bytes twoRecords = frame(hello, 100);
  twoRecords[105] = 0x17;
  EXPECT_EQ(records(twoRecords), ClientHelloStatus::kMalformed);
  EXPECT_EQ(handshake({2, 0, 0, 0}), ClientHelloStatus::kNotClientHello);
  EXPECT_EQ(handshake({}), ClientHelloStatus::kNeedMoreData);
}

TEST_F(ClientHelloTest, LyingLengthsAreMalformed) {
  const Built built = build(foxIoExample(kFoxIoSigAlgs));
  ASSERT_EQ(handshake(built.message), ClientHelloStatus::kComplete);
  for (const LengthField& field : built.lengths) {
    for (int delta : {-1, 1, 2, 250}) {
      Bytes lying = built.message;
      uint32_t value = 0;
      for (size_t i = 0; i < field.width; ++i) value = (value << 8) | lying[field.offset + i];
      if (delta < 0 && value == 0) continue;
      // The data of an extension we do not read is opaque: a lie that still lands on a later extension header
      // can parse, so only off-by-one and past-the-end lies are required to show there.
      if (field.name.starts_with("opaque") && delta == 2) continue;
      value += delta;
      if (value >> (8 * field.width) != 0) continue;
      for (size_t i = 0; i < field.width; ++i) {
        lying[field.offset + i] = static_cast<uint8_t>(value >> (8 * (field.width - 1 - i)));
      }
      // A longer handshake length is a valid prefix of a longer message, not a lie we can see yet.
      const ClientHelloStatus expected = field.name == "handshake" && delta > 0
                                             ? ClientHelloStatus::kNeedMoreData
                                             : ClientHelloStatus::kMalformed;
      EXPECT_EQ(handshake(lying), expected) << field.name << " " << delta;
      EXPECT_EQ(records(frame(lying, 7)), expected) << field.name << " " << delta;
    }
  }
  // Record lengths that lie misalign the next record header.
  const Bytes stream = frame(built.message, 64);
  for (int delta : {-1, 1}) {
    Bytes lying = stream;
    lying[4] = static_cast<uint8_t>(lying[4] + delta);
    EXPECT_EQ(records(lying), ClientHelloStatus::kMalformed) << delta;
  }
}

TEST_F(ClientHelloTest, DuplicateExtensionsAreMalformed) {
  HelloSpec spec = foxIoExample(kFoxIoSigAlgs);
  spec.extensions.push_back(sniExtension("other.example"));
  EXPECT_EQ(handshake(build(spec).message), ClientHelloStatus::kMalformed);
  spec = foxIoExample(kFoxIoSigAlgs);
  spec.extensions.push_back(alpnExtension({text("h3")}));
  EXPECT_EQ(handshake(build(spec).message), ClientHelloStatus::kMalformed);
}

TEST_F(ClientHelloTest, StatusNamesAreStableAndDistinct) {
  EXPECT_STREQ(clientHelloStatusName(ClientHelloStatus::kComplete), "complete");
  EXPECT_STREQ(clientHelloStatusName(ClientHelloStatus::kNeedMoreData), "need_more_data");
  EXPECT_STREQ(clientHelloStatusName(ClientHelloStatus::kNotTls), "not_tls");
  EXPECT_STREQ(clientHelloStatusName(ClientHelloStatus::kNotClientHello), "not_client_hello");
  EXPECT_STREQ(clientHelloStatusName(ClientHelloStatus::kMalformed), "malformed");
  EXPECT_STREQ(clientHelloStatusName(ClientHelloStatus::kTooLarge), "too_large");
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(ClientHelloStatus::kCount); ++i) {
    names.insert(clientHelloStatusName(static_cast<ClientHelloStatus>(i)));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(ClientHelloStatus::kCount));
}

}  // namespace
}  // namespace vgate::dataplane::tls
