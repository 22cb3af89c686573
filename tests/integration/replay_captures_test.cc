// Every committed capture through `vgated replay`, checked against tests/data/captures.json: the expected
// flows there were computed from the pcaps with scapy, and the L7 fields are what make_captures.sh told each
// real client (curl, openssl, gnutls-cli, python, node, chromium) or crafted edge case to send.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const fs::path kData = VGATE_TEST_DATA_DIR;
const std::string kVgated = std::string(VGATE_BINARY_DIR) + "/control/vgated";

Json manifest() {
  std::ifstream in(kData / "captures.json");
  return Json::parse(in);
}

std::vector<std::string> captureFiles() {
  std::vector<std::string> files;
  const Json all = manifest();
  for (const auto& entry : all["pcaps"]) files.push_back(entry["file"]);
  return files;
}

std::vector<Json> replay(const std::string& capture, int workers) {
  char pattern[] = "/tmp/vgate-captures-XXXXXX";
  EXPECT_NE(mkdtemp(pattern), nullptr);
  fs::path out = fs::path(pattern) / "flows.json";
  std::string command = kVgated + " replay --pcap '" + (kData / capture).string() + "' --workers " +
                        std::to_string(workers) + " --flow-log '" + out.string() + "' 2>/dev/null";
  int status = std::system(command.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
  std::vector<Json> records;
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) records.push_back(Json::parse(line));
  fs::remove_all(pattern);
  return records;
}

class ReplayCapture : public ::testing::TestWithParam<std::string> {};

TEST_P(ReplayCapture, FlowsMatchTheManifest) {
  Json entry;
  const Json all = manifest();
  for (const auto& candidate : all["pcaps"]) {
    if (candidate["file"] == GetParam()) entry = candidate;
  }
  ASSERT_FALSE(entry.is_null());
  std::vector<Json> records = replay(GetParam(), 2);
  size_t transportFlows = 0;
  for (const auto& record : records) transportFlows += record["proto"] == "TCP" || record["proto"] == "UDP";
  EXPECT_EQ(transportFlows, entry["flows"].size()) << entry["note"];

  for (const auto& expected : entry["flows"]) {
    SCOPED_TRACE(expected.dump());
    const Json* found = nullptr;
    for (const auto& record : records) {
      if (record["src_ip"] == expected["src_ip"] && record["src_port"] == expected["src_port"] &&
          record["dest_ip"] == expected["dest_ip"] && record["dest_port"] == expected["dest_port"] &&
          record["proto"] == expected["proto"]) {
        found = &record;
      }
    }
    ASSERT_NE(found, nullptr) << "no record for this flow, client as src";
    const Json& record = *found;
    for (const char* counter : {"pkts_toserver", "pkts_toclient", "bytes_toserver", "bytes_toclient"}) {
      EXPECT_EQ(record["flow"][counter], expected[counter]) << counter;
    }
    if (expected.contains("vlan")) {
      EXPECT_EQ(record["vlan"], expected["vlan"]);
    } else {
      EXPECT_FALSE(record.contains("vlan"));
    }
    if (expected.contains("tls")) {
      ASSERT_TRUE(record.contains("tls")) << record.dump();
      EXPECT_EQ(record["app_proto"], "tls");
      EXPECT_EQ(record["tls"]["sni"], expected["tls"]["sni"]);
      EXPECT_EQ(record["tls"]["alpn"], expected["tls"]["alpn"]);
      if (expected["tls"].contains("version")) {
        EXPECT_EQ(record["tls"]["version"], expected["tls"]["version"]);
      }
      EXPECT_EQ(record["tls"]["ja4"].get<std::string>().substr(0, 1), "t");
      EXPECT_EQ(record["tls"]["ja3"]["hash"].get<std::string>().size(), 32u);
      // The certificate travels in clear up to TLS 1.2 only.
      EXPECT_EQ(record["tls"].contains("subject"), record["tls"]["version"] == "TLS 1.2") << record.dump();
    } else {
      EXPECT_FALSE(record.contains("tls") && record["tls"].contains("sni")) << record.dump();
    }
    if (expected.contains("quic")) {
      ASSERT_TRUE(record.contains("quic")) << record.dump();
      EXPECT_EQ(record["app_proto"], "quic");
      EXPECT_EQ(record["quic"]["sni"], expected["quic"]["sni"]);
      EXPECT_EQ(record["quic"]["alpn"], expected["quic"]["alpn"]);
      EXPECT_EQ(record["quic"]["version"], std::to_string(expected["quic"]["version"].get<int>()));
      EXPECT_EQ(record["quic"]["ja4"].get<std::string>().substr(0, 1), "q");
    }
    if (!expected.contains("tls") && !expected.contains("quic") && !expected.contains("http") &&
        record["proto"] == "TCP") {
      // Began like TLS (a handshake record) but never gave a whole ClientHello: named failed, not tls.
      EXPECT_EQ(record["app_proto"], "failed") << record.dump();
    }
    if (expected.contains("http")) {
      ASSERT_TRUE(record.contains("http")) << record.dump();
      EXPECT_EQ(record["app_proto"], "http");
      for (const char* field : {"hostname", "url", "http_method"}) {
        EXPECT_EQ(record["http"][field], expected["http"][field]) << field;
      }
    }
  }
}

TEST_P(ReplayCapture, OneAndFourWorkersAgree) {
  auto normalize = [](std::vector<Json> records) {
    std::vector<std::string> lines;
    for (auto& record : records) {
      record.erase("flow_id");
      lines.push_back(record.dump());
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  };
  EXPECT_EQ(normalize(replay(GetParam(), 1)), normalize(replay(GetParam(), 4)));
}

INSTANTIATE_TEST_SUITE_P(Captures, ReplayCapture, ::testing::ValuesIn(captureFiles()), [](const auto& test) {
  std::string name = fs::path(test.param).stem().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
});

}  // namespace
