// TCP resets and ICMP port unreachables for refused flows: see reject_reply.h.
#include "dataplane/reply/reject_reply.h"

#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include <algorithm>
#include <cstring>

namespace vgate::dataplane {

namespace {

constexpr uint32_t kIpv4HeaderLength = 20;
constexpr uint32_t kIpv6HeaderLength = 40;
constexpr uint32_t kIcmpHeaderLength = 8;
constexpr uint32_t kIcmpv6MaxQuote = 1280 - 40 - 8;  // the whole error within the IPv6 minimum MTU

// A frame of `length` bytes whose link-layer header is `original`'s, the MAC addresses swapped when it goes
// back to the sender.
uint8_t* startFrame(const rte_mbuf* original, const ParsedPacket& packet, bool toSender, uint32_t length,
                    rte_mempool* pool, rte_mbuf*& out) {
  out = rte_pktmbuf_alloc(pool);
  if (out == nullptr) return nullptr;
  auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(out, static_cast<uint16_t>(length)));
  if (frame == nullptr) {
    rte_pktmbuf_free(out);
    out = nullptr;
    return nullptr;
  }
  const uint8_t* from = rte_pktmbuf_mtod(original, const uint8_t*);
  std::memcpy(frame, from, packet.l3Offset);
  if (toSender) {
    std::memcpy(frame, from + 6, 6);
    std::memcpy(frame + 6, from, 6);
  }
  out->port = original->port;
  return frame;
}

// The IP header of a reply carrying `l4Length` bytes of `protocol`, from `src` to `dst`; returns its length.
uint32_t writeIpHeader(uint8_t* at, const ParsedPacket& packet, const uint8_t* src, const uint8_t* dst,
                       uint8_t protocol, uint32_t l4Length) {
  if (packet.ipVersion == 4) {
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(at);
    std::memset(ip, 0, kIpv4HeaderLength);
    ip->version_ihl = 0x45;
    ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(kIpv4HeaderLength + l4Length));
    ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    ip->time_to_live = 64;
    ip->next_proto_id = protocol;
    std::memcpy(&ip->src_addr, src, 4);
    std::memcpy(&ip->dst_addr, dst, 4);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    return kIpv4HeaderLength;
  }
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(at);
  ip->vtc_flow = rte_cpu_to_be_32(0x60000000u);
  ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4Length));
  ip->proto = protocol;
  ip->hop_limits = 64;
  std::memcpy(ip->src_addr, src, 16);
  std::memcpy(ip->dst_addr, dst, 16);
  return kIpv6HeaderLength;
}

uint16_t transportChecksum(const uint8_t* ipHeader, const uint8_t* l4, uint8_t ipVersion) {
  return ipVersion == 4 ? rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ipHeader), l4)
                        : rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ipHeader), l4);
}

bool isMulticastOrBroadcast(const ParsedPacket& packet, const uint8_t* address) {
  if (packet.ipVersion == 4) {
    return (address[0] & 0xf0) == 0xe0 ||
           (address[0] == 255 && address[1] == 255 && address[2] == 255 && address[3] == 255);
  }
  return address[0] == 0xff;
}

}  // namespace

