// The worker on a live port: DPDK's net_af_packet bound to one end of a veth between two namespaces the test
// creates, real kernel traffic crossing it (UDP datagrams, a refused TCP connection), flow records checked.
// This is the same Worker that replay uses; live interception (issue 5) puts it behind net_af_xdp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dataplane/eal/eal.h"
#include "dataplane/records/record_pools.h"
#include "dataplane/worker/worker.h"
#include "support/eal_environment.h"

namespace {

using namespace vgate::dataplane;

int sh(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Two namespaces A and B joined by a veth pair (a in A, b in B), torn down on every exit path.
class LivePort : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    if (sh("command -v ip >/dev/null") != 0) GTEST_SKIP() << "needs iproute2";
    suffix_ = std::to_string(getpid());
    nsA_ = "vglive-a-" + suffix_;
    nsB_ = "vglive-b-" + suffix_;
    created_ = true;
    ASSERT_EQ(
        sh("ip netns add " + nsA_ + " && ip netns add " + nsB_ +
           " && ip link add vgla type veth peer name vglb" + " && ip link set vgla netns " + nsA_ +
           " && ip link set vglb netns " + nsB_ + " && ip -n " + nsA_ +
           " addr add 10.252.0.1/24 dev vgla && ip -n " + nsB_ +
           " addr add 10.252.0.2/24 dev vglb && ip -n " + nsA_ + " link set vgla up && ip -n " + nsB_ +
           " link set vglb up && ip -n " + nsA_ + " link set lo up && ip -n " + nsB_ + " link set lo up"),
        0);
  }
  void TearDown() override {
    leaveA();
    if (!created_) return;
    sh("ip netns del " + nsA_ + " 2>/dev/null; ip netns del " + nsB_ +
       " 2>/dev/null; ip link del vgla 2>/dev/null");
  }

  // Enters namespace A for the rest of the test: the af_packet PMD binds its socket at probe and sets
  // interface flags by name at start and stop, each time in the calling thread's namespace.
  void enterA() {
    original_ = open("/proc/self/ns/net", O_RDONLY);
    int target = open(("/var/run/netns/" + nsA_).c_str(), O_RDONLY);
    ASSERT_GE(original_, 0);
    ASSERT_GE(target, 0);
    ASSERT_EQ(setns(target, CLONE_NEWNET), 0);
    close(target);
  }
  void leaveA() {
    if (original_ < 0) return;
    setns(original_, CLONE_NEWNET);
    close(original_);
    original_ = -1;
  }

  int original_ = -1;
  std::string suffix_, nsA_, nsB_;
  bool created_ = false;
};

