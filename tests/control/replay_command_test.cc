// `vgated replay` driven as a user drives it: the real binary, its exit codes, its one-line errors, a clean
// stdout with --flow-log -, and exact records for traffic whose every byte the test wrote.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/vgated_test.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

using vgate::testing::CommandOutput;
using vgate::testing::readFile;

class ReplayCommand : public vgate::testing::VgatedTest {
 protected:
  static std::vector<Json> records(const std::string& text) { return vgate::testing::jsonLines(text); }
};

// Frames built byte by byte; checksums are left zero (vgate does not verify them, like a capture of offloaded
// traffic would show).
struct Frame {
  double time;
  std::vector<uint8_t> bytes;
};

void put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void put32(std::vector<uint8_t>& out, uint32_t value) {
  put16(out, static_cast<uint16_t>(value >> 16));
  put16(out, static_cast<uint16_t>(value));
}

std::vector<uint8_t> ethernet(uint16_t etherType) {
  std::vector<uint8_t> out = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
  put16(out, etherType);
  return out;
}

// Ethernet + IPv4 header (no options) for `l4Length` bytes of protocol `protocol`.
std::vector<uint8_t> ipv4Frame(const char* src, const char* dst, uint8_t protocol, size_t l4Length,
                               uint16_t id) {
  std::vector<uint8_t> out = ethernet(0x0800);
  out.insert(out.end(), {0x45, 0});
  put16(out, static_cast<uint16_t>(20 + l4Length));
  put16(out, id);
  out.insert(out.end(), {0x40, 0, 64, protocol, 0, 0});
  in_addr a{}, b{};
  inet_pton(AF_INET, src, &a);
  inet_pton(AF_INET, dst, &b);
  auto* pa = reinterpret_cast<uint8_t*>(&a.s_addr);
  auto* pb = reinterpret_cast<uint8_t*>(&b.s_addr);
  out.insert(out.end(), pa, pa + 4);
  out.insert(out.end(), pb, pb + 4);
  return out;
}

std::vector<uint8_t> tcpSegment(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
                                const std::string& payload = "") {
  std::vector<uint8_t> out;
  put16(out, sport);
  put16(out, dport);
  put32(out, seq);
  put32(out, ack);
  out.insert(out.end(), {0x50, flags, 0xff, 0xff, 0, 0, 0, 0});
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> ipv4Tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags,
                             uint32_t seq, uint32_t ack, const std::string& payload = "") {
  std::vector<uint8_t> segment = tcpSegment(sport, dport, flags, seq, ack, payload);
  std::vector<uint8_t> out = ipv4Frame(src, dst, IPPROTO_TCP, segment.size(), 1);
  out.insert(out.end(), segment.begin(), segment.end());
  return out;
}

std::vector<uint8_t> ipv4Udp(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                             size_t payload) {
  std::vector<uint8_t> out = ipv4Frame(src, dst, IPPROTO_UDP, 8 + payload, 2);
  put16(out, sport);
  put16(out, dport);
  put16(out, static_cast<uint16_t>(8 + payload));
  put16(out, 0);
  out.insert(out.end(), payload, 0x11);
  return out;
}

// An IPv6 frame carrying `l4` (a TCP header and payload); with fragmentOffset >= 0 it is one fragment of it:
// a fragment header (id 0x1234) right after the fixed header, `l4` being that fragment's share.
std::vector<uint8_t> ipv6Frame(const char* src, const char* dst, const std::vector<uint8_t>& l4,
                               int fragmentOffset = -1, bool moreFragments = false) {
  std::vector<uint8_t> out = ethernet(0x86dd);
  bool fragment = fragmentOffset >= 0;
  out.insert(out.end(), {0x60, 0, 0, 0});
  put16(out, static_cast<uint16_t>(l4.size() + (fragment ? 8 : 0)));
  out.push_back(fragment ? 44 : IPPROTO_TCP);
  out.push_back(64);
  in6_addr a{}, b{};
  inet_pton(AF_INET6, src, &a);
  inet_pton(AF_INET6, dst, &b);
  out.insert(out.end(), a.s6_addr, a.s6_addr + 16);
  out.insert(out.end(), b.s6_addr, b.s6_addr + 16);
  if (fragment) {
    out.insert(out.end(), {IPPROTO_TCP, 0});
    put16(out, static_cast<uint16_t>(fragmentOffset | (moreFragments ? 1 : 0)));
    put32(out, 0x1234);
  }
  out.insert(out.end(), l4.begin(), l4.end());
  return out;
}

