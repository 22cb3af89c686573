// The real vgatectl binary against an in-test control server whose fake handlers record what they were sent:
// the exact request args of each command form, the output, the messages and the exit statuses 0/1/2/3.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "control/socket/control_server.h"
#include "support/vgated_test.h"

namespace vgate::control {
namespace {

using nlohmann::json;
using vgate::testing::CommandOutput;

const char* const kStatusResult = R"({"daemon":"0.1.0","failMode":"closed",
  "policy":{"name":"x","version":3,"mode":"enforce"},
  "workers":[{"id":0,"driver":"net_af_xdp","packets":0,"bytes":0,"flows":0,"denied":0}],
  "ports":[{"id":1,"name":"web","netns":"/proc/123/ns/net","pid":123,"ifname":"eth0","hostIfname":"veth1a2b",
            "bridge":"docker0","inner":"vgi-1","outer":"vge-1"},
           {"id":2,"name":"cache","netns":"/run/netns/cache","ifname":"eth0"}],
  "fastPath":{"hits":0,"misses":0,"denied":0,"notFlow":0,"failClosedDrops":0,"failOpenPasses":0}})";

struct Call {
  std::string verb;
  json args;
};

class VgatectlTest : public vgate::testing::VgatedTest {
 protected:
  void SetUp() override {
    VgatedTest::SetUp();
    socket_ = (dir_ / "ctl.sock").string();
    ControlHandlers handlers;
    for (const char* verb : {"attach", "detach", "status"}) {
      handlers[verb] = [this, verb](const json& args, const PeerCredentials&) {
        std::lock_guard lock(mutex_);
        calls_.push_back({verb, args});
        return replies_.count(verb) ? replies_[verb] : ControlReply::success();
      };
    }
    replies_["attach"] = ControlReply::success(json::parse(
        R"({"id":1,"name":"web","netns":"/proc/123/ns/net","ifname":"eth0","inner":"vgi-1","outer":"vge-1"})"));
    replies_["detach"] = ControlReply::success({{"detached", 2}});
    replies_["status"] = ControlReply::success(json::parse(kStatusResult));
    ControlServerOptions options;
    options.daemonVersion = "0.1.0";
    auto server = ControlServer::start(socket_, std::move(handlers), options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(server.value());
  }
  void TearDown() override {
    server_.reset();
    VgatedTest::TearDown();
  }

  // Runs `prefix` (e.g. an environment assignment) then vgatectl with `arguments`, through the shell.
  CommandOutput run(const std::string& prefix, const std::string& arguments) {
    std::string command = prefix + " " + std::string(VGATE_BINARY_DIR) + "/control/vgatectl " + arguments +
                          " >" + (dir_ / "out").string() + " 2>" + (dir_ / "err").string();
    int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, vgate::testing::readFile(dir_ / "out"),
            vgate::testing::readFile(dir_ / "err")};
  }
  // vgatectl against the test server.
  CommandOutput vgatectl(const std::string& arguments) {
    return run("", "--socket " + socket_ + " " + arguments);
  }

  void setReply(const std::string& verb, ControlReply reply) {
    std::lock_guard lock(mutex_);
    replies_[verb] = std::move(reply);
  }

  std::vector<Call> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

  std::string socket_;
  std::unique_ptr<ControlServer> server_;
  std::mutex mutex_;
  std::vector<Call> calls_;
  std::map<std::string, ControlReply> replies_;
};

