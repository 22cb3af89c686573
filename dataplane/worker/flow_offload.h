// What a live worker tells the fast path about its flows: a flow whose verdict is final and whose inspection
// is over leaves the slow path, and the worker later asks what the fast path carried of it. Called per flow
// (a verdict, an idle check, an end), never per packet; replay has none.
#pragma once

#include <cstdint>

#include "dataplane/flow/flow_table.h"

struct rte_mbuf;

namespace vgate::dataplane {

// Flow::offloadState: nothing offloaded, or offloaded with the client on the pair's inner or outer side
// (which fast path entry counts which direction).
inline constexpr uint8_t kNotOffloaded = 0;
inline constexpr uint8_t kOffloadedClientInner = 1;
inline constexpr uint8_t kOffloadedClientOuter = 2;
// Or'ed in: the entries only let frames too large for the slow path through (inspection goes on).
inline constexpr uint8_t kOffloadInspecting = 4;

enum class OffloadAction : uint8_t {
  kAllow,    // the fast path carries the flow
  kDrop,     // the fast path drops it
  kInspect,  // allowed, still inspected: the slow path gets what the trunk carries, larger frames pass
};

// What the fast path counted for a flow since it was offloaded, by flow direction.
struct OffloadUsage {
  uint64_t pkts[2] = {};  // kToServer, kToClient
  uint64_t bytes[2] = {};
  uint8_t tcpFlags[2] = {};
  uint64_t lastSeenUs = 0;  // in the worker's clock; 0: no packet since the offload
};

class FlowOffload {
 public:
  virtual ~FlowOffload() = default;
  // `flow` has its final verdict; `action` says what the fast path does with it (replacing what an earlier
  // call wrote). `packet` is the one that got it there and came from the client when `packetFromClient`.
  // Returns the flow's new offloadState (kNotOffloaded when nothing was written: the flow stays in the slow
  // path), with kOffloadInspecting for kInspect.
  virtual uint8_t offload(const Flow& flow, const rte_mbuf* packet, bool packetFromClient,
                          OffloadAction action) = 0;
  // Reads what the fast path carried of an offloaded flow. False when its entries are gone (LRU eviction).
  virtual bool usage(const Flow& flow, OffloadUsage& usage) = 0;
  // The flow ended in the worker: its entries go too.
  virtual void retire(const Flow& flow) = 0;
};

}  // namespace vgate::dataplane