void writePcap(const fs::path& path, const std::vector<Frame>& frames, int linkType = DLT_EN10MB) {
  pcap_t* dead = pcap_open_dead(linkType, 65535);
  pcap_dumper_t* dumper = pcap_dump_open(dead, path.c_str());
  ASSERT_NE(dumper, nullptr);
  for (const auto& frame : frames) {
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<time_t>(frame.time);
    header.ts.tv_usec =
        static_cast<suseconds_t>((frame.time - static_cast<double>(header.ts.tv_sec)) * 1e6 + 0.5);
    header.caplen = header.len = static_cast<bpf_u_int32>(frame.bytes.size());
    pcap_dump(reinterpret_cast<u_char*>(dumper), &header, frame.bytes.data());
  }
  pcap_dump_close(dumper);
  pcap_close(dead);
}

// A complete HTTP exchange, a UDP flow, and a TCP flow first seen at its SYN-ACK (the SYN was not captured).
std::vector<Frame> knownTraffic() {
  const std::string request =
      "GET /admin/x?y=1 HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nUser-Agent: t/1\r\n\r\n";
  const double t = 1700000000.25;
  return {
      {t + 0.0, ipv4Tcp("10.1.0.1", 40000, "10.1.0.2", 80, 0x02, 1000, 0)},
      {t + 0.1, ipv4Tcp("10.1.0.2", 80, "10.1.0.1", 40000, 0x12, 5000, 1001)},
      {t + 0.2, ipv4Tcp("10.1.0.1", 40000, "10.1.0.2", 80, 0x10, 1001, 5001)},
      {t + 0.3, ipv4Tcp("10.1.0.1", 40000, "10.1.0.2", 80, 0x18, 1001, 5001, request)},
      {t + 0.4, ipv4Tcp("10.1.0.2", 80, "10.1.0.1", 40000, 0x18, 5001,
                        1001 + static_cast<uint32_t>(request.size()), "HTTP/1.1 200 OK\r\n\r\n")},
      {t + 0.5,
       ipv4Tcp("10.1.0.1", 40000, "10.1.0.2", 80, 0x11, 1001 + static_cast<uint32_t>(request.size()), 5020)},
      {t + 0.6,
       ipv4Tcp("10.1.0.2", 80, "10.1.0.1", 40000, 0x11, 5020, 1002 + static_cast<uint32_t>(request.size()))},
      {t + 0.7, ipv4Udp("10.1.0.3", 5353, "10.1.0.4", 53, 30)},
      {t + 0.8, ipv4Udp("10.1.0.4", 53, "10.1.0.3", 5353, 100)},
      {t + 0.9, ipv4Tcp("10.1.0.6", 443, "10.1.0.5", 50000, 0x12, 7000, 9001)},
      {t + 1.0, ipv4Tcp("10.1.0.5", 50000, "10.1.0.6", 443, 0x14, 9001, 0)},
  };
}