TEST_F(VgatectlTest, EachCommandFormSendsExactlyTheseArgs) {
  struct Case {
    std::string arguments;
    std::string verb;
    json args;
  };
  const Case cases[] = {
      {"attach --netns /run/netns/a", "attach", {{"netns", "/run/netns/a"}, {"ifname", "eth0"}}},
      {"attach --netns /proc/123/ns/net --ifname eth1 --name web",
       "attach",
       {{"netns", "/proc/123/ns/net"}, {"ifname", "eth1"}, {"name", "web"}}},
      {"attach --pid 123", "attach", {{"pid", 123}, {"ifname", "eth0"}}},
      {"attach --pid=123 --ifname=eth2 --name=db",
       "attach",
       {{"pid", 123}, {"ifname", "eth2"}, {"name", "db"}}},
      {"detach --netns /run/netns/a", "detach", {{"netns", "/run/netns/a"}}},
      {"detach --pid 123", "detach", {{"pid", 123}}},
      {"detach --all", "detach", {{"all", true}}},
      {"status", "status", json::object()},
      {"status --json", "status", json::object()},
  };
  for (const auto& form : cases) {
    CommandOutput output = vgatectl(form.arguments);
    EXPECT_EQ(output.exitCode, 0) << form.arguments << ": " << output.err;
    auto seen = calls();
    ASSERT_FALSE(seen.empty()) << form.arguments;
    EXPECT_EQ(seen.back().verb, form.verb) << form.arguments;
    EXPECT_EQ(seen.back().args, form.args) << form.arguments << ": " << seen.back().args.dump();
  }
  EXPECT_EQ(calls().size(), std::size(cases));
}

TEST_F(VgatectlTest, AttachAndDetachPrintOneLine) {
  CommandOutput attach = vgatectl("attach --netns /proc/123/ns/net --name web");
  EXPECT_EQ(attach.exitCode, 0) << attach.err;
  EXPECT_EQ(attach.out, "attached web: eth0 in /proc/123/ns/net (port 1, vge-1/vgi-1)\n");
  EXPECT_EQ(attach.err, "");
  CommandOutput detach = vgatectl("detach --all");
  EXPECT_EQ(detach.exitCode, 0) << detach.err;
  EXPECT_EQ(detach.out, "detached 2 port(s)\n");
}

TEST_F(VgatectlTest, StatusJsonIsTheResult) {
  CommandOutput output = vgatectl("status --json");
  ASSERT_EQ(output.exitCode, 0) << output.err;
  EXPECT_EQ(json::parse(output.out), json::parse(kStatusResult));
}

TEST_F(VgatectlTest, StatusTextShowsPortsAndSummary) {
  CommandOutput output = vgatectl("status");
  ASSERT_EQ(output.exitCode, 0) << output.err;
  for (const char* expected : {"web", "cache", "veth1a2b", "docker0", "/proc/123/ns/net", "net_af_xdp",
                               "fail mode closed", "policy x version 3, mode enforce", "ports: 2"}) {
    EXPECT_NE(output.out.find(expected), std::string::npos) << expected << " not in:\n" << output.out;
  }
}

TEST_F(VgatectlTest, SocketFromTheEnvironmentOrTheOption) {
  CommandOutput output = run("VGATE_SOCKET=" + socket_, "detach --pid 5");
  EXPECT_EQ(output.exitCode, 0) << output.err;
  EXPECT_EQ(calls().back().args, json({{"pid", 5}}));
  output = run("VGATE_SOCKET=/nonexistent.sock", "--socket=" + socket_ + " detach --pid 6");
  EXPECT_EQ(output.exitCode, 0) << output.err;
  EXPECT_EQ(calls().back().args, json({{"pid", 6}}));
}

TEST_F(VgatectlTest, DaemonErrorIsExitOneWithItsErrnoName) {
  setReply("attach", ControlReply::failure(EEXIST, "port web is attached already"));
  CommandOutput output = vgatectl("attach --pid 123 --name web");
  EXPECT_EQ(output.exitCode, 1);
  EXPECT_EQ(output.out, "");
  EXPECT_EQ(output.err, "vgatectl: EEXIST: port web is attached already\n");

  setReply("detach", ControlReply::failure(ENOENT, "no port in /run/netns/zz"));
  output = vgatectl("detach --netns /run/netns/zz");
  EXPECT_EQ(output.exitCode, 1);
  EXPECT_EQ(output.err, "vgatectl: ENOENT: no port in /run/netns/zz\n");
}

