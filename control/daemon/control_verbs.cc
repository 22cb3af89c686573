// Control verbs' requests and replies: see control_verbs.h.
#include "control/daemon/control_verbs.h"

#include <algorithm>
#include <cerrno>
#include <initializer_list>
#include <string_view>

namespace vgate::control {

namespace {

using Json = nlohmann::json;

// The first argument of a request that is not among `allowed`.
std::optional<std::string> unknownArgument(const Json& args,
                                           std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : args.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) return key;
  }
  return std::nullopt;
}

// A request's "pid": a positive integer that fits a pid_t, or nothing.
std::optional<int> pidArgument(const Json& args) {
  if (!args.contains("pid")) return std::nullopt;
  const Json& pid = args["pid"];
  if (!pid.is_number_integer() || pid.get<int64_t>() <= 0 || pid.get<int64_t>() > INT32_MAX)
    return std::nullopt;
  return static_cast<int>(pid.get<int64_t>());
}

}  // namespace

Result<AttachRequest> parseAttachRequest(const Json& args) {
  if (auto unknown = unknownArgument(args, {"netns", "pid", "ifname", "name"})) {
    return makeError(EINVAL, "attach: unknown argument '" + *unknown + "'");
  }
  AttachRequest request;
  if (args.contains("netns") == args.contains("pid")) {
    return makeError(EINVAL, "attach needs exactly one of netns and pid");
  }
  if (args.contains("netns")) {
    if (!args["netns"].is_string() || args["netns"].get<std::string>().empty()) {
      return makeError(EINVAL, "attach: netns must be a path");
    }
    request.netnsPath = args["netns"].get<std::string>();
  } else {
    auto pid = pidArgument(args);
    if (!pid) return makeError(EINVAL, "attach: pid must be a positive integer");
    request.pid = *pid;
  }
  if (args.contains("ifname")) {
    if (!args["ifname"].is_string() || args["ifname"].get<std::string>().empty() ||
        args["ifname"].get<std::string>().size() >= 16) {
      return makeError(EINVAL, "attach: ifname must be an interface name");
    }
    request.ifname = args["ifname"].get<std::string>();
  }
  if (args.contains("name")) {
    if (!args["name"].is_string()) return makeError(EINVAL, "attach: name must be a string");
    request.name = args["name"].get<std::string>();
  }
  return request;
}

Result<DetachRequest> parseDetachRequest(const Json& args) {
  if (auto unknown = unknownArgument(args, {"netns", "pid", "all"})) {
    return makeError(EINVAL, "detach: unknown argument '" + *unknown + "'");
  }
  int selectors = args.contains("netns") + args.contains("pid") + args.contains("all");
  if (selectors != 1) return makeError(EINVAL, "detach needs exactly one of netns, pid and all");
  DetachRequest request;
  if (args.contains("all")) {
    if (!args["all"].is_boolean() || !args["all"].get<bool>()) {
      return makeError(EINVAL, "detach: all must be true");
    }
    request.all = true;
  } else if (args.contains("netns")) {
    if (!args["netns"].is_string()) return makeError(EINVAL, "detach: netns must be a path");
    request.netnsPath = args["netns"].get<std::string>();
  } else {
    auto pid = pidArgument(args);
    if (!pid) return makeError(EINVAL, "detach: pid must be a positive integer");
    request.pid = *pid;
  }
  return request;
}

Json portSummary(const PortPair& pair) {
  return Json{{"id", pair.id},
              {"name", pair.name},
              {"netns", pair.netnsPath},
              {"pid", pair.pid},
              {"ifname", pair.containerIfname},
              {"hostIfname", pair.hostIfname},
              {"mode", pair.original.routed() ? "routed" : "bridge"},
              {"bridge", pair.bridgeName},
              {"inner", pair.innerName},
              {"outer", pair.outerName}};
}

Json workerStatus(const dataplane::LiveWorkerStatus& worker) {
  Json entry{
      {"id", worker.id}, {"driver", worker.driver}, {"interface", worker.interface}, {"flows", worker.flows}};
  entry.update(countersJson(worker.counters));
  entry.update(countersJson(worker.lane));
  entry.update(countersJson(worker.fragments));
  Json parse = Json::object();
  for (int i = 0; i < dataplane::kParseStatusCount; ++i)
    parse[dataplane::parseStatusName(static_cast<dataplane::ParseStatus>(i))] =
        worker.counters.parseStatus[i];
  entry["parseStatus"] = std::move(parse);
  entry["inspection"] = countersJson(worker.inspection);
  return entry;
}

std::string failModeName(uint32_t mode) { return mode == VGATE_FP_FAIL_OPEN ? "open" : "closed"; }

}  // namespace vgate::control
