// The flow log writer on real files: lines written in batches, the stats line, pending metadata aged and
// capped, rotation by size and count, reopen after a move, and write failures counted (never a torn line).
#include "control/flowlog/flow_log_writer.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace vgate::control {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/vgate-flowlog-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

FlowEndRecord record(uint64_t flowId, bool hasMetadata = false) {
  FlowEndRecord record;
  record.ipVersion = 4;
  record.protocol = IPPROTO_TCP;
  const uint8_t client[4] = {10, 0, 0, 1}, server[4] = {10, 0, 0, 2};
  std::memcpy(record.srcAddr, client, 4);
  std::memcpy(record.dstAddr, server, 4);
  record.srcPort = static_cast<uint16_t>(1024 + flowId % 60000);
  record.dstPort = 443;
  record.flowId = flowId;
  record.startUs = 1'760'000'000'000'000ull + flowId;
  record.endUs = record.startUs + 1000;
  record.hasMetadata = hasMetadata;
  return record;
}

FlowMetadataRecord tlsMetadata(uint64_t flowId) {
  FlowMetadataRecord metadata;
  metadata.flowId = flowId;
  metadata.tls.present = true;
  metadata.tls.version = 0x0304;
  std::snprintf(metadata.tls.sni, sizeof(metadata.tls.sni), "flow%llu.example",
                static_cast<unsigned long long>(flowId));
  return metadata;
}

std::vector<Json> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<Json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<uint64_t> flowIds(const std::vector<Json>& lines) {
  std::vector<uint64_t> ids;
  for (const Json& line : lines) {
    if (line["event_type"] == "flow") ids.push_back(line["flow_id"].get<uint64_t>());
  }
  return ids;
}

uint64_t fakeNow = 0;
uint64_t fakeClock() { return fakeNow; }

TEST(FlowLogWriter, WritesWholeBatchesNotRecords) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  FlowLogOptions options;
  options.batchBytes = 16 * 1024;
  auto opened = FlowLogWriter::open(path, options);
  ASSERT_TRUE(opened) << opened.error().message;
  FlowLogWriter& writer = *opened.value();
  for (uint64_t id = 0; id < 10; ++id) writer.onEnd(record(id));
  EXPECT_EQ(fs::file_size(path), 0u) << "ten lines stay in the batch until it fills or is flushed";
  writer.flush();
  EXPECT_EQ(readLines(path).size(), 10u);
  EXPECT_EQ(writer.counters().writes, 1u);
  for (uint64_t id = 10; id < 2000; ++id) writer.onEnd(record(id));
  writer.flush();
  FlowLogCounters counters = writer.counters();
  EXPECT_EQ(counters.recordsWritten, 2000u);
  EXPECT_EQ(counters.bytesWritten, fs::file_size(path));
  // Each write is a batch of at least batchBytes, except the last of each flush.
  EXPECT_LE(counters.writes, 2 + counters.bytesWritten / options.batchBytes);
  EXPECT_GE(counters.writes, counters.bytesWritten / (options.batchBytes + 1024));
  std::vector<uint64_t> ids = flowIds(readLines(path));
  ASSERT_EQ(ids.size(), 2000u);
  for (uint64_t id = 0; id < 2000; ++id) EXPECT_EQ(ids[id], id);
}

TEST(FlowLogWriter, StatsLineCarriesTheCountersAndTheWorkersLosses) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  auto opened = FlowLogWriter::open(path);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  writer.onMetadata(tlsMetadata(7));
  writer.onEnd(record(1));
  writer.onEnd(record(2));
  writer.writeStats(42, {{"recordsLostNoRecord", 3}, {"recordsLostRingFull", 5}});
  auto lines = readLines(path);
  ASSERT_EQ(lines.size(), 3u);
  const Json& stats = lines[2];
  EXPECT_EQ(stats["event_type"], "stats");
  EXPECT_TRUE(stats["timestamp"].is_string());
  EXPECT_EQ(stats["stats"]["uptime"], 42);
  const Json& log = stats["stats"]["flow_log"];
  EXPECT_EQ(log["records_written"], 2);
  EXPECT_EQ(log["metadata_pending"], 1);
  EXPECT_EQ(log["write_errors"], 0);
  EXPECT_EQ(log["records_lost_write"], 0);
  EXPECT_EQ(log["stats_written"], 1);
  EXPECT_EQ(stats["stats"]["workers"]["records_lost_no_record"], 3);
  EXPECT_EQ(stats["stats"]["workers"]["records_lost_ring_full"], 5);
  EXPECT_EQ(writer.counters().recordsWritten, 2u) << "a stats line is not a flow record";
}

