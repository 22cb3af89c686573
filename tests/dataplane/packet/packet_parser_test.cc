// Tests for the L2-L4 packet parser: hand-built frames for every status, protocol, VLAN and IPv6 extension
// header layout, plus truncation and lying-length sweeps that must never read out of bounds.
#include "dataplane/packet/packet_parser.h"
#include "support/byte_builder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vgate::dataplane {
namespace {

using vgate::testing::Bytes;

using vgate::testing::Builder;

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes payload(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(0xa0 + i);
  return b;
}

struct Tag {
  uint16_t tpid;
  uint16_t tci;
};

Bytes eth(uint16_t etherType, const std::vector<Tag>& tags = {}) {
  Builder b;
  b.u16(0x0200).u32(0x00000001).u16(0x0200).u32(0x00000002);  // dst, src MAC
  for (const Tag& t : tags) b.u16(t.tpid).u16(t.tci);
  return b.u16(etherType).done();
}

constexpr uint8_t kSrc4[4] = {10, 0, 0, 1};
constexpr uint8_t kDst4[4] = {192, 168, 1, 2};

// An IPv4 header whose total length covers the options plus `after` bytes, unless `totalLength` overrides it.
Bytes ipv4(uint8_t protocol, size_t after, const Bytes& options = {}, uint16_t fragmentField = 0,
           int totalLength = -1, int ihl = -1, uint8_t version = 4) {
  const size_t headerLength = 20 + options.size();
  Builder b;
  b.u8((version << 4) | (ihl >= 0 ? ihl : static_cast<int>(headerLength / 4)));
  b.u8(0).u16(totalLength >= 0 ? totalLength : static_cast<int>(headerLength + after));
  b.u16(0xbeef).u16(fragmentField).u8(64).u8(protocol).u16(0);
  for (uint8_t x : kSrc4) b.u8(x);
  for (uint8_t x : kDst4) b.u8(x);
  return b.add(options).done();
}

uint8_t src6(int i) { return static_cast<uint8_t>(i == 0 ? 0x20 : i == 1 ? 0x01 : i); }
uint8_t dst6(int i) { return static_cast<uint8_t>(i == 0 ? 0xfd : 0x10 + i); }

Bytes ipv6(uint8_t nextHeader, size_t after, int payloadLength = -1, uint8_t version = 6) {
  Builder b;
  b.u32(static_cast<uint32_t>(version) << 28)
      .u16(payloadLength >= 0 ? payloadLength : static_cast<int>(after));
  b.u8(nextHeader).u8(17);
  for (int i = 0; i < 16; ++i) b.u8(src6(i));
  for (int i = 0; i < 16; ++i) b.u8(dst6(i));
  return b.done();
}

// Hop-by-hop, routing or destination options header of (hdrExtLen + 1) * 8 bytes.
Bytes ext(uint8_t nextHeader, uint8_t hdrExtLen = 0) {
  return Builder().u8(nextHeader).u8(hdrExtLen).fill(6 + hdrExtLen * 8, 1).done();
}
// AH: (payloadLen + 2) * 4 bytes.
Bytes ah(uint8_t nextHeader, uint8_t payloadLen = 4) {
  return Builder().u8(nextHeader).u8(payloadLen).fill((payloadLen + 2) * 4 - 2, 2).done();
}
Bytes frag6(uint8_t nextHeader, uint16_t offsetBytes, bool more, uint32_t id) {
  return Builder().u8(nextHeader).u8(0).u16(offsetBytes | (more ? 1 : 0)).u32(id).done();
}

Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
          size_t optionsLength = 0, int dataOffset = -1) {
  Builder b;
  b.u16(sport).u16(dport).u32(seq).u32(ack);
  b.u8((dataOffset >= 0 ? dataOffset : static_cast<int>((20 + optionsLength) / 4)) << 4).u8(flags);
  b.u16(window).u16(0).u16(0);
  return b.fill(optionsLength, 1).done();  // NOP options
}
Bytes udp(uint16_t sport, uint16_t dport, size_t payloadLength, int lengthField = -1) {
  return Builder()
      .u16(sport)
      .u16(dport)
      .u16(lengthField >= 0 ? lengthField : static_cast<int>(8 + payloadLength))
      .u16(0)
      .done();
}
Bytes icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq = 1) {
  return Builder().u8(type).u8(code).u16(0).u16(id).u16(seq).done();
}
Bytes sctp(uint16_t sport, uint16_t dport) {
  return Builder().u16(sport).u16(dport).u32(0x11223344).u32(0).done();
}

// Frames: Ethernet + IP header sized for the given L4 bytes.
Bytes v4Frame(uint8_t protocol, const Bytes& l4, const Bytes& options = {}) {
  return cat({eth(0x0800), ipv4(protocol, l4.size(), options), l4});
}
Bytes v6Frame(uint8_t nextHeader, const Bytes& afterFixedHeader) {
  return cat({eth(0x86dd), ipv6(nextHeader, afterFixedHeader.size()), afterFixedHeader});
}

