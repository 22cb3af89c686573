// A flow record as a user reads it: EVE field names, client as src, exact counters and times, L7 objects.
#include "control/flowlog/flow_log_format.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "control/flowlog/flow_log_writer.h"
#include "support/eve_dom_format.h"
#include "support/random_flow_records.h"

namespace vgate::control {
namespace {

FlowEndRecord tlsRecord() {
  FlowEndRecord record;
  record.ipVersion = 4;
  record.protocol = IPPROTO_TCP;
  const uint8_t client[4] = {128, 232, 110, 120};
  const uint8_t server[4] = {66, 35, 250, 204};
  std::memcpy(record.srcAddr, client, 4);
  std::memcpy(record.dstAddr, server, 4);
  record.srcPort = 34855;
  record.dstPort = 80;
  record.flowId = 42;
  record.startUs = 1071580904891921;  // 2003-12-16T13:21:44.891921Z
  record.endUs = 1071580907037333;
  record.pkts[kToServer] = 5;
  record.pkts[kToClient] = 4;
  record.bytes[kToServer] = 338;
  record.bytes[kToClient] = 272;
  record.tcpFlags[kToServer] = 0x1b;
  record.tcpFlags[kToClient] = 0x1b;
  record.state = FlowState::kClosed;
  record.reason = FlowEndReason::kFin;
  record.appProto = AppProto::kTls;
  record.hasMetadata = true;
  return record;
}

TEST(FlowLogFormat, TimestampsAreEveFormatInUtc) {
  EXPECT_EQ(formatEveTimestamp(1071580904891921), "2003-12-16T13:21:44.891921+0000");
  EXPECT_EQ(formatEveTimestamp(0), "1970-01-01T00:00:00.000000+0000");
}

TEST(FlowLogFormat, FlowRecordCarriesEveFieldsAndNullVerdictRuleWithoutPolicy) {
  auto line = nlohmann::json::parse(formatFlowRecord(tlsRecord(), {}, PolicyNames{}));
  EXPECT_EQ(line["timestamp"], "2003-12-16T13:21:47.037333+0000");
  EXPECT_EQ(line["flow_id"], 42);
  EXPECT_EQ(line["event_type"], "flow");
  EXPECT_EQ(line["src_ip"], "128.232.110.120");
  EXPECT_EQ(line["src_port"], 34855);
  EXPECT_EQ(line["dest_ip"], "66.35.250.204");
  EXPECT_EQ(line["dest_port"], 80);
  EXPECT_EQ(line["proto"], "TCP");
  EXPECT_EQ(line["app_proto"], "tls");
  EXPECT_EQ(line["community_id"], "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
  EXPECT_EQ(line["flow"]["pkts_toserver"], 5);
  EXPECT_EQ(line["flow"]["pkts_toclient"], 4);
  EXPECT_EQ(line["flow"]["bytes_toserver"], 338);
  EXPECT_EQ(line["flow"]["bytes_toclient"], 272);
  EXPECT_EQ(line["flow"]["start"], "2003-12-16T13:21:44.891921+0000");
  EXPECT_EQ(line["flow"]["end"], "2003-12-16T13:21:47.037333+0000");
  EXPECT_EQ(line["flow"]["age"], 2);
  EXPECT_EQ(line["flow"]["state"], "closed");
  EXPECT_EQ(line["flow"]["reason"], "fin");
  EXPECT_EQ(line["tcp"]["tcp_flags"], "1b");
  EXPECT_EQ(line["tcp"]["syn"], true);
  EXPECT_FALSE(line["tcp"].contains("rst"));
  EXPECT_EQ(line["verdict"]["action"], "allow");
  EXPECT_TRUE(line["verdict"]["rule"].is_null());
  EXPECT_FALSE(line.contains("vlan"));
}

TEST(FlowLogFormat, WriterJoinsMetadataToItsFlowAndForgetsIt) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  ASSERT_NE(out, nullptr);
  {
    FlowLogWriter writer(out);
    FlowMetadataRecord metadata;
    metadata.flowId = 42;
    metadata.appProto = AppProto::kTls;
    metadata.tls.present = true;
    metadata.tls.version = 0x0304;
    std::strcpy(metadata.tls.sni, "www.example.com");
    metadata.tls.alpnCount = 2;
    std::strcpy(metadata.tls.alpn[0], "h2");
    std::strcpy(metadata.tls.alpn[1], "http/1.1");
    std::strcpy(metadata.tls.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    writer.onMetadata(metadata);
    writer.flush();  // counters are published at each flush
    EXPECT_EQ(writer.counters().metadataPending, 1u);
    FlowEndRecord record = tlsRecord();
    record.vlanCount = 2;
    record.vlanIds[0] = 100;
    record.vlanIds[1] = 200;
    writer.onEnd(record);
    record.flowId = 43;  // no metadata for this one
    writer.onEnd(record);
    writer.flush();
    EXPECT_EQ(writer.counters().recordsWritten, 2u);
    EXPECT_EQ(writer.counters().metadataPending, 0u);
  }
  std::fclose(out);
  std::string text(buffer, size);
  free(buffer);
  auto newline = text.find('\n');
  ASSERT_NE(newline, std::string::npos);
  auto first = nlohmann::json::parse(text.substr(0, newline));
  auto second = nlohmann::json::parse(text.substr(newline + 1));
  EXPECT_EQ(first["tls"]["sni"], "www.example.com");
  EXPECT_EQ(first["tls"]["version"], "TLS 1.3");
  EXPECT_EQ(first["tls"]["alpn"], nlohmann::json::array({"h2", "http/1.1"}));
  EXPECT_EQ(first["tls"]["ja4"], "t13d1516h2_8daaf6152771_e5627efa2ab1");
  EXPECT_EQ(first["vlan"], nlohmann::json::array({100, 200}));
  EXPECT_FALSE(second.contains("tls"));
}

TEST(FlowLogFormat, NonUtf8SniStaysValidJson) {
  FlowMetadataRecord metadata;
  metadata.tls.present = true;
  std::strcpy(metadata.tls.sni, "bad\xff\xfe.example");
  std::string line = formatFlowRecord(tlsRecord(), formatMetadata(metadata), PolicyNames{});
  auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["tls"]["sni"], "bad\xef\xbf\xbd\xef\xbf\xbd.example");
}

TEST(FlowLogFormat, IcmpHasTypeAndCodeInsteadOfPorts) {
  FlowEndRecord record;
  record.ipVersion = 4;
  record.protocol = IPPROTO_ICMP;
  const uint8_t a[4] = {192, 168, 0, 89}, b[4] = {192, 168, 0, 1};
  std::memcpy(record.srcAddr, a, 4);
  std::memcpy(record.dstAddr, b, 4);
  record.icmpType = 8;
  auto line = nlohmann::json::parse(formatFlowRecord(record, {}, PolicyNames{}));
  EXPECT_FALSE(line.contains("src_port"));
  EXPECT_EQ(line["icmp_type"], 8);
  EXPECT_EQ(line["icmp_code"], 0);
  EXPECT_EQ(line["proto"], "ICMP");
  EXPECT_EQ(line["community_id"], "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
}

}  // namespace
}  // namespace vgate::control

namespace vgate::control {
namespace {

TEST(FlowLogWriter, RulesAreNamedByThePolicyVersionThatJudgedTheFlow) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  ASSERT_NE(out, nullptr);
  {
    FlowLogWriter writer(out);
    writer.setPolicyNames({true, 1, "p", {"old-first", "old-second"}});
    writer.setPolicyNames({true, 2, "p", {"new-first"}});
    FlowEndRecord record = tlsRecord();
    record.hasMetadata = false;
    record.action = VerdictAction::kDeny;
    record.ruleId = 1;
    record.policyVersion = 1;  // judged before the swap
    writer.onEnd(record);
    record.ruleId = 0;
    record.policyVersion = 2;
    writer.onEnd(record);
    record.policyVersion = 0;  // judged with no policy at all
    record.decidedAtEnd = true;
    writer.onEnd(record);
    writer.flush();
  }
  std::fclose(out);
  std::istringstream lines(std::string(buffer, size));
  free(buffer);
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["verdict"]["rule"], "old-second");
  EXPECT_EQ(records[0]["verdict"]["policy_version"], 1);
  EXPECT_EQ(records[1]["verdict"]["rule"], "new-first");
  EXPECT_EQ(records[1]["verdict"]["policy_version"], 2);
  EXPECT_TRUE(records[2]["verdict"]["policy"].is_null());
  EXPECT_EQ(records[1]["verdict"]["decided_at_end"], false);
  EXPECT_EQ(records[2]["verdict"]["decided_at_end"], true);
}

}  // namespace
}  // namespace vgate::control

