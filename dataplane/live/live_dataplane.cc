// The live slow path: see live_dataplane.h.
#include "dataplane/live/live_dataplane.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cstdarg>
#include <cstdio>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>

#include "dataplane/records/record_pools.h"
#include "vgate/clock.h"

namespace vgate::dataplane {

namespace {

// The af_xdp driver makes each mempool object (header, mbuf, data room, padding) one AF_XDP frame, which the
// kernel takes up to a 4 KiB page. 3840 bytes of data room make 4032-byte objects: frames up to ~3.5 KiB
// (the MTU XDP allows on a veth, trunks.h) cross the trunk instead of 2 KiB ones.
constexpr uint16_t kMbufDataRoom = 3840;
static_assert(sizeof(rte_mbuf) + kMbufDataRoom + 64 <= 4096, "an AF_XDP frame is at most a page");
constexpr uint32_t kRxDescriptors = 1024;
constexpr uint32_t kTxDescriptors = 1024;
constexpr uint32_t kSweepBudget = 1024;
constexpr uint64_t kSweepIntervalUs = 1000;

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Flow ids unique across restarts (and across nodes, for a log collected in one place): the start of this
// run's id range is a hash of the kernel's boot id and the time.
uint64_t flowIdSeed() {
  std::string bootId;
  std::getline(std::ifstream("/proc/sys/kernel/random/boot_id"), bootId);
  uint64_t seed = mix64(clockNs(CLOCK_REALTIME));
  for (char c : bootId) seed = mix64(seed ^ static_cast<uint8_t>(c));
  return seed;
}

// libxdp speaks when DPDK's af_xdp driver loads its XDP program: its dispatcher needs a bpffs at
// /sys/fs/bpf and falls back to one program per interface without it (DESIGN.md, measured fact 6), which is
// all a trunk needs. Its warnings go to stderr once each, prefixed; its informational lines go nowhere.
int printLibxdp(enum libxdp_print_level level, const char* format, va_list arguments) {
  if (level != LIBXDP_WARN) return 0;
  char message[512];
  std::vsnprintf(message, sizeof(message), format, arguments);
  return std::fprintf(stderr, "vgated: %s", message);  // libxdp's lines begin with "libxdp: "
}

Error dpdkError(int rc, const std::string& what) {
  int code = rc < 0 ? -rc : rc;
  return makeError(code, what + ": " + rte_strerror(code));
}

Result<uint16_t> openPort(const std::string& driver, uint16_t index, const std::string& interface,
                          rte_mempool* mbufs) {
  std::string name = driver + "_vgate" + std::to_string(index);
  std::string devargs = name + ",iface=" + interface;
  devargs += driver == "net_af_xdp" ? ",start_queue=0,queue_count=1" : ",qpairs=1";
  if (int rc = rte_dev_probe(devargs.c_str()); rc != 0) {
    return dpdkError(rc, "cannot open " + driver + " on " + interface);
  }
  uint16_t port = 0;
  if (int rc = rte_eth_dev_get_port_by_name(name.c_str(), &port); rc != 0) {
    return dpdkError(rc, "no port for " + name);
  }
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc != 0) {
    return dpdkError(rc, "cannot configure the port on " + interface);
  }
  int socket = rte_eth_dev_socket_id(port);
  if (int rc = rte_eth_rx_queue_setup(port, 0, kRxDescriptors, socket, nullptr, mbufs); rc != 0) {
    return dpdkError(rc, "cannot set up the rx queue on " + interface);
  }
  if (int rc = rte_eth_tx_queue_setup(port, 0, kTxDescriptors, socket, nullptr); rc != 0) {
    return dpdkError(rc, "cannot set up the tx queue on " + interface);
  }
  if (int rc = rte_eth_dev_start(port); rc != 0) {
    return dpdkError(rc, "cannot start the port on " + interface);
  }
  return port;
}

}  // namespace

struct LiveDataplane::Lane {
  uint16_t id = 0;
  uint16_t port = 0;
  std::string interface;
  std::string driver;
  std::unique_ptr<PortOffload> offload;
  std::unique_ptr<Worker> worker;
  const std::atomic<bool>* stopping = nullptr;
  uint32_t idleSpinUs = 0;
  uint32_t maxSleepUs = 0;
  uint32_t deepIdleUs = 0;
  uint32_t deepSleepUs = 0;
  bool ioForward = false;
  std::atomic<uint64_t> loopNs{0};
  std::atomic<bool> launched{false};
  std::atomic<bool> finished{false};
  uint64_t txDropped = 0;
  uint64_t untagged = 0;
  uint64_t busyNs = 0;  // written by the lane only, like the worker's counters
  uint64_t idleNs = 0;
};

