// vgated's policy verbs and the policy's life across restarts: see policy_control.h.
#include "control/daemon/policy_control.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <initializer_list>
#include <string_view>

#include "control/daemon/policy_diff.h"
#include "control/policy/policy_loader.h"
#include "dataplane/verdict/compiled_policy.h"

namespace vgate::control {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct TextRequest {
  std::string text;
  std::string fileName = "policy";
  bool reevaluate = false;
};

Result<TextRequest> parseTextRequest(const Json& args, const std::string& verb, bool reevaluateAllowed) {
  for (const auto& [key, value] : args.items()) {
    if (key != "text" && key != "fileName" && !(reevaluateAllowed && key == "reevaluate")) {
      return makeError(EINVAL, verb + ": unknown argument '" + key + "'");
    }
  }
  TextRequest request;
  auto text = args.find("text");
  if (text == args.end() || !text->is_string()) return makeError(EINVAL, verb + " needs the policy's text");
  request.text = text->get<std::string>();
  if (request.text.size() > kMaxPolicyTextBytes) {
    return makeError(EFBIG, verb + ": a policy of " + std::to_string(request.text.size()) +
                                " bytes is over the limit of " + std::to_string(kMaxPolicyTextBytes));
  }
  if (auto name = args.find("fileName"); name != args.end()) {
    if (!name->is_string() || name->get<std::string>().empty() || name->get<std::string>().size() > 4096) {
      return makeError(EINVAL, verb + ": fileName must be a file name");
    }
    request.fileName = name->get<std::string>();
  }
  if (auto reevaluate = args.find("reevaluate"); reevaluate != args.end()) {
    if (!reevaluate->is_boolean()) return makeError(EINVAL, verb + ": reevaluate must be true or false");
    request.reevaluate = reevaluate->get<bool>();
  }
  return request;
}

struct Checked {
  policy::Policy policy;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

Checked check(const std::string& text, const std::string& fileName) {
  Checked checked;
  for (const auto& diagnostic : validatePolicy(text, fileName, &checked.policy)) {
    (diagnostic.warning ? checked.warnings : checked.errors).push_back(diagnostic.toString());
  }
  return checked;
}

const char* modeName(PolicyMode mode) { return mode == PolicyMode::kAudit ? "audit" : "enforce"; }

double millisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

Result<std::unique_ptr<PolicyControl>> PolicyControl::open(const PolicyControlOptions& options,
                                                           dataplane::PolicyRegistry* registry,
                                                           PolicyNamesSink names) {
  if (registry == nullptr) return makeError(EINVAL, "policy control needs a policy registry");
  std::unique_ptr<PolicyControl> control(new PolicyControl(options, registry, std::move(names)));
  auto applied = control->store_.loadApplied();
  if (!applied) return applied.error();
  auto history = control->store_.loadHistory();
  if (!history) return history.error();
  control->persisted_ = std::move(applied).value();
  control->history_ = std::move(history).value();
  control->nextVersion_ = nextPolicyVersion(control->persisted_, control->history_);
  return control;
}

Result<std::string> PolicyControl::restore(const std::string& policyPath) {
  std::optional<PolicyRecord> persisted = std::move(persisted_);
  persisted_.reset();
  if (!policyPath.empty()) {
    auto text = readPolicyFile(policyPath);
    if (!text) return text.error();
    auto last = lastAppliedFromFile(history_, policyPath);
    if (!persisted || !last || last->sha256 != sha256Hex(text.value())) {
      ControlReply reply = applyText(text.value(), policyPath, PolicyOrigin::kFile,
                                     "--policy " + policyPath + " at start", false);
      if (!reply.ok()) {
        std::string message = reply.error;
        for (const auto& line : reply.result.value("diagnostics", Json::array())) {
          message += "\n" + line.get<std::string>();
        }
        return makeError(reply.status, message);
      }
      return "policy " + reply.result.value("name", std::string()) + " version " +
             std::to_string(reply.result.value("version", 0u)) + " from --policy " + policyPath;
    }
    if (auto reinstated = reinstate(*persisted); !reinstated) return reinstated.error();
    return "policy " + persisted->name + " version " + std::to_string(persisted->version) + " (" +
           persisted->source + ", " + persisted->time + ") kept: --policy " + policyPath +
           " is unchanged since version " + std::to_string(last->version);
  }
  if (!persisted) return std::string("no policy: every flow is allowed");
  if (auto reinstated = reinstate(*persisted); !reinstated) return reinstated.error();
  return "policy " + persisted->name + " version " + std::to_string(persisted->version) + " (" +
         persisted->source + ", " + persisted->time + ") restored";
}

Result<std::string> PolicyControl::reloadFile(const std::string& path) {
  auto text = readPolicyFile(path);
  if (!text) {
    PolicyRecord attempt;
    attempt.time = utcNow();
    attempt.origin = PolicyOrigin::kFile;
    attempt.source = "--policy " + path + " on SIGHUP";
    attempt.fileName = path;
    attempt.result = "unreadable: " + text.error().message;
    record(std::move(attempt));
    return text.error();
  }
  ControlReply reply =
      applyText(text.value(), path, PolicyOrigin::kFile, "--policy " + path + " on SIGHUP", false);
  if (!reply.ok()) {
    std::string message = reply.error;
    for (const auto& line : reply.result.value("diagnostics", Json::array())) {
      message += "\n" + line.get<std::string>();
    }
    return makeError(reply.status, message);
  }
  return "policy " + reply.result.value("name", std::string()) + " version " +
         std::to_string(reply.result.value("version", 0u)) + " from --policy " + path + " (SIGHUP)";
}

Result<void> PolicyControl::reinstate(const PolicyRecord& record) {
  std::lock_guard applying(applying_);
  Checked checked = check(record.text, record.fileName);
  std::string where = store_.dir() + "/applied.json";
  if (!checked.errors.empty()) {
    std::string message = "the applied policy version " + std::to_string(record.version) + " in " + where +
                          " no longer validates (move it away, or start with --policy):";
    for (const auto& line : checked.errors) message += "\n" + line;
    return makeError(EINVAL, message);
  }
  double compileMillis = 0;
  if (auto published = publish(checked.policy, record.version, false, &compileMillis); !published) {
    return makeError(published.error().code, "the applied policy version " + std::to_string(record.version) +
                                                 " in " + where + ": " + published.error().message);
  }
  auto inForce = std::make_shared<InForce>();
  inForce->record = record;
  inForce->policy = std::move(checked.policy);
  std::lock_guard state(state_);
  inForce_ = std::move(inForce);
  return {};
}

Result<void> PolicyControl::publish(const policy::Policy& policy, uint32_t version, bool reevaluate,
                                    double* compileMillis) {
  auto started = Clock::now();
  auto compiled = dataplane::CompiledPolicy::compile(policy, version, options_.compile, options_.workers);
  *compileMillis = millisSince(started);
  if (options_.onCompiled) options_.onCompiled(compiled ? &policy : nullptr, version, *compileMillis / 1000);
  if (!compiled) return compiled.error();
  PolicyNames names;
  names.loaded = true;
  names.version = version;
  names.policyName = policy.name;
  for (const auto& rule : policy.rules) names.ruleNames.push_back(rule.name);
  if (names_) names_(std::move(names));
  registry_->publish(std::move(compiled).value(), reevaluate);
  return {};
}

ControlReply PolicyControl::applyText(const std::string& text, const std::string& fileName,
                                      PolicyOrigin origin, const std::string& source, bool reevaluate) {
  auto started = Clock::now();
  std::lock_guard applying(applying_);
  PolicyRecord attempt;
  attempt.time = utcNow();
  attempt.origin = origin;
  attempt.source = source;
  attempt.fileName = fileName;
  attempt.sha256 = sha256Hex(text);

  Checked checked = check(text, fileName);
  attempt.name = checked.policy.name;
  attempt.rules = static_cast<uint32_t>(checked.policy.rules.size());
  if (!checked.errors.empty()) {
    attempt.result = "invalid: " + std::to_string(checked.errors.size()) + " error(s)";
    record(attempt);
    return invalid(fileName, checked.errors, checked.warnings, "is invalid");
  }
  uint32_t version = nextVersion_;
  double compileMillis = 0;
  if (auto published = publish(checked.policy, version, reevaluate, &compileMillis); !published) {
    attempt.result = "compile failed: " + published.error().message;
    record(attempt);
    return invalid(fileName, {fileName + ": " + published.error().message}, checked.warnings,
                   "does not compile");
  }
  ++nextVersion_;
  attempt.version = version;
  attempt.result = "applied";
  attempt.text = text;

  uint32_t previous = 0;
  auto inForce = std::make_shared<InForce>();
  inForce->record = attempt;
  inForce->policy = std::move(checked.policy);
  {
    std::lock_guard state(state_);
    if (inForce_) previous = inForce_->record.version;
    inForce_ = inForce;
  }
  auto saved = store_.saveApplied(attempt);
  record(attempt);

  Json result{{"version", version},
              {"previousVersion", previous == 0 ? Json(nullptr) : Json(previous)},
              {"name", inForce->record.name},
              {"mode", modeName(inForce->policy.mode)},
              {"rules", inForce->record.rules},
              {"fileName", fileName},
              {"compileMillis", compileMillis},
              {"applyMillis", millisSince(started)},
              {"reevaluate", reevaluate},
              // The registry carries the request (reevaluateVersion()); the workers do not act on it yet.
              {"openFlowsJudgedAgain", false},
              {"warnings", checked.warnings},
              {"persisted", saved.ok()}};
  // In force but not on disk: the next start would judge with the previous policy. Say so.
  if (!saved) result["persistError"] = saved.error().message;
  return ControlReply::success(std::move(result));
}

void PolicyControl::record(PolicyRecord attempt) {
  attempt.text.clear();
  std::vector<PolicyRecord> snapshot;
  {
    std::lock_guard state(state_);
    history_.push_back(std::move(attempt));
    if (history_.size() > kHistoryKeep) history_.erase(history_.begin());
    snapshot = history_;
  }
  (void)store_.saveHistory(snapshot);  // the history is a record for people: losing a line stops nothing
}

ControlReply PolicyControl::invalid(const std::string& fileName, const std::vector<std::string>& diagnostics,
                                    const std::vector<std::string>& warnings, const std::string& what) const {
  uint32_t inForce = versionInForce();
  std::string message =
      fileName + " " + what + " (" + std::to_string(diagnostics.size()) + " error(s)); " +
      (inForce == 0 ? std::string("no policy was in force, none is")
                    : "the policy in force, version " + std::to_string(inForce) + ", is unchanged");
  ControlReply reply = ControlReply::failure(EINVAL, message);
  reply.result = Json{{"diagnostics", diagnostics},
                      {"warnings", warnings},
                      {"inForce", inForce == 0 ? Json(nullptr) : Json(inForce)}};
  return reply;
}

ControlReply PolicyControl::apply(const Json& args, const PeerCredentials& peer) {
  auto request = parseTextRequest(args, "policy apply", true);
  if (!request) return ControlReply::failure(request.error().code, request.error().message);
  std::string source =
      "vgatectl (uid " + std::to_string(peer.uid) + ", pid " + std::to_string(peer.pid) + ")";
  return applyText(request.value().text, request.value().fileName, PolicyOrigin::kSocket, source,
                   request.value().reevaluate);
}

ControlReply PolicyControl::validate(const Json& args) {
  auto request = parseTextRequest(args, "policy validate", false);
  if (!request) return ControlReply::failure(request.error().code, request.error().message);
  Checked checked = check(request.value().text, request.value().fileName);
  if (!checked.errors.empty()) {
    return invalid(request.value().fileName, checked.errors, checked.warnings, "is invalid");
  }
  // What only a compile finds (a Hyperscan database too large): built as apply would, then dropped. It also
  // leaves the databases in the cache, so that the apply that follows is warm.
  auto started = Clock::now();
  auto compiled = dataplane::CompiledPolicy::compile(checked.policy, 0, options_.compile, 0);
  if (!compiled) {
    return invalid(request.value().fileName, {request.value().fileName + ": " + compiled.error().message},
                   checked.warnings, "does not compile");
  }
  return ControlReply::success({{"name", checked.policy.name},
                                {"mode", modeName(checked.policy.mode)},
                                {"rules", checked.policy.rules.size()},
                                {"fileName", request.value().fileName},
                                {"compileMillis", millisSince(started)},
                                {"warnings", checked.warnings}});
}

ControlReply PolicyControl::diff(const Json& args) {
  auto request = parseTextRequest(args, "policy diff", false);
  if (!request) return ControlReply::failure(request.error().code, request.error().message);
  Checked checked = check(request.value().text, request.value().fileName);
  if (!checked.errors.empty()) {
    return invalid(request.value().fileName, checked.errors, checked.warnings, "is invalid");
  }
  std::shared_ptr<const InForce> inForce;
  {
    std::lock_guard state(state_);
    inForce = inForce_;
  }
  static const policy::Policy kNone;
  PolicyDiff difference = diffPolicies(inForce ? inForce->policy : kNone, checked.policy);
  if (!inForce) difference.settings.clear();  // against nothing, only the rules say anything
  Json result = difference.toJson();
  result["from"] = inForce ? Json{{"version", inForce->record.version},
                                  {"name", inForce->record.name},
                                  {"rules", inForce->record.rules}}
                           : Json(nullptr);
  result["to"] = Json{{"fileName", request.value().fileName},
                      {"name", checked.policy.name},
                      {"rules", checked.policy.rules.size()}};
  result["warnings"] = checked.warnings;
  return ControlReply::success(std::move(result));
}

ControlReply PolicyControl::get(const Json& args) const {
  if (!args.empty()) return ControlReply::failure(EINVAL, "policy get takes no arguments");
  std::shared_ptr<const InForce> inForce;
  {
    std::lock_guard state(state_);
    inForce = inForce_;
  }
  if (!inForce) return ControlReply::failure(ENOENT, "no policy is in force: every flow is allowed");
  Json result = inForce->record.toJson(true);
  result["mode"] = modeName(inForce->policy.mode);
  return ControlReply::success(std::move(result));
}

ControlReply PolicyControl::history(const Json& args) const {
  if (!args.empty()) return ControlReply::failure(EINVAL, "policy history takes no arguments");
  Json entries = Json::array();
  uint32_t inForce = 0;
  {
    std::lock_guard state(state_);
    for (const auto& entry : history_) entries.push_back(entry.toJson(false));
    if (inForce_) inForce = inForce_->record.version;
  }
  return ControlReply::success(
      {{"history", std::move(entries)}, {"inForce", inForce == 0 ? Json(nullptr) : Json(inForce)}});
}

Json PolicyControl::summary() const {
  std::lock_guard state(state_);
  if (!inForce_) return nullptr;
  const PolicyRecord& record = inForce_->record;
  return Json{
      {"name", record.name},    {"version", record.version}, {"mode", modeName(inForce_->policy.mode)},
      {"rules", record.rules},  {"time", record.time},       {"source", record.source},
      {"sha256", record.sha256}};
}

uint32_t PolicyControl::versionInForce() const {
  std::lock_guard state(state_);
  return inForce_ ? inForce_->record.version : 0;
}

}  // namespace vgate::control
