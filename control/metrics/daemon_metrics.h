// vgated's metrics as the daemon wires them: the event metrics, the tee in front of the flow log writer, the
// control verbs' request counts and the Prometheus pull exposer (prometheus-cpp, civetweb) serving /metrics.
// The daemon's own code only hands records, policies, port names and a snapshot source to this object.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/metrics/collector.h"
#include "control/metrics/flow_metrics.h"
#include "control/metrics/map_fill.h"
#include "control/socket/control_server.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

namespace prometheus {
class Exposer;
}

namespace vgate::control::metrics {

class DaemonMetrics {
 public:
  // Records drained into sink() reach `writer` unchanged.
  DaemonMetrics(RecordSink& writer, std::string version);
  ~DaemonMetrics();
  DaemonMetrics(const DaemonMetrics&) = delete;
  DaemonMetrics& operator=(const DaemonMetrics&) = delete;

  RecordSink& sink() { return tee_; }
  FlowMetrics& flows() { return flows_; }
  // Wraps every handler so that each request is counted by verb and reply status.
  void countRequests(ControlHandlers& handlers);
  // Serves /metrics on `address` (HOST:PORT; an IPv6 host in brackets) from the calling thread's netns. The
  // fast path maps' fill comes from the maps pinned in `bpffsDir`.
  Result<void> serve(const std::string& address, const std::string& bpffsDir, SnapshotSource source);
  // The ports the exposer listens on (the real one when `address` asked for port 0).
  std::vector<int> listeningPorts() const;
  // Stops serving: after it returns, no scrape calls the snapshot source any more.
  void stop();

 private:
  FlowMetrics flows_;
  RecordTee tee_;
  std::string version_;
  std::unique_ptr<PinnedMapFill> maps_;
  std::shared_ptr<MetricsCollector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace vgate::control::metrics
