// The live daemon end to end, as a user runs it: vgated started inside a throwaway node netns, containers
// (network namespaces on a bridge) attached with vgatectl, real traffic (ping, TCP checked byte for byte,
// UDP, IPv6, TLS, iperf3, a SYN flood) between them and the host, then the flow log and `status` checked.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/live_fixture.h"
#include "support/live_node.h"
#include "support/syn_flood.h"

namespace {

using vgate::testing::Background;
using vgate::testing::fileText;
using vgate::testing::LiveNode;
using vgate::testing::sh;
using vgate::testing::shOut;
using Json = nlohmann::json;

using vgate::testing::sleepMs;

constexpr const char* kDenyPolicy = R"(apiVersion: vgate.io/v1
kind: Policy
metadata:
  name: live-deny
spec:
  mode: enforce
  default: allow
  rules:
    - name: deny-port-7005
      action: deny
      match:
        protocol: tcp
        destination: {ports: ["7005"]}
    - name: deny-bank-tls
      action: deny
      match:
        protocol: tcp
        tls:
          sni: ["*.bank.example"]
)";

class DaemonLive : public vgate::testing::LiveFixture {};

// Default allow, no policy: every kind of traffic crosses vgate between two containers on one bridge and
// between a container and the host, and every flow is in the log with its container and verdict.
TEST_F(DaemonLive, ConnectivityThroughVgateIsLoggedPerFlow) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  ASSERT_TRUE(node_->startVgated());
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-tcp 7001", 7001);
  serve(0, tool + " serve-tcp 7001", 7001);
  serve(2, tool + " serve-udp 7002", 7002, true);
  serve(0, tool + " serve-udp 7002", 7002, true);
  serve(2, tool + " serve-tls 8443 " + writeCertificate(), 8443);
  serve(2, "iperf3 -s -p 5201", 5201);

  auto tcp = sendTcp(1, LiveNode::v4(2), 7001, 40001, 1 << 20);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> c2 TCP: " << tcp.out;
  tcp = sendTcp(1, LiveNode::kHostV4, 7001, 40002, 1 << 20);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> host TCP: " << tcp.out;
  tcp = sendTcp(0, LiveNode::v4(2), 7001, 40003, 1 << 20);
  EXPECT_EQ(tcp.exitCode, 0) << "host -> c2 TCP: " << tcp.out;
  tcp = sendTcp(1, LiveNode::v6(2), 7001, 40021, 1 << 20);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> c2 TCP over IPv6: " << tcp.out;
  tcp = sendTcp(1, LiveNode::kHostV6, 7001, 40022, 1 << 20);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> host TCP over IPv6: " << tcp.out;

  auto udp = shOut("timeout 20 " + node_->tool(1, "send-udp " + LiveNode::v4(2) + " 7002 40011 5"));
  EXPECT_EQ(udp.exitCode, 0) << "c1 -> c2 UDP: " << udp.out;
  udp = shOut("timeout 20 " + node_->tool(1, "send-udp " + std::string(LiveNode::kHostV4) + " 7002 40012 5"));
  EXPECT_EQ(udp.exitCode, 0) << "c1 -> host UDP: " << udp.out;

  for (const std::string& target :
       {LiveNode::v4(2), std::string(LiveNode::kHostV4), LiveNode::v6(2), std::string(LiveNode::kHostV6)}) {
    auto ping = shOut(node_->in(1, "ping -c 3 -i 0.2 -W 2 " + target));
    EXPECT_EQ(ping.exitCode, 0) << "ping " << target << ": " << ping.out;
  }

  EXPECT_EQ(curlTls(1, "www.ok.example", LiveNode::v4(2), 8443, 40031, 10), 0) << "TLS c1 -> c2";

  auto iperf = shOut(node_->in(1, "timeout 20 iperf3 -c " + LiveNode::v4(2) + " -p 5201 -t 2 -J"));
  EXPECT_EQ(iperf.exitCode, 0) << iperf.out;
  Json iperfJson = Json::parse(iperf.out, nullptr, false);
  ASSERT_FALSE(iperfJson.is_discarded()) << iperf.out;
  EXPECT_FALSE(iperfJson.contains("error")) << iperfJson["error"];
  EXPECT_GT(iperfJson["end"]["sum_received"].value("bits_per_second", 0.0), 1e8);

  Json status = node_->status();
  ASSERT_TRUE(status.contains("ports")) << status.dump();
  ASSERT_EQ(status["ports"].size(), 2u) << status.dump();
  EXPECT_EQ(status["ports"][0]["name"], "c1");
  EXPECT_EQ(status["ports"][1]["name"], "c2");
  EXPECT_EQ(status["ports"][0]["bridge"], LiveNode::kBridge);
  EXPECT_EQ(status["ports"][0]["hostIfname"], "vh1");
  EXPECT_GT(status["fastPath"].value("hits", uint64_t{0}), 0u) << status.dump();
  EXPECT_GT(sumWorkers(status, "flowsOffloaded"), 0u) << status.dump();
  std::printf("iperf3 c1 -> c2 through vgate: %.2f Gbit/s; fastPath %s\n",
              iperfJson["end"]["sum_received"].value("bits_per_second", 0.0) / 1e9,
              status["fastPath"].dump().c_str());

  ASSERT_EQ(node_->stopVgated(), 0);
  auto log = node_->flowLog();
  ASSERT_FALSE(log.empty());
  struct Expected {
    const char* what;
    std::string proto, src;
    int sport;
    std::string dest;
    int dport;
    const char* client;  // the container whose port the client's side is on
  };
  std::vector<Expected> expected = {
      {"c1->c2 tcp", "TCP", LiveNode::v4(1), 40001, LiveNode::v4(2), 7001, "c1"},
      {"c1->host tcp", "TCP", LiveNode::v4(1), 40002, LiveNode::kHostV4, 7001, "c1"},
      {"host->c2 tcp", "TCP", LiveNode::kHostV4, 40003, LiveNode::v4(2), 7001, "c2"},
      {"c1->c2 tcp6", "TCP", LiveNode::v6(1), 40021, LiveNode::v6(2), 7001, "c1"},
      {"c1->host tcp6", "TCP", LiveNode::v6(1), 40022, LiveNode::kHostV6, 7001, "c1"},
      {"c1->c2 udp", "UDP", LiveNode::v4(1), 40011, LiveNode::v4(2), 7002, "c1"},
      {"c1->host udp", "UDP", LiveNode::v4(1), 40012, LiveNode::kHostV4, 7002, "c1"},
      {"c1->c2 tls", "TCP", LiveNode::v4(1), 40031, LiveNode::v4(2), 8443, "c1"},
      {"c1->c2 icmp", "ICMP", LiveNode::v4(1), 0, LiveNode::v4(2), 0, "c1"},
      {"c1->host icmp", "ICMP", LiveNode::v4(1), 0, LiveNode::kHostV4, 0, "c1"},
      {"c1->c2 icmp6", "IPv6-ICMP", LiveNode::v6(1), 0, LiveNode::v6(2), 0, "c1"},
      {"c1->host icmp6", "IPv6-ICMP", LiveNode::v6(1), 0, LiveNode::kHostV6, 0, "c1"},
  };
  for (const Expected& flow : expected) {
    auto records = flowsOf(log, flow.proto, flow.src, flow.sport, flow.dest);
    if (records.empty()) {
      ADD_FAILURE() << flow.what << ": not in the flow log (" << log.size() << " records)";
      continue;
    }
    bool clientSide = false;
    for (const Json& record : records) {
      EXPECT_EQ(record["verdict"]["action"], "allow") << flow.what << ": " << record.dump();
      if (flow.dport != 0) {
        EXPECT_EQ(record.value("dest_port", 0), flow.dport) << flow.what;
      }
      std::string name = record["container"].value("name", "");
      EXPECT_EQ(record.value("in_iface", ""), "vh" + name.substr(1)) << flow.what << ": " << record.dump();
      if (record["container"]["name"] == flow.client) clientSide = true;
      if (flow.sport == 40031) {
        EXPECT_EQ(record["tls"].value("sni", ""), "www.ok.example") << record.dump();
      }
    }
    EXPECT_TRUE(clientSide) << flow.what << ": logged for " << containerNames(records);
  }
}

