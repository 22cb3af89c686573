// Client Initial decryption for QUIC v1 and v2: long header parse, Initial key derivation (HKDF over EVP_MAC
// HMAC), header protection removal (AES-128-ECB), payload decryption (AES-128-GCM) and the Initial frame
// walk.
#include "dataplane/quic/quic_initial.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <climits>
#include <cstring>
#include <new>

namespace vgate::dataplane::quic {

namespace {

constexpr size_t kSecretLength = 32;  // SHA-256
constexpr size_t kKeyLength = 16;
constexpr size_t kIvLength = 12;
constexpr size_t kHpLength = 16;
constexpr size_t kTagLength = 16;
constexpr size_t kSampleLength = 16;
// The header protection sample starts 4 bytes after the start of the packet number, whatever its real length.
constexpr size_t kSampleOffset = 4;
constexpr uint64_t kMaxVarint = (uint64_t{1} << 62) - 1;

constexpr uint8_t kSaltV1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr uint8_t kSaltV2[20] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};

// Long header packet types (the two type bits of the first byte). RFC 9369 section 3.2 rotated them in v2 so
// that middleboxes keyed on v1's values do not ossify on them.
enum class LongType : uint8_t { kInitial, kZeroRtt, kHandshake, kRetry };

LongType longType(uint32_t version, uint8_t firstByte) {
  const uint8_t bits = (firstByte >> 4) & 0x03;
  if (version == kVersion2) {
    constexpr LongType kV2[4] = {LongType::kRetry, LongType::kInitial, LongType::kZeroRtt,
                                 LongType::kHandshake};
    return kV2[bits];
  }
  constexpr LongType kV1[4] = {LongType::kInitial, LongType::kZeroRtt, LongType::kHandshake,
                               LongType::kRetry};
  return kV1[bits];
}

// A bounds-checked reader over a byte range; every accessor fails instead of reading past the end.
class Reader {
 public:
  Reader(const uint8_t* data, size_t length) : data_(data), length_(length) {}

  size_t position() const { return position_; }
  size_t remaining() const { return length_ - position_; }

  bool readByte(uint8_t& value) {
    if (remaining() < 1) return false;
    value = data_[position_++];
    return true;
  }

  bool readVarint(uint64_t& value) {
    if (remaining() < 1) return false;
    const size_t size = size_t{1} << (data_[position_] >> 6);
    if (remaining() < size) return false;
    value = data_[position_] & 0x3f;
    for (size_t i = 1; i < size; ++i) value = (value << 8) | data_[position_ + i];
    position_ += size;
    return true;
  }

  bool skip(uint64_t count) {
    if (count > remaining()) return false;
    position_ += static_cast<size_t>(count);
    return true;
  }

 private:
  const uint8_t* data_;
  size_t length_;
  size_t position_ = 0;
};

uint32_t readBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// ACK and ACK_ECN (RFC 9000 section 19.3): the ranges are walked, not just skipped, so that a range reaching
// below packet number 0 is caught as the FRAME_ENCODING_ERROR it is.
bool skipAckFrame(Reader& reader, bool withEcn) {
  uint64_t largest = 0;
  uint64_t delay = 0;
  uint64_t rangeCount = 0;
  uint64_t firstRange = 0;
  if (!reader.readVarint(largest) || !reader.readVarint(delay) || !reader.readVarint(rangeCount) ||
      !reader.readVarint(firstRange)) {
    return false;
  }
  if (firstRange > largest) return false;
  uint64_t smallest = largest - firstRange;
  // Each range takes at least two bytes, so this loop is bounded by the plaintext length, not by rangeCount.
  for (uint64_t i = 0; i < rangeCount; ++i) {
    uint64_t gap = 0;
    uint64_t rangeLength = 0;
    if (!reader.readVarint(gap) || !reader.readVarint(rangeLength)) return false;
    if (smallest < gap + 2) return false;
    const uint64_t rangeLargest = smallest - gap - 2;
    if (rangeLength > rangeLargest) return false;
    smallest = rangeLargest - rangeLength;
  }
  if (withEcn) {
    uint64_t count = 0;
    for (int i = 0; i < 3; ++i) {
      if (!reader.readVarint(count)) return false;
    }
  }
  return true;
}

}  // namespace

