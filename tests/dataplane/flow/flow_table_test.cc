// Flow table: one entry per flow whichever direction, bounded size with counted eviction, idle expiry,
// memory.
#include "dataplane/flow/flow_table.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "dataplane/flow/flow_key_builder.h"
#include "support/eal_environment.h"

namespace vgate::dataplane {
namespace {

ParsedPacket tcpPacket(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
  ParsedPacket packet;
  packet.ipVersion = 4;
  packet.protocol = IPPROTO_TCP;
  for (int i = 0; i < 4; ++i) {
    packet.srcAddr[i] = static_cast<uint8_t>(src >> (24 - 8 * i));
    packet.dstAddr[i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
  }
  packet.srcPort = sport;
  packet.dstPort = dport;
  return packet;
}

FlowKey keyOf(const ParsedPacket& packet) {
  FlowKey key;
  buildFlowKey(packet, key);
  return key;
}

int tableSerial = 0;
std::unique_ptr<FlowTable> makeTable(uint32_t capacity) {
  FlowTableConfig config;
  config.name = "flow_test_" + std::to_string(tableSerial++);
  config.capacity = capacity;
  auto table = FlowTable::create(config);
  EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().message);
  return std::move(table).value();
}

TEST(FlowKeyBuilder, BothDirectionsGiveOneKeyAndOppositeSides) {
  ParsedPacket forward = tcpPacket(0x0a000001, 40000, 0x0a000002, 443);
  ParsedPacket reverse = tcpPacket(0x0a000002, 443, 0x0a000001, 40000);
  FlowKey a, b;
  bool forwardLow = buildFlowKey(forward, a);
  bool reverseLow = buildFlowKey(reverse, b);
  EXPECT_EQ(a, b);
  EXPECT_NE(forwardLow, reverseLow);
  EXPECT_TRUE(a.isIpv4());
  EXPECT_EQ(flowDispatchHash(forward), flowDispatchHash(reverse));
}

TEST(FlowKeyBuilder, VlanAndFamilyAndPortsSeparateFlows) {
  ParsedPacket base = tcpPacket(0x0a000001, 40000, 0x0a000002, 443);
  ParsedPacket tagged = base;
  tagged.vlanCount = 1;
  tagged.vlanIds[0] = 100;
  ParsedPacket otherPort = tcpPacket(0x0a000001, 40001, 0x0a000002, 443);
  ParsedPacket v6 = base;
  v6.ipVersion = 6;  // same first 4 bytes, but an IPv6 address: must not collide with the IPv4 flow
  EXPECT_FALSE(keyOf(base) == keyOf(tagged));
  EXPECT_FALSE(keyOf(base) == keyOf(otherPort));
  EXPECT_FALSE(keyOf(base) == keyOf(v6));
  EXPECT_FALSE(keyOf(v6).isIpv4());
}

TEST(FlowTable, InsertThenLookupFromEitherDirection) {
  auto table = makeTable(64);
  FlowKey key = keyOf(tcpPacket(0x0a000001, 40000, 0x0a000002, 443));
  int32_t position = table->insert(key);
  ASSERT_GE(position, 0);
  table->at(position).flowId = 7;
  FlowKey reverse = keyOf(tcpPacket(0x0a000002, 443, 0x0a000001, 40000));
  const FlowKey* keys[2] = {&key, &reverse};
  int32_t positions[2];
  table->lookupBurst(keys, 2, positions);
  EXPECT_EQ(positions[0], position);
  EXPECT_EQ(positions[1], position);
  EXPECT_EQ(table->size(), 1u);
  // A second insert of the same key (two new packets of one flow in a burst) finds the same entry.
  EXPECT_EQ(table->insert(key), position);
  EXPECT_EQ(table->size(), 1u);
  table->remove(position);
  table->lookupBurst(keys, 1, positions);
  EXPECT_EQ(positions[0], -1);
  EXPECT_EQ(table->size(), 0u);
}

TEST(FlowTable, FullTableRefusesUntilAVictimIsRemoved) {
  constexpr uint32_t kCapacity = 64;
  auto table = makeTable(kCapacity);
  for (uint32_t i = 0; i < kCapacity; ++i) {
    int32_t position =
        table->insert(keyOf(tcpPacket(0x0a000001, static_cast<uint16_t>(1000 + i), 0x0a000002, 80)));
    ASSERT_GE(position, 0) << i;
    Flow& flow = table->at(position);
    flow.flowId = i + 1;
    flow.lastUs = 1000 + i;
    flow.tcp = TcpProgress::kEstablished;
    flow.pkts[kToClient] = 1;
  }
  EXPECT_TRUE(table->full());
  FlowKey extra = keyOf(tcpPacket(0x0a000001, 5000, 0x0a000002, 80));
  EXPECT_EQ(table->insert(extra), -1);
  int32_t victim = table->pickVictim();
  ASSERT_GE(victim, 0);
  table->remove(victim);
  EXPECT_GE(table->insert(extra), 0);
}

TEST(FlowTable, VictimPrefersUnansweredFlowsThenTheOldest) {
  auto table = makeTable(16);
  std::vector<int32_t> positions;
  for (uint16_t i = 0; i < 8; ++i) {
    int32_t position =
        table->insert(keyOf(tcpPacket(0x0a000001, static_cast<uint16_t>(1000 + i), 0x0a000002, 80)));
    Flow& flow = table->at(position);
    flow.flowId = i + 1;
    flow.lastUs = 100 - i;  // the last one inserted is the oldest
    flow.tcp = TcpProgress::kEstablished;
    flow.pkts[kToClient] = 3;
    positions.push_back(position);
  }
  EXPECT_EQ(table->pickVictim(), positions[7]);
  // An unanswered SYN is evicted before any established flow, however recent.
  Flow& syn = table->at(positions[2]);
  syn.tcp = TcpProgress::kSynSent;
  syn.pkts[kToClient] = 0;
  syn.lastUs = 1000;
  EXPECT_EQ(table->pickVictim(), positions[2]);
}

TEST(FlowTable, SweepExpiresOnlyIdleFlowsByState) {
  auto table = makeTable(64);
  FlowTimeouts timeouts;
  struct Case {
    TcpProgress tcp;
    uint64_t idleUs;
    bool expired;
  };
  const Case cases[] = {
      {TcpProgress::kSynSent, timeouts.tcpNewUs + 1, true},
      {TcpProgress::kSynSent, timeouts.tcpNewUs - 1, false},
      {TcpProgress::kEstablished, timeouts.tcpNewUs + 1, false},
      {TcpProgress::kEstablished, timeouts.tcpEstablishedUs + 1, true},
      {TcpProgress::kClosed, timeouts.tcpClosedUs + 1, true},
  };
  const uint64_t now = 10'000'000'000;
  std::vector<int32_t> positions;
  for (size_t i = 0; i < std::size(cases); ++i) {
    int32_t position =
        table->insert(keyOf(tcpPacket(0x0a000001, static_cast<uint16_t>(2000 + i), 0x0a000002, 80)));
    Flow& flow = table->at(position);
    flow.flowId = i + 1;
    flow.tcp = cases[i].tcp;
    flow.lastUs = now - cases[i].idleUs;
    positions.push_back(position);
  }
  std::vector<int32_t> expired;
  table->sweep(now, timeouts, 64, [&](int32_t position) { expired.push_back(position); });
  for (size_t i = 0; i < std::size(cases); ++i) {
    bool found = std::find(expired.begin(), expired.end(), positions[i]) != expired.end();
    EXPECT_EQ(found, cases[i].expired) << "case " << i;
  }
}

TEST(FlowTable, OneMillionFlowsFitIn256BytesEach) {
  constexpr uint32_t kFlows = 1u << 20;
  auto table = makeTable(kFlows);
  ASSERT_NE(table, nullptr);
  for (uint32_t i = 0; i < kFlows; ++i) {
    int32_t position =
        table->insert(keyOf(tcpPacket(0x0a000000 + (i >> 16), static_cast<uint16_t>(i), 0x0b000001, 443)));
    ASSERT_GE(position, 0) << "insert " << i << " failed before the table was full";
    table->at(position).flowId = i + 1;
  }
  EXPECT_EQ(table->size(), kFlows);
  EXPECT_EQ(table->stats().insertFailed, 0u);
  double perFlow = static_cast<double>(table->memoryBytes()) / kFlows;
  EXPECT_LE(perFlow, 256.0);
  std::printf("flow table: %u flows, %.1f bytes per flow\n", kFlows, perFlow);
}

}  // namespace
}  // namespace vgate::dataplane
