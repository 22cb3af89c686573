// vgated's metrics wiring: see daemon_metrics.h.
#include "control/metrics/daemon_metrics.h"

#include <dlfcn.h>
#include <prometheus/exposer.h>
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <exception>

// civetweb (Debian's, built with USE_STACK_SIZE=102400) asks for 100 KiB thread stacks, and glibc carves
// the static TLS out of them: vgated's is 64 KiB (the TLS parser's per-thread handshake buffer), so the first
// request overflowed the rest (sanitizers made it worse). This definition, which the executable exports in
// front of glibc's, gives every thread that asks for a size at least 1 MiB.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) noexcept {
  using Real = int (*)(pthread_attr_t*, size_t);
  static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real(attr, std::max<size_t>(size, size_t{1} << 20));
}

namespace vgate::control::metrics {

DaemonMetrics::DaemonMetrics(RecordSink& writer, std::string version)
    : tee_(flows_, writer), version_(std::move(version)) {}

DaemonMetrics::~DaemonMetrics() { stop(); }

void DaemonMetrics::countRequests(ControlHandlers& handlers) {
  for (auto& [verb, handler] : handlers) {
    handler = [this, verb = verb, inner = std::move(handler)](const nlohmann::json& args,
                                                              const PeerCredentials& peer) {
      ControlReply reply = inner(args, peer);
      flows_.countRequest(verb, reply.status);
      return reply;
    };
  }
}

Result<void> DaemonMetrics::serve(const std::string& address, const std::string& bpffsDir,
                                  SnapshotSource source) {
  maps_ =
      std::make_unique<PinnedMapFill>(bpffsDir, std::vector<std::string>{"vgate_fp_flows", "vgate_fp_ports"});
  PinnedMapFill* maps = maps_.get();
  collector_ = std::make_shared<MetricsCollector>(
      flows_,
      [maps, source = std::move(source)] {
        DataplaneSnapshot snapshot = source();
        snapshot.maps = maps->read();
        return snapshot;
      },
      version_);
  try {
    // civetweb's own threads (one listener, a few workers) serve the scrapes; one is enough for Prometheus.
    exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& error) {
    return makeError(EADDRNOTAVAIL, "cannot serve metrics on " + address + ": " + error.what());
  }
  exposer_->RegisterCollectable(collector_);
  return {};
}

std::vector<int> DaemonMetrics::listeningPorts() const {
  return exposer_ ? exposer_->GetListeningPorts() : std::vector<int>{};
}

void DaemonMetrics::stop() { exposer_.reset(); }

}  // namespace vgate::control::metrics
