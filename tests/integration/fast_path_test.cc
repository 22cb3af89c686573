// The BPF fast path between two ports: namespaces A and B each joined by a veth to a middle namespace M that
// has no addresses, no forwarding and no bridge, so A's packets can reach B only through the TC program's
// redirect of a flow that has an allow entry. Deny entries drop; flows without one go to M's stack and die
// there.
#include "dataplane/fastpath/fast_path.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/vgated_test.h"

namespace vgate::dataplane {
namespace {

namespace fs = std::filesystem;

int sh(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class FastPathTest : public vgate::testing::VgatedTest {
 protected:
  void SetUp() override {
    VgatedTest::SetUp();
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces and BPF";
    std::string id = std::to_string(getpid());
    a_ = "vgfp-a-" + id;
    b_ = "vgfp-b-" + id;
    m_ = "vgfp-m-" + id;
    created_ = true;
    ASSERT_EQ(
        sh("ip netns add " + a_ + " && ip netns add " + b_ + " && ip netns add " + m_ +
           " && ip link add vgfpa0 address 02:00:00:00:aa:01 type veth peer name vgfpva" +
           " && ip link add vgfpb0 address 02:00:00:00:bb:01 type veth peer name vgfpvb" +
           " && ip link set vgfpa0 netns " + a_ + " && ip link set vgfpb0 netns " + b_ +
           " && ip link set vgfpva netns " + m_ + " && ip link set vgfpvb netns " + m_ + " && ip -n " + a_ +
           " addr add 10.253.0.1/24 dev vgfpa0 && ip -n " + b_ + " addr add 10.253.0.2/24 dev vgfpb0" +
           " && ip -n " + a_ + " link set vgfpa0 up && ip -n " + b_ + " link set vgfpb0 up && ip -n " + m_ +
           " link set vgfpva up && ip -n " + m_ + " link set vgfpvb up && ip -n " + a_ + " link set lo up" +
           " && ip -n " + b_ + " link set lo up" + " && ip -n " + a_ +
           " addr add fd53::1/64 dev vgfpa0 nodad && ip -n " + b_ + " addr add fd53::2/64 dev vgfpb0 nodad" +
           // No ARP can cross M: each side knows the other's MAC.
           " && ip -n " + a_ + " neigh add 10.253.0.2 lladdr 02:00:00:00:bb:01 dev vgfpa0" + " && ip -n " +
           b_ + " neigh add 10.253.0.1 lladdr 02:00:00:00:aa:01 dev vgfpb0"),
        0);
    // The program attaches by ifindex through netlink in the caller's namespace: work from inside M.
    original_ = open("/proc/self/ns/net", O_RDONLY);
    int target = open(("/var/run/netns/" + m_).c_str(), O_RDONLY);
    ASSERT_GE(target, 0);
    ASSERT_EQ(setns(target, CLONE_NEWNET), 0);
    close(target);
    portA_ = if_nametoindex("vgfpva");
    portB_ = if_nametoindex("vgfpvb");
    ASSERT_NE(portA_, 0u);
    ASSERT_NE(portB_, 0u);
  }
  void TearDown() override {
    fastPath_.reset();
    if (original_ >= 0) {
      setns(original_, CLONE_NEWNET);
      close(original_);
    }
    if (created_) sh("ip netns del " + a_ + "; ip netns del " + b_ + "; ip netns del " + m_ + " 2>/dev/null");
    VgatedTest::TearDown();
  }

  // UDP datagrams from A:41000 to B:port (over IPv6 with `ipv6`); returns how many B received (bounded: B
  // listens at most 3 s).
  int sendUdp(uint16_t port, int datagrams, bool ipv6 = false) {
    std::string received = (dir_ / ("received-" + std::to_string(port))).string();
    std::string family = ipv6 ? "socket.AF_INET6" : "socket.AF_INET";
    std::string a = ipv6 ? "fd53::1" : "10.253.0.1";
    std::string b = ipv6 ? "fd53::2" : "10.253.0.2";
    sh("timeout 5 ip netns exec " + b_ + " /usr/bin/python3 -c \"import socket\ns=socket.socket(" + family +
       ",socket.SOCK_DGRAM)\ns.bind(('" + b + "'," + std::to_string(port) +
       "))\ns.settimeout(1.5)\nn=0\n"
       "try:\n  while True: s.recv(2048); n+=1\nexcept OSError: pass\nopen('" +
       received + "','w').write(str(n))\" & sleep 0.3; timeout 5 ip netns exec " + a_ +
       " /usr/bin/python3 -c \"import socket\ns=socket.socket(" + family +
       ",socket.SOCK_DGRAM)\n"
       "s.bind(('" +
       a + "',41000))\n[s.sendto(b'v'*200,('" + b + "'," + std::to_string(port) + ")) for _ in range(" +
       std::to_string(datagrams) + ")]\"; wait");
    return std::atoi(vgate::testing::readFile(received).c_str());
  }

  // Echo replies A gets for `count` pings to B.
  int pings(bool ipv6, int count) {
    std::string out = (dir_ / "ping.out").string();
    sh("timeout 10 ip netns exec " + a_ + " ping " + (ipv6 ? "-6 fd53::2" : "-4 10.253.0.2") + " -c " +
       std::to_string(count) + " -i 0.2 -W 1 > " + out + " 2>&1");
    std::string text = vgate::testing::readFile(out);
    auto at = text.find(" received");
    if (at == std::string::npos) return -1;
    auto start = text.rfind(' ', at - 1);
    return std::atoi(text.substr(start + 1, at - start - 1).c_str());
  }

  static FastPathTuple udpTuple(uint16_t port, bool ipv6 = false) {
    FastPathTuple tuple;
    tuple.protocol = IPPROTO_UDP;
    tuple.ipVersion = ipv6 ? 6 : 4;
    inet_pton(ipv6 ? AF_INET6 : AF_INET, ipv6 ? "fd53::1" : "10.253.0.1", tuple.src);
    inet_pton(ipv6 ? AF_INET6 : AF_INET, ipv6 ? "fd53::2" : "10.253.0.2", tuple.dst);
    tuple.srcPort = 41000;
    tuple.dstPort = port;
    return tuple;
  }

  std::string a_, b_, m_;
  bool created_ = false;
  int original_ = -1;
  uint32_t portA_ = 0, portB_ = 0;
  std::unique_ptr<FastPath> fastPath_;
};

TEST_F(FastPathTest, AllowedFlowsAreRedirectedDeniedDroppedOthersMissed) {
  auto loaded = FastPath::load(1024);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  fastPath_ = std::move(loaded).value();
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portA_)).ok());
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portB_)).ok());
  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_CLOSED, 60'000).ok());
  ASSERT_TRUE(fastPath_->beat().ok());  // the dataplane is alive: unknown flows are its to judge

  // No entry: the packets enter M's stack (where the slow path will take them), which routes nothing.
  EXPECT_EQ(sendUdp(5000, 5), 0);
  EXPECT_GE(fastPath_->stats().misses, 5u);

  // Allow entries in both directions: A's datagrams reach B, counted on A's port.
  vgate_fp_key forward = fastPathKey(portA_, udpTuple(5000));
  ASSERT_TRUE(fastPath_->setFlow(forward, VGATE_FP_ALLOW, portB_).ok());
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portB_, udpTuple(5000)), VGATE_FP_ALLOW, portA_).ok());
  EXPECT_EQ(sendUdp(5000, 10), 10);
  auto counted = fastPath_->flow(forward);
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(counted.value().packets, 10u);
  EXPECT_EQ(counted.value().bytes, 10u * (14 + 20 + 8 + 200));
  EXPECT_GT(counted.value().last_seen_ns, 0u);
  EXPECT_EQ(fastPath_->stats().hits, 10u);

  // A deny entry drops, and says so.
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portA_, udpTuple(5001)), VGATE_FP_DENY, 0).ok());
  EXPECT_EQ(sendUdp(5001, 5), 0);
  EXPECT_EQ(fastPath_->stats().denied, 5u);

  // Removing the entry sends the flow back to the miss path.
  ASSERT_TRUE(fastPath_->removeFlow(forward).ok());
  EXPECT_EQ(sendUdp(5000, 3), 0);
  EXPECT_FALSE(fastPath_->flow(forward).ok());
}

