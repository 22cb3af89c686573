// Bounded, allocation-free parser of one frame's Ethernet, VLAN, IP and L4 headers: the first step of every
// packet.
#pragma once

#include <cstdint>

namespace vgate::dataplane {

// Why the parser stopped. Every value except kOk, kArp, kOtherEthertype and kFragment is a drop reason; the
// names returned by parseStatusName() are stable metric labels.
enum class ParseStatus : uint8_t {
  kOk = 0,          // an IP packet whose L4 header (if TCP/UDP/ICMP/ICMPv6/SCTP) was read whole
  kArp,             // ARP: passed through, not inspected
  kOtherEthertype,  // neither IP nor ARP (LLDP, ...): passed through
  kFragment,        // an IPv4 or IPv6 fragment: L3 fields and fragment fields set, L4 needs reassembly
  kTruncatedEthernet,
  kTooManyVlanTags,  // more than kMaxVlanTags 802.1Q/802.1ad tags
  kTruncatedIpv4,
  kBadIpv4Version,
  kBadIpv4HeaderLength,
  kBadIpv4TotalLength,
  kTruncatedIpv6,
  kBadIpv6PayloadLength,
  kBadIpv6ExtensionHeader,
  kTooManyIpv6ExtensionHeaders,
  kTruncatedTcp,
  kBadTcpHeaderLength,
  kTruncatedUdp,
  kBadUdpLength,
  kTruncatedIcmp,
  kTruncatedSctp,
  kBadIpv6Version,  // the IPv6 ethertype with a version nibble other than 6 (appended: keeps earlier values)
  kCount
};

const char* parseStatusName(ParseStatus status);
inline constexpr int kParseStatusCount = static_cast<int>(ParseStatus::kCount);

// TCP flags as ParsedPacket::tcpFlags holds them.
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

inline constexpr int kMaxVlanTags = 2;
inline constexpr int kMaxIpv6ExtensionHeaders = 8;

struct ParsedPacket {
  uint16_t l3Offset = 0;       // from the start of the frame
  uint16_t l4Offset = 0;       // after IPv4 options / IPv6 extension headers
  uint16_t payloadOffset = 0;  // first byte after the L4 header
  // payloadLength: UDP uses the UDP length; a fragment, its data after the IP headers; next header 59: 0.
  uint32_t payloadLength = 0;  // L4 payload bytes as the IP length fields say (checked against frameLength)
  uint32_t ipLength = 0;       // IPv4 total length, or IPv6 40 + payload length
  uint16_t etherType = 0;      // innermost ethertype, host order
  uint16_t vlanIds[kMaxVlanTags] = {};  // outermost first, VID only (12 bits)
  uint8_t vlanCount = 0;
  uint8_t outerVlanPcp = 0;  // the outermost tag's priority bits (live: bit 0 is the port tag's side)
  uint8_t ipVersion = 0;     // 4 or 6; 0 when not IP
  uint8_t protocol = 0;      // IPPROTO_* of the L4 header (after IPv6 extension headers)
  uint8_t ttl = 0;           // IPv4 TTL or IPv6 hop limit
  uint8_t srcAddr[16] = {};  // IPv4: first 4 bytes, the rest zero. Network byte order.
  uint8_t dstAddr[16] = {};
  uint16_t srcPort = 0;  // host order. ICMP/ICMPv6 echo: the identifier in both; other ICMP: 0 in both
  uint16_t dstPort = 0;
  uint8_t tcpFlags = 0;  // FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80
  uint32_t tcpSeq = 0;   // host order
  uint32_t tcpAck = 0;
  uint16_t tcpWindow = 0;
  uint8_t icmpType = 0;
  uint8_t icmpCode = 0;
  // Fragments (status kFragment): offset in bytes of this fragment's data, the IP identification, and MF.
  uint32_t fragmentId = 0;
  uint16_t fragmentOffset = 0;
  bool moreFragments = false;
};

// Parses the headers at `frame`. `contiguousLength` bytes are readable at `frame` (an mbuf's first segment);
// `frameLength` is the whole frame (all segments). Headers must lie within contiguousLength; the IP length
// fields are checked against frameLength. Never reads outside [frame, frame + contiguousLength), never
// allocates.
ParseStatus parsePacket(const uint8_t* frame, uint32_t contiguousLength, uint32_t frameLength,
                        ParsedPacket& out);

// ICMP and ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter problem, and
// the ICMPv4 redirect and source quench) quote the head of the packet that caused them. For such a `packet`
// (parsed by parsePacket from `frame`), fills `quoted` with the quoted packet's IP version, protocol,
// addresses and ports (an echo: its identifier in both, as parsePacket does) and the outer packet's VLAN
// tags, so that buildFlowKey gives the key of the flow the error is about. False when `packet` is no such
// error, or its quote is too short or malformed to name a flow (a non-first fragment, an ICMP error quoting
// another error). Reads only within the ICMP message and the contiguous bytes; never allocates.
bool parseIcmpErrorQuote(const uint8_t* frame, uint32_t contiguousLength, const ParsedPacket& packet,
                         ParsedPacket& quoted);

}  // namespace vgate::dataplane