// Parses from an exact-size heap copy of the first `contiguous` bytes so ASan flags any read past them.
ParseStatus parse(const Bytes& frame, ParsedPacket& out, size_t contiguous = SIZE_MAX,
                  size_t frameLength = SIZE_MAX) {
  if (contiguous == SIZE_MAX) contiguous = frame.size();
  if (frameLength == SIZE_MAX) frameLength = frame.size();
  std::unique_ptr<uint8_t[]> copy(new uint8_t[contiguous ? contiguous : 1]);
  if (contiguous) std::memcpy(copy.get(), frame.data(), contiguous);
  return parsePacket(copy.get(), static_cast<uint32_t>(contiguous), static_cast<uint32_t>(frameLength), out);
}

bool isDrop(ParseStatus s) {
  const std::string name = parseStatusName(s);
  return name.rfind("truncated_", 0) == 0 || name.rfind("bad_", 0) == 0;
}

void expectV4Addresses(const ParsedPacket& p) {
  EXPECT_EQ(0, std::memcmp(p.srcAddr, kSrc4, 4));
  EXPECT_EQ(0, std::memcmp(p.dstAddr, kDst4, 4));
  for (int i = 4; i < 16; ++i) {
    EXPECT_EQ(0, p.srcAddr[i]);
    EXPECT_EQ(0, p.dstAddr[i]);
  }
}
void expectV6Addresses(const ParsedPacket& p) {
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(src6(i), p.srcAddr[i]);
    EXPECT_EQ(dst6(i), p.dstAddr[i]);
  }
}

// Valid frames of each kind, reused by the truncation sweeps.
std::vector<std::pair<std::string, Bytes>> validFrames() {
  return {
      {"v4_tcp", v4Frame(6, cat({tcp(1234, 80, 1, 2, 0x18, 100, 12), payload(5)}))},
      {"v4_options_udp", v4Frame(17, cat({udp(53, 5353, 3), payload(3)}), Bytes(8, 1))},
      {"v4_icmp", v4Frame(1, icmp(8, 0, 77))},
      {"v4_sctp", v4Frame(132, sctp(1, 2))},
      {"qinq_v4_tcp", cat({eth(0x0800, {{0x88a8, 100}, {0x8100, 200}}), ipv4(6, 20), tcp(1, 2, 3, 4, 2, 5)})},
      {"v6_tcp", v6Frame(6, tcp(443, 50000, 9, 8, 0x10, 7, 4))},
      {"v6_chain_udp", v6Frame(0, cat({ext(43, 1), ext(60), ext(44), frag6(51, 0, false, 9), ah(17),
                                       udp(1, 2, 2), payload(2)}))},
      {"v6_icmpv6", v6Frame(58, icmp(128, 0, 5))},
      {"v6_fragment", v6Frame(44, cat({frag6(6, 8, true, 1), payload(16)}))},
      {"v4_fragment", cat({eth(0x0800), ipv4(6, 16, {}, 0x2001), payload(16)})},
  };
}

TEST(PacketParserTest, StatusNamesAreStableAndDistinct) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(ParseStatus::kCount); ++i) {
    const std::string name = parseStatusName(static_cast<ParseStatus>(i));
    EXPECT_NE("unknown", name);
    for (char c : name) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << name;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_STREQ("ok", parseStatusName(ParseStatus::kOk));
  EXPECT_STREQ("arp", parseStatusName(ParseStatus::kArp));
  EXPECT_STREQ("other_ethertype", parseStatusName(ParseStatus::kOtherEthertype));
  EXPECT_STREQ("fragment", parseStatusName(ParseStatus::kFragment));
  EXPECT_STREQ("truncated_ethernet", parseStatusName(ParseStatus::kTruncatedEthernet));
  EXPECT_STREQ("too_many_vlan_tags", parseStatusName(ParseStatus::kTooManyVlanTags));
  EXPECT_STREQ("truncated_ipv4", parseStatusName(ParseStatus::kTruncatedIpv4));
  EXPECT_STREQ("bad_udp_length", parseStatusName(ParseStatus::kBadUdpLength));
  EXPECT_STREQ("unknown", parseStatusName(ParseStatus::kCount));
}

struct StatusCase {
  const char* name;
  Bytes frame;
  ParseStatus status;
};

