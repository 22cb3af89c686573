// A policy compiled for the dataplane: container selectors resolved to addresses, two L3/L4 classifiers and
// the Hyperscan L7 matcher (built concurrently: the matcher on its own thread). Immutable once built and
// shared read-only by every worker (RCU publication swaps whole CompiledPolicy objects, so a worker never
// sees half of one).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/l34/l34_classifier.h"
#include "dataplane/l7match/l7_matcher.h"
#include "vgate/flow_record.h"
#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::dataplane {

struct VerdictDecision {
  uint32_t ruleId = kNoRule;  // kNoRule: the policy's default decided
  VerdictAction action = VerdictAction::kAllow;
  bool pending = false;  // an L7 rule before ruleId may still match: wait for the flow's L7 facts
};

// Per-worker matching state for one CompiledPolicy.
struct PolicyScratch {
  std::unique_ptr<L7Scratch> l7;
  RuleSet matches;
};

struct CompiledPolicyStats {
  double compileMillis = 0;
  uint32_t rules = 0;
  uint32_t l34Rules = 0;       // decided on the first packet
  uint32_t l7Rules = 0;        // need L7 facts
  uint32_t httpRules = 0;      // of l7Rules, those with an HTTP condition
  uint32_t neverMatching = 0;  // container selectors that match no known container
  L34ClassifierStats l34;
  L34ClassifierStats l7L34;
  L7MatcherStats l7;
};

class CompiledPolicy {
 public:
  // `workers` scratches are made with the policy, so that a worker picking up a newly published policy
  // allocates nothing: worker i uses scratchFor(i).
  static Result<std::shared_ptr<const CompiledPolicy>> compile(const policy::Policy& policy, uint32_t version,
                                                               const CompileOptions& options = {},
                                                               uint32_t workers = 0);
  ~CompiledPolicy();
  CompiledPolicy(const CompiledPolicy&) = delete;
  CompiledPolicy& operator=(const CompiledPolicy&) = delete;

  // A new flow's first packet, as its client sent it: decided now, or pending with ruleId the L3/L4 fallback.
  // A tuple whose direction is unknown gets it from the policy's endpoints (directionOf).
  VerdictDecision classifyNewFlow(const L34Tuple& tuple) const;
  // Where the port tags do not tell (replay): egress when the client is one of the policy's endpoints,
  // else ingress when the server is, else unknown (rules with a direction then never match).
  uint8_t directionOf(const L34Tuple& tuple) const;
  // The decision for a pending flow once its L7 facts are known (absent facts match no L7 condition).
  VerdictDecision decide(const L34Tuple& tuple, const L7Facts& facts, uint32_t fallbackRule,
                         PolicyScratch& scratch) const;

  Result<std::unique_ptr<PolicyScratch>> makeScratch() const;
  // Worker `workerId`'s own scratch, made at compile time; only that worker may use it.
  PolicyScratch& scratchFor(uint32_t workerId) const { return *scratches_[workerId]; }
  uint32_t workerScratches() const { return static_cast<uint32_t>(scratches_.size()); }

  // Whether a rule with an HTTP condition (host, path, method) could decide this new flow: one whose L3/L4
  // part matches the tuple and that comes before the rule deciding on L3/L4 alone. Such a flow has each of
  // its requests judged and stays in the slow path while it speaks HTTP (DESIGN.md "HTTP judging").
  bool judgesHttp(const L34Tuple& tuple) const;
  bool hasHttpRules() const { return stats_.httpRules > 0; }

  // Whether a decision must wait for the server's flight: only certificate conditions need it. Otherwise a
  // pending flow is decided as soon as the client's ClientHello or request is complete.
  bool needsServerFacts() const { return needsServerFacts_; }

  VerdictAction actionOf(uint32_t ruleId) const {
    return ruleId < actions_.size() ? actions_[ruleId] : defaultAction_;
  }
  PolicyMode mode() const { return mode_; }
  uint32_t version() const { return version_; }
  const std::string& name() const { return name_; }
  const std::vector<std::string>& ruleNames() const { return ruleNames_; }
  const CompiledPolicyStats& stats() const { return stats_; }

 private:
  CompiledPolicy() = default;
  bool l34Matches(uint32_t ruleId, const L34Tuple& tuple) const;
  // The tuple, its direction filled in by directionOf where the port tag left it unknown.
  L34Tuple withDirection(const L34Tuple& tuple) const;

  std::string name_;
  uint32_t version_ = 0;
  PolicyMode mode_ = PolicyMode::kEnforce;
  VerdictAction defaultAction_ = VerdictAction::kAllow;
  std::vector<std::string> ruleNames_;
  std::vector<VerdictAction> actions_;
  std::unique_ptr<L34Classifier> l34Only_;  // rules without L7 conditions
  std::unique_ptr<L34Classifier> l7L34_;    // the L3/L4 part of rules with L7 conditions
  std::unique_ptr<L34Classifier> httpL34_;  // the L3/L4 part of rules with HTTP conditions
  std::shared_ptr<const L7Matcher> l7_;
  std::vector<L34Rule> l7RuleParts_;             // indexed by rule id; used only for rules with L7 conditions
  std::vector<uint8_t> reachable_;               // 0: a container selector matched no container
  std::vector<policy::Cidr> endpointAddresses_;  // every endpoint's, for directionOf
  bool needsServerFacts_ = false;
  std::vector<std::unique_ptr<PolicyScratch>> scratches_;
  CompiledPolicyStats stats_;
};

// Glob on container names: '*' any run, '?' one character.
bool globMatches(const std::string& pattern, const std::string& text);

}  // namespace vgate::dataplane
