// RCU publication of compiled policies: see policy_registry.h.
#include "dataplane/verdict/policy_registry.h"

#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

namespace vgate::dataplane {

Result<std::unique_ptr<PolicyRegistry>> PolicyRegistry::create(uint32_t maxWorkers) {
  if (maxWorkers == 0) return makeError(EINVAL, "a policy registry needs room for at least one worker");
  size_t size = rte_rcu_qsbr_get_memsize(maxWorkers);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("vgate_policy_rcu", size, RTE_CACHE_LINE_SIZE));
  if (qsbr == nullptr) return makeError(ENOMEM, "cannot allocate the policy RCU state");
  if (rte_rcu_qsbr_init(qsbr, maxWorkers) != 0) {
    rte_free(qsbr);
    return makeError(rte_errno, std::string("rte_rcu_qsbr_init: ") + rte_strerror(rte_errno));
  }
  return std::unique_ptr<PolicyRegistry>(new PolicyRegistry(qsbr, maxWorkers));
}

PolicyRegistry::~PolicyRegistry() { rte_free(qsbr_); }

Result<void> PolicyRegistry::registerWorker(uint32_t workerId) {
  if (workerId >= maxWorkers_) return makeError(EINVAL, "worker id beyond the registry's size");
  if (rte_rcu_qsbr_thread_register(qsbr_, workerId) != 0) {
    return makeError(rte_errno, std::string("rte_rcu_qsbr_thread_register: ") + rte_strerror(rte_errno));
  }
  rte_rcu_qsbr_thread_online(qsbr_, workerId);
  return {};
}

void PolicyRegistry::unregisterWorker(uint32_t workerId) {
  rte_rcu_qsbr_thread_offline(qsbr_, workerId);
  rte_rcu_qsbr_thread_unregister(qsbr_, workerId);
}

void PolicyRegistry::quiescent(uint32_t workerId) { rte_rcu_qsbr_quiescent(qsbr_, workerId); }

uint32_t PolicyRegistry::publish(std::shared_ptr<const CompiledPolicy> next, bool reevaluate) {
  std::lock_guard<std::mutex> lock(publishing_);
  std::shared_ptr<const CompiledPolicy> previous = std::move(owned_);
  owned_ = std::move(next);
  current_.store(owned_.get(), std::memory_order_release);
  // After the pointer: a worker that sees the request also finds the policy it is for.
  if (reevaluate && owned_) reevaluateVersion_.store(owned_->version(), std::memory_order_release);
  // Every online worker reports a quiescent state after this point before we return: none can still be using
  // `previous`, which is then freed here, on the control thread.
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  ++publishes_;
  return previous ? previous->version() : 0;
}

}  // namespace vgate::dataplane
