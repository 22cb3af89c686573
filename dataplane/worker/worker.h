// One dataplane worker: owns a flow table, an inspection pool and a fragment table, and turns bursts of mbufs
// into flow state and flow records. Whatever feeds it (an ethdev queue, a ring from the replay dispatcher) is
// the caller's business: the same code serves live ports and replay.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/flow/flow_table.h"
#include "dataplane/inspect/inspector.h"
#include "dataplane/packet/packet_parser.h"
#include "dataplane/records/record_pools.h"
#include "dataplane/verdict/policy_registry.h"
#include "dataplane/worker/flow_offload.h"
#include "vgate/counters.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_ip_frag_tbl;

namespace vgate::dataplane {

inline constexpr uint16_t kBurstSize = 32;

struct WorkerConfig {
  uint16_t id = 0;
  int socket = -1;
  uint32_t flowCapacity = 1u << 18;
  uint32_t inspectionSlots = 1024;
  uint32_t fragmentFlows = 4096;  // datagrams being reassembled at once
  uint64_t fragmentTimeoutUs = 2'000'000;
  FlowTimeouts timeouts;
  // Flow records go to the writer through this channel's ring (this worker is its only producer).
  RecordChannel records;
  // Replay wants every record and has no deadline: wait for the writer. Live traffic cannot wait: count the
  // loss.
  bool losslessRecords = false;
  // Where the worker reads the policy in force, once per burst (its id is its RCU thread id, and the policies
  // published there must carry a scratch for it). None: every flow is allowed and no rule is named.
  PolicyRegistry* policies = nullptr;
  // Live ports: where decided, fully inspected TCP/UDP flows go to leave the slow path. None in replay.
  FlowOffload* offload = nullptr;
  // Live ports: the outermost VLAN tag is vgate's port tag (the port pair), not the traffic's own: it keys
  // the flow (zone) but is reported as the record's port pair, not as a VLAN.
  bool outerTagIsPortPair = false;
};

// Worker `id` of a set that shares `records` and the same sizes and timeouts (live lanes, replay lanes); the
// caller adds what is its own (policies, offload, record loss rule).
WorkerConfig workerConfigFor(uint16_t id, int socket, const RecordPools& records, uint32_t flowCapacity,
                             uint32_t inspectionSlots, const FlowTimeouts& timeouts);

// Per-worker counters: written by the worker only, cache-line aligned, summed by whoever reads them.
#define VGATE_WORKER_COUNTERS(X)                                                                            \
  X(packets, counter, "packets", "packets the worker received")                                             \
  X(bytes, counter, "bytes", "bytes of the packets the worker received, Ethernet header included")          \
  X(flowsCreated, counter, "flows", "flows created in the flow table")                                      \
  X(flowsEnded, counter, "flows", "flows ended (by FIN/RST, timeout, eviction, shutdown or end of input)")  \
  X(flowsEvicted, counter, "flows", "flows ended early to make room for new ones")                          \
  X(flowsTimedOut, counter, "flows", "flows ended by their idle timeout")                                   \
  X(flowInsertFailed, counter, "packets", "packets of new flows the full flow table could not take")        \
  X(recordsLost, counter, "records", "flow end records lost: no free record or a full ring")                \
  X(metadataLost, counter, "records", "flow metadata records lost: no free record or a full ring")          \
  X(fragments, counter, "packets", "IP fragments received")                                                 \
  X(fragmentsReassembled, counter, "datagrams", "datagrams completed from fragments")                       \
  X(fragmentsUnsupported, counter, "packets", "IPv6 fragments whose fragment header follows other headers") \
  X(verdictsImmediate, counter, "flows", "flows decided on their first packet")                             \
  X(verdictsAfterL7, counter, "flows", "flows held pending, then decided on L7 facts")                      \
  X(denied, counter, "packets", "packets dropped by a deny or reject verdict in enforce mode")              \
  X(verdictsWithoutScratch, counter, "flows",                                                               \
    "flows decided without their L7 facts: the published policy had no scratch for this worker")            \
  X(flowsOffloaded, counter, "flows", "flows handed to the fast path")                                      \
  X(offloadChecks, counter, "flows", "idle offloaded flows the worker asked the fast path about")           \
  X(offloadEntriesLost, counter, "flows", "offloaded flows whose fast path entries had gone")               \
  X(icmpErrorsRelated, counter, "packets", "ICMP errors about a known flow, judged by its verdict")

struct alignas(64) WorkerCounters {
  VGATE_COUNTER_FIELDS(VGATE_WORKER_COUNTERS)
  uint64_t parseStatus[kParseStatusCount] = {};  // by ParseStatus, named by parseStatusName()