// One or more frames for every status value; the test also checks that no status is left uncovered.
TEST(PacketParserTest, EveryStatus) {
  const std::vector<StatusCase> cases = {
      {"tcp", v4Frame(6, tcp(1, 2, 3, 4, 2, 5)), ParseStatus::kOk},
      {"arp", cat({eth(0x0806), payload(28)}), ParseStatus::kArp},
      {"vlan_arp", cat({eth(0x0806, {{0x8100, 5}}), payload(28)}), ParseStatus::kArp},
      {"lldp", cat({eth(0x88cc), payload(20)}), ParseStatus::kOtherEthertype},
      {"v4_fragment", cat({eth(0x0800), ipv4(6, 8, {}, 0x2000), payload(8)}), ParseStatus::kFragment},
      {"short_ethernet", Bytes(13, 0), ParseStatus::kTruncatedEthernet},
      {"empty", Bytes{}, ParseStatus::kTruncatedEthernet},
      {"vlan_cut", eth(0x8100), ParseStatus::kTruncatedEthernet},
      {"three_tags",
       cat({eth(0x0800, {{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}}), ipv4(6, 20), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kTooManyVlanTags},
      {"short_ipv4", cat({eth(0x0800), Bytes(19, 0x45)}), ParseStatus::kTruncatedIpv4},
      {"v4_version6", cat({eth(0x0800), ipv4(6, 20, {}, 0, -1, -1, 6), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kBadIpv4Version},
      {"ihl4", cat({eth(0x0800), ipv4(6, 20, {}, 0, -1, 4), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kBadIpv4HeaderLength},
      {"ihl0", cat({eth(0x0800), ipv4(6, 20, {}, 0, -1, 0), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kBadIpv4HeaderLength},
      {"total_gt_frame", cat({eth(0x0800), ipv4(6, 20, {}, 0, 41), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kBadIpv4TotalLength},
      {"total_lt_ihl", cat({eth(0x0800), ipv4(6, 20, {}, 0, 19), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kBadIpv4TotalLength},
      {"total_lt_options", cat({eth(0x0800), ipv4(6, 0, Bytes(8, 1), 0, 24)}),
       ParseStatus::kBadIpv4TotalLength},
      {"short_ipv6", cat({eth(0x86dd), Bytes(39, 0x60)}), ParseStatus::kTruncatedIpv6},
      {"v6_version4", cat({eth(0x86dd), ipv6(59, 0, 0, 4)}), ParseStatus::kBadIpv6Version},
      {"v6_payload_gt_frame", cat({eth(0x86dd), ipv6(6, 20, 21), tcp(1, 2, 3, 4, 2, 5)}),
       ParseStatus::kBadIpv6PayloadLength},
      {"hbh_not_first", v6Frame(60, cat({ext(0), ext(6), tcp(1, 2, 3, 4, 2, 5)})),
       ParseStatus::kBadIpv6ExtensionHeader},
      {"ext_beyond_payload", v6Frame(60, Bytes{6, 1, 0, 0, 0, 0, 0, 0}),
       ParseStatus::kBadIpv6ExtensionHeader},
      {"ext_stub", v6Frame(43, Bytes{6, 0, 0, 0}), ParseStatus::kBadIpv6ExtensionHeader},
      {"frag_stub", v6Frame(44, Bytes{6, 0, 0, 0, 0, 0}), ParseStatus::kBadIpv6ExtensionHeader},
      {"ah_beyond_payload", v6Frame(51, Bytes{6, 4, 0, 0, 0, 0, 0, 0}), ParseStatus::kBadIpv6ExtensionHeader},
      {"nine_ext",
       v6Frame(60, cat({ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(59)})),
       ParseStatus::kTooManyIpv6ExtensionHeaders},
      {"tcp_short", v4Frame(6, Bytes(19, 0x50)), ParseStatus::kTruncatedTcp},
      {"tcp_doff4", v4Frame(6, tcp(1, 2, 3, 4, 2, 5, 0, 4)), ParseStatus::kBadTcpHeaderLength},
      {"tcp_doff0", v4Frame(6, tcp(1, 2, 3, 4, 2, 5, 0, 0)), ParseStatus::kBadTcpHeaderLength},
      {"tcp_doff_beyond", v4Frame(6, tcp(1, 2, 3, 4, 2, 5, 0, 6)), ParseStatus::kBadTcpHeaderLength},
      {"v6_tcp_doff_beyond", v6Frame(6, tcp(1, 2, 3, 4, 2, 5, 4, 15)), ParseStatus::kBadTcpHeaderLength},
      {"udp_short", v4Frame(17, Bytes(7, 0)), ParseStatus::kTruncatedUdp},
      {"udp_len7", v4Frame(17, udp(1, 2, 0, 7)), ParseStatus::kBadUdpLength},
      {"udp_len_gt_ip", v4Frame(17, cat({udp(1, 2, 4, 13), payload(4)})), ParseStatus::kBadUdpLength},
      {"v6_udp_len_gt_ip", v6Frame(17, cat({udp(1, 2, 0, 9)})), ParseStatus::kBadUdpLength},
      {"icmp_short", v4Frame(1, Bytes{8, 0, 0, 0, 0, 1, 0}), ParseStatus::kTruncatedIcmp},
      {"icmpv6_short", v6Frame(58, Bytes{128, 0, 0, 0}), ParseStatus::kTruncatedIcmp},
      {"sctp_short", v4Frame(132, Bytes(11, 0)), ParseStatus::kTruncatedSctp},
  };
  std::set<ParseStatus> seen;
  for (const StatusCase& c : cases) {
    SCOPED_TRACE(c.name);
    ParsedPacket p;
    const ParseStatus s = parse(c.frame, p);
    EXPECT_EQ(c.status, s) << parseStatusName(s);
    seen.insert(c.status);
  }
  for (int i = 0; i < static_cast<int>(ParseStatus::kCount); ++i) {
    EXPECT_TRUE(seen.count(static_cast<ParseStatus>(i))) << parseStatusName(static_cast<ParseStatus>(i));
  }
}

TEST(PacketParserTest, Ipv4Tcp) {
  const Bytes frame =
      v4Frame(6, cat({tcp(40000, 443, 0x01020304, 0xa0b0c0d0, 0x12, 0xfaf0, 12), payload(7)}));
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(frame, p));
  EXPECT_EQ(0x0800, p.etherType);
  EXPECT_EQ(0, p.vlanCount);
  EXPECT_EQ(4, p.ipVersion);
  EXPECT_EQ(6, p.protocol);
  EXPECT_EQ(64, p.ttl);
  expectV4Addresses(p);
  EXPECT_EQ(14, p.l3Offset);
  EXPECT_EQ(34, p.l4Offset);
  EXPECT_EQ(66, p.payloadOffset);
  EXPECT_EQ(7u, p.payloadLength);
  EXPECT_EQ(20u + 32 + 7, p.ipLength);
  EXPECT_EQ(40000, p.srcPort);
  EXPECT_EQ(443, p.dstPort);
  EXPECT_EQ(0x12, p.tcpFlags);
  EXPECT_EQ(0x01020304u, p.tcpSeq);
  EXPECT_EQ(0xa0b0c0d0u, p.tcpAck);
  EXPECT_EQ(0xfaf0, p.tcpWindow);
  EXPECT_FALSE(p.moreFragments);
  EXPECT_EQ(0, p.fragmentOffset);
}

TEST(PacketParserTest, Ipv4Options) {
  for (size_t optionsLength : {4u, 20u, 40u}) {
    SCOPED_TRACE(optionsLength);
    const Bytes frame = v4Frame(17, cat({udp(1000, 53, 6), payload(6)}), Bytes(optionsLength, 1));
    ParsedPacket p;
    ASSERT_EQ(ParseStatus::kOk, parse(frame, p));
    EXPECT_EQ(14 + 20 + optionsLength, p.l4Offset);
    EXPECT_EQ(p.l4Offset + 8, p.payloadOffset);
    EXPECT_EQ(6u, p.payloadLength);
    EXPECT_EQ(1000, p.srcPort);
    EXPECT_EQ(53, p.dstPort);
    expectV4Addresses(p);
  }
}

TEST(PacketParserTest, UdpLengthShorterThanIpPayload) {
  // Bytes after the UDP length inside the IP packet are not payload.
  const Bytes frame = v4Frame(17, cat({udp(1, 2, 3), payload(10)}));
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(frame, p));
  EXPECT_EQ(3u, p.payloadLength);
}

TEST(PacketParserTest, EthernetPaddingIsNotPayload) {
  Bytes frame = v4Frame(17, cat({udp(7, 9, 2), payload(2)}));
  ASSERT_EQ(44u, frame.size());
  frame.resize(60, 0);  // minimum Ethernet frame without FCS
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(frame, p));
  EXPECT_EQ(30u, p.ipLength);
  EXPECT_EQ(2u, p.payloadLength);
  EXPECT_EQ(42, p.payloadOffset);

  Bytes tcpFrame = v4Frame(6, tcp(1, 2, 3, 4, 0x10, 5));
  tcpFrame.resize(60, 0);
  ASSERT_EQ(ParseStatus::kOk, parse(tcpFrame, p));
  EXPECT_EQ(0u, p.payloadLength);
  EXPECT_EQ(40u, p.ipLength);
}

TEST(PacketParserTest, Ipv4Icmp) {
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(v4Frame(1, cat({icmp(8, 0, 0x4242), payload(16)})), p));
  EXPECT_EQ(1, p.protocol);
  EXPECT_EQ(8, p.icmpType);
  EXPECT_EQ(0, p.icmpCode);
  EXPECT_EQ(0x4242, p.srcPort);
  EXPECT_EQ(0x4242, p.dstPort);
  EXPECT_EQ(16u, p.payloadLength);
  EXPECT_EQ(14 + 20 + 8, p.payloadOffset);

  ASSERT_EQ(ParseStatus::kOk, parse(v4Frame(1, icmp(0, 0, 0x4242)), p));
  EXPECT_EQ(0, p.icmpType);
  EXPECT_EQ(0x4242, p.srcPort);
  EXPECT_EQ(0x4242, p.dstPort);

  // Destination unreachable: not an echo, so no identifier.
  ASSERT_EQ(ParseStatus::kOk, parse(v4Frame(1, cat({icmp(3, 4, 0x1234), payload(28)})), p));
  EXPECT_EQ(3, p.icmpType);
  EXPECT_EQ(4, p.icmpCode);
  EXPECT_EQ(0, p.srcPort);
  EXPECT_EQ(0, p.dstPort);
}

// Parses `frame` and its ICMP error quote from an exact-size heap copy of its first `contiguous` bytes.
bool quoteOf(const Bytes& frame, ParsedPacket& quoted, size_t contiguous = SIZE_MAX) {
  if (contiguous == SIZE_MAX) contiguous = frame.size();
  std::unique_ptr<uint8_t[]> copy(new uint8_t[contiguous ? contiguous : 1]);
  if (contiguous) std::memcpy(copy.get(), frame.data(), contiguous);
  ParsedPacket outer;
  if (parsePacket(copy.get(), static_cast<uint32_t>(contiguous), static_cast<uint32_t>(frame.size()),
                  outer) != ParseStatus::kOk)
    return false;
  return parseIcmpErrorQuote(copy.get(), static_cast<uint32_t>(contiguous), outer, quoted);
}

TEST(PacketParserTest, IcmpErrorQuotes) {
  // Fragmentation needed, quoting the first 8 bytes of a TCP segment of 1400 bytes, on a VLAN.
  Bytes segment = tcp(40000, 443, 1, 0, 0x18, 100);
  Bytes segmentHead(segment.begin(), segment.begin() + 8);
  Bytes quote = cat({ipv4(6, 1380), segmentHead});
  Bytes error = cat({icmp(3, 4, 0), quote});
  Bytes frame = cat({eth(0x0800, {{0x8100, 7}}), ipv4(1, error.size()), error});
  ParsedPacket q;
  ASSERT_TRUE(quoteOf(frame, q));
  EXPECT_EQ(4, q.ipVersion);
  EXPECT_EQ(6, q.protocol);
  expectV4Addresses(q);
  EXPECT_EQ(40000, q.srcPort);
  EXPECT_EQ(443, q.dstPort);
  EXPECT_EQ(1, q.vlanCount);
  EXPECT_EQ(7, q.vlanIds[0]);

  // Time exceeded quoting an echo request: its identifier, in both ports.
  ASSERT_TRUE(quoteOf(v4Frame(1, cat({icmp(11, 0, 0), ipv4(1, 64), icmp(8, 0, 0x4242)})), q));
  EXPECT_EQ(1, q.protocol);
  EXPECT_EQ(0x4242, q.srcPort);
  EXPECT_EQ(0x4242, q.dstPort);

  // Not errors, or errors that name no flow.
  EXPECT_FALSE(quoteOf(v4Frame(1, cat({icmp(8, 0, 1), quote})), q)) << "an echo is not an error";
  EXPECT_FALSE(quoteOf(v4Frame(1, cat({icmp(3, 1, 0), ipv4(1, 36), icmp(3, 4, 0)})), q))
      << "an error about an error";
  EXPECT_FALSE(quoteOf(v4Frame(1, cat({icmp(3, 4, 0), ipv4(6, 1380, {}, 0x0010), segmentHead})), q))
      << "a later fragment has no ports";
  EXPECT_FALSE(quoteOf(v4Frame(1, cat({icmp(3, 4, 0), ipv4(6, 1380), Bytes{0x9c, 0x40}})), q))
      << "two bytes of TCP";
  EXPECT_FALSE(quoteOf(v4Frame(1, cat({icmp(3, 4, 0), ipv6(6, 20), segmentHead})), q)) << "IPv6 in ICMPv4";

  // ICMPv6 packet too big quoting UDP behind an atomic fragment header, and one quoting a later fragment.
  Bytes udpHead = udp(5353, 53, 100);
  Bytes quote6 = cat({ipv6(44, 116), frag6(17, 0, false, 9), udpHead});
  ASSERT_TRUE(quoteOf(v6Frame(58, cat({icmp(2, 0, 0), quote6})), q));
  EXPECT_EQ(6, q.ipVersion);
  EXPECT_EQ(17, q.protocol);
  EXPECT_EQ(5353, q.srcPort);
  EXPECT_EQ(53, q.dstPort);
  EXPECT_EQ(0xfd, q.dstAddr[0]);
  EXPECT_FALSE(
      quoteOf(v6Frame(58, cat({icmp(3, 0, 0), ipv6(44, 116), frag6(17, 64, false, 9), udpHead})), q));
  EXPECT_FALSE(quoteOf(v6Frame(58, cat({icmp(128, 0, 1), quote6})), q)) << "an echo is not an error";

  // Every truncation of the contiguous bytes: no read outside them (ASan), and a quote exactly when the
  // quoted ports are within them (Ethernet, VLAN, IP, ICMP, quoted IP and extension headers, 4 bytes).
  const std::pair<Bytes, size_t> truncated[] = {
      {frame, 14 + 4 + 20 + 8 + 20 + 4},
      {v6Frame(58, cat({icmp(2, 0, 0), quote6})), 14 + 40 + 8 + 40 + 8 + 4}};
  for (const auto& [whole, needed] : truncated) {
    for (size_t n = 0; n < whole.size(); ++n) EXPECT_EQ(quoteOf(whole, q, n), n >= needed) << n;
  }
}

TEST(PacketParserTest, SctpAndOtherProtocols) {
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(v4Frame(132, cat({sctp(3868, 2905), payload(16)})), p));
  EXPECT_EQ(132, p.protocol);
  EXPECT_EQ(3868, p.srcPort);
  EXPECT_EQ(2905, p.dstPort);
  EXPECT_EQ(16u, p.payloadLength);
  EXPECT_EQ(14 + 20 + 12, p.payloadOffset);

  ASSERT_EQ(ParseStatus::kOk, parse(v4Frame(47, payload(24)), p));  // GRE
  EXPECT_EQ(47, p.protocol);
  EXPECT_EQ(0, p.srcPort);
  EXPECT_EQ(0, p.dstPort);
  EXPECT_EQ(34, p.l4Offset);
  EXPECT_EQ(34, p.payloadOffset);
  EXPECT_EQ(24u, p.payloadLength);

  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(50, payload(24)), p));  // ESP
  EXPECT_EQ(50, p.protocol);
  EXPECT_EQ(54, p.payloadOffset);
  EXPECT_EQ(24u, p.payloadLength);
}

TEST(PacketParserTest, VlanTags) {
  struct Case {
    const char* name;
    std::vector<Tag> tags;
    std::vector<uint16_t> ids;
    uint8_t outerPcp;  // the outermost tag's priority (live: bit 0 is vgate's port-tag side)
  };
  const Case cases[] = {
      {"dot1q", {{0x8100, 0x2064}}, {0x064}, 1},  // PCP bits are masked off the VID, kept apart
      {"qinq_88a8", {{0x88a8, 0x0fff}, {0x8100, 0xe001}}, {0xfff, 0x001}, 0},
      {"qinq_9100", {{0x9100, 0xa00a}, {0x8100, 20}}, {10, 20}, 5},
      {"double_8100", {{0x8100, 30}, {0x8100, 40}}, {30, 40}, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes frame = cat({eth(0x0800, c.tags), ipv4(6, 20), tcp(5, 6, 7, 8, 0x02, 9)});
    ParsedPacket p;
    ASSERT_EQ(ParseStatus::kOk, parse(frame, p));
    ASSERT_EQ(c.ids.size(), p.vlanCount);
    for (size_t i = 0; i < c.ids.size(); ++i) EXPECT_EQ(c.ids[i], p.vlanIds[i]);
    EXPECT_EQ(c.outerPcp, p.outerVlanPcp);
    EXPECT_EQ(0x0800, p.etherType);
    EXPECT_EQ(14 + 4 * c.ids.size(), p.l3Offset);
    EXPECT_EQ(p.l3Offset + 20, p.l4Offset);
    EXPECT_EQ(5, p.srcPort);
    EXPECT_EQ(6, p.dstPort);
  }
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOtherEthertype, parse(cat({eth(0x88cc, {{0x8100, 7}}), payload(10)}), p));
  EXPECT_EQ(0x88cc, p.etherType);
  EXPECT_EQ(1, p.vlanCount);
  EXPECT_EQ(7, p.vlanIds[0]);
}

TEST(PacketParserTest, Ipv6Protocols) {
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(6, cat({tcp(443, 50000, 9, 8, 0x11, 7, 4), payload(3)})), p));
  EXPECT_EQ(0x86dd, p.etherType);
  EXPECT_EQ(6, p.ipVersion);
  EXPECT_EQ(6, p.protocol);
  EXPECT_EQ(17, p.ttl);
  expectV6Addresses(p);
  EXPECT_EQ(14, p.l3Offset);
  EXPECT_EQ(54, p.l4Offset);
  EXPECT_EQ(78, p.payloadOffset);
  EXPECT_EQ(3u, p.payloadLength);
  EXPECT_EQ(40u + 24 + 3, p.ipLength);
  EXPECT_EQ(443, p.srcPort);
  EXPECT_EQ(50000, p.dstPort);
  EXPECT_EQ(9u, p.tcpSeq);
  EXPECT_EQ(8u, p.tcpAck);
  EXPECT_EQ(0x11, p.tcpFlags);
  EXPECT_EQ(7, p.tcpWindow);

  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(17, cat({udp(5353, 5353, 4), payload(4)})), p));
  EXPECT_EQ(17, p.protocol);
  EXPECT_EQ(5353, p.srcPort);
  EXPECT_EQ(4u, p.payloadLength);
  EXPECT_EQ(62, p.payloadOffset);

  for (uint8_t type : {128, 129}) {
    ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(58, cat({icmp(type, 0, 0x7777), payload(8)})), p));
    EXPECT_EQ(58, p.protocol);
    EXPECT_EQ(type, p.icmpType);
    EXPECT_EQ(0x7777, p.srcPort);
    EXPECT_EQ(0x7777, p.dstPort);
    EXPECT_EQ(8u, p.payloadLength);
  }
  // Neighbour solicitation: not an echo.
  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(58, cat({icmp(135, 0, 0x7777), payload(16)})), p));
  EXPECT_EQ(135, p.icmpType);
  EXPECT_EQ(0, p.srcPort);
  EXPECT_EQ(0, p.dstPort);
  // ICMPv4 echo type 8 inside ICMPv6 is not an echo.
  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(58, icmp(8, 0, 0x7777)), p));
  EXPECT_EQ(0, p.srcPort);

  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(132, sctp(10, 20)), p));
  EXPECT_EQ(10, p.srcPort);
  EXPECT_EQ(20, p.dstPort);
}