TEST(FlowLogWriter, MetadataWithoutItsEndRecordIsAgedOut) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  FlowLogOptions options;
  options.monotonicClock = fakeClock;
  options.metadataMaxAgeNs = 1'000'000'000;
  fakeNow = 5'000'000'000;
  auto opened = FlowLogWriter::open(path, options);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  writer.onMetadata(tlsMetadata(1));  // its end record is lost
  fakeNow += 600'000'000;
  writer.onMetadata(tlsMetadata(2));
  writer.expireMetadata();
  writer.flush();
  EXPECT_EQ(writer.counters().metadataPending, 2u);
  fakeNow += 600'000'000;  // 1.2 s after the first, 0.6 s after the second
  writer.expireMetadata();
  writer.flush();
  EXPECT_EQ(writer.counters().metadataExpired, 1u);
  EXPECT_EQ(writer.counters().metadataPending, 1u);
  writer.onEnd(record(2, true));
  writer.onEnd(record(1, true));  // late after all: written, without the metadata dropped
  writer.flush();
  auto lines = readLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["tls"]["sni"], "flow2.example");
  EXPECT_FALSE(lines[1].contains("tls"));
  EXPECT_EQ(writer.counters().metadataMissing, 1u);
  EXPECT_EQ(writer.counters().metadataPending, 0u);
}

TEST(FlowLogWriter, PendingMetadataIsCappedOldestFirst) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  FlowLogOptions options;
  options.maxPendingMetadata = 3;
  auto opened = FlowLogWriter::open(path, options);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  for (uint64_t id = 1; id <= 5; ++id) writer.onMetadata(tlsMetadata(id));
  writer.flush();
  EXPECT_EQ(writer.counters().metadataDropped, 2u);
  EXPECT_EQ(writer.counters().metadataPending, 3u);
  for (uint64_t id = 1; id <= 5; ++id) writer.onEnd(record(id, true));
  writer.flush();
  auto lines = readLines(path);
  ASSERT_EQ(lines.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(lines[i].contains("tls"), i >= 2) << "flow " << i + 1;
  EXPECT_EQ(writer.counters().metadataMissing, 2u);
}

TEST(FlowLogWriter, RotatesBySizeKeepingCountFilesAndEveryLineOnce) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  FlowLogOptions options;
  options.maxFileBytes = 4000;
  options.maxFiles = 100;  // nothing dropped: every record must be somewhere exactly once
  {
    auto opened = FlowLogWriter::open(path, options);
    ASSERT_TRUE(opened);
    for (uint64_t id = 0; id < 300; ++id) opened.value()->onEnd(record(id));
    opened.value()->flush();
    EXPECT_GT(opened.value()->counters().rotations, 10u);
  }
  std::vector<uint64_t> all;
  size_t files = 0;
  for (int i = 100; i >= 0; --i) {
    std::string name = i == 0 ? path : path + "." + std::to_string(i);
    if (!fs::exists(name)) continue;
    ++files;
    EXPECT_LE(fs::file_size(name), options.maxFileBytes) << name;
    std::string text = readText(name);
    ASSERT_FALSE(text.empty()) << name;
    EXPECT_EQ(text.back(), '\n') << name << " ends in a whole line";
    for (uint64_t id : flowIds(readLines(name))) all.push_back(id);
  }
  EXPECT_GT(files, 10u);
  ASSERT_EQ(all.size(), 300u);
  for (uint64_t id = 0; id < 300; ++id) EXPECT_EQ(all[id], id) << "oldest file first, in order, once each";
}

