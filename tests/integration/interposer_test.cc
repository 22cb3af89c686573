// The interposer on a real kernel: a "host" netns with a bridge, a "container" netns whose eth0's host end is
// on that bridge, a peer netns on the same bridge, and vgate's persistent netns. Checks that attach and
// detach leave the container (and, after detach, the host) exactly as they were, that traffic crosses once
// vgate's two ports are joined (by a test-only bridge standing in for the dataplane), the error cases and
// their rollback, and the clean-up of a container that dies while attached. Needs root, iproute2, ethtool and
// python3.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/interposer/interposer.h"

namespace {

using namespace vgate::control;

int sh(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// Polls until `ready` or the timeout; returns whether it became ready.
bool waitFor(const std::function<bool()>& ready,
             std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// ICMP echo over raw sockets (the image has no ping), and a one-shot TCP server and client.
constexpr const char* kNetTool = R"PY(import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b[:len(b) // 2 * 2])) + (b[-1] << 8 if len(b) % 2 else 0)
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ping(addr):
    v6 = ':' in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                      socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xffff
    for seq in range(1, 11):
        msg = struct.pack('!BBHHH', 128 if v6 else 8, 0, 0, ident, seq) + b'vgate-ping'
        if not v6: msg = msg[:2] + struct.pack('!H', csum(msg)) + msg[4:]
        s.sendto(msg, (addr, 0))
        end = time.time() + 0.5
        while time.time() < end:
            s.settimeout(max(end - time.time(), 0.01))
            try: data = s.recv(2048)
            except socket.timeout: break
            if not v6: data = data[(data[0] & 0xf) * 4:]
            if len(data) >= 8:
                t, _, _, i, q = struct.unpack('!BBHHH', data[:8])
                if t == (129 if v6 else 0) and i == ident and q == seq: return 0
    return 1
def serve(port, count):
    s = socket.create_server(('::', port), family=socket.AF_INET6, dualstack_ipv6=True)
    s.settimeout(10)
    for _ in range(count):
        c, _ = s.accept(); c.sendall(b'vgate-ok\n'); c.close()
    return 0
def fetch(addr, port):
    end = time.time() + 5
    while time.time() < end:
        try:
            c = socket.create_connection((addr, port), timeout=1)
            return 0 if c.makefile('rb').readline() == b'vgate-ok\n' else 1
        except OSError: time.sleep(0.1)
    return 1
cmd = sys.argv[1]
if cmd == 'ping': sys.exit(ping(sys.argv[2]))
if cmd == 'serve': sys.exit(serve(int(sys.argv[2]), int(sys.argv[3])))
if cmd == 'fetch': sys.exit(fetch(sys.argv[2], int(sys.argv[3])))
)PY";

class InterposerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    if (sh("command -v ip >/dev/null && command -v ethtool >/dev/null && command -v nsenter >/dev/null") !=
        0) {
      GTEST_SKIP() << "needs iproute2, ethtool and nsenter";
    }
    static int counter = 0;
    std::string suffix = std::to_string(getpid()) + "-" + std::to_string(counter++);
    host_ = "vgip" + suffix + "-h";
    container_ = "vgip" + suffix + "-c";
    peer_ = "vgip" + suffix + "-p";
    routed_ = "vgip" + suffix + "-r";
    dir_ = "/tmp/vgip" + suffix;
    vgatePath_ = dir_ + "/run/vgate";  // the parent does not exist yet: ensurePersistentNetns makes it
    created_ = true;
    auto ensured = ensurePersistentNetns(vgatePath_);
    ASSERT_TRUE(ensured.ok()) << ensured.error().message;
    std::ofstream(dir_ + "/net.py") << kNetTool;

    // DAD off in the end namespaces so that a carrier flap does not make `ip addr` show "tentative".
    std::string noDad = " sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0";
    ASSERT_EQ(
        sh("set -e; ip netns add " + host_ + "; ip netns add " + container_ + "; ip netns add " + peer_ +
           "; for n in " + host_ + " " + container_ + " " + peer_ + "; do ip -n $n link set lo up; done" +
           "; ip netns exec " + container_ + noDad + "; ip netns exec " + peer_ + noDad +
           // A fixed bridge MAC: a bridge without one takes its ports' lowest, which would change.
           "; ip -n " + host_ + " link add br0 address 02:00:00:00:0b:01 type bridge" + "; ip -n " + host_ +
           " link set br0 up" +
           // The container: non-default host-end settings, so that restore has something to restore.
           "; ip -n " + host_ + " link add vc0 mtu 1400 type veth peer name eth0 mtu 1400 netns " +
           container_ + "; ip -n " + host_ + " link set vc0 txqueuelen 500 alias 'container c' master br0" +
           "; ip -n " + host_ + " link set vc0 type bridge_slave hairpin on cost 7 learning off" +
           "; ip -n " + host_ + " link set vc0 up" + "; ip -n " + container_ +
           " addr add 10.77.0.2/24 dev eth0; ip -n " + container_ + " addr add fd77::2/64 dev eth0" +
           "; ip -n " + container_ + " link set eth0 up; ip -n " + container_ +
           " route add 10.99.0.0/16 via 10.77.0.1" +
           // The peer on the same bridge.
           "; ip -n " + host_ + " link add vp0 type veth peer name eth0 netns " + peer_ + "; ip -n " + host_ +
           " link set vp0 master br0 up; ip -n " + peer_ + " addr add 10.77.0.3/24 dev eth0; ip -n " + peer_ +
           " addr add fd77::3/64 dev eth0; ip -n " + peer_ + " link set eth0 up"),
        0);
    // The interposer's host side is the netns of the thread that opens it: this test's "host".
    auto hostNetns = Netns::open("/run/netns/" + host_);
    ASSERT_TRUE(hostNetns.ok()) << hostNetns.error().message;
    auto entered = EnterNetns::enter(hostNetns.value());
    ASSERT_TRUE(entered.ok()) << entered.error().message;
    inHost_.emplace(std::move(entered).value());
    auto opened = Interposer::open(vgatePath_);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    interposer_ = std::move(opened).value();
    ASSERT_TRUE(waitFor([&] { return linkIsUp(container_, "eth0"); }));
  }