// Jumbo frames: containers, host ends and the bridge at MTU 9000 before attach; bulk TCP (checked by hash),
// iperf3 and full-size pings cross vgate, and the pairs it makes keep the MTU.
TEST_F(DaemonLive, Mtu9000CarriesBulkTcpAndPing) {
  ASSERT_TRUE(node_->addContainer(1, 9000));
  ASSERT_TRUE(node_->addContainer(2, 9000));
  ASSERT_TRUE(node_->startVgated());
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  EXPECT_NE(shOut(node_->inNode("ip link show vh1")).out.find("mtu 9000"), std::string::npos);
  EXPECT_NE(shOut(node_->in(1, "ip link show eth0")).out.find("mtu 9000"), std::string::npos);
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-tcp 7001", 7001);
  serve(0, tool + " serve-tcp 7001", 7001);
  serve(2, "iperf3 -s -p 5201", 5201);

  // Clients that speak first with a short request (the flow is decided on it, then bulk goes the fast way).
  auto tcp = sendTcp(1, LiveNode::v4(2), 7001, 40101, 10 << 20, 10, 100);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> c2 10 MB: " << tcp.out;
  tcp = sendTcp(1, LiveNode::kHostV4, 7001, 40102, 10 << 20, 10, 100);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> host 10 MB: " << tcp.out;
  tcp = sendTcp(1, LiveNode::v6(2), 7001, 40103, 10 << 20, 10, 100);
  EXPECT_EQ(tcp.exitCode, 0) << "c1 -> c2 10 MB over IPv6: " << tcp.out;
  auto iperf = shOut(node_->in(1, "timeout 20 iperf3 -c " + LiveNode::v4(2) + " -p 5201 -t 2 -J"));
  Json iperfJson = Json::parse(iperf.out, nullptr, false);
  EXPECT_EQ(iperf.exitCode, 0) << iperf.out;
  if (!iperfJson.is_discarded()) {
    EXPECT_FALSE(iperfJson.contains("error")) << iperfJson["error"];
    std::printf("iperf3 at MTU 9000: %.2f Gbit/s\n",
                iperfJson["end"]["sum_received"].value("bits_per_second", 0.0) / 1e9);
  }
  EXPECT_EQ(shOut(node_->in(1, "ping -c 2 -i 0.2 -W 2 " + LiveNode::v4(2))).exitCode, 0) << "small ping";

  // A client whose first data segment is full-size: the flow's inspect entry lets frames larger than the
  // trunk carries (~3.4 KB) past the slow path while the rest is still inspected.
  tcp = sendTcp(1, LiveNode::v4(2), 7001, 40104, 1 << 20, 4);
  EXPECT_EQ(tcp.exitCode, 0) << "a TCP flow whose first data segment is 9000 bytes: " << tcp.out;
  tcp = sendTcp(1, LiveNode::v6(2), 7001, 40105, 1 << 20, 4);
  EXPECT_EQ(tcp.exitCode, 0) << "the same over IPv6: " << tcp.out;

  // ICMP always takes the slow path: echoes up to what the trunk carries cross, larger ones are dropped
  // and counted as oversize, never lost silently (DESIGN.md, "Frame size").
  for (const std::string& target : {LiveNode::v4(2), std::string(LiveNode::kHostV4)}) {
    EXPECT_EQ(shOut(node_->in(1, "ping -c 2 -i 0.2 -W 2 -M do -s 3000 " + target)).exitCode, 0)
        << "3 kB ping to " << target;
  }
  EXPECT_EQ(shOut(node_->in(1, "ping -6 -c 2 -i 0.2 -W 2 -M do -s 3000 " + LiveNode::v6(2))).exitCode, 0);
  uint64_t oversize = node_->status()["fastPath"].value("oversize", uint64_t{0});
  EXPECT_NE(shOut(node_->in(1, "ping -c 1 -W 1 -M do -s 8972 " + LiveNode::v4(2))).exitCode, 0);
  EXPECT_GT(node_->status()["fastPath"].value("oversize", uint64_t{0}), oversize);
}

