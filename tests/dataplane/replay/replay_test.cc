// Tests of offline replay: checkCapture on missing, foreign, truncated, non-Ethernet and good files, and one
// runReplay of committed captures through two workers under a hand-built policy (EAL starts once a process).
#include "dataplane/replay/replay.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

namespace vgate::dataplane {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

const fs::path kCaptures = fs::path(VGATE_TEST_DATA_DIR) / "pcap";
const fs::path kCurlCapture = kCaptures / "curl_https_h1_tls13.pcap";
constexpr uint64_t kCurlPackets = 23;  // tcpdump -r counts the same
constexpr size_t kFileHeaderBytes = 24;
constexpr size_t kRecordHeaderBytes = 16;

Bytes readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint32_t littleEndian32(const Bytes& bytes, size_t at) {
  return bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | static_cast<uint32_t>(bytes[at + 3]) << 24;
}

void putLittleEndian32(Bytes& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

// Where each packet record of a little-endian microsecond pcap ends, walked by hand (not with libpcap).
std::vector<size_t> recordEnds(const Bytes& capture) {
  std::vector<size_t> ends;
  EXPECT_EQ(littleEndian32(capture, 0), 0xa1b2c3d4u) << "not a little-endian microsecond pcap";
  size_t at = kFileHeaderBytes;
  while (at + kRecordHeaderBytes <= capture.size()) {
    at += kRecordHeaderBytes + littleEndian32(capture, at + 8);  // incl_len
    if (at > capture.size()) break;
    ends.push_back(at);
  }
  return ends;
}

// A pcap file header: version 2.4, snaplen 65535, the given link type.
Bytes fileHeader(uint32_t linkType) {
  Bytes header = {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
  header.resize(header.size() + 4);
  putLittleEndian32(header, header.size() - 4, linkType);
  return header;
}

// A file in a fresh temporary directory, removed with it.
class TempFile {
 public:
  explicit TempFile(const Bytes& contents) {
    char pattern[] = "/tmp/vgate-replay-test-XXXXXX";
    EXPECT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
    path_ = directory_ / "capture.pcap";
    std::ofstream(path_, std::ios::binary)
        .write(reinterpret_cast<const char*>(contents.data()), static_cast<std::streamsize>(contents.size()));
  }
  ~TempFile() { fs::remove_all(directory_); }
  std::string path() const { return path_.string(); }

 private:
  fs::path directory_;
  fs::path path_;
};

TEST(CheckCapture, MissingFileIsEnoentAndNamed) {
  const std::string path = "/nonexistent/vgate-no-such.pcap";
  auto result = checkCapture(path);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ENOENT);
  EXPECT_NE(result.error().message.find(path), std::string::npos) << result.error().message;
}

TEST(CheckCapture, FileThatIsNoCaptureIsInvalid) {
  const std::string text = "this is a text file, not a packet capture\n";
  TempFile file(Bytes(text.begin(), text.end()));
  auto result = checkCapture(file.path());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, EINVAL);
  EXPECT_NE(result.error().message.find(file.path()), std::string::npos) << result.error().message;
}

TEST(CheckCapture, OtherLinkTypesAreRefused) {
  TempFile file(fileHeader(101));  // LINKTYPE_RAW: IP packets without an Ethernet header
  auto result = checkCapture(file.path());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, EINVAL);
  EXPECT_NE(result.error().message.find("RAW"), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find("only Ethernet"), std::string::npos) << result.error().message;
}

TEST(CheckCapture, HeaderOnlyEthernetCaptureHasNoPackets) {
  TempFile file(fileHeader(1));
  auto result = checkCapture(file.path());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result.value(), 0u);
}

// Cuts the capture `cutInto` bytes into the record after `wholePackets` whole ones.
struct Truncation {
  size_t wholePackets;
  size_t cutInto;  // < 16: inside the record header; more: inside the packet data
};

void PrintTo(const Truncation& t, std::ostream* out) {
  *out << t.wholePackets << " whole packets, then " << t.cutInto << " bytes";
}

class TruncatedCapture : public ::testing::TestWithParam<Truncation> {};

TEST_P(TruncatedCapture, IsCorruptAfterTheLastWholePacket) {
  const Bytes capture = readFile(kCurlCapture);
  const std::vector<size_t> ends = recordEnds(capture);
  ASSERT_EQ(ends.size(), kCurlPackets);
  const Truncation& t = GetParam();
  const size_t start = t.wholePackets == 0 ? kFileHeaderBytes : ends[t.wholePackets - 1];
  ASSERT_LT(start + t.cutInto, ends[t.wholePackets]);
  TempFile file(Bytes(capture.begin(), capture.begin() + static_cast<std::ptrdiff_t>(start + t.cutInto)));
  auto result = checkCapture(file.path());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, EINVAL);
  const std::string expected = "corrupt after packet " + std::to_string(t.wholePackets) + ":";
  EXPECT_NE(result.error().message.find(expected), std::string::npos) << result.error().message;
}

INSTANTIATE_TEST_SUITE_P(Cuts, TruncatedCapture,
                         ::testing::Values(Truncation{0, 8}, Truncation{5, 20}, Truncation{22, 17}),
                         [](const auto& test) {
                           return "After" + std::to_string(test.param.wholePackets) + "Cut" +
                                  std::to_string(test.param.cutInto);
                         });

std::vector<std::string> committedCaptures() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kCaptures)) {
    if (entry.path().extension() == ".pcap") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class GoodCapture : public ::testing::TestWithParam<std::string> {};

TEST_P(GoodCapture, CountsEveryPacket) {
  const fs::path path = kCaptures / GetParam();
  auto result = checkCapture(path.string());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result.value(), recordEnds(readFile(path)).size());
}

