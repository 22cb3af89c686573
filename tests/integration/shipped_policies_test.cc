// Each example policy under policies/ replayed on the committed captures, with the verdict and rule a user of
// that policy expects for every flow.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/vgated_test.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const fs::path kData = VGATE_TEST_DATA_DIR;
const fs::path kPolicies = kData / "../../policies";

using vgate::testing::readFile;

class ShippedPolicies : public vgate::testing::VgatedTest {
 protected:
  // Every flow record of one capture under one policy.
  std::vector<Json> replay(const std::string& capture, const fs::path& policy) {
    auto run = vgated("replay --pcap " + (kData / "pcap" / (capture + ".pcap")).string() + " --policy " +
                      policy.string());
    EXPECT_EQ(run.exitCode, 0) << run.err;
    return vgate::testing::jsonLines(run.out);
  }

  void expectVerdict(const std::string& capture, const fs::path& policy, const std::string& action,
                     const char* rule) {
    SCOPED_TRACE(capture + " under " + policy.filename().string());
    auto records = replay(capture, policy);
    ASSERT_FALSE(records.empty());
    for (const auto& record : records) {
      EXPECT_EQ(record["verdict"]["action"], action) << record["verdict"];
      if (rule == nullptr) {
        EXPECT_TRUE(record["verdict"]["rule"].is_null()) << record["verdict"];
      } else {
        EXPECT_EQ(record["verdict"]["rule"], rule);
      }
    }
  }
};

TEST_F(ShippedPolicies, DefaultAllowAuditsEveryFlowWithItsCatchAllRule) {
  fs::path policy = kPolicies / "default-allow.yaml";
  for (const auto& entry : fs::directory_iterator(kData / "pcap")) {
    std::string capture = entry.path().stem().string();
    SCOPED_TRACE(capture);
    for (const auto& record : replay(capture, policy)) {
      EXPECT_EQ(record["verdict"]["action"], "allow");
      EXPECT_EQ(record["verdict"]["rule"], "log-everything");
      EXPECT_EQ(record["verdict"]["policy"], "default-allow");
      EXPECT_EQ(record["verdict"]["mode"], "audit");
    }
  }
}

TEST_F(ShippedPolicies, DenyBankSniJudgesTlsAndQuicByServerName) {
  fs::path policy = kPolicies / "deny-bank-sni.yaml";
  expectVerdict("crafted_bank_sni", policy, "deny", "deny-bank-tls");
  expectVerdict("crafted_bank_quic", policy, "deny", "deny-bank-quic");  // HTTP/3 does not walk around it
  expectVerdict("crafted_bank_apex", policy, "allow", nullptr);          // *.bank.example is not bank.example
  expectVerdict("curl_https_h1_tls13", policy, "allow", nullptr);
  expectVerdict("chromium_quic", policy, "allow", nullptr);
}

TEST_F(ShippedPolicies, WebEgressAllowsOnlyItsContainers) {
  // As shipped, no capture's client is a web-* container: a selector that matches nobody must not widen to
  // "any", so everything falls to the default deny.
  fs::path shipped = kPolicies / "web-egress.yaml";
  expectVerdict("curl_https_h1_tls13", shipped, "deny", nullptr);
  expectVerdict("chromium_quic", shipped, "deny", nullptr);
  // Name the captures' client (10.250.0.2) as web-1, a frontend: its HTTPS and QUIC are allowed by their
  // rules; plain HTTP to port 80 is still denied by default.
  std::string text = std::regex_replace(readFile(shipped), std::regex("10\\.0\\.0\\.5"), "10.250.0.2");
  fs::path named = dir_ / "web-egress-named.yaml";
  std::ofstream(named) << text;
  expectVerdict("curl_https_h1_tls13", named, "allow", "web-https");
  expectVerdict("chromium_quic", named, "allow", "web-quic");
  expectVerdict("curl_http_plain", named, "deny", nullptr);
}

}  // namespace