// One policy, one bridge: a port rule and an SNI rule each stop their flow and nothing else; the log names
// the rule.
TEST_F(DaemonLive, DenyByPortAndBySniOnOneBridge) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  ASSERT_TRUE(node_->startVgated("--policy " + writePolicy(kDenyPolicy)));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-tcp 7005", 7005);
  serve(2, tool + " serve-tcp 7006", 7006);
  serve(2, tool + " serve-tls 8443 " + writeCertificate(), 8443);

  auto denied = sendTcp(1, LiveNode::v4(2), 7005, 40201, 1000, 2);
  EXPECT_NE(denied.exitCode, 0) << "port 7005 is denied: " << denied.out;
  auto allowed = sendTcp(1, LiveNode::v4(2), 7006, 40202, 1 << 20);
  EXPECT_EQ(allowed.exitCode, 0) << "port 7006 is allowed: " << allowed.out;
  EXPECT_NE(curlTls(1, "www.bank.example", LiveNode::v4(2), 8443, 40203, 3), 0)
      << "www.bank.example is denied";
  EXPECT_EQ(curlTls(1, "www.ok.example", LiveNode::v4(2), 8443, 40204, 10), 0) << "www.ok.example is allowed";
  EXPECT_EQ(curlTls(1, "bank.example", LiveNode::v4(2), 8443, 40205, 10), 0)
      << "the apex is not *.bank.example";
  // The host's view is judged too: a denied port from the host into c2.
  auto fromHost = sendTcp(0, LiveNode::v4(2), 7005, 40206, 1000, 2);
  EXPECT_NE(fromHost.exitCode, 0) << "host -> c2 port 7005 is denied: " << fromHost.out;

  Json status = node_->status();
  EXPECT_EQ(status["policy"]["name"], "live-deny") << status.dump();
  EXPECT_GT(sumWorkers(status, "denied"), 0u) << status.dump();
  ASSERT_EQ(node_->stopVgated(), 0);
  auto log = node_->flowLog();
  struct Expected {
    int sport;
    int dport;
    const char* action;
    const char* rule;  // nullptr: no rule decided (the default)
    const char* sni;
  };
  for (const Expected& flow :
       std::vector<Expected>{{40201, 7005, "deny", "deny-port-7005", nullptr},
                             {40202, 7006, "allow", nullptr, nullptr},
                             {40203, 8443, "deny", "deny-bank-tls", "www.bank.example"},
                             {40204, 8443, "allow", nullptr, "www.ok.example"},
                             {40205, 8443, "allow", nullptr, "bank.example"}}) {
    auto records = flowsOf(log, "TCP", LiveNode::v4(1), flow.sport, LiveNode::v4(2));
    ASSERT_FALSE(records.empty()) << "flow from port " << flow.sport << " not logged";
    bool onClient = false;
    for (const Json& record : records) {
      if (record["container"]["name"] != "c1") continue;
      onClient = true;
      EXPECT_EQ(record.value("dest_port", 0), flow.dport);
      EXPECT_EQ(record["verdict"]["action"], flow.action) << record.dump();
      EXPECT_EQ(record["verdict"]["policy"], "live-deny") << record.dump();
      if (flow.rule != nullptr) {
        EXPECT_EQ(record["verdict"]["rule"], flow.rule) << record.dump();
      } else {
        EXPECT_TRUE(record["verdict"]["rule"].is_null()) << record.dump();
      }
      if (flow.sni != nullptr) {
        EXPECT_EQ(record["tls"].value("sni", ""), flow.sni) << record.dump();
      }
    }
    EXPECT_TRUE(onClient) << flow.sport << ": logged for " << containerNames(records);
  }
  // c2's pair, the receiver's view: the bank handshake it saw is allowed (the ClientHello never reached
  // it), marked as decided when the flow ended; the allowed TLS flow was decided on its ClientHello.
  for (auto [sport, decidedAtEnd] : {std::pair{40203, true}, std::pair{40204, false}}) {
    bool onServer = false;
    for (const Json& record : flowsOf(log, "TCP", LiveNode::v4(1), sport, LiveNode::v4(2))) {
      if (record["container"]["name"] != "c2") {
        EXPECT_EQ(record["verdict"]["decided_at_end"], false) << record.dump();
        continue;
      }
      onServer = true;
      EXPECT_EQ(record["verdict"]["action"], "allow") << record.dump();
      EXPECT_EQ(record["verdict"]["decided_at_end"], decidedAtEnd) << record.dump();
    }
    EXPECT_TRUE(onServer) << sport << " not logged at c2's pair";
  }
  auto fromHost7005 = flowsOf(log, "TCP", LiveNode::kHostV4, 40206, LiveNode::v4(2));
  ASSERT_FALSE(fromHost7005.empty());
  EXPECT_EQ(fromHost7005[0]["verdict"]["action"], "deny") << fromHost7005[0].dump();
  EXPECT_EQ(fromHost7005[0]["verdict"]["rule"], "deny-port-7005") << fromHost7005[0].dump();
}

