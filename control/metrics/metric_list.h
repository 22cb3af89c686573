// Every Prometheus metric vgated serves, declared once: the hand-named metrics below (VGATE_METRICS) and one
// metric per counter of each X-macro counter list (VGATE_METRIC_COUNTER_LISTS). Registration, the collector
// and the README's metric table all come from metricCatalog().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/flowlog/flow_log_writer.h"
#include "dataplane/fastpath/fast_path.h"
#include "dataplane/live/live_dataplane.h"
#include "vgate/counters.h"

namespace vgate::control::metrics {

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };

// X(id, name, type, help, labels...): names follow Prometheus practice (base units, _total on counters) and
// Hubble/Cilium's where one exists. Label values are bounded: no per-flow or per-address label.
#define VGATE_METRICS(X)                                                                                    \
  X(kFlowsProcessed, "vgate_flows_processed_total", counter,                                                \
    "Flows ended, by verdict (allow, deny, reject, log) and L4 protocol.", "verdict", "protocol")           \
  X(kFlowsActive, "vgate_flows_active", gauge, "Flows in the workers' flow tables now.")                    \
  X(kFlowsEnded, "vgate_flows_ended_total", counter,                                                        \
    "Flows ended, by reason (fin, rst, timeout, eviction, shutdown).", "reason")                            \
  X(kPolicyVerdicts, "vgate_policy_verdicts_total", counter,                                                \
    "Verdicts of ended flows, by direction, what decided (l3-l4, tls, http, quic), action and rule "        \
    "((default): no rule matched).",                                                                        \
    "direction", "match", "action", "rule")                                                                 \
  X(kDrops, "vgate_drop_total", counter, "Packets dropped, by reason.", "reason")                           \
  X(kPackets, "vgate_packets_total", counter,                                                               \
    "Packets carried, by path: fast (redirected by the BPF fast path) or slow (through a DPDK worker).",    \
    "path")                                                                                                 \
  X(kBytes, "vgate_bytes_total", counter,                                                                   \
    "Bytes carried, by path; fast counts when a worker reads an offloaded flow's entries back.", "path")    \
  X(kContainerPackets, "vgate_container_packets_total", counter,                                            \
    "Packets of ended flows per container, by direction (egress: sent by the container) and verdict.",      \
    "container", "direction", "verdict")                                                                    \
  X(kContainerBytes, "vgate_container_bytes_total", counter,                                                \
    "Bytes of ended flows per container, by direction (egress: sent by the container) and verdict.",        \
    "container", "direction", "verdict")                                                                    \
  X(kWorkerBusyRatio, "vgate_worker_busy_ratio", gauge,                                                     \
    "Share of a worker's poll loop time spent in rounds that received packets, since the last scrape.",     \
    "worker")                                                                                               \
  X(kFastPathMapPressure, "vgate_fastpath_map_pressure", gauge,                                             \
    "Fill of a fast path BPF map: entries / max_entries (as cilium_bpf_map_pressure).", "map")              \
  X(kRecordRingOccupancy, "vgate_record_ring_occupancy_ratio", gauge,                                       \
    "Fill of a worker's flow record ring: records waiting for the writer / ring capacity.", "worker")       \
  X(kFlowLogRecords, "vgate_flow_log_records_total", counter,                                               \
    "Flow records that reached the flow log, by result (written, write_error).", "result")                  \
  X(kFlowLogLost, "vgate_flow_log_records_lost_total", counter,                                             \
    "Flow records lost on the way to the log, by cause (end_ring_full, metadata_ring_full, "                \
    "metadata_pending_full).",                                                                              \
    "cause")                                                                                                \
  X(kPacketsParsed, "vgate_packets_parsed_total", counter,                                                  \
    "Packets the workers parsed, by result (ok, arp, other_ethertype, fragment, or the malformed header).", \
    "result")                                                                                               \
  X(kPolicyInfo, "vgate_policy_info", gauge,                                                                \
    "The policy in force: 1, labelled with its name, version and mode.", "name", "version", "mode")         \
  X(kPolicyRules, "vgate_policy_rules", gauge, "Rules of the policy in force.")                             \
  X(kPolicyCompileSeconds, "vgate_policy_compile_seconds", histogram, "Time to compile a policy.")          \
  X(kPolicyApply, "vgate_policy_apply_total", counter,                                                      \
    "Policies compiled and published, by result (success, failure).", "result")                             \
  X(kControlRequests, "vgate_control_requests_total", counter,                                              \
    "Control socket requests, by verb and errno-style status (OK, EINVAL, ...).", "verb", "status")         \
  X(kBuildInfo, "vgate_build_info", gauge, "1, labelled with vgated's version.", "version")

// The counter lists exported whole, each counter summed over workers: X(struct, name prefix, list macro).
// A counter `flowsCreated` of the worker list is vgate_worker_flows_created_total.
#define VGATE_METRIC_COUNTER_LISTS(X)                                                         \
  X(::vgate::dataplane::WorkerCounters, "vgate_worker_", "VGATE_WORKER_COUNTERS")             \
  X(::vgate::dataplane::InspectionCounters, "vgate_inspection_", "VGATE_INSPECTION_COUNTERS") \
  X(::vgate::dataplane::LaneCounters, "vgate_lane_", "VGATE_LIVE_LANE_COUNTERS")              \
  X(::vgate::dataplane::FragmentCounters, "vgate_", "VGATE_FRAGMENT_COUNTERS")                \
  X(::vgate::dataplane::FastPathStats, "vgate_fastpath_", "VGATE_FP_STATS")                   \
  X(::vgate::control::FlowLogCounters, "vgate_flow_log_", "VGATE_FLOW_LOG_COUNTERS")

#define VGATE_METRIC_ENUMERATOR(id, ...) id,
enum class Metric : uint16_t { VGATE_METRICS(VGATE_METRIC_ENUMERATOR) kCount };
#undef VGATE_METRIC_ENUMERATOR
inline constexpr size_t kMetricCount = static_cast<size_t>(Metric::kCount);

struct MetricSpec {
  std::string name;
  MetricType type = MetricType::kCounter;
  std::string help;
  std::vector<std::string> labels;
  std::string source;  // where it is declared: "VGATE_METRICS" or the counter list's macro
  // Counter lists only: the value is multiplied by this (nanoseconds exported as seconds).
  double scale = 1;
};

// The hand-named metrics first, in VGATE_METRICS order (index = Metric), then each counter list's counters in
// list order.
const std::vector<MetricSpec>& metricCatalog();
inline const MetricSpec& specOf(Metric metric) { return metricCatalog()[static_cast<size_t>(metric)]; }

// A counter list entry's Prometheus name and scale: camelCase to snake_case under `prefix`; unit
// "nanoseconds" becomes seconds (_seconds); counters end in _total.
MetricSpec counterListSpec(std::string_view prefix, const CounterInfo& info, std::string_view source);
std::string snakeCase(std::string_view camel);
std::string_view metricTypeName(MetricType type);

// The README's table: one row per metric (name, type, labels, help), markdown.
std::string renderMetricTable();

}  // namespace vgate::control::metrics
