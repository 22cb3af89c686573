// `vgated replay --pcap FILE [--flow-log PATH|-] [--workers N] [--flows N]`.
#include "control/replay_command.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>

#include "control/command_line.h"
#include "control/flowlog/flow_log_writer.h"
#include "control/policy/policy_loader.h"
#include "dataplane/replay/replay.h"

namespace vgate::control {

namespace {

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "vgated replay: %s\n", message.c_str());
  return code;
}

}  // namespace

int runReplayCommand(int argc, char** argv, int first) {
  CommandSpec spec{"replay", {"pcap", "flow-log", "workers", "flows", "policy"}, {}};
  auto arguments = parseCommandArguments(spec, argc, argv, first);
  if (!arguments) return fail(2, arguments.error().message);
  const CommandArguments& args = arguments.value();
  if (!args.has("pcap")) return fail(2, "missing --pcap FILE");
  dataplane::ReplayOptions options;
  options.pcapPath = args.get("pcap");
  auto workers = parseUnsigned(args.get("workers", "1"), 1, 64, "workers");
  if (!workers) return fail(2, workers.error().message);
  options.workers = static_cast<uint16_t>(workers.value());
  auto flows = parseUnsigned(args.get("flows", std::to_string(options.flowCapacity)), 64, 1u << 24, "flows");
  if (!flows) return fail(2, flows.error().message);
  options.flowCapacity = static_cast<uint32_t>(flows.value());

  // A bad policy changes nothing: every problem is printed and nothing is replayed.
  policy::Policy policy;
  if (args.has("policy")) {
    std::string path = args.get("policy");
    auto diagnostics = validatePolicyFile(path, &policy);
    if (!diagnostics) return fail(2, diagnostics.error().message);
    if (hasPolicyErrors(diagnostics.value())) {
      for (const auto& diagnostic : diagnostics.value())
        std::fprintf(stderr, "%s\n", diagnostic.toString().c_str());
      return fail(2, "policy " + path + " is invalid; nothing was replayed");
    }
    options.policy = &policy;
  }

  // Check the capture before anything else, so that a bad file fails fast and leaves no flow log behind.
  if (auto capture = dataplane::checkCapture(options.pcapPath); !capture)
    return fail(2, capture.error().message);

  std::string flowLogPath = args.get("flow-log", "-");
  std::FILE* out = stdout;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(nullptr, std::fclose);
  if (flowLogPath != "-") {
    file.reset(std::fopen(flowLogPath.c_str(), "a"));  // an audit log is appended to, never truncated
    if (!file) return fail(2, "cannot open flow log " + flowLogPath + ": " + std::strerror(errno));
    out = file.get();
  }
  FlowLogWriter writer(out);
  if (options.policy != nullptr) {
    PolicyNames names;
    names.loaded = true;
    names.version = 1;  // replay publishes its one policy as version 1
    names.policyName = policy.name;
    for (const auto& rule : policy.rules) names.ruleNames.push_back(rule.name);
    writer.setPolicyNames(std::move(names));
  }
  auto summary = dataplane::runReplay(options, writer);
  writer.flush();
  if (!summary)
    return fail(summary.error().code == EINVAL || summary.error().code == ENOENT ? 2 : 1,
                summary.error().message);
  const auto& total = summary.value().total;
  std::fprintf(stderr,
               "vgated replay: %" PRIu64 " packets, %" PRIu64 " flows, %" PRIu64 " records written, %" PRIu64
               " records lost, %" PRIu64 " evictions, %" PRIu64 " packets denied\n",
               total.packets, total.flowsCreated, writer.counters().recordsWritten, total.recordsLost,
               total.flowsEvicted, total.denied);
  if (writer.counters().writeErrors > 0) return fail(1, "writing the flow log failed");
  return 0;
}

}  // namespace vgate::control
