// Policy loader: the public entry points over the validator, with its diagnostics sorted into reading order,
// and bounded reads of policy files.
#include "control/policy/policy_loader.h"

#include <yaml-cpp/exceptions.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "control/policy/policy_validator.h"

namespace vgate::control {
namespace {

constexpr size_t kMaxFileBytes = 32 << 20;

}  // namespace

std::string PolicyDiagnostic::toString() const {
  std::ostringstream out;
  out << location.file << ":" << location.line << ":" << location.column << ": ";
  if (!rule.empty()) out << "rule '" << rule << "': ";
  if (warning) out << "warning: ";
  out << message;
  return out.str();
}

bool hasPolicyErrors(const std::vector<PolicyDiagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const PolicyDiagnostic& d) { return !d.warning; });
}

std::vector<PolicyDiagnostic> validatePolicy(const std::string& yamlText, const std::string& fileName,
                                             policy::Policy* out) {
  std::vector<PolicyDiagnostic> diagnostics;
  policy::Policy policy;
  // yaml-cpp reports through exceptions; none may leave this API.
  try {
    validateDocument(yamlText, fileName, &policy, &diagnostics);
  } catch (const YAML::Exception& e) {
    PolicyDiagnostic diagnostic;
    diagnostic.location = {fileName, e.mark.line >= 0 ? e.mark.line + 1 : 0,
                           e.mark.column >= 0 ? e.mark.column + 1 : 0};
    diagnostic.message = e.msg;
    diagnostics.push_back(std::move(diagnostic));
  } catch (const std::exception& e) {
    diagnostics.push_back(
        PolicyDiagnostic{{fileName, 0, 0}, "", std::string("internal error: ") + e.what(), false});
  } catch (...) {
    diagnostics.push_back(PolicyDiagnostic{{fileName, 0, 0}, "", "internal error", false});
  }
  // Fields are visited in key order, not document order; report in the order a reader meets them.
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [](const PolicyDiagnostic& a, const PolicyDiagnostic& b) {
                     auto key = [](const PolicyDiagnostic& d) {
                       // Position-less ones (the "too many errors" line) go last.
                       return d.location.line == 0 ? std::pair{INT32_MAX, 0}
                                                   : std::pair{d.location.line, d.location.column};
                     };
                     return key(a) < key(b);
                   });
  if (out && !hasPolicyErrors(diagnostics)) *out = std::move(policy);
  return diagnostics;
}

Result<policy::Policy> loadPolicy(const std::string& yamlText, const std::string& fileName) {
  try {
    policy::Policy policy;
    std::vector<PolicyDiagnostic> diagnostics = validatePolicy(yamlText, fileName, &policy);
    if (!hasPolicyErrors(diagnostics)) return policy;
    std::string message;
    for (const PolicyDiagnostic& d : diagnostics) {
      if (d.warning) continue;
      if (!message.empty()) message += "\n";
      message += d.toString();
    }
    return makeError(EINVAL, std::move(message));
  } catch (const std::exception& e) {
    return makeError(ENOMEM, std::string("loading policy: ") + e.what());
  }
}

Result<std::string> readPolicyFile(const std::string& path) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      return makeError(errno ? errno : ENOENT,
                       "cannot open " + path + ": " + std::strerror(errno ? errno : ENOENT));
    std::string text;
    char buffer[65536];
    while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
      text.append(buffer, static_cast<size_t>(in.gcount()));
      if (text.size() > kMaxFileBytes) return makeError(EFBIG, path + ": policy file is too large");
    }
    if (in.bad()) return makeError(EIO, "cannot read " + path);
    return text;
  } catch (const std::exception& e) {
    return makeError(ENOMEM, std::string("reading policy: ") + e.what());
  }
}

Result<std::vector<PolicyDiagnostic>> validatePolicyFile(const std::string& path, policy::Policy* out) {
  auto text = readPolicyFile(path);
  if (!text) return text.error();
  return validatePolicy(text.value(), path, out);
}

Result<policy::Policy> loadPolicyFile(const std::string& path) {
  auto text = readPolicyFile(path);
  if (!text) return text.error();
  return loadPolicy(text.value(), path);
}

}  // namespace vgate::control