// A connection's packets after its SYN run both ways through its entries. The SYN itself is never the fast
// path's: it may open a new connection on a reused 5-tuple, which the slow path must judge. With no dataplane
// here, fail-open hands it to the partner port.
TEST_F(FastPathTest, TcpConnectionRunsBothWaysThroughTheRedirect) {
  fastPath_ = std::move(FastPath::load(1024)).value();
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portA_)).ok());
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portB_)).ok());
  ASSERT_TRUE(fastPath_->setPort(portA_, portB_).ok());
  ASSERT_TRUE(fastPath_->setPort(portB_, portA_).ok());
  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_OPEN, 60'000).ok());
  FastPathTuple tuple = udpTuple(5002);
  tuple.protocol = IPPROTO_TCP;
  tuple.srcPort = 42002;
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portA_, tuple), VGATE_FP_ALLOW, portB_).ok());
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portB_, tuple), VGATE_FP_ALLOW, portA_).ok());
  std::string echoed = (dir_ / "echoed").string();
  sh("timeout 5 ip netns exec " + b_ +
     " /usr/bin/python3 -c \"import "
     "socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
     "s.bind(('10.253.0.2',5002))\ns.listen(1)\ns.settimeout(4)\nc,_=s.accept()\nc.sendall(c.recv(100))\n"
     "c.close()\" & sleep 0.3; timeout 5 ip netns exec " +
     a_ +
     " /usr/bin/python3 -c \"import "
     "socket\nc=socket.socket()\nc.bind(('10.253.0.1',42002))\nc.settimeout(3)\n"
     "c.connect(('10.253.0.2',5002))\nc.sendall(b'through the fast path')\nopen('" +
     echoed + "','w').write(c.recv(100).decode())\"; wait");
  EXPECT_EQ(vgate::testing::readFile(echoed), "through the fast path");
  auto toServer = fastPath_->flow(fastPathKey(portA_, tuple));
  auto toClient = fastPath_->flow(fastPathKey(portB_, tuple));
  ASSERT_TRUE(toServer.ok() && toClient.ok());
  EXPECT_GE(toServer.value().packets, 3u);  // ACK, data, ACK/FIN
  EXPECT_GE(toClient.value().packets, 3u);
  EXPECT_EQ(toServer.value().tcp_flags & 0x02, 0) << "the SYN did not take the entry";
  EXPECT_EQ(toClient.value().tcp_flags & 0x12, 0x12);  // SYN-ACK came back through it
  EXPECT_GE(fastPath_->stats().tcpSyns, 1u);
  EXPECT_GE(fastPath_->stats().failOpenPasses, 1u);
}

