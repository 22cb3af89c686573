// Community ID v1, as the spec's reference implementation computes it.
#include "control/flowlog/community_id.h"

#include <netinet/in.h>
#include <openssl/evp.h>

#include <cstring>

namespace vgate::control {

namespace {

// ICMP message types that come in request/reply pairs map to their counterpart, which makes the flow two-way
// (ordered like a port pair); the others are one-way and keep their direction (spec: get_port_equivalents).
bool icmpCounterpart(uint8_t protocol, uint16_t type, uint16_t& counterpart) {
  struct Pair {
    uint8_t a, b;
  };
  static constexpr Pair kIcmp[] = {{8, 0}, {13, 14}, {15, 16}, {10, 9}, {17, 18}};
  static constexpr Pair kIcmp6[] = {{128, 129}, {130, 131}, {133, 134}, {135, 136}, {139, 140}, {144, 145}};
  const Pair* pairs = protocol == IPPROTO_ICMP ? kIcmp : kIcmp6;
  size_t count = protocol == IPPROTO_ICMP ? std::size(kIcmp) : std::size(kIcmp6);
  for (size_t i = 0; i < count; ++i) {
    if (type == pairs[i].a) {
      counterpart = pairs[i].b;
      return true;
    }
    if (type == pairs[i].b) {
      counterpart = pairs[i].a;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string communityIdV1(const CommunityIdInput& input, uint16_t seed) {
  size_t addrLength = input.ipVersion == 4 ? 4 : input.ipVersion == 6 ? 16 : 0;
  if (addrLength == 0 || input.srcAddr == nullptr || input.dstAddr == nullptr) return {};
  bool hasPorts = input.protocol == IPPROTO_TCP || input.protocol == IPPROTO_UDP ||
                  input.protocol == IPPROTO_SCTP || input.protocol == IPPROTO_ICMP ||
                  input.protocol == IPPROTO_ICMPV6;
  const uint8_t* src = input.srcAddr;
  const uint8_t* dst = input.dstAddr;
  uint16_t srcPort = input.srcPort;
  uint16_t dstPort = input.dstPort;
  bool oneWay = false;
  if (input.protocol == IPPROTO_ICMP || input.protocol == IPPROTO_ICMPV6) {
    uint16_t counterpart = 0;
    if (icmpCounterpart(input.protocol, srcPort, counterpart)) {
      dstPort = counterpart;
    } else {
      oneWay = true;
    }
  }
  int order = std::memcmp(src, dst, addrLength);
  if (!oneWay && (order > 0 || (order == 0 && srcPort > dstPort))) {
    std::swap(src, dst);
    std::swap(srcPort, dstPort);
  }
  uint8_t buffer[2 + 16 + 16 + 2 + 4];
  size_t length = 0;
  buffer[length++] = static_cast<uint8_t>(seed >> 8);
  buffer[length++] = static_cast<uint8_t>(seed);
  std::memcpy(buffer + length, src, addrLength);
  length += addrLength;
  std::memcpy(buffer + length, dst, addrLength);
  length += addrLength;
  buffer[length++] = input.protocol;
  buffer[length++] = 0;
  if (hasPorts) {
    buffer[length++] = static_cast<uint8_t>(srcPort >> 8);
    buffer[length++] = static_cast<uint8_t>(srcPort);
    buffer[length++] = static_cast<uint8_t>(dstPort >> 8);
    buffer[length++] = static_cast<uint8_t>(dstPort);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  if (EVP_Digest(buffer, length, digest, &digestLength, EVP_sha1(), nullptr) != 1) return {};
  unsigned char encoded[64];
  int encodedLength = EVP_EncodeBlock(encoded, digest, static_cast<int>(digestLength));
  return "1:" + std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(encodedLength));
}

}  // namespace vgate::control
