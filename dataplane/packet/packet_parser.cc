// One-pass, bounds-checked parser of Ethernet/VLAN/IPv4/IPv6/L4 headers; runs once per received packet.
// Every read goes through a length check against the contiguous bytes first, and loads use memcpy
// (UBSan-clean).
#include "dataplane/packet/packet_parser.h"

#include <cstring>

namespace vgate::dataplane {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeQinQ = 0x88a8;
constexpr uint16_t kEtherTypeQinQOld = 0x9100;  // pre-standard QinQ, still emitted by some switches

constexpr uint32_t kEthernetHeaderLength = 14;
constexpr uint32_t kVlanTagLength = 4;
constexpr uint32_t kIpv4MinHeaderLength = 20;
constexpr uint32_t kIpv6HeaderLength = 40;
constexpr uint32_t kTcpMinHeaderLength = 20;
constexpr uint32_t kUdpHeaderLength = 8;
constexpr uint32_t kIcmpHeaderLength = 8;
constexpr uint32_t kSctpCommonHeaderLength = 12;
constexpr uint32_t kIpv6FragmentHeaderLength = 8;

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint8_t kProtoNoNextHeader = 59;
constexpr uint8_t kProtoDestinationOptions = 60;
constexpr uint8_t kProtoSctp = 132;

inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return __builtin_bswap16(v);
}

inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return __builtin_bswap32(v);
}

// Echo request and reply, ICMP or ICMPv6: the messages whose identifier names a flow.
inline bool isIcmpEcho(uint8_t protocol, uint8_t type) {
  return protocol == kProtoIcmp ? (type == 8 || type == 0) : (type == 128 || type == 129);
}

inline bool isIpv6ExtensionHeader(uint8_t nextHeader) {
  return nextHeader == kProtoHopByHop || nextHeader == kProtoRouting ||
         nextHeader == kProtoDestinationOptions || nextHeader == kProtoFragment || nextHeader == kProtoAh;
}

// The length of an extension header other than the fragment header (always 8) from its first 8 bytes at `h`.
inline uint32_t ipv6ExtensionLength(uint8_t nextHeader, const uint8_t* h) {
  return nextHeader == kProtoAh ? (static_cast<uint32_t>(h[1]) + 2) * 4
                                : (static_cast<uint32_t>(h[1]) + 1) * 8;
}

inline bool isVlanEtherType(uint16_t etherType) {
  return etherType == kEtherTypeVlan || etherType == kEtherTypeQinQ || etherType == kEtherTypeQinQOld;
}

// Reads the L4 header at out.l4Offset. `ipEnd` is the end of the IP packet (l3Offset + ipLength, already
// checked against frameLength) and `avail` the readable bytes: a header that does not fit in the IP packet is
// a lie or a truncation, one that fits the packet but not the contiguous bytes is truncated.
ParseStatus parseL4(const uint8_t* frame, uint32_t avail, uint32_t ipEnd, ParsedPacket& out) {
  const uint32_t l4 = out.l4Offset;
  const uint32_t ipPayload = ipEnd - l4;  // callers guarantee l4 <= ipEnd
  const uint32_t readable = avail > l4 ? avail - l4 : 0;
  const uint32_t headerRoom = ipPayload < readable ? ipPayload : readable;
  const uint8_t* p = frame + l4;
  uint32_t headerLength = 0;

  switch (out.protocol) {
    case kProtoTcp: {
      if (headerRoom < kTcpMinHeaderLength) return ParseStatus::kTruncatedTcp;
      headerLength = static_cast<uint32_t>(p[12] >> 4) * 4;
      if (headerLength < kTcpMinHeaderLength || headerLength > ipPayload)
        return ParseStatus::kBadTcpHeaderLength;
      if (headerLength > readable) return ParseStatus::kTruncatedTcp;
      out.srcPort = load16(p);
      out.dstPort = load16(p + 2);
      out.tcpSeq = load32(p + 4);
      out.tcpAck = load32(p + 8);
      out.tcpFlags = p[13];
      out.tcpWindow = load16(p + 14);
      out.payloadOffset = static_cast<uint16_t>(l4 + headerLength);
      out.payloadLength = ipPayload - headerLength;
      return ParseStatus::kOk;
    }
    case kProtoUdp: {
      if (headerRoom < kUdpHeaderLength) return ParseStatus::kTruncatedUdp;
      const uint32_t udpLength = load16(p + 4);
      // Trailing bytes after the UDP length (inside the IP packet) are not payload, like Ethernet padding.
      if (udpLength < kUdpHeaderLength || udpLength > ipPayload) return ParseStatus::kBadUdpLength;
      out.srcPort = load16(p);
      out.dstPort = load16(p + 2);
      out.payloadOffset = static_cast<uint16_t>(l4 + kUdpHeaderLength);
      out.payloadLength = udpLength - kUdpHeaderLength;
      return ParseStatus::kOk;
    }
    case kProtoIcmp:
    case kProtoIcmpv6: {
      if (headerRoom < kIcmpHeaderLength) return ParseStatus::kTruncatedIcmp;
      out.icmpType = p[0];
      out.icmpCode = p[1];
      const bool echo = isIcmpEcho(out.protocol, p[0]);
      // Request and reply carry the same identifier, so putting it in both ports gives both one flow key.
      const uint16_t identifier = echo ? load16(p + 4) : 0;
      out.srcPort = identifier;
      out.dstPort = identifier;
      headerLength = kIcmpHeaderLength;
      break;
    }
    case kProtoSctp: {
      if (headerRoom < kSctpCommonHeaderLength) return ParseStatus::kTruncatedSctp;
      out.srcPort = load16(p);
      out.dstPort = load16(p + 2);
      headerLength = kSctpCommonHeaderLength;
      break;
    }
    case kProtoNoNextHeader:
      // Nothing follows; bytes after it (if any) must be ignored (RFC 8200 4.7).
      out.payloadOffset = static_cast<uint16_t>(l4);
      out.payloadLength = 0;
      return ParseStatus::kOk;
    default:
      break;
  }
  out.payloadOffset = static_cast<uint16_t>(l4 + headerLength);
  out.payloadLength = ipPayload - headerLength;
  return ParseStatus::kOk;
}