rte_mbuf* buildTcpReset(const rte_mbuf* original, const ParsedPacket& packet, ResetTo to, rte_mempool* pool) {
  const bool toSender = to == ResetTo::kSender;
  const uint32_t ipHeader = packet.ipVersion == 4 ? kIpv4HeaderLength : kIpv6HeaderLength;
  rte_mbuf* out = nullptr;
  uint8_t* frame = startFrame(original, packet, toSender, packet.l3Offset + ipHeader + 20, pool, out);
  if (frame == nullptr) return nullptr;
  uint8_t* ip = frame + packet.l3Offset;
  writeIpHeader(ip, packet, toSender ? packet.dstAddr : packet.srcAddr,
                toSender ? packet.srcAddr : packet.dstAddr, IPPROTO_TCP, 20);
  auto* tcp = reinterpret_cast<rte_tcp_hdr*>(ip + ipHeader);
  std::memset(tcp, 0, sizeof(*tcp));
  tcp->data_off = 5 << 4;
  if (toSender) {
    // RFC 793's reset for a segment: its sequence number from the segment's ACK, acknowledging all it took.
    uint32_t taken =
        packet.payloadLength + ((packet.tcpFlags & kTcpSyn) ? 1 : 0) + ((packet.tcpFlags & kTcpFin) ? 1 : 0);
    tcp->src_port = rte_cpu_to_be_16(packet.dstPort);
    tcp->dst_port = rte_cpu_to_be_16(packet.srcPort);
    tcp->sent_seq = rte_cpu_to_be_32((packet.tcpFlags & kTcpAck) ? packet.tcpAck : 0);
    tcp->recv_ack = rte_cpu_to_be_32(packet.tcpSeq + taken);
    tcp->tcp_flags = kTcpRst | kTcpAck;
  } else {
    tcp->src_port = rte_cpu_to_be_16(packet.srcPort);
    tcp->dst_port = rte_cpu_to_be_16(packet.dstPort);
    tcp->sent_seq = rte_cpu_to_be_32(packet.tcpSeq);
    tcp->recv_ack = rte_cpu_to_be_32(packet.tcpAck);
    tcp->tcp_flags = static_cast<uint8_t>(kTcpRst | (packet.tcpFlags & kTcpAck));
  }
  tcp->cksum = transportChecksum(ip, reinterpret_cast<const uint8_t*>(tcp), packet.ipVersion);
  return out;
}

rte_mbuf* buildPortUnreachable(const rte_mbuf* original, const ParsedPacket& packet, rte_mempool* pool) {
  if (packet.protocol == IPPROTO_ICMP || packet.protocol == IPPROTO_ICMPV6) return nullptr;
  if (isMulticastOrBroadcast(packet, packet.dstAddr) || isMulticastOrBroadcast(packet, packet.srcAddr))
    return nullptr;
  const bool ipv4 = packet.ipVersion == 4;
  const uint32_t ipHeader = ipv4 ? kIpv4HeaderLength : kIpv6HeaderLength;
  const uint32_t headLength = static_cast<uint32_t>(packet.l4Offset - packet.l3Offset);
  const uint32_t quote =
      ipv4 ? std::min(packet.ipLength, headLength + 8) : std::min(packet.ipLength, kIcmpv6MaxQuote);
  const uint32_t icmpLength = kIcmpHeaderLength + quote;
  rte_mbuf* out = nullptr;
  uint8_t* frame = startFrame(original, packet, true, packet.l3Offset + ipHeader + icmpLength, pool, out);
  if (frame == nullptr) return nullptr;
  uint8_t* ip = frame + packet.l3Offset;
  const uint8_t protocol = ipv4 ? uint8_t{IPPROTO_ICMP} : uint8_t{IPPROTO_ICMPV6};
  writeIpHeader(ip, packet, packet.dstAddr, packet.srcAddr, protocol, icmpLength);
  uint8_t* icmp = ip + ipHeader;
  std::memset(icmp, 0, kIcmpHeaderLength);
  icmp[0] = ipv4 ? 3 : 1;  // destination unreachable
  icmp[1] = ipv4 ? 3 : 4;  // port unreachable
  const void* head = rte_pktmbuf_read(original, packet.l3Offset, quote, icmp + kIcmpHeaderLength);
  if (head == nullptr) {
    rte_pktmbuf_free(out);
    return nullptr;
  }
  if (head != icmp + kIcmpHeaderLength) std::memcpy(icmp + kIcmpHeaderLength, head, quote);
  uint16_t checksum = ipv4 ? static_cast<uint16_t>(~rte_raw_cksum(icmp, icmpLength))
                           : transportChecksum(ip, icmp, packet.ipVersion);
  std::memcpy(icmp + 2, &checksum, 2);
  return out;
}

}  // namespace vgate::dataplane
