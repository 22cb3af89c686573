// Enforcement integrity, tried as an attacker in a container would: each test first runs its attempt on the
// plain bridge, where it must work (else the test proves nothing), then through vgated under a default-deny
// policy, where it must not, and checks the flow records and counters that say why.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "integration/integrity_tool.h"
#include "support/live_fixture.h"
#include "support/live_node.h"

namespace {

using vgate::testing::LiveNode;
using vgate::testing::shOut;
using vgate::testing::sleepMs;
using Json = nlohmann::json;

constexpr const char* kIntegrityPolicy = R"(apiVersion: vgate.io/v1
kind: Policy
metadata:
  name: integrity
spec:
  mode: enforce
  default: deny
  rules:
    - name: allow-icmp
      action: allow
      match: {protocol: icmp}
    - name: allow-icmpv6
      action: allow
      match: {protocol: icmpv6}
    - name: allow-udp-9002
      action: allow
      match: {protocol: udp, destination: {ports: ["9002"]}}
    - name: allow-tcp-7006
      action: allow
      match: {protocol: tcp, destination: {ports: ["7006"]}}
    - name: allow-sctp
      action: allow
      match: {protocol: sctp}
    - name: allow-ok-tls
      action: allow
      match:
        protocol: tcp
        destination: {ports: ["8443"]}
        tls: {sni: ["*.ok.example"]}
    - name: reject-tcp-7009
      action: reject
      match: {protocol: tcp, destination: {ports: ["7009"]}}
    - name: reject-udp-9009
      action: reject
      match: {protocol: udp, destination: {ports: ["9009"]}}
)";

class IntegrityLive : public vgate::testing::LiveFixture {
 protected:
  void SetUp() override {
    LiveFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::ofstream(toolPath()) << vgate::testing::kIntegrityTool;
    ASSERT_TRUE(node_->addContainer(1));
    ASSERT_TRUE(node_->addContainer(2));
  }