TEST(FlowLogWriter, RotationDropsTheOldestBeyondMaxFiles) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  FlowLogOptions options;
  options.maxFileBytes = 4000;
  options.maxFiles = 3;
  auto opened = FlowLogWriter::open(path, options);
  ASSERT_TRUE(opened);
  for (uint64_t id = 0; id < 300; ++id) opened.value()->onEnd(record(id));
  opened.value()->flush();
  EXPECT_TRUE(fs::exists(path + ".3"));
  EXPECT_FALSE(fs::exists(path + ".4"));
  std::vector<uint64_t> kept;
  for (const std::string& name : {path + ".3", path + ".2", path + ".1", path}) {
    for (uint64_t id : flowIds(readLines(name))) kept.push_back(id);
  }
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.back(), 299u);
  for (size_t i = 0; i < kept.size(); ++i)
    EXPECT_EQ(kept[i], 300 - kept.size() + i) << "the newest, in order";
}

TEST(FlowLogWriter, ReopenAfterAMoveLosesAndDuplicatesNothing) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  auto opened = FlowLogWriter::open(path);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  for (uint64_t id = 0; id < 100; ++id) writer.onEnd(record(id));
  fs::rename(path, path + ".moved");  // logrotate's move; the writer still holds the old file
  for (uint64_t id = 100; id < 150; ++id) writer.onEnd(record(id));
  ASSERT_TRUE(writer.reopen());
  for (uint64_t id = 150; id < 200; ++id) writer.onEnd(record(id));
  writer.flush();
  auto before = flowIds(readLines(path + ".moved"));
  auto after = flowIds(readLines(path));
  ASSERT_EQ(before.size(), 150u) << "everything formatted before the reopen went to the old file";
  ASSERT_EQ(after.size(), 50u);
  EXPECT_EQ(after.front(), 150u);
  EXPECT_EQ(writer.counters().reopens, 1u);
  // A reopen that fails keeps writing the old file.
  fs::remove_all(dir.file(""));
  EXPECT_FALSE(writer.reopen());
  EXPECT_EQ(writer.counters().writeErrors, 1u);
}

TEST(FlowLogWriter, AFullDeviceCountsLostRecords) {
  auto opened = FlowLogWriter::open("/dev/full");
  ASSERT_TRUE(opened) << opened.error().message;
  FlowLogWriter& writer = *opened.value();
  for (uint64_t id = 0; id < 500; ++id) writer.onEnd(record(id));
  writer.flush();
  FlowLogCounters counters = writer.counters();
  EXPECT_EQ(counters.recordsWritten, 0u);
  EXPECT_EQ(counters.recordsLostWrite, 500u);
  EXPECT_GT(counters.writeErrors, 0u);
}

// A write cut short (here by RLIMIT_FSIZE, as a filling disk would) leaves whole lines only: the torn one
// is cut off and counted lost with the rest of its batch.
TEST(FlowLogWriter, AShortWriteLeavesNoTornLine) {
  TempDir dir;
  std::string path = dir.file("flows.json");
  auto opened = FlowLogWriter::open(path);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &previous);
  rlimit saved{};
  getrlimit(RLIMIT_FSIZE, &saved);
  rlimit limited = saved;
  limited.rlim_cur = 10000;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  for (uint64_t id = 0; id < 200; ++id) writer.onEnd(record(id));
  writer.flush();
  setrlimit(RLIMIT_FSIZE, &saved);
  sigaction(SIGXFSZ, &previous, nullptr);
  FlowLogCounters counters = writer.counters();
  std::string text = readText(path);
  ASSERT_FALSE(text.empty());
  EXPECT_LE(text.size(), 10000u);
  EXPECT_EQ(text.back(), '\n');
  auto ids = flowIds(readLines(path));
  EXPECT_EQ(ids.size(), counters.recordsWritten);
  EXPECT_EQ(counters.recordsWritten + counters.recordsLostWrite, 200u);
  EXPECT_GT(counters.recordsLostWrite, 0u);
  EXPECT_EQ(counters.bytesWritten, text.size());
}

}  // namespace
}  // namespace vgate::control