  void TearDown() override {
    interposer_.reset();
    inHost_.reset();
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    if (!created_) return;
    sh("for n in " + container_ + " " + peer_ + " " + routed_ + " " + host_ +
       "; do ip netns del $n 2>/dev/null; done");
    (void)removePersistentNetns(vgatePath_);
    sh("rm -rf " + dir_);
  }

  std::string inVgate(const std::string& command) { return "nsenter --net=" + vgatePath_ + " " + command; }
  bool linkIsUp(const std::string& netns, const std::string& link) {
    return capture("ip -n " + netns + " link show " + link).find("LOWER_UP") != std::string::npos;
  }
  // Everything the container can see of its network.
  std::string containerView() {
    return capture("ip -n " + container_ + " -d link show eth0; ip -n " + container_ + " addr; ip -n " +
                   container_ + " route; ip -n " + container_ + " -6 route; ip netns exec " + container_ +
                   " ethtool -k eth0");
  }
  // While attached, eth0's peer is vgi-<id> in vgate's netns, which the container names by another netns id:
  // that one attribute necessarily differs (the peer's ifindex does not: it is checked unmasked).
  static std::string maskPeerNetns(const std::string& view) {
    return std::regex_replace(view, std::regex("link-netns(id)? \\S+"), "link-netns <peer netns>");
  }
  // Bridge port timers are clocks (forward_delay_timer counts down for 15 s after a bridge is made), not
  // settings: masked.
  static std::string maskTimers(const std::string& view) {
    return std::regex_replace(view, std::regex("(hold|message_age|forward_delay)_timer +[0-9.]+"),
                              "$1_timer T");
  }
  std::string hostEndView() { return maskTimers(capture("ip -n " + host_ + " -d link show vc0")); }
  nlohmann::json hostEndJson() {
    auto link = nlohmann::json::parse(capture("ip -n " + host_ + " -j -d link show vc0"))[0];
    for (const char* timer : {"hold_timer", "message_age_timer", "forward_delay_timer"}) {
      link["linkinfo"]["info_slave_data"].erase(timer);
    }
    return link;
  }
  std::string hostEndFeatures() { return capture("ip netns exec " + host_ + " ethtool -k vc0"); }
  // Compares repeatedly for a while: the bridge and the container's carrier settle asynchronously.
  void expectEventually(const std::function<std::string()>& view, const std::string& expected) {
    std::string last;
    waitFor([&] { return (last = view()) == expected; });
    EXPECT_EQ(last, expected);
  }

