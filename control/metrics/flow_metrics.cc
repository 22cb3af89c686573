// Event metrics: see flow_metrics.h.
#include "control/metrics/flow_metrics.h"

#include <netinet/in.h>

#include <algorithm>

#include "control/socket/control_protocol.h"

namespace vgate::control::metrics {

namespace {

// Compile times from a one-rule policy (milliseconds) to a large one with Hyperscan (tens of seconds).
constexpr double kCompileBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

constexpr const char* kDirectionNames[] = {"unknown", "egress", "ingress"};
constexpr const char* kMatchNames[] = {"l3-l4", "tls", "http", "quic"};
constexpr const char* kDefaultRule = "(default)";

}  // namespace

std::string protocolName(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "icmpv6";
    case IPPROTO_SCTP:
      return "sctp";
    default:
      return "other";
  }
}

FlowMetrics::FlowMetrics() {
  compileSeconds_.bounds.assign(std::begin(kCompileBounds), std::end(kCompileBounds));
  compileSeconds_.counts.assign(compileSeconds_.bounds.size() + 1, 0);
}

void FlowMetrics::setPolicy(const policy::Policy& policy, uint32_t version) {
  PolicyVersion entry;
  entry.name = policy.name;
  for (const policy::Rule& rule : policy.rules) {
    RuleInfo info;
    info.name = rule.name;
    info.http = !rule.http.host.empty() || !rule.http.path.empty() || !rule.http.method.empty();
    info.tls = !rule.tls.sni.empty() || !rule.tls.sniRegex.empty() || !rule.tls.alpn.empty() ||
               !rule.tls.certificate.subject.empty() || !rule.tls.certificate.issuer.empty() ||
               !rule.tls.certificate.san.empty();
    entry.rules.push_back(std::move(info));
  }
  std::lock_guard lock(mutex_);
  policies_[version] = std::move(entry);
  policyName_ = policy.name;
  policyMode_ = policy.mode == PolicyMode::kAudit ? "audit" : "enforce";
  policyVersion_ = version;
  policyRules_ = policy.rules.size();
}

void FlowMetrics::policyApplied(bool ok, double compileSeconds) {
  std::lock_guard lock(mutex_);
  ++applied_[ok ? 1 : 0];
  if (!ok) return;
  size_t bucket = 0;
  while (bucket < compileSeconds_.bounds.size() && compileSeconds > compileSeconds_.bounds[bucket]) ++bucket;
  ++compileSeconds_.counts[bucket];
  ++compileSeconds_.count;
  compileSeconds_.sum += compileSeconds;
}

void FlowMetrics::setPortName(uint16_t port, std::string name) {
  std::lock_guard lock(mutex_);
  auto [found, inserted] = ports_.try_emplace(port);
  PortSeries& series = found->second;
  if (!inserted && series.name != name) series = PortSeries{};  // the id went to another container
  series.name = std::move(name);
  series.attached = true;
}

void FlowMetrics::observeEnd(const FlowEndRecord& record) {
  auto action = std::min<size_t>(static_cast<size_t>(record.action), kActions - 1);
  uint8_t direction = record.direction < kDirections ? record.direction : 0;
  std::lock_guard lock(mutex_);
  ++flowsProcessed_[action][record.protocol];
  ++flowsEnded_[std::min<size_t>(static_cast<size_t>(record.reason), std::size(flowsEnded_) - 1)];

  // What decided: the deciding rule's L7 part (TLS rules decide QUIC flows by their ClientHello too).
  uint8_t match = kMatchL34;
  if (record.ruleId != UINT32_MAX) {
    auto policy = policies_.find(record.policyVersion);
    if (policy != policies_.end() && record.ruleId < policy->second.rules.size()) {
      const RuleInfo& rule = policy->second.rules[record.ruleId];
      if (rule.http) {
        match = kMatchHttp;
      } else if (rule.tls) {
        match = record.appProto == AppProto::kQuic ? kMatchQuic : kMatchTls;
      }
    }
  }
  ++verdicts_[VerdictKey{record.policyVersion, record.ruleId, direction, match,
                         static_cast<uint8_t>(action)}];

  if (record.portPair == 0) return;
  auto port = ports_.find(record.portPair);
  if (port == ports_.end()) return;
  // By packet direction from the container: an egress flow's client-to-server packets are the ones it sent.
  PortSeries& series = port->second;
  for (int side = 0; side < 2; ++side) {
    int packetDirection = 0;
    if (direction == 1) packetDirection = side == kToServer ? 1 : 2;
    if (direction == 2) packetDirection = side == kToServer ? 2 : 1;
    series.packets[packetDirection][action] += record.pkts[side];
    series.bytes[packetDirection][action] += record.bytes[side];
  }
}

