// The flow log of a live vgated under load: logrotate's move + SIGHUP (and `vgatectl log reopen`) while a
// flood of new flows is logged loses and duplicates nothing, and a log on a full filesystem counts its lost
// records while traffic, the heartbeat and the control socket carry on.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/live_node.h"
#include "support/syn_flood.h"

namespace {

using vgate::testing::fileText;
using vgate::testing::LiveNode;
using vgate::testing::sh;
using vgate::testing::shOut;
using Json = nlohmann::json;

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::vector<Json> readLines(const std::filesystem::path& path) {
  std::vector<Json> lines;
  std::istringstream in(fileText(path));
  for (std::string line; std::getline(in, line);) {
    auto json = Json::parse(line, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << path << ": not JSON: " << line;
    if (!json.is_discarded()) lines.push_back(std::move(json));
  }
  return lines;
}

class FlowLogLive : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = LiveNode::missingPrerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    node_ = std::make_unique<LiveNode>();
    ASSERT_TRUE(node_->create());
  }
  void TearDown() override {
    if (node_ && HasFailure()) std::fprintf(stderr, "vgated log:\n%s\n", node_->vgatedLog().c_str());
    std::string mount = mount_;
    std::filesystem::path dir = node_ ? node_->dir() : std::filesystem::path();
    node_.reset();  // stops vgated first: it holds the file on the mount
    if (!mount.empty() && umount2(mount.c_str(), 0) != 0) umount2(mount.c_str(), MNT_DETACH);
    // The node could not remove its directory while the mount was in it.
    std::error_code ignored;
    if (!mount.empty() && !dir.empty()) std::filesystem::remove_all(dir, ignored);
  }

  std::string macOf(int n) {
    return shOut(node_->in(n, "cat /sys/class/net/eth0/address")).out.substr(0, 17);
  }

  // Spoofed SYNs from container 3 to container 2 (unattached), each from its own source address: one new
  // flow each at c3's port.
  vgate::testing::SynFloodOptions flood(uint64_t count, uint32_t firstHost) {
    vgate::testing::SynFloodOptions options;
    options.netnsPath = node_->containerPath(3);
    EXPECT_TRUE(vgate::testing::parseMac(macOf(3), options.srcMac));
    EXPECT_TRUE(vgate::testing::parseMac(macOf(2), options.dstMac));
    options.firstSource = (10u << 24) | (78u << 16) | firstHost;
    options.destination = (10u << 24) | (77u << 16) | 2u;
    options.count = count;
    return options;
  }

  static uint64_t sumWorkers(const Json& status, const char* field) {
    uint64_t sum = 0;
    for (const Json& worker : status.value("workers", Json::array())) sum += worker.value(field, uint64_t{0});
    return sum;
  }

  std::unique_ptr<LiveNode> node_;
  std::string mount_;
};

TEST_F(FlowLogLive, ReopenWhileFlowsAreLoggedLosesAndDuplicatesNothing) {
  for (int n : {2, 3}) ASSERT_TRUE(node_->addContainer(n));
  // A small flow table: the flood's flows are evicted (and logged) while it runs, not only at exit.
  ASSERT_TRUE(node_->startVgated("--flows 1024 --stats-interval 1"));
  ASSERT_TRUE(node_->attach(3));
  std::string path = node_->flowLogPath().string();

  std::atomic<bool> flooding{true};
  vgate::testing::SynFloodResult sent;
  std::thread sender([&] {
    // Paced: 8 rounds of 5000, so that records are written across the whole run of reopens.
    for (uint32_t round = 0; round < 8; ++round) {
      auto result = vgate::testing::synFlood(flood(5000, round * 5000));
      sent.sent += result.sent;
      if (!result.error.empty()) sent.error = result.error;
      sleepMs(150);
    }
    flooding = false;
  });
  std::vector<std::string> rotated;
  while (flooding) {
    std::string moved = path + "." + std::to_string(rotated.size() + 1);
    std::filesystem::rename(path, moved);  // logrotate's move, then its postrotate
    rotated.push_back(moved);
    if (rotated.size() % 2 == 1) {
      ASSERT_EQ(sh("kill -HUP " + std::to_string(node_->vgatedPid())), 0);
    } else {
      auto reopened = node_->ctl("log reopen");
      ASSERT_EQ(reopened.exitCode, 0) << reopened.out;
      EXPECT_NE(reopened.out.find("reopened flow log " + path), std::string::npos) << reopened.out;
    }
    sleepMs(200);
  }
  sender.join();
  ASSERT_TRUE(sent.error.empty()) << sent.error;
  ASSERT_GE(rotated.size(), 3u);
  for (int i = 0; i < 50 && !std::filesystem::exists(path); ++i) sleepMs(100);
  sleepMs(1500);  // the last evictions logged, and a stats line after them
  Json status = node_->status();
  ASSERT_EQ(node_->stopVgated(), 0);

  std::map<std::string, int> seen;  // flood flows by source address
  std::set<uint64_t> flowIds;
  size_t flowLines = 0;
  Json lastStats;
  size_t filesWithFlood = 0;
  rotated.push_back(path);
  for (const std::string& file : rotated) {
    bool any = false;
    for (const Json& line : readLines(file)) {
      if (line.value("event_type", "") == "stats") {
        lastStats = line;
        continue;
      }
      ++flowLines;
      EXPECT_TRUE(flowIds.insert(line.value("flow_id", uint64_t{0})).second) << "twice: " << line.dump();
      std::string source = line.value("src_ip", "");
      if (source.rfind("10.78.", 0) == 0) {
        ++seen[source];
        any = true;
      }
    }
    filesWithFlood += any;
  }
  ASSERT_TRUE(lastStats.is_object()) << "the stats line at exit";
  const Json& workers = lastStats["stats"]["workers"];
  const Json& log = lastStats["stats"]["flow_log"];
  std::printf("sent %llu SYNs; %zu files; %zu flow lines; exit stats %s\n",
              static_cast<unsigned long long>(sent.sent), rotated.size(), flowLines,
              lastStats.dump().c_str());
  EXPECT_EQ(workers.value("records_lost", 1), 0) << "the rings held every record: " << workers.dump();
  EXPECT_EQ(log.value("records_lost_write", 1), 0);
  EXPECT_EQ(log.value("reopens", 0), static_cast<int>(rotated.size() - 1));
  EXPECT_EQ(flowLines, workers.value("flows_ended", uint64_t{0})) << "every flow ended is written once";
  EXPECT_EQ(flowLines, log.value("records_written", uint64_t{0}));
  for (const auto& [source, count] : seen) ASSERT_EQ(count, 1) << source << " written " << count << " times";
  // Besides the flood, the containers' own IGMP and ICMPv6 (judged as flows of their own) may add a few.
  const uint64_t created = workers.value("flows_created", uint64_t{0});
  EXPECT_LE(seen.size(), created) << "each flood flow once";
  EXPECT_LE(created, seen.size() + 8) << "each flood flow once";
  EXPECT_GT(seen.size(), sent.sent / 2) << "most SYNs the kernel took reached the worker";
  EXPECT_GE(filesWithFlood, 3u) << "records landed in the files between the reopens";
  EXPECT_EQ(status["fastPath"].value("failClosedDrops", uint64_t{0}), 0u);
}

