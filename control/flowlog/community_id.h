// Community ID v1 (corelight/community-id-spec): the flow hash that Zeek, Suricata and Arkime share, so that
// vgate's records join theirs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vgate::control {

struct CommunityIdInput {
  uint8_t ipVersion = 4;
  uint8_t protocol = 0;
  const uint8_t* srcAddr = nullptr;  // 4 or 16 bytes, network order
  const uint8_t* dstAddr = nullptr;
  uint16_t srcPort = 0;  // ICMP/ICMPv6: the type
  uint16_t dstPort = 0;  // ICMP/ICMPv6: the code
};

// "1:" + base64(SHA-1(...)): 30 characters.
inline constexpr size_t kCommunityIdLength = 30;

// Writes the id into `out` (kCommunityIdLength bytes, no NUL) and returns its length: 0 for an unknown
// address family.
size_t communityIdV1(const CommunityIdInput& input, char* out, uint16_t seed = 0);
// The same as a string; empty for an unknown address family.
std::string communityIdV1(const CommunityIdInput& input, uint16_t seed = 0);

// SHA-1 of `length` bytes into `digest`: the flow log hashes one short block per record, where OpenSSL's
// EVP interface costs more in set-up than the hash itself (DESIGN.md, "Flow log").
void sha1(const uint8_t* data, size_t length, uint8_t digest[20]);

}  // namespace vgate::control
