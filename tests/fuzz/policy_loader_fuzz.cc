// Fuzzes the policy loader: any text must give diagnostics or a policy, never a crash, hang or exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/policy/policy_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  vgate::policy::Policy policy;
  std::vector<vgate::control::PolicyDiagnostic> diagnostics =
      vgate::control::validatePolicy(text, "fuzz.yaml", &policy);
  // Format every diagnostic too: it is what an operator sees.
  for (const auto& diagnostic : diagnostics) (void)diagnostic.toString();
  return 0;
}