// direction is judged per pair, from the side of the pair the client's packet entered by (the port tag):
// c1 -> c2 is egress at c1's pair and ingress at c2's, so a rule against inbound connections to 7007 lets
// c1 send and stops c2 receiving; c2 -> host is egress everywhere and passes; host -> c2 is ingress at c2.
TEST_F(DaemonLive, DirectionIsJudgedAtEachPairFromItsSide) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  ASSERT_TRUE(node_->startVgated("--policy " + writePolicy(R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: live-direction}
spec:
  default: allow
  rules:
    - name: no-inbound-7007
      action: deny
      direction: ingress
      match: {protocol: tcp, destination: {ports: ["7007"]}}
)")));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-tcp 7007", 7007);
  serve(0, tool + " serve-tcp 7007", 7007);

  auto between = sendTcp(1, LiveNode::v4(2), 7007, 40301, 1000, 2);
  EXPECT_NE(between.exitCode, 0) << "c1 -> c2:7007 is inbound at c2: " << between.out;
  auto outbound = sendTcp(2, LiveNode::kHostV4, 7007, 40302, 1 << 16);
  EXPECT_EQ(outbound.exitCode, 0) << "c2 -> host:7007 is outbound: " << outbound.out;
  auto inbound = sendTcp(0, LiveNode::v4(2), 7007, 40303, 1000, 2);
  EXPECT_NE(inbound.exitCode, 0) << "host -> c2:7007 is inbound: " << inbound.out;
  ASSERT_EQ(node_->stopVgated(), 0);

  auto log = node_->flowLog();
  auto verdictAt = [&](const std::string& client, int sport, const std::string& server,
                       const std::string& container) -> Json {
    for (const Json& record : flowsOf(log, "TCP", client, sport, server)) {
      if (record["container"]["name"] == container) return record["verdict"];
    }
    return Json();
  };
  Json atSender = verdictAt(LiveNode::v4(1), 40301, LiveNode::v4(2), "c1");
  Json atReceiver = verdictAt(LiveNode::v4(1), 40301, LiveNode::v4(2), "c2");
  ASSERT_FALSE(atSender.is_null()) << "c1 -> c2 not logged at c1's pair";
  ASSERT_FALSE(atReceiver.is_null()) << "c1 -> c2 not logged at c2's pair";
  EXPECT_EQ(atSender["action"], "allow") << atSender.dump();
  EXPECT_TRUE(atSender["rule"].is_null()) << atSender.dump();
  EXPECT_EQ(atReceiver["action"], "deny") << atReceiver.dump();
  EXPECT_EQ(atReceiver["rule"], "no-inbound-7007") << atReceiver.dump();
  Json out = verdictAt(LiveNode::v4(2), 40302, LiveNode::kHostV4, "c2");
  ASSERT_FALSE(out.is_null()) << "c2 -> host not logged";
  EXPECT_EQ(out["action"], "allow") << out.dump();
  Json in = verdictAt(LiveNode::kHostV4, 40303, LiveNode::v4(2), "c2");
  ASSERT_FALSE(in.is_null()) << "host -> c2 not logged";
  EXPECT_EQ(in["action"], "deny") << in.dump();
  EXPECT_EQ(in["rule"], "no-inbound-7007") << in.dump();
}

// kill -9 of vgated while iperf3 runs, in both fail modes, then a restart on the same state dir.
TEST_F(DaemonLive, KillDuringIperfThenRestartAdopts) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  std::string policy = writePolicy(kDenyPolicy);
  std::string common = "--heartbeat-timeout-ms 300 --policy " + policy;
  std::string tool = "/usr/bin/python3 " + node_->toolPath();

  struct Phase {
    const char* mode;
    int sportBase;
  };
  bool attached = false;
  for (const Phase& phase : {Phase{"closed", 41000}, Phase{"open", 41100}}) {
    SCOPED_TRACE(std::string("fail mode ") + phase.mode);
    ASSERT_TRUE(node_->startVgated(common + " --fail-mode " + phase.mode));
    if (!attached) {
      ASSERT_TRUE(node_->attach(1));
      ASSERT_TRUE(node_->attach(2));
      serve(2, tool + " serve-tcp 7001", 7001);
      serve(2, tool + " serve-tcp 7005", 7005);
      attached = true;
    }
    int sport = phase.sportBase;
    int iperfPort = sport == 41000 ? 5201 : 5202;
    serve(2, "iperf3 -1 -s -p " + std::to_string(iperfPort), iperfPort);
    auto before = sendTcp(1, LiveNode::v4(2), 7001, ++sport, 1 << 16);
    EXPECT_EQ(before.exitCode, 0) << "before the kill: " << before.out;
    EXPECT_NE(sendTcp(1, LiveNode::v4(2), 7005, ++sport, 1000, 2).exitCode, 0) << "7005 denied before";

    std::string iperfOut = (node_->dir() / (std::string("iperf-") + phase.mode + ".json")).string();
    Background iperf(node_->in(1, "timeout 30 iperf3 -c " + LiveNode::v4(2) + " -p " +
                                      std::to_string(iperfPort) + " -t 8 -J"),
                     iperfOut);
    sleepMs(2000);
    pid_t victim = node_->vgatedPid();
    node_->killVgated();
    EXPECT_NE(kill(victim, 0), 0) << "vgated is gone";
    sleepMs(1000);  // beyond the 300 ms heartbeat timeout

    auto whileDead = sendTcp(1, LiveNode::v4(2), 7001, ++sport, 1 << 16, 2);
    if (std::string(phase.mode) == "closed") {
      EXPECT_NE(whileDead.exitCode, 0) << "fail-closed lets a new flow through: " << whileDead.out;
    } else {
      EXPECT_EQ(whileDead.exitCode, 0) << "fail-open refuses a new flow: " << whileDead.out;
    }
    int hostPort = ++sport;
    if (std::string(phase.mode) == "open") {
      auto host = sendTcp(0, LiveNode::v4(2), 7001, hostPort, 1 << 16, 2);
      EXPECT_EQ(host.exitCode, 0) << "fail-open, from the host: " << host.out;
    }

    // Restart on the same state dir: the ports are adopted, new flows are judged again.
    ASSERT_TRUE(node_->startVgated(common + " --fail-mode " + phase.mode));
    Json status = node_->status();
    ASSERT_EQ(status["ports"].size(), 2u) << status.dump();
    EXPECT_EQ(status["ports"][0]["name"], "c1");
    EXPECT_EQ(status["ports"][1]["name"], "c2");
    EXPECT_NE(node_->vgatedLog().find("2 port(s) adopted"), std::string::npos) << node_->vgatedLog();
    auto after = sendTcp(1, LiveNode::v4(2), 7001, ++sport, 1 << 16);
    EXPECT_EQ(after.exitCode, 0) << "after the restart: " << after.out;
    EXPECT_NE(sendTcp(1, LiveNode::v4(2), 7005, ++sport, 1000, 2).exitCode, 0) << "7005 denied again";
    EXPECT_GT(sumWorkers(node_->status(), "flowsCreated"), 0u);

    EXPECT_EQ(iperf.wait(std::chrono::seconds(25)), 0) << fileText(iperfOut);
    Json result = Json::parse(fileText(iperfOut), nullptr, false);
    ASSERT_FALSE(result.is_discarded()) << fileText(iperfOut);
    EXPECT_FALSE(result.contains("error")) << result["error"];
    ASSERT_TRUE(result["end"]["sum_received"].is_object()) << result.dump();
    EXPECT_GT(result["end"]["sum_received"].value("bytes", 0.0), 0.0);
    // No second without data: the stream crossed the kill and the restart without a stall.
    for (const Json& interval : result.value("intervals", Json::array())) {
      EXPECT_GT(interval["sum"].value("bytes", 0.0), 0.0) << interval["sum"].dump();
    }
    ASSERT_EQ(node_->stopVgated(), 0);
  }

  // The flows opened after each restart were judged by the new vgated: in its log with their verdicts.
  auto log = node_->flowLog();
  for (int base : {41000, 41100}) {
    auto allowed = flowsOf(log, "TCP", LiveNode::v4(1), base + 5, LiveNode::v4(2));
    ASSERT_FALSE(allowed.empty()) << base + 5;
    EXPECT_EQ(allowed[0]["verdict"]["action"], "allow");
    auto denied = flowsOf(log, "TCP", LiveNode::v4(1), base + 6, LiveNode::v4(2));
    ASSERT_FALSE(denied.empty()) << base + 6;
    EXPECT_EQ(denied[0]["verdict"]["action"], "deny");
    EXPECT_EQ(denied[0]["verdict"]["rule"], "deny-port-7005");
  }
}