TEST_F(ReplayCommand, RecordsAreExactForKnownTraffic) {
  auto frames = knownTraffic();
  writePcap(dir_ / "known.pcap", frames);
  CommandOutput run = vgated("replay --pcap " + (dir_ / "known.pcap").string() + " --flow-log -");
  ASSERT_EQ(run.exitCode, 0) << run.err;
  auto lines = records(run.out);
  ASSERT_EQ(lines.size(), 3u) << run.out;
  std::sort(lines.begin(), lines.end(),
            [](const Json& a, const Json& b) { return a["src_ip"] < b["src_ip"]; });

  const Json& http = lines[0];
  EXPECT_EQ(http["src_ip"], "10.1.0.1");
  EXPECT_EQ(http["src_port"], 40000);
  EXPECT_EQ(http["dest_ip"], "10.1.0.2");
  EXPECT_EQ(http["dest_port"], 80);
  EXPECT_EQ(http["proto"], "TCP");
  EXPECT_EQ(http["app_proto"], "http");
  EXPECT_EQ(http["flow"]["pkts_toserver"], 4);
  EXPECT_EQ(http["flow"]["pkts_toclient"], 3);
  size_t toServer =
      frames[0].bytes.size() + frames[2].bytes.size() + frames[3].bytes.size() + frames[5].bytes.size();
  size_t toClient = frames[1].bytes.size() + frames[4].bytes.size() + frames[6].bytes.size();
  EXPECT_EQ(http["flow"]["bytes_toserver"], toServer);
  EXPECT_EQ(http["flow"]["bytes_toclient"], toClient);
  EXPECT_EQ(http["flow"]["start"], "2023-11-14T22:13:20.250000+0000");
  EXPECT_EQ(http["flow"]["end"], "2023-11-14T22:13:20.850000+0000");
  EXPECT_EQ(http["flow"]["state"], "closed");
  EXPECT_EQ(http["flow"]["reason"], "fin");
  EXPECT_EQ(http["http"]["hostname"], "www.example.com");
  EXPECT_EQ(http["http"]["url"], "/admin/x?y=1");
  EXPECT_EQ(http["http"]["http_method"], "GET");
  EXPECT_EQ(http["http"]["http_user_agent"], "t/1");
  EXPECT_EQ(http["verdict"]["action"], "allow");
  EXPECT_TRUE(http["verdict"]["rule"].is_null());

  const Json& udp = lines[1];
  EXPECT_EQ(udp["src_ip"], "10.1.0.3");
  EXPECT_EQ(udp["dest_port"], 53);
  EXPECT_EQ(udp["flow"]["pkts_toserver"], 1);
  EXPECT_EQ(udp["flow"]["pkts_toclient"], 1);
  EXPECT_EQ(udp["flow"]["bytes_toserver"], 14 + 28 + 30);
  EXPECT_EQ(udp["flow"]["bytes_toclient"], 14 + 28 + 100);
  EXPECT_EQ(udp["flow"]["state"], "established");
  EXPECT_EQ(udp["flow"]["reason"], "end_of_input");

  // First seen at the server's SYN-ACK: the client is still the side that opened it, and its RST closes it.
  const Json& midstream = lines[2];
  EXPECT_EQ(midstream["src_ip"], "10.1.0.5");
  EXPECT_EQ(midstream["src_port"], 50000);
  EXPECT_EQ(midstream["dest_port"], 443);
  EXPECT_EQ(midstream["flow"]["pkts_toserver"], 1);
  EXPECT_EQ(midstream["flow"]["pkts_toclient"], 1);
  EXPECT_EQ(midstream["flow"]["reason"], "rst");
}

