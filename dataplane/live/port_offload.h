// The FlowOffload of live workers: writes a decided flow's verdict into the BPF fast path for both ports of
// its pair (the port tag of the packet that decided it names the pair and the side it entered), reads back
// what the fast path carried, and removes the entries when the flow ends.
#pragma once

#include <cstdint>

#include "dataplane/fastpath/fast_path.h"
#include "dataplane/live/port_table.h"
#include "dataplane/worker/flow_offload.h"
#include "vgate/bpf/port_tag.h"

namespace vgate::dataplane {

class PortOffload final : public FlowOffload {
 public:
  // `realtimeOffsetNs`: CLOCK_REALTIME minus CLOCK_MONOTONIC, to turn the fast path's last-seen times into
  // the worker's clock.
  PortOffload(FastPath& fastPath, const PortTable& ports, int64_t realtimeOffsetNs)
      : fastPath_(fastPath), ports_(ports), realtimeOffsetNs_(realtimeOffsetNs) {}

  uint8_t offload(const Flow& flow, const rte_mbuf* packet, bool packetFromClient,
                  OffloadAction action) override;
  bool usage(const Flow& flow, OffloadUsage& usage) override;
  void retire(const Flow& flow) override;

  uint64_t writeFailures() const { return writeFailures_; }

 private:
  FastPath& fastPath_;
  const PortTable& ports_;
  int64_t realtimeOffsetNs_;
  uint64_t writeFailures_ = 0;
};

}  // namespace vgate::dataplane
