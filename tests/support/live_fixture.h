// The fixture of the live daemon tests: a LiveNode per test, servers in its containers, transfers checked
// byte for byte, TLS clients, policies written to the test's directory, and readers of the flow log and
// `status`. Everything goes with the node when the test ends, also when it fails (then vgated's log is
// printed).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/live_node.h"

namespace vgate::testing {

inline void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

class LiveFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = LiveNode::missingPrerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    node_ = std::make_unique<LiveNode>();
    ASSERT_TRUE(node_->create());
  }
  void TearDown() override {
    servers_.clear();
    if (node_ && HasFailure()) std::fprintf(stderr, "vgated log:\n%s\n", node_->vgatedLog().c_str());
    node_.reset();
  }

  // A server in container n (0: the node) for the rest of the test; waits until its port is bound.
  void serve(int n, const std::string& command, int port, bool udp = false) {
    std::string full = n == 0 ? node_->inNode(command) : node_->in(n, command);
    servers_.emplace_back(full,
                          (node_->dir() / ("server-" + std::to_string(servers_.size()) + ".log")).string());
    std::string check =
        std::string("ss -H") + (udp ? "lun" : "ltn") + " 'sport = :" + std::to_string(port) + "'";
    check = n == 0 ? node_->inNode(check) : node_->in(n, check);
    for (int i = 0; i < 100; ++i) {
      if (shOut(check).out.find(':' + std::to_string(port)) != std::string::npos) return;
      sleepMs(50);
    }
    ADD_FAILURE() << "server did not listen on " << port << ": " << command;
  }

  // A TCP transfer of `bytes` from container `from` (0: node) to a serve-tcp server, checked by sha256.
  vgate::testing::ShellResult sendTcp(int from, const std::string& host, int port, int sport, size_t bytes,
                                      double timeout = 5, size_t first = 0) {
    return shOut("timeout 30 " +
                 node_->tool(from, "send-tcp " + host + " " + std::to_string(port) + " " +
                                       std::to_string(sport) + " " + std::to_string(bytes) + " seed" +
                                       std::to_string(sport) + " " + std::to_string(timeout) + " " +
                                       std::to_string(first)));
  }

  std::string writeCertificate() {
    std::string cert = (node_->dir() / "cert.pem").string();
    std::string key = (node_->dir() / "key.pem").string();
    auto made = shOut("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=test -days 1 -keyout " + key +
                      " -out " + cert);
    EXPECT_EQ(made.exitCode, 0) << made.out;
    return cert + " " + key;
  }

  // curl from container n to https://name:port/ resolved to ip; the exit code (0: handshake and reply done).
  int curlTls(int n, const std::string& name, const std::string& ip, int port, int localPort,
              int maxSeconds) {
    std::string p = std::to_string(port);
    return sh(node_->in(n, "curl -sk -o /dev/null -m " + std::to_string(maxSeconds) + " --local-port " +
                               std::to_string(localPort) + " --resolve " + name + ":" + p + ":" + ip +
                               " https://" + name + ":" + p + "/"));
  }

  std::string writePolicy(const std::string& text) {
    std::string path = (node_->dir() / "policy.yaml").string();
    std::ofstream(path) << text;
    return path;
  }

  // Flow log records of one flow, matched by protocol and the client's address and port (0: any port).
  static std::vector<nlohmann::json> flowsOf(const std::vector<nlohmann::json>& log, const std::string& proto,
                                             const std::string& srcIp, int srcPort,
                                             const std::string& destIp) {
    std::vector<nlohmann::json> found;
    for (const nlohmann::json& record : log) {
      if (record.value("proto", "") != proto || record.value("src_ip", "") != srcIp ||
          record.value("dest_ip", "") != destIp)
        continue;
      if (srcPort != 0 && record.value("src_port", 0) != srcPort) continue;
      found.push_back(record);
    }
    return found;
  }

  static std::string containerNames(const std::vector<nlohmann::json>& records) {
    std::string names;
    for (const nlohmann::json& record : records) {
      if (record.contains("container") && record["container"]["name"].is_string())
        names += record["container"]["name"].get<std::string>() + " ";
    }
    return names;
  }

  static long vmRssKb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
  }

  static uint64_t sumWorkers(const nlohmann::json& status, const char* field) {
    uint64_t sum = 0;
    for (const nlohmann::json& worker : status.value("workers", nlohmann::json::array()))
      sum += worker.value(field, uint64_t{0});
    return sum;
  }

  std::string macOf(int n) {
    return shOut(node_->in(n, "cat /sys/class/net/eth0/address")).out.substr(0, 17);
  }

  std::unique_ptr<LiveNode> node_;
  std::vector<Background> servers_;
};

}  // namespace vgate::testing