TEST_F(LivePort, WorkerOnAfPacketSeesRealTrafficAsFlows) {
  enterA();
  ASSERT_EQ(rte_dev_probe("net_af_packet_live,iface=vgla,qpairs=1"), 0);
  uint16_t port = 0;
  ASSERT_EQ(rte_eth_dev_get_port_by_name("net_af_packet_live", &port), 0);
  rte_mempool* mbufs = rte_pktmbuf_pool_create("live_mbufs", 4095, 64, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  ASSERT_NE(mbufs, nullptr);
  rte_eth_conf conf{};
  ASSERT_EQ(rte_eth_dev_configure(port, 1, 1, &conf), 0);
  ASSERT_EQ(rte_eth_rx_queue_setup(port, 0, 512, 0, nullptr, mbufs), 0);
  ASSERT_EQ(rte_eth_tx_queue_setup(port, 0, 512, 0, nullptr), 0);
  ASSERT_EQ(rte_eth_dev_start(port), 0);

  auto records = std::move(RecordPools::create("live", 1, {4096, 1024, 64, 0, 0}, 0)).value();
  WorkerConfig config;
  config.id = 7;
  config.flowCapacity = 1024;
  config.inspectionSlots = 16;
  // Captured on a container's own veth, checksums are still the offloaded partial ones (the trunks
  // vgated reads carry finished ones).
  config.verifyChecksums = false;
  config.records = records->channel(0);
  auto worker = std::move(Worker::create(config)).value();

  // Traffic from B to A, bounded: 20 UDP datagrams to a closed port and one TCP connect to a closed port
  // (A's kernel answers with ICMP port unreachable and a RST).
  // Sent before polling starts: the af_packet ring (512 frames) holds all of it, and no generator outlives
  // the test.
  std::string traffic = "timeout 10 ip netns exec " + nsB_ +
                        " /usr/bin/python3 -c \"import socket,time\n"
                        "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                        "u.bind(('10.252.0.2',41000))\n"
                        "[u.sendto(b'x'*100,('10.252.0.1',5000)) or time.sleep(0.01) for _ in range(20)]\n"
                        "t=socket.socket()\nt.bind(('10.252.0.2',42000))\nt.settimeout(2)\n"
                        "try: t.connect(('10.252.0.1',7))\nexcept OSError: pass\n\"";
  ASSERT_EQ(sh(traffic), 0);

  // Poll until the port has been quiet for half a second (3 s at most).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  auto quietSince = std::chrono::steady_clock::now();
  rte_mbuf* burst[kBurstOutputCapacity];
  uint64_t now = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    uint16_t count = rte_eth_rx_burst(port, 0, burst, kBurstSize);
    now = std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count();
    if (count == 0) {
      if (std::chrono::steady_clock::now() - quietSince > std::chrono::milliseconds(500)) break;
      usleep(1000);
      continue;
    }
    quietSince = std::chrono::steady_clock::now();
    uint16_t kept = worker->processBurst(burst, count, now);
    rte_pktmbuf_free_bulk(burst, kept);
  }
  worker->flushAll(now, vgate::FlowEndReason::kShutdown);

  struct EndRecords : vgate::RecordSink {
    std::vector<vgate::FlowEndRecord> flows;
    void onMetadata(const vgate::FlowMetadataRecord&) override {}
    void onEnd(const vgate::FlowEndRecord& record) override { flows.push_back(record); }
  } sink;
  records->drain(sink);
  const std::vector<vgate::FlowEndRecord>& flows = sink.flows;
  const uint8_t client[4] = {10, 252, 0, 2};
  const vgate::FlowEndRecord* udp = nullptr;
  const vgate::FlowEndRecord* tcp = nullptr;
  for (const auto& flow : flows) {
    if (flow.protocol == IPPROTO_UDP && flow.srcPort == 41000) udp = &flow;
    if (flow.protocol == IPPROTO_TCP && flow.srcPort == 42000) tcp = &flow;
  }
  ASSERT_NE(udp, nullptr) << flows.size() << " flows seen";
  EXPECT_EQ(std::memcmp(udp->srcAddr, client, 4), 0);
  EXPECT_EQ(udp->dstPort, 5000);
  EXPECT_EQ(udp->pkts[vgate::kToServer], 20u);
  EXPECT_EQ(udp->bytes[vgate::kToServer], 20u * (14 + 20 + 8 + 100));
  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(std::memcmp(tcp->srcAddr, client, 4), 0);
  EXPECT_EQ(tcp->dstPort, 7);
  EXPECT_GE(tcp->pkts[vgate::kToServer], 1u);
  EXPECT_EQ(tcp->pkts[vgate::kToClient], tcp->pkts[vgate::kToServer]);  // each SYN refused by a RST
  EXPECT_EQ(tcp->state, vgate::FlowState::kClosed);
  EXPECT_EQ(tcp->reason, vgate::FlowEndReason::kRst);
  EXPECT_EQ(worker->counters().packets,
            worker->counters().parseStatus[0] + worker->counters().parseStatus[1] +
                worker->counters().parseStatus[2] + worker->counters().parseStatus[3]);

  worker.reset();
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
  records.reset();
  rte_mempool_free(mbufs);
  leaveA();
}

}  // namespace
