// Offline replay: see replay.h. The main lcore reads the capture (net_pcap), dispatches packets to the
// workers by a symmetric hash of their addresses, and drains the workers' record rings into the sink.
#include "dataplane/replay/replay.h"

#include <pcap/pcap.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "dataplane/eal/eal.h"
#include "dataplane/flow/flow_key_builder.h"
#include "dataplane/records/record_pools.h"
#include "dataplane/verdict/policy_registry.h"

namespace vgate::dataplane {

namespace {

constexpr uint32_t kInputRingSize = 1024;
constexpr RecordPoolSizes kRecordPoolSizes{8192, 4096, 512, 32, 8};
constexpr uint32_t kSweepBudget = 64;
constexpr uint16_t kMaxWorkers = 64;

struct WorkerLane {
  std::unique_ptr<Worker> worker;
  rte_ring* input = nullptr;
  std::atomic<bool> finished{false};
  const std::atomic<bool>* inputDone = nullptr;
};

int workerMain(void* argument) {
  auto* lane = static_cast<WorkerLane*>(argument);
  Worker& worker = *lane->worker;
  rte_mbuf* burst[kBurstOutputCapacity];
  for (;;) {
    unsigned count =
        rte_ring_sc_dequeue_burst(lane->input, reinterpret_cast<void**>(burst), kBurstSize, nullptr);
    if (count > 0) {
      uint16_t kept = worker.processBurst(burst, static_cast<uint16_t>(count), worker.clockUs());
      rte_pktmbuf_free_bulk(burst, kept);  // replay forwards nothing
      worker.expire(worker.clockUs(), kSweepBudget);
      continue;
    }
    // The dispatcher sets inputDone after its last enqueue, so an empty ring seen after it means the end.
    if (lane->inputDone->load(std::memory_order_acquire) && rte_ring_empty(lane->input)) break;
    worker.reportQuiescent();  // idle: a policy publish must not wait for this worker's next packet
    rte_pause();
  }
  worker.flushAll(worker.clockUs(), FlowEndReason::kEndOfInput);
  lane->finished.store(true, std::memory_order_release);
  return 0;
}

struct Resources {
  rte_mempool* mbufs = nullptr;
  std::unique_ptr<RecordPools> records;
  std::unique_ptr<PolicyRegistry> policies;  // outlives the workers, which unregister from it
  std::vector<std::unique_ptr<WorkerLane>> lanes;
  ~Resources() {
    for (auto& lane : lanes) {
      lane->worker.reset();
      rte_ring_free(lane->input);
    }
    records.reset();
    rte_mempool_free(mbufs);
  }
};

void drainRecords(Resources& resources, RecordSink& sink) { resources.records->drain(sink); }

// DPDK device arguments cannot carry a comma; a capture whose path has one is reached through a symlink.
class DevargsPath {
 public:
  explicit DevargsPath(const std::string& path) : path_(std::filesystem::absolute(path).string()) {
    if (path_.find_first_of(",= ") == std::string::npos) return;
    char pattern[] = "/tmp/vgate-replay-XXXXXX";
    if (mkdtemp(pattern) == nullptr) return;
    directory_ = pattern;
    std::string link = directory_ + "/capture";
    if (symlink(path_.c_str(), link.c_str()) == 0) path_ = link;
  }
  ~DevargsPath() {
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string directory_;
};

Result<void> setUpPort(uint16_t port, rte_mempool* mbufs) {
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc != 0) {
    return makeError(-rc, "cannot configure the capture port: " + std::string(rte_strerror(-rc)));
  }
  int socket = rte_eth_dev_socket_id(port);
  if (int rc = rte_eth_rx_queue_setup(port, 0, 1024, socket, nullptr, mbufs); rc != 0) {
    return makeError(-rc, "cannot set up the capture's rx queue: " + std::string(rte_strerror(-rc)));
  }
  if (int rc = rte_eth_tx_queue_setup(port, 0, 1024, socket, nullptr); rc != 0) {
    return makeError(-rc, "cannot set up the capture's tx queue: " + std::string(rte_strerror(-rc)));
  }
  if (int rc = rte_eth_dev_start(port); rc != 0) {
    return makeError(-rc, "cannot start the capture port: " + std::string(rte_strerror(-rc)));
  }
  return {};
}

}  // namespace

Result<uint64_t> checkCapture(const std::string& path) {
  if (!std::filesystem::exists(path)) return makeError(ENOENT, "no such capture file: " + path);
  char error[PCAP_ERRBUF_SIZE] = {};
  pcap_t* capture = pcap_open_offline(path.c_str(), error);
  if (capture == nullptr) return makeError(EINVAL, "cannot read capture " + path + ": " + error);
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> closer(capture, pcap_close);
  if (pcap_datalink(capture) != DLT_EN10MB) {
    return makeError(EINVAL, "capture " + path + " has link type " +
                                 std::string(pcap_datalink_val_to_name(pcap_datalink(capture)) ?: "unknown") +
                                 "; only Ethernet (EN10MB) is supported");
  }
  uint64_t packets = 0;
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(capture, &header, &data)) == 1) ++packets;
  if (rc != PCAP_ERROR_BREAK) {
    return makeError(EINVAL, "capture " + path + " is corrupt after packet " + std::to_string(packets) +
                                 ": " + pcap_geterr(capture));
  }
  return packets;
}