TEST_F(FastPathTest, FailModesDecideUnknownFlowsOnlyWhenTheHeartbeatStops) {
  fastPath_ = std::move(FastPath::load(1024)).value();
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portA_)).ok());
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portB_)).ok());
  ASSERT_TRUE(fastPath_->setPort(portA_, portB_).ok());
  ASSERT_TRUE(fastPath_->setPort(portB_, portA_).ok());
  // An established, allowed flow: it must survive the dataplane's death in both modes.
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portA_, udpTuple(6000)), VGATE_FP_ALLOW, portB_).ok());

  // Heartbeat fresh: unknown flows go to the dataplane (here M's stack), not to the fail mode.
  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_CLOSED, 60'000).ok());
  ASSERT_TRUE(fastPath_->beat().ok());
  EXPECT_EQ(sendUdp(6001, 4), 0);
  EXPECT_EQ(fastPath_->stats().failClosedDrops, 0u);
  EXPECT_GE(fastPath_->stats().misses, 4u);

  // The heartbeat stops (a 1 ms timeout makes the last beat stale at once): fail-closed drops new flows and
  // keeps the established one.
  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_CLOSED, 1).ok());
  usleep(5000);
  EXPECT_EQ(sendUdp(6001, 4), 0);
  EXPECT_EQ(fastPath_->stats().failClosedDrops, 4u);
  EXPECT_EQ(sendUdp(6000, 5), 5);

  // Fail-open: new flows pass to the port's partner too.
  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_OPEN, 1).ok());
  EXPECT_EQ(sendUdp(6002, 3), 3);
  EXPECT_EQ(fastPath_->stats().failOpenPasses, 3u);
  EXPECT_EQ(sendUdp(6000, 2), 2);
  EXPECT_FALSE(fastPath_->setFailMode(7, 1).ok());
}

