// The flow log's cost per record: formatting one EVE line, and formatting plus writing it to a file on tmpfs
// through the writer (metadata joined, batches written), each against the DOM formatter and writer it
// replaced (tests/support/eve_dom_format.h), in the same run.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_support.h"
#include "control/flowlog/flow_log_format.h"
#include "control/flowlog/flow_log_writer.h"
#include "tests/support/eve_dom_format.h"
#include "tests/support/random_flow_records.h"

namespace {

using vgate::FlowEndRecord;
using vgate::FlowMetadataRecord;
using vgate::control::PolicyNames;
using vgate::control::PortIdentity;

constexpr size_t kRecords = 4096;
const char* const kPath = "/dev/shm/vgate-flow-log-bench.json";

// A live node's mix: mostly IPv4 TCP, some UDP/ICMP/IPv6, a third with TLS or HTTP metadata, every flow at
// a named container port and judged by a loaded policy.
struct Workload {
  std::vector<FlowEndRecord> records;
  std::vector<FlowMetadataRecord> metadata;  // by record; used where hasMetadata
  std::vector<std::string> members;          // the streaming formatter's metadata text
  std::vector<nlohmann::ordered_json> dom;   // the DOM formatter's
  PolicyNames policy;
  std::unordered_map<uint16_t, PortIdentity> ports;

