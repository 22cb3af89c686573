// Fuzzes the replay's packet path: the input is a capture file, read by libpcap as vgated replay reads it,
// and each packet goes through a real worker (parse, fragments, flow table, TCP tracking, TLS/QUIC/HTTP
// inspection, records). Timestamps come from the capture, so the fuzzer also drives expiry and eviction.
#include <pcap/pcap.h>
#include <rte_eal.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/records/record_pools.h"
#include "dataplane/worker/worker.h"

namespace {

using namespace vgate::dataplane;

// Checks what a record must always be: it never ends before it starts.
struct CheckedSink : vgate::RecordSink {
  void onMetadata(const vgate::FlowMetadataRecord&) override {}
  void onEnd(const vgate::FlowEndRecord& record) override {
    if (record.endUs < record.startUs) std::abort();
  }
};

struct Harness {
  rte_mempool* mbufs;
  std::unique_ptr<RecordPools> records;
  CheckedSink sink;
  int timestampOffset;
  uint64_t timestampFlag;
};

Harness* harness = nullptr;

void drain() { harness->records->drain(harness->sink); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  rte_openlog_stream(stderr);
  std::vector<std::string> args = {
      "worker-pcap-fuzz", "--no-huge",           "-m", "512", "--no-shconf", "--no-pci",
      "--no-telemetry",   "--log-level=*:error", "-l", "0"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) std::abort();
  static Harness state;
  harness = &state;
  // Small mbufs so that larger frames arrive as chains, as jumbo frames do from net_pcap.
  state.mbufs = rte_pktmbuf_pool_create("fuzz_mbufs", 4096, 0, 0, 512 + RTE_PKTMBUF_HEADROOM, 0);
  auto records = RecordPools::create("fuzz", 1, {8192, 2048, 256, 0, 0}, 0);
  if (!records) std::abort();
  state.records = std::move(records).value();
  uint64_t flag = 0;
  if (rte_mbuf_dyn_rx_timestamp_register(&state.timestampOffset, &flag) != 0) std::abort();
  state.timestampFlag = flag;
  if (!state.mbufs) std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::FILE* file = fmemopen(const_cast<uint8_t*>(data), size, "rb");
  if (file == nullptr) return 0;
  char error[PCAP_ERRBUF_SIZE];
  pcap_t* capture = pcap_fopen_offline(file, error);  // takes the FILE
  if (capture == nullptr) return 0;
  WorkerConfig config;
  config.flowCapacity = 64;  // tiny, so that eviction runs
  config.inspectionSlots = 4;
  config.fragmentFlows = 16;
  config.verifyChecksums = false;  // random bytes: let them reach the parsers
  config.records = harness->records->channel(0);
  static int serial = 0;
  config.id = static_cast<uint16_t>(serial++ & 0xff);
  auto created = Worker::create(config);
  if (!created) std::abort();
  auto worker = std::move(created).value();
  rte_mbuf* burst[kBurstOutputCapacity];
  uint16_t count = 0;
  pcap_pkthdr* header;
  const u_char* packet;
  auto flush = [&]() {
    uint16_t kept = worker->processBurst(burst, count, worker->clockUs());
    rte_pktmbuf_free_bulk(burst, kept);
    worker->expire(worker->clockUs(), 16);
    drain();
    count = 0;
  };
  while (pcap_next_ex(capture, &header, &packet) == 1) {
    rte_mbuf* head = rte_pktmbuf_alloc(harness->mbufs);
    if (head == nullptr) break;
    uint32_t copied = 0;
    rte_mbuf* last = head;
    while (copied < header->caplen) {
      uint16_t room = rte_pktmbuf_tailroom(last);
      if (room == 0) {
        rte_mbuf* next = rte_pktmbuf_alloc(harness->mbufs);
        if (next == nullptr || rte_pktmbuf_chain(head, next) != 0) {
          rte_pktmbuf_free(next);
          break;
        }
        last = next;
        continue;
      }
      uint16_t chunk = static_cast<uint16_t>(std::min<uint32_t>(room, header->caplen - copied));
      std::memcpy(rte_pktmbuf_mtod_offset(last, uint8_t*, last->data_len), packet + copied, chunk);
      last->data_len = static_cast<uint16_t>(last->data_len + chunk);
      head->pkt_len += chunk;
      copied += chunk;
    }
    *RTE_MBUF_DYNFIELD(head, harness->timestampOffset, uint64_t*) =
        uint64_t(header->ts.tv_sec) * 1000000 + uint64_t(header->ts.tv_usec);
    head->ol_flags |= harness->timestampFlag;
    burst[count++] = head;
    if (count == kBurstSize) flush();
  }
  if (count > 0) flush();
  pcap_close(capture);
  worker->flushAll(worker->clockUs(), vgate::FlowEndReason::kEndOfInput);
  drain();
  if (worker->flowTable().size() != 0) std::abort();  // flushAll ends every flow
  return 0;
}