// IPv6 and ICMP follow the fail modes like IPv4 UDP, while neighbour discovery (no static IPv6 neighbours
// here) crosses in every state: an established IPv6 flow keeps working after the dataplane died.
TEST_F(FastPathTest, FailModesHoldForIpv6AndIcmpWhileNeighbourDiscoveryPasses) {
  fastPath_ = std::move(FastPath::load(1024)).value();
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portA_)).ok());
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portB_)).ok());
  ASSERT_TRUE(fastPath_->setPort(portA_, portB_).ok());
  ASSERT_TRUE(fastPath_->setPort(portB_, portA_).ok());
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portA_, udpTuple(6100, true)), VGATE_FP_ALLOW, portB_).ok());

  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_CLOSED, 1).ok());
  ASSERT_TRUE(fastPath_->beat().ok());
  usleep(5000);
  FastPathStats before = fastPath_->stats();
  EXPECT_EQ(sendUdp(6100, 5, true), 5) << "an established IPv6 flow (its ND included) must keep working";
  EXPECT_GT(fastPath_->stats().notFlow, before.notFlow) << "neighbour discovery crossed as non-flow traffic";
  EXPECT_EQ(sendUdp(6101, 4, true), 0);
  EXPECT_EQ(pings(false, 3), 0);
  EXPECT_EQ(pings(true, 3), 0);
  EXPECT_GE(fastPath_->stats().failClosedDrops - before.failClosedDrops, 4u + 3u + 3u);

  ASSERT_TRUE(fastPath_->setFailMode(VGATE_FP_FAIL_OPEN, 1).ok());
  EXPECT_EQ(sendUdp(6102, 3, true), 3);
  EXPECT_EQ(pings(false, 3), 3);
  EXPECT_EQ(pings(true, 3), 3);
}

// Entries age from when they are written: an entry no packet ever hit (a deny whose flow ended) still goes
// once idle past the threshold, and one in use stays.
TEST_F(FastPathTest, IdleEntriesAreSweptAndBusyOnesStay) {
  fastPath_ = std::move(FastPath::load(1024)).value();
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portA_)).ok());
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portA_, udpTuple(6200)), VGATE_FP_DENY, portB_).ok());
  ASSERT_TRUE(fastPath_->setFlow(fastPathKey(portA_, udpTuple(6201)), VGATE_FP_ALLOW, portB_).ok());
  auto written = fastPath_->flow(fastPathKey(portA_, udpTuple(6200)));
  ASSERT_TRUE(written.ok());
  EXPECT_NE(written.value().last_seen_ns, 0u);
  EXPECT_EQ(fastPath_->removeFlowsIdleFor(60'000'000'000ull), 0u);
  usleep(2'500'000);
  // Keeps its entry fresh: its last packet is ~1.5 s old when the sweep runs (the receiver waits 1.5 s for
  // more), the deny entry's write over 4 s.
  EXPECT_EQ(sendUdp(6201, 3), 3);
  EXPECT_EQ(fastPath_->removeFlowsIdleFor(2'500'000'000ull), 1u);
  EXPECT_FALSE(fastPath_->flow(fastPathKey(portA_, udpTuple(6200))).ok());
  EXPECT_TRUE(fastPath_->flow(fastPathKey(portA_, udpTuple(6201))).ok());
}

TEST_F(FastPathTest, ARestartAdoptsPinnedFlowsAndTheTrafficNeverStops) {
  fs::path pins = dir_ / "bpffs";
  fs::create_directories(pins);
  ASSERT_EQ(sh("mount -t bpf bpf " + pins.string()), 0);
  struct Unmount {
    std::string path;
    ~Unmount() { sh("umount -l " + path); }
  } unmount{pins.string()};
  FastPathOptions options;
  options.maxFlows = 1024;
  options.pinDir = pins.string();
  options.keepAttached = true;
  vgate_fp_key forward = fastPathKey(portA_, udpTuple(7000));
  {
    auto first = std::move(FastPath::load(options)).value();
    ASSERT_TRUE(first->attachIngress(static_cast<int>(portA_)).ok());
    ASSERT_TRUE(first->attachIngress(static_cast<int>(portB_)).ok());
    ASSERT_TRUE(first->setFlow(forward, VGATE_FP_ALLOW, portB_).ok());
    EXPECT_EQ(sendUdp(7000, 5), 5);
  }
  // The first vgated is gone; its program and pinned maps are not: the flow keeps flowing.
  EXPECT_TRUE(fs::exists(pins / "vgate_fp_flows"));
  EXPECT_EQ(sendUdp(7000, 4), 4);
  // A new one adopts the maps, with the entry and its counters, and replaces the program in place.
  fastPath_ = std::move(FastPath::load(options)).value();
  auto adopted = fastPath_->flow(forward);
  ASSERT_TRUE(adopted.ok());
  EXPECT_EQ(adopted.value().packets, 9u);
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portA_)).ok());
  ASSERT_TRUE(fastPath_->attachIngress(static_cast<int>(portB_)).ok());
  EXPECT_EQ(sendUdp(7000, 3), 3);
  EXPECT_EQ(fastPath_->flow(forward).value().packets, 12u);
  fastPath_.reset();  // keepAttached: the namespaces' removal takes the filters
}

}  // namespace
}  // namespace vgate::dataplane