namespace vgate::control {
namespace {

// The streaming formatter against the DOM one it replaced, byte for byte, on randomized records of every
// kind: strings with escapes, multi-byte UTF-8 and invalid bytes, v4/v6, ICMP, metadata, policies, ports.
TEST(FlowLogFormat, StreamingLinesAreByteIdenticalToTheDomFormatter) {
  testing::RandomFlowRecords random(20261124);
  auto policies = random.policies();
  size_t withMetadata = 0, withPort = 0, v6 = 0, icmp = 0, ruled = 0;
  std::string line;
  for (int i = 0; i < 20000; ++i) {
    FlowEndRecord record = random.record();
    bool metadataGiven = random.chance(50);
    FlowMetadataRecord metadata = random.metadata(record.flowId);
    nlohmann::ordered_json dom = testing::dom::formatMetadata(metadata);
    std::string members = formatMetadata(metadata);
    PolicyNames none;
    const PolicyNames& policy =
        record.policyVersion == 0 || random.chance(10) ? none : policies[record.policyVersion - 1];
    PortIdentity port = random.port(record.portPair);
    bool portGiven = record.portPair != 0 && random.chance(80);
    std::string expected = testing::dom::formatFlowRecord(record, metadataGiven ? &dom : nullptr, policy,
                                                          portGiven ? &port : nullptr);
    line.clear();
    appendFlowRecord(line, record, metadataGiven ? std::string_view(members) : std::string_view(), policy,
                     portGiven ? &port : nullptr);
    ASSERT_EQ(line, expected) << "record " << i;
    withMetadata += metadataGiven && !dom.empty();
    withPort += portGiven;
    v6 += record.ipVersion == 6;
    icmp += record.protocol == IPPROTO_ICMP || record.protocol == IPPROTO_ICMPV6;
    ruled += policy.loaded && record.ruleId < policy.ruleNames.size();
  }
  // The mix really covered each kind.
  EXPECT_GT(withMetadata, 5000u);
  EXPECT_GT(withPort, 3000u);
  EXPECT_GT(v6, 3000u);
  EXPECT_GT(icmp, 2000u);
  EXPECT_GT(ruled, 2000u);
}

TEST(FlowLogFormat, StringsEscapeAsNlohmannDumpsThem) {
  testing::RandomFlowRecords random(7);
  std::vector<std::string> cases = {"",
                                    "plain",
                                    "\"\\/\b\f\n\r\t",
                                    std::string("\0x", 2),
                                    "\x7f",
                                    "\xff",
                                    "\xc3",
                                    "\xe2\x82",
                                    "a\xe2\x82z",
                                    "\xed\xa0\x80",
                                    "\xf4\x90\x80\x80",
                                    "\xc0\xaf",
                                    "\xe0\x80\xaf",
                                    "\xf0\x9f\x98\x80"};
  for (int i = 0; i < 100000; ++i) cases.push_back(random.text(40, true));
  std::string out;
  for (const std::string& text : cases) {
    out.clear();
    appendJsonString(out, text);
    ASSERT_EQ(out, nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << nlohmann::json(text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  }
}

TEST(FlowLogFormat, TimestampsMatchGmtime) {
  testing::RandomFlowRecords random(11);
  std::vector<uint64_t> cases = {0,
                                 1,
                                 999999,
                                 1000000,
                                 951782400000000 /* 2000-02-29 */,
                                 4107542399999999 /* 2100-02-28T23:59:59 */,
                                 253402300799999999,
                                 253402300800000000 /* year 10000 */,
                                 UINT64_MAX};
  for (int i = 0; i < 100000; ++i) cases.push_back(random.any64() >> random.below(20));
  for (uint64_t us : cases) ASSERT_EQ(formatEveTimestamp(us), testing::dom::formatEveTimestamp(us)) << us;
}

}  // namespace
}  // namespace vgate::control
