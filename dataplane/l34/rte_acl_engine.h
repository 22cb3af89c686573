// The rte_acl engine: DPDK's ACL tries, kept to compare the bitmap engine with. Private to dataplane/l34.
#pragma once

#include <rte_acl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/l34/l34_classifier.h"
#include "dataplane/l34/l34_engine.h"
#include "dataplane/l34/l34_rules.h"
#include "vgate/result.h"

namespace vgate::dataplane::l34 {

// Context names are the classifier's with "_v4" or "_v6" appended, within RTE_ACL_NAMESIZE.
inline constexpr size_t kRteAclMaxNameLength = RTE_ACL_NAMESIZE - 4;
inline constexpr uint64_t kRteAclMaxElements = RTE_ACL_MAX_INDEX;

// Refused when there are more rules than priorities: each rule takes one.
Result<void> checkRteAclRuleCount(size_t rules);

// A rule's elements here: one per item of its cross product, each protocol included.
uint64_t rteAclElementCount(const Expansion& expansion);

// name: see L34Classifier::build. Fills stats.memoryBytes and stats.algorithm.
Result<std::unique_ptr<Engine>> buildRteAclEngine(const std::vector<L34Rule>& rules,
                                                  const ExpandedRules& expanded, const std::string& name,
                                                  int socket, const L34ClassifierConfig& config,
                                                  L34ClassifierStats& stats);

}  // namespace vgate::dataplane::l34
