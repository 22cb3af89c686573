// The scrape-time collector: see collector.h.
#include "control/metrics/collector.h"

#include <prometheus/text_serializer.h>

#include <limits>
#include <tuple>

#include "control/metrics/metric_list.h"

namespace vgate::control::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;

void addSample(MetricFamily& family, const MetricSpec& spec, const std::vector<std::string>& values,
               double value) {
  ClientMetric metric;
  for (size_t i = 0; i < spec.labels.size() && i < values.size(); ++i)
    metric.label.push_back({spec.labels[i], values[i]});
  if (spec.type == MetricType::kCounter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
}

void addSeries(MetricFamily& family, const MetricSpec& spec, const Series& series) {
  for (const auto& [labels, value] : series) addSample(family, spec, labels, value);
}

void addHistogram(MetricFamily& family, const HistogramValue& histogram) {
  ClientMetric metric;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < histogram.counts.size(); ++i) {
    cumulative += histogram.counts[i];
    double bound =
        i < histogram.bounds.size() ? histogram.bounds[i] : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back({cumulative, bound});
  }
  metric.histogram.sample_count = histogram.count;
  metric.histogram.sample_sum = histogram.sum;
  family.metric.push_back(std::move(metric));
}

prometheus::MetricType familyType(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return prometheus::MetricType::Counter;
    case MetricType::kGauge:
      return prometheus::MetricType::Gauge;
    case MetricType::kHistogram:
      return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

std::vector<MetricFamily> MetricsCollector::Collect() const {
  DataplaneSnapshot snapshot = source_();
  flows_.retirePorts(snapshot.attachedPorts);
  FlowMetricsView events = flows_.view();

  const std::vector<MetricSpec>& catalog = metricCatalog();
  std::vector<MetricFamily> families(catalog.size());
  for (size_t i = 0; i < catalog.size(); ++i) {
    families[i].name = catalog[i].name;
    families[i].help = catalog[i].help;
    families[i].type = familyType(catalog[i].type);
  }
  auto family = [&](Metric metric) -> MetricFamily& { return families[static_cast<size_t>(metric)]; };
  auto add = [&](Metric metric, const std::vector<std::string>& labels, double value) {
    addSample(family(metric), specOf(metric), labels, value);
  };
  auto series = [&](Metric metric, const Series& values) {
    addSeries(family(metric), specOf(metric), values);
  };

  // Sums over workers, at scrape time.
  dataplane::WorkerCounters worker;
  dataplane::InspectionCounters inspection;
  dataplane::LaneCounters lane;
  dataplane::FragmentCounters fragments;
  uint64_t flowsActive = 0;
  for (const auto& status : snapshot.workers) {
    worker.add(status.counters);
    inspection.add(status.inspection);
    lane.add(status.lane);
    fragments.add(status.fragments);
    flowsActive += status.flows;
  }
  const dataplane::FastPathStats& fastPath = snapshot.fastPath;
  const FlowLogCounters& flowLog = snapshot.flowLog;

  series(Metric::kFlowsProcessed, events.flowsProcessed);
  add(Metric::kFlowsActive, {}, static_cast<double>(flowsActive));
  series(Metric::kFlowsEnded, events.flowsEnded);
  series(Metric::kPolicyVerdicts, events.policyVerdicts);
  const std::pair<const char*, uint64_t> drops[] = {{"policy_denied", worker.denied},
                                                    {"fastpath_policy_denied", fastPath.denied},
                                                    {"fail_closed", fastPath.failClosedDrops},
                                                    {"bad_port_tag", fastPath.badTag},
                                                    {"oversize", fastPath.oversize},
                                                    {"trunk_tx_full", lane.txDropped},
                                                    {"untagged", lane.untagged},
                                                    {"unparsed", worker.unparsedDropped},
                                                    {"bad_checksum", worker.checksumErrors},
                                                    {"malformed", fastPath.malformedDrops},
                                                    {"other_ethertype", fastPath.otherEthertypeDrops},
                                                    {"ipv6_routing_header", fastPath.routingHeaderDrops},
                                                    {"fragment_overlap", fragments.fragmentsOverlapping},
                                                    {"fragment_tiny_first", fragments.fragmentsTinyFirst},
                                                    {"fragment_malformed", fragments.fragmentsMalformed},
                                                    {"fragment_too_many", fragments.fragmentsTooMany},
                                                    {"fragment_expired", fragments.fragmentsExpired}};
  for (const auto& [reason, count] : drops) add(Metric::kDrops, {reason}, static_cast<double>(count));
  add(Metric::kPackets, {"fast"}, static_cast<double>(fastPath.hits));
  add(Metric::kPackets, {"slow"}, static_cast<double>(worker.packets));
  add(Metric::kBytes, {"fast"}, static_cast<double>(worker.fastPathBytes));
  add(Metric::kBytes, {"slow"}, static_cast<double>(worker.bytes));
  series(Metric::kContainerPackets, events.containerPackets);
  series(Metric::kContainerBytes, events.containerBytes);
  {
    std::lock_guard lock(mutex_);
    for (const auto& status : snapshot.workers) {
      auto& last = lastBusy_[status.id];
      uint64_t busy = status.lane.busyTime - std::min(last.first, status.lane.busyTime);
      uint64_t idle = status.lane.idleTime - std::min(last.second, status.lane.idleTime);
      last = {status.lane.busyTime, status.lane.idleTime};
      add(Metric::kWorkerBusyRatio, {std::to_string(status.id)}, ratio(busy, busy + idle));
    }
  }
  for (const MapFill& map : snapshot.maps)
    add(Metric::kFastPathMapPressure, {map.name}, ratio(map.entries, map.maxEntries));
  for (const auto& status : snapshot.workers) {
    add(Metric::kRecordRingOccupancy, {std::to_string(status.id)},
        ratio(status.recordRingUsed, status.recordRingCapacity));
  }
  add(Metric::kFlowLogRecords, {"written"}, static_cast<double>(flowLog.recordsWritten));
  add(Metric::kFlowLogRecords, {"write_error"}, static_cast<double>(flowLog.writeErrors));
  add(Metric::kFlowLogLost, {"end_ring_full"}, static_cast<double>(worker.recordsLost));
  add(Metric::kFlowLogLost, {"metadata_ring_full"}, static_cast<double>(worker.metadataLost));
  add(Metric::kFlowLogLost, {"metadata_pending_full"}, static_cast<double>(flowLog.metadataDropped));
  for (int i = 0; i < dataplane::kParseStatusCount; ++i) {
    add(Metric::kPacketsParsed, {dataplane::parseStatusName(static_cast<dataplane::ParseStatus>(i))},
        static_cast<double>(worker.parseStatus[i]));
  }
  series(Metric::kPolicyInfo, events.policyInfo);
  add(Metric::kPolicyRules, {}, events.policyRules);
  addHistogram(family(Metric::kPolicyCompileSeconds), events.policyCompileSeconds);
  series(Metric::kPolicyApply, events.policyApply);
  series(Metric::kControlRequests, events.controlRequests);
  add(Metric::kBuildInfo, {version_}, 1);

  // Every counter list, in catalog order after the hand-named metrics.
  size_t next = kMetricCount;
  auto visit = [&](const CounterInfo&, uint64_t value) {
    addSample(families[next], catalog[next], {}, static_cast<double>(value) * catalog[next].scale);
    ++next;
  };
  const std::tuple<const dataplane::WorkerCounters&, const dataplane::InspectionCounters&,
                   const dataplane::LaneCounters&, const dataplane::FragmentCounters&,
                   const dataplane::FastPathStats&, const FlowLogCounters&>
      sums{worker, inspection, lane, fragments, fastPath, flowLog};
#define VGATE_METRIC_LIST_VALUES(Counters, prefix, source) std::get<const Counters&>(sums).forEach(visit);
  VGATE_METRIC_COUNTER_LISTS(VGATE_METRIC_LIST_VALUES)
#undef VGATE_METRIC_LIST_VALUES
  return families;
}

std::string renderExposition(const prometheus::Collectable& collectable) {
  return prometheus::TextSerializer().Serialize(collectable.Collect());
}

}  // namespace vgate::control::metrics