TEST_F(ReplayCommand, Ipv6FragmentsAreReassembledAndCountedAsTheirFrames) {
  const char* client = "fd00:1::1";
  const char* server = "fd00:1::2";
  const std::string request = "GET /v6/fragmented HTTP/1.1\r\nHost: frag6.example\r\n\r\n";
  std::vector<uint8_t> segment = tcpSegment(40100, 80, 0x18, 101, 501, request);
  // Fragment data lengths must be multiples of 8 except the last: split after 24 bytes (20 TCP + 4 payload).
  std::vector<uint8_t> first(segment.begin(), segment.begin() + 24);
  std::vector<uint8_t> second(segment.begin() + 24, segment.end());
  const double t = 1700000100.0;
  std::vector<Frame> frames = {
      {t + 0.0, ipv6Frame(client, server, tcpSegment(40100, 80, 0x02, 100, 0))},
      {t + 0.1, ipv6Frame(server, client, tcpSegment(80, 40100, 0x12, 500, 101))},
      {t + 0.2, ipv6Frame(client, server, tcpSegment(40100, 80, 0x10, 101, 501))},
      // The second fragment arrives first.
      {t + 0.3, ipv6Frame(client, server, second, 24, false)},
      {t + 0.4, ipv6Frame(client, server, first, 0, true)},
      {t + 0.5, ipv6Frame(server, client, tcpSegment(80, 40100, 0x14, 501, 0))},
  };
  writePcap(dir_ / "frag6.pcap", frames);
  CommandOutput run = vgated("replay --pcap " + (dir_ / "frag6.pcap").string());
  ASSERT_EQ(run.exitCode, 0) << run.err;
  auto lines = records(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  const Json& flow = lines[0];
  EXPECT_EQ(flow["src_ip"], client);
  EXPECT_EQ(flow["src_port"], 40100);
  EXPECT_EQ(flow["app_proto"], "http");
  EXPECT_EQ(flow["http"]["hostname"], "frag6.example");
  EXPECT_EQ(flow["http"]["url"], "/v6/fragmented");
  // Both fragment frames count, at their own sizes, not as one reassembled datagram.
  EXPECT_EQ(flow["flow"]["pkts_toserver"], 4);
  EXPECT_EQ(flow["flow"]["bytes_toserver"], frames[0].bytes.size() + frames[2].bytes.size() +
                                                frames[3].bytes.size() + frames[4].bytes.size());
  EXPECT_EQ(flow["flow"]["reason"], "rst");
}

TEST_F(ReplayCommand, WorkerCountDoesNotChangeTheRecords) {
  writePcap(dir_ / "known.pcap", knownTraffic());
  auto normalized = [&](const std::string& workers) {
    CommandOutput run = vgated("replay --pcap " + (dir_ / "known.pcap").string() + " --workers " + workers);
    EXPECT_EQ(run.exitCode, 0) << run.err;
    std::vector<std::string> lines;
    for (Json line : records(run.out)) {
      line.erase("flow_id");  // ids carry the worker's number
      lines.push_back(line.dump());
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  };
  auto one = normalized("1");
  EXPECT_EQ(one.size(), 3u);
  EXPECT_EQ(one, normalized("3"));
}

TEST_F(ReplayCommand, FlowLogFileIsAppendedAndStdoutStaysEmpty) {
  writePcap(dir_ / "known.pcap", knownTraffic());
  std::string log = (dir_ / "flows.json").string();
  ASSERT_EQ(vgated("replay --pcap " + (dir_ / "known.pcap").string() + " --flow-log " + log).exitCode, 0);
  CommandOutput second = vgated("replay --pcap=" + (dir_ / "known.pcap").string() + " --flow-log=" + log);
  ASSERT_EQ(second.exitCode, 0) << second.err;
  EXPECT_EQ(second.out, "");
  EXPECT_EQ(records(readFile(log)).size(), 6u);
}

TEST_F(ReplayCommand, PathWithACommaWorks) {
  writePcap(dir_ / "a,b.pcap", knownTraffic());
  CommandOutput run = vgated("replay --pcap '" + (dir_ / "a,b.pcap").string() + "'");
  EXPECT_EQ(run.exitCode, 0) << run.err;
  EXPECT_EQ(records(run.out).size(), 3u);
}

TEST_F(ReplayCommand, EmptyCaptureGivesNoRecords) {
  writePcap(dir_ / "empty.pcap", {});
  CommandOutput run = vgated("replay --pcap " + (dir_ / "empty.pcap").string());
  EXPECT_EQ(run.exitCode, 0) << run.err;
  EXPECT_EQ(run.out, "");
}

struct BadInput {
  const char* name;
  std::string arguments;  // {dir} is replaced by the test's directory
  const char* message;    // the one line on stderr contains this
};

class ReplayBadInput : public ReplayCommand, public ::testing::WithParamInterface<BadInput> {};

TEST_P(ReplayBadInput, ExitsTwoWithOneLineNamingTheProblem) {
  writePcap(dir_ / "good.pcap", knownTraffic());
  writePcap(dir_ / "raw.pcap", {{1.0, {0x45, 0, 0, 20}}}, DLT_RAW);
  std::ofstream(dir_ / "garbage.pcap") << "this is not a capture file at all, not even close";
  std::string good = readFile(dir_ / "good.pcap");
  std::ofstream(dir_ / "truncated.pcap", std::ios::binary) << good.substr(0, good.size() - 7);
  std::string arguments = GetParam().arguments;
  for (size_t at; (at = arguments.find("{dir}")) != std::string::npos;)
    arguments.replace(at, 5, dir_.string());
  CommandOutput run = vgated(arguments);
  EXPECT_EQ(run.exitCode, 2) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(GetParam().message), std::string::npos) << run.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReplayBadInput,
    ::testing::Values(
        BadInput{"NoPcap", "replay", "missing --pcap FILE"},
        BadInput{"MissingFile", "replay --pcap {dir}/nope.pcap", "no such capture file"},
        BadInput{"Garbage", "replay --pcap {dir}/garbage.pcap", "cannot read capture"},
        BadInput{"Truncated", "replay --pcap {dir}/truncated.pcap", "is corrupt after packet 10"},
        BadInput{"NotEthernet", "replay --pcap {dir}/raw.pcap", "only Ethernet"},
        BadInput{"ZeroWorkers", "replay --pcap {dir}/good.pcap --workers 0", "--workers must be"},
        BadInput{"WordWorkers", "replay --pcap {dir}/good.pcap --workers two", "--workers must be"},
        BadInput{"TooManyWorkers", "replay --pcap {dir}/good.pcap --workers 65", "--workers must be"},
        BadInput{"UnknownOption", "replay --pcap {dir}/good.pcap --speed 2", "unknown option --speed"},
        BadInput{"Twice", "replay --pcap {dir}/good.pcap --pcap {dir}/good.pcap", "given twice"},
        BadInput{"NoValue", "replay --pcap", "needs a value"},
        BadInput{"BadLogDir", "replay --pcap {dir}/good.pcap --flow-log /nonexistent/x.json",
                 "cannot open flow log"},
        BadInput{"UnknownCommand", "frobnicate", "unknown command 'frobnicate'"}),
    [](const auto& test) { return std::string(test.param.name); });

}  // namespace
