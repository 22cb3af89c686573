// Community ID v1, as the spec's reference implementation computes it.
#include "control/flowlog/community_id.h"

#include <netinet/in.h>

#include <cstring>
#include <iterator>
#include <utility>

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

inline uint32_t rotl(uint32_t value, int bits) { return (value << bits) | (value >> (32 - bits)); }

void sha1Block(uint32_t state[5], const uint8_t* block) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) {
    w[i] = uint32_t{block[4 * i]} << 24 | uint32_t{block[4 * i + 1]} << 16 | uint32_t{block[4 * i + 2]} << 8 |
           block[4 * i + 3];
  }
  for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
  // One loop per round function, so that none branches on the round.
  auto step = [&](uint32_t f, uint32_t k, uint32_t word) {
    uint32_t t = rotl(a, 5) + f + e + k + word;
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = t;
  };
  for (int i = 0; i < 20; ++i) step((b & c) | (~b & d), 0x5a827999, w[i]);
  for (int i = 20; i < 40; ++i) step(b ^ c ^ d, 0x6ed9eba1, w[i]);
  for (int i = 40; i < 60; ++i) step((b & c) | (b & d) | (c & d), 0x8f1bbcdc, w[i]);
  for (int i = 60; i < 80; ++i) step(b ^ c ^ d, 0xca62c1d6, w[i]);
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
}

}  // namespace

void sha1(const uint8_t* data, size_t length, uint8_t digest[20]) {
  uint32_t state[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  size_t whole = length / 64 * 64;
  for (size_t at = 0; at < whole; at += 64) sha1Block(state, data + at);
  uint8_t tail[128] = {};
  size_t rest = length - whole;
  if (rest > 0) std::memcpy(tail, data + whole, rest);
  tail[rest] = 0x80;
  size_t tailLength = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = uint64_t{length} * 8;
  for (int i = 0; i < 8; ++i) tail[tailLength - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  for (size_t at = 0; at < tailLength; at += 64) sha1Block(state, tail + at);
  for (int i = 0; i < 5; ++i) {
    digest[4 * i] = static_cast<uint8_t>(state[i] >> 24);
    digest[4 * i + 1] = static_cast<uint8_t>(state[i] >> 16);
    digest[4 * i + 2] = static_cast<uint8_t>(state[i] >> 8);
    digest[4 * i + 3] = static_cast<uint8_t>(state[i]);
  }
}

size_t communityIdV1(const CommunityIdInput& input, char* out, uint16_t seed) {
  size_t addrLength = input.ipVersion == 4 ? 4 : input.ipVersion == 6 ? 16 : 0;
  if (addrLength == 0 || input.srcAddr == nullptr || input.dstAddr == nullptr) return 0;
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
  uint8_t digest[21] = {};  // one byte of padding for the last base64 group
  sha1(buffer, length, digest);
  static constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out[0] = '1';
  out[1] = ':';
  char* text = out + 2;
  for (int i = 0; i < 21; i += 3) {
    uint32_t group = uint32_t{digest[i]} << 16 | uint32_t{digest[i + 1]} << 8 | digest[i + 2];
    *text++ = kBase64[(group >> 18) & 63];
    *text++ = kBase64[(group >> 12) & 63];
    *text++ = kBase64[(group >> 6) & 63];
    *text++ = kBase64[group & 63];
  }
  out[kCommunityIdLength - 1] = '=';  // 20 bytes: the last group holds two, so one '='
  return kCommunityIdLength;
}

std::string communityIdV1(const CommunityIdInput& input, uint16_t seed) {
  char text[kCommunityIdLength];
  size_t length = communityIdV1(input, text, seed);
  return std::string(text, length);
}

}  // namespace vgate::control
