// Flow table at 1M flows: insert and bulk lookup rates against std::unordered_map over the same keys (the
// baseline a hand-rolled table would start from), and the bytes each flow costs.
#include <netinet/in.h>
#include <rte_malloc.h>

#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "bench/bench_support.h"
#include "dataplane/flow/flow_key_builder.h"
#include "dataplane/flow/flow_table.h"

namespace {

using vgate::FlowKey;
using vgate::dataplane::FlowTable;

constexpr uint32_t kFlows = 1u << 20;

std::vector<FlowKey> makeKeys(uint32_t count) {
  std::vector<FlowKey> keys(count);
  for (uint32_t i = 0; i < count; ++i) {
    vgate::dataplane::ParsedPacket packet;
    packet.ipVersion = 4;
    packet.protocol = IPPROTO_TCP;
    uint32_t client = 0x0a000000u + (i >> 12), server = 0xc0a80001u + (i & 0xff);
    for (int b = 0; b < 4; ++b) {
      packet.srcAddr[b] = static_cast<uint8_t>(client >> (24 - 8 * b));
      packet.dstAddr[b] = static_cast<uint8_t>(server >> (24 - 8 * b));
    }
    packet.srcPort = static_cast<uint16_t>(1024 + (i & 0xfff));
    packet.dstPort = 443;
    vgate::dataplane::buildFlowKey(packet, keys[i]);
  }
  return keys;
}

struct KeyHash {
  size_t operator()(const FlowKey& key) const {
    return std::hash<std::string_view>()({reinterpret_cast<const char*>(&key), sizeof key});
  }
};

const std::vector<FlowKey>& keys() {
  static const std::vector<FlowKey> all = makeKeys(kFlows);
  return all;
}

int tableSerial = 0;
std::unique_ptr<FlowTable> newTable() {
  vgate::dataplane::FlowTableConfig config;
  config.name = "bench_" + std::to_string(tableSerial++);
  config.capacity = kFlows;
  return std::move(FlowTable::create(config)).value();
}

void BM_FlowTableInsert1M(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    auto table = newTable();
    state.ResumeTiming();
    for (const auto& key : keys()) benchmark::DoNotOptimize(table->insert(key));
    state.PauseTiming();
    state.counters["bytes_per_flow"] = static_cast<double>(table->memoryBytes()) / kFlows;
    table.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kFlows);
}

void BM_UnorderedMapInsert1M(benchmark::State& state) {
  for (auto _ : state) {
    std::unordered_map<FlowKey, vgate::dataplane::Flow, KeyHash> map;
    map.reserve(kFlows);
    for (const auto& key : keys()) benchmark::DoNotOptimize(map.try_emplace(key));
    state.PauseTiming();
    map = {};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kFlows);
}

// Lookups of random present keys in bursts of 32, as a worker does them.
void BM_FlowTableLookupBurst1M(benchmark::State& state) {
  static std::unique_ptr<FlowTable> table;
  if (!table) {
    table = newTable();
    for (const auto& key : keys()) table->insert(key);
  }
  std::mt19937 random(7);
  std::vector<const FlowKey*> order(kFlows);
  for (uint32_t i = 0; i < kFlows; ++i) order[i] = &keys()[random() % kFlows];
  int32_t positions[32];
  size_t next = 0;
  for (auto _ : state) {
    table->lookupBurst(&order[next], 32, positions);
    benchmark::DoNotOptimize(positions);
    next = (next + 32) % (kFlows - 32);
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * 32);
}

void BM_UnorderedMapLookup1M(benchmark::State& state) {
  static std::unordered_map<FlowKey, vgate::dataplane::Flow, KeyHash> map;
  if (map.empty()) {
    map.reserve(kFlows);
    for (const auto& key : keys()) map.try_emplace(key);
  }
  std::mt19937 random(7);
  std::vector<const FlowKey*> order(kFlows);
  for (uint32_t i = 0; i < kFlows; ++i) order[i] = &keys()[random() % kFlows];
  size_t next = 0;
  for (auto _ : state) {
    for (int i = 0; i < 32; ++i) benchmark::DoNotOptimize(map.find(*order[next + i]));
    next = (next + 32) % (kFlows - 32);
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * 32);
}

BENCHMARK(BM_FlowTableInsert1M)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_UnorderedMapInsert1M)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_FlowTableLookupBurst1M);
BENCHMARK(BM_UnorderedMapLookup1M);

}  // namespace

int main(int argc, char** argv) {
  vgate::bench::startEal(2048);
  benchmark::Initialize(&argc, argv);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.printRatios({{"BM_FlowTableInsert1M", "BM_UnorderedMapInsert1M"},
                        {"BM_FlowTableLookupBurst1M", "BM_UnorderedMapLookup1M"}});
  benchmark::Shutdown();
  return 0;
}