INSTANTIATE_TEST_SUITE_P(Committed, GoodCapture, ::testing::ValuesIn(committedCaptures()),
                         [](const auto& test) {
                           std::string name = fs::path(test.param).stem().string();
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

class CollectingSink : public RecordSink {
 public:
  void onMetadata(const FlowMetadataRecord& metadata) override { metadata_.push_back(metadata); }
  void onEnd(const FlowEndRecord& record) override { ends_.push_back(record); }
  std::vector<FlowMetadataRecord> metadata_;
  std::vector<FlowEndRecord> ends_;
};

std::vector<uint64_t> counterValues(const WorkerCounters& counters) {
  std::vector<uint64_t> values;
  counters.forEach([&values](const CounterInfo&, uint64_t value) { values.push_back(value); });
  return values;
}

// TCP flows to port 443, each from its own client address, over IPv4, IPv6 and VLANs: the dispatch hash mixes
// the XOR of the addresses, the IP version and the VLAN ids, and the IPv4 pairs all XOR alike, so the IPv6
// and tagged flows are what reaches the second worker.
const char* const kMergedCaptures[] = {
    "curl_https_h1_tls13.pcap", "crafted_split2.pcap",     "crafted_reordered.pcap",
    "crafted_two_records.pcap", "crafted_bank_sni.pcap",   "crafted_bank_apex.pcap",
    "curl_https_ipv6.pcap",     "crafted_vlan_8021q.pcap", "crafted_qinq.pcap"};

// The records of kMergedCaptures one after the other under one file header, restamped 1 ms apart: the
// workers' clock follows the capture, and a clock going back would end closed flows before their last ACK.
Bytes mergedCapture() {
  Bytes merged = fileHeader(1);
  uint32_t packet = 0;
  for (const char* name : kMergedCaptures) {
    const Bytes capture = readFile(kCaptures / name);
    size_t start = kFileHeaderBytes;
    for (size_t end : recordEnds(capture)) {
      const size_t at = merged.size();
      merged.insert(merged.end(), capture.begin() + static_cast<std::ptrdiff_t>(start),
                    capture.begin() + static_cast<std::ptrdiff_t>(end));
      putLittleEndian32(merged, at, 1'700'000'000);        // ts_sec
      putLittleEndian32(merged, at + 4, 1000 * packet++);  // ts_usec
      start = end;
    }
  }
  return merged;
}

// The only runReplay of this program: EAL cannot start twice in a process.
TEST(Replay, TwoWorkersDenyTheServerPortOnEveryFlow) {
  const Bytes merged = mergedCapture();
  TempFile file(merged);
  auto packets = checkCapture(file.path());
  ASSERT_TRUE(packets) << packets.error().message;
  ASSERT_EQ(packets.value(), recordEnds(merged).size());

  policy::Policy policy;
  policy.name = "replay-test";
  policy.defaultAction = VerdictAction::kAllow;
  policy::Rule dns;  // a rule before the deciding one, so that the rule index is checked
  dns.name = "allow-dns";
  dns.action = VerdictAction::kAllow;
  dns.protocol = policy::Protocol::kUdp;
  dns.destination.ports = {{53, 53}};
  policy::Rule https;
  https.name = "deny-https";
  https.action = VerdictAction::kDeny;
  https.protocol = policy::Protocol::kTcp;
  https.destination.ports = {{443, 443}};
  policy.rules = {dns, https};

  ReplayOptions options;
  options.pcapPath = file.path();
  options.workers = 2;
  options.flowCapacity = 1024;
  options.inspectionSlots = 16;
  options.policy = &policy;
  CollectingSink sink;
  auto replayed = runReplay(options, sink);
  ASSERT_TRUE(replayed) << replayed.error().message;
  const ReplaySummary& summary = replayed.value();

  EXPECT_EQ(summary.capturePackets, packets.value());
  EXPECT_EQ(summary.total.packets, summary.capturePackets);
  EXPECT_EQ(summary.total.recordsLost, 0u);
  EXPECT_EQ(summary.total.metadataLost, 0u);
  EXPECT_EQ(summary.total.flowsCreated, std::size(kMergedCaptures));
  EXPECT_EQ(summary.total.denied, summary.total.packets);  // enforce mode: every packet of the flows dropped

  ASSERT_EQ(sink.ends_.size(), summary.total.flowsCreated);
  uint64_t flowPackets = 0;
  for (const FlowEndRecord& end : sink.ends_) {
    EXPECT_EQ(end.action, VerdictAction::kDeny);
    EXPECT_EQ(end.ruleId, 1u);
    EXPECT_EQ(end.dstPort, 443);
    flowPackets += end.pkts[kToServer] + end.pkts[kToClient];
  }
  EXPECT_EQ(flowPackets, summary.capturePackets);

  ASSERT_EQ(summary.workers.size(), 2u);
  EXPECT_EQ(summary.inspection.size(), 2u);
  // Both workers had flows, so the sum below adds two non-zero sets.
  EXPECT_GT(summary.workers[0].packets, 0u);
  EXPECT_GT(summary.workers[1].packets, 0u);
  std::vector<uint64_t> sum = counterValues(summary.workers[0]);
  const std::vector<uint64_t> second = counterValues(summary.workers[1]);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += second[i];
  EXPECT_EQ(sum, counterValues(summary.total));
}

}  // namespace
}  // namespace vgate::dataplane
