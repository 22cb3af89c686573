// The applied policy and its history on disk: what is saved is loaded, versions never repeat, the file that
// was last applied from --policy is found, and files that are not vgate's stop the start with the way out.
#include "control/daemon/policy_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace vgate::control {
namespace {

namespace fs = std::filesystem;

class PolicyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-policy-store-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

PolicyRecord applied(uint32_t version, const std::string& text) {
  PolicyRecord record;
  record.version = version;
  record.time = utcNow();
  record.origin = PolicyOrigin::kSocket;
  record.source = "vgatectl (uid 0, pid 1)";
  record.fileName = "p.yaml";
  record.name = "p";
  record.rules = 2;
  record.sha256 = sha256Hex(text);
  record.result = "applied";
  record.text = text;
  return record;
}

TEST_F(PolicyStoreTest, NothingSavedIsNothingLoaded) {
  PolicyStore store(dir_);
  auto loaded = store.loadApplied();
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded.value().has_value());
  EXPECT_TRUE(store.loadHistory().value().empty());
}

TEST_F(PolicyStoreTest, AppliedPolicyRoundTripsWithItsText) {
  PolicyStore store(dir_);
  PolicyRecord record = applied(7, "apiVersion: vgate.io/v1\n# \"quotes\" and unicode: \xc3\xa9\n");
  ASSERT_TRUE(store.saveApplied(record).ok());
  auto loaded = store.loadApplied();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded.value().has_value());
  EXPECT_EQ(loaded.value()->toJson(true), record.toJson(true));
  struct stat info {};
  ASSERT_EQ(stat((dir_ + "/policy/applied.json").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(dir_ + "/policy/applied.json.tmp"));
}

TEST_F(PolicyStoreTest, HistoryKeepsTheLastEntries) {
  PolicyStore store(dir_);
  std::vector<PolicyRecord> history;
  for (uint32_t i = 1; i <= kHistoryKeep + 10; ++i) history.push_back(applied(i, "t" + std::to_string(i)));
  ASSERT_TRUE(store.saveHistory(history).ok());
  auto loaded = store.loadHistory();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded.value().size(), kHistoryKeep);
  EXPECT_EQ(loaded.value().front().version, 11u);
  EXPECT_EQ(loaded.value().back().version, kHistoryKeep + 10);
  EXPECT_TRUE(loaded.value().back().text.empty()) << "history holds no texts";
}

TEST_F(PolicyStoreTest, VersionsNeverRepeat) {
  std::vector<PolicyRecord> history = {applied(3, "a"), applied(0, "failed"), applied(9, "b")};
  EXPECT_EQ(nextPolicyVersion(std::nullopt, {}), 1u);
  EXPECT_EQ(nextPolicyVersion(std::nullopt, history), 10u);
  EXPECT_EQ(nextPolicyVersion(applied(12, "c"), history), 13u);
}

TEST_F(PolicyStoreTest, LastAppliedFromTheFileSkipsFailuresAndOtherSources) {
  PolicyRecord fromFile = applied(1, "one");
  fromFile.origin = PolicyOrigin::kFile;
  fromFile.fileName = "/etc/vgate/policy.yaml";
  PolicyRecord failed = fromFile;
  failed.version = 0;
  failed.sha256 = sha256Hex("broken");
  PolicyRecord otherFile = fromFile;
  otherFile.version = 2;
  otherFile.fileName = "/elsewhere.yaml";
  PolicyRecord socket = applied(3, "three");
  socket.fileName = "/etc/vgate/policy.yaml";  // vgatectl's file name is not the --policy file
  auto found = lastAppliedFromFile({fromFile, failed, otherFile, socket}, "/etc/vgate/policy.yaml");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->version, 1u);
  EXPECT_EQ(found->sha256, sha256Hex("one"));
  EXPECT_FALSE(lastAppliedFromFile({socket}, "/etc/vgate/policy.yaml").has_value());
}

TEST_F(PolicyStoreTest, FilesThatAreNotVgatesSayWhatToDo) {
  fs::create_directories(dir_ + "/policy");
  std::ofstream(dir_ + "/policy/applied.json") << "{not json";
  auto loaded = PolicyStore(dir_).loadApplied();
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("move it away"), std::string::npos) << loaded.error().message;
  std::ofstream(dir_ + "/policy/history.json") << R"({"format": 1, "history": [{"version": "x"}]})";
  EXPECT_FALSE(PolicyStore(dir_).loadHistory().ok());
}

TEST_F(PolicyStoreTest, AnAppliedPolicyWhoseTextDoesNotMatchItsHashIsRefused) {
  PolicyStore store(dir_);
  PolicyRecord record = applied(2, "the text");
  record.sha256 = sha256Hex("another text");
  ASSERT_TRUE(store.saveApplied(record).ok());
  EXPECT_FALSE(store.loadApplied().ok());
}

TEST_F(PolicyStoreTest, AnUnwritableDirectoryIsAnError) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes anywhere";
  fs::permissions(dir_, fs::perms(0500));
  EXPECT_FALSE(PolicyStore(dir_).saveApplied(applied(1, "x")).ok());
  fs::permissions(dir_, fs::perms(0700));
}

}  // namespace
}  // namespace vgate::control