TEST(PacketParserTest, Ipv6ExtensionHeaders) {
  struct Case {
    const char* name;
    uint8_t first;
    Bytes headers;  // extension headers, the last one pointing at UDP (17)
  };
  const Case cases[] = {
      {"hop_by_hop", 0, ext(17)},
      {"routing", 43, ext(17, 2)},
      {"destination", 60, ext(17, 1)},
      {"ah", 51, ah(17, 4)},
      {"ah_min", 51, ah(17, 1)},
      {"atomic_fragment", 44, frag6(17, 0, false, 0xdeadbeef)},
      {"chain", 0, cat({ext(43, 1), ext(60), ext(44), frag6(51, 0, false, 1), ah(60, 3), ext(17, 3)})},
      {"eight", 0, cat({ext(60), ext(60), ext(60), ext(60), ext(60), ext(60), ext(43), ext(17)})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes frame = v6Frame(c.first, cat({c.headers, udp(1111, 2222, 5), payload(5)}));
    ParsedPacket p;
    ASSERT_EQ(ParseStatus::kOk, parse(frame, p));
    EXPECT_EQ(17, p.protocol);
    EXPECT_EQ(54 + c.headers.size(), p.l4Offset);
    EXPECT_EQ(p.l4Offset + 8, p.payloadOffset);
    EXPECT_EQ(5u, p.payloadLength);
    EXPECT_EQ(1111, p.srcPort);
    EXPECT_EQ(2222, p.dstPort);
    EXPECT_EQ(40 + c.headers.size() + 13, p.ipLength);
    EXPECT_FALSE(p.moreFragments);
    EXPECT_EQ(0u, p.fragmentId);
    expectV6Addresses(p);
  }
}

TEST(PacketParserTest, Ipv6NoNextHeader) {
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(59, {}), p));
  EXPECT_EQ(59, p.protocol);
  EXPECT_EQ(54, p.l4Offset);
  EXPECT_EQ(0u, p.payloadLength);

  ASSERT_EQ(ParseStatus::kOk, parse(v6Frame(60, cat({ext(59), payload(6)})), p));
  EXPECT_EQ(59, p.protocol);
  EXPECT_EQ(62, p.l4Offset);
  EXPECT_EQ(0u, p.payloadLength);
  EXPECT_EQ(0, p.srcPort);
}

