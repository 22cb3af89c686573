// Per-worker flow table: rte_hash indexes normalized keys, a flat array of 128-byte entries holds the state.
// One writer (its worker), no locks. Bounded: when full, the least recently seen of a small sample is
// evicted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "vgate/flow_key.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

struct rte_hash;

namespace vgate::dataplane {

inline constexpr uint32_t kNoInspection = UINT32_MAX;

// TCP progress as far as the flags tell. Drives the flow's timeout and its state in the record.
enum class TcpProgress : uint8_t { kNone, kSynSent, kSynAckSeen, kEstablished, kFinSeen, kClosed };

struct alignas(64) Flow {
  FlowKey key;
  uint64_t flowId;  // 0: the slot is free
  uint64_t startUs;
  uint64_t lastUs;
  uint64_t pkts[2];  // kToServer, kToClient
  uint64_t bytes[2];
  uint32_t inspection;  // index into the worker's inspection pool, or kNoInspection
  uint32_t ruleId;
  uint8_t clientIsLow;  // the client is key.addrLow/portLow
  uint8_t tcpFlags[2];
  uint8_t finSeen;  // bit per direction
  TcpProgress tcp;
  AppProto appProto;
  VerdictAction action;
  uint8_t hasMetadata;
  uint8_t icmpType;
  uint8_t icmpCode;
  // Inspection starts at a flow's first payload, not its first packet, so that a flood of SYNs never takes
  // inspection state; the sequence bases the SYNs announced wait here until then.
  uint8_t inspectFlags;  // kInspectBaseKnown << direction, kInspectFinished
  uint8_t offloadState;  // kNotOffloaded, or which side of its port pair the client is on (flow_offload.h)
  uint32_t seqBase[2];
  uint32_t policyVersion;  // the policy that gave the verdict
};
inline constexpr uint8_t kInspectBaseKnown = 0x01;  // shifted by the direction
inline constexpr uint8_t kInspectFinished = 0x04;
// The verdict waits for L7 facts (ruleId holds the L3/L4 fallback meanwhile); packets pass until it is known.
inline constexpr uint8_t kVerdictPending = 0x08;
// Every HTTP request of the flow is judged (an HTTP rule could change its verdict): it stays in the slow path
// while it speaks HTTP, and has no inspect entry that would let large frames past the judge.
inline constexpr uint8_t kHttpJudged = 0x40;
// The flow was allowed, then one of its later HTTP requests was denied (or refused): the server has seen
// part of the connection. Its packets are dropped from that request on; this is what a reset would key on.
inline constexpr uint8_t kDeniedMidConnection = 0x80;
// Bits 4-5: the flow's direction (kDirection*, l34_classifier.h) as its port tag told it; 0 in replay. Kept
// here because the flow's two lines are full.
inline constexpr uint8_t kFlowDirectionShift = 4;
inline constexpr uint8_t kFlowDirectionMask = 0x30;
static_assert(sizeof(Flow) == 128, "two cache lines per flow: keep the hot fields in the first");

struct FlowTimeouts {
  uint64_t tcpNewUs = 30'000'000;  // SYN seen, no answer yet
  uint64_t tcpEstablishedUs = 600'000'000;
  uint64_t tcpClosedUs = 10'000'000;  // after FIN both ways or RST: late ACKs and retransmits still match
  uint64_t udpNewUs = 30'000'000;
  uint64_t udpEstablishedUs = 120'000'000;
  uint64_t otherUs = 30'000'000;
  // A flow the fast path carries is idle in the worker; how often to ask the fast path whether it still is.
  uint64_t offloadCheckUs = 5'000'000;
};

struct FlowTableConfig {
  std::string name;  // unique per process (rte_hash names are global)
  uint32_t capacity = 1u << 20;
  int socket = -1;  // NUMA socket, -1 = any
};

struct FlowTableStats {
  uint64_t inserted = 0;
  uint64_t removed = 0;
  uint64_t evicted = 0;
  uint64_t insertFailed = 0;  // no slot even after eviction (should stay 0)
};

class FlowTable {
 public:
  static Result<std::unique_ptr<FlowTable>> create(const FlowTableConfig& config);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Looks up a burst of keys at once (rte_hash_lookup_bulk, n <= 64). positions[i] >= 0 for hits, -1 for
  // misses.
  void lookupBurst(const FlowKey* const* keys, uint32_t n, int32_t* positions) const;

  // Inserts a key that lookupBurst() missed; returns its position, or the existing one if an earlier packet
  // of the same burst inserted it (check flow.flowId to tell). -1 when the table is full: the caller evicts
  // (pickVictim + its own record + remove) and retries.
  int32_t insert(const FlowKey& key);

  // The least recently seen flow among the next few occupied slots after a rotating cursor: approximate LRU
  // without a list to maintain per packet. -1 only when the table is empty.
  int32_t pickVictim();

  void remove(int32_t position);

  Flow& at(int32_t position) { return flows_[position]; }
  const Flow& at(int32_t position) const { return flows_[position]; }
  uint32_t capacity() const { return capacity_; }
  uint32_t size() const { return size_; }
  bool full() const { return size_ >= capacity_; }
  const FlowTableStats& stats() const { return stats_; }
  FlowTableStats& stats() { return stats_; }

  // Bytes this table took from the EAL heap at creation: the hash with its key store and buckets, and the
  // flow array. Nothing grows afterwards.
  size_t memoryBytes() const;

  // Visits up to `budget` slots from a rotating cursor and calls expired(position) for each flow that has
  // been idle past its timeout. Spreads the expiry work over many bursts so no burst pays for a full scan.
  template <typename OnExpired>
  void sweep(uint64_t nowUs, const FlowTimeouts& timeouts, uint32_t budget, OnExpired&& expired) {
    for (uint32_t i = 0; i < budget && size_ > 0; ++i) {
      uint32_t position = sweepCursor_;
      sweepCursor_ = sweepCursor_ + 1 == capacity_ ? 0 : sweepCursor_ + 1;
      const Flow& flow = flows_[position];
      if (flow.flowId != 0 && nowUs > flow.lastUs && nowUs - flow.lastUs > checkTimeout(flow, timeouts)) {
        expired(static_cast<int32_t>(position));
      }
    }
  }

  template <typename Visit>
  void forEach(Visit&& visit) {
    for (uint32_t position = 0; position < capacity_; ++position) {
      if (flows_[position].flowId != 0) visit(static_cast<int32_t>(position));
    }
  }

  static uint64_t idleTimeout(const Flow& flow, const FlowTimeouts& timeouts);
  // When the sweep looks at an idle flow: its idle timeout, or sooner for one the fast path carries.
  static uint64_t checkTimeout(const Flow& flow, const FlowTimeouts& timeouts) {
    uint64_t timeout = idleTimeout(flow, timeouts);
    return flow.offloadState != 0 && timeouts.offloadCheckUs < timeout ? timeouts.offloadCheckUs : timeout;
  }

 private:
  FlowTable(rte_hash* hash, Flow* flows, uint32_t capacity);

  rte_hash* hash_;
  Flow* flows_;
  uint32_t capacity_;
  uint32_t size_ = 0;
  uint32_t sweepCursor_ = 0;
  uint32_t victimCursor_ = 0;
  size_t memoryBytes_ = 0;
  FlowTableStats stats_;
};

}  // namespace vgate::dataplane