  // Joins vgi-<id> and vge-<id> with a bridge in vgate's netns: test glue in place of the dataplane. Learning
  // off: vc0 has hairpin on, so br0 reflects the container's floods back through vge-, and a learning glue
  // bridge would then place the container's MAC behind vge-.
  void glue(uint16_t id) {
    std::string n = std::to_string(id);
    ASSERT_EQ(
        sh(inVgate(
            "sh -c 'set -e; ip link add glue" + n + " type bridge; ip link set vgi-" + n + " master glue" +
            n + "; ip link set vge-" + n + " master glue" + n + "; for p in vgi-" + n + " vge-" + n +
            "; do ip link set $p type bridge_slave learning off; done; ip link set glue" + n + " up'")),
        0);
  }
  // The same with TC redirects, as the fast path does: a routed host end's MAC is the container's gateway
  // MAC, and vgi-<id> keeps it, so a bridge would take the container's frames for itself.
  void redirectGlue(uint16_t id) {
    std::string n = std::to_string(id);
    ASSERT_EQ(
        sh(inVgate("sh -c 'set -e; for p in vgi-" + n + ":vge-" + n + " vge-" + n + ":vgi-" + n +
                   "; do tc qdisc add dev ${p%:*} clsact; tc filter add dev ${p%:*} ingress protocol all"
                   " u32 match u32 0 0 action mirred egress redirect dev ${p#*:}; done'")),
        0);
  }
  int pingFromContainer(const std::string& address) {
    return sh("ip netns exec " + container_ + " timeout 10 /usr/bin/python3 " + dir_ + "/net.py ping " +
              address);
  }
  // A TCP connection over IPv4 then IPv6 from the container to the peer.
  int tcpFromContainer() {
    std::string tool = " timeout 15 /usr/bin/python3 " + dir_ + "/net.py ";
    return sh("ip netns exec " + peer_ + tool + "serve 8080 2 & server=$!; ip netns exec " + container_ +
              tool + "fetch 10.77.0.3 8080 && ip netns exec " + container_ + tool +
              "fetch fd77::3 8080; rc=$?; wait $server || rc=1; exit $rc");
  }

  std::string host_, container_, peer_, routed_, dir_, vgatePath_;
  bool created_ = false;
  pid_t child_ = -1;
  std::optional<EnterNetns> inHost_;
  std::unique_ptr<Interposer> interposer_;
};

