// The fast path's user side: loads the TC program (libbpf skeleton), attaches it to ports' ingress, and
// writes flow verdicts into its map so that decided flows bypass the slow path. Detaches and unloads on
// destruction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vgate/bpf/fast_path.h"
#include "vgate/counters.h"
#include "vgate/flow_key.h"
#include "vgate/result.h"

struct fast_path;

namespace vgate::dataplane {

// The TC program's own counters, summed over CPUs; named by VGATE_FP_STATS.
struct FastPathStats {
#define VGATE_FP_STAT_FIELD(id, name, help) uint64_t name = 0;
  VGATE_FP_STATS(VGATE_FP_STAT_FIELD)
#undef VGATE_FP_STAT_FIELD

  template <typename Visitor>
  void forEach(Visitor&& visitor) const {
#define VGATE_FP_STAT_VISIT(id, name, help) \
  visitor(::vgate::CounterInfo{#name, ::vgate::CounterKind::kCounter, "packets", help}, name);
    VGATE_FP_STATS(VGATE_FP_STAT_VISIT)
#undef VGATE_FP_STAT_VISIT
  }
};

// A flow's 5-tuple as its client sent it; addresses in network order, IPv4 in the first 4 bytes; ports host
// order.
struct FastPathTuple {
  uint8_t ipVersion = 4;
  uint8_t protocol = 0;
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
  uint16_t srcPort = 0;
  uint16_t dstPort = 0;
};

// The key the TC program builds for `tuple` entering on port `ifindex` (either direction gives the same tuple
// part).
vgate_fp_key fastPathKey(uint32_t ifindex, const FastPathTuple& tuple);
// The same from the dataplane's normalized flow key (its zone is not part of the fast path's key: the port
// is).
vgate_fp_key fastPathKey(uint32_t ifindex, const FlowKey& flow);

struct FastPathOptions {
  uint32_t maxFlows = 1u << 18;
  // A directory on a bpffs mount (e.g. /sys/fs/bpf/vgate). Its maps are pinned there, and a later load with
  // the same directory adopts them with every flow entry and counter: a restarted vgated keeps established
  // flows.
  std::string pinDir;
  // Leave the program attached when this object goes (a restart or a crash must not open or close the
  // ports: the fail mode covers the gap). Off for tests and for an explicit detach.
  bool keepAttached = false;
};

class FastPath {
 public:
  static Result<std::unique_ptr<FastPath>> load(uint32_t maxFlows);
  static Result<std::unique_ptr<FastPath>> load(const FastPathOptions& options);
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  // Attaches the program to the ingress of `ifindex`, in the caller's network namespace, replacing a program
  // a previous vgated left there (one filter per port, changed atomically).
  Result<void> attachIngress(int ifindex);
  // Attaches the trunk return program to the ingress of vgate's end of a trunk.
  Result<void> attachTrunkReturn(int ifindex);
  // Removes whichever vgate program sits on the ingress of `ifindex` (a port being detached).
  Result<void> detachIngress(int ifindex);
  // Writes (or replaces) the verdict of a flow on one port.
  Result<void> setFlow(const vgate_fp_key& key, uint32_t action, uint32_t redirectIfindex);
  Result<vgate_fp_value> flow(const vgate_fp_key& key) const;
  Result<void> removeFlow(const vgate_fp_key& key);
  FastPathStats stats() const;

  // What the TC program does with flows it does not know once the dataplane's heartbeat is older than
  // `heartbeatTimeoutMs`: VGATE_FP_FAIL_CLOSED drops them, VGATE_FP_FAIL_OPEN sends them to the port's
  // partner.
  Result<void> setFailMode(uint32_t failMode, uint32_t heartbeatTimeoutMs);
  // The dataplane is alive (CLOCK_MONOTONIC now). Called by the workers' control loop, not per packet.
  Result<void> beat();
  // A port the program sits on: its fixed partner (inner <-> outer), for fail-open and non-flow traffic, and
  // the pair id and side it tags misses with. `pairId` 0 for a port outside any pair (tests).
  Result<void> setPort(uint32_t ifindex, uint32_t partnerIfindex, uint16_t pairId = 0,
                       uint8_t side = VGATE_FP_SIDE_INNER);
  Result<void> removePort(uint32_t ifindex);
  // A pair's two ports, for packets the dataplane hands back; setPair(id, 0, 0) forgets it.
  Result<void> setPair(uint16_t pairId, uint32_t innerIfindex, uint32_t outerIfindex);
  // The trunks misses go down (vgate's ends, by ifindex), chosen by a symmetric flow hash; empty: misses go
  // up the port's own stack (no slow path).
  // `maxFrame`: the largest frame (untagged, Ethernet header included) they carry; larger misses are
  // dropped and counted rather than lost silently on the way.
  Result<void> setTrunks(const std::vector<uint32_t>& trunkIfindexes, uint32_t maxFrame = 0);
  // Removes every flow entry on `ifindex` (a detached port); returns how many.
  size_t removeFlowsOf(uint32_t ifindex);
  // Removes entries with no packet for longer than `idleNs` (an entry counts as seen when written): those a
  // previous vgated left for flows no worker owns now, which would otherwise leave only by LRU eviction.
  size_t removeFlowsIdleFor(uint64_t idleNs);

 private:
  FastPath(fast_path* skeleton, bool keepAttached) : skeleton_(skeleton), keepAttached_(keepAttached) {}
  Result<vgate_fp_config> config() const;
  Result<void> writeConfig(const vgate_fp_config& config);
  Result<void> attach(int ifindex, int programFd);
  // Removes the flow entries `doomed` picks: the one walk both removals share.
  size_t removeFlowsWhere(const std::function<bool(const vgate_fp_key&)>& doomed);

  fast_path* skeleton_;
  bool keepAttached_;
  std::vector<int> attached_;
};

}  // namespace vgate::dataplane
