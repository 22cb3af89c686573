// The policy verbs end to end as an operator uses them: the real vgatectl binary, the real control server,
// PolicyControl on a real registry (EAL) and state dir. Good and bad input for each verb; a bad policy prints
// file:line:column: rule 'name': message for each problem, exits 1 and leaves the old policy in force while
// the daemon serves on.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "control/daemon/policy_control.h"
#include "control/socket/control_client.h"
#include "control/socket/control_server.h"
#include "dataplane/verdict/compiled_policy.h"
#include "support/eal_environment.h"
#include "support/vgated_test.h"

namespace vgate::control {
namespace {

using Json = nlohmann::json;
using vgate::testing::CommandOutput;

std::string policyText(const std::string& name, const std::string& port) {
  return "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: " + name +
         "}\nspec:\n  default: allow\n  rules:\n    - name: deny-port\n      action: deny\n"
         "      match: {protocol: tcp, destination: {ports: [\"" +
         port + "\"]}}\n";
}

constexpr const char* kBadRules = R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: bad}
spec:
  rules:
    - name: first-bad
      action: deny
      match: {protocol: tcp, destination: {ports: ["70000"]}}
    - name: second-bad
      action: explode
)";

class PolicyVerbsTest : public vgate::testing::VgatedTest {
 protected:
  void SetUp() override {
    VgatedTest::SetUp();
    auto registry = dataplane::PolicyRegistry::create(1);
    ASSERT_TRUE(registry.ok());
    registry_ = std::move(registry).value();
    PolicyControlOptions options;
    options.stateDir = (dir_ / "state").string();
    options.compile.cacheDir = (dir_ / "cache").string();
    auto control = PolicyControl::open(options, registry_.get(), nullptr);
    ASSERT_TRUE(control.ok()) << control.error().message;
    control_ = std::move(control).value();
    PolicyControl* policy = control_.get();
    ControlHandlers handlers;
    handlers["policy.apply"] = [policy](const Json& a, const PeerCredentials& p) {
      return policy->apply(a, p);
    };
    handlers["policy.validate"] = [policy](const Json& a, const PeerCredentials&) {
      return policy->validate(a);
    };
    handlers["policy.diff"] = [policy](const Json& a, const PeerCredentials&) { return policy->diff(a); };
    handlers["policy.get"] = [policy](const Json& a, const PeerCredentials&) { return policy->get(a); };
    handlers["policy.history"] = [policy](const Json& a, const PeerCredentials&) {
      return policy->history(a);
    };
    socket_ = (dir_ / "ctl.sock").string();
    auto server = ControlServer::start(socket_, std::move(handlers), {});
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(server).value();
  }
  void TearDown() override {
    server_.reset();
    control_.reset();
    registry_.reset();
    VgatedTest::TearDown();
  }

  CommandOutput vgatectl(const std::string& arguments) {
    std::string command = "cd " + dir_.string() + " && " + std::string(VGATE_BINARY_DIR) +
                          "/control/vgatectl --socket " + socket_ + " " + arguments + " >out 2>err";
    int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, vgate::testing::readFile(dir_ / "out"),
            vgate::testing::readFile(dir_ / "err")};
  }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }

  std::unique_ptr<dataplane::PolicyRegistry> registry_;
  std::unique_ptr<PolicyControl> control_;
  std::unique_ptr<ControlServer> server_;
  std::string socket_;
};

TEST_F(PolicyVerbsTest, ApplyGetAndHistory) {
  write("one.yaml", policyText("one", "23"));
  CommandOutput applied = vgatectl("policy apply one.yaml");
  ASSERT_EQ(applied.exitCode, 0) << applied.err;
  EXPECT_EQ(
      applied.out.rfind("applied policy 'one' version 1 (1 rules, mode enforce, the first policy) in ", 0),
      0u)
      << applied.out;
  EXPECT_EQ(registry_->current()->version(), 1u);

  CommandOutput got = vgatectl("policy get");
  ASSERT_EQ(got.exitCode, 0) << got.err;
  EXPECT_EQ(got.out.rfind("# vgate policy 'one' version 1, applied ", 0), 0u) << got.out;
  EXPECT_NE(got.out.find(policyText("one", "23")), std::string::npos);
  // What get prints applies again as it is.
  write("again.yaml", got.out);
  CommandOutput again = vgatectl("policy apply again.yaml");
  EXPECT_EQ(again.exitCode, 0) << again.err;
  EXPECT_NE(again.out.find("version 2"), std::string::npos) << again.out;

  CommandOutput json = vgatectl("policy get --json");
  ASSERT_EQ(json.exitCode, 0);
  Json result = Json::parse(json.out);
  EXPECT_EQ(result["version"], 2);
  EXPECT_EQ(result["fileName"], "again.yaml");
  EXPECT_EQ(result["origin"], "socket");

  CommandOutput history = vgatectl("policy history");
  ASSERT_EQ(history.exitCode, 0) << history.err;
  EXPECT_NE(history.out.find("applied"), std::string::npos) << history.out;
  EXPECT_NE(history.out.find("*        2"), std::string::npos) << history.out;
  Json entries = Json::parse(vgatectl("policy history --json").out)["history"];
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0]["version"], 1);
  EXPECT_EQ(entries[0]["rules"], 1);
  EXPECT_EQ(entries[0]["name"], "one");
  EXPECT_NE(entries[0]["source"].get<std::string>().find("vgatectl (uid "), std::string::npos);
}