TEST_F(InterposerTest, AttachLeavesTheContainerUnchangedAndDetachRestoresTheHost) {
  ASSERT_EQ(pingFromContainer("10.77.0.3"), 0) << "the topology itself does not work";
  std::string containerBefore = containerView();
  std::string hostBefore = hostEndView();
  std::string featuresBefore = hostEndFeatures();
  auto hostJsonBefore = hostEndJson();

  AttachRequest request;
  request.netnsPath = "/run/netns/" + container_;
  request.name = "c";
  auto attached = interposer_->attach(request, 7);
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  const PortPair& pair = attached.value();
  EXPECT_EQ(pair.innerName, "vgi-7");
  EXPECT_EQ(pair.outerName, "vge-7");
  EXPECT_EQ(pair.hostIfname, "vc0");
  EXPECT_EQ(pair.bridgeName, "br0");
  EXPECT_EQ(pair.innerIfindex, pair.original.ifindex) << "vgi- keeps the host end's ifindex";
  EXPECT_EQ(pair.outerIfindex, Interposer::kOuterIfindexBase + 7);

  // The container sees no change; the new host end has the old one's identity and port settings.
  expectEventually([&] { return maskPeerNetns(containerView()); }, maskPeerNetns(containerBefore));
  auto hostJson = hostEndJson();
  for (const char* key : {"ifname", "address", "mtu", "master", "txqlen", "ifalias", "operstate"}) {
    EXPECT_EQ(hostJson[key], hostJsonBefore[key]) << key;
  }
  EXPECT_EQ(hostJson["linkinfo"]["info_slave_kind"], "bridge");
  EXPECT_EQ(hostJson["linkinfo"]["info_slave_data"], hostJsonBefore["linkinfo"]["info_slave_data"]);
  EXPECT_EQ(hostEndFeatures(), featuresBefore) << "the new host end keeps veth's default offloads";
  EXPECT_NE(hostJson["ifindex"], hostJsonBefore["ifindex"]) << "it is a new link";
  EXPECT_EQ(sh(inVgate("ip link show vgi-7 >/dev/null")), 0);
  EXPECT_EQ(sh(inVgate("ip link show vge-7 >/dev/null")), 0);

  // With vgate's ports joined, traffic crosses: ICMP, ICMPv6 and TCP over both.
  glue(7);
  EXPECT_EQ(pingFromContainer("10.77.0.3"), 0);
  EXPECT_EQ(pingFromContainer("fd77::3"), 0);
  EXPECT_EQ(tcpFromContainer(), 0);
  ASSERT_EQ(sh(inVgate("ip link del glue7")), 0);

  // Detach as a restarted daemon would: a new Interposer and the pair from its JSON state.
  auto restored = PortPair::fromJson(nlohmann::json::parse(pair.toJson().dump()));
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(restored.value(), pair);
  interposer_.reset();
  auto reopened = Interposer::open(vgatePath_);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  interposer_ = std::move(reopened).value();
  auto detached = interposer_->detach(restored.value());
  ASSERT_TRUE(detached.ok()) << detached.error().message;

  expectEventually([&] { return containerView(); }, containerBefore);
  expectEventually([&] { return hostEndView(); }, hostBefore);
  EXPECT_EQ(hostEndFeatures(), featuresBefore);
  EXPECT_NE(sh(inVgate("ip link show vgi-7 2>/dev/null")), 0);
  EXPECT_NE(sh(inVgate("ip link show vge-7 2>/dev/null")), 0);
  EXPECT_EQ(pingFromContainer("10.77.0.3"), 0);
  EXPECT_EQ(pingFromContainer("fd77::3"), 0);
}

