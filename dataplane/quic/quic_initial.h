// QUIC v1 (RFC 9000/9001) and v2 (RFC 9369) client Initial packets: header protection removed, payload
// decrypted with the keys derived from the Destination Connection ID, CRYPTO frames located. OpenSSL does the
// crypto.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgate::dataplane::quic {

inline constexpr uint32_t kVersion1 = 0x00000001;
inline constexpr uint32_t kVersion2 = 0x6b3343cf;
inline constexpr size_t kMaxConnectionIdLength = 20;
inline constexpr size_t kMaxCryptoFrames = 32;

enum class QuicStatus : uint8_t {
  kOk,
  kNotQuic,             // short header, fixed bit clear, or too short to be a long header
  kNotInitial,          // a long header packet of another type (0-RTT, Handshake, Retry)
  kUnsupportedVersion,  // not v1 or v2 (version negotiation, drafts, GREASE versions)
  kTruncated,
  kMalformed,       // lengths that lie, bad varints, bad frames
  kDecryptFailed,   // AEAD tag did not verify: not a client Initial for this DCID, or corrupted
  kBufferTooSmall,  // the plaintext buffer cannot hold the decrypted payload
  kCount
};

const char* quicStatusName(QuicStatus status);

struct CryptoFrame {
  uint64_t offset = 0;  // offset in the CRYPTO stream
  uint32_t length = 0;
  uint32_t dataOffset = 0;  // where its bytes start in the plaintext buffer
};

struct InitialPacket {
  uint32_t version = 0;
  uint8_t dcid[kMaxConnectionIdLength] = {};
  uint8_t dcidLength = 0;
  uint8_t scid[kMaxConnectionIdLength] = {};
  uint8_t scidLength = 0;
  uint64_t packetNumber = 0;
  uint32_t packetLength = 0;  // bytes of the datagram this packet took (coalesced packets may follow)
  uint32_t plaintextLength = 0;
  uint8_t cryptoFrameCount = 0;
  bool cryptoFramesTruncated = false;  // more CRYPTO frames than kMaxCryptoFrames
  CryptoFrame crypto[kMaxCryptoFrames];
};

// The client's Initial secrets for one (version, DCID); exposed so that tests can check each step against the
// RFCs.
struct InitialKeys {
  uint8_t initialSecret[32] = {};
  uint8_t clientSecret[32] = {};
  uint8_t key[16] = {};  // AEAD_AES_128_GCM
  uint8_t iv[12] = {};
  uint8_t hp[16] = {};  // AES-128-ECB header protection
};

// Walks the frames of a decrypted Initial payload, filling the CRYPTO frame fields of `out`
// (cryptoFrameCount, crypto, cryptoFramesTruncated). Only the frames RFC 9000 allows in an Initial are
// accepted. Exposed for the fuzzer.
QuicStatus parseInitialFrames(const uint8_t* plaintext, size_t length, InitialPacket& out);

// One per worker: holds its OpenSSL contexts, so that decrypting allocates nothing per packet.
class InitialDecryptor {
 public:
  InitialDecryptor();
  ~InitialDecryptor();
  InitialDecryptor(const InitialDecryptor&) = delete;
  InitialDecryptor& operator=(const InitialDecryptor&) = delete;

  // Decrypts the client Initial at the front of `datagram` (a UDP payload) into `plaintext`, whose capacity
  // must be at least `length`. `datagram` is not modified. CRYPTO frames are reported as offsets into
  // `plaintext`. packetLength is also filled in when the packet is skippable but not ours (kNotInitial for
  // 0-RTT and Handshake packets, kDecryptFailed), so that a caller can step over it to the next coalesced
  // packet.
  QuicStatus decryptClientInitial(const uint8_t* datagram, size_t length, uint8_t* plaintext, size_t capacity,
                                  InitialPacket& out);

  // Derives the client Initial secrets (RFC 9001 section 5.2, RFC 9369 section 3.3). Returns false for an
  // unsupported version, a DCID longer than kMaxConnectionIdLength, or an OpenSSL failure.
  bool deriveClientKeys(uint32_t version, const uint8_t* dcid, size_t dcidLength, InitialKeys& keys);

 private:
  struct Contexts;
  Contexts* contexts_;
};

}  // namespace vgate::dataplane::quic