TEST_F(FlowLogLive, AFullLogCountsLostRecordsAndStallsNothing) {
  for (int n : {1, 2, 3}) ASSERT_TRUE(node_->addContainer(n));
  std::filesystem::path mount = node_->dir() / "tinyfs";
  std::filesystem::create_directories(mount);
  ASSERT_EQ(sh("mount -t tmpfs -o size=4m tmpfs " + mount.string()), 0);
  mount_ = mount.string();
  std::string path = (mount / "flows.json").string();
  // LiveNode names the log itself: let that name lead to the tiny filesystem.
  std::filesystem::create_symlink(path, node_->flowLogPath());
  ASSERT_TRUE(node_->startVgated("--flows 1024"));
  for (int n : {1, 2, 3}) ASSERT_TRUE(node_->attach(n));
  // Fill it: every write of the log fails with ENOSPC from here on.
  sh("dd if=/dev/zero of=" + (mount / "fill").string() + " bs=4k 2>/dev/null");
  ASSERT_NE(sh("echo x >> " + (mount / "fill").string() + " 2>/dev/null"), 0) << "the disk is full";

  auto started = std::chrono::steady_clock::now();
  auto sent = vgate::testing::synFlood(flood(20000, 0));
  ASSERT_TRUE(sent.error.empty()) << sent.error;
  // Traffic still passes and the daemon answers, promptly, while the writer fails.
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto status = node_->ctl("status --json");
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(status.exitCode, 0);
    EXPECT_LT(seconds, 2.0) << "status took " << seconds << " s";
    EXPECT_EQ(sh(node_->in(1, "ping -c 1 -W 2 " + LiveNode::v4(2) + " >/dev/null")), 0) << "ping c1 -> c2";
    sleepMs(300);
  }
  sleepMs(1500);
  Json status = node_->status();
  const Json& flowLog = status["flowLog"];
  std::printf("full log after %.1f s: flowLog %s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
              flowLog.dump().c_str());
  EXPECT_GT(flowLog.value("writeErrors", uint64_t{0}), 0u) << flowLog.dump();
  EXPECT_GT(flowLog.value("recordsLostWrite", uint64_t{0}), 1000u) << flowLog.dump();
  EXPECT_EQ(flowLog.value("recordsWritten", uint64_t{1}), 0u) << flowLog.dump();
  EXPECT_EQ(sumWorkers(status, "recordsLost"), 0u) << "the rings never backed up behind the failing log";
  EXPECT_EQ(status["fastPath"].value("failClosedDrops", uint64_t{0}), 0u) << "the heartbeat kept beating";
  EXPECT_NE(node_->vgatedLog().find("failed writes so far"), std::string::npos) << node_->vgatedLog();

  // Room again (4 MB: the flows still open, then the stats line at exit, which says what was lost).
  std::filesystem::remove(mount / "fill");
  ASSERT_EQ(node_->stopVgated(), 0);
  Json stats;
  for (const Json& line : readLines(path)) {
    if (line.value("event_type", "") == "stats") stats = line;
  }
  ASSERT_TRUE(stats.is_object()) << fileText(path);
  EXPECT_GE(stats["stats"]["flow_log"].value("records_lost_write", uint64_t{0}),
            flowLog.value("recordsLostWrite", uint64_t{0}));
}

}  // namespace
