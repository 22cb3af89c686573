// Joins each flow's L7 metadata to its end record and writes one JSON line per flow. Runs off the hot path
// (the control thread, or the replay's main lcore), fed by the workers' record rings.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "control/flowlog/flow_log_format.h"
#include "vgate/counters.h"
#include "vgate/flow_record.h"

namespace vgate::control {

#define VGATE_FLOW_LOG_COUNTERS(X)                                                                      \
  X(recordsWritten, counter, "records", "flow records written to the log")                              \
  X(metadataPending, gauge, "records", "L7 metadata waiting for its flow's end record")                 \
  X(metadataDropped, counter, "records", "L7 metadata refused because too many flows had some pending") \
  X(writeErrors, counter, "records", "records the log file did not take, and failed flushes")

struct FlowLogCounters {
  VGATE_COUNTER_MEMBERS(FlowLogCounters, VGATE_FLOW_LOG_COUNTERS)
};

class FlowLogWriter : public RecordSink {
 public:
  // `out` is not owned. Metadata of at most `maxPendingMetadata` live flows is kept.
  FlowLogWriter(std::FILE* out, size_t maxPendingMetadata = 1u << 20);

  // Names for one policy version. Every version published stays known, so a flow judged before a swap is
  // still logged with the names of the policy that judged it.
  void setPolicyNames(PolicyNames names);
  // The container behind a port pair, for live records; kept after a detach so that the flows that were
  // still open are logged with it.
  void setPortIdentity(PortIdentity port);
  void onMetadata(const FlowMetadataRecord& metadata) override;
  void onEnd(const FlowEndRecord& record) override;
  void flush();
  const FlowLogCounters& counters() const { return counters_; }

 private:
  std::FILE* out_;
  size_t maxPendingMetadata_;
  std::map<uint32_t, PolicyNames> policies_;  // by version
  std::map<uint16_t, PortIdentity> ports_;    // by pair id
  std::unordered_map<uint64_t, nlohmann::ordered_json> pending_;
  FlowLogCounters counters_;
};

}  // namespace vgate::control
