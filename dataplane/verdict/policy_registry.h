// Publishes whole compiled policies to the workers with DPDK's RCU (rte_rcu_qsbr): a worker reads the current
// policy once per burst and reports a quiescent state after it; a new policy replaces the pointer atomically
// and the old one is freed only when every worker has reported since. Workers never lock, never see half a
// policy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "dataplane/verdict/compiled_policy.h"
#include "vgate/result.h"

struct rte_rcu_qsbr;

namespace vgate::dataplane {

class PolicyRegistry {
 public:
  static Result<std::unique_ptr<PolicyRegistry>> create(uint32_t maxWorkers);
  ~PolicyRegistry();
  PolicyRegistry(const PolicyRegistry&) = delete;
  PolicyRegistry& operator=(const PolicyRegistry&) = delete;

  // Worker side. register once on the worker's thread before its first burst; unregister when it stops (a
  // stopped worker that stays registered would block every publish).
  Result<void> registerWorker(uint32_t workerId);
  void unregisterWorker(uint32_t workerId);
  // The policy for this burst (null when none is published). Valid until the caller's next quiescent().
  const CompiledPolicy* current() const { return current_.load(std::memory_order_acquire); }
  // The caller holds no policy pointer any more.
  void quiescent(uint32_t workerId);

  // Control side: makes `next` current, waits until no worker can still hold the previous policy, then frees
  // it. Returns the version that was replaced (0 if none). `reevaluate` (vgatectl policy apply --reevaluate)
  // asks that flows already decided be judged again under `next`; without it they keep their verdict.
  uint32_t publish(std::shared_ptr<const CompiledPolicy> next, bool reevaluate = false);
  uint64_t publishes() const { return publishes_; }

  // Worker side of --reevaluate: the newest version published with it (0: never). A worker that sees it above
  // the last one it acted on, with current() at that version or later, judges its open flows again.
  uint32_t reevaluateVersion() const { return reevaluateVersion_.load(std::memory_order_acquire); }

 private:
  PolicyRegistry(rte_rcu_qsbr* qsbr, uint32_t maxWorkers) : qsbr_(qsbr), maxWorkers_(maxWorkers) {}

  rte_rcu_qsbr* qsbr_;
  uint32_t maxWorkers_;
  std::atomic<const CompiledPolicy*> current_{nullptr};
  std::atomic<uint32_t> reevaluateVersion_{0};
  std::shared_ptr<const CompiledPolicy> owned_;  // keeps current_ alive
  std::mutex publishing_;                        // control side only: one publish at a time
  uint64_t publishes_ = 0;
};

}  // namespace vgate::dataplane
