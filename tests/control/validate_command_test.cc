// `vgated validate` as a user runs it: the shipped policies pass, a broken one lists every problem with its
// position, and bad invocations exit 2 with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Output {
  int exitCode;
  std::string out;
  std::string err;
};

Output vgated(const std::string& arguments, const fs::path& dir) {
  std::string command = std::string(VGATE_BINARY_DIR) + "/control/vgated " + arguments + " >" +
                        (dir / "out").string() + " 2>" + (dir / "err").string();
  int status = std::system(command.c_str());
  auto read = [](const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read(dir / "out"), read(dir / "err")};
}

class ValidateCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-validate-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ValidateCommand, ShippedPoliciesAreValid) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(VGATE_TEST_DATA_DIR) / "../../policies")) {
    Output run = vgated("validate " + entry.path().string(), dir_);
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
  Output run = vgated("validate " + (dir_ / "bad.yaml").string(), dir_);
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
    Output run = vgated(arguments, dir_);
    EXPECT_EQ(run.exitCode, 2) << arguments;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << arguments << ": " << run.err;
  }
}

}  // namespace
