// The packets vgate sends of its own when it refuses a flow: a TCP reset to either end of a connection, or an
// ICMP/ICMPv6 port unreachable to the sender of a datagram, as a REJECT target does. Each is built from the
// refused packet, in a fresh flat mbuf, with the packet's own link-layer header (its port tag included) so
// that it leaves the way the caller sends it: back to the sender, or on to the receiver.
#pragma once

#include <cstdint>

#include "dataplane/packet/packet_parser.h"

struct rte_mbuf;
struct rte_mempool;

namespace vgate::dataplane {

enum class ResetTo : uint8_t {
  kSender,    // from the receiver to the packet's sender: its connection ends at once
  kReceiver,  // from the sender on to the packet's receiver, in sequence: the receiver drops its state
};

// A RST (with ACK toward the sender) for the TCP packet `packet` of `original`, or nullptr when out of mbufs.
// Toward the receiver its sequence number is the refused segment's own, the one the receiver waits for (RFC
// 5961 accepts a reset only there); toward the sender it acknowledges everything the packet carried.
rte_mbuf* buildTcpReset(const rte_mbuf* original, const ParsedPacket& packet, ResetTo to, rte_mempool* pool);

// ICMP destination unreachable, port unreachable (ICMPv6: type 1 code 4) to the sender of `packet`, from
// its destination, quoting the packet's head (RFC 792: the IP header and 8 bytes; ICMPv6: up to 1232 bytes so
// the error fits the minimum MTU). nullptr when out of mbufs or for a packet that gets no error (an ICMP
// error itself, a multicast or broadcast destination).
rte_mbuf* buildPortUnreachable(const rte_mbuf* original, const ParsedPacket& packet, rte_mempool* pool);

// A token bucket for the replies a worker sends: at most `perSecond` on average, `burst` at once.
class ReplyLimiter {
 public:
  ReplyLimiter(uint32_t perSecond, uint32_t burst) : perSecond_(perSecond), burst_(burst), tokens_(burst) {}
  bool take(uint64_t nowUs) {
    if (nowUs > lastUs_) {
      uint64_t earned = (nowUs - lastUs_) * perSecond_ / 1'000'000;
      if (earned > 0) {
        tokens_ = static_cast<uint32_t>(tokens_ + earned > burst_ ? burst_ : tokens_ + earned);
        lastUs_ = nowUs;
      }
    }
    if (tokens_ == 0) return false;
    --tokens_;
    return true;
  }

 private:
  uint64_t perSecond_;
  uint32_t burst_;
  uint32_t tokens_;
  uint64_t lastUs_ = 0;
};

}  // namespace vgate::dataplane