TEST(PacketParserTest, Ipv4Fragments) {
  struct Case {
    const char* name;
    uint16_t field;
    uint16_t offset;
    bool more;
  };
  const Case cases[] = {
      {"first", 0x2000, 0, true},
      {"middle", 0x2000 | 185, 1480, true},
      {"last", 370, 2960, false},
      {"df_last", 0x4000 | 370, 2960, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes frame = cat({eth(0x0800), ipv4(17, 24, {}, c.field), payload(24)});
    ParsedPacket p;
    ASSERT_EQ(ParseStatus::kFragment, parse(frame, p));
    EXPECT_EQ(0xbeefu, p.fragmentId);
    EXPECT_EQ(c.offset, p.fragmentOffset);
    EXPECT_EQ(c.more, p.moreFragments);
    EXPECT_EQ(4, p.ipVersion);
    EXPECT_EQ(17, p.protocol);
    EXPECT_EQ(64, p.ttl);
    EXPECT_EQ(44u, p.ipLength);
    EXPECT_EQ(34, p.l4Offset);
    EXPECT_EQ(24u, p.payloadLength);
    EXPECT_EQ(0, p.srcPort);
    expectV4Addresses(p);
  }
  // DF alone is not a fragment.
  ParsedPacket p;
  EXPECT_EQ(ParseStatus::kOk, parse(cat({eth(0x0800), ipv4(17, 8, {}, 0x4000), udp(1, 2, 0)}), p));
}

TEST(PacketParserTest, Ipv6Fragments) {
  struct Case {
    const char* name;
    uint16_t offset;
    bool more;
  };
  const Case cases[] = {{"first", 0, true}, {"middle", 1448, true}, {"last", 2896, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (bool withHopByHop : {false, true}) {
      const Bytes headers = withHopByHop ? cat({ext(44), frag6(6, c.offset, c.more, 0xcafef00d)})
                                         : frag6(6, c.offset, c.more, 0xcafef00d);
      const Bytes frame = v6Frame(withHopByHop ? 0 : 44, cat({headers, payload(32)}));
      ParsedPacket p;
      ASSERT_EQ(ParseStatus::kFragment, parse(frame, p));
      EXPECT_EQ(0xcafef00du, p.fragmentId);
      EXPECT_EQ(c.offset, p.fragmentOffset);
      EXPECT_EQ(c.more, p.moreFragments);
      EXPECT_EQ(6, p.ipVersion);
      EXPECT_EQ(6, p.protocol);
      EXPECT_EQ(17, p.ttl);
      EXPECT_EQ(54 + headers.size(), p.l4Offset);
      EXPECT_EQ(32u, p.payloadLength);
      expectV6Addresses(p);
    }
  }
}

// Cutting a valid frame anywhere (both lengths) must give a drop status, never a crash or an out-of-bounds
// read.
TEST(PacketParserTest, TruncatedFramesAreDropped) {
  for (const auto& [name, frame] : validFrames()) {
    SCOPED_TRACE(name);
    ParsedPacket full;
    const ParseStatus fullStatus = parse(frame, full);
    ASSERT_TRUE(fullStatus == ParseStatus::kOk || fullStatus == ParseStatus::kFragment);
    for (size_t n = 0; n < frame.size(); ++n) {
      SCOPED_TRACE(n);
      ParsedPacket p;
      const ParseStatus s = parse(frame, p, n, n);
      EXPECT_TRUE(isDrop(s)) << parseStatusName(s);
    }
  }
}

// Only the first `n` bytes contiguous: the parse succeeds iff every header is in them, else it is truncated.
TEST(PacketParserTest, ContiguousShorterThanFrame) {
  for (const auto& [name, frame] : validFrames()) {
    SCOPED_TRACE(name);
    ParsedPacket full;
    const ParseStatus fullStatus = parse(frame, full);
    for (size_t n = 0; n <= frame.size(); ++n) {
      SCOPED_TRACE(n);
      ParsedPacket p;
      const ParseStatus s = parse(frame, p, n, frame.size());
      if (n >= full.payloadOffset) {
        ASSERT_EQ(fullStatus, s) << parseStatusName(s);
        EXPECT_EQ(full.payloadLength, p.payloadLength);
        EXPECT_EQ(full.payloadOffset, p.payloadOffset);
        EXPECT_EQ(full.srcPort, p.srcPort);
        EXPECT_EQ(full.fragmentOffset, p.fragmentOffset);
      } else {
        EXPECT_EQ(0, std::string(parseStatusName(s)).rfind("truncated_", 0)) << parseStatusName(s);
      }
    }
  }
}

TEST(PacketParserTest, ContiguousLongerThanFrameIsBoundedByFrame) {
  // The buffer holds more bytes than the frame: only frameLength counts.
  const Bytes frame = v4Frame(6, tcp(1, 2, 3, 4, 2, 5));
  ParsedPacket p;
  EXPECT_EQ(ParseStatus::kTruncatedEthernet, parse(frame, p, frame.size(), 10));
  EXPECT_EQ(ParseStatus::kBadIpv4TotalLength, parse(frame, p, frame.size(), 40));
}

TEST(PacketParserTest, OutputIsResetBetweenPackets) {
  ParsedPacket p;
  ASSERT_EQ(ParseStatus::kOk,
            parse(cat({eth(0x86dd, {{0x8100, 9}}), ipv6(6, 20), tcp(1, 2, 3, 4, 0xff, 5)}), p));
  ASSERT_EQ(ParseStatus::kArp, parse(cat({eth(0x0806), payload(28)}), p));
  EXPECT_EQ(0, p.vlanCount);
  EXPECT_EQ(0, p.ipVersion);
  EXPECT_EQ(0, p.tcpFlags);
  EXPECT_EQ(0, p.srcAddr[0]);
  EXPECT_EQ(0x0806, p.etherType);
  EXPECT_EQ(14, p.l3Offset);
}

}  // namespace
}  // namespace vgate::dataplane
