// Policies applied in replay to the real and crafted captures: the deciding rule, first-match order across L7
// and L3/L4 rules, deny dropping from the packet that completed the decision, audit mode dropping nothing,
// and a bad policy replaying nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "support/vgated_test.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const fs::path kData = VGATE_TEST_DATA_DIR;

const char* kPolicy = R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: replay-test}
spec:
  mode: MODE
  default: allow
  rules:
    - name: allow-openssl12
      action: allow
      match:
        protocol: tcp
        tls: {sni: ["openssl12.vgate.test"]}
    - name: deny-4433
      action: deny
      match:
        protocol: tcp
        destination: {ports: ["4433"]}
    - name: deny-h2-under-vgate-test
      action: deny
      match:
        tls: {sni: ["*.vgate.test"], alpn: [h2]}
    - name: deny-admin
      action: deny
      match:
        http: {path: ["/admin/*"]}
    - name: log-quic
      action: log
      match: {protocol: udp, tls: {alpn: [h3]}}
)";

struct Replay {
  int exitCode;
  Json record;           // the first flow's
  uint64_t packets = 0;  // of every flow in the capture
  uint64_t denied;
  std::string err;
};

class ReplayPolicy : public vgate::testing::VgatedTest {
 protected:
  fs::path writePolicy(const std::string& mode, const std::string& text = kPolicy) {
    std::string document = std::regex_replace(text, std::regex("MODE"), mode);
    fs::path path = dir_ / ("policy-" + mode + ".yaml");
    std::ofstream(path) << document;
    return path;
  }

  Replay replay(const std::string& capture, const fs::path& policy) {
    auto run = vgated("replay --pcap " + (kData / "pcap" / (capture + ".pcap")).string() + " --policy " +
                      policy.string());
    Replay result{run.exitCode, Json(), 0, 0, run.err};
    for (const Json& record : vgate::testing::jsonLines(run.out)) {
      result.packets +=
          record["flow"]["pkts_toserver"].get<uint64_t>() + record["flow"]["pkts_toclient"].get<uint64_t>();
      if (result.record.is_null()) result.record = record;
    }
    std::smatch match;
    if (std::regex_search(result.err, match, std::regex("([0-9]+) packets denied"))) {
      result.denied = std::stoull(match[1]);
    }
    return result;
  }
};

struct Expectation {
  const char* capture;
  const char* action;
  const char* rule;  // nullptr: the default decided
  bool dropsPackets;
};

TEST_F(ReplayPolicy, EachFlowIsJudgedByTheFirstMatchingRule) {
  fs::path policy = writePolicy("enforce");
  const Expectation cases[] = {
      // L7 rule 0 is before the port rule, and matches: allowed though its port is denied.
      {"openssl_s_client_tls12", "allow", "allow-openssl12", false},
      // Held for rule 0's SNI, which does not match: the port rule decides once the ClientHello is in.
      {"curl_https_h1_tls12", "deny", "deny-4433", true},
      // SNI wildcard and ALPN together; the ClientHello arrives in 50 segments.
      {"crafted_split50", "deny", "deny-h2-under-vgate-test", true},
      {"chromium_https", "deny", "deny-h2-under-vgate-test", true},
      {"crafted_quic_initial_split", "log", "log-quic", false},
      // ALPN http/1.1 only: the h2 rule does not apply; no rule matches.
      {"curl_https_h1_tls13", "allow", nullptr, false},
      {"curl_http_plain", "deny", "deny-admin", true},
  };
  for (const auto& expected : cases) {
    SCOPED_TRACE(expected.capture);
    Replay run = replay(expected.capture, policy);
    ASSERT_EQ(run.exitCode, 0) << run.err;
    const Json& verdict = run.record["verdict"];
    EXPECT_EQ(verdict["action"], expected.action);
    if (expected.rule == nullptr) {
      EXPECT_TRUE(verdict["rule"].is_null()) << verdict;
    } else {
      EXPECT_EQ(verdict["rule"], expected.rule);
    }
    EXPECT_EQ(verdict["policy"], "replay-test");
    EXPECT_EQ(verdict["policy_version"], 1);
    EXPECT_EQ(verdict["mode"], "enforce");
    if (expected.dropsPackets) {
      // From the packet that completed the decision on: the handshake before it passed.
      EXPECT_GT(run.denied, 0u);
      EXPECT_LT(run.denied, run.packets);
    } else {
      EXPECT_EQ(run.denied, 0u);
    }
  }
}

TEST_F(ReplayPolicy, AuditModeRecordsWhatEnforceWouldDoAndDropsNothing) {
  Replay run = replay("crafted_split50", writePolicy("audit"));
  ASSERT_EQ(run.exitCode, 0) << run.err;
  EXPECT_EQ(run.record["verdict"]["action"], "deny");
  EXPECT_EQ(run.record["verdict"]["rule"], "deny-h2-under-vgate-test");
  EXPECT_EQ(run.record["verdict"]["mode"], "audit");
  EXPECT_EQ(run.denied, 0u);
}

