// L34Classifier: checks and expands the rules, then builds the engine the config names (bitmap_engine.cc,
// rte_acl_engine.cc) and classifies through it in bursts.
#include "dataplane/l34/l34_classifier.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "dataplane/l34/bitmap_engine.h"
#include "dataplane/l34/l34_engine.h"
#include "dataplane/l34/l34_rules.h"
#include "dataplane/l34/rte_acl_engine.h"

namespace vgate::dataplane {

Result<std::unique_ptr<L34Classifier>> L34Classifier::build(const std::vector<L34Rule>& rules,
                                                            const std::string& name, int socket,
                                                            const L34ClassifierConfig& config) {
  auto started = std::chrono::steady_clock::now();
  bool acl = config.engine == L34Engine::kRteAcl;
  if (name.empty() || name.size() > l34::kRteAclMaxNameLength)
    return makeError(
        EINVAL, "classifier name must be 1.." + std::to_string(l34::kRteAclMaxNameLength) + " characters");
  if (acl) {
    if (auto fits = l34::checkRteAclRuleCount(rules.size()); !fits) return fits.error();
  }
  if (auto valid = l34::validate(rules, config.engine); !valid) return valid.error();

  auto expanded =
      l34::expandRules(rules, acl ? l34::rteAclElementCount : l34::bitmapElementCount, config.maxAclRules);
  if (!expanded) return expanded.error();
  uint64_t v4Count = expanded.value().ipv4Elements, v6Count = expanded.value().ipv6Elements;
  uint64_t maxIndex = acl ? l34::kRteAclMaxElements : l34::kBitmapMaxElements;
  if (v4Count > maxIndex || v6Count > maxIndex)
    return makeError(E2BIG, "more elements than the classifier can index");

  std::unique_ptr<L34Classifier> classifier(new L34Classifier());
  auto& stats = classifier->stats_;
  stats.rules = static_cast<uint32_t>(rules.size());
  stats.ipv4AclRules = v4Count;
  stats.ipv6AclRules = v6Count;
  if (!acl) {
    classifier->engine_ = l34::buildBitmapEngine(rules, std::move(expanded).value(), config, stats);
  } else {
    auto engine = l34::buildRteAclEngine(rules, expanded.value(), name, socket, config, stats);
    if (!engine) return engine.error();
    classifier->engine_ = std::move(engine).value();
  }
  stats.buildNanoseconds = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started)
          .count());
  return classifier;
}

L34Classifier::~L34Classifier() = default;

void L34Classifier::classify(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const {
  for (uint32_t done = 0; done < count; done += l34::kBurst) {
    engine_->classifyBurst(tuples + done, std::min(l34::kBurst, count - done), ruleIds + done);
  }
}

}  // namespace vgate::dataplane
