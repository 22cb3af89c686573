// The checks of a policy's regexes (tls.sniRegex, payload.regex): Hyperscan's parser and analysis, without a
// database, on what l7match compiles, so that what validates is what the matcher compiles (only a database
// too large is left for the matcher to report). Each call is slow, so checks are made ahead on threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/policy/policy_yaml_tree.h"
#include "dataplane/l7match/l7_patterns.h"

namespace vgate::control {

class RegexChecker {
 public:
  // Why `pattern` cannot be a regex of `condition` (kSniRegex or kPayloadRegex; `window`: the payload's
  // max_offset, 0 for none), or nullopt.
  std::optional<std::string> check(const std::string& pattern, dataplane::L7Condition condition,
                                   uint32_t window);
  // Makes on several threads the checks that the rules (the spec's rule nodes) from `first` on will need,
  // a batch of them; returns the index of the first rule it did not cover. check() then finds them made.
  size_t prefetch(const std::vector<const Node*>& rules, size_t first);

 private:
  std::optional<std::string> hyperscan(const dataplane::L7Expression& expression);

  std::unordered_map<std::string, std::optional<std::string>> results_;  // aliases can repeat a regex
};

}  // namespace vgate::control
