// The server's first flight in clear (TLS 1.2 and earlier): ServerHello (chosen version, cipher, ALPN) and
// the leaf certificate's subject, issuer, SANs, serial, SHA-1 fingerprint and validity, parsed with OpenSSL's
// X.509 code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgate::dataplane::tls {

inline constexpr size_t kMaxDnLength = 511;
inline constexpr size_t kMaxSanEntries = 16;
inline constexpr size_t kMaxSanLength = 255;
// Handshake bytes (record payloads) read before giving up: a real flight with a long chain fits in 16 KiB.
inline constexpr size_t kMaxServerFlightBytes = 64 * 1024;

enum class ServerFlightStatus : uint8_t {
  kComplete,   // ServerHello read and, where the certificate travels in clear, the leaf certificate parsed
  kEncrypted,  // TLS 1.3 (or later): ServerHello read; the certificate is encrypted, nothing more to see
  kNeedMoreData,
  kNotTls,
  kMalformed,
  kBadCertificate,  // the Certificate message is well-formed but the leaf does not parse as X.509
  kTooLarge,
  kCount
};

const char* serverFlightStatusName(ServerFlightStatus status);

struct ServerCertificate {
  // Formats follow Suricata's EVE tls fields so that logs compare byte for byte:
  char subject[kMaxDnLength + 1] = {};  // "C=US, O=Example, CN=www.example.com" (OpenSSL oneline order, ", ")
  char issuer[kMaxDnLength + 1] = {};
  char serial[128] = {};      // upper-case hex bytes joined by ':', "00:A1:..."
  char fingerprint[60] = {};  // SHA-1 of the DER, lower-case hex bytes joined by ':'
  int64_t notBefore = 0;      // seconds since the epoch, UTC
  int64_t notAfter = 0;
  uint8_t sanCount = 0;  // DNS names and IP addresses, as text
  char sans[kMaxSanEntries][kMaxSanLength + 1] = {};
};

struct ServerFlight {
  uint16_t version = 0;  // the negotiated version (supported_versions extension, else legacy version)
  uint16_t cipherSuite = 0;
  char alpn[33] = {};  // the protocol the server chose, if any
  bool hasCertificate = false;
  ServerCertificate certificate;
};

// `stream` is the server's TCP payload from its first byte (TLS records). Reads the ServerHello and, for
// TLS <= 1.2, the Certificate message, across records. May allocate inside OpenSSL's X.509 decoder, once per
// flow.
ServerFlightStatus parseServerFlight(const uint8_t* stream, size_t length, ServerFlight& out);

}  // namespace vgate::dataplane::tls
