// One dataplane worker: owns a flow table, an inspection pool and a fragment table, and turns bursts of mbufs
// into flow state and flow records. Whatever feeds it (an ethdev queue, a ring from the replay dispatcher) is
// the caller's business: the same code serves live ports and replay.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/flow/flow_table.h"
#include "dataplane/fragment/fragment_reassembler.h"
#include "dataplane/inspect/inspector.h"
#include "dataplane/packet/packet_parser.h"
#include "dataplane/records/record_pools.h"
#include "dataplane/reply/reject_reply.h"
#include "dataplane/verdict/policy_registry.h"
#include "dataplane/worker/flow_offload.h"
#include "vgate/counters.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

struct rte_mbuf;
struct rte_mempool;

namespace vgate::dataplane {

inline constexpr uint16_t kBurstSize = 32;
// What processBurst may leave in its array: a burst's datagrams cut again into fragments take more room than
// the fragments that completed them.
inline constexpr uint16_t kBurstOutputCapacity = kBurstSize * kMaxFragmentsPerDatagram;

// What a flow whose verdict waits on L7 facts gets when it cannot have them: no inspection slot was free, or
// its handshake outlived the inspection timeout (a slow or stalled sender). As Suricata's exception policies:
// kPolicy decides as the policy does without the facts (under a default-deny policy, a deny), kDrop denies
// the flow, kPass allows it (an explicit fail-open, counted like the others).
enum class ExceptionPolicy : uint8_t { kPolicy, kDrop, kPass };

struct WorkerConfig {
  uint16_t id = 0;
  int socket = -1;
  uint32_t flowCapacity = 1u << 18;
  uint32_t inspectionSlots = 2048;  // handshakes inspected at once (about 65 KB each)
  uint64_t inspectionTimeoutUs = 5'000'000;
  ExceptionPolicy exceptionPolicy = ExceptionPolicy::kPolicy;
  // Drop packets with a bad IP, TCP, UDP or ICMP checksum before they touch a flow (live: the trunks carry
  // finished checksums). Replay of captures taken where checksums were offloaded turns it off.
  bool verifyChecksums = true;
  // Where flow ids start: live, a seed from the boot id and the time, so that ids stay unique across
  // restarts; replay, 0 (ids from 1, the same on every run of a capture).
  uint64_t flowIdSeed = 0;
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
#define VGATE_WORKER_COUNTERS(X)                                                                             \
  X(packets, counter, "packets", "packets the worker received")                                              \
  X(bytes, counter, "bytes", "bytes of the packets the worker received, Ethernet header included")           \
  X(flowsCreated, counter, "flows", "flows created in the flow table")                                       \
  X(flowsEnded, counter, "flows", "flows ended (by FIN/RST, timeout, eviction, shutdown or end of input)")   \
  X(flowsEvicted, counter, "flows", "flows ended early to make room for new ones")                           \
  X(flowsTimedOut, counter, "flows", "flows ended by their idle timeout")                                    \
  X(flowInsertFailed, counter, "packets",                                                                    \
    "packets of new flows the full flow table could not take: judged alone, with no L7 facts")               \
  X(checksumErrors, counter, "packets",                                                                      \
    "packets dropped with a bad IPv4 header, TCP, UDP or ICMP checksum: never judged, never inspected")      \
  X(overlapDenied, counter, "flows",                                                                         \
    "flows denied because retransmitted bytes differed from the first copy (an insertion attempt)")          \
  X(unreadableHelloDenied, counter, "flows",                                                                 \
    "flows denied because their verdict waited on a ClientHello whose TLS records did not parse")            \
  X(unparsedDropped, counter, "packets",                                                                     \
    "packets dropped unjudged: not IP or ARP, or not parsed (see parseStatus)")                              \
  X(recordsLost, counter, "records", "flow end records lost: no free record or a full ring")                 \
  X(metadataLost, counter, "records", "flow metadata records lost: no free record or a full ring")           \
  X(recordsLostNoRecord, counter, "records", "flow end records lost because no record object was free")      \
  X(recordsLostRingFull, counter, "records",                                                                 \
    "flow end records lost because the ring to the flow log was full")                                       \
  X(metadataLostNoRecord, counter, "records", "flow metadata lost because no record object was free")        \
  X(metadataLostRingFull, counter, "records",                                                                \
    "flow metadata lost because the ring to the flow log was full")                                          \
  X(flowsReused, counter, "flows",                                                                           \
    "flows ended by a new connection on their 5-tuple: a SYN with a new sequence number, or after a close")  \
  X(exceptionNoSlot, counter, "flows",                                                                       \
    "flows waiting on L7 facts that found no inspection slot free: decided by the exception policy")         \
  X(exceptionSlowHandshake, counter, "flows",                                                                \
    "inspections that outlived the inspection timeout (a slow or stalled sender): decided by the exception " \
    "policy")                                                                                                \
  X(verdictsImmediate, counter, "flows", "flows decided on their first packet")                              \
  X(verdictsAfterL7, counter, "flows", "flows held pending, then decided on L7 facts")                       \
  X(denied, counter, "packets", "packets dropped by a deny or reject verdict in enforce mode")               \
  X(verdictsWithoutScratch, counter, "flows",                                                                \
    "flows decided without their L7 facts: the published policy had no scratch for this worker")             \
  X(fastPathBytes, counter, "bytes",                                                                         \
    "bytes the fast path carried of offloaded flows, as the worker read back")                               \
  X(flowsOffloaded, counter, "flows", "flows handed to the fast path")                                       \
  X(offloadChecks, counter, "flows", "idle offloaded flows the worker asked the fast path about")            \
  X(offloadEntriesLost, counter, "flows", "offloaded flows whose fast path entries had gone")                \
  X(icmpErrorsRelated, counter, "packets", "ICMP errors about a known flow, judged by its verdict")          \
  X(resetsSent, counter, "packets",                                                                          \
    "TCP resets sent: to the client of a rejected flow, to a server whose "                                  \
    "connection a reject or an L7 deny ended")                                                               \
  X(unreachablesSent, counter, "packets", "ICMP port unreachables sent for rejected datagrams")              \
  X(repliesRateLimited, counter, "packets", "resets and unreachables not sent: over the rate limit")         \
  X(repliesNoBuffer, counter, "packets",                                                                     \
    "resets and unreachables not sent: no free mbuf, or none due (a multicast address)")

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