int LiveDataplane::laneMain(void* argument) {
  auto* lane = static_cast<Lane*>(argument);
  Worker& worker = *lane->worker;
  rte_mbuf* burst[kBurstOutputCapacity];
  uint32_t sleepUs = 1;
  uint64_t lastPacketUs = 0;
  uint64_t nextSweepUs = 0;
  uint64_t nowUs = clockNs(CLOCK_REALTIME) / 1000;
  // Each round's time goes to busy or idle by whether it received: the clock read the heartbeat needs
  // anyway measures it, so the busy ratio costs the loop one add.
  uint64_t roundStartNs = clockNs(CLOCK_MONOTONIC);
  bool roundBusy = false;
  while (!lane->stopping->load(std::memory_order_relaxed)) {
    uint64_t loopNs = clockNs(CLOCK_MONOTONIC);
    lane->loopNs.store(loopNs, std::memory_order_relaxed);
    (roundBusy ? lane->busyNs : lane->idleNs) += loopNs - roundStartNs;
    roundStartNs = loopNs;
    nowUs = clockNs(CLOCK_REALTIME) / 1000;  // the flow log's clock
    uint16_t received = rte_eth_rx_burst(lane->port, 0, burst, kBurstSize);
    roundBusy = received > 0;
    if (received > 0) {
      lastPacketUs = nowUs;
      sleepUs = 1;
      uint16_t tagged = 0;
      for (uint16_t i = 0; i < received; ++i) {
        uint16_t pairId = 0;
        uint8_t side = 0;
        if (vgate_port_tag_read(rte_pktmbuf_mtod(burst[i], const uint8_t*), burst[i]->data_len, &pairId,
                                &side)) {
          burst[tagged++] = burst[i];
        } else {
          ++lane->untagged;
          rte_pktmbuf_free(burst[i]);
        }
      }
      uint16_t kept = lane->ioForward ? tagged : worker.processBurst(burst, tagged, nowUs);
      // Back through the trunk, leaving by the other side of the pair: flip the tag's side bit in place.
      for (uint16_t i = 0; i < kept; ++i) {
        vgate_port_tag_flip_side(rte_pktmbuf_mtod(burst[i], uint8_t*));
      }
      uint16_t sent = rte_eth_tx_burst(lane->port, 0, burst, kept);
      if (sent < kept) {
        lane->txDropped += kept - sent;
        rte_pktmbuf_free_bulk(burst + sent, kept - sent);
      }
    } else {
      worker.reportQuiescent();  // idle: a policy publish must not wait for this worker's next packet
      uint64_t idleUs = nowUs - lastPacketUs;
      if (idleUs > lane->idleSpinUs) {
        usleep(sleepUs);
        sleepUs = std::min(sleepUs * 2, idleUs > lane->deepIdleUs ? lane->deepSleepUs : lane->maxSleepUs);
      } else {
        rte_pause();
      }
    }
    if (nowUs >= nextSweepUs) {
      worker.expire(nowUs, kSweepBudget);
      nextSweepUs = nowUs + kSweepIntervalUs;
    }
  }
  worker.flushAll(nowUs, FlowEndReason::kShutdown);
  lane->finished.store(true, std::memory_order_release);
  return 0;
}

Result<std::unique_ptr<LiveDataplane>> LiveDataplane::start(const LiveOptions& options) {
  if (options.trunkInterfaces.empty()) return makeError(EINVAL, "the live dataplane needs a trunk");
  if (options.driver != "net_af_xdp" && options.driver != "net_af_packet") {
    return makeError(EINVAL, "unknown driver '" + options.driver + "' (net_af_xdp or net_af_packet)");
  }
  if (rte_lcore_count() < options.trunkInterfaces.size() + 1) {
    return makeError(
        EINVAL, "EAL has too few lcores for " + std::to_string(options.trunkInterfaces.size()) + " workers");
  }
  libxdp_set_print(printLibxdp);
  std::unique_ptr<LiveDataplane> live(new LiveDataplane());
  live->options_ = options;
  auto workers = static_cast<uint32_t>(options.trunkInterfaces.size());
  int socket = static_cast<int>(rte_socket_id());
  uint32_t mbufCount = workers * (kRxDescriptors + kTxDescriptors + 4 * kBurstSize) + 2048;
  live->mbufs_ = rte_pktmbuf_pool_create("vgate_live_mbufs", mbufCount, 256, 0, kMbufDataRoom, socket);
  if (live->mbufs_ == nullptr) {
    return makeError(ENOMEM, "cannot create the live mbuf pool: " + std::string(rte_strerror(rte_errno)));
  }
  auto records = RecordPools::create("vgate_live", static_cast<uint16_t>(workers),
                                     liveRecordPoolSizes(options.flowCapacity), socket);
  if (!records) return records.error();
  live->records_ = std::move(records).value();
  int64_t realtimeOffsetNs =
      static_cast<int64_t>(clockNs(CLOCK_REALTIME)) - static_cast<int64_t>(clockNs(CLOCK_MONOTONIC));
  const uint64_t seed = flowIdSeed();  // one per run: the workers' ids differ in their low byte
  for (uint16_t id = 0; id < workers; ++id) {
    auto lane = std::make_unique<Lane>();
    lane->id = id;
    lane->interface = options.trunkInterfaces[id];
    lane->driver = options.driver;
    lane->stopping = &live->stopping_;
    lane->idleSpinUs = options.idleSpinUs;
    lane->maxSleepUs = std::max<uint32_t>(options.maxSleepUs, 1);
    lane->deepIdleUs = options.deepIdleUs;
    lane->deepSleepUs = std::max(options.deepSleepUs, lane->maxSleepUs);
    lane->ioForward = options.ioForward;
    auto port = openPort(options.driver, id, lane->interface, live->mbufs_);
    if (!port) return port.error();
    lane->port = port.value();
    if (options.offload && options.fastPath != nullptr && options.ports != nullptr) {
      lane->offload = std::make_unique<PortOffload>(*options.fastPath, *options.ports, realtimeOffsetNs);
    }
    WorkerConfig config = workerConfigFor(id, socket, *live->records_, options.flowCapacity,
                                          options.inspectionSlots, options.timeouts);
    config.losslessRecords = false;  // live traffic cannot wait for the log: a full ring is counted
    config.policies = options.policies;
    config.offload = lane->offload.get();
    config.outerTagIsPortPair = true;
    config.flowIdSeed = seed;
    config.inspectionTimeoutUs = options.inspectionTimeoutUs;
    config.exceptionPolicy = options.exceptionPolicy;
    auto worker = Worker::create(config);
    if (!worker) return worker.error();
    lane->worker = std::move(worker).value();
    live->lanes_.push_back(std::move(lane));
  }
  unsigned lcore = rte_get_next_lcore(-1, 1, 0);
  for (auto& lane : live->lanes_) {
    lane->loopNs.store(clockNs(CLOCK_MONOTONIC));
    if (int rc = rte_eal_remote_launch(laneMain, lane.get(), lcore); rc != 0) {
      live->stopping_.store(true);
      return dpdkError(rc, "cannot launch worker " + std::to_string(lane->id));
    }
    lane->launched.store(true);
    lcore = rte_get_next_lcore(lcore, 1, 0);
  }
  return live;
}

