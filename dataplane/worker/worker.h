// One dataplane worker: owns a flow table, an inspection pool and a fragment table, and turns bursts of mbufs
// into flow state and flow records. Whatever feeds it (an ethdev queue, a ring from the replay dispatcher) is
// the caller's business: the same code serves live ports and replay.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/flow/flow_table.h"
#include "dataplane/packet/packet_parser.h"
#include "dataplane/verdict/policy_registry.h"
#include "dataplane/worker/flow_offload.h"
#include "dataplane/worker/inspection.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

struct rte_mbuf;
struct rte_ring;
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
  // Flow records go to the writer through `records` (this worker is its only producer) as objects of these
  // pools.
  rte_ring* records = nullptr;
  rte_mempool* endRecords = nullptr;
  rte_mempool* metadataRecords = nullptr;
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

// Per-worker counters: written by the worker only, cache-line aligned, summed by whoever reads them.
struct alignas(64) WorkerCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t parseStatus[static_cast<int>(ParseStatus::kCount)] = {};
  uint64_t flowsCreated = 0;
  uint64_t flowsEnded = 0;
  uint64_t flowsEvicted = 0;
  uint64_t flowsTimedOut = 0;
  uint64_t flowInsertFailed = 0;
  uint64_t recordsLost = 0;
  uint64_t metadataLost = 0;
  uint64_t fragments = 0;
  uint64_t fragmentsReassembled = 0;    // datagrams completed
  uint64_t fragmentsUnsupported = 0;    // IPv6 fragment header behind other extension headers
  uint64_t verdictsImmediate = 0;       // decided on the first packet
  uint64_t verdictsAfterL7 = 0;         // held pending, then decided on L7 facts
  uint64_t packetsDenied = 0;           // dropped by a deny or reject verdict in enforce mode
  uint64_t verdictsWithoutScratch = 0;  // a published policy had no scratch for this worker: L7 facts unused
  uint64_t flowsOffloaded = 0;          // handed to the fast path
  uint64_t offloadChecks = 0;           // idle offloaded flows asked about
  uint64_t offloadEntriesLost = 0;      // an offloaded flow whose fast path entries had gone
  uint64_t icmpErrorsRelated = 0;       // ICMP errors about a known flow, judged by its verdict

  // Sums another worker's counters into these: the one place that lists every field.
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
  void inspect(Flow& flow, const ParsedPacket& packet, rte_mbuf* mbuf, int direction);
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