// Detach through vgatectl puts the container and its host end back exactly as they were, and traffic still
// flows.
TEST_F(DaemonLive, DetachRestoresLinksAddressesRoutesAndFeatures) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  auto snapshot = [&](int n) {
    std::string s;
    for (const char* command :
         {"ip -d link show eth0", "ip addr", "ip route", "ip -6 route", "ethtool -k eth0"}) {
      s += "== " + std::string(command) + "\n" + shOut(node_->in(n, command)).out;
    }
    std::string host = "vh" + std::to_string(n);
    s += "== host ip -d link\n" + shOut(node_->inNode("ip -d link show " + host)).out;
    s += "== host ethtool -k\n" + shOut(node_->inNode("ethtool -k " + host)).out;
    s += "== host bridge link\n" + shOut(node_->inNode("bridge -d link show dev " + host)).out;
    return s;
  };
  // Ifindexes are compared on their own (below), the peer's too; bridge timers tick.
  auto normalized = [](const std::string& text) {
    static const std::regex ifindex("(^|\n)[0-9]+: "), peer("@if[0-9]+"), timer("(_timer) +[0-9.]+");
    return std::regex_replace(std::regex_replace(std::regex_replace(text, ifindex, "$1N: "), peer, "@ifN"),
                              timer, "$1 T");
  };
  auto hostIfindex = [&](int n) {
    std::string text = shOut(node_->inNode("cat /sys/class/net/vh" + std::to_string(n) + "/ifindex")).out;
    return text.substr(0, text.find('\n'));
  };
  // Settle IPv6 (link-local addresses leave "tentative") before the first snapshot.
  ASSERT_EQ(sh(node_->in(1, "ping -c 1 -W 2 " + LiveNode::v4(2) + " >/dev/null")), 0);
  for (int i = 0; i < 100; ++i) {
    if (shOut(node_->in(1, "ip addr") + "; " + node_->in(2, "ip addr")).out.find("tentative") ==
        std::string::npos)
      break;
    sleepMs(100);
  }
  std::string before1 = snapshot(1);
  std::string before2 = snapshot(2);
  std::string ifindexBefore1 = hostIfindex(1), ifindexBefore2 = hostIfindex(2);
  ASSERT_TRUE(node_->startVgated());
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  EXPECT_EQ(sh(node_->in(1, "ping -c 2 -i 0.2 -W 2 " + LiveNode::v4(2) + " >/dev/null")), 0);
  EXPECT_EQ(snapshot(1).find("vgi-"), std::string::npos);

  // What the interposer recorded: the host end's ifindex before, and the one it got in vgate's netns.
  std::string ifindexes;
  Json ports = Json::parse(fileText(node_->stateDir() / "ports.json"), nullptr, false);
  if (ports.is_object()) {
    for (const Json& port : ports["ports"]) {
      ifindexes += " " + port["original"].value("name", "") + ": " +
                   std::to_string(port["original"].value("ifindex", 0)) + " -> inner " +
                   std::to_string(port.value("inner_ifindex", 0)) + ";";
    }
  }
  std::string vgateLinks =
      shOut("nsenter --net=" + (node_->stateDir() / "netns").string() + " ip -o link").out;
  auto detached = node_->ctl("detach --netns " + node_->containerPath(1));
  ASSERT_EQ(detached.exitCode, 0) << detached.out;
  EXPECT_EQ(normalized(snapshot(1)), normalized(before1));
  EXPECT_EQ(node_->status()["ports"].size(), 1u);
  EXPECT_EQ(sh(node_->in(1, "ping -c 2 -i 0.2 -W 2 " + LiveNode::v4(2) + " >/dev/null")), 0)
      << "c1 (detached) -> c2 (attached)";
  EXPECT_EQ(sh(node_->in(1, "ping -c 2 -i 0.2 -W 2 " + LiveNode::v6(2) + " >/dev/null")), 0);

  detached = node_->ctl("detach --all");
  ASSERT_EQ(detached.exitCode, 0) << detached.out;
  EXPECT_EQ(normalized(snapshot(2)), normalized(before2));
  EXPECT_EQ(node_->status()["ports"].size(), 0u);
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-tcp 7001", 7001);
  auto tcp = sendTcp(1, LiveNode::v4(2), 7001, 40401, 1 << 20);
  EXPECT_EQ(tcp.exitCode, 0) << "after detach: " << tcp.out;
  std::string links = node_->vgateLinks();
  EXPECT_EQ(links.find("vgi-"), std::string::npos) << links;
  EXPECT_EQ(links.find("vge-"), std::string::npos) << links;
  // The host ends keep their ifindex (the container's eth0@ifN): in vgate's netns no link may have taken it.
  EXPECT_EQ(hostIfindex(1), ifindexBefore1) << "recorded:" << ifindexes << " vgate netns:\n" << vgateLinks;
  EXPECT_EQ(hostIfindex(2), ifindexBefore2) << "recorded:" << ifindexes << " vgate netns:\n" << vgateLinks;
}