// A routed host end (Calico style): on no bridge; the host reaches the container by a /32 route through it
// and answers ARP for the container's gateway by proxy ARP, without delay; IPv6 goes via the host end's
// link-local address. The host end also has an address, a permanent neighbour entry and a route via the
// container. All of it must be on the new host end while attached, and back on the original after detach.
TEST_F(InterposerTest, RoutedHostEndKeepsAddressesRoutesNeighboursAndSysctls) {
  const std::string host = "ip -n " + host_ + " ";
  const std::string routed = "ip -n " + routed_ + " ";
  ASSERT_EQ(
      sh("set -e; ip netns add " + routed_ + "; " + routed + "link set lo up; ip netns exec " + routed_ +
         " sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; " + host +
         "link add cali7 address ee:ee:ee:ee:ee:ee type veth peer name eth0 address 02:00:00:00:88:02 "
         "netns " +
         routed_ + "; ip netns exec " + host_ +
         " sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.cali7.proxy_arp=1"
         " net.ipv4.neigh.cali7.proxy_delay=0 net.ipv6.conf.cali7.proxy_ndp=1 "
         "net.ipv6.conf.cali7.accept_dad=0"
         " net.ipv6.conf.cali7.accept_ra=0 net.ipv4.conf.cali7.rp_filter=2; " +
         host + "link set cali7 up; " + host + "link add dummy0 type veth peer name dummy1; " + host +
         "link set dummy1 up; " + host + "addr add 10.66.0.1/32 dev dummy0; " + host +
         "addr add fd66::1/128 dev dummy0 nodad; " + host + "link set dummy0 up; " + host +
         "route add default dev dummy0; " + host + "addr add 10.66.7.1/32 dev cali7 label cali7:gw; " + host +
         "route add 10.88.0.2/32 dev cali7 scope link; " + host +
         "route add 10.88.1.0/24 via 10.88.0.2 dev cali7 metric 50; " + host +
         "route add 10.88.3.0/24 dev cali7 table 77 mtu 1400; " + host +
         "-6 route add fd88::2/128 dev cali7 metric 7; " + host +
         "neigh add 10.88.0.2 lladdr 02:00:00:00:88:02 dev cali7 nud permanent; " + routed +
         "addr add 10.88.0.2/32 dev eth0; " + routed + "addr add fd88::2/128 dev eth0 nodad; " + routed +
         "link set eth0 up; " + routed + "route add 169.254.1.1 dev eth0 scope link; " + routed +
         "route add default via 169.254.1.1 dev eth0; " + routed +
         "-6 route add default via fe80::ecee:eeff:feee:eeee dev eth0"),
      0);
  std::string tool = " timeout 15 /usr/bin/python3 " + dir_ + "/net.py ";
  auto ping = [&](const std::string& address) {
    return sh("ip netns exec " + routed_ + tool + "ping " + address);
  };
  // TCP over IPv4 then IPv6 from the container to a server on the host.
  auto tcp = [&] {
    return sh("ip netns exec " + host_ + tool + "serve 8080 2 & server=$!; ip netns exec " + routed_ + tool +
              "fetch 10.66.0.1 8080 && ip netns exec " + routed_ + tool +
              "fetch fd66::1 8080; rc=$?; wait $server || rc=1; exit $rc");
  };
  // Everything of the host end a user (or a CNI) would look at: link, addresses, routes in every table,
  // permanent neighbours and every per-link sysctl.
  auto hostView = [&] {
    return capture(host + "-d link show cali7; " + host + "addr show dev cali7; " + host +
                   "route show table all dev cali7; " + host + "-6 route show table all dev cali7; " + host +
                   "neigh show dev cali7 nud permanent; ip netns exec " + host_ +
                   " sh -c 'cd /proc/sys/net && grep -r . ipv4/conf/cali7 ipv4/neigh/cali7 ipv6/conf/cali7"
                   " ipv6/neigh/cali7 2>/dev/null'");
  };
  // While attached the host end is a new link: its ifindex, its peer's and the peer's netns differ.
  auto maskIdentity = [](const std::string& view) {
    return maskPeerNetns(
        std::regex_replace(view, std::regex("(^|\\n)[0-9]+: cali7@if[0-9]+"), "$1N: cali7@ifP"));
  };
  ASSERT_EQ(ping("10.66.0.1"), 0) << "the routed topology itself does not work";
  ASSERT_EQ(ping("fd66::1"), 0) << "the routed topology itself does not work";
  std::string containerBefore =
      capture(routed + "-d link show eth0; " + routed + "addr; " + routed + "route");
  std::string before = hostView();
  ASSERT_NE(before.find("proxy_arp:1"), std::string::npos) << before;
  ASSERT_NE(before.find("10.88.3.0/24 table 77"), std::string::npos) << before;

  // A failed attach (vge-8 taken, after the host end moved) puts the host end back with all of it.
  AttachRequest request;
  request.netnsPath = "/run/netns/" + routed_;
  ASSERT_EQ(sh(inVgate("ip link add vge-8 type bridge")), 0);
  auto failed = interposer_->attach(request, 8);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, EEXIST) << failed.error().message;
  EXPECT_EQ(hostView(), before);
  ASSERT_EQ(sh(inVgate("ip link del vge-8")), 0);

  auto attached = interposer_->attach(request, 8);
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  const PortPair& pair = attached.value();
  EXPECT_TRUE(pair.original.routed());
  EXPECT_EQ(pair.bridgeName, "");
  EXPECT_EQ(pair.hostIfname, "cali7");
  EXPECT_EQ(maskIdentity(hostView()), maskIdentity(before));
  EXPECT_EQ(maskPeerNetns(capture(routed + "-d link show eth0; " + routed + "addr; " + routed + "route")),
            maskPeerNetns(containerBefore));

  redirectGlue(8);
  EXPECT_EQ(ping("10.66.0.1"), 0);
  EXPECT_EQ(ping("fd66::1"), 0);
  EXPECT_EQ(tcp(), 0);
  ASSERT_EQ(sh(inVgate("sh -c 'tc qdisc del dev vgi-8 clsact && tc qdisc del dev vge-8 clsact'")), 0);

  // A route the CNI adds while attached is carried back by detach, which reads the host end as it is then.
  ASSERT_EQ(sh(host + "route add 10.88.2.0/24 via 10.88.0.2 dev cali7"), 0);
  auto restored = PortPair::fromJson(nlohmann::json::parse(pair.toJson().dump()));
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(restored.value(), pair);
  auto detached = interposer_->detach(restored.value());
  ASSERT_TRUE(detached.ok()) << detached.error().message;
  EXPECT_NE(capture(host + "route show 10.88.2.0/24").find("via 10.88.0.2 dev cali7"), std::string::npos);
  ASSERT_EQ(sh(host + "route del 10.88.2.0/24"), 0);
  EXPECT_EQ(hostView(), before);
  EXPECT_EQ(ping("10.66.0.1"), 0);
  EXPECT_EQ(ping("fd66::1"), 0);
}

