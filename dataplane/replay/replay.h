// Offline replay: a capture goes through net_pcap and the same workers as live traffic, and every flow comes
// out as a record, so that verdicts and logs can be checked against known traffic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/worker/worker.h"
#include "vgate/flow_record.h"
#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::dataplane {

struct ReplayOptions {
  std::string pcapPath;
  uint16_t workers = 1;
  uint32_t flowCapacity = 1u << 18;  // per worker
  uint32_t inspectionSlots = 1024;   // per worker
  FlowTimeouts timeouts;
  const policy::Policy* policy = nullptr;  // compiled once EAL runs (rte_acl allocates from its heap)
  std::string policyCacheDir;              // Hyperscan databases serialized by policy hash; empty: none
  // Captures are often taken where the sender's checksums were left to offload (tcpdump on the sending
  // host): replay takes checksums as they are unless asked to check them as the live path does.
  bool verifyChecksums = false;
};

using vgate::RecordSink;  // receives records on the replay's main thread

struct ReplaySummary {
  uint64_t capturePackets = 0;  // what libpcap read when checking the file
  std::vector<WorkerCounters> workers;
  std::vector<InspectionCounters> inspection;
  WorkerCounters total;
  CompiledPolicyStats policy;
};

// Checks that `path` is a readable Ethernet capture (pcap or pcapng) to its end, and counts its packets.
Result<uint64_t> checkCapture(const std::string& path);

// Starts EAL, replays the capture and stops EAL. Once per process (EAL cannot restart).
Result<ReplaySummary> runReplay(const ReplayOptions& options, RecordSink& sink);

}  // namespace vgate::dataplane