void FlowMetrics::countRequest(std::string_view verb, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{std::string(verb), errnoName(status)}];
}

void FlowMetrics::retirePorts(const std::vector<uint16_t>& attached, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  for (auto it = ports_.begin(); it != ports_.end();) {
    PortSeries& series = it->second;
    bool present = std::find(attached.begin(), attached.end(), it->first) != attached.end();
    if (present) {
      series.attached = true;
    } else if (series.attached) {
      series.attached = false;
      series.goneSince = now;
    } else if (now - series.goneSince >= kContainerRetention) {
      it = ports_.erase(it);
      continue;
    }
    ++it;
  }
}

FlowMetricsView FlowMetrics::view() const {
  FlowMetricsView view;
  std::lock_guard lock(mutex_);
  for (size_t action = 0; action < kActions; ++action) {
    for (int protocol = 0; protocol < 256; ++protocol) {
      uint64_t count = flowsProcessed_[action][protocol];
      if (count == 0) continue;
      view.flowsProcessed[{verdictActionName(static_cast<VerdictAction>(action)),
                           protocolName(static_cast<uint8_t>(protocol))}] += static_cast<double>(count);
    }
  }
  // Every reason is listed from the start, so that a rate over them has a series before the first flow ends.
  for (int reason = 0; reason <= static_cast<int>(FlowEndReason::kShutdown); ++reason) {
    view.flowsEnded[{flowEndReasonName(static_cast<FlowEndReason>(reason))}] =
        static_cast<double>(flowsEnded_[reason]);
  }
  if (flowsEnded_[static_cast<int>(FlowEndReason::kEndOfInput)] != 0) {
    view.flowsEnded[{flowEndReasonName(FlowEndReason::kEndOfInput)}] =
        static_cast<double>(flowsEnded_[static_cast<int>(FlowEndReason::kEndOfInput)]);
  }
  for (const auto& [key, count] : verdicts_) {
    std::string rule = kDefaultRule;
    if (key.rule != UINT32_MAX) {
      auto policy = policies_.find(key.version);
      rule = policy != policies_.end() && key.rule < policy->second.rules.size()
                 ? policy->second.rules[key.rule].name
                 : "rule-" + std::to_string(key.rule);
    }
    view.policyVerdicts[{kDirectionNames[key.direction], kMatchNames[key.match],
                         verdictActionName(static_cast<VerdictAction>(key.action)), rule}] +=
        static_cast<double>(count);
  }
  for (const auto& [id, series] : ports_) {
    for (int direction = 0; direction < kDirections; ++direction) {
      for (int action = 0; action < kActions; ++action) {
        uint64_t packets = series.packets[direction][action];
        if (packets == 0 && series.bytes[direction][action] == 0) continue;
        std::vector<std::string> labels{series.name, kDirectionNames[direction],
                                        verdictActionName(static_cast<VerdictAction>(action))};
        view.containerPackets[labels] += static_cast<double>(packets);
        view.containerBytes[labels] += static_cast<double>(series.bytes[direction][action]);
      }
    }
  }
  if (!policyName_.empty() || policyVersion_ != 0) {
    view.policyInfo[{policyName_, std::to_string(policyVersion_), policyMode_}] = 1;
  }
  view.policyRules = static_cast<double>(policyRules_);
  view.policyCompileSeconds = compileSeconds_;
  view.policyApply[{"success"}] = static_cast<double>(applied_[1]);
  view.policyApply[{"failure"}] = static_cast<double>(applied_[0]);
  for (const auto& [key, count] : requests_)
    view.controlRequests[{key.first, key.second}] = static_cast<double>(count);
  return view;
}

}  // namespace vgate::control::metrics
