// vgated's policy verbs (policy apply, get, validate, diff, history) and the policy's life across restarts
// and SIGHUP. A policy arrives as text, is validated and compiled on the calling thread (a control socket
// handler's or the SIGHUP reload's, never the main loop's or the heartbeat's), then published to the workers
// through the RCU registry. A bad policy changes nothing. What is in force is persisted (policy_store.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/daemon/policy_store.h"
#include "control/flowlog/flow_log_format.h"
#include "control/socket/control_protocol.h"
#include "dataplane/verdict/policy_registry.h"
#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::control {

// The loader's bound on a document: a longer text is refused before it is parsed.
inline constexpr size_t kMaxPolicyTextBytes = size_t{32} << 20;

struct PolicyControlOptions {
  std::string stateDir;
  uint32_t workers = 1;               // scratches compiled with each policy
  dataplane::CompileOptions compile;  // the Hyperscan database cache dir, threads
  // Told of each compile for publishing (metrics): the policy and its version once in force, or nullptr.
  std::function<void(const policy::Policy* published, uint32_t version, double compileSeconds)> onCompiled;
};

// Hands the flow log the names of a version's rules; called before that version is published, so that no
// record of it can arrive first.
using PolicyNamesSink = std::function<void(PolicyNames)>;

class PolicyControl {
 public:
  // Reads the store (the applied policy and the history); publishes nothing yet.
  static Result<std::unique_ptr<PolicyControl>> open(const PolicyControlOptions& options,
                                                     dataplane::PolicyRegistry* registry,
                                                     PolicyNamesSink names);

  // At start: puts a policy in force. With `policyPath` (--policy), its file wins when nothing was applied
  // yet or when its text changed since vgated last applied it; otherwise the persisted applied policy
  // (perhaps a later `vgatectl policy apply`) is put back under its own version. No policy at all: every flow
  // allowed. The text returned says which, for the log.
  Result<std::string> restore(const std::string& policyPath);
  // SIGHUP: the --policy file again, as a new version (a bad file changes nothing).
  Result<std::string> reloadFile(const std::string& path);

  // The verbs. args: apply {text, fileName?, reevaluate?}; validate and diff {text, fileName?}.
  ControlReply apply(const nlohmann::json& args, const PeerCredentials& peer);
  ControlReply validate(const nlohmann::json& args);
  ControlReply diff(const nlohmann::json& args);
  ControlReply get(const nlohmann::json& args) const;
  ControlReply history(const nlohmann::json& args) const;

  // For status: name, version, mode, rules, time and source of the policy in force; null without one.
  nlohmann::json summary() const;
  uint32_t versionInForce() const;

 private:
  struct InForce {
    PolicyRecord record;
    policy::Policy policy;
  };

  PolicyControl(const PolicyControlOptions& options, dataplane::PolicyRegistry* registry,
                PolicyNamesSink names)
      : options_(options), store_(options.stateDir), registry_(registry), names_(std::move(names)) {}

  // Validates, compiles and publishes `text` as the next version, records the attempt and persists it.
  ControlReply applyText(const std::string& text, const std::string& fileName, PolicyOrigin origin,
                         const std::string& source, bool reevaluate);
  // The persisted policy, under its own version.
  Result<void> reinstate(const PolicyRecord& record);
  Result<void> publish(const policy::Policy& policy, uint32_t version, bool reevaluate,
                       double* compileMillis);
  void record(PolicyRecord attempt);
  // "failed" replies of validate/apply/diff: EINVAL, every diagnostic in result.diagnostics.
  ControlReply invalid(const std::string& fileName, const std::vector<std::string>& diagnostics,
                       const std::vector<std::string>& warnings, const std::string& what) const;

  PolicyControlOptions options_;
  PolicyStore store_;
  dataplane::PolicyRegistry* registry_;
  PolicyNamesSink names_;

  std::mutex applying_;       // one apply (or reload) at a time, from validation to persistence
  mutable std::mutex state_;  // what follows: read by get, diff, history and status while an apply runs
  std::shared_ptr<const InForce> inForce_;
  std::optional<PolicyRecord> persisted_;  // applied.json as read at open, until restore() uses it
  std::vector<PolicyRecord> history_;
  uint32_t nextVersion_ = 1;
};

}  // namespace vgate::control