const char* quicStatusName(QuicStatus status) {
  switch (status) {
    case QuicStatus::kOk:
      return "ok";
    case QuicStatus::kNotQuic:
      return "not_quic";
    case QuicStatus::kNotInitial:
      return "not_initial";
    case QuicStatus::kUnsupportedVersion:
      return "unsupported_version";
    case QuicStatus::kTruncated:
      return "truncated";
    case QuicStatus::kMalformed:
      return "malformed";
    case QuicStatus::kDecryptFailed:
      return "decrypt_failed";
    case QuicStatus::kBufferTooSmall:
      return "buffer_too_small";
    case QuicStatus::kCount:
      break;
  }
  return "unknown";
}

QuicStatus parseInitialFrames(const uint8_t* plaintext, size_t length, InitialPacket& out) {
  out.cryptoFrameCount = 0;
  out.cryptoFramesTruncated = false;
  // RFC 9000 section 12.4: a packet carrying no frame at all is a PROTOCOL_VIOLATION.
  if (plaintext == nullptr || length == 0) return QuicStatus::kMalformed;
  Reader reader(plaintext, length);
  while (reader.remaining() > 0) {
    uint8_t type = 0;
    reader.readByte(type);
    switch (type) {
      case 0x00:  // PADDING
      case 0x01:  // PING
        break;
      case 0x02:  // ACK
      case 0x03:  // ACK with ECN counts
        if (!skipAckFrame(reader, type == 0x03)) return QuicStatus::kMalformed;
        break;
      case 0x06: {  // CRYPTO
        uint64_t offset = 0;
        uint64_t dataLength = 0;
        if (!reader.readVarint(offset) || !reader.readVarint(dataLength)) return QuicStatus::kMalformed;
        // RFC 9000 section 19.6: the end of the data may not pass 2^62-1.
        if (dataLength > kMaxVarint - offset) return QuicStatus::kMalformed;
        const size_t dataOffset = reader.position();
        if (!reader.skip(dataLength)) return QuicStatus::kMalformed;
        if (out.cryptoFrameCount < kMaxCryptoFrames) {
          CryptoFrame& frame = out.crypto[out.cryptoFrameCount++];
          frame.offset = offset;
          // Both fit: they are bounded by `length`, which decryptClientInitial keeps below INT_MAX.
          frame.length = static_cast<uint32_t>(dataLength);
          frame.dataOffset = static_cast<uint32_t>(dataOffset);
        } else {
          out.cryptoFramesTruncated = true;
        }
        break;
      }
      case 0x1c: {  // CONNECTION_CLOSE (transport); 0x1d is for 0-RTT and 1-RTT only
        uint64_t errorCode = 0;
        uint64_t frameType = 0;
        uint64_t reasonLength = 0;
        if (!reader.readVarint(errorCode) || !reader.readVarint(frameType) ||
            !reader.readVarint(reasonLength) || !reader.skip(reasonLength)) {
          return QuicStatus::kMalformed;
        }
        break;
      }
      default:
        // Frames not allowed in an Initial, and non-minimal frame type encodings, are protocol violations.
        return QuicStatus::kMalformed;
    }
  }
  return QuicStatus::kOk;
}

// Created once per decryptor. The keys of the last DCID are cached, so the retransmitted or split ClientHello
// of one connection (same DCID) is decrypted without deriving again.
struct InitialDecryptor::Contexts {
  EVP_MAC* hmac = nullptr;
  EVP_MAC_CTX* mac = nullptr;
  EVP_CIPHER* ecbCipher = nullptr;
  EVP_CIPHER* gcmCipher = nullptr;
  EVP_CIPHER_CTX* ecb = nullptr;
  EVP_CIPHER_CTX* gcm = nullptr;
  bool ready = false;

  bool cacheValid = false;
  uint32_t cachedVersion = 0;
  uint8_t cachedDcid[kMaxConnectionIdLength] = {};
  size_t cachedDcidLength = 0;
  InitialKeys keys;