// A bounded time per call: under a flood of new flows the workers refill the rings as fast as they are
// drained (a record costs tens of microseconds to write), and the caller (vgated's main loop) must get back
// to writing the heartbeat well within its timeout. Records the rings cannot hold are counted as lost.
constexpr uint64_t kDrainBudgetNs = 20'000'000;

bool LiveDataplane::drainRecords(RecordSink& sink) {
  return records_ == nullptr || records_->drain(sink, clockNs(CLOCK_MONOTONIC) + kDrainBudgetNs);
}

bool LiveDataplane::workersAlive(uint64_t withinMs) const {
  uint64_t now = clockNs(CLOCK_MONOTONIC);
  for (const auto& lane : lanes_) {
    if (lane->finished.load(std::memory_order_acquire)) return false;
    uint64_t last = lane->loopNs.load(std::memory_order_relaxed);
    if (now > last && now - last > withinMs * 1'000'000ull) return false;
  }
  return true;
}

std::vector<LiveWorkerStatus> LiveDataplane::status() const {
  std::vector<LiveWorkerStatus> result;
  for (const auto& lane : lanes_) {
    LiveWorkerStatus status;
    status.id = lane->id;
    status.driver = lane->driver;
    status.interface = lane->interface;
    status.counters = lane->worker->counters();
    status.flows = lane->worker->flowTable().size();
    status.inspection = lane->worker->inspectionCounters();
    status.fragments = lane->worker->fragmentCounters();
    status.lane.txDropped = lane->txDropped;
    status.lane.untagged = lane->untagged;
    status.lane.offloadWriteFailures = lane->offload ? lane->offload->writeFailures() : 0;
    status.lane.busyTime = lane->busyNs;
    status.lane.idleTime = lane->idleNs;
    rte_ring* ring = records_->channel(lane->id).ring;
    status.recordRingUsed = rte_ring_count(ring);
    status.recordRingCapacity = rte_ring_get_capacity(ring);
    result.push_back(status);
  }
  return result;
}

void LiveDataplane::stop(RecordSink& sink) {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  // Workers end their flows into the rings while this drains them, so that none is lost to a full ring.
  for (;;) {
    drainRecords(sink);
    bool all = true;
    for (auto& lane : lanes_) all = all && (!lane->launched.load() || lane->finished.load());
    if (all) break;
    usleep(1000);
  }
  rte_eal_mp_wait_lcore();
  while (!drainRecords(sink)) {
  }
  for (auto& lane : lanes_) {
    rte_eth_dev_stop(lane->port);
    rte_eth_dev_close(lane->port);
  }
}

LiveDataplane::~LiveDataplane() {
  stopping_.store(true);
  rte_eal_mp_wait_lcore();
  for (auto& lane : lanes_) {
    lane->worker.reset();
    if (!stopped_) {
      rte_eth_dev_stop(lane->port);
      rte_eth_dev_close(lane->port);
    }
  }
  records_.reset();
  rte_mempool_free(mbufs_);
}

}  // namespace vgate::dataplane
