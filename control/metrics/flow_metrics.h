// The metrics that come from events rather than from counters: flow end records (verdicts, protocols, rules,
// containers), policy compiles and control requests. Written by vgated's main loop and control thread, read
// by scrapes; one mutex, never on the dataplane's hot path (records reach it through the drain).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vgate/flow_record.h"
#include "vgate/policy.h"

namespace vgate::control::metrics {

// A labelled set of samples: label values (in the metric's label order) to value.
using Series = std::map<std::vector<std::string>, double>;

struct HistogramValue {
  std::vector<double> bounds;    // upper bounds, ascending; +Inf is implied
  std::vector<uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1 of them
  uint64_t count = 0;
  double sum = 0;
};

// What a scrape reads of FlowMetrics, copied under its lock.
struct FlowMetricsView {
  Series flowsProcessed;    // verdict, protocol
  Series flowsEnded;        // reason
  Series policyVerdicts;    // direction, match, action, rule
  Series containerPackets;  // container, direction, verdict
  Series containerBytes;
  Series policyInfo;  // name, version, mode
  double policyRules = 0;
  HistogramValue policyCompileSeconds;
  Series policyApply;      // result
  Series controlRequests;  // verb, status
};

class FlowMetrics {
 public:
  using Clock = std::chrono::steady_clock;
  // A container's series stay this long after its port pair went, for the last scrapes to see them.
  static constexpr auto kContainerRetention = std::chrono::seconds(60);

  FlowMetrics();

  // The policy version `version` in force: its rules' names and what each matches on.
  void setPolicy(const policy::Policy& policy, uint32_t version);
  void policyApplied(bool ok, double compileSeconds);
  // The container behind a port pair (its name, else the host-side interface's).
  void setPortName(uint16_t port, std::string name);
  void observeEnd(const FlowEndRecord& record);
  void countRequest(std::string_view verb, int status);

  // Port pairs attached now: series of a container whose pair has been gone kContainerRetention are dropped.
  void retirePorts(const std::vector<uint16_t>& attached, Clock::time_point now = Clock::now());
  FlowMetricsView view() const;

 private:
  enum : uint8_t { kMatchL34, kMatchTls, kMatchHttp, kMatchQuic };
  static constexpr int kDirections = 3;  // unknown, egress, ingress (l34's kDirection*)
  static constexpr int kActions = 4;     // VerdictAction
  struct RuleInfo {
    std::string name;
    bool tls = false;
    bool http = false;
  };
  struct PolicyVersion {
    std::string name;
    std::vector<RuleInfo> rules;
  };
  struct VerdictKey {
    uint32_t version;
    uint32_t rule;
    uint8_t direction;
    uint8_t match;
    uint8_t action;
    auto operator<=>(const VerdictKey&) const = default;
  };
  struct PortSeries {
    std::string name;
    uint64_t packets[kDirections][kActions] = {};
    uint64_t bytes[kDirections][kActions] = {};
    bool attached = true;
    Clock::time_point goneSince{};
  };

  mutable std::mutex mutex_;
  uint64_t flowsProcessed_[kActions][256] = {};  // by action, IP protocol number
  uint64_t flowsEnded_[8] = {};                  // by FlowEndReason
  std::map<VerdictKey, uint64_t> verdicts_;
  std::map<uint32_t, PolicyVersion> policies_;
  std::map<uint16_t, PortSeries> ports_;
  std::string policyName_;
  std::string policyMode_;
  uint32_t policyVersion_ = 0;
  size_t policyRules_ = 0;
  HistogramValue compileSeconds_;
  uint64_t applied_[2] = {};  // failure, success
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;
};

// Observes each record on its way to the flow log writer: the daemon drains the workers' rings into it.
class RecordTee final : public RecordSink {
 public:
  RecordTee(FlowMetrics& metrics, RecordSink& next) : metrics_(metrics), next_(next) {}
  void onMetadata(const FlowMetadataRecord& metadata) override { next_.onMetadata(metadata); }
  void onEnd(const FlowEndRecord& record) override {
    metrics_.observeEnd(record);
    next_.onEnd(record);
  }

 private:
  FlowMetrics& metrics_;
  RecordSink& next_;
};

std::string protocolName(uint8_t protocol);

}  // namespace vgate::control::metrics
