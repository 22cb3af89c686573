// Flow key normalization: the lower (address, port) endpoint goes first, IPv4 addresses are IPv4-mapped.
#include "dataplane/flow/flow_key_builder.h"

#include <rte_hash_crc.h>

#include <cstring>

#include "vgate/bpf/flow_order.h"

namespace vgate::dataplane {

namespace {

void storeAddress(const ParsedPacket& packet, const uint8_t* address, uint8_t* out) {
  if (packet.ipVersion == 4) {
    std::memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out + 12, address, 4);
  } else {
    std::memcpy(out, address, 16);
  }
}

}  // namespace

bool buildFlowKey(const ParsedPacket& packet, FlowKey& key) {
  uint8_t src[16];
  uint8_t dst[16];
  storeAddress(packet, packet.srcAddr, src);
  storeAddress(packet, packet.dstAddr, dst);
  bool srcIsLow = vgate_flow_src_is_low(src, dst, packet.srcPort, packet.dstPort) != 0;
  if (srcIsLow) {
    std::memcpy(key.addrLow, src, 16);
    std::memcpy(key.addrHigh, dst, 16);
    key.portLow = packet.srcPort;
    key.portHigh = packet.dstPort;
  } else {
    std::memcpy(key.addrLow, dst, 16);
    std::memcpy(key.addrHigh, src, 16);
    key.portLow = packet.dstPort;
    key.portHigh = packet.srcPort;
  }
  uint32_t zone =
      packZone(packet.vlanCount > 0 ? packet.vlanIds[0] : 0, packet.vlanCount > 1 ? packet.vlanIds[1] : 0);
  key.zone[0] = static_cast<uint8_t>(zone >> 16);
  key.zone[1] = static_cast<uint8_t>(zone >> 8);
  key.zone[2] = static_cast<uint8_t>(zone);
  key.protocol = packet.protocol;
  return srcIsLow;
}

uint32_t flowDispatchHash(const ParsedPacket& packet) {
  // XOR of the two addresses is symmetric; the VLAN ids keep tagged copies of one address pair apart.
  uint8_t mixed[16];
  for (int i = 0; i < 16; ++i) mixed[i] = packet.srcAddr[i] ^ packet.dstAddr[i];
  uint32_t hash = rte_hash_crc(mixed, sizeof(mixed), packet.ipVersion);
  uint32_t vlans =
      packZone(packet.vlanCount > 0 ? packet.vlanIds[0] : 0, packet.vlanCount > 1 ? packet.vlanIds[1] : 0);
  return rte_hash_crc_4byte(vlans, hash);
}

void keyAddressToRecord(const uint8_t* keyAddress, bool ipv4, uint8_t* out) {
  if (ipv4) {
    std::memcpy(out, keyAddress + 12, 4);
    std::memset(out + 4, 0, 12);
  } else {
    std::memcpy(out, keyAddress, 16);
  }
}

}  // namespace vgate::dataplane