// A million spoofed SYNs (distinct flows) from a third attached container while an allowed connection keeps
// echoing: memory stays bounded, the flow table evicts and counts it, the connection carries on.
// A container routed from the node (Calico style, on no bridge) beside one on the bridge: its traffic to the
// host and to the bridged container crosses vgate, is judged by the policy and logged under its name, and
// detach gives the node its routes back.
TEST_F(DaemonLive, RoutedContainerIsJudgedLoggedAndDetached) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addRoutedContainer(2));
  // c1 reaches the routed range through the node.
  ASSERT_EQ(sh(node_->in(1, "ip route add 10.78.0.0/24 via " + std::string(LiveNode::kHostV4)) + " && " +
               node_->in(1, "ip -6 route add fd78::/64 via " + std::string(LiveNode::kHostV6))),
            0);
  const std::string hostEnd = LiveNode::routedHostEnd(2);
  auto nodeView = [&] {
    return shOut(node_->inNode("ip -d link show " + hostEnd) + " | tail -n +2; " +
                 node_->inNode("ip route show table all dev " + hostEnd) + "; " +
                 node_->inNode("ip -6 route show table all dev " + hostEnd) + "; " +
                 node_->inNode("sh -c 'grep -r . /proc/sys/net/ipv4/conf/" + hostEnd +
                               " /proc/sys/net/ipv4/neigh/" + hostEnd + " /proc/sys/net/ipv6/conf/" +
                               hostEnd + " 2>/dev/null'"))
        .out;
  };
  auto ping = shOut(node_->in(2, "ping -c 2 -i 0.2 -W 2 " + std::string(LiveNode::kHostV4)));
  ASSERT_EQ(ping.exitCode, 0) << "the routed topology itself does not work: " << ping.out;
  std::string before = nodeView();
  ASSERT_NE(before.find(LiveNode::routedV4(2) + " scope link"), std::string::npos) << before;

  ASSERT_TRUE(node_->startVgated("--policy " + writePolicy(kDenyPolicy)));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  Json status = node_->status();
  bool routedPort = false;
  for (const Json& port : status.value("ports", Json::array())) {
    if (port.value("name", "") != "c2") continue;
    routedPort = true;
    EXPECT_EQ(port.value("mode", ""), "routed") << port.dump();
    EXPECT_EQ(port.value("hostIfname", ""), hostEnd) << port.dump();
  }
  EXPECT_TRUE(routedPort) << status.dump();

  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(0, tool + " serve-tcp 7001", 7001);
  serve(0, tool + " serve-tcp 7005", 7005);
  serve(1, tool + " serve-tcp 7001", 7001);
  serve(2, tool + " serve-tcp 7001", 7001);
  struct Transfer {
    int from;
    std::string to;
    int sport;
  };
  for (const Transfer& transfer : std::vector<Transfer>{{2, LiveNode::kHostV4, 40401},
                                                        {2, LiveNode::v4(1), 40402},
                                                        {1, LiveNode::routedV4(2), 40403},
                                                        {2, LiveNode::kHostV6, 40404}}) {
    auto tcp = sendTcp(transfer.from, transfer.to, 7001, transfer.sport, 1 << 20);
    EXPECT_EQ(tcp.exitCode, 0) << "c" << transfer.from << " -> " << transfer.to << " TCP: " << tcp.out;
  }
  auto denied = sendTcp(2, LiveNode::kHostV4, 7005, 40405, 1000, 2);
  EXPECT_NE(denied.exitCode, 0) << "port 7005 is denied: " << denied.out;
  for (const std::string& target :
       {std::string(LiveNode::kHostV4), std::string(LiveNode::kHostV6), LiveNode::v4(1), LiveNode::v6(1)}) {
    ping = shOut(node_->in(2, "ping -c 3 -i 0.2 -W 2 " + target));
    EXPECT_EQ(ping.exitCode, 0) << "ping " << target << ": " << ping.out;
  }

  auto detached = node_->ctl("detach --netns " + node_->containerPath(2));
  EXPECT_EQ(detached.exitCode, 0) << detached.out;
  EXPECT_EQ(nodeView(), before);
  ping = shOut(node_->in(2, "ping -c 2 -i 0.2 -W 2 " + std::string(LiveNode::kHostV4)));
  EXPECT_EQ(ping.exitCode, 0) << "after detach: " << ping.out;

  ASSERT_EQ(node_->stopVgated(), 0);
  auto log = node_->flowLog();
  struct Expected {
    std::string dest;
    int sport;
    const char* action;
    const char* rule;
  };
  for (const Expected& flow : std::vector<Expected>{{LiveNode::kHostV4, 40401, "allow", nullptr},
                                                    {LiveNode::v4(1), 40402, "allow", nullptr},
                                                    {LiveNode::kHostV4, 40405, "deny", "deny-port-7005"}}) {
    auto records = flowsOf(log, "TCP", LiveNode::routedV4(2), flow.sport, flow.dest);
    ASSERT_FALSE(records.empty()) << "flow from port " << flow.sport << " not logged";
    bool onRouted = false;
    for (const Json& record : records) {
      if (record["container"]["name"] != "c2") continue;
      onRouted = true;
      EXPECT_EQ(record["verdict"]["action"], flow.action) << record.dump();
      if (flow.rule != nullptr) {
        EXPECT_EQ(record["verdict"]["rule"], flow.rule) << record.dump();
      }
    }
    EXPECT_TRUE(onRouted) << flow.sport << ": logged for " << containerNames(records);
  }
  auto inbound = flowsOf(log, "TCP", LiveNode::v4(1), 40403, LiveNode::routedV4(2));
  EXPECT_NE(containerNames(inbound).find("c2"), std::string::npos) << containerNames(inbound);
}

