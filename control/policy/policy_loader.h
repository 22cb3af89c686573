// Policy loader and validator: YAML text -> vgate::policy::Policy, with every problem reported at its
// file:line:column so that an operator fixes a policy in one pass.
#pragma once

#include <string>
#include <vector>

#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::control {

struct PolicyDiagnostic {
  policy::SourceLocation location;
  std::string rule;  // the rule's name ("#N" for a rule without one); empty outside rules
  std::string message;
  // Warnings do not stop a policy from loading; they are for things that are legal but almost surely a
  // mistake.
  bool warning = false;

  // "file:line:column: rule 'name': message" (the rule part only inside rules; "warning: " before warnings).
  std::string toString() const;
};

// Validates a policy document and reports every problem found, not just the first. `out`, when not null, is
// filled when there are no errors (warnings allowed). Never throws.
std::vector<PolicyDiagnostic> validatePolicy(const std::string& yamlText, const std::string& fileName,
                                             policy::Policy* out);

// Loads a policy; on failure the error's message holds every error diagnostic, one per line. Never throws.
Result<policy::Policy> loadPolicy(const std::string& yamlText, const std::string& fileName);
Result<policy::Policy> loadPolicyFile(const std::string& path);
// The file's text, bounded like loadPolicyFile; an error names the path when it cannot be read.
Result<std::string> readPolicyFile(const std::string& path);
// validatePolicy on a file: an error only when the file cannot be read, else every diagnostic.
Result<std::vector<PolicyDiagnostic>> validatePolicyFile(const std::string& path, policy::Policy* out);

// True when the list holds at least one error (not only warnings).
bool hasPolicyErrors(const std::vector<PolicyDiagnostic>& diagnostics);

}  // namespace vgate::control