TEST_F(InterposerTest, AttachByPid) {
  std::string before = containerView();
  child_ = fork();
  ASSERT_GE(child_, 0);
  if (child_ == 0) {
    execlp("ip", "ip", "netns", "exec", container_.c_str(), "sleep", "30", nullptr);
    _exit(127);
  }
  struct stat target {};
  ASSERT_EQ(stat(("/run/netns/" + container_).c_str(), &target), 0);
  ASSERT_TRUE(waitFor([&] {
    struct stat current {};
    return stat(("/proc/" + std::to_string(child_) + "/ns/net").c_str(), &current) == 0 &&
           current.st_ino == target.st_ino;
  }));
  AttachRequest request;
  request.pid = child_;
  auto attached = interposer_->attach(request, 12);
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  EXPECT_EQ(attached.value().pid, child_);
  EXPECT_EQ(attached.value().netnsPath, "/proc/" + std::to_string(child_) + "/ns/net");
  auto detached = interposer_->detach(attached.value());
  ASSERT_TRUE(detached.ok()) << detached.error().message;
  expectEventually([&] { return containerView(); }, before);
}

TEST_F(InterposerTest, ErrorsCarryErrnoCodes) {
  AttachRequest missingPath;
  missingPath.netnsPath = "/run/netns/" + container_ + "-missing";
  auto result = interposer_->attach(missingPath, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ENOENT);
  EXPECT_NE(result.error().message.find("does not exist"), std::string::npos) << result.error().message;

  AttachRequest missingPid;
  missingPid.pid = 999999999;
  result = interposer_->attach(missingPid, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ENOENT) << result.error().message;

  AttachRequest missingLink;
  missingLink.netnsPath = "/run/netns/" + container_;
  missingLink.ifname = "eth9";
  result = interposer_->attach(missingLink, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ENOENT) << result.error().message;

  ASSERT_EQ(sh("ip -n " + container_ + " link add notveth0 type bridge"), 0);
  AttachRequest notVeth;
  notVeth.netnsPath = "/run/netns/" + container_;
  notVeth.ifname = "notveth0";
  result = interposer_->attach(notVeth, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EINVAL);
  EXPECT_EQ(result.error().message, "notveth0 in /run/netns/" + container_ + " is not a veth");

  // A routed host end with a multipath route through it: the route cannot be carried over to the new host
  // end, so attach refuses before it changes anything.
  ASSERT_EQ(
      sh("set -e; ip -n " + host_ + " link add vx0 type veth peer name eth1 netns " + container_ +
         "; ip -n " + container_ + " link set eth1 up; ip -n " + host_ + " link set vx0 up; ip -n " + host_ +
         " link add dm0 type veth peer name dm1; ip -n " + host_ + " link set dm0 up; ip -n " + host_ +
         " link set dm1 up; ip -n " + host_ + " route add 10.55.0.0/24 nexthop dev vx0 nexthop dev dm0"),
      0);
  std::string routesBefore = capture("ip -n " + host_ + " route");
  AttachRequest multipath;
  multipath.netnsPath = "/run/netns/" + container_;
  multipath.ifname = "eth1";
  result = interposer_->attach(multipath, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ENOTSUP) << result.error().message;
  EXPECT_NE(result.error().message.find("route 10.55.0.0/24"), std::string::npos) << result.error().message;
  EXPECT_EQ(capture("ip -n " + host_ + " route"), routesBefore);
  EXPECT_NE(sh(inVgate("ip link show vgi-1 2>/dev/null")), 0);

  AttachRequest badId;
  badId.netnsPath = "/run/netns/" + container_;
  EXPECT_EQ(interposer_->attach(badId, 0).error().code, EINVAL);
  EXPECT_EQ(interposer_->attach(badId, 4095).error().code, EINVAL);

  AttachRequest twice;
  twice.netnsPath = "/run/netns/" + container_;
  auto first = interposer_->attach(twice, 1);
  ASSERT_TRUE(first.ok()) << first.error().message;
  result = interposer_->attach(twice, 2);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EEXIST) << result.error().message;
  EXPECT_NE(sh(inVgate("ip link show vge-2 2>/dev/null")), 0);
  EXPECT_EQ(interposer_->cleanup(first.value()).error().code, EBUSY);
  EXPECT_TRUE(interposer_->detach(first.value()).ok());
}