// ICMP errors about a flow follow the flow's verdict, as conntrack's RELATED does: under a default-deny
// policy that allows TCP 7001, a "fragmentation needed" about an open connection reaches the container (its
// path MTU discovery keeps working), one about no connection is dropped. With two workers, each error must
// reach the worker that holds its flow: four connections make a lucky pass unlikely (1 in 16).
TEST_F(DaemonLive, IcmpErrorsFollowTheirFlowsVerdict) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  ASSERT_TRUE(node_->startVgated("--workers 2 --policy " + writePolicy(R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: deny-but-7001}
spec:
  mode: enforce
  default: deny
  rules:
    - name: allow-7001
      action: allow
      match: {protocol: tcp, destination: {ports: ["7001"]}}
)")));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-echo 7001", 7001);
  const std::vector<int> sports = {41001, 41002, 41003, 41004};
  std::vector<Background> connections;
  for (int sport : sports) {
    connections.emplace_back(
        node_->in(1, tool + " hold-tcp " + LiveNode::v4(2) + " 7001 " + std::to_string(sport) + " 20"),
        (node_->dir() / ("hold-" + std::to_string(sport) + ".log")).string());
  }
  std::string established = node_->in(1, "ss -Htn state established '( dport = :7001 )'");
  auto countEstablished = [&] {
    std::string out = shOut(established).out;
    return static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  };
  for (int i = 0; i < 100 && countEstablished() < sports.size(); ++i) sleepMs(50);
  ASSERT_EQ(countEstablished(), sports.size());
  std::string received = (node_->dir() / "icmp.json").string();
  Background listener(node_->in(1, tool + " icmp-listen 4 " + received), received + ".log");
  for (int i = 0; i < 100 && !std::filesystem::exists(received + ".ready"); ++i) sleepMs(20);

  // From the node, as a router on the path would: about each connection, and about a connection that does
  // not exist.
  for (int sport : sports) {
    ASSERT_EQ(sh(node_->inNode(tool + " icmp-error " + LiveNode::v4(1) + " " + LiveNode::v4(1) + " " +
                               LiveNode::v4(2) + " " + std::to_string(sport) + " 7001")),
              0);
  }
  ASSERT_EQ(sh(node_->inNode(tool + " icmp-error " + LiveNode::v4(1) + " " + LiveNode::v4(1) + " " +
                             LiveNode::v4(2) + " 41999 7009")),
            0);
  EXPECT_EQ(listener.wait(std::chrono::seconds(15)), 0);
  Json ports = Json::parse(fileText(received), nullptr, false);
  ASSERT_TRUE(ports.is_array()) << fileText(received);
  std::vector<int> got = ports.get<std::vector<int>>();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, sports) << "errors about the open connections pass, the one about none is dropped";
  Json status = node_->status();
  EXPECT_GE(sumWorkers(status, "icmpErrorsRelated"), sports.size()) << status.dump();
}

TEST_F(DaemonLive, SynFloodKeepsMemoryBoundedAndEstablishedFlowAlive) {
  for (int n : {1, 2, 3}) ASSERT_TRUE(node_->addContainer(n));
  // Under AddressSanitizer, freed memory sits in a quarantine of up to 256 MB (the flow log's strings fill
  // it): keep it small so that RSS shows what vgated itself holds. Without ASan the variable is ignored.
  const char* asan = std::getenv("ASAN_OPTIONS");
  ASSERT_TRUE(node_->startVgated(
      "--flows 16384",
      std::string("ASAN_OPTIONS=") + (asan ? std::string(asan) + ":" : "") + "quarantine_size_mb=4"));
  for (int n : {1, 2, 3}) ASSERT_TRUE(node_->attach(n));
  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-echo 7100", 7100);
  std::string report = (node_->dir() / "echo.json").string();
  Background echo(node_->tool(1, "echo-client " + LiveNode::v4(2) + " 7100 120 0.05 " + report),
                  (node_->dir() / "echo.log").string());
  auto progress = [&] {
    Json json = Json::parse(fileText(report), nullptr, false);  // not written yet, or being rewritten
    return json.is_object() ? json : Json::object();
  };
  for (int i = 0; i < 100 && progress().value("lines", 0) < 10; ++i) sleepMs(50);
  ASSERT_GE(progress().value("lines", 0), 10) << fileText(node_->dir() / "echo.log");

  long rssBefore = vmRssKb(node_->vgatedPid());
  vgate::testing::SynFloodOptions flood;
  flood.netnsPath = node_->containerPath(3);
  ASSERT_TRUE(vgate::testing::parseMac(macOf(3), flood.srcMac));
  ASSERT_TRUE(vgate::testing::parseMac(macOf(2), flood.dstMac));
  flood.firstSource = (10u << 24) | (78u << 16);
  flood.destination = (10u << 24) | (77u << 16) | 2u;
  flood.destinationPort = 9;
  flood.count = 1000000;
  int linesBefore = progress().value("lines", 0);
  auto sent = vgate::testing::synFlood(flood);
  ASSERT_TRUE(sent.error.empty()) << sent.error;
  EXPECT_EQ(sent.sent, flood.count);
  sleepMs(2000);  // let the workers drain what they took
  long rssAfter = vmRssKb(node_->vgatedPid());
  Json status = node_->status();
  ASSERT_TRUE(status.contains("workers")) << "vgated stopped answering";
  std::printf("flood: %llu SYNs in %.2f s; vgated RSS %ld -> %ld kB; workers %s; fastPath %s\n",
              static_cast<unsigned long long>(sent.sent), sent.seconds, rssBefore, rssAfter,
              status["workers"].dump().c_str(), status["fastPath"].dump().c_str());
  EXPECT_LT(sent.seconds, 60.0);
  EXPECT_LT(rssAfter - rssBefore, 64L * 1024) << "RSS grew from " << rssBefore << " to " << rssAfter << " kB";
  uint64_t evicted = sumWorkers(status, "flowsEvicted");
  uint64_t created = sumWorkers(status, "flowsCreated");
  EXPECT_TRUE(evicted > 0 || created >= 16384) << status["workers"].dump();
  EXPECT_GT(evicted, 0u) << "a full flow table must count its evictions";
  // A legitimate new connection works right after the flood.
  serve(2, tool + " serve-tcp 7001", 7001);
  auto fresh = sendTcp(1, LiveNode::v4(2), 7001, 40601, 1 << 16);
  EXPECT_EQ(fresh.exitCode, 0) << "a new flow after the flood: " << fresh.out;

  Json during = progress();
  EXPECT_GT(during.value("lines", 0), linesBefore + 20) << during.dump();
  std::ofstream(report + ".stop") << "";
  EXPECT_EQ(echo.wait(std::chrono::seconds(10)), 0) << fileText(report);
  Json final = progress();
  EXPECT_TRUE(final["error"].is_null()) << final.dump();
  EXPECT_LT(final.value("maxGap", 99.0), 2.0) << final.dump();
  EXPECT_EQ(node_->ctl("status").exitCode, 0);
  // vgated kept beating through the flood: the fast path never fell back to its fail mode for new flows.
  EXPECT_EQ(status["fastPath"].value("failClosedDrops", uint64_t{0}), 0u) << status["fastPath"].dump();
}

