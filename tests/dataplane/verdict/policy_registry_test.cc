// Hitless policy swap: workers classify without pause while policies are published in a loop; every decision
// must come whole from one policy version, and a replaced policy must be freed once publish() returns.
#include "dataplane/verdict/policy_registry.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "support/eal_environment.h"

namespace vgate::dataplane {
namespace {

// Odd versions deny port 80 by rule "deny-80-v<odd>"; even versions allow it by "allow-80-v<even>". Both
// versions also carry an SNI rule, so the L7 path (and its per-worker scratch) is exercised across swaps.
policy::Policy policyVersion(uint32_t version) {
  policy::Policy policy;
  policy.name = "swap";
  policy.defaultAction = VerdictAction::kAllow;
  policy::Rule sni;
  sni.name = "sni-v" + std::to_string(version);
  sni.action = version % 2 ? VerdictAction::kReject : VerdictAction::kLog;
  sni.tls.sni = {"a.example"};
  policy::Rule port;
  port.name = std::string(version % 2 ? "deny-80-v" : "allow-80-v") + std::to_string(version);
  port.action = version % 2 ? VerdictAction::kDeny : VerdictAction::kAllow;
  port.protocol = policy::Protocol::kTcp;
  port.destination.ports = {{80, 80}};
  policy.rules = {sni, port};
  return policy;
}

L34Tuple tuple(uint16_t port) {
  L34Tuple t{};
  t.ipVersion = 4;
  t.protocol = IPPROTO_TCP;
  t.src[0] = 10, t.src[3] = 1;
  t.dst[0] = 10, t.dst[3] = 2;
  t.srcPort = 40000;
  t.dstPort = port;
  return t;
}

TEST(PolicyRegistry, SwapsUnderLoadGiveWholeVersionsAndFreeTheOldOnes) {
  constexpr uint32_t kWorkers = 3;
  constexpr uint32_t kVersions = 60;
  auto registry = std::move(PolicyRegistry::create(kWorkers)).value();
  auto first = CompiledPolicy::compile(policyVersion(1), 1, {}, kWorkers);
  ASSERT_TRUE(first.ok()) << first.error().message;
  registry->publish(std::move(first).value());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> decisions{0}, torn{0};
  std::vector<std::thread> workers;
  for (uint32_t id = 0; id < kWorkers; ++id) {
    workers.emplace_back([&, id] {
      ASSERT_TRUE(registry->registerWorker(id).ok());
      const L34Tuple web = tuple(80);
      while (!stop.load(std::memory_order_relaxed)) {
        const CompiledPolicy* policy = registry->current();  // one read per "burst"
        uint32_t version = policy->version();
        bool odd = version % 2;
        // First packet: pending (the SNI rule comes first and its L3/L4 part matches), fallback = port rule.
        VerdictDecision decision = policy->classifyNewFlow(web);
        std::string_view sni = "a.example";
        L7Facts facts;
        facts.sni = sni;
        facts.presentFields = kFactSni;
        VerdictDecision l7 = policy->decide(web, facts, decision.ruleId, policy->scratchFor(id));
        L7Facts none;
        VerdictDecision fallback = policy->decide(web, none, decision.ruleId, policy->scratchFor(id));
        bool whole = decision.pending && decision.ruleId == 1 &&
                     policy->ruleNames()[1] ==
                         std::string(odd ? "deny-80-v" : "allow-80-v") + std::to_string(version) &&
                     fallback.action == (odd ? VerdictAction::kDeny : VerdictAction::kAllow) &&
                     l7.ruleId == 0 && l7.action == (odd ? VerdictAction::kReject : VerdictAction::kLog) &&
                     policy->ruleNames()[0] == "sni-v" + std::to_string(version);
        if (!whole) torn.fetch_add(1);
        decisions.fetch_add(1, std::memory_order_relaxed);
        registry->quiescent(id);
      }
      registry->unregisterWorker(id);
    });
  }
  auto started = std::chrono::steady_clock::now();
  for (uint32_t version = 2; version <= kVersions; ++version) {
    auto compiled = CompiledPolicy::compile(policyVersion(version), version, {}, kWorkers);
    ASSERT_TRUE(compiled.ok()) << compiled.error().message;
    std::weak_ptr<const CompiledPolicy> watch = compiled.value();
    uint32_t replaced = registry->publish(std::move(compiled).value());
    EXPECT_EQ(replaced, version - 1);
    EXPECT_FALSE(watch.expired());  // the registry holds the current one
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  stop = true;
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(torn.load(), 0u) << "decisions mixing policy versions";
  EXPECT_GT(decisions.load(), uint64_t{kVersions});
  EXPECT_EQ(registry->publishes(), kVersions);
  std::printf("%u publishes in %.2f s while %u workers made %llu decisions\n", kVersions - 1, seconds,
              kWorkers, static_cast<unsigned long long>(decisions.load()));
}

TEST(PolicyRegistry, ReplacedPolicyIsFreedWhenPublishReturns) {
  auto registry = std::move(PolicyRegistry::create(1)).value();
  auto one = std::move(CompiledPolicy::compile(policyVersion(1), 1)).value();
  std::weak_ptr<const CompiledPolicy> watch = one;
  registry->publish(std::move(one));
  ASSERT_TRUE(registry->registerWorker(0).ok());
  EXPECT_EQ(registry->current()->version(), 1u);
  registry->quiescent(0);
  // A registered worker that keeps reporting lets the publish finish; afterwards nobody holds version 1.
  std::atomic<bool> stop{false};
  std::thread reporter([&] {
    while (!stop) registry->quiescent(0);
  });
  EXPECT_EQ(registry->publish(std::move(CompiledPolicy::compile(policyVersion(2), 2)).value()), 1u);
  EXPECT_TRUE(watch.expired());
  stop = true;
  reporter.join();
  registry->unregisterWorker(0);
}

TEST(PolicyRegistry, BadWorkerIdIsRefused) {
  auto registry = std::move(PolicyRegistry::create(2)).value();
  EXPECT_FALSE(registry->registerWorker(2).ok());
  EXPECT_FALSE(PolicyRegistry::create(0).ok());
}

}  // namespace
}  // namespace vgate::dataplane