TEST_F(ReplayPolicy, AnInvalidPolicyReplaysNothing) {
  fs::path policy =
      writePolicy("enforce", std::string(kPolicy) + "    - name: deny-4433\n      action: nope\n");
  Replay run = replay("crafted_split50", policy);
  EXPECT_EQ(run.exitCode, 2);
  EXPECT_TRUE(run.record.is_null());
  EXPECT_NE(run.err.find("duplicate rule name 'deny-4433'"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("nothing was replayed"), std::string::npos) << run.err;
}

// Appends an Ethernet/IPv4/ICMP frame (8 bytes of echo data after the ICMP header) as one pcap record.
void appendIcmpFrame(std::string& pcap, uint32_t second, uint8_t src, uint8_t dst, uint8_t type,
                     uint16_t id) {
  std::string frame = {0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00};
  std::string ip = {0x45, 0, 0, 36,
                    0,    1, 0, 0,
                    64,   1, 0, 0,
                    10,   0, 0, static_cast<char>(src),
                    10,   0, 0, static_cast<char>(dst)};
  std::string icmp = {static_cast<char>(type), 0, 0, 0, static_cast<char>(id >> 8),
                      static_cast<char>(id),   0, 1};
  icmp += std::string(8, 'x');
  auto checksum = [](std::string& bytes, size_t at) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < bytes.size(); i += 2)
      sum += static_cast<uint32_t>(static_cast<uint8_t>(bytes[i]) << 8 | static_cast<uint8_t>(bytes[i + 1]));
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    bytes[at] = static_cast<char>(~sum >> 8);
    bytes[at + 1] = static_cast<char>(~sum);
  };
  checksum(ip, 10);
  checksum(icmp, 2);
  frame += ip + icmp;
  auto le32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) pcap += static_cast<char>(v >> (8 * i));
  };
  le32(second);
  le32(0);
  le32(static_cast<uint32_t>(frame.size()));
  le32(static_cast<uint32_t>(frame.size()));
  pcap += frame;
}

// A rule on ICMP types, end to end: the worker gives the classifier the first packet's type.
TEST_F(ReplayPolicy, IcmpTypesDecideOnTheFirstPacketsType) {
  std::string pcap;
  for (uint32_t v : {0xa1b2c3d4u, 0x00040002u, 0u, 0u, 65535u, 1u}) {
    if (v == 0x00040002u) {  // version 2.4: two 16-bit fields
      pcap += std::string{2, 0, 4, 0};
      continue;
    }
    for (int i = 0; i < 4; ++i) pcap += static_cast<char>(v >> (8 * i));
  }
  appendIcmpFrame(pcap, 1, 1, 2, 8, 7);   // ping 10.0.0.1 -> 10.0.0.2
  appendIcmpFrame(pcap, 1, 2, 1, 0, 7);   // its reply
  appendIcmpFrame(pcap, 2, 1, 3, 13, 9);  // a timestamp request 10.0.0.1 -> 10.0.0.3
  fs::path capture = dir_ / "icmp.pcap";
  std::ofstream(capture, std::ios::binary) << pcap;
  fs::path policy = writePolicy("enforce", R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: icmp-test}
spec:
  mode: MODE
  default: allow
  rules:
    - name: no-ping
      action: deny
      match:
        protocol: icmp
        icmp: {types: [echo-request]}
)");
  auto run = vgated("replay --pcap " + capture.string() + " --policy " + policy.string());
  ASSERT_EQ(run.exitCode, 0) << run.err;
  std::map<std::string, Json> byDestination;
  for (const Json& record : vgate::testing::jsonLines(run.out)) byDestination[record["dest_ip"]] = record;
  ASSERT_EQ(byDestination.size(), 2u) << run.out;
  const Json& ping = byDestination["10.0.0.2"];
  EXPECT_EQ(ping["icmp_type"], 8) << ping;
  EXPECT_EQ(ping["verdict"]["action"], "deny") << ping;
  EXPECT_EQ(ping["verdict"]["rule"], "no-ping") << ping;
  const Json& timestamp = byDestination["10.0.0.3"];
  EXPECT_EQ(timestamp["icmp_type"], 13) << timestamp;
  EXPECT_EQ(timestamp["verdict"]["action"], "allow") << timestamp;
  EXPECT_TRUE(timestamp["verdict"]["rule"].is_null()) << timestamp;
  EXPECT_NE(run.err.find(" 2 packets denied"), std::string::npos) << run.err;
}

}  // namespace
