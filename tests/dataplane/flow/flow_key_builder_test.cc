// The flow key builder against the fast path's own key normalization (include/vgate/bpf/flow_order.h, the
// code the TC program runs): on random endpoints both must order a flow the same way, or the fast path
// entries the dataplane writes are never found by the packets they are for.
#include "dataplane/flow/flow_key_builder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <random>

#include "vgate/bpf/flow_order.h"

namespace vgate::dataplane {
namespace {

// The addresses as the fast path sees them: 16 bytes, IPv4 IPv4-mapped.
void mapped(const ParsedPacket& packet, const uint8_t* address, uint8_t* out) {
  if (packet.ipVersion == 4) {
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, address, 4);
  } else {
    std::memcpy(out, address, 16);
  }
}

void expectSameOrder(const ParsedPacket& packet) {
  FlowKey key{};
  bool srcIsLow = buildFlowKey(packet, key);
  uint8_t src[16];
  uint8_t dst[16];
  mapped(packet, packet.srcAddr, src);
  mapped(packet, packet.dstAddr, dst);
  vgate_fp_key fast{};
  vgate_fp_key_normalize(&fast, src, dst, htons(packet.srcPort), htons(packet.dstPort));
  ASSERT_EQ(std::memcmp(key.addrLow, fast.addr_low, 16), 0);
  ASSERT_EQ(std::memcmp(key.addrHigh, fast.addr_high, 16), 0);
  ASSERT_EQ(key.portLow, ntohs(fast.port_low));
  ASSERT_EQ(key.portHigh, ntohs(fast.port_high));
  ASSERT_EQ(srcIsLow, std::memcmp(fast.addr_low, src, 16) == 0 && fast.port_low == htons(packet.srcPort));
}

ParsedPacket packetOf(uint8_t ipVersion, const uint8_t* src, const uint8_t* dst, uint16_t sport,
                      uint16_t dport) {
  ParsedPacket packet;
  packet.ipVersion = ipVersion;
  packet.protocol = IPPROTO_TCP;
  std::memcpy(packet.srcAddr, src, ipVersion == 4 ? 4 : 16);
  std::memcpy(packet.dstAddr, dst, ipVersion == 4 ? 4 : 16);
  packet.srcPort = sport;
  packet.dstPort = dport;
  return packet;
}

TEST(FlowKeyBuilder, OrdersLikeTheFastPathOnRandomEndpoints) {
  std::mt19937_64 random(20261207);
  for (int i = 0; i < 100000; ++i) {
    uint8_t src[16];
    uint8_t dst[16];
    for (auto& byte : src) byte = static_cast<uint8_t>(random());
    // Addresses that share a prefix, or are equal, so that every byte position and the port tie-break
    // decide some of the cases.
    std::memcpy(dst, src, 16);
    size_t differ = random() % 17;
    for (size_t b = differ; b < 16; ++b) dst[b] = static_cast<uint8_t>(random());
    uint16_t sport = static_cast<uint16_t>(random());
    uint16_t dport = random() % 4 == 0 ? sport : static_cast<uint16_t>(random());
    uint8_t version = random() % 2 == 0 ? 4 : 6;
    const uint8_t* v4src = version == 4 ? src + 12 : src;
    const uint8_t* v4dst = version == 4 ? dst + 12 : dst;
    ParsedPacket packet = packetOf(version, v4src, v4dst, sport, dport);
    ASSERT_NO_FATAL_FAILURE(expectSameOrder(packet)) << "case " << i;
    // The reply must find the same key.
    ParsedPacket reply = packetOf(version, v4dst, v4src, dport, sport);
    ASSERT_NO_FATAL_FAILURE(expectSameOrder(reply)) << "reply of case " << i;
    FlowKey forward{};
    FlowKey backward{};
    bool forwardLow = buildFlowKey(packet, forward);
    bool backwardLow = buildFlowKey(reply, backward);
    ASSERT_EQ(forward, backward) << "case " << i;
    if (!(forward.portLow == forward.portHigh && std::memcmp(forward.addrLow, forward.addrHigh, 16) == 0)) {
      ASSERT_NE(forwardLow, backwardLow) << "case " << i;
    }
  }
}

TEST(FlowKeyBuilder, PortsDecideOnlyBetweenEqualAddresses) {
  const uint8_t a[4] = {10, 0, 0, 1};
  const uint8_t b[4] = {10, 0, 0, 2};
  FlowKey key{};
  // The lower address goes first whatever the ports; the port tie-break is numeric, not bytewise.
  EXPECT_TRUE(buildFlowKey(packetOf(4, a, b, 65000, 80), key));
  EXPECT_EQ(key.portLow, 65000);
  EXPECT_FALSE(buildFlowKey(packetOf(4, b, a, 80, 65000), key));
  EXPECT_TRUE(buildFlowKey(packetOf(4, a, a, 0x00ff, 0x0100), key));
  EXPECT_FALSE(buildFlowKey(packetOf(4, a, a, 0x0100, 0x00ff), key));
  EXPECT_TRUE(key.isIpv4());
}

TEST(FlowKeyBuilder, DispatchHashIsSymmetricAndIgnoresPorts) {
  const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  uint32_t forward = flowDispatchHash(packetOf(6, a, b, 1000, 443));
  EXPECT_EQ(forward, flowDispatchHash(packetOf(6, b, a, 443, 1000)));
  EXPECT_EQ(forward, flowDispatchHash(packetOf(6, a, b, 0, 0)));  // a later fragment carries no ports
  ParsedPacket tagged = packetOf(6, a, b, 1000, 443);
  tagged.vlanCount = 1;
  tagged.vlanIds[0] = 7;
  EXPECT_NE(forward, flowDispatchHash(tagged));
}

TEST(FlowKeyBuilder, ZoneKeepsTaggedCopiesApart) {
  const uint8_t a[4] = {10, 0, 0, 1};
  const uint8_t b[4] = {10, 0, 0, 2};
  ParsedPacket plain = packetOf(4, a, b, 1, 2);
  ParsedPacket tagged = plain;
  tagged.vlanCount = 2;
  tagged.vlanIds[0] = 0xabc;
  tagged.vlanIds[1] = 0x123;
  FlowKey plainKey{};
  FlowKey taggedKey{};
  buildFlowKey(plain, plainKey);
  buildFlowKey(tagged, taggedKey);
  EXPECT_FALSE(plainKey == taggedKey);
  EXPECT_EQ(taggedKey.zone[0], 0xab);
  EXPECT_EQ(taggedKey.zone[1], 0xc1);
  EXPECT_EQ(taggedKey.zone[2], 0x23);
}

}  // namespace
}  // namespace vgate::dataplane