// Bad attach requests: each refused with a clear errno name, and nothing half-wired left behind.
TEST_F(DaemonLive, BadAttachRequestsLeaveNothingBehind) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(4));
  ASSERT_TRUE(node_->startVgated());
  ASSERT_TRUE(node_->attach(1));
  std::string linksBefore = node_->vgateLinks();

  // c4 has things that are not attachable: a bridge, a veth pair inside the netns, a dummy when the
  // module exists.
  ASSERT_EQ(sh(node_->in(4, "ip link add br9 type bridge")), 0);
  ASSERT_EQ(sh(node_->in(4, "ip link add va type veth peer name vb")), 0);
  bool haveDummy = sh(node_->in(4, "ip link add dm0 type dummy 2>/dev/null")) == 0;
  // A veth routed from the node with a multipath route through it, which attach cannot carry over.
  std::string inNode = "ip -n " + node_->node() + " ";
  ASSERT_EQ(sh(inNode + "link add vr4 type veth peer name ro0 netns " + node_->container(4) + " && " +
               node_->in(4, "ip link set ro0 up") + " && " + inNode + "link set vr4 up && " + inNode +
               "route add 10.55.0.0/24 nexthop dev vr4 nexthop dev " + LiveNode::kBridge),
            0);

  int pidMax = std::stoi(fileText("/proc/sys/kernel/pid_max"));
  int freePid = pidMax - 1;
  while (freePid > 1 && kill(freePid, 0) == 0) --freePid;

  struct Case {
    std::string what, arguments, errnoName;
  };
  std::vector<Case> cases = {
      {"missing netns", "attach --netns /run/netns/" + node_->container(99), "ENOENT"},
      {"missing pid", "attach --pid " + std::to_string(freePid), "ENOENT"},
      {"attached twice", "attach --netns " + node_->containerPath(1), "EEXIST"},
      {"missing ifname", "attach --netns " + node_->containerPath(4) + " --ifname nope0", "ENOENT"},
      {"a bridge", "attach --netns " + node_->containerPath(4) + " --ifname br9", "EINVAL"},
      {"veth within the netns", "attach --netns " + node_->containerPath(4) + " --ifname va", "EOPNOTSUPP"},
      {"routed host end with a multipath route",
       "attach --netns " + node_->containerPath(4) + " --ifname ro0", "EOPNOTSUPP"},
      {"the host's own netns", "attach --netns /run/netns/" + node_->node(), "EINVAL"},
      {"vgate's own netns", "attach --netns " + (node_->stateDir() / "netns").string(), "EINVAL"},
  };
  if (haveDummy)
    cases.push_back({"a dummy", "attach --netns " + node_->containerPath(4) + " --ifname dm0", "EINVAL"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto result = node_->ctl(c.arguments);
    EXPECT_EQ(result.exitCode, 1) << result.out;
    EXPECT_NE(result.out.find(c.errnoName), std::string::npos) << result.out;
    Json status = node_->status();
    ASSERT_TRUE(status.contains("ports")) << "vgated stopped answering";
    EXPECT_EQ(status["ports"].size(), 1u) << status["ports"].dump();
    EXPECT_EQ(node_->vgateLinks(), linksBefore);
    std::string nodeLinks = shOut(node_->inNode("ip -br link")).out;
    EXPECT_EQ(nodeLinks.find("vgi-"), std::string::npos) << nodeLinks;
    EXPECT_EQ(nodeLinks.find("vge-"), std::string::npos) << nodeLinks;
    EXPECT_NE(nodeLinks.find("vr4"), std::string::npos) << "the refused host end stays where it was";
  }
  // Still working after all that: c4's own veth to the bridge attaches.
  EXPECT_TRUE(node_->attach(4));
  EXPECT_EQ(node_->status()["ports"].size(), 2u);
}

}  // namespace