ParseStatus parseIpv4(const uint8_t* frame, uint32_t avail, uint32_t frameLength, ParsedPacket& out) {
  const uint32_t l3 = out.l3Offset;
  if (avail - l3 < kIpv4MinHeaderLength) return ParseStatus::kTruncatedIpv4;
  const uint8_t* p = frame + l3;
  if ((p[0] >> 4) != 4) return ParseStatus::kBadIpv4Version;
  const uint32_t headerLength = static_cast<uint32_t>(p[0] & 0x0f) * 4;
  if (headerLength < kIpv4MinHeaderLength) return ParseStatus::kBadIpv4HeaderLength;
  const uint32_t totalLength = load16(p + 2);
  // Bytes past totalLength are Ethernet padding (frames shorter than 60 bytes) and are not part of the
  // packet.
  if (totalLength < headerLength || totalLength > frameLength - l3) return ParseStatus::kBadIpv4TotalLength;
  if (headerLength > avail - l3) return ParseStatus::kTruncatedIpv4;

  out.ipVersion = 4;
  out.ipLength = totalLength;
  out.ttl = p[8];
  out.protocol = p[9];
  std::memcpy(out.srcAddr, p + 12, 4);
  std::memcpy(out.dstAddr, p + 16, 4);
  out.l4Offset = static_cast<uint16_t>(l3 + headerLength);

  const uint16_t fragmentField = load16(p + 6);
  const uint16_t fragmentOffset = static_cast<uint16_t>((fragmentField & 0x1fff) * 8);
  const bool moreFragments = (fragmentField & 0x2000) != 0;
  if (fragmentOffset != 0 || moreFragments) {
    out.fragmentId = load16(p + 4);
    out.fragmentOffset = fragmentOffset;
    out.moreFragments = moreFragments;
    out.payloadOffset = out.l4Offset;
    out.payloadLength = totalLength - headerLength;
    return ParseStatus::kFragment;
  }
  return parseL4(frame, avail, l3 + totalLength, out);
}

