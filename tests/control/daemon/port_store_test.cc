// ports.json: what vgated writes is what the next vgated reads, and a file that is not vgate's stops the
// start with a message saying what to do.
#include "control/daemon/port_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace vgate::control {
namespace {

namespace fs = std::filesystem;

class PortStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-port-store-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& text) { std::ofstream(dir_ + "/ports.json") << text; }
  std::string dir_;
};

PortPair pairNumbered(uint16_t id) {
  PortPair pair;
  pair.id = id;
  pair.name = "web-" + std::to_string(id);
  pair.netnsPath = "/proc/" + std::to_string(100 + id) + "/ns/net";
  pair.pid = 100 + id;
  pair.containerIfname = "eth0";
  pair.containerIfindex = 2;
  pair.hostIfname = "veth" + std::to_string(id);
  pair.bridgeName = "docker0";
  pair.bridgeIfindex = 3;
  pair.innerName = "vgi-" + std::to_string(id);
  pair.innerIfindex = 40 + id;
  pair.outerName = "vge-" + std::to_string(id);
  pair.outerIfindex = 1000000 + id;
  pair.hostIfindex = 50 + id;
  return pair;
}

TEST_F(PortStoreTest, NoFileIsNoPorts) {
  auto loaded = PortStore(dir_).load();
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(loaded.value().empty());
}

TEST_F(PortStoreTest, WhatIsSavedIsLoaded) {
  std::map<uint16_t, PortPair> ports{{1, pairNumbered(1)}, {7, pairNumbered(7)}};
  PortStore store(dir_);
  ASSERT_TRUE(store.save(ports));
  EXPECT_FALSE(fs::exists(dir_ + "/ports.json.tmp"));
  auto loaded = store.load();
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_EQ(loaded.value().size(), 2u);
  EXPECT_EQ(loaded.value()[0], ports[1]);
  EXPECT_EQ(loaded.value()[1], ports[7]);
  // Saving fewer ports replaces the file whole.
  ports.erase(1);
  ASSERT_TRUE(store.save(ports));
  ASSERT_EQ(store.load().value().size(), 1u);
}

TEST_F(PortStoreTest, AFileThatIsNotVgatesIsRefusedWithTheWayOut) {
  for (const char* text : {"not json", "{}", R"({"ports": 3})", "[1, 2]"}) {
    write(text);
    auto loaded = PortStore(dir_).load();
    ASSERT_FALSE(loaded) << text;
    EXPECT_EQ(loaded.error().code, EINVAL);
    EXPECT_NE(loaded.error().message.find("move it away"), std::string::npos) << loaded.error().message;
  }
}

TEST_F(PortStoreTest, ABadEntryNamesTheFile) {
  write(R"({"version": 1, "ports": [{"id": "one"}]})");
  auto loaded = PortStore(dir_).load();
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, EINVAL);
  EXPECT_NE(loaded.error().message.find(dir_ + "/ports.json: "), std::string::npos) << loaded.error().message;
}

TEST_F(PortStoreTest, AnUnwritableDirectoryIsAnError) {
  PortStore store(dir_ + "/missing");
  auto saved = store.save({{1, pairNumbered(1)}});
  ASSERT_FALSE(saved);
  EXPECT_NE(saved.error().message.find("cannot write"), std::string::npos) << saved.error().message;
}

}  // namespace
}  // namespace vgate::control