  Contexts() {
    hmac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
    ecbCipher = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
    gcmCipher = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    if (hmac == nullptr || ecbCipher == nullptr || gcmCipher == nullptr) return;
    mac = EVP_MAC_CTX_new(hmac);
    ecb = EVP_CIPHER_CTX_new();
    gcm = EVP_CIPHER_CTX_new();
    if (mac == nullptr || ecb == nullptr || gcm == nullptr) return;
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return;
    // The ciphers are bound here; per packet only keys and IVs change, which reuses the provider contexts.
    if (EVP_EncryptInit_ex(ecb, ecbCipher, nullptr, nullptr, nullptr) != 1) return;
    if (EVP_CIPHER_CTX_set_padding(ecb, 0) != 1) return;
    if (EVP_DecryptInit_ex(gcm, gcmCipher, nullptr, nullptr, nullptr) != 1) return;
    if (EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kIvLength), nullptr) != 1) return;
    ready = true;
  }

  ~Contexts() {
    EVP_CIPHER_CTX_free(gcm);
    EVP_CIPHER_CTX_free(ecb);
    EVP_MAC_CTX_free(mac);
    EVP_CIPHER_free(gcmCipher);
    EVP_CIPHER_free(ecbCipher);
    EVP_MAC_free(hmac);
  }

  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;

  // HMAC-SHA256(key, part1 || part2). Deriving keys allocates inside OpenSSL 3.0: re-keying HMAC copies and
  // re-creates provider digest contexts (HMAC_Init_ex -> EVP_MD_CTX_copy_ex / EVP_DigestInit_ex), about 25
  // allocations per derivation with 3.0.19, and a hand-rolled HMAC over EVP_Digest* would still allocate per
  // digest init. So derivation happens once per new (version, DCID), cached in useKeysFor(); decrypting
  // further packets of a known DCID allocates nothing (checked by quic_initial_test).
  bool hmacSha256(const uint8_t* key, size_t keyLength, const uint8_t* part1, size_t length1,
                  const uint8_t* part2, size_t length2, uint8_t out[kSecretLength]) {
    size_t outLength = 0;
    if (EVP_MAC_init(mac, key, keyLength, nullptr) != 1) return false;
    if (length1 > 0 && EVP_MAC_update(mac, part1, length1) != 1) return false;
    if (length2 > 0 && EVP_MAC_update(mac, part2, length2) != 1) return false;
    return EVP_MAC_final(mac, out, &outLength, kSecretLength) == 1 && outLength == kSecretLength;
  }

  // HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context. Every output here is at most one SHA-256
  // block, so HKDF-Expand is the single block T(1) = HMAC(secret, info || 0x01).
  bool expandLabel(const uint8_t secret[kSecretLength], const char* label, size_t outLength, uint8_t* out) {
    constexpr char kPrefix[] = "tls13 ";
    constexpr size_t kPrefixLength = sizeof(kPrefix) - 1;
    const size_t labelLength = std::strlen(label);
    uint8_t info[2 + 1 + 255 + 1 + 1];
    size_t n = 0;
    info[n++] = static_cast<uint8_t>(outLength >> 8);
    info[n++] = static_cast<uint8_t>(outLength);
    info[n++] = static_cast<uint8_t>(kPrefixLength + labelLength);
    std::memcpy(info + n, kPrefix, kPrefixLength);
    n += kPrefixLength;
    std::memcpy(info + n, label, labelLength);
    n += labelLength;
    info[n++] = 0;     // empty context
    info[n++] = 0x01;  // HKDF-Expand block counter
    uint8_t block[kSecretLength];
    if (!hmacSha256(secret, kSecretLength, info, n, nullptr, 0, block)) return false;
    std::memcpy(out, block, outLength);
    return true;
  }

  bool derive(uint32_t version, const uint8_t* dcid, size_t dcidLength, InitialKeys& out) {
    const bool v2 = version == kVersion2;
    const uint8_t* salt = v2 ? kSaltV2 : kSaltV1;
    if (!hmacSha256(salt, sizeof(kSaltV1), dcid, dcidLength, nullptr, 0, out.initialSecret)) return false;
    if (!expandLabel(out.initialSecret, "client in", kSecretLength, out.clientSecret)) return false;
    return expandLabel(out.clientSecret, v2 ? "quicv2 key" : "quic key", kKeyLength, out.key) &&
           expandLabel(out.clientSecret, v2 ? "quicv2 iv" : "quic iv", kIvLength, out.iv) &&
           expandLabel(out.clientSecret, v2 ? "quicv2 hp" : "quic hp", kHpLength, out.hp);
  }

  // Makes `keys` those of (version, dcid) and loads them into the ECB and GCM contexts.
  bool useKeysFor(uint32_t version, const uint8_t* dcid, size_t dcidLength) {
    if (cacheValid && cachedVersion == version && cachedDcidLength == dcidLength &&
        std::memcmp(cachedDcid, dcid, dcidLength) == 0) {
      return true;
    }
    cacheValid = false;
    if (!derive(version, dcid, dcidLength, keys)) return false;
    if (EVP_EncryptInit_ex(ecb, nullptr, nullptr, keys.hp, nullptr) != 1) return false;
    if (EVP_DecryptInit_ex(gcm, nullptr, nullptr, keys.key, nullptr) != 1) return false;
    cachedVersion = version;
    std::memcpy(cachedDcid, dcid, dcidLength);
    cachedDcidLength = dcidLength;
    cacheValid = true;
    return true;
  }
};