  // Processes a burst of at most kBurstSize packets in `mbufs`, which has room for kBurstOutputCapacity.
  // Returns how many packets are left at the front of `mbufs` to forward: fragments are held until their
  // datagram completes, and a judged datagram leaves as fragments cut again from it, in its last fragment's
  // place. `nowUs` is the time for packets that carry no receive timestamp.
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
  const FragmentCounters& fragmentCounters() const { return fragments_->counters(); }
  const FlowTable& flowTable() const { return *table_; }

 private:
  explicit Worker(const WorkerConfig& config);
  // Whether the flow's packets are dropped now: its verdict is final, a deny or reject, in enforce mode
  // (pending flows pass, so that the facts they wait for can arrive; audit mode only records).
  bool dropsPackets(const Flow& flow) const;
  // Whether a verdict of `action` drops packets: a deny or reject under the policy in force, in enforce mode.
  bool enforcedAsDrop(VerdictAction action) const;
  uint64_t nextFlowId();
  // An ICMP error about a flow this worker holds takes that flow's verdict, as conntrack's RELATED does: it
  // passes unless the flow is denied in enforce mode, and creates no flow of its own. True when `packet` was
  // such an error; `forward` is then set.
  bool judgeRelatedIcmpError(const rte_mbuf* mbuf, const ParsedPacket& packet, bool& forward);
  bool updateFlow(int32_t position, const ParsedPacket& packet, bool srcIsLow, rte_mbuf* mbuf, uint64_t pkts,
                  uint64_t bytes, uint64_t timestampUs);
  // The replies a dropped packet of `flow` calls for (kReply* bits): resets for a reject and for a server
  // whose connection an L7 deny just ended, a port unreachable for a rejected datagram.
  uint8_t repliesFor(const Flow& flow, const ParsedPacket& packet, bool srcIsLow, bool decidedNow) const;
  // Builds them from the dropped packet and appends them to `out`.
  void sendReplies(const rte_mbuf* dropped, const ParsedPacket& packet, uint8_t replies, uint64_t nowUs,
                   rte_mbuf** out, uint16_t& count);
  // The flow's direction as its first packet tells it (live: from the port tag's side).
  uint8_t directionOf(const ParsedPacket& packet, bool packetFromClient) const;
  // A packet with no flow to keep its state (the table is full): whether the policy lets it pass alone.
  bool judgeStateless(const ParsedPacket& packet) const;
  void judgeNewFlow(Flow& flow, const ParsedPacket& packet, bool packetFromClient);
  void resolvePendingVerdict(Flow& flow, const InspectionState* state);
  // A flow whose stream shows an evasion attempt (conflicting retransmissions, an unreadable ClientHello
  // it waited on): denied from this packet on.
  void denyEvasion(Flow& flow, const InspectionState& state);
  // A pending flow that cannot have its L7 facts: decided by the exception policy.
  void decideByException(Flow& flow);
  // A SYN on a known flow that opens a new connection (a new ISN, or after a close), not a retransmission.
  bool startsNewConnection(int32_t position, const ParsedPacket& packet, bool srcIsLow);
  // Inspections held past the timeout give their slot back, their flow decided by the exception policy.
  void reclaimSlowInspections(uint64_t nowUs, uint32_t budget);
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
  struct SlotOwner;
  std::unique_ptr<SlotOwner[]> slotOwners_;  // by inspection slot: whose it is, since when
  uint32_t nextSlotToCheck_ = 0;
  ReplyLimiter replyLimiter_{1000, 100};  // per second, at once: a reject never becomes an amplifier
  std::unique_ptr<Inspector> inspector_;
  std::unique_ptr<FragmentReassembler> fragments_;
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
