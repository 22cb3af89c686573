// A GoogleTest environment that starts DPDK's EAL once per test program, the way vgated does: no hugepages,
// no shared files, no PCI scan, logs on stderr. Include it from a test file that needs rte_* objects.
#pragma once

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_log.h>

#include <cstdio>
#include <string>
#include <vector>

namespace vgate::testing {

class EalEnvironment : public ::testing::Environment {
 public:
  explicit EalEnvironment(int memoryMb = 512) : memoryMb_(memoryMb) {}
  void SetUp() override {
    rte_openlog_stream(stderr);
    std::string memory = std::to_string(memoryMb_);
    std::vector<std::string> args = {"vgate-test",
                                     "--no-huge",
                                     "-m",
                                     memory,
                                     "--no-pci",
                                     "--no-shconf",
                                     "--no-telemetry",
                                     "--log-level=*:warning",
                                     "-l",
                                     "0"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0) << "rte_eal_init failed";
  }
  void TearDown() override { rte_eal_cleanup(); }

 private:
  int memoryMb_;
};

// Registers the environment before main() runs; GoogleTest takes ownership.
inline ::testing::Environment* const kEalEnvironment =
    ::testing::AddGlobalTestEnvironment(new EalEnvironment(1024));

}  // namespace vgate::testing
