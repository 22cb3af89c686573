// The validator: walks a policy document's tree by hand (not yaml-cpp's converters), so that each problem
// is reported at the position of the node at fault and one pass collects all of them.
#pragma once

#include <string>
#include <vector>

#include "control/policy/policy_loader.h"
#include "vgate/policy.h"

namespace vgate::control {

// Validates `text` into `policy`, appending every problem to `diagnostics` in the order found (not sorted).
// May throw: yaml-cpp's exceptions, and std::bad_alloc.
void validateDocument(const std::string& text, const std::string& fileName, policy::Policy* policy,
                      std::vector<PolicyDiagnostic>* diagnostics);

}  // namespace vgate::control
