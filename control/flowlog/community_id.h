// Community ID v1 (corelight/community-id-spec): the flow hash that Zeek, Suricata and Arkime share, so that
// vgate's records join theirs.
#pragma once

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

// "1:" + base64(SHA-1(...)). Empty for a protocol the spec gives no ports for and an unknown address family.
std::string communityIdV1(const CommunityIdInput& input, uint16_t seed = 0);

}  // namespace vgate::control
