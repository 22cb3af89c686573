// Cost of a scrape with 1k containers' worth of series (and of none, the baseline): the collector's sums,
// the event metrics' copy and prometheus-cpp's text serialisation, as /metrics does them; the exposition's
// size is printed as a counter. Also the cost the tee adds to each flow end record on the writer's thread.
#include <netinet/in.h>

#include <cstdio>
#include <string>

#include "bench/bench_support.h"
#include "control/metrics/collector.h"

namespace {

using namespace vgate::control::metrics;

vgate::FlowEndRecord record(uint16_t port, uint8_t direction, vgate::VerdictAction action, uint32_t rule) {
  vgate::FlowEndRecord r;
  r.portPair = port;
  r.direction = direction;
  r.action = action;
  r.protocol = IPPROTO_TCP;
  r.ruleId = rule;
  r.policyVersion = 1;
  r.pkts[0] = 10;
  r.pkts[1] = 8;
  r.bytes[0] = 1000;
  r.bytes[1] = 8000;
  return r;
}

// `containers` attached containers, each with flows both ways, allowed and denied (8 container series each),
// a 20-rule policy, two workers.
struct Scene {
  explicit Scene(int containers) {
    vgate::policy::Policy policy;
    policy.name = "bench";
    for (int i = 0; i < 20; ++i) {
      vgate::policy::Rule rule;
      rule.name = "rule-" + std::to_string(i);
      policy.rules.push_back(rule);
    }
    flows.setPolicy(policy, 1);
    flows.policyApplied(true, 0.05);
    for (int c = 1; c <= containers; ++c) {
      auto port = static_cast<uint16_t>(c);
      flows.setPortName(port, "container-" + std::to_string(c));
      snapshot.attachedPorts.push_back(port);
      for (uint8_t direction : {1, 2}) {
        flows.observeEnd(record(port, direction, vgate::VerdictAction::kAllow, UINT32_MAX));
        flows.observeEnd(record(port, direction, vgate::VerdictAction::kDeny, static_cast<uint32_t>(c % 20)));
      }
    }
    snapshot.workers.resize(2);
    snapshot.workers[1].id = 1;
    snapshot.maps = {{"vgate_fp_flows", 1000, 1u << 20}, {"vgate_fp_ports", 2000, 8190}};
  }
  FlowMetrics flows;
  DataplaneSnapshot snapshot;
  MetricsCollector collector{flows, [this] { return snapshot; }, "bench"};
};

void scrape(benchmark::State& state) {
  Scene scene(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = renderExposition(scene.collector);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["exposition_bytes"] = static_cast<double>(bytes);
  size_t series = 0;
  for (const auto& family : scene.collector.Collect()) series += family.metric.size();
  state.counters["series"] = static_cast<double>(series);
}
BENCHMARK(scrape)->Arg(1000)->Unit(benchmark::kMillisecond);
void scrapeBaseline(benchmark::State& state) { scrape(state); }
BENCHMARK(scrapeBaseline)->Arg(0)->Unit(benchmark::kMillisecond);

struct NullSink final : vgate::RecordSink {
  void onMetadata(const vgate::FlowMetadataRecord&) override {}
  void onEnd(const vgate::FlowEndRecord& r) override { benchmark::DoNotOptimize(r.flowId); }
};

void teeOnEnd(benchmark::State& state) {
  Scene scene(1000);
  NullSink sink;
  RecordTee tee(scene.flows, sink);
  uint16_t port = 1;
  for (auto _ : state) {
    tee.onEnd(record(port, 1, vgate::VerdictAction::kAllow, 3));
    port = static_cast<uint16_t>(port % 1000 + 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(teeOnEnd);
void teeBaselineSink(benchmark::State& state) {
  NullSink sink;
  vgate::RecordSink& next = sink;
  for (auto _ : state) next.onEnd(record(1, 1, vgate::VerdictAction::kAllow, 3));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(teeBaselineSink);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.printRatios({{"scrape", "scrapeBaseline"}, {"teeOnEnd", "teeBaselineSink"}});
  return 0;
}
