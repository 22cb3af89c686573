// The flow-log thread with a real producer thread standing in for the workers' rings: reopens while records
// flow lose and duplicate nothing, stats lines come at their interval and at exit, and reopen() answers.
#include "control/flowlog/flow_log_pump.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace vgate::control {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// What a worker's ring is to the pump: records queued by one thread, taken by another in bounded bites.
class Queue {
 public:
  void push(const FlowEndRecord& record) {
    std::lock_guard lock(mutex_);
    records_.push_back(record);
  }
  bool drain(RecordSink& sink) {
    std::deque<FlowEndRecord> taken;
    {
      std::lock_guard lock(mutex_);
      size_t count = std::min<size_t>(records_.size(), 256);
      taken.assign(records_.begin(), records_.begin() + static_cast<long>(count));
      records_.erase(records_.begin(), records_.begin() + static_cast<long>(count));
    }
    for (const auto& record : taken) sink.onEnd(record);
    std::lock_guard lock(mutex_);
    return records_.empty();
  }

  bool empty() {
    std::lock_guard lock(mutex_);
    return records_.empty();
  }

 private:
  std::mutex mutex_;
  std::deque<FlowEndRecord> records_;
};

FlowEndRecord record(uint64_t flowId) {
  FlowEndRecord record;
  record.protocol = IPPROTO_UDP;
  record.flowId = flowId;
  record.startUs = 1'760'000'000'000'000ull;
  record.endUs = record.startUs + flowId;
  return record;
}

std::vector<Json> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<Json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  return lines;
}

class FlowLogPumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-pump-XXXXXX";
    dir_ = mkdtemp(pattern);
    path_ = (dir_ / "flows.json").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string path_;
};

TEST_F(FlowLogPumpTest, ReopensWhileRecordsFlowLoseAndDuplicateNothing) {
  auto opened = FlowLogWriter::open(path_);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  Queue queue;
  std::vector<std::string> logged;
  FlowLogPump pump(
      writer, writer, [&](RecordSink& sink) { return queue.drain(sink); },
      [] {
        return std::vector<std::pair<std::string, uint64_t>>{{"recordsLost", 0}};
      },
      [&](const std::string& line) { logged.push_back(line); });
  pump.start();
  constexpr uint64_t kRecords = 50000;
  std::atomic<bool> produced{false};
  std::thread producer([&] {
    for (uint64_t id = 0; id < kRecords; ++id) {
      queue.push(record(id));
      if (id % 1000 == 0) std::this_thread::yield();
    }
    produced = true;
  });
  int moves = 0;
  while (!produced || moves < 3) {
    std::string moved = path_ + "." + std::to_string(++moves);
    fs::rename(path_, moved);  // as logrotate does, then its postrotate
    auto reopened = pump.reopen(std::chrono::seconds(5));
    ASSERT_TRUE(reopened) << reopened.error().message;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  producer.join();
  while (!queue.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  pump.stop();
  EXPECT_TRUE(queue.drain(writer));  // the thread is gone: the rest is the caller's, as at vgated's exit
  writer.flush();
  pump.writeFinalStats();
  std::set<uint64_t> seen;
  size_t flowLines = 0, statsLines = 0;
  for (int i = 0; i <= moves; ++i) {
    std::string name = i == 0 ? path_ : path_ + "." + std::to_string(i);
    for (const Json& line : readLines(name)) {
      if (line["event_type"] == "stats") {
        ++statsLines;
        continue;
      }
      ++flowLines;
      EXPECT_TRUE(seen.insert(line["flow_id"].get<uint64_t>()).second) << "written twice: " << line.dump();
    }
  }
  EXPECT_EQ(flowLines, kRecords);
  EXPECT_EQ(seen.size(), kRecords);
  EXPECT_EQ(statsLines, 1u) << "one at exit; the interval (60 s) never came";
  EXPECT_EQ(writer.counters().reopens, static_cast<uint64_t>(moves));
  EXPECT_TRUE(logged.empty());
}

TEST_F(FlowLogPumpTest, StatsLinesComeAtTheirIntervalAndAtExit) {
  auto opened = FlowLogWriter::open(path_);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  Queue queue;
  FlowLogPumpOptions options;
  options.statsIntervalSeconds = 1;
  std::atomic<uint64_t> lost{0};
  FlowLogPump pump(
      writer, writer, [&](RecordSink& sink) { return queue.drain(sink); },
      [&] {
        return std::vector<std::pair<std::string, uint64_t>>{{"recordsLostRingFull", lost.load()}};
      },
      nullptr, options);
  pump.start();
  queue.push(record(1));
  lost = 7;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  pump.stop();
  pump.writeFinalStats();
  auto lines = readLines(path_);
  std::vector<Json> stats;
  for (const Json& line : lines) {
    if (line["event_type"] == "stats") stats.push_back(line);
  }
  ASSERT_GE(stats.size(), 3u) << "two periodic and one at exit";
  EXPECT_LE(stats.size(), 4u);
  EXPECT_EQ(stats.back()["stats"]["flow_log"]["records_written"], 1);
  EXPECT_EQ(stats.back()["stats"]["workers"]["records_lost_ring_full"], 7);
  EXPECT_GE(stats.back()["stats"]["uptime"], 2);
}

TEST_F(FlowLogPumpTest, ReopenOfStdoutOrAFailingPathAnswers) {
  auto opened = FlowLogWriter::open(path_);
  ASSERT_TRUE(opened);
  FlowLogWriter& writer = *opened.value();
  Queue queue;
  std::vector<std::string> logged;
  std::mutex loggedMutex;
  FlowLogPump pump(
      writer, writer, [&](RecordSink& sink) { return queue.drain(sink); }, nullptr,
      [&](const std::string& line) {
        std::lock_guard lock(loggedMutex);
        logged.push_back(line);
      });
  pump.start();
  fs::remove_all(dir_);
  auto reopened = pump.reopen(std::chrono::seconds(5));
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code, ENOENT);
  pump.stop();
  std::lock_guard lock(loggedMutex);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("still writing the old file"), std::string::npos) << logged[0];
}

}  // namespace
}  // namespace vgate::control
