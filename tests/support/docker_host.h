// A fixture for tests that put vgate in front of real Docker containers: it makes sure dockerd runs and the
// offline test image exists (tests/support/make-test-image.sh), creates Docker networks and containers with
// names unique to the test process, runs the vgated under test with its own state dir, bpffs and socket, and
// undoes all of it in TearDown, which runs after a failed assertion too.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace vgate::testing {

struct Shell {
  int exitCode = -1;
  std::string out;  // stdout and stderr together
};

// Runs `command` under sh; `stdin` is /dev/null so that no child waits on the test's terminal.
inline Shell sh(const std::string& command) {
  Shell result;
  std::string wrapped = "( " + command + " ) </dev/null 2>&1";
  std::FILE* pipe = popen(wrapped.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) result.out.append(buffer, n);
  int status = pclose(pipe);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Single quotes for sh.
inline std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

inline std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Polls `done` every 100 ms until it holds or `timeout` passes.
template <typename Predicate>
bool waitFor(Predicate done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

struct DockerNetwork {
  std::string name;
  std::string subnet4;   // "10.213.7.0/24"
  std::string gateway4;  // the host's address on the bridge
  std::string subnet6;   // empty without IPv6
  std::string bridge;    // br-<id>
  int mtu = 1500;
};

struct Container {
  std::string name;
  int pid = 0;
  std::string ip4;
  std::string ip6;
  std::string hostVeth;  // the host end of its eth0's veth
};

class DockerHostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skipReason() = "needs root (Docker, namespaces, bpffs)";
      return;
    }
    auto started = std::chrono::steady_clock::now();
    Shell made = sh("bash " + quote(std::string(VGATE_TEST_DATA_DIR) + "/../support/make-test-image.sh"));
    if (made.exitCode != 0) {
      skipReason() = "no Docker engine or test image: " + made.out;
      return;
    }
    std::fprintf(stderr, "[ docker   ] dockerd and vgate-test image ready in %.1f s\n%s",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                 made.out.c_str());
  }

  void SetUp() override {
    if (!skipReason().empty()) GTEST_SKIP() << skipReason();
    char pattern[] = "/tmp/vgate-docker-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    prefix_ = "vgd" + std::to_string(getpid()) + "-" + std::to_string(++counter());
  }

  void TearDown() override {
    if (dir_.empty()) return;
    if (vgatedPid_ > 0) {
      ctl("detach --all");
      stopVgated();
    }
    for (const auto& name : containers_) sh("docker rm -f " + name + " >/dev/null");
    for (const auto& name : networks_) sh("docker network rm " + name + " >/dev/null");
    // vgate's netns holds the ports of containers still interposed when vgated stopped: unmounting it is
    // the last reference, and the kernel deletes its veths (and so their host ends) with it.
    umount2((dir_ / "state/netns").c_str(), MNT_DETACH);
    umount2((dir_ / "bpffs").c_str(), MNT_DETACH);
    if (::testing::Test::HasFailure() || std::getenv("VGATE_TEST_VERBOSE") != nullptr) {
      std::fprintf(stderr, "---- vgated's log ----\n%s---- flow log ----\n%s\n",
                   readText(dir_ / "vgated.log").c_str(), readText(flowLogPath()).c_str());
    }
    std::filesystem::remove_all(dir_);
  }

  // A bridge network with a /24 (and a /64 when `ipv6`) that no other network uses, and extra `options`.
  DockerNetwork createNetwork(const std::string& suffix, bool ipv6 = true, int mtu = 0) {
    DockerNetwork network;
    network.name = prefix_ + "-" + suffix;
    network.mtu = mtu > 0 ? mtu : 1500;
    for (int attempt = 0; attempt < 20; ++attempt) {
      int third = static_cast<int>((getpid() * 7 + counter() * 13 + attempt * 31) % 250) + 1;
      network.subnet4 = "10.213." + std::to_string(third) + ".0/24";
      network.gateway4 = "10.213." + std::to_string(third) + ".1";
      network.subnet6 = ipv6 ? "fd00:5667:" + std::to_string(third) + "::/64" : "";
      std::string command = "docker network create --driver bridge --subnet " + network.subnet4 +
                            " --gateway " + network.gateway4;
      if (ipv6) command += " --ipv6 --subnet " + network.subnet6;
      if (mtu > 0) command += " -o com.docker.network.driver.mtu=" + std::to_string(mtu);
      Shell created = sh(command + " " + network.name);
      if (created.exitCode == 0) {
        networks_.push_back(network.name);
        network.bridge = "br-" + trim(created.out).substr(0, 12);
        return network;
      }
      if (created.out.find("overlap") == std::string::npos) {
        ADD_FAILURE() << command << ": " << created.out;
        break;
      }
    }
    ADD_FAILURE() << "no free subnet for " << network.name;
    return network;
  }

  // A container of the test image that sleeps, on `network`.
  Container startContainer(const std::string& suffix, const DockerNetwork& network) {
    Container container;
    container.name = prefix_ + "-" + suffix;
    Shell run =
        sh("docker run -d --network " + network.name + " --name " + container.name + " vgate-test sleep 600");
    EXPECT_EQ(run.exitCode, 0) << run.out;
    containers_.push_back(container.name);
    std::string format =
        "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}";
    std::istringstream fields(sh("docker inspect -f " + quote(format) + " " + container.name).out);
    fields >> container.pid >> container.ip4 >> container.ip6;
    if (network.subnet6.empty()) container.ip6.clear();
    // "eth0@ifN": N is the host end's ifindex (sysfs, mounted in the host's netns, would show the host's
    // eth0).
    std::string iflink = trim(sh("nsenter -t " + std::to_string(container.pid) +
                                 " -n ip -o link show eth0 | sed -n 's/.*eth0@if\\([0-9]*\\):.*/\\1/p'")
                                  .out);
    container.hostVeth =
        trim(sh("ip -o link | awk -F': ' '$1 == \"" + iflink + "\" {sub(/@.*/, \"\", $2); print $2}'").out);
    // The kernel ends IPv6 duplicate address detection on its own time; a snapshot taken during it differs.
    waitFor([&] { return inNetns(container, "ip addr").out.find("tentative") == std::string::npos; },
            std::chrono::seconds(5));
    EXPECT_GT(container.pid, 0) << container.name;
    EXPECT_FALSE(container.ip4.empty()) << container.name;
    EXPECT_FALSE(container.hostVeth.empty()) << container.name << " iflink " << iflink;
    return container;
  }

  Shell exec(const Container& container, const std::string& command) {
    return sh("docker exec " + container.name + " sh -c " + quote(command));
  }
  // Starts `command` in the container and returns at once.
  void execDetached(const Container& container, const std::string& command) {
    Shell started = sh("docker exec -d " + container.name + " sh -c " + quote(command));
    EXPECT_EQ(started.exitCode, 0) << started.out;
  }
  // `command` in the container's network namespace, with the host's tools.
  Shell inNetns(const Container& container, const std::string& command) {
    return sh("nsenter -t " + std::to_string(container.pid) + " -n sh -c " + quote(command));
  }
  Shell inVgateNetns(const std::string& command) {
    return sh("nsenter --net=" + (dir_ / "state/netns").string() + " sh -c " + quote(command));
  }

  static std::string binary(const std::string& name) {
    return std::string(VGATE_BINARY_DIR) + "/control/" + name;
  }

  // Starts vgated with `policy` (none when empty) and waits until its control socket answers.
  void startVgated(const std::string& policy = "") {
    std::vector<std::string> args{binary("vgated"),
                                  "run",
                                  "--state-dir",
                                  (dir_ / "state").string(),
                                  "--bpffs",
                                  (dir_ / "bpffs").string(),
                                  "--socket",
                                  socketPath(),
                                  "--flow-log",
                                  flowLogPath(),
                                  "--heartbeat-timeout-ms",
                                  "300",
                                  "--fail-mode",
                                  "closed"};
    if (!policy.empty()) {
      args.push_back("--policy");
      args.push_back(policy);
    }
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::string log = (dir_ / "vgated.log").string();
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(spawned, 0) << "cannot run " << argv[0];
    vgatedPid_ = pid;
    bool up = waitFor(
        [&] {
          int status = 0;
          if (waitpid(vgatedPid_, &status, WNOHANG) == vgatedPid_) {
            vgatedPid_ = -1;
            return true;
          }
          return ctl("status --json").exitCode == 0;
        },
        std::chrono::seconds(60));
    ASSERT_TRUE(up && vgatedPid_ > 0) << "vgated did not come up:\n" << readText(dir_ / "vgated.log");
  }

  // SIGTERM, then the exit status (SIGKILL after 30 s).
  int stopVgated() {
    if (vgatedPid_ <= 0) return -1;
    kill(vgatedPid_, SIGTERM);
    int status = 0;
    bool exited = waitFor([&] { return waitpid(vgatedPid_, &status, WNOHANG) == vgatedPid_; },
                          std::chrono::seconds(30));
    if (!exited) {
      kill(vgatedPid_, SIGKILL);
      waitpid(vgatedPid_, &status, 0);
    }
    vgatedPid_ = -1;
    EXPECT_TRUE(exited) << "vgated ignored SIGTERM for 30 s";
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  Shell ctl(const std::string& arguments) {
    return sh(binary("vgatectl") + " --socket " + socketPath() + " " + arguments);
  }
  void attach(const Container& container) {
    Shell attached = ctl("attach --pid " + std::to_string(container.pid) + " --name " + container.name);
    ASSERT_EQ(attached.exitCode, 0) << attached.out << readText(dir_ / "vgated.log");
  }
  void detach(const Container& container) {
    Shell detached = ctl("detach --pid " + std::to_string(container.pid));
    ASSERT_EQ(detached.exitCode, 0) << detached.out;
  }
  nlohmann::json status() {
    Shell answer = ctl("status --json");
    if (answer.exitCode != 0) return nlohmann::json();
    return nlohmann::json::parse(answer.out, nullptr, false);
  }

  std::vector<nlohmann::json> flowRecords() {
    std::vector<nlohmann::json> records;
    std::istringstream in(readText(flowLogPath()));
    for (std::string line; std::getline(in, line);) {
      auto record = nlohmann::json::parse(line, nullptr, false);
      if (!record.is_discarded()) records.push_back(std::move(record));
    }
    return records;
  }

  std::string socketPath() const { return (dir_ / "vgated.sock").string(); }
  std::string flowLogPath() const { return (dir_ / "flows.jsonl").string(); }

  static std::string readText(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::filesystem::path dir_;
  std::string prefix_;
  pid_t vgatedPid_ = -1;

 private:
  static std::string& skipReason() {
    static std::string reason;
    return reason;
  }
  static int& counter() {
    static int value = 0;
    return value;
  }

  std::vector<std::string> containers_;
  std::vector<std::string> networks_;
};

}  // namespace vgate::testing
