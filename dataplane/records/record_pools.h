// The flow records' way out of the workers, the same for live ports and replay: one single-producer ring per
// worker, and two pools of record objects (end records, metadata records) that the rings carry pointers to.
// One consumer thread drains every ring into a RecordSink and gives the objects back to their pools.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vgate/flow_record.h"
#include "vgate/result.h"

struct rte_mempool;
struct rte_ring;

namespace vgate::dataplane {

// What one worker sends records through: its own ring and the shared pools.
struct RecordChannel {
  rte_ring* ring = nullptr;
  rte_mempool* endRecords = nullptr;
  rte_mempool* metadataRecords = nullptr;
};

struct RecordPoolSizes {
  uint32_t ringSize = 8192;  // per worker, a power of two
  uint32_t endRecordsPerWorker = 8192;
  uint32_t metadataPerWorker = 1024;
  uint32_t endCache = 64;  // rte_mempool's per-lcore cache
  uint32_t metadataCache = 16;

  // Memory the pools and rings take, for sizing EAL's heap.
  uint64_t bytesPerWorker() const;
};

// The live workers' sizes, for flow tables of `flowCapacity` flows each. Workers never wait on the flow log,
// so what the rings and pools hold is all the slack there is:
// - an end record object (and a ring slot) for every flow a worker's table can hold, so that a worker can
//   end its whole table at once (SIGTERM, a mass timeout) without losing a record while the flow-log thread
//   catches up;
// - at least kLiveMinBufferedRecords of them whatever the table size: 650 ms of a 100k flows/s flood, for
//   the flow-log thread's scheduling gaps on a loaded node.
// DESIGN.md ("Flow log") has the memory this takes.
inline constexpr uint32_t kLiveMinBufferedRecords = 65536;
RecordPoolSizes liveRecordPoolSizes(uint32_t flowCapacity);

class RecordPools {
 public:
  // `name` prefixes the DPDK object names (unique per process).
  static Result<std::unique_ptr<RecordPools>> create(const std::string& name, uint16_t workers,
                                                     const RecordPoolSizes& sizes, int socket);
  ~RecordPools();
  RecordPools(const RecordPools&) = delete;
  RecordPools& operator=(const RecordPools&) = delete;

  RecordChannel channel(uint16_t worker) const { return {rings_[worker], endRecords_, metadataRecords_}; }
  uint16_t workers() const { return static_cast<uint16_t>(rings_.size()); }

  // Moves every ring's records to `sink`. Returns false when it stopped at `deadlineNs` (CLOCK_MONOTONIC;
  // 0: none) with records still waiting.
  bool drain(RecordSink& sink, uint64_t deadlineNs = 0);

 private:
  RecordPools() = default;
  std::vector<rte_ring*> rings_;
  rte_mempool* endRecords_ = nullptr;
  rte_mempool* metadataRecords_ = nullptr;
};

// Drains one worker's channel into `sink`, with the same deadline rule as RecordPools::drain.
bool drainRecordChannel(const RecordChannel& channel, RecordSink& sink, uint64_t deadlineNs = 0);

}  // namespace vgate::dataplane