// vge-<id> is taken in vgate's netns: attach fails after moving the host end, and puts everything back.
TEST_F(InterposerTest, FailedAttachRollsBack) {
  std::string containerBefore = containerView();
  std::string hostBefore = hostEndView();
  ASSERT_EQ(sh(inVgate("ip link add vge-3 type bridge")), 0);
  AttachRequest request;
  request.netnsPath = "/run/netns/" + container_;
  auto result = interposer_->attach(request, 3);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EEXIST) << result.error().message;
  expectEventually([&] { return containerView(); }, containerBefore);
  expectEventually([&] { return hostEndView(); }, hostBefore);
  EXPECT_NE(sh(inVgate("ip link show vgi-3 2>/dev/null")), 0);
  EXPECT_NE(capture(inVgate("ip -d link show vge-3")).find("bridge"), std::string::npos)
      << "rollback must not delete a link it did not create";

  // vgi-<id> taken: attach fails at its first step.
  ASSERT_EQ(sh(inVgate("ip link add vgi-4 type bridge")), 0);
  result = interposer_->attach(request, 4);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EEXIST) << result.error().message;
  EXPECT_EQ(containerView(), containerBefore);
  EXPECT_EQ(hostEndView(), hostBefore);
  EXPECT_EQ(pingFromContainer("10.77.0.3"), 0);
}