InitialDecryptor::InitialDecryptor() : contexts_(new (std::nothrow) Contexts()) {}

InitialDecryptor::~InitialDecryptor() { delete contexts_; }

bool InitialDecryptor::deriveClientKeys(uint32_t version, const uint8_t* dcid, size_t dcidLength,
                                        InitialKeys& keys) {
  if (contexts_ == nullptr || !contexts_->ready) return false;
  if (version != kVersion1 && version != kVersion2) return false;
  if (dcidLength > kMaxConnectionIdLength || (dcid == nullptr && dcidLength > 0)) return false;
  return contexts_->derive(version, dcid, dcidLength, keys);
}

QuicStatus InitialDecryptor::decryptClientInitial(const uint8_t* datagram, size_t length, uint8_t* plaintext,
                                                  size_t capacity, InitialPacket& out) {
  out.version = 0;
  out.dcidLength = 0;
  out.scidLength = 0;
  out.packetNumber = 0;
  out.packetLength = 0;
  out.plaintextLength = 0;
  out.cryptoFrameCount = 0;
  out.cryptoFramesTruncated = false;

  // The invariant part of a long header (RFC 8999): first byte and version.
  if (datagram == nullptr || length < 5) return QuicStatus::kNotQuic;
  const uint8_t firstByte = datagram[0];
  if ((firstByte & 0x80) == 0) return QuicStatus::kNotQuic;
  const uint32_t version = readBe32(datagram + 1);
  // Version negotiation (version 0) may have the fixed bit clear, so the version is looked at first.
  if (version != kVersion1 && version != kVersion2) return QuicStatus::kUnsupportedVersion;
  if ((firstByte & 0x40) == 0) return QuicStatus::kNotQuic;
  out.version = version;

  Reader reader(datagram, length);
  reader.skip(5);
  uint8_t dcidLength = 0;
  if (!reader.readByte(dcidLength)) return QuicStatus::kTruncated;
  if (dcidLength > kMaxConnectionIdLength) return QuicStatus::kMalformed;
  const uint8_t* dcid = datagram + reader.position();
  if (!reader.skip(dcidLength)) return QuicStatus::kTruncated;
  uint8_t scidLength = 0;
  if (!reader.readByte(scidLength)) return QuicStatus::kTruncated;
  if (scidLength > kMaxConnectionIdLength) return QuicStatus::kMalformed;
  const uint8_t* scid = datagram + reader.position();
  if (!reader.skip(scidLength)) return QuicStatus::kTruncated;
  std::memcpy(out.dcid, dcid, dcidLength);
  out.dcidLength = dcidLength;
  std::memcpy(out.scid, scid, scidLength);
  out.scidLength = scidLength;

  const LongType type = longType(version, firstByte);
  if (type == LongType::kRetry) return QuicStatus::kNotInitial;
  if (type == LongType::kInitial) {
    uint64_t tokenLength = 0;
    if (!reader.readVarint(tokenLength)) return QuicStatus::kTruncated;
    if (!reader.skip(tokenLength)) return QuicStatus::kTruncated;
  }
  uint64_t payloadLength = 0;
  if (!reader.readVarint(payloadLength)) return QuicStatus::kTruncated;
  const size_t pnOffset = reader.position();
  if (payloadLength > reader.remaining()) return QuicStatus::kTruncated;
  // Keeps every length below handed to OpenSSL (int) and reported in uint32_t fields representable.
  if (pnOffset + payloadLength > INT_MAX) return QuicStatus::kMalformed;
  const size_t packetLength = pnOffset + static_cast<size_t>(payloadLength);
  if (type != LongType::kInitial) {
    out.packetLength = static_cast<uint32_t>(packetLength);
    return QuicStatus::kNotInitial;
  }
  // The sample must exist for any packet number length (RFC 9001 section 5.4.2).
  if (payloadLength < kSampleOffset + kSampleLength) return QuicStatus::kMalformed;
  out.packetLength = static_cast<uint32_t>(packetLength);

  Contexts* c = contexts_;
  if (c == nullptr || !c->ready) return QuicStatus::kDecryptFailed;
  if (!c->useKeysFor(version, dcid, dcidLength)) return QuicStatus::kDecryptFailed;

  // Header protection: the mask comes from AES-ECB over the sample; the datagram stays untouched, the
  // unmasked bytes (first byte and packet number) live on the stack.
  uint8_t mask[kSampleLength * 2];
  int maskLength = 0;
  if (EVP_EncryptUpdate(c->ecb, mask, &maskLength, datagram + pnOffset + kSampleOffset,
                        static_cast<int>(kSampleLength)) != 1 ||
      maskLength != static_cast<int>(kSampleLength)) {
    return QuicStatus::kDecryptFailed;
  }
  const uint8_t unmaskedFirst = firstByte ^ (mask[0] & 0x0f);
  const size_t pnLength = (unmaskedFirst & 0x03) + 1;
  uint8_t packetNumberBytes[4];
  uint64_t packetNumber = 0;
  for (size_t i = 0; i < pnLength; ++i) {
    packetNumberBytes[i] = datagram[pnOffset + i] ^ mask[1 + i];
    packetNumber = (packetNumber << 8) | packetNumberBytes[i];
  }
  // Without connection state the truncated packet number is the full one: a client's first Initials are
  // numbered from 0 (RFC 9000 section 17.1 with no packet yet acknowledged).

  const size_t ciphertextOffset = pnOffset + pnLength;
  const size_t ciphertextLength = static_cast<size_t>(payloadLength) - pnLength - kTagLength;
  if (ciphertextLength > capacity || plaintext == nullptr) return QuicStatus::kBufferTooSmall;

  uint8_t nonce[kIvLength];
  std::memcpy(nonce, c->keys.iv, kIvLength);
  for (size_t i = 0; i < 8; ++i) nonce[kIvLength - 1 - i] ^= static_cast<uint8_t>(packetNumber >> (8 * i));
  uint8_t tag[kTagLength];
  std::memcpy(tag, datagram + packetLength - kTagLength, kTagLength);

  // The AAD is the unprotected header, fed in three pieces: only its first byte and packet number differ from
  // the datagram, which spares copying a header whose token can be arbitrarily long.
  int outLength = 0;
  int finalLength = 0;
  const bool decrypted =
      EVP_DecryptInit_ex(c->gcm, nullptr, nullptr, nullptr, nonce) == 1 &&
      EVP_DecryptUpdate(c->gcm, nullptr, &outLength, &unmaskedFirst, 1) == 1 &&
      EVP_DecryptUpdate(c->gcm, nullptr, &outLength, datagram + 1, static_cast<int>(pnOffset - 1)) == 1 &&
      EVP_DecryptUpdate(c->gcm, nullptr, &outLength, packetNumberBytes, static_cast<int>(pnLength)) == 1 &&
      EVP_DecryptUpdate(c->gcm, plaintext, &outLength, datagram + ciphertextOffset,
                        static_cast<int>(ciphertextLength)) == 1 &&
      EVP_CIPHER_CTX_ctrl(c->gcm, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagLength), tag) == 1 &&
      EVP_DecryptFinal_ex(c->gcm, plaintext + outLength, &finalLength) == 1;
  if (!decrypted) {
    // Unauthenticated plaintext must not be mistaken for data by a caller that ignores the status.
    std::memset(plaintext, 0, ciphertextLength);
    return QuicStatus::kDecryptFailed;
  }

  // RFC 9000 section 17.2: the reserved bits are checked only after decryption succeeded.
  if ((unmaskedFirst & 0x0c) != 0) return QuicStatus::kMalformed;
  out.packetNumber = packetNumber;
  out.plaintextLength = static_cast<uint32_t>(ciphertextLength);
  return parseInitialFrames(plaintext, ciphertextLength, out);
}

}  // namespace vgate::dataplane::quic
