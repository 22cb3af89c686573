// libFuzzer target for the QUIC client Initial decryptor. A mutated packet almost never passes the AEAD tag,
// so each input is used three ways: as a datagram (header parse, header protection, coalesced walk), as a
// decrypted payload (frame parser), and as frames that are protected into a valid Initial and decrypted back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dataplane/quic/quic_initial.h"
#include "tests/dataplane/quic/initial_protector.h"

namespace {

using vgate::dataplane::quic::InitialDecryptor;
using vgate::dataplane::quic::InitialPacket;
using vgate::dataplane::quic::parseInitialFrames;
using vgate::dataplane::quic::QuicStatus;

void checkFrames(const InitialPacket& packet, size_t plaintextLength) {
  if (packet.cryptoFrameCount > vgate::dataplane::quic::kMaxCryptoFrames) abort();
  for (size_t i = 0; i < packet.cryptoFrameCount; ++i) {
    const auto& frame = packet.crypto[i];
    if (size_t{frame.dataOffset} + frame.length > plaintextLength) abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static InitialDecryptor decryptor;
  std::vector<uint8_t> plaintext(size + 1);

  // As a datagram, walking coalesced packets the way a caller would.
  size_t offset = 0;
  while (offset < size) {
    InitialPacket packet;
    const QuicStatus status = decryptor.decryptClientInitial(data + offset, size - offset, plaintext.data(),
                                                             plaintext.size(), packet);
    if (packet.packetLength > size - offset) abort();
    if (status == QuicStatus::kOk) {
      if (packet.plaintextLength > packet.packetLength) abort();
      checkFrames(packet, packet.plaintextLength);
    }
    if (packet.packetLength == 0) break;
    offset += packet.packetLength;
  }

  // As a decrypted payload.
  InitialPacket frames;
  const QuicStatus frameStatus = parseInitialFrames(size == 0 ? nullptr : data, size, frames);
  checkFrames(frames, size);

  // As the frames of a real Initial: the decryptor must get back exactly what the frame parser sees. The
  // first byte picks the version and packet number length, so the keys and header layouts vary too.
  if (size > 0 && size < 4096) {
    vgate::dataplane::quic::testing::InitialSpec spec;
    spec.version = (data[0] & 1) ? vgate::dataplane::quic::kVersion2 : vgate::dataplane::quic::kVersion1;
    spec.packetNumberLength = ((data[0] >> 1) & 3) + 1;
    spec.packetNumber = data[0] >> 3;
    spec.dcid.assign(data, data + (size < 20 ? size : 20));
    const std::vector<uint8_t> payload(data, data + size);
    const std::vector<uint8_t> packet =
        vgate::dataplane::quic::testing::protectClientInitial(decryptor, spec, payload);
    if (packet.empty()) abort();
    std::vector<uint8_t> roundTrip(packet.size());
    InitialPacket decrypted;
    const QuicStatus status = decryptor.decryptClientInitial(packet.data(), packet.size(), roundTrip.data(),
                                                             roundTrip.size(), decrypted);
    // Short payloads are padded by the protector, which can turn a malformed one into a valid one; compare
    // only when nothing was added.
    if (size + spec.packetNumberLength >= 4) {
      if (status != frameStatus) abort();
      if (decrypted.packetLength != packet.size() || decrypted.packetNumber != spec.packetNumber) abort();
      if (status == QuicStatus::kOk && decrypted.cryptoFrameCount != frames.cryptoFrameCount) abort();
    } else if (status != QuicStatus::kOk && status != QuicStatus::kMalformed) {
      abort();
    }
  }
  return 0;
}
