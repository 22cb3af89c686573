// Record rings and pools: see record_pools.h.
#include "dataplane/records/record_pools.h"

#include <rte_errno.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <algorithm>
#include <bit>

#include "vgate/clock.h"

namespace vgate::dataplane {

namespace {

constexpr unsigned kDrainBurst = 64;

// What DPDK said went wrong (EEXIST for a name in use, ENOMEM, ...), never 0.
int dpdkErrno() { return rte_errno != 0 ? rte_errno : ENOMEM; }

}  // namespace

uint64_t RecordPoolSizes::bytesPerWorker() const {
  // Each pool object carries rte_mempool's header and padding on top of the record: about 128 bytes.
  return uint64_t{endRecordsPerWorker} * (sizeof(FlowEndRecord) + 128) +
         uint64_t{metadataPerWorker} * (sizeof(FlowMetadataRecord) + 128) +
         uint64_t{ringSize} * sizeof(void*);
}

RecordPoolSizes liveRecordPoolSizes(uint32_t flowCapacity) {
  RecordPoolSizes sizes;
  sizes.endRecordsPerWorker = std::max(flowCapacity, kLiveMinBufferedRecords);
  // Metadata comes from inspection, which holds at most a worker's inspection slots (1024) at a time: all of
  // them finish together at shutdown.
  sizes.metadataPerWorker = 4096;
  uint64_t slots = uint64_t{sizes.endRecordsPerWorker} + sizes.metadataPerWorker + 1;
  sizes.ringSize = static_cast<uint32_t>(std::bit_ceil(slots));
  sizes.endCache = 64;
  sizes.metadataCache = 16;
  return sizes;
}

Result<std::unique_ptr<RecordPools>> RecordPools::create(const std::string& name, uint16_t workers,
                                                         const RecordPoolSizes& sizes, int socket) {
  if (workers == 0) return makeError(EINVAL, "record pools need at least one worker");
  std::unique_ptr<RecordPools> pools(new RecordPools());
  pools->endRecords_ =
      rte_mempool_create((name + "_end").c_str(), sizes.endRecordsPerWorker * workers, sizeof(FlowEndRecord),
                         sizes.endCache, 0, nullptr, nullptr, nullptr, nullptr, socket, 0);
  pools->metadataRecords_ = rte_mempool_create((name + "_meta").c_str(), sizes.metadataPerWorker * workers,
                                               sizeof(FlowMetadataRecord), sizes.metadataCache, 0, nullptr,
                                               nullptr, nullptr, nullptr, socket, 0);
  if (pools->endRecords_ == nullptr || pools->metadataRecords_ == nullptr) {
    return makeError(dpdkErrno(),
                     "cannot create the flow record pools: " + std::string(rte_strerror(rte_errno)));
  }
  for (uint16_t id = 0; id < workers; ++id) {
    rte_ring* ring = rte_ring_create((name + "_rec_" + std::to_string(id)).c_str(), sizes.ringSize, socket,
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (ring == nullptr) {
      return makeError(dpdkErrno(),
                       "cannot create a flow record ring: " + std::string(rte_strerror(rte_errno)));
    }
    pools->rings_.push_back(ring);
  }
  return pools;
}

RecordPools::~RecordPools() {
  for (rte_ring* ring : rings_) rte_ring_free(ring);
  rte_mempool_free(endRecords_);
  rte_mempool_free(metadataRecords_);
}

bool RecordPools::drain(RecordSink& sink, uint64_t deadlineNs) {
  bool empty = true;
  for (uint16_t id = 0; id < workers(); ++id) empty &= drainRecordChannel(channel(id), sink, deadlineNs);
  return empty;
}

bool drainRecordChannel(const RecordChannel& channel, RecordSink& sink, uint64_t deadlineNs) {
  void* objects[kDrainBurst];
  unsigned count;
  while ((count = rte_ring_sc_dequeue_burst(channel.ring, objects, kDrainBurst, nullptr)) > 0) {
    for (unsigned i = 0; i < count; ++i) {
      if (*static_cast<const FlowMessageType*>(objects[i]) == FlowMessageType::kMetadata) {
        sink.onMetadata(*static_cast<const FlowMetadataRecord*>(objects[i]));
        rte_mempool_put(channel.metadataRecords, objects[i]);
      } else {
        sink.onEnd(*static_cast<const FlowEndRecord*>(objects[i]));
        rte_mempool_put(channel.endRecords, objects[i]);
      }
    }
    if (deadlineNs != 0 && monotonicNs() >= deadlineNs) return rte_ring_empty(channel.ring) != 0;
  }
  return true;
}

}  // namespace vgate::dataplane
