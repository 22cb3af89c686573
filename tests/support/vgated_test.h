// Runs the real vgated binary as a user does, from a fixture with its own temporary directory: the exit code,
// stdout and stderr of each run, and helpers to read files and JSON lines. The directory goes on teardown.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace vgate::testing {

inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::vector<nlohmann::json> jsonLines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

struct CommandOutput {
  int exitCode = -1;
  std::string out;
  std::string err;
};

class VgatedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `arguments` go through the shell as written (quote paths that need it).
  CommandOutput vgated(const std::string& arguments) {
    std::string command = std::string(VGATE_BINARY_DIR) + "/control/vgated " + arguments + " >" +
                          (dir_ / "out").string() + " 2>" + (dir_ / "err").string();
    int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, readFile(dir_ / "out"), readFile(dir_ / "err")};
  }

  std::filesystem::path dir_;
};

}  // namespace vgate::testing