ParseStatus parseIpv6(const uint8_t* frame, uint32_t avail, uint32_t frameLength, ParsedPacket& out) {
  const uint32_t l3 = out.l3Offset;
  if (avail - l3 < kIpv6HeaderLength) return ParseStatus::kTruncatedIpv6;
  const uint8_t* p = frame + l3;
  if ((p[0] >> 4) != 6) return ParseStatus::kBadIpv6Version;
  const uint32_t ipLength = kIpv6HeaderLength + load16(p + 4);
  if (ipLength > frameLength - l3) return ParseStatus::kBadIpv6PayloadLength;

  out.ipVersion = 6;
  out.ipLength = ipLength;
  out.ttl = p[7];
  std::memcpy(out.srcAddr, p + 8, 16);
  std::memcpy(out.dstAddr, p + 24, 16);

  const uint32_t ipEnd = l3 + ipLength;
  uint8_t nextHeader = p[6];
  uint32_t offset = l3 + kIpv6HeaderLength;
  for (int count = 0;; ++count) {
    if (!isIpv6ExtensionHeader(nextHeader)) break;
    if (count == kMaxIpv6ExtensionHeaders) return ParseStatus::kTooManyIpv6ExtensionHeaders;
    // Hop-by-hop is only valid right after the fixed header (RFC 8200 4.3).
    if (nextHeader == kProtoHopByHop && count != 0) return ParseStatus::kBadIpv6ExtensionHeader;
    // Every extension header is at least 8 bytes (the fragment header exactly 8); read the first 8 then size
    // it.
    if (ipEnd - offset < 8) return ParseStatus::kBadIpv6ExtensionHeader;
    if (avail < offset + 8) return ParseStatus::kTruncatedIpv6;
    const uint8_t* h = frame + offset;
    if (nextHeader == kProtoFragment) {
      const uint16_t field = load16(h + 2);
      const uint16_t fragmentOffset = static_cast<uint16_t>(field & 0xfff8);  // 13 bits in units of 8 bytes
      const bool moreFragments = (field & 0x0001) != 0;
      nextHeader = h[0];
      offset += kIpv6FragmentHeaderLength;
      // An atomic fragment (offset 0, M=0) is a whole packet (RFC 6946): parse through it.
      if (fragmentOffset != 0 || moreFragments) {
        out.protocol = nextHeader;
        out.l4Offset = static_cast<uint16_t>(offset);
        out.fragmentId = load32(h + 4);
        out.fragmentOffset = fragmentOffset;
        out.moreFragments = moreFragments;
        out.payloadOffset = out.l4Offset;
        out.payloadLength = ipEnd - offset;
        return ParseStatus::kFragment;
      }
      continue;
    }
    const uint32_t length = ipv6ExtensionLength(nextHeader, h);
    if (ipEnd - offset < length) return ParseStatus::kBadIpv6ExtensionHeader;
    if (avail - offset < length) return ParseStatus::kTruncatedIpv6;
    nextHeader = h[0];
    offset += length;
  }
  out.protocol = nextHeader;
  out.l4Offset = static_cast<uint16_t>(offset);
  return parseL4(frame, avail, ipEnd, out);
}

bool isIcmpError(uint8_t protocol, uint8_t type) {
  if (protocol == kProtoIcmp) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return protocol == kProtoIcmpv6 && type >= 1 && type <= 4;
}

// The quoted packet's L4 identity: ports, or an echo's identifier. `p` has `room` bytes.
bool readQuotedPorts(const uint8_t* p, uint32_t room, ParsedPacket& quoted) {
  switch (quoted.protocol) {
    case kProtoTcp:
    case kProtoUdp:
    case kProtoSctp:
      if (room < 4) return false;
      quoted.srcPort = load16(p);
      quoted.dstPort = load16(p + 2);
      return true;
    case kProtoIcmp:
    case kProtoIcmpv6: {
      if (room < kIcmpHeaderLength) return false;
      if (!isIcmpEcho(quoted.protocol, p[0]))
        return false;  // errors are not sent about errors; other messages have no flow of ours
      quoted.icmpType = p[0];
      quoted.srcPort = quoted.dstPort = load16(p + 4);
      return true;
    }
    default:
      return false;  // the flow key of other protocols has no ports: the addresses alone would do, but
                     // nothing here keeps such flows apart from unrelated ones
  }
}

}  // namespace

bool parseIcmpErrorQuote(const uint8_t* frame, uint32_t contiguousLength, const ParsedPacket& packet,
                         ParsedPacket& quoted) {
  if (!isIcmpError(packet.protocol, packet.icmpType)) return false;
  const uint32_t start = static_cast<uint32_t>(packet.l4Offset) + kIcmpHeaderLength;
  const uint32_t ipEnd = static_cast<uint32_t>(packet.l3Offset) + packet.ipLength;
  const uint32_t end = ipEnd < contiguousLength ? ipEnd : contiguousLength;
  if (start >= end) return false;
  const uint8_t* p = frame + start;
  uint32_t room = end - start;
  quoted = ParsedPacket{};
  quoted.vlanCount = packet.vlanCount;
  for (int i = 0; i < kMaxVlanTags; ++i) quoted.vlanIds[i] = packet.vlanIds[i];
  quoted.etherType = packet.etherType;
  if (packet.ipVersion == 4) {
    if (room < kIpv4MinHeaderLength || (p[0] >> 4) != 4) return false;
    const uint32_t headerLength = static_cast<uint32_t>(p[0] & 0x0f) * 4;
    if (headerLength < kIpv4MinHeaderLength || headerLength > room) return false;
    if ((load16(p + 6) & 0x1fff) != 0) return false;  // a later fragment has no ports
    quoted.ipVersion = 4;
    quoted.protocol = p[9];
    std::memcpy(quoted.srcAddr, p + 12, 4);
    std::memcpy(quoted.dstAddr, p + 16, 4);
    return readQuotedPorts(p + headerLength, room - headerLength, quoted);
  }
  if (room < kIpv6HeaderLength || (p[0] >> 4) != 6) return false;
  quoted.ipVersion = 6;
  std::memcpy(quoted.srcAddr, p + 8, 16);
  std::memcpy(quoted.dstAddr, p + 24, 16);
  uint8_t nextHeader = p[6];
  uint32_t offset = kIpv6HeaderLength;
  for (int count = 0; count < kMaxIpv6ExtensionHeaders; ++count) {
    if (!isIpv6ExtensionHeader(nextHeader)) break;
    if (room - offset < 8) return false;
    const uint8_t* h = p + offset;
    uint32_t length = 0;
    if (nextHeader == kProtoFragment) {
      if ((load16(h + 2) & 0xfff8) != 0) return false;  // a later fragment has no ports
      length = kIpv6FragmentHeaderLength;
    } else {
      length = ipv6ExtensionLength(nextHeader, h);
    }
    if (room - offset < length) return false;
    nextHeader = h[0];
    offset += length;
  }
  quoted.protocol = nextHeader;
  return readQuotedPorts(p + offset, room - offset, quoted);
}