  Workload() {
    vgate::testing::RandomFlowRecords random(42);
    policy.loaded = true;
    policy.version = 1;
    policy.policyName = "node-default";
    for (int i = 0; i < 20; ++i) policy.ruleNames.push_back("allow-service-" + std::to_string(i));
    for (uint16_t id = 1; id <= 8; ++id)
      ports[id] = {id, "app-" + std::to_string(id), "eth0", "veth" + std::to_string(1000 + id)};
    for (size_t i = 0; i < kRecords; ++i) {
      FlowEndRecord record = random.record();
      record.ipVersion = random.chance(85) ? 4 : 6;
      if (record.ipVersion == 4)
        std::memset(record.srcAddr + 4, 0, 12), std::memset(record.dstAddr + 4, 0, 12);
      record.protocol = random.chance(75) ? 6 : random.chance(70) ? 17 : 1;
      record.flowId = i + 1;
      record.startUs = 1'763'900'000'000'000ull + i * 1000;
      record.endUs = record.startUs + random.below(30'000'000);
      record.pkts[0] = random.below(100);
      record.pkts[1] = random.below(100);
      record.bytes[0] = record.pkts[0] * 300;
      record.bytes[1] = record.pkts[1] * 900;
      record.portPair = static_cast<uint16_t>(1 + random.below(8));
      record.vlanCount = 0;
      record.policyVersion = 1;
      record.ruleId = static_cast<uint32_t>(random.below(20));
      record.hasMetadata = record.protocol == 6 && random.chance(40);
      FlowMetadataRecord meta;
      meta.flowId = record.flowId;
      if (record.hasMetadata) {
        if (random.chance(70)) {
          meta.tls.present = true;
          meta.tls.version = 0x0304;
          std::snprintf(meta.tls.sni, sizeof(meta.tls.sni), "api%zu.service.example.com", i % 97);
          meta.tls.alpnCount = 2;
          std::strcpy(meta.tls.alpn[0], "h2");
          std::strcpy(meta.tls.alpn[1], "http/1.1");
          std::strcpy(meta.tls.ja3, "771,4865-4866-4867,0-23-65281,29-23,0");
          std::strcpy(meta.tls.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        } else {
          meta.http.present = true;
          std::strcpy(meta.http.hostname, "www.example.com");
          std::snprintf(meta.http.url, sizeof(meta.http.url), "/api/v1/items/%zu?page=2", i);
          std::strcpy(meta.http.method, "GET");
          std::strcpy(meta.http.protocol, "HTTP/1.1");
          std::strcpy(meta.http.userAgent, "curl/7.88.1");
        }
      }
      members.push_back(vgate::control::formatMetadata(meta));
      dom.push_back(vgate::testing::dom::formatMetadata(meta));
      records.push_back(record);
      metadata.push_back(meta);
    }
  }
};

const Workload& workload() {
  static const Workload kWorkload;
  return kWorkload;
}

void BM_FormatStreaming(benchmark::State& state) {
  const Workload& w = workload();
  std::string line;
  for (auto _ : state) {
    for (size_t i = 0; i < kRecords; ++i) {
      const FlowEndRecord& record = w.records[i];
      line.clear();
      vgate::control::appendFlowRecord(line, record, record.hasMetadata ? w.members[i] : std::string_view(),
                                       w.policy, &w.ports.at(record.portPair));
      benchmark::DoNotOptimize(line.data());
    }
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kRecords);
}

void BM_FormatDom(benchmark::State& state) {
  const Workload& w = workload();
  for (auto _ : state) {
    for (size_t i = 0; i < kRecords; ++i) {
      const FlowEndRecord& record = w.records[i];
      std::string line = vgate::testing::dom::formatFlowRecord(
          record, record.hasMetadata ? &w.dom[i] : nullptr, w.policy, &w.ports.at(record.portPair));
      benchmark::DoNotOptimize(line.data());
    }
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kRecords);
}

// The writer as vgated runs it: metadata in, end records in, batches written, a flush per 4096 records.
void BM_WriteFileStreaming(benchmark::State& state) {
  const Workload& w = workload();
  unlink(kPath);
  auto opened = vgate::control::FlowLogWriter::open(kPath);
  if (!opened) {
    state.SkipWithError(opened.error().message.c_str());
    return;
  }
  vgate::control::FlowLogWriter& writer = *opened.value();
  writer.setPolicyNames(w.policy);
  for (const auto& [id, port] : w.ports) writer.setPortIdentity(port);
  for (auto _ : state) {
    for (size_t i = 0; i < kRecords; ++i) {
      if (w.records[i].hasMetadata) writer.onMetadata(w.metadata[i]);
      writer.onEnd(w.records[i]);
    }
    writer.flush();
    state.PauseTiming();
    if (truncate(kPath, 0) != 0) state.SkipWithError("truncate");  // keep tmpfs small; O_APPEND goes on
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kRecords);
  state.counters["writes/flush"] =
      static_cast<double>(writer.counters().writes) / static_cast<double>(state.iterations());
  unlink(kPath);
}

// The writer it replaced: a DOM per metadata kept until the end record, a DOM per line, fwrite per line.
void BM_WriteFileDom(benchmark::State& state) {
  const Workload& w = workload();
  unlink(kPath);
  std::FILE* out = std::fopen(kPath, "a");
  std::unordered_map<uint64_t, nlohmann::ordered_json> pending;
  for (auto _ : state) {
    for (size_t i = 0; i < kRecords; ++i) {
      const FlowEndRecord& record = w.records[i];
      if (record.hasMetadata) pending[record.flowId] = vgate::testing::dom::formatMetadata(w.metadata[i]);
      auto found = record.hasMetadata ? pending.find(record.flowId) : pending.end();
      std::string line = vgate::testing::dom::formatFlowRecord(
          record, found != pending.end() ? &found->second : nullptr, w.policy, &w.ports.at(record.portPair));
      line.push_back('\n');
      std::fwrite(line.data(), 1, line.size(), out);
      if (found != pending.end()) pending.erase(found);
    }
    std::fflush(out);
    state.PauseTiming();
    if (truncate(kPath, 0) != 0) state.SkipWithError("truncate");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kRecords);
  std::fclose(out);
  unlink(kPath);
}

BENCHMARK(BM_FormatStreaming);
BENCHMARK(BM_FormatDom);
BENCHMARK(BM_WriteFileStreaming);
BENCHMARK(BM_WriteFileDom);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.printRatios(
      {{"BM_FormatStreaming", "BM_FormatDom"}, {"BM_WriteFileStreaming", "BM_WriteFileDom"}});
  benchmark::Shutdown();
  return 0;
}
