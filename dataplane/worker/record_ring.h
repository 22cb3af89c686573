// Moving the flow records a worker left on its ring to their sink, and their objects back to their pools:
// the same for replay and for live ports.
#pragma once

#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdint>

#include "vgate/clock.h"
#include "vgate/flow_record.h"

namespace vgate::dataplane {

// Returns false when it stopped at `deadlineNs` (CLOCK_MONOTONIC; 0: none) with records still on the ring.
inline bool drainRecordRing(rte_ring* records, rte_mempool* endRecords, rte_mempool* metadataRecords,
                            RecordSink& sink, uint64_t deadlineNs = 0) {
  void* objects[64];
  unsigned count;
  while ((count = rte_ring_sc_dequeue_burst(records, objects, 64, nullptr)) > 0) {
    for (unsigned i = 0; i < count; ++i) {
      if (*static_cast<const FlowMessageType*>(objects[i]) == FlowMessageType::kMetadata) {
        sink.onMetadata(*static_cast<const FlowMetadataRecord*>(objects[i]));
        rte_mempool_put(metadataRecords, objects[i]);
      } else {
        sink.onEnd(*static_cast<const FlowEndRecord*>(objects[i]));
        rte_mempool_put(endRecords, objects[i]);
      }
    }
    if (deadlineNs != 0 && monotonicNs() >= deadlineNs) return rte_ring_empty(records) != 0;
  }
  return true;
}

}  // namespace vgate::dataplane