TEST_F(VgatectlTest, UnknownVerbAtTheDaemonIsExitOne) {
  server_.reset();
  auto server = ControlServer::start(socket_, {}, {});
  ASSERT_TRUE(server.ok());
  CommandOutput output = vgatectl("status");
  EXPECT_EQ(output.exitCode, 1);
  EXPECT_EQ(output.err, "vgatectl: EOPNOTSUPP: unknown verb 'status'\n");
}

TEST_F(VgatectlTest, BadUsageIsExitTwoAndSendsNothing) {
  struct Case {
    std::string arguments;
    std::string message;
  };
  const Case cases[] = {
      {"", "vgatectl: no command given (try 'vgatectl --help')\n"},
      {"frob", "vgatectl: unknown command 'frob' (try 'vgatectl --help')\n"},
      {"attach", "vgatectl: attach needs --netns PATH or --pid PID (try 'vgatectl --help')\n"},
      {"attach --netns /a --pid 1",
       "vgatectl: attach takes one of --netns PATH or --pid PID, not several (try 'vgatectl --help')\n"},
      {"attach --pid abc",
       "vgatectl: option --pid must be a whole number from 1 to 4194304, not 'abc' (try 'vgatectl "
       "--help')\n"},
      {"attach --pid 1 --bogus",
       "vgatectl: unknown option --bogus for 'vgatectl attach' (try 'vgatectl --help')\n"},
      {"detach", "vgatectl: detach needs --netns PATH, --pid PID or --all (try 'vgatectl --help')\n"},
      {"status now", "vgatectl: unexpected argument 'now' for 'vgatectl status' (try 'vgatectl --help')\n"},
  };
  for (const auto& form : cases) {
    CommandOutput output = vgatectl(form.arguments);
    EXPECT_EQ(output.exitCode, 2) << form.arguments;
    EXPECT_EQ(output.err, form.message) << form.arguments;
    EXPECT_EQ(output.out, "");
  }
  EXPECT_TRUE(calls().empty());
}

TEST_F(VgatectlTest, UnreachableDaemonIsExitThree) {
  std::string missing = (dir_ / "none.sock").string();
  CommandOutput output = run("", "--socket " + missing + " status");
  EXPECT_EQ(output.exitCode, 3);
  EXPECT_EQ(output.err, "vgatectl: cannot connect to " + missing + ": No such file or directory\n");

  server_.reset();  // the file goes with it; a stale one would be refused instead
  output = vgatectl("status");
  EXPECT_EQ(output.exitCode, 3);
  EXPECT_EQ(output.err, "vgatectl: cannot connect to " + socket_ + ": No such file or directory\n");
}

TEST_F(VgatectlTest, DefaultSocketPathIsNamedWhenUnreachable) {
  if (std::filesystem::exists("/run/vgate/vgated.sock")) GTEST_SKIP() << "a vgated runs on this machine";
  CommandOutput output = run("env -u VGATE_SOCKET", "status");
  EXPECT_EQ(output.exitCode, 3);
  EXPECT_EQ(output.err, "vgatectl: cannot connect to /run/vgate/vgated.sock: No such file or directory\n");
}

TEST_F(VgatectlTest, HelpIsUsageOnStdout) {
  CommandOutput output = run("", "--help");
  EXPECT_EQ(output.exitCode, 0);
  EXPECT_EQ(output.err, "");
  EXPECT_EQ(output.out.rfind("usage: vgatectl", 0), 0u);
  for (const char* expected :
       {"attach --netns PATH", "attach --pid PID", "detach --netns PATH | --pid PID | --all",
        "status [--json]", "/run/vgate/vgated.sock", "VGATE_SOCKET"}) {
    EXPECT_NE(output.out.find(expected), std::string::npos) << expected;
  }
}

}  // namespace
}  // namespace vgate::control
