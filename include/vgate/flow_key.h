// The normalized flow key: both directions of a flow find one entry, whichever side sends first.
#pragma once

#include <cstdint>
#include <cstring>

namespace vgate {

// 40 bytes, no padding, so that it hashes and compares as raw memory. IPv4 addresses are stored IPv4-mapped
// (::ffff:a.b.c.d) so that the address family is part of the address and cannot collide with an IPv6 address.
struct FlowKey {
  uint8_t addrLow[16];  // the numerically lower (address, port) endpoint
  uint8_t addrHigh[16];
  uint16_t portLow;  // host order
  uint16_t portHigh;
  uint8_t zone[3];   // outer and inner VLAN ids (12 bits each): the same 5-tuple in two VLANs is two flows
  uint8_t protocol;  // IPPROTO_*

  bool isIpv4() const {
    static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(addrLow, kMappedPrefix, 12) == 0 && std::memcmp(addrHigh, kMappedPrefix, 12) == 0;
  }
  bool operator==(const FlowKey& other) const { return std::memcmp(this, &other, sizeof(FlowKey)) == 0; }
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed as raw bytes: no padding allowed");

inline uint32_t packZone(uint16_t outerVlan, uint16_t innerVlan) {
  return (uint32_t{outerVlan} & 0xfff) << 12 | (uint32_t{innerVlan} & 0xfff);
}

}  // namespace vgate
