// The live slow path: one DPDK port per trunk (net_af_xdp on the trunk's far end, net_af_packet selectable),
// one worker lcore per port. A worker receives the misses the fast path tagged and sent down its trunk,
// judges them, offloads decided flows to the fast path and hands each packet back through the trunk with the
// side it must leave by. Idle workers back off (adaptive polling) instead of spinning a core.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/fastpath/fast_path.h"
#include "dataplane/live/port_offload.h"
#include "dataplane/live/port_table.h"
#include "dataplane/records/record_pools.h"
#include "dataplane/worker/worker.h"
#include "vgate/result.h"

struct rte_mempool;

namespace vgate::dataplane {

struct LiveOptions {
  std::vector<std::string> trunkInterfaces;  // the far end of each trunk, in the calling thread's netns
  std::string driver = "net_af_xdp";         // or "net_af_packet"
  uint32_t flowCapacity = 1u << 18;          // per worker
  uint32_t inspectionSlots = 2048;           // per worker
  uint64_t inspectionTimeoutUs = 5'000'000;
  ExceptionPolicy exceptionPolicy = ExceptionPolicy::kPolicy;
  FlowTimeouts timeouts;
  PolicyRegistry* policies = nullptr;  // needs a thread id per worker
  FastPath* fastPath = nullptr;        // none: flows are never offloaded
  const PortTable* ports = nullptr;
  // Idle polling: a worker that has seen no packet for idleSpinUs starts sleeping between polls, 1 us first,
  // doubling up to maxSleepUs; a packet brings it back to spinning. Gaps within a busy flow (a TCP sender
  // waiting for ACKs) stay shorter than idleSpinUs, so they never meet a sleep.
  uint32_t idleSpinUs = 2000;
  uint32_t maxSleepUs = 1000;
  // After deepIdleUs without a packet the cap rises to deepSleepUs: a quiet node costs well under 1% of a
  // core (each empty poll of an AF_XDP queue is ~20 us of syscalls), and only the first packet after a quiet
  // spell waits that long.
  uint32_t deepIdleUs = 200'000;
  uint32_t deepSleepUs = 5000;
  // Benchmarks: keep every flow in the slow path (no fast path entries), or forward without judging (the
  // raw cost of the trunk and AF_XDP: the slow path's upper bound).
  bool offload = true;
  bool ioForward = false;
};

// A lane's own counters, beside its worker's: what happens between the trunk and the worker.
#define VGATE_LIVE_LANE_COUNTERS(X)                                                                       \
  X(txDropped, counter, "packets", "packets handed back while the trunk's tx queue was full: dropped")    \
  X(untagged, counter, "packets", "frames from a trunk without vgate's port tag: dropped")                \
  X(offloadWriteFailures, counter, "flows", "decided flows whose fast path entries could not be written") \
  X(busyTime, counter, "nanoseconds", "time of poll rounds that received packets")                        \
  X(idleTime, counter, "nanoseconds", "time of poll rounds that received nothing, sleeps included")

struct LaneCounters {
  VGATE_COUNTER_MEMBERS(LaneCounters, VGATE_LIVE_LANE_COUNTERS)
};

// A snapshot of one worker for status and metrics (read while it runs: each field is a monotonic counter
// written by one thread, read torn-free on 64-bit).
struct LiveWorkerStatus {
  uint16_t id = 0;
  std::string driver;
  std::string interface;
  uint32_t flows = 0;  // in the flow table now
  WorkerCounters counters;
  InspectionCounters inspection;
  FragmentCounters fragments;
  LaneCounters lane;
  uint32_t recordRingUsed = 0;  // flow records waiting on the worker's ring for the writer
  uint32_t recordRingCapacity = 0;
};

class LiveDataplane {
 public:
  // EAL must be running with at least trunkInterfaces.size() + 1 lcores.
  static Result<std::unique_ptr<LiveDataplane>> start(const LiveOptions& options);
  ~LiveDataplane();
  LiveDataplane(const LiveDataplane&) = delete;
  LiveDataplane& operator=(const LiveDataplane&) = delete;

  // Moves the workers' flow records to `sink`; the control thread calls it often (records wait in rings).
  // Takes at most a bounded time (see kDrainBudgetNs); false when records were left for the next call.
  bool drainRecords(RecordSink& sink);
  // True when every worker went round its loop within `withinMs`: the heartbeat is only written then.
  bool workersAlive(uint64_t withinMs) const;
  std::vector<LiveWorkerStatus> status() const;
  // Stops the workers; each ends its flows with reason shutdown (their fast path entries stay).
  void stop(RecordSink& sink);

 private:
  LiveDataplane() = default;
  struct Lane;
  static int laneMain(void* lane);

  LiveOptions options_;
  rte_mempool* mbufs_ = nullptr;
  std::unique_ptr<RecordPools> records_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
};

}  // namespace vgate::dataplane