  std::string toolPath() const { return (node_->dir() / "integrity.py").string(); }
  std::string tool(int n, const std::string& arguments) const {
    std::string command = "/usr/bin/python3 " + toolPath() + " " + arguments;
    return n == 0 ? node_->inNode(command) : node_->in(n, command);
  }
  // Runs a tool mode in container n and returns its JSON line (null when it printed none).
  Json run(int n, const std::string& arguments) {
    auto result = shOut("timeout 60 " + tool(n, arguments));
    auto start = result.out.rfind("\n{");
    std::string line = result.out.substr(start == std::string::npos ? 0 : start + 1);
    Json parsed = Json::parse(line, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << arguments << ": " << result.out;
    return parsed.is_discarded() ? Json() : parsed;
  }
  // vgated under the integrity policy (plus `extra` options), both containers attached.
  void protect(const std::string& extra = "") {
    ASSERT_TRUE(node_->startVgated("--workers 2 --policy " + writePolicy(kIntegrityPolicy) + " " + extra));
    ASSERT_TRUE(node_->attach(1));
    ASSERT_TRUE(node_->attach(2));
  }
  // The records of c1's pair for flows from c1 to c2 (proto "TCP", "UDP", ...; port 0: any).
  std::vector<Json> recordsAtC1(const std::string& proto, int srcPort) {
    std::vector<Json> found;
    for (const Json& record : flowsOf(node_->flowLog(), proto, LiveNode::v4(1), srcPort, LiveNode::v4(2))) {
      if (record.contains("container") && record["container"]["name"] == "c1") found.push_back(record);
    }
    return found;
  }
  static uint64_t fastPathCounter(const Json& status, const char* name) {
    return status.value("fastPath", Json::object()).value(name, uint64_t{0});
  }
};

// A UDP datagram larger than the MTU: the kernel fragments it, and the fragments after the first carry no
// ports. Judged as the whole datagram: denied by its real port, and an allowed one arrives byte for byte.
TEST_F(IntegrityLive, FragmentedDatagramsAreJudgedByTheirRealPort) {
  std::string echo = "/usr/bin/python3 " + node_->toolPath();
  serve(2, echo + " serve-udp 9001", 9001, true);
  serve(2, echo + " serve-udp 9002", 9002, true);
  EXPECT_TRUE(run(1, "udp-big " + LiveNode::v4(2) + " 9001 41001 3000")["echoed"]) << "the bridge passes it";

  ASSERT_NO_FATAL_FAILURE(protect());
  EXPECT_FALSE(run(1, "udp-big " + LiveNode::v4(2) + " 9001 41002 3000")["echoed"]) << "port 9001 is denied";
  EXPECT_TRUE(run(1, "udp-big " + LiveNode::v4(2) + " 9002 41003 3000")["echoed"])
      << "port 9002 is allowed: the datagram, judged whole and cut again, arrives intact";
  Json status = node_->status();
  EXPECT_GT(sumWorkers(status, "fragmentsReassembled"), 0u) << status.dump();
  EXPECT_GT(sumWorkers(status, "fragmentsSent"), 0u) << status.dump();
  EXPECT_GT(fastPathCounter(status, "fragments"), 0u) << status.dump();
  ASSERT_EQ(node_->stopVgated(), 0);
  auto denied = recordsAtC1("UDP", 41002);
  ASSERT_FALSE(denied.empty());
  EXPECT_EQ(denied[0]["dest_port"], 9001);
  EXPECT_EQ(denied[0]["verdict"]["action"], "deny") << denied[0].dump();
  auto allowed = recordsAtC1("UDP", 41003);
  ASSERT_FALSE(allowed.empty());
  EXPECT_EQ(allowed[0]["verdict"]["rule"], "allow-udp-9002") << allowed[0].dump();
}

// A SYN behind an IPv6 destination options header (crafted with scapy) names its port past a header the
// fast path once did not walk; one behind a routing header with segments left would go on elsewhere.
TEST_F(IntegrityLive, Ipv6ExtensionHeadersDoNotHideAPort) {
  std::string echo = "/usr/bin/python3 " + node_->toolPath();
  serve(2, echo + " serve-tcp 7005", 7005);
  serve(2, echo + " serve-tcp 7006", 7006);
  std::string c2 = LiveNode::v6(2);
  EXPECT_TRUE(run(1, "syn-ext " + c2 + " 7005 42001 dstopts")["synack"]) << "the bridge passes it";

  ASSERT_NO_FATAL_FAILURE(protect());
  EXPECT_FALSE(run(1, "syn-ext " + c2 + " 7005 42002 dstopts")["synack"]) << "7005 is denied";
  EXPECT_TRUE(run(1, "syn-ext " + c2 + " 7006 42003 dstopts")["synack"]) << "7006 is allowed, options or not";
  EXPECT_FALSE(run(1, "syn-ext " + c2 + " 7006 42004 routing")["synack"]) << "segments left: dropped";
  Json status = node_->status();
  EXPECT_GT(fastPathCounter(status, "ipv6ExtensionsWalked"), 0u) << status.dump();
  EXPECT_GT(fastPathCounter(status, "routingHeaderDrops"), 0u) << status.dump();
}

// IP protocols other than TCP, UDP and ICMP are judged by protocol rules and the default: GRE falls to the
// default deny, SCTP has a rule allowing it.
TEST_F(IntegrityLive, OtherIpProtocolsAreJudged) {
  auto received = [&](int proto, const std::string& name) {
    std::string path = (node_->dir() / ("raw-" + name + ".json")).string();
    vgate::testing::Background listener(tool(2, "raw-listen " + std::to_string(proto) + " 3 " + path));
    for (int i = 0; i < 100 && !std::filesystem::exists(path + ".ready"); ++i) sleepMs(20);
    run(1, "raw-send " + LiveNode::v4(2) + " " + std::to_string(proto) + " 5");
    listener.wait(std::chrono::seconds(10));
    Json result = Json::parse(vgate::testing::fileText(path), nullptr, false);
    return result.is_discarded() ? -1 : result.value("received", -1);
  };
  EXPECT_EQ(received(47, "gre-bridge"), 5) << "the bridge passes GRE";

  ASSERT_NO_FATAL_FAILURE(protect());
  EXPECT_EQ(received(47, "gre"), 0) << "GRE falls to the default deny";
  EXPECT_EQ(received(132, "sctp"), 5) << "SCTP is allowed by its rule";
  Json status = node_->status();
  EXPECT_GT(fastPathCounter(status, "otherProtocols"), 0u) << status.dump();
  ASSERT_EQ(node_->stopVgated(), 0);
  bool greDenied = false;
  for (const Json& record : node_->flowLog()) {
    if (record.value("proto", "") == "47") greDenied = greDenied || record["verdict"]["action"] == "deny";
  }
  EXPECT_TRUE(greDenied) << "the GRE flow is logged as denied";
}

// After an allowed TLS connection ends with RST, a new connection from the same client port names a denied
// host: it is a new flow with its own verdict, not the old one's.
TEST_F(IntegrityLive, AReusedClientPortGetsANewVerdict) {
  serve(2, "/usr/bin/python3 " + node_->toolPath() + " serve-tls 8443 " + writeCertificate(), 8443);
  std::string c2 = LiveNode::v4(2);
  Json bridge = run(1, "tls-reuse " + c2 + " 8443 43001 www.ok.example www.evil.example");
  EXPECT_TRUE(bridge["first"]);
  EXPECT_TRUE(bridge["second"]) << "the bridge passes both";

  ASSERT_NO_FATAL_FAILURE(protect());
  Json through = run(1, "tls-reuse " + c2 + " 8443 43002 www.ok.example www.evil.example");
  EXPECT_TRUE(through["first"]) << through.dump();
  EXPECT_FALSE(through["second"]) << "the reused port's new connection is judged anew: " << through.dump();
  ASSERT_EQ(node_->stopVgated(), 0);
  auto records = recordsAtC1("TCP", 43002);
  ASSERT_EQ(records.size(), 2u) << "two connections, two flows";
  std::vector<std::string> actions;
  for (const Json& record : records) actions.push_back(record["verdict"]["action"].get<std::string>());
  std::sort(actions.begin(), actions.end());
  EXPECT_EQ(actions, (std::vector<std::string>{"allow", "deny"}));
}

// TCP Fast Open puts the ClientHello in the SYN: the SYN is judged by it before it is forwarded.
TEST_F(IntegrityLive, AClientHelloInAFastOpenSynIsJudged) {
  ASSERT_EQ(shOut(node_->in(1, "sysctl -qw net.ipv4.tcp_fastopen=5")).exitCode, 0);
  ASSERT_EQ(shOut(node_->in(2, "sysctl -qw net.ipv4.tcp_fastopen=1538")).exitCode, 0);  // 0x602: no cookie
  serve(2, "/usr/bin/python3 " + node_->toolPath() + " serve-tls 8443 " + writeCertificate(), 8443);
  std::string c2 = LiveNode::v4(2);
  auto passiveFastOpens = [&] {
    auto text = shOut(node_->in(2, "nstat -az TcpExtTCPFastOpenPassive")).out;
    auto at = text.find("TcpExtTCPFastOpenPassive");
    return at == std::string::npos ? -1L : std::stol(text.substr(at + 24));
  };
  long before = passiveFastOpens();
  EXPECT_TRUE(run(1, "tls-once " + c2 + " 8443 44001 www.evil.example tfo 3")["ok"])
      << "the bridge passes it";
  EXPECT_GT(passiveFastOpens(), before) << "the ClientHello rode the SYN";

  ASSERT_NO_FATAL_FAILURE(protect());
  EXPECT_FALSE(run(1, "tls-once " + c2 + " 8443 44002 www.evil.example tfo 3")["ok"]) << "denied in its SYN";
  EXPECT_TRUE(run(1, "tls-once " + c2 + " 8443 44003 www.ok.example tfo 5")["ok"]) << "allowed in its SYN";
  ASSERT_EQ(node_->stopVgated(), 0);
  auto denied = recordsAtC1("TCP", 44002);
  ASSERT_FALSE(denied.empty());
  EXPECT_EQ(denied[0]["verdict"]["action"], "deny") << denied[0].dump();
  EXPECT_EQ(denied[0]["tls"].value("sni", ""), "www.evil.example") << denied[0].dump();
}

// Idle handshakes take every inspection slot, then a denied name comes: with no slot it gets the policy's
// verdict without L7 facts (here the default deny), never a pass. A slow sender's slot times out in seconds.
TEST_F(IntegrityLive, ExhaustedOrStalledInspectionNeverFailsOpen) {
  serve(2, "/usr/bin/python3 " + node_->toolPath() + " serve-tls 8443 " + writeCertificate(), 8443);
  std::string c2 = LiveNode::v4(2);
  EXPECT_TRUE(run(1, "tls-slow " + c2 + " 8443 45001 www.ok.example 3")["serverHello"]) << "the bridge waits";

  ASSERT_NO_FATAL_FAILURE(protect("--inspection-slots 16 --inspection-timeout 2"));
  vgate::testing::Background idle(tool(1, "tls-idle " + c2 + " 8443 80 8"));
  sleepMs(1500);
  EXPECT_FALSE(run(1, "tls-once " + c2 + " 8443 45002 www.evil.example plain 3")["ok"])
      << "no slot: the default deny decides";
  Json status = node_->status();
  EXPECT_GT(sumWorkers(status, "exceptionNoSlot"), 0u) << status.dump();
  idle.kill();
  EXPECT_FALSE(run(1, "tls-slow " + c2 + " 8443 45003 www.ok.example 4")["serverHello"])
      << "a ClientHello slower than --inspection-timeout is decided without it";
  status = node_->status();
  EXPECT_GT(sumWorkers(status, "exceptionSlowHandshake"), 0u) << status.dump();
  EXPECT_TRUE(run(1, "tls-once " + c2 + " 8443 45004 www.ok.example plain 5")["ok"])
      << "slots come back: a prompt client is served";
}

// reject answers at once: a RST for TCP, port unreachable for UDP. An L7 deny resets the server, so a
// one-connection-at-a-time server is free for the next client at once.
TEST_F(IntegrityLive, RejectAnswersAndAnL7DenyResetsTheServer) {
  std::string echo = "/usr/bin/python3 " + node_->toolPath();
  serve(2, echo + " serve-tcp 7009", 7009);
  serve(2, echo + " serve-udp 9009", 9009, true);
  std::string serverLog = (node_->dir() / "one-at-a-time.jsonl").string();
  serve(2, "/usr/bin/python3 " + toolPath() + " serve-tls-one 8443 " + writeCertificate() + " " + serverLog,
        8443);
  std::string c2 = LiveNode::v4(2);
  EXPECT_EQ(run(1, "tcp-connect " + c2 + " 7009 3")["result"], "connected") << "the bridge connects";
  EXPECT_EQ(run(1, "udp-ask " + c2 + " 9009 2")["result"], "answered");
  EXPECT_TRUE(run(1, "tls-once " + c2 + " 8443 46001 www.evil.example plain 3")["ok"]) << "and serves evil";

  ASSERT_NO_FATAL_FAILURE(protect());
  Json tcp = run(1, "tcp-connect " + c2 + " 7009 5");
  EXPECT_EQ(tcp["result"], "refused") << tcp.dump();
  EXPECT_LT(tcp.value("seconds", 99.0), 1.0) << "at once, not at a timeout";
  Json udp = run(1, "udp-ask " + c2 + " 9009 3");
  EXPECT_EQ(udp["result"], "refused") << udp.dump();
  Json evil = run(1, "tls-once " + c2 + " 8443 46002 www.evil.example plain 3");
  EXPECT_FALSE(evil["ok"]) << evil.dump();
  Json ok = run(1, "tls-once " + c2 + " 8443 46003 www.ok.example plain 4");
  EXPECT_TRUE(ok["ok"]) << "the server was reset, not left waiting on the denied client: " << ok.dump();
  EXPECT_LT(ok.value("seconds", 99.0), 3.0) << ok.dump();
  std::string ends = vgate::testing::fileText(serverLog);
  EXPECT_NE(ends.find("\"reset\""), std::string::npos) << ends;
  Json status = node_->status();
  EXPECT_GE(sumWorkers(status, "resetsSent"), 2u) << status.dump();
  EXPECT_GE(sumWorkers(status, "unreachablesSent"), 1u) << status.dump();
}

}  // namespace
