// The scrape-time side of vgated's metrics: one prometheus::Collectable that, on each scrape, takes a
// snapshot of the dataplane's counters (each worker's own, cache-line aligned, written by that worker only),
// sums them and renders every metric of the catalog. Nothing is added to the workers' hot path: the cost of
// a scrape is a copy of the counters and the sums.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "control/flowlog/flow_log_writer.h"
#include "control/metrics/flow_metrics.h"
#include "dataplane/fastpath/fast_path.h"
#include "dataplane/live/live_dataplane.h"

namespace vgate::control::metrics {

struct MapFill {
  std::string name;
  uint64_t entries = 0;
  uint64_t maxEntries = 0;
};

// What the daemon hands a scrape: read while the dataplane runs (see LiveDataplane::status).
struct DataplaneSnapshot {
  std::vector<dataplane::LiveWorkerStatus> workers;
  dataplane::FastPathStats fastPath;
  FlowLogCounters flowLog;
  std::vector<MapFill> maps;
  std::vector<uint16_t> attachedPorts;  // port pairs attached now
};
using SnapshotSource = std::function<DataplaneSnapshot()>;

class MetricsCollector final : public prometheus::Collectable {
 public:
  MetricsCollector(FlowMetrics& flows, SnapshotSource source, std::string version)
      : flows_(flows), source_(std::move(source)), version_(std::move(version)) {}

  // One family per catalog entry, in catalog order (an empty family for a labelled metric with no sample).
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  FlowMetrics& flows_;
  SnapshotSource source_;
  std::string version_;
  // The busy ratio is over the time since the previous scrape: each worker's busy and idle time then.
  mutable std::mutex mutex_;
  mutable std::map<uint16_t, std::pair<uint64_t, uint64_t>> lastBusy_;
};

// The Prometheus text exposition of `collectable` (what a scrape of /metrics returns for it).
std::string renderExposition(const prometheus::Collectable& collectable);

}  // namespace vgate::control::metrics