  void add(const WorkerCounters& other);
};

class Worker {
 public:
  static Result<std::unique_ptr<Worker>> create(const WorkerConfig& config);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Processes a burst. Returns how many packets are left at the front of `mbufs` to forward (fragments kept
  // for reassembly are taken out; a completed datagram takes its first fragment's place). `nowUs` is the time
  // for packets that carry no receive timestamp.
  uint16_t processBurst(rte_mbuf** mbufs, uint16_t count, uint64_t nowUs);

  // Ends flows idle past their timeout, visiting at most `budget` table slots.
  void expire(uint64_t nowUs, uint32_t budget);
  // Ends every flow (shutdown, end of a replay) and emits its record.
  void flushAll(uint64_t nowUs, FlowEndReason reason);
  // Tells the policy registry this worker holds no policy: an idle worker must call it, or a publish waits.
  void reportQuiescent();

  // The latest packet time this worker has seen (replay time runs on packet timestamps).
  uint64_t clockUs() const { return clockUs_; }
  const WorkerCounters& counters() const { return counters_; }
  const InspectionCounters& inspectionCounters() const { return inspector_->counters(); }
  const FlowTable& flowTable() const { return *table_; }

 private:
  explicit Worker(const WorkerConfig& config);
  struct FragmentAccount;

  bool reassemble(rte_mbuf*& mbuf, ParsedPacket& packet, uint64_t timestampUs);
  void accountFragment(const ParsedPacket& packet, uint32_t frameLength, uint64_t timestampUs);
  bool takeFragmentAccount(const ParsedPacket& packet, uint64_t& pkts, uint64_t& bytes);
  // Returns whether the packet may be forwarded.
  // Whether the flow's packets are dropped now: its verdict is final, a deny or reject, in enforce mode
  // (pending flows pass, so that the facts they wait for can arrive; audit mode only records).
  bool dropsPackets(const Flow& flow) const;
  // An ICMP error about a flow this worker holds takes that flow's verdict, as conntrack's RELATED does: it
  // passes unless the flow is denied in enforce mode, and creates no flow of its own. True when `packet` was
  // such an error; `forward` is then set.
  bool judgeRelatedIcmpError(const rte_mbuf* mbuf, const ParsedPacket& packet, bool& forward);
  bool updateFlow(int32_t position, const ParsedPacket& packet, bool srcIsLow, rte_mbuf* mbuf, uint64_t pkts,
                  uint64_t bytes, uint64_t timestampUs);
  void judgeNewFlow(Flow& flow, const ParsedPacket& packet, bool packetFromClient);
  void resolvePendingVerdict(Flow& flow, const InspectionState* state);
  // Returns true when the packet must be dropped although the flow's verdict passes it (an HTTP segment
  // that arrived ahead of a hole: see HttpStream).
  bool inspect(Flow& flow, const ParsedPacket& packet, rte_mbuf* mbuf, int direction);
  // One request of an HTTP flow whose every request is judged, or inspection's refusal to judge one; false
  // when it denies the flow.
  bool judgeHttpRequest(Flow& flow, const InspectionState& state);
  void finishInspection(Flow& flow);
  void endFlow(int32_t position, FlowEndReason reason, uint64_t nowUs);
  void maybeOffload(int32_t position, const rte_mbuf* mbuf, int direction, OffloadAction action);
  // Folds what the fast path counted since the last look into the flow; false when its entries are gone.
  bool collectOffloadUsage(int32_t position);
  // An idle offloaded flow: still busy in the fast path (true), or done.
  bool offloadedFlowStillActive(int32_t position, uint64_t nowUs);
  void* takeRecordObject(rte_mempool* pool);
  bool sendRecord(void* object, rte_mempool* pool);

  WorkerConfig config_;
  std::unique_ptr<FlowTable> table_;
  std::unique_ptr<InspectionPool> inspections_;
  std::unique_ptr<Inspector> inspector_;
  rte_ip_frag_tbl* fragmentTable_ = nullptr;
  std::unique_ptr<FragmentAccount[]> fragmentAccounts_;
  int timestampOffset_ = -1;
  uint64_t timestampFlag_ = 0;
  uint64_t nextFlowSerial_ = 1;
  uint64_t clockUs_ = 0;
  WorkerCounters counters_;
  struct OffloadAccount;
  std::unique_ptr<OffloadAccount[]> offloadAccounts_;  // by flow position, when offloading
  std::unique_ptr<uint8_t[]> scratch_;      // a chained mbuf's payload, made contiguous for the parsers
  const CompiledPolicy* policy_ = nullptr;  // for the current burst only
  bool registered_ = false;
  struct PolicyBurst;
};

}  // namespace vgate::dataplane
