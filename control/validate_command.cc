// `vgated validate FILE`: see validate_command.h.
#include "control/validate_command.h"

#include <cstdio>
#include <string>

#include "control/policy/policy_loader.h"

namespace vgate::control {

int runValidateCommand(int argc, char** argv, int first) {
  if (argc - first != 1 || std::string(argv[first]).rfind("--", 0) == 0) {
    std::fprintf(stderr, "vgated validate: usage: vgated validate FILE\n");
    return 2;
  }
  std::string path = argv[first];
  policy::Policy policy;
  auto diagnostics = validatePolicyFile(path, &policy);
  if (!diagnostics) {
    std::fprintf(stderr, "vgated validate: %s\n", diagnostics.error().message.c_str());
    return 2;
  }
  // Diagnostics go to stdout: they are the command's answer, in the compiler format editors understand.
  for (const auto& diagnostic : diagnostics.value()) std::printf("%s\n", diagnostic.toString().c_str());
  if (hasPolicyErrors(diagnostics.value())) return 2;
  std::printf("%s: policy '%s' is valid: %zu rules, mode %s, default %s\n", path.c_str(), policy.name.c_str(),
              policy.rules.size(), policy.mode == PolicyMode::kAudit ? "audit" : "enforce",
              verdictActionName(policy.defaultAction));
  return 0;
}

}  // namespace vgate::control
