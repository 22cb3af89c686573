// vgatectl's commands: the command line turned into a control socket request, and the reply turned into the
// text (or JSON) a user reads. runVgatectl() is the whole program, so that tests can run it in process too.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "vgate/result.h"

namespace vgate::control {

inline constexpr const char* kDefaultControlSocket = "/run/vgate/vgated.sock";

// vgatectl's exit statuses, a contract for scripts.
enum CtlExit : int {
  kCtlOk = 0,
  kCtlDaemonError = 1,  // the daemon replied with an error status
  kCtlUsage = 2,        // bad command line
  kCtlUnreachable = 3,  // no connection, or no usable reply
};

extern const char* const kVgatectlUsage;

// What a command line asks for.
struct CtlInvocation {
  std::string socketPath;  // --socket, else $VGATE_SOCKET, else kDefaultControlSocket
  bool help = false;       // print kVgatectlUsage and nothing else
  std::string command;     // "attach", "detach", "status", "policy"
  std::string subcommand;  // policy's: "apply", "get", "validate", "diff", "history"
  std::string verb;        // the request's verb
  nlohmann::json args = nlohmann::json::object();
  // policy apply|validate|diff FILE: read by runVgatectl into args "text" (args "fileName" is FILE as given,
  // for the daemon's messages).
  std::string policyFile;
  bool json = false;  // status --json, policy get|diff|history --json
};

// Parses argv[1..argc). `environmentSocket` is $VGATE_SOCKET (nullptr or empty when unset). The error is one
// line naming the problem, without the "try --help" hint.
Result<CtlInvocation> parseCtlCommandLine(int argc, char** argv, const char* environmentSocket);

// One line (with its newline) for a successful reply; `requestArgs` fill in what the result leaves out.
std::string formatAttachResult(const nlohmann::json& result, const nlohmann::json& requestArgs);
std::string formatDetachResult(const nlohmann::json& result);
// A readable summary of a status result; missing fields show as "-" or are left out.
std::string formatStatusText(const nlohmann::json& result);

// The policy verbs' successful replies as text.
std::string formatPolicyApplyResult(const nlohmann::json& result);
std::string formatPolicyValidateResult(const nlohmann::json& result);
// The policy in force as YAML that can be applied again, under a comment line saying what it is.
std::string formatPolicyGetResult(const nlohmann::json& result);
// "+ rule 'name'", "- rule 'name'", "~ rule 'name': fields", "~ mode: enforce -> audit"; "no differences".
std::string formatPolicyDiffResult(const nlohmann::json& result);
std::string formatPolicyHistoryResult(const nlohmann::json& result);

// The whole program: returns its exit status (a CtlExit).
int runVgatectl(int argc, char** argv, const char* environmentSocket, std::ostream& out, std::ostream& err);

}  // namespace vgate::control