const char* parseStatusName(ParseStatus status) {
  switch (status) {
    case ParseStatus::kOk:
      return "ok";
    case ParseStatus::kArp:
      return "arp";
    case ParseStatus::kOtherEthertype:
      return "other_ethertype";
    case ParseStatus::kFragment:
      return "fragment";
    case ParseStatus::kTruncatedEthernet:
      return "truncated_ethernet";
    case ParseStatus::kTooManyVlanTags:
      return "too_many_vlan_tags";
    case ParseStatus::kTruncatedIpv4:
      return "truncated_ipv4";
    case ParseStatus::kBadIpv4Version:
      return "bad_ipv4_version";
    case ParseStatus::kBadIpv4HeaderLength:
      return "bad_ipv4_header_length";
    case ParseStatus::kBadIpv4TotalLength:
      return "bad_ipv4_total_length";
    case ParseStatus::kTruncatedIpv6:
      return "truncated_ipv6";
    case ParseStatus::kBadIpv6PayloadLength:
      return "bad_ipv6_payload_length";
    case ParseStatus::kBadIpv6ExtensionHeader:
      return "bad_ipv6_extension_header";
    case ParseStatus::kTooManyIpv6ExtensionHeaders:
      return "too_many_ipv6_extension_headers";
    case ParseStatus::kTruncatedTcp:
      return "truncated_tcp";
    case ParseStatus::kBadTcpHeaderLength:
      return "bad_tcp_header_length";
    case ParseStatus::kTruncatedUdp:
      return "truncated_udp";
    case ParseStatus::kBadUdpLength:
      return "bad_udp_length";
    case ParseStatus::kTruncatedIcmp:
      return "truncated_icmp";
    case ParseStatus::kTruncatedSctp:
      return "truncated_sctp";
    case ParseStatus::kBadIpv6Version:
      return "bad_ipv6_version";
    case ParseStatus::kCount:
      break;
  }
  return "unknown";
}

ParseStatus parsePacket(const uint8_t* frame, uint32_t contiguousLength, uint32_t frameLength,
                        ParsedPacket& out) {
  out = ParsedPacket{};
  // Bytes past frameLength are not part of the frame even if the buffer holds them.
  const uint32_t avail = contiguousLength < frameLength ? contiguousLength : frameLength;
  if (avail < kEthernetHeaderLength) return ParseStatus::kTruncatedEthernet;

  uint32_t offset = 12;
  uint16_t etherType = load16(frame + offset);
  while (isVlanEtherType(etherType)) {
    if (out.vlanCount == kMaxVlanTags) return ParseStatus::kTooManyVlanTags;
    // The tag (TCI) plus the next ethertype; the 14-byte check above already covers the first TPID.
    if (avail - offset < 2 + kVlanTagLength) return ParseStatus::kTruncatedEthernet;
    uint16_t tci = load16(frame + offset + 2);
    if (out.vlanCount == 0) out.outerVlanPcp = static_cast<uint8_t>(tci >> 13);
    out.vlanIds[out.vlanCount++] = tci & 0x0fff;
    offset += kVlanTagLength;
    etherType = load16(frame + offset);
  }
  out.etherType = etherType;
  out.l3Offset = static_cast<uint16_t>(offset + 2);

  switch (etherType) {
    case kEtherTypeIpv4:
      return parseIpv4(frame, avail, frameLength, out);
    case kEtherTypeIpv6:
      return parseIpv6(frame, avail, frameLength, out);
    case kEtherTypeArp:
      return ParseStatus::kArp;
    default:
      return ParseStatus::kOtherEthertype;
  }
}

}  // namespace vgate::dataplane
