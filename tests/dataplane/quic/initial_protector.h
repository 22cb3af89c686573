// Test-only client Initial protector: the inverse of InitialDecryptor, so that tests and the fuzzer can build
// Initials with any frames. Shared by quic_initial_test.cc and tests/fuzz/quic_initial_fuzz.cc.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <vector>

#include "dataplane/quic/quic_initial.h"

namespace vgate::dataplane::quic::testing {

struct InitialSpec {
  uint32_t version = kVersion1;
  std::vector<uint8_t> dcid = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
  std::vector<uint8_t> scid;
  std::vector<uint8_t> token;
  uint64_t packetNumber = 0;
  size_t packetNumberLength = 4;  // 1..4
  uint8_t reservedBits = 0;       // 0..3, must be 0 in a valid packet
};

inline void appendVarint(std::vector<uint8_t>& out, uint64_t value) {
  if (value < 64) {
    out.push_back(static_cast<uint8_t>(value));
  } else if (value < 16384) {
    out.push_back(static_cast<uint8_t>(0x40 | (value >> 8)));
    out.push_back(static_cast<uint8_t>(value));
  } else if (value < (uint64_t{1} << 30)) {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(value >> (8 * i)) | (i == 3 ? 0x80 : 0));
  } else {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(value >> (8 * i)) | (i == 7 ? 0xc0 : 0));
  }
}

inline void appendCryptoFrame(std::vector<uint8_t>& out, uint64_t offset, const uint8_t* data,
                              size_t length) {
  out.push_back(0x06);
  appendVarint(out, offset);
  appendVarint(out, length);
  out.insert(out.end(), data, data + length);
}

// Returns the protected packet, or an empty vector if OpenSSL failed. Frames shorter than the header
// protection sample needs are padded with PADDING frames, as a real client must.
inline std::vector<uint8_t> protectClientInitial(InitialDecryptor& decryptor, const InitialSpec& spec,
                                                 std::vector<uint8_t> frames) {
  InitialKeys keys;
  if (!decryptor.deriveClientKeys(spec.version, spec.dcid.data(), spec.dcid.size(), keys)) return {};
  const size_t pnLength = spec.packetNumberLength;
  while (pnLength + frames.size() < 4) frames.push_back(0x00);

  std::vector<uint8_t> packet;
  const uint8_t typeBits = spec.version == kVersion2 ? 1 : 0;
  packet.push_back(
      static_cast<uint8_t>(0xc0 | (typeBits << 4) | ((spec.reservedBits & 3) << 2) | (pnLength - 1)));
  for (int i = 3; i >= 0; --i) packet.push_back(static_cast<uint8_t>(spec.version >> (8 * i)));
  packet.push_back(static_cast<uint8_t>(spec.dcid.size()));
  packet.insert(packet.end(), spec.dcid.begin(), spec.dcid.end());
  packet.push_back(static_cast<uint8_t>(spec.scid.size()));
  packet.insert(packet.end(), spec.scid.begin(), spec.scid.end());
  appendVarint(packet, spec.token.size());
  packet.insert(packet.end(), spec.token.begin(), spec.token.end());
  appendVarint(packet, pnLength + frames.size() + 16);
  const size_t pnOffset = packet.size();
  for (size_t i = 0; i < pnLength; ++i) {
    packet.push_back(static_cast<uint8_t>(spec.packetNumber >> (8 * (pnLength - 1 - i))));
  }
  const size_t headerLength = packet.size();

  uint8_t nonce[12];
  for (size_t i = 0; i < 12; ++i) nonce[i] = keys.iv[i];
  for (size_t i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(spec.packetNumber >> (8 * i));

  packet.resize(headerLength + frames.size() + 16);
  bool ok = false;
  EVP_CIPHER_CTX* gcm = EVP_CIPHER_CTX_new();
  int outLength = 0;
  if (gcm != nullptr && EVP_EncryptInit_ex(gcm, EVP_aes_128_gcm(), nullptr, keys.key, nonce) == 1 &&
      EVP_EncryptUpdate(gcm, nullptr, &outLength, packet.data(), static_cast<int>(headerLength)) == 1 &&
      EVP_EncryptUpdate(gcm, packet.data() + headerLength, &outLength, frames.data(),
                        static_cast<int>(frames.size())) == 1 &&
      EVP_EncryptFinal_ex(gcm, packet.data() + headerLength + outLength, &outLength) == 1 &&
      EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_GET_TAG, 16, packet.data() + headerLength + frames.size()) == 1) {
    ok = true;
  }
  EVP_CIPHER_CTX_free(gcm);
  if (!ok) return {};

  uint8_t mask[32];
  ok = false;
  EVP_CIPHER_CTX* ecb = EVP_CIPHER_CTX_new();
  if (ecb != nullptr && EVP_EncryptInit_ex(ecb, EVP_aes_128_ecb(), nullptr, keys.hp, nullptr) == 1 &&
      EVP_CIPHER_CTX_set_padding(ecb, 0) == 1 &&
      EVP_EncryptUpdate(ecb, mask, &outLength, packet.data() + pnOffset + 4, 16) == 1) {
    ok = true;
  }
  EVP_CIPHER_CTX_free(ecb);
  if (!ok) return {};
  packet[0] ^= mask[0] & 0x0f;
  for (size_t i = 0; i < pnLength; ++i) packet[pnOffset + i] ^= mask[1 + i];
  return packet;
}

}  // namespace vgate::dataplane::quic::testing
