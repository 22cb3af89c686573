// `vgated run`: parses the daemon's options and runs it in the foreground.
#include "control/daemon/run_command.h"

#include <cstdio>
#include <string>

#include "control/command_line.h"
#include "control/daemon/daemon.h"

namespace vgate::control {

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "vgated run: %s\n", message.c_str());
  return 2;
}

bool validHostPort(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  auto port = parseUnsigned(text.substr(colon + 1), 1, 65535, "metrics-address");
  return port.ok();
}

// "1048576", "512K", "100M", "2G" (powers of 1024).
Result<uint64_t> parseSize(const std::string& text, const std::string& option) {
  std::string digits = text;
  uint64_t unit = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        unit = 1ull << 10;
        break;
      case 'M':
      case 'm':
        unit = 1ull << 20;
        break;
      case 'G':
      case 'g':
        unit = 1ull << 30;
        break;
      default:
        break;
    }
    if (unit != 1) digits.pop_back();
  }
  constexpr uint64_t kMax = 1ull << 50;
  auto value = parseUnsigned(digits, 1, kMax / unit, option);
  if (!value) {
    return makeError(
        EINVAL, "--" + option + " must be a size in bytes, with an optional K, M or G, not '" + text + "'");
  }
  return value.value() * unit;
}

}  // namespace

int runRunCommand(int argc, char** argv, int first) {
  CommandSpec spec{"run",
                   {"policy", "socket", "socket-group", "state-dir", "bpffs", "fail-mode", "workers",
                    "flow-log", "metrics-address", "driver", "heartbeat-timeout-ms", "flows", "offload",
                    "inspection-slots", "inspection-timeout", "exception-policy", "flow-log-max-size",
                    "flow-log-max-files", "stats-interval"},
                   {"io-forward"}};
  auto arguments = parseCommandArguments(spec, argc, argv, first);
  if (!arguments) return fail(arguments.error().message);
  const CommandArguments& args = arguments.value();
  DaemonOptions options;
  options.policyPath = args.get("policy");
  options.socketPath = args.get("socket", options.socketPath);
  options.socketGroup = args.get("socket-group");
  if (args.has("socket-group") && options.socketGroup.empty()) return fail("--socket-group is empty");
  options.stateDir = args.get("state-dir", options.stateDir);
  options.bpffsDir = args.get("bpffs", options.bpffsDir);
  options.flowLog = args.get("flow-log", options.flowLog);
  for (const char* option : {"socket", "state-dir", "bpffs", "flow-log"}) {
    if (args.has(option) && args.get(option).empty()) return fail(std::string("--") + option + " is empty");
  }
  if (args.has("flow-log-max-size")) {
    auto size = parseSize(args.get("flow-log-max-size"), "flow-log-max-size");
    if (!size) return fail(size.error().message);
    options.flowLogMaxBytes = size.value();
  }
  auto maxFiles = parseUnsigned(args.get("flow-log-max-files", std::to_string(options.flowLogMaxFiles)), 1,
                                1000, "flow-log-max-files");
  if (!maxFiles) return fail(maxFiles.error().message);
  options.flowLogMaxFiles = static_cast<uint32_t>(maxFiles.value());
  if (options.flowLog == "-" && (args.has("flow-log-max-size") || args.has("flow-log-max-files")))
    return fail("--flow-log-max-size and --flow-log-max-files need a --flow-log file, not stdout");
  auto statsInterval = parseUnsigned(args.get("stats-interval", std::to_string(options.statsIntervalSeconds)),
                                     0, 86400, "stats-interval");
  if (!statsInterval) return fail(statsInterval.error().message);
  options.statsIntervalSeconds = static_cast<uint32_t>(statsInterval.value());
  std::string failMode = args.get("fail-mode", "closed");
  if (failMode == "closed") {
    options.failMode = VGATE_FP_FAIL_CLOSED;
  } else if (failMode == "open") {
    options.failMode = VGATE_FP_FAIL_OPEN;
  } else {
    return fail("--fail-mode must be open or closed, not '" + failMode + "'");
  }
  auto workers = parseUnsigned(args.get("workers", "1"), 1, VGATE_FP_MAX_TRUNKS, "workers");
  if (!workers) return fail(workers.error().message);
  options.workers = static_cast<uint16_t>(workers.value());
  auto flows =
      parseUnsigned(args.get("flows", std::to_string(options.flowsPerWorker)), 1024, 1u << 24, "flows");
  if (!flows) return fail(flows.error().message);
  options.flowsPerWorker = static_cast<uint32_t>(flows.value());
  auto slots = parseUnsigned(args.get("inspection-slots", std::to_string(options.inspectionSlots)), 16,
                             1u << 16, "inspection-slots");
  if (!slots) return fail(slots.error().message);
  options.inspectionSlots = static_cast<uint32_t>(slots.value());
  auto inspectionTimeout =
      parseUnsigned(args.get("inspection-timeout", std::to_string(options.inspectionTimeoutSeconds)), 1, 600,
                    "inspection-timeout");
  if (!inspectionTimeout) return fail(inspectionTimeout.error().message);
  options.inspectionTimeoutSeconds = static_cast<uint32_t>(inspectionTimeout.value());
  options.exceptionPolicy = args.get("exception-policy", options.exceptionPolicy);
  if (options.exceptionPolicy != "policy" && options.exceptionPolicy != "drop" &&
      options.exceptionPolicy != "pass") {
    return fail("--exception-policy must be policy, drop or pass, not '" + options.exceptionPolicy + "'");
  }
  auto heartbeat =
      parseUnsigned(args.get("heartbeat-timeout-ms", "1000"), 300, 60000, "heartbeat-timeout-ms");
  if (!heartbeat) return fail(heartbeat.error().message);
  options.heartbeatTimeoutMs = static_cast<uint32_t>(heartbeat.value());
  std::string driver = args.get("driver", "af_xdp");
  if (driver != "af_xdp" && driver != "af_packet") {
    return fail("--driver must be af_xdp or af_packet, not '" + driver + "'");
  }
  options.driver = "net_" + driver;
  std::string offload = args.get("offload", "on");
  if (offload != "on" && offload != "off") return fail("--offload must be on or off, not '" + offload + "'");
  options.offload = offload == "on";
  options.ioForward = args.flags.count("io-forward") > 0;
  if (args.has("metrics-address")) {
    options.metricsAddress = args.get("metrics-address");
    if (options.metricsAddress == "off") options.metricsAddress.clear();
    if (!options.metricsAddress.empty() && !validHostPort(options.metricsAddress)) {
      return fail("--metrics-address must be HOST:PORT, not '" + options.metricsAddress + "'");
    }
  }
  return runDaemon(options);
}

}  // namespace vgate::control
