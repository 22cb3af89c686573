// TLS ClientHello fields used for audit and policy: SNI, ALPN, versions, JA3 and JA4. Over TCP (TLS records)
// and QUIC (handshake bytes of the CRYPTO stream). Bounded, never reads past its input, no allocation per
// call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgate::dataplane::tls {

inline constexpr size_t kMaxSniLength = 255;
inline constexpr size_t kMaxAlpnEntries = 8;
inline constexpr size_t kMaxAlpnLength = 32;
// Longest ClientHello handshake message (4-byte header included) that parseRecords reassembles and either
// parser accepts; longer ones are kTooLarge. Real ones are under 2 KB (4 KB with post-quantum key shares).
inline constexpr size_t kMaxClientHelloLength = 32 * 1024;

enum class TlsTransport : uint8_t { kTcp, kQuic };

enum class ClientHelloStatus : uint8_t {
  kComplete,      // the whole ClientHello was read; every field is set
  kNeedMoreData,  // a valid prefix: feed more of the stream
  kNotTls,        // the first bytes are not a TLS handshake record
  kNotClientHello,
  kMalformed,  // a length field lies or a structure is broken
  kTooLarge,   // the ClientHello is longer than the caller's buffer
  kCount
};

const char* clientHelloStatusName(ClientHelloStatus status);

struct ClientHello {
  char sni[kMaxSniLength + 1] = {};  // host_name of server_name, as sent (ASCII, not lower-cased)
  uint16_t sniLength = 0;
  bool hasSni = false;
  bool echOuter = false;  // an encrypted_client_hello extension is present: sni is the outer (public) name
  uint16_t legacyVersion = 0;        // ClientHello.legacy_version, e.g. 0x0303
  uint16_t maxSupportedVersion = 0;  // highest non-GREASE supported_versions entry, else legacyVersion
  uint8_t alpnCount = 0;  // entries kept (GREASE is not filtered from ALPN: it is what the client sent)
  char alpn[kMaxAlpnEntries][kMaxAlpnLength + 1] = {};
  bool alpnTruncated = false;  // more entries, or a longer entry, than kept
  char ja3[33] = {};           // MD5 of the JA3 string, lower-case hex
  char ja4[37] = {};           // JA4 fingerprint, e.g. "t13d1516h2_8daaf6152771_e5627efa2ab1"
  uint32_t messageLength = 0;  // bytes of the ClientHello handshake message (header included)
};

// One per worker: it keeps its digest contexts, so that parsing allocates nothing.
class ClientHelloParser {
 public:
  ClientHelloParser();
  ~ClientHelloParser();
  ClientHelloParser(const ClientHelloParser&) = delete;
  ClientHelloParser& operator=(const ClientHelloParser&) = delete;

  // `stream` is the client's TCP payload from its first byte: TLS records, possibly several carrying one
  // ClientHello between them. `length` is the contiguous prefix available.
  ClientHelloStatus parseRecords(const uint8_t* stream, size_t length, ClientHello& out);

  // `message` is the handshake layer from its first byte (the QUIC CRYPTO stream at offset 0).
  ClientHelloStatus parseHandshake(const uint8_t* message, size_t length, TlsTransport transport,
                                   ClientHello& out);

  // For tests and debugging: while set, each kComplete parse also writes the JA3 string and JA4_r (the raw,
  // sorted JA4) into these NUL-terminated buffers, truncated to their capacity. Null pointers turn it off.
  void setRawOutput(char* ja3, size_t ja3Capacity, char* ja4r, size_t ja4rCapacity);

 private:
  struct Digests;
  Digests* digests_;
};

}  // namespace vgate::dataplane::tls
