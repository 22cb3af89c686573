// IP fragments, judged as the datagram they make: DPDK's reassembler puts each datagram together in the slow
// path, the worker judges it by its real 5-tuple (and L7 facts), and an allowed datagram leaves as fragments
// cut again from what was judged. The receiver never sees a byte the judge did not, so overlapping or
// rewritten fragments cannot change a datagram after its verdict. Before DPDK sees a fragment, the rules of
// RFC 5722 and RFC 1858 are applied here: overlaps drop the datagram, tiny first fragments are dropped, and
// every drop is counted by its cause.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/packet/packet_parser.h"
#include "vgate/counters.h"
#include "vgate/result.h"

struct rte_mbuf;
struct rte_ip_frag_tbl;

namespace vgate::dataplane {

// DPDK's own bound (RTE_LIBRTE_IP_FRAG_MAX_FRAG): a datagram in more fragments is dropped, counted. At a
// 1500-byte MTU that is a datagram of up to about 11.8 KB.
inline constexpr uint16_t kMaxFragmentsPerDatagram = 8;

struct FragmentConfig {
  uint32_t datagrams = 4096;       // datagrams being reassembled at once
  uint64_t timeoutUs = 2'000'000;  // a datagram not complete by then is dropped
  int socket = -1;
};

#define VGATE_FRAGMENT_COUNTERS(X)                                                                           \
  X(fragments, counter, "packets", "IP fragments received")                                                  \
  X(fragmentsReassembled, counter, "datagrams", "datagrams completed from their fragments and judged whole") \
  X(fragmentsSent, counter, "packets", "fragments sent on, cut again from a judged datagram")                \
  X(fragmentsTinyFirst, counter, "packets",                                                                  \
    "first fragments dropped: too short to hold their transport header (RFC 1858)")                          \
  X(fragmentsOverlapping, counter, "packets",                                                                \
    "fragments dropped with their datagram: they overlap another fragment of it (RFC 5722)")                 \
  X(fragmentsDuplicate, counter, "packets", "fragments dropped: an exact copy of one already held")          \
  X(fragmentsTooMany, counter, "packets", "fragments dropped: their datagram has more than 8")               \
  X(fragmentsMalformed, counter, "packets",                                                                  \
    "fragments dropped: empty, not a multiple of 8 bytes before the last, or past 65535 bytes")              \
  X(fragmentsUnsupported, counter, "packets", "IPv6 fragments whose fragment header follows other headers")  \
  X(fragmentsExpired, counter, "packets",                                                                    \
    "fragments the reassembler dropped: their datagram timed out, or no room was left for it")               \
  X(fragmentsNoBuffer, counter, "datagrams", "judged datagrams that could not be cut again: no free mbuf")

struct FragmentCounters {
  VGATE_COUNTER_MEMBERS(FragmentCounters, VGATE_FRAGMENT_COUNTERS)
};

// A completed datagram and what its fragments were on the wire. Plain data (no initializers): a worker keeps
// a burst's worth on its stack.
struct ReassembledDatagram {
  rte_mbuf* mbuf;            // the datagram: the first fragment's headers, then all the data (a chain)
  uint32_t frames;           // its fragments
  uint64_t frameBytes;       // their frame lengths, summed
  uint32_t largestIpLength;  // the longest fragment's IP packet: the size the sender's path takes
  uint32_t id;               // the IP identification (IPv6: of the fragment header)
  // Filled by the caller from its parse of the datagram, for refragment().
  uint32_t ipLength;
  uint16_t l3Offset;
  uint16_t l4Offset;
  uint8_t ipVersion;

  void setHeaders(const ParsedPacket& parsed) {
    ipLength = parsed.ipLength;
    l3Offset = parsed.l3Offset;
    l4Offset = parsed.l4Offset;
    ipVersion = parsed.ipVersion;
  }
};

class FragmentReassembler {
 public:
  static Result<std::unique_ptr<FragmentReassembler>> create(const FragmentConfig& config);
  ~FragmentReassembler();
  FragmentReassembler(const FragmentReassembler&) = delete;
  FragmentReassembler& operator=(const FragmentReassembler&) = delete;

  // Takes the fragment `mbuf` (parsed as `packet`, status kFragment). True when it completed its datagram,
  // which is then in `out`; otherwise the mbuf is held until its datagram completes or times out, or dropped
  // (counted).
  bool add(rte_mbuf* mbuf, const ParsedPacket& packet, uint64_t nowUs, ReassembledDatagram& out);

  // Cuts a judged datagram (from add, its headers set) into fragments no longer than its longest original,
  // each one flat mbuf with the datagram's own link-layer header, and frees the datagram. Returns how many it
  // wrote to `out` (at most kMaxFragmentsPerDatagram), 0 when out of mbufs (counted).
  uint16_t refragment(const ReassembledDatagram& datagram, rte_mbuf** out);

  const FragmentCounters& counters() const { return counters_; }

 private:
  struct Account;
  explicit FragmentReassembler(const FragmentConfig& config);
  Account* accountFor(const ParsedPacket& packet, uint64_t nowUs);
  // Applies the overlap, size and count rules; false when the fragment must be dropped.
  bool admit(Account& account, const ParsedPacket& packet, const rte_mbuf* mbuf);
  rte_mbuf* reassemble(rte_mbuf* mbuf, const ParsedPacket& packet, uint64_t nowUs);

  FragmentConfig config_;
  rte_ip_frag_tbl* table_ = nullptr;
  std::unique_ptr<Account[]> accounts_;
  uint32_t buckets_ = 0;
  FragmentCounters counters_;
};

}  // namespace vgate::dataplane
