// The heartbeat does not depend on the main loop: with the flow log's writes stalled (the log is a FIFO whose
// reader never reads, as a stuck disk or stdout would be), vgated keeps beating, the fast path never falls
// back to the fail mode, new flows get through and status still answers.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/live_node.h"

namespace {

using vgate::testing::Background;
using vgate::testing::LiveNode;
using vgate::testing::shOut;
using Json = nlohmann::json;

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Opens `count` short TCP connections to host:port from consecutive source ports, each sending a few bytes.
constexpr const char* kManyConnections = R"PY(
import socket, sys
host, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(count):
    c = socket.socket(); c.settimeout(2); c.bind(('', first + i)); c.connect((host, port))
    c.sendall(b'x' * 100); c.shutdown(socket.SHUT_WR)
    while c.recv(256): pass
    c.close()
)PY";

TEST(HeartbeatLive, AStalledFlowLogNeverTripsTheFailMode) {
  std::string missing = LiveNode::missingPrerequisite();
  if (!missing.empty()) GTEST_SKIP() << missing;
  LiveNode node;
  ASSERT_TRUE(node.create());
  ASSERT_TRUE(node.addContainer(1));
  ASSERT_TRUE(node.addContainer(2));
  ASSERT_EQ(mkfifo(node.flowLogPath().c_str(), 0600), 0);
  // Holds the FIFO open for reading and never reads: once its 64 KiB are full, every write blocks.
  Background reader("exec sleep 600 < " + node.flowLogPath().string());
  ASSERT_TRUE(node.startVgated("--heartbeat-timeout-ms 300"));
  ASSERT_TRUE(node.attach(1));
  ASSERT_TRUE(node.attach(2));
  Background server(node.in(2, "/usr/bin/python3 " + node.toolPath() + " serve-tcp 7001"));
  sleepMs(500);
  std::string many = (node.dir() / "many.py").string();
  { std::ofstream(many) << kManyConnections; }
  auto opened = shOut("timeout 60 " +
                      node.in(1, "/usr/bin/python3 " + many + " " + LiveNode::v4(2) + " 7001 44000 400"));
  ASSERT_EQ(opened.exitCode, 0) << opened.out;
  // The flows close, and 10 s later end: about 800 records, far more than the FIFO takes.
  sleepMs(13000);
  Json before = node.status();
  ASSERT_TRUE(before.is_object()) << "status does not answer with the flow log stalled";
  uint64_t beats = before["heartbeat"]["beats"];
  sleepMs(3000);
  Json after = node.status();
  ASSERT_TRUE(after.is_object());
  EXPECT_GE(after["heartbeat"]["beats"].get<uint64_t>(), beats + 10) << after["heartbeat"].dump();
  EXPECT_LT(after["heartbeat"]["ageMs"].get<int64_t>(), 300) << after["heartbeat"].dump();
  EXPECT_EQ(after["fastPath"]["failClosedDrops"], 0) << after["fastPath"].dump();
  // The main loop is stuck in a write: proof that the test stalled what it meant to.
  EXPECT_LT(after["flowLog"].value("recordsWritten", uint64_t{0}), 700u) << after["flowLog"].dump();
  auto fresh = shOut("timeout 20 " + node.tool(1, "send-tcp " + LiveNode::v4(2) + " 7001 44999 4096 seed 3"));
  EXPECT_EQ(fresh.exitCode, 0) << "a new flow while the log is stalled: " << fresh.out;
  EXPECT_EQ(node.status()["fastPath"]["failClosedDrops"], 0);
  reader.kill();  // the writer gets EPIPE and vgated can stop
  server.kill();
}

}  // namespace
