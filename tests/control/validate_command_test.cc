// `vgated validate` as a user runs it: the shipped policies pass, a broken one lists every problem with its
// position, and bad invocations exit 2 with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/vgated_test.h"

namespace {

namespace fs = std::filesystem;

using ValidateCommand = vgate::testing::VgatedTest;

TEST_F(ValidateCommand, ShippedPoliciesAreValid) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(VGATE_TEST_DATA_DIR) / "../../policies")) {
    vgate::testing::CommandOutput run = vgated("validate " + entry.path().string());
    EXPECT_EQ(run.exitCode, 0) << entry.path() << "\n" << run.out << run.err;
    EXPECT_NE(run.out.find("is valid"), std::string::npos) << run.out;
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST_F(ValidateCommand, BrokenPolicyListsEveryProblemWithItsPosition) {
  std::ofstream(dir_ / "bad.yaml") << "apiVersion: vgate.io/v1\n"
                                      "kind: Policy\n"
                                      "metadata: {name: bad}\n"
                                      "spec:\n"
                                      "  default: allow\n"
                                      "  rules:\n"
                                      "    - name: one\n"
                                      "      action: deny\n"
                                      "      match:\n"
                                      "        destination: {cidrs: [10.0.0.1/8], ports: [\"90-80\"]}\n"
                                      "    - name: one\n"
                                      "      action: allow\n"
                                      "      match: {protocl: tcp}\n";
  vgate::testing::CommandOutput run = vgated("validate " + (dir_ / "bad.yaml").string());
  EXPECT_EQ(run.exitCode, 2);
  std::string file = (dir_ / "bad.yaml").string();
  // Host bits, the inverted range, the duplicate name and the misspelt key: each on its own line, positioned.
  EXPECT_NE(run.out.find(file + ":10:"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("rule 'one'"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("protocol"), std::string::npos) << run.out;  // did-you-mean
  EXPECT_NE(run.out.find(file + ":11:"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(file + ":13:"), std::string::npos) << run.out;
  EXPECT_GE(std::count(run.out.begin(), run.out.end(), '\n'), 4) << run.out;
}

TEST_F(ValidateCommand, BadInvocationsExitTwoWithOneLine) {
  for (const std::string& arguments :
       {std::string("validate"), std::string("validate /nonexistent/policy.yaml"),
        std::string("validate a b")}) {
    vgate::testing::CommandOutput run = vgated(arguments);
    EXPECT_EQ(run.exitCode, 2) << arguments;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << arguments << ": " << run.err;
  }
}

}  // namespace
