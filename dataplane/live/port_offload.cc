// Live workers' fast path offload: see port_offload.h.
#include "dataplane/live/port_offload.h"

#include <rte_mbuf.h>

#include <algorithm>

namespace vgate::dataplane {

namespace {

uint16_t pairOf(const Flow& flow) {
  uint32_t zone = uint32_t{flow.key.zone[0]} << 16 | uint32_t{flow.key.zone[1]} << 8 | flow.key.zone[2];
  return static_cast<uint16_t>(zone >> 12);  // the outer tag: vgate's own
}

}  // namespace

uint8_t PortOffload::offload(const Flow& flow, const rte_mbuf* packet, bool packetFromClient,
                             OffloadAction offloadAction) {
  uint16_t pairId = 0;
  uint8_t side = 0;
  if (!vgate_port_tag_read(rte_pktmbuf_mtod(packet, const uint8_t*), packet->data_len, &pairId, &side)) {
    return kNotOffloaded;
  }
  PortPairIfindexes ports = ports_.get(pairId);
  if (ports.inner == 0 || pairId != pairOf(flow)) return kNotOffloaded;
  uint8_t clientSide = packetFromClient ? side : static_cast<uint8_t>(side ^ 1u);
  uint32_t action = offloadAction == OffloadAction::kDrop      ? VGATE_FP_DENY
                    : offloadAction == OffloadAction::kInspect ? VGATE_FP_INSPECT
                                                               : VGATE_FP_ALLOW;
  // The entry on the side packets leave by last: a packet racing the two writes meets no half-open flow.
  auto outerWritten = fastPath_.setFlow(fastPathKey(ports.outer, flow.key), action, ports.inner);
  auto innerWritten = fastPath_.setFlow(fastPathKey(ports.inner, flow.key), action, ports.outer);
  if (!outerWritten || !innerWritten) {
    ++writeFailures_;
    (void)fastPath_.removeFlow(fastPathKey(ports.outer, flow.key));  // undo what was written, if anything
    (void)fastPath_.removeFlow(fastPathKey(ports.inner, flow.key));
    return kNotOffloaded;
  }
  uint8_t state = clientSide == VGATE_FP_SIDE_INNER ? kOffloadedClientInner : kOffloadedClientOuter;
  return offloadAction == OffloadAction::kInspect ? static_cast<uint8_t>(state | kOffloadInspecting) : state;
}

bool PortOffload::usage(const Flow& flow, OffloadUsage& usage) {
  PortPairIfindexes ports = ports_.get(pairOf(flow));
  if (ports.inner == 0) return false;
  auto inner = fastPath_.flow(fastPathKey(ports.inner, flow.key));
  auto outer = fastPath_.flow(fastPathKey(ports.outer, flow.key));
  if (!inner && !outer) return false;
  // What enters the client's side goes to the server.
  bool clientInner = (flow.offloadState & ~kOffloadInspecting) == kOffloadedClientInner;
  const Result<vgate_fp_value>* entries[2];
  entries[kToServer] = clientInner ? &inner : &outer;
  entries[kToClient] = clientInner ? &outer : &inner;
  uint64_t lastSeenNs = 0;
  for (int direction = 0; direction < 2; ++direction) {
    if (!*entries[direction]) continue;
    const vgate_fp_value& entry = entries[direction]->value();
    usage.pkts[direction] = entry.packets;
    usage.bytes[direction] = entry.bytes;
    usage.tcpFlags[direction] = entry.tcp_flags;
    lastSeenNs = std::max<uint64_t>(lastSeenNs, entry.last_seen_ns);
  }
  usage.lastSeenUs = lastSeenNs == 0
                         ? 0
                         : static_cast<uint64_t>(static_cast<int64_t>(lastSeenNs) + realtimeOffsetNs_) / 1000;
  return true;
}

void PortOffload::retire(const Flow& flow) {
  PortPairIfindexes ports = ports_.get(pairOf(flow));
  if (ports.inner == 0) return;  // detached: its entries went with the pair
  // Either entry may be gone already (the map is an LRU): nothing to report then.
  (void)fastPath_.removeFlow(fastPathKey(ports.inner, flow.key));
  (void)fastPath_.removeFlow(fastPathKey(ports.outer, flow.key));
}

}  // namespace vgate::dataplane