TEST_F(PolicyVerbsTest, ABadPolicyPrintsEachProblemExitsOneAndChangesNothing) {
  write("good.yaml", policyText("good", "23"));
  ASSERT_EQ(vgatectl("policy apply good.yaml").exitCode, 0);
  write("bad.yaml", kBadRules);
  CommandOutput bad = vgatectl("policy apply bad.yaml");
  EXPECT_EQ(bad.exitCode, 1);
  EXPECT_EQ(bad.out, "");
  std::istringstream lines(bad.err);
  std::string first, second, last;
  std::getline(lines, first);
  std::getline(lines, second);
  std::getline(lines, last);
  EXPECT_EQ(first.rfind("bad.yaml:8:", 0), 0u) << bad.err;
  EXPECT_NE(first.find(": rule 'first-bad': "), std::string::npos) << bad.err;
  EXPECT_EQ(second.rfind("bad.yaml:10:", 0), 0u) << bad.err;
  EXPECT_NE(second.find(": rule 'second-bad': "), std::string::npos) << bad.err;
  EXPECT_EQ(last.rfind("vgatectl: EINVAL: bad.yaml is invalid (2 error(s)); the policy in force, version 1, "
                       "is unchanged",
                       0),
            0u)
      << bad.err;
  EXPECT_EQ(registry_->current()->name(), "good");

  write("junk.yaml", "spec: [unclosed\n");
  CommandOutput junk = vgatectl("policy apply junk.yaml");
  EXPECT_EQ(junk.exitCode, 1);
  EXPECT_EQ(junk.err.rfind("junk.yaml:", 0), 0u) << junk.err;

  // The daemon serves on, with the old policy.
  CommandOutput got = vgatectl("policy get --json");
  ASSERT_EQ(got.exitCode, 0);
  EXPECT_EQ(Json::parse(got.out)["version"], 1);
  write("next.yaml", policyText("next", "25"));
  EXPECT_EQ(vgatectl("policy apply next.yaml").exitCode, 0);
  EXPECT_EQ(registry_->current()->version(), 2u);
}

TEST_F(PolicyVerbsTest, ValidateAndDiff) {
  write("one.yaml", policyText("one", "23"));
  CommandOutput valid = vgatectl("policy validate one.yaml");
  EXPECT_EQ(valid.exitCode, 0) << valid.err;
  EXPECT_EQ(valid.out, "one.yaml: policy 'one' is valid: 1 rules, mode enforce\n");
  EXPECT_EQ(registry_->current(), nullptr) << "validate applies nothing";
  write("bad.yaml", kBadRules);
  CommandOutput invalid = vgatectl("policy validate bad.yaml");
  EXPECT_EQ(invalid.exitCode, 1);
  EXPECT_NE(invalid.err.find("rule 'first-bad'"), std::string::npos) << invalid.err;

  CommandOutput fromNothing = vgatectl("policy diff one.yaml");
  EXPECT_EQ(fromNothing.exitCode, 0) << fromNothing.err;
  EXPECT_EQ(fromNothing.out, "no policy in force -> one.yaml\n+ rule 'deny-port'\n");
  ASSERT_EQ(vgatectl("policy apply one.yaml").exitCode, 0);
  EXPECT_EQ(vgatectl("policy diff one.yaml").out, "policy 'one' version 1 -> one.yaml\nno differences\n");
  write("two.yaml", policyText("one", "2323"));
  EXPECT_EQ(vgatectl("policy diff two.yaml").out,
            "policy 'one' version 1 -> two.yaml\n~ rule 'deny-port': match.destination.ports\n");
  EXPECT_EQ(vgatectl("policy diff bad.yaml").exitCode, 1);
}

TEST_F(PolicyVerbsTest, NoPolicyAnUnreadableFileAndBadRequests) {
  CommandOutput none = vgatectl("policy get");
  EXPECT_EQ(none.exitCode, 1);
  EXPECT_EQ(none.err, "vgatectl: ENOENT: no policy is in force: every flow is allowed\n");
  EXPECT_EQ(vgatectl("policy history").out, "no policy was ever applied\n");
  CommandOutput missing = vgatectl("policy apply /nonexistent.yaml");
  EXPECT_EQ(missing.exitCode, 2);
  EXPECT_NE(missing.err.find("cannot read /nonexistent.yaml"), std::string::npos) << missing.err;

  // What vgatectl never sends: the verbs refuse it and the connection goes on.
  auto client = ControlClient::connect(socket_).value();
  EXPECT_EQ(client.call("policy.apply", {{"fileName", "x"}}).value().status, EINVAL);
  EXPECT_EQ(client.call("policy.apply", {{"text", 5}}).value().status, EINVAL);
  EXPECT_EQ(client.call("policy.get", {{"text", "x"}}).value().status, EINVAL);
  EXPECT_EQ(client.call("policy.remove").value().status, EOPNOTSUPP);
  auto malformed = client.exchange(R"({"version":1,"id":9,"verb":"policy.apply","args":[1,2]})");
  ASSERT_TRUE(malformed.ok());
  EXPECT_EQ(malformed.value().status, EINVAL);
  auto notJson = client.exchange(R"({"version":1,"id":10,"verb":"policy.apply","args":{"text":")");
  ASSERT_TRUE(notJson.ok());
  EXPECT_EQ(notJson.value().status, EINVAL);
  EXPECT_EQ(client.call("policy.history").value().status, 0);
  EXPECT_EQ(registry_->current(), nullptr);
}

}  // namespace
}  // namespace vgate::control
