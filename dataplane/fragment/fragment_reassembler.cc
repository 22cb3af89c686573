// Fragment admission, reassembly (DPDK's ip_frag) and cutting judged datagrams again: see
// fragment_reassembler.h, and DESIGN.md "Enforcement integrity" for why datagrams are cut again rather than
// their original fragments forwarded.
#include "dataplane/fragment/fragment_reassembler.h"

#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

namespace vgate::dataplane {

namespace {

constexpr uint32_t kWays = 8;  // accounts per bucket, as DPDK's own table
constexpr uint32_t kIpv6HeaderLength = 40;
constexpr uint32_t kIpv6FragmentHeaderLength = 8;
constexpr uint32_t kMaxDatagramPayload = 65535;

static_assert(kMaxFragmentsPerDatagram == RTE_LIBRTE_IP_FRAG_MAX_FRAG, "DPDK's bound is the datagram's");

uint32_t hashOf(const ParsedPacket& packet) {
  uint32_t hash = packet.fragmentId * 0x9e3779b1u;
  for (int i = 0; i < 16; i += 4) {
    uint32_t src, dst;
    std::memcpy(&src, packet.srcAddr + i, 4);
    std::memcpy(&dst, packet.dstAddr + i, 4);
    hash = (hash ^ src) * 0x85ebca6bu;
    hash = (hash ^ dst) * 0xc2b2ae35u;
  }
  return hash ^ (hash >> 15);
}

// Copies [offset, offset + length) of a (possibly chained) mbuf to `to`.
bool copyOut(const rte_mbuf* mbuf, uint32_t offset, uint32_t length, uint8_t* to) {
  const void* from = rte_pktmbuf_read(mbuf, offset, length, to);
  if (from == nullptr) return false;
  if (from != to) std::memcpy(to, from, length);
  return true;
}

// The bytes a first fragment must carry: its whole transport header (RFC 1858, RFC 7112), so that no later
// fragment can supply or rewrite the ports and flags the verdict rests on.
uint32_t transportHeaderLength(const ParsedPacket& packet, const rte_mbuf* mbuf) {
  switch (packet.protocol) {
    case IPPROTO_TCP: {
      uint8_t dataOffset = 0;
      if (packet.payloadLength < 13 || !copyOut(mbuf, packet.l4Offset + 12u, 1, &dataOffset)) return 20;
      return std::max<uint32_t>(20, static_cast<uint32_t>(dataOffset >> 4) * 4);
    }
    case IPPROTO_UDP:
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return 8;
    case IPPROTO_SCTP:
      return 12;
    case IPPROTO_HOPOPTS:
    case IPPROTO_ROUTING:
    case IPPROTO_DSTOPTS:
    case IPPROTO_AH:
      return 8;  // an extension header's first bytes; the rest of the chain is checked once reassembled
    default:
      return 1;
  }
}

}  // namespace

struct FragmentReassembler::Account {
  uint8_t src[16];
  uint8_t dst[16];
  uint32_t id;
  uint8_t ipVersion;
  bool used;
  bool poisoned;  // dropped: every later fragment of it is dropped too, until it times out
  uint8_t pieces;
  uint32_t largestIpLength;
  uint64_t firstUs;
  uint64_t frameBytes;
  uint16_t offset[kMaxFragmentsPerDatagram];
  uint16_t length[kMaxFragmentsPerDatagram];
};

Result<std::unique_ptr<FragmentReassembler>> FragmentReassembler::create(const FragmentConfig& config) {
  std::unique_ptr<FragmentReassembler> reassembler(new FragmentReassembler(config));
  uint32_t buckets = 16;
  while (buckets * kWays < config.datagrams && buckets < (1u << 20)) buckets <<= 1;
  reassembler->buckets_ = buckets;
  reassembler->accounts_ = std::make_unique<Account[]>(static_cast<size_t>(buckets) * kWays);
  // The table's clock is whatever the caller passes as "cycles": microseconds of packet time, so that
  // replayed captures age fragments in capture time.
  reassembler->table_ =
      rte_ip_frag_table_create(buckets, kWays, buckets * kWays, config.timeoutUs, config.socket);
  if (reassembler->table_ == nullptr) return makeError(ENOMEM, "cannot create the IP fragment table");
  return reassembler;
}

FragmentReassembler::FragmentReassembler(const FragmentConfig& config) : config_(config) {}

FragmentReassembler::~FragmentReassembler() {
  if (table_ != nullptr) rte_ip_frag_table_destroy(table_);
}

FragmentReassembler::Account* FragmentReassembler::accountFor(const ParsedPacket& packet, uint64_t nowUs) {
  Account* bucket = &accounts_[static_cast<size_t>(hashOf(packet) & (buckets_ - 1)) * kWays];
  Account* free = nullptr;
  Account* oldest = bucket;
  for (uint32_t way = 0; way < kWays; ++way) {
    Account& account = bucket[way];
    bool live = account.used && nowUs - account.firstUs <= config_.timeoutUs;
    if (live && account.id == packet.fragmentId && account.ipVersion == packet.ipVersion &&
        std::memcmp(account.src, packet.srcAddr, 16) == 0 &&
        std::memcmp(account.dst, packet.dstAddr, 16) == 0)
      return &account;
    if (!live && free == nullptr) free = &account;
    if (account.firstUs < oldest->firstUs) oldest = &account;
  }
  // A full bucket gives up its oldest account: only the accounting of that datagram is lost (DPDK's table
  // still holds its fragments and times them out).
  Account* account = free != nullptr ? free : oldest;
  std::memset(account, 0, sizeof(*account));
  std::memcpy(account->src, packet.srcAddr, 16);
  std::memcpy(account->dst, packet.dstAddr, 16);
  account->id = packet.fragmentId;
  account->ipVersion = packet.ipVersion;
  account->used = true;
  account->firstUs = nowUs;
  return account;
}

bool FragmentReassembler::admit(Account& account, const ParsedPacket& packet, const rte_mbuf* mbuf) {
  if (account.poisoned) {
    ++counters_.fragmentsOverlapping;
    return false;
  }
  uint32_t offset = packet.fragmentOffset;
  uint32_t length = packet.payloadLength;
  if (length == 0 || (packet.moreFragments && length % 8 != 0) || offset + length > kMaxDatagramPayload) {
    ++counters_.fragmentsMalformed;
    return false;
  }
  if (offset == 0 && length < transportHeaderLength(packet, mbuf)) {
    ++counters_.fragmentsTinyFirst;
    account.poisoned = true;
    return false;
  }
  for (uint8_t i = 0; i < account.pieces; ++i) {
    if (offset == account.offset[i] && length == account.length[i]) {
      ++counters_.fragmentsDuplicate;  // the first copy stays: it is what will be judged and sent on
      return false;
    }
    if (offset < uint32_t{account.offset[i]} + account.length[i] && account.offset[i] < offset + length) {
      ++counters_.fragmentsOverlapping;
      account.poisoned = true;
      return false;
    }
  }
  if (account.pieces == kMaxFragmentsPerDatagram) {
    ++counters_.fragmentsTooMany;
    account.poisoned = true;
    return false;
  }
  account.offset[account.pieces] = static_cast<uint16_t>(offset);
  account.length[account.pieces] = static_cast<uint16_t>(length);
  ++account.pieces;
  account.largestIpLength = std::max(account.largestIpLength, packet.ipLength);
  account.frameBytes += mbuf->pkt_len;
  return true;
}

rte_mbuf* FragmentReassembler::reassemble(rte_mbuf* mbuf, const ParsedPacket& packet, uint64_t nowUs) {
  rte_ip_frag_death_row deathRow;
  deathRow.cnt = 0;
  rte_mbuf* result = nullptr;
  mbuf->l2_len = packet.l3Offset;
  if (packet.ipVersion == 4) {
    auto* header = rte_pktmbuf_mtod_offset(mbuf, rte_ipv4_hdr*, packet.l3Offset);
    mbuf->l3_len = rte_ipv4_hdr_len(header);
    result = rte_ipv4_frag_reassemble_packet(table_, &deathRow, mbuf, nowUs, header);
  } else {
    auto* header = rte_pktmbuf_mtod_offset(mbuf, rte_ipv6_hdr*, packet.l3Offset);
    mbuf->l3_len = sizeof(rte_ipv6_hdr) + sizeof(rte_ipv6_fragment_ext);
    auto* fragmentHeader = rte_ipv6_frag_get_ipv6_fragment_header(header);
    result = rte_ipv6_frag_reassemble_packet(table_, &deathRow, mbuf, nowUs, header, fragmentHeader);
  }
  counters_.fragmentsExpired += deathRow.cnt;
  rte_ip_frag_free_death_row(&deathRow, 0);
  return result;
}

bool FragmentReassembler::add(rte_mbuf* mbuf, const ParsedPacket& packet, uint64_t nowUs,
                              ReassembledDatagram& out) {
  ++counters_.fragments;
  // DPDK reassembles only a fragment header right after the fixed header; one behind other extension headers
  // is dropped rather than misread.
  if (packet.ipVersion == 6 &&
      packet.l4Offset != packet.l3Offset + kIpv6HeaderLength + kIpv6FragmentHeaderLength) {
    ++counters_.fragmentsUnsupported;
    rte_pktmbuf_free(mbuf);
    return false;
  }
  Account* account = accountFor(packet, nowUs);
  if (!admit(*account, packet, mbuf)) {
    rte_pktmbuf_free(mbuf);
    return false;
  }
  rte_mbuf* datagram = reassemble(mbuf, packet, nowUs);
  if (datagram == nullptr) return false;
  ++counters_.fragmentsReassembled;
  out.mbuf = datagram;
  out.frames = account->pieces;
  out.frameBytes = account->frameBytes;
  out.largestIpLength = account->largestIpLength;
  out.id = packet.fragmentId;
  account->used = false;
  return true;
}

uint16_t FragmentReassembler::refragment(const ReassembledDatagram& datagram, rte_mbuf** out) {
  rte_mbuf* whole = datagram.mbuf;
  const bool ipv4 = datagram.ipVersion == 4;
  const uint32_t l3 = datagram.l3Offset;
  // IPv4 keeps its header (options too) in every fragment; IPv6 cuts after the fixed header, where the
  // original fragment header was, and adds a fragment header to each piece.
  const uint32_t ipHeader = ipv4 ? static_cast<uint32_t>(datagram.l4Offset - l3) : kIpv6HeaderLength;
  const uint32_t pieceHeader = ipv4 ? ipHeader : kIpv6HeaderLength + kIpv6FragmentHeaderLength;
  const uint32_t dataTotal = datagram.ipLength - ipHeader;
  uint32_t pieceData =
      datagram.largestIpLength > pieceHeader + 8 ? (datagram.largestIpLength - pieceHeader) & ~7u : 8;
  uint32_t pieces = (dataTotal + pieceData - 1) / pieceData;
  if (pieces > kMaxFragmentsPerDatagram) {
    pieceData = ((dataTotal + kMaxFragmentsPerDatagram - 1) / kMaxFragmentsPerDatagram + 7) & ~7u;
    pieces = (dataTotal + pieceData - 1) / pieceData;
  }
  uint8_t nextHeader = 0;
  if (!ipv4 && !copyOut(whole, l3 + 6, 1, &nextHeader)) pieces = 0;
  uint16_t written = 0;
  for (uint32_t piece = 0; piece < pieces; ++piece) {
    uint32_t offset = piece * pieceData;
    uint32_t length = std::min(pieceData, dataTotal - offset);
    bool more = offset + length < dataTotal;
    rte_mbuf* fragment = rte_pktmbuf_alloc(whole->pool);
    uint8_t* frame = fragment ? reinterpret_cast<uint8_t*>(rte_pktmbuf_append(
                                    fragment, static_cast<uint16_t>(l3 + pieceHeader + length)))
                              : nullptr;
    if (frame == nullptr || !copyOut(whole, 0, l3 + ipHeader, frame) ||
        !copyOut(whole, l3 + ipHeader + offset, length, frame + l3 + pieceHeader)) {
      if (fragment != nullptr) rte_pktmbuf_free(fragment);
      for (uint16_t i = 0; i < written; ++i) rte_pktmbuf_free(out[i]);
      written = 0;
      ++counters_.fragmentsNoBuffer;
      break;
    }
    if (ipv4) {
      auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame + l3);
      ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(ipHeader + length));
      ip->fragment_offset =
          rte_cpu_to_be_16(static_cast<uint16_t>((offset >> 3) | (more ? RTE_IPV4_HDR_MF_FLAG : 0)));
      ip->hdr_checksum = 0;
      ip->hdr_checksum = rte_ipv4_cksum(ip);
    } else {
      auto* ip = reinterpret_cast<rte_ipv6_hdr*>(frame + l3);
      ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(kIpv6FragmentHeaderLength + length));
      ip->proto = IPPROTO_FRAGMENT;
      auto* fragmentHeader = reinterpret_cast<rte_ipv6_fragment_ext*>(frame + l3 + kIpv6HeaderLength);
      fragmentHeader->next_header = nextHeader;
      fragmentHeader->reserved = 0;
      fragmentHeader->frag_data = rte_cpu_to_be_16(static_cast<uint16_t>(offset | (more ? 1 : 0)));
      fragmentHeader->id = rte_cpu_to_be_32(datagram.id);
    }
    fragment->port = whole->port;
    out[written++] = fragment;
  }
  counters_.fragmentsSent += written;
  rte_pktmbuf_free(whole);
  return written;
}

}  // namespace vgate::dataplane
