// Per-worker throughput on an in-memory mix of real traffic (the committed real-client captures): parse +
// flow lookup, and the whole worker (flow state, TCP tracking, inspection), each against a no-op pass over
// the same mbufs in the same run. Goal: >= 10 Mpps per core for parse + lookup.
#include <pcap/pcap.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "bench/bench_support.h"
#include "dataplane/flow/flow_key_builder.h"
#include "dataplane/flow/flow_table.h"
#include "dataplane/packet/packet_parser.h"
#include "dataplane/worker/worker.h"

namespace {

using namespace vgate::dataplane;

// Enough packets that the working set is not one burst in L1, few enough that the mix stays the captures'
// mix.
constexpr size_t kMixPackets = 8192;

struct Mix {
  rte_mempool* pool = nullptr;
  std::vector<rte_mbuf*> mbufs;
  size_t capturePackets = 0;
  size_t captures = 0;
};

// Every whole (non-fragment) frame of every capture, repeated to kMixPackets, each in its own mbuf.
Mix& mix() {
  static Mix loaded = [] {
    Mix result;
    std::vector<std::vector<uint8_t>> frames;
    for (const auto& entry : std::filesystem::directory_iterator(VGATE_TEST_DATA_DIR "/pcap")) {
      char error[PCAP_ERRBUF_SIZE];
      pcap_t* capture = pcap_open_offline(entry.path().c_str(), error);
      if (capture == nullptr) continue;
      ++result.captures;
      pcap_pkthdr* header;
      const u_char* data;
      while (pcap_next_ex(capture, &header, &data) == 1) {
        ParsedPacket packet;
        if (header->caplen > 2000) continue;  // one mbuf each: keep frames that fit one
        if (parsePacket(data, header->caplen, header->caplen, packet) == ParseStatus::kFragment) continue;
        frames.emplace_back(data, data + header->caplen);
      }
      pcap_close(capture);
    }
    result.capturePackets = frames.size();
    if (frames.empty()) {
      std::fprintf(stderr, "no captures under %s/pcap\n", VGATE_TEST_DATA_DIR);
      std::exit(1);
    }
    result.pool =
        rte_pktmbuf_pool_create("bench_mix", kMixPackets + 1024, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    for (size_t i = 0; i < kMixPackets; ++i) {
      const auto& frame = frames[i % frames.size()];
      rte_mbuf* mbuf = rte_pktmbuf_alloc(result.pool);
      std::memcpy(rte_pktmbuf_append(mbuf, static_cast<uint16_t>(frame.size())), frame.data(), frame.size());
      result.mbufs.push_back(mbuf);
    }
    return result;
  }();
  return loaded;
}

// The baseline: what any worker pays to bring each packet's first cache line in, and nothing else.
void BM_NoopWorker(benchmark::State& state) {
  auto& packets = mix().mbufs;
  size_t next = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    for (uint16_t i = 0; i < kBurstSize; ++i) {
      const rte_mbuf* mbuf = packets[next + i];
      sum += rte_pktmbuf_mtod(mbuf, const uint8_t*)[12] + mbuf->data_len;
    }
    benchmark::DoNotOptimize(sum);
    next = (next + kBurstSize) % (packets.size() - kBurstSize);
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kBurstSize);
}

void BM_ParseAndLookup(benchmark::State& state) {
  auto& packets = mix().mbufs;
  FlowTableConfig config;
  config.name = "bench_parse_lookup";
  config.capacity = 1u << 16;
  auto table = std::move(FlowTable::create(config)).value();
  for (rte_mbuf* mbuf : packets) {
    ParsedPacket packet;
    if (parsePacket(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, mbuf->pkt_len, packet) !=
        ParseStatus::kOk)
      continue;
    vgate::FlowKey key;
    buildFlowKey(packet, key);
    table->insert(key);
  }
  size_t next = 0;
  for (auto _ : state) {
    ParsedPacket parsed[kBurstSize];
    vgate::FlowKey keys[kBurstSize];
    const vgate::FlowKey* pointers[kBurstSize];
    uint32_t count = 0;
    for (uint16_t i = 0; i < kBurstSize; ++i) {
      const rte_mbuf* mbuf = packets[next + i];
      if (parsePacket(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, mbuf->pkt_len, parsed[count]) !=
          ParseStatus::kOk)
        continue;
      buildFlowKey(parsed[count], keys[count]);
      pointers[count] = &keys[count];
      ++count;
    }
    int32_t positions[kBurstSize];
    table->lookupBurst(pointers, count, positions);
    benchmark::DoNotOptimize(positions);
    next = (next + kBurstSize) % (packets.size() - kBurstSize);
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kBurstSize);
}

void BM_WorkerProcessBurst(benchmark::State& state) {
  auto& packets = mix().mbufs;
  auto records = std::move(RecordPools::create("bench", 1, {1u << 16, 8192, 1024, 0, 0}, 0)).value();
  struct Discard : vgate::RecordSink {
    void onMetadata(const vgate::FlowMetadataRecord&) override {}
    void onEnd(const vgate::FlowEndRecord&) override {}
  } discard;
  WorkerConfig config;
  config.flowCapacity = 1u << 16;
  config.records = records->channel(0);
  auto worker = std::move(Worker::create(config)).value();
  size_t next = 0;
  uint64_t now = 1'700'000'000'000'000;
  for (auto _ : state) {
    rte_mbuf* burst[kBurstOutputCapacity];
    std::copy(packets.begin() + static_cast<long>(next),
              packets.begin() + static_cast<long>(next + kBurstSize), burst);
    benchmark::DoNotOptimize(worker->processBurst(burst, kBurstSize, now));
    next = (next + kBurstSize) % (packets.size() - kBurstSize);
    if (next < kBurstSize) {
      // Records appear only as inspections finish on the first pass; hand them back like the writer would.
      records->drain(discard);
    }
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kBurstSize);
  state.counters["flows"] = static_cast<double>(worker->flowTable().size());
  worker.reset();
  records.reset();
}

BENCHMARK(BM_NoopWorker);
BENCHMARK(BM_ParseAndLookup);
BENCHMARK(BM_WorkerProcessBurst);

}  // namespace

int main(int argc, char** argv) {
  vgate::bench::startEal(1024);
  benchmark::Initialize(&argc, argv);
  std::printf("mix: %zu packets from %zu captures (%zu whole frames), repeated to %zu mbufs\n",
              mix().mbufs.size(), mix().captures, mix().capturePackets, kMixPackets);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.printRatios({{"BM_ParseAndLookup", "BM_NoopWorker"}, {"BM_WorkerProcessBurst", "BM_NoopWorker"}});
  benchmark::Shutdown();
  return 0;
}