Result<ReplaySummary> runReplay(const ReplayOptions& options, RecordSink& sink) {
  if (options.workers == 0 || options.workers > kMaxWorkers) {
    return makeError(EINVAL, "--workers must be between 1 and " + std::to_string(kMaxWorkers));
  }
  auto packets = checkCapture(options.pcapPath);
  if (!packets) return packets.error();
  DevargsPath capturePath(options.pcapPath);

  // Memory: per worker its flow table (~200 B per flow, measured), inspection pool and fragment table, plus
  // the mbuf and record pools, plus EAL's own needs.
  uint64_t perWorker = uint64_t{options.flowCapacity} * 256 +
                       uint64_t{options.inspectionSlots} * sizeof(InspectionState) +
                       kRecordPoolSizes.bytesPerWorker() + (8u << 20);
  uint64_t memoryMb = (perWorker * options.workers + (96u << 20)) >> 20;
  EalOptions ealOptions;
  ealOptions.programName = "vgated-replay";
  ealOptions.memoryMb = static_cast<uint32_t>(memoryMb);
  ealOptions.lcores = options.workers + 1u;
  auto eal = EalSession::start(ealOptions);
  if (!eal) return eal.error();
  ReplaySummary summary;
  summary.capturePackets = packets.value();
  {
    Resources resources;
    int socket = static_cast<int>(rte_socket_id());
    uint32_t mbufCount = options.workers * (kInputRingSize + 2 * kBurstSize) + 4096;
    resources.mbufs =
        rte_pktmbuf_pool_create("vgate_replay_mbufs", mbufCount, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (resources.mbufs == nullptr) {
      return makeError(ENOMEM,
                       "cannot create the replay's mbuf pool: " + std::string(rte_strerror(rte_errno)));
    }
    auto records = RecordPools::create("vgate_replay", options.workers, kRecordPoolSizes, socket);
    if (!records) return records.error();
    resources.records = std::move(records).value();
    if (options.policy != nullptr) {
      auto registry = PolicyRegistry::create(options.workers);
      if (!registry) return registry.error();
      resources.policies = std::move(registry).value();
      CompileOptions compileOptions;
      compileOptions.cacheDir = options.policyCacheDir;
      auto compiled = CompiledPolicy::compile(*options.policy, 1, compileOptions, options.workers);
      if (!compiled) return makeError(EINVAL, compiled.error().message);
      summary.policy = compiled.value()->stats();
      resources.policies->publish(std::move(compiled).value());
    }
    auto port = eal.value()->probeVirtualDevice("net_pcap0,rx_pcap=" + capturePath.path());
    if (!port) return port.error();
    if (auto started = setUpPort(port.value(), resources.mbufs); !started) return started.error();

    std::atomic<bool> inputDone{false};
    for (uint16_t id = 0; id < options.workers; ++id) {
      auto lane = std::make_unique<WorkerLane>();
      std::string suffix = std::to_string(id);
      lane->input = rte_ring_create(("vgate_in_" + suffix).c_str(), kInputRingSize, socket,
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (lane->input == nullptr) {
        return makeError(ENOMEM,
                         "cannot create a worker's input ring: " + std::string(rte_strerror(rte_errno)));
      }
      WorkerConfig config = workerConfigFor(id, socket, *resources.records, options.flowCapacity,
                                            options.inspectionSlots, options.timeouts);
      config.losslessRecords = true;
      config.verifyChecksums = options.verifyChecksums;
      config.policies = resources.policies.get();
      auto worker = Worker::create(config);
      if (!worker) return worker.error();
      lane->worker = std::move(worker).value();
      lane->inputDone = &inputDone;
      resources.lanes.push_back(std::move(lane));
    }
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (auto& lane : resources.lanes) {
      rte_eal_remote_launch(workerMain, lane.get(), lcore);
      lcore = rte_get_next_lcore(lcore, 1, 0);
    }

    // Dispatch until the capture is exhausted. net_pcap returns an empty burst both at the end of the file
    // and when it found no free mbuf; only the first is the end.
    rte_mbuf* burst[kBurstSize];
    rte_mbuf* staged[kMaxWorkers][kBurstSize];
    uint16_t stagedCount[kMaxWorkers] = {};
    for (;;) {
      uint16_t count = rte_eth_rx_burst(port.value(), 0, burst, kBurstSize);
      if (count == 0) {
        if (rte_mempool_avail_count(resources.mbufs) > 2 * kBurstSize) break;
        drainRecords(resources, sink);
        continue;
      }
      for (uint16_t i = 0; i < count; ++i) {
        ParsedPacket packet;
        ParseStatus status = parsePacket(rte_pktmbuf_mtod(burst[i], const uint8_t*), burst[i]->data_len,
                                         burst[i]->pkt_len, packet);
        uint32_t hash =
            (status == ParseStatus::kOk || status == ParseStatus::kFragment) ? flowDispatchHash(packet) : 0;
        uint16_t target = static_cast<uint16_t>(hash % options.workers);
        staged[target][stagedCount[target]++] = burst[i];
      }
      for (uint16_t id = 0; id < options.workers; ++id) {
        uint16_t sent = 0;
        while (sent < stagedCount[id]) {
          sent += static_cast<uint16_t>(rte_ring_sp_enqueue_burst(resources.lanes[id]->input,
                                                                  reinterpret_cast<void**>(&staged[id][sent]),
                                                                  stagedCount[id] - sent, nullptr));
          if (sent < stagedCount[id]) drainRecords(resources, sink);  // a waiting worker may need the writer
        }
        stagedCount[id] = 0;
      }
      drainRecords(resources, sink);
    }
    inputDone.store(true, std::memory_order_release);
    for (auto& lane : resources.lanes) {
      while (!lane->finished.load(std::memory_order_acquire)) drainRecords(resources, sink);
    }
    rte_eal_mp_wait_lcore();
    drainRecords(resources, sink);

    for (auto& lane : resources.lanes) {
      const WorkerCounters& counters = lane->worker->counters();
      summary.workers.push_back(counters);
      summary.inspection.push_back(lane->worker->inspectionCounters());
      summary.total.add(counters);
    }
  }
  return summary;
}

}  // namespace vgate::dataplane