TEST_F(InterposerTest, DeadContainerIsReportedAndCleanedUp) {
  AttachRequest request;
  request.netnsPath = "/run/netns/" + container_;
  auto attached = interposer_->attach(request, 9);
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  auto none = interposer_->takeVanishedPorts();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.value().empty());

  ASSERT_EQ(sh("ip netns del " + container_), 0);
  std::vector<uint16_t> vanished;
  waitFor(
      [&] {
        pollfd watch{interposer_->watchFd(), POLLIN, 0};
        if (poll(&watch, 1, 100) <= 0) return false;
        auto ids = interposer_->takeVanishedPorts();
        if (ids.ok()) vanished.insert(vanished.end(), ids.value().begin(), ids.value().end());
        return !vanished.empty();
      },
      std::chrono::seconds(15));
  ASSERT_EQ(vanished, std::vector<uint16_t>{9});
  EXPECT_EQ(interposer_->innerExists(attached.value()).value(), false);
  // The new host end is still on the bridge until cleanup.
  EXPECT_EQ(sh("ip -n " + host_ + " link show vc0 >/dev/null"), 0);
  auto cleaned = interposer_->cleanup(attached.value());
  ASSERT_TRUE(cleaned.ok()) << cleaned.error().message;
  EXPECT_NE(sh(inVgate("ip link show vge-9 2>/dev/null")), 0);
  EXPECT_NE(sh("ip -n " + host_ + " link show vc0 2>/dev/null"), 0);
  EXPECT_EQ(capture("ip -n " + host_ + " -o link show master br0 | awk '{print $2}'"), "vp0@if2:\n");
  EXPECT_TRUE(interposer_->cleanup(attached.value()).ok()) << "cleanup is idempotent";
  auto gone = interposer_->detach(attached.value());
  EXPECT_EQ(gone.error().code, ENOENT);
}

TEST_F(InterposerTest, PersistentNetnsIsKeptAndRemovable) {
  struct stat first {
  }, second{};
  ASSERT_EQ(stat(vgatePath_.c_str(), &first), 0);
  ASSERT_TRUE(ensurePersistentNetns(vgatePath_).ok());
  ASSERT_EQ(stat(vgatePath_.c_str(), &second), 0);
  EXPECT_EQ(first.st_ino, second.st_ino) << "an existing netns mount is kept";
  EXPECT_NE(capture(inVgate("ip link show lo")).find(",UP"), std::string::npos);

  std::string other = dir_ + "/other/ns";
  ASSERT_TRUE(ensurePersistentNetns(other).ok());
  auto opened = Netns::open(other);
  ASSERT_TRUE(opened.ok());
  auto vgate = Netns::open(vgatePath_);
  ASSERT_TRUE(vgate.ok());
  EXPECT_FALSE(opened.value().sameAs(vgate.value()));
  opened.value().close();
  ASSERT_TRUE(removePersistentNetns(other).ok());
  EXPECT_NE(access(other.c_str(), F_OK), 0);
  EXPECT_EQ(Netns::open(dir_ + "/net.py").error().code, EINVAL);
}

TEST(PortPairJson, RejectsMalformedState) {
  PortPair pair;
  pair.id = 5;
  pair.original.mac = {0x02, 0, 0, 0, 0, 0x05};
  pair.original.bridgePort = {BridgePortAttribute{3, {7, 0, 0, 0}}};
  auto json = pair.toJson();
  auto back = PortPair::fromJson(json);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back.value(), pair);
  EXPECT_EQ(json["original"]["mac"], "02:00:00:00:00:05");

  auto missing = json;
  missing.erase("inner_name");
  EXPECT_EQ(PortPair::fromJson(missing).error().code, EINVAL);
  auto badHex = json;
  badHex["original"]["bridge_port"][0]["value"] = "070";
  EXPECT_EQ(PortPair::fromJson(badHex).error().code, EINVAL);
  auto badId = json;
  badId["id"] = 4095;
  EXPECT_EQ(PortPair::fromJson(badId).error().code, EINVAL);
}

}  // namespace
