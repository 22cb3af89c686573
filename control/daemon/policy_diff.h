// Rule-level differences between two policies, for `vgatectl policy diff`: rules added, removed and changed
// (by name, with the fields that differ), the policy's own settings, and whether the rules both keep changed
// their order (first match wins, so order is meaning).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vgate/policy.h"

namespace vgate::control {

struct RuleChange {
  std::string rule;
  std::vector<std::string> fields;  // dotted paths: "action", "match.destination.ports"
};

struct SettingChange {
  std::string field;  // "name", "mode", "default", "endpoints"
  nlohmann::json from;
  nlohmann::json to;
};

struct PolicyDiff {
  std::vector<std::string> added;  // in the new policy's order
  std::vector<std::string> removed;
  std::vector<RuleChange> changed;
  std::vector<SettingChange> settings;
  bool orderChanged = false;  // the rules in both are in another order

  bool empty() const {
    return added.empty() && removed.empty() && changed.empty() && settings.empty() && !orderChanged;
  }
  nlohmann::json toJson() const;
};

// The rule as data: every field the model has, without its source location, so that two rules are the same
// exactly when their JSON is.
nlohmann::json ruleJson(const policy::Rule& rule);

// Rules are matched by name; a rule without one is "#N" (its 1-based place), a repeated name "name#2".
PolicyDiff diffPolicies(const policy::Policy& from, const policy::Policy& to);

}  // namespace vgate::control
