// The policy verbs on a real registry (DPDK's RCU under EAL) and a real state dir: a good policy goes in
// force as the next version with its names handed to the flow log first; a bad one changes nothing and says
// why, file:line:column with the rule's name; diff, get and history; and which policy a restart puts back.
#include "control/daemon/policy_control.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "dataplane/verdict/compiled_policy.h"
#include "support/eal_environment.h"

namespace vgate::control {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string policyText(const std::string& name, const std::string& port, const std::string& extra = "") {
  return "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: " + name +
         "}\nspec:\n  mode: enforce\n  default: allow\n  rules:\n    - name: deny-port\n      action: deny\n"
         "      match: {protocol: tcp, destination: {ports: [\"" +
         port + "\"]}}\n" + extra;
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

class PolicyControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-policy-control-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto registry = dataplane::PolicyRegistry::create(2);
    ASSERT_TRUE(registry.ok());
    registry_ = std::move(registry).value();
    open();
  }
  void TearDown() override {
    control_.reset();
    registry_.reset();
    fs::remove_all(dir_);
  }

  // A vgated start on the same state dir: a new PolicyControl, a new registry.
  void open() {
    control_.reset();
    auto registry = dataplane::PolicyRegistry::create(2);
    ASSERT_TRUE(registry.ok());
    registry_ = std::move(registry).value();
    PolicyControlOptions options;
    options.stateDir = dir_;
    options.workers = 2;
    options.compile.cacheDir = dir_ + "/cache";
    auto control = PolicyControl::open(options, registry_.get(), [this](PolicyNames names) {
      // Handed over before the version is current: the flow log knows it before any record of it.
      EXPECT_TRUE(registry_->current() == nullptr || registry_->current()->version() < names.version);
      names_.push_back(std::move(names));
    });
    ASSERT_TRUE(control.ok()) << control.error().message;
    control_ = std::move(control).value();
  }

  ControlReply apply(const std::string& text, const std::string& fileName = "p.yaml") {
    return control_->apply({{"text", text}, {"fileName", fileName}}, PeerCredentials{42, 0, 0});
  }

  std::string writeFile(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;
  std::unique_ptr<dataplane::PolicyRegistry> registry_;
  std::unique_ptr<PolicyControl> control_;
  std::vector<PolicyNames> names_;
};

TEST_F(PolicyControlTest, AGoodPolicyIsTheNextVersion) {
  EXPECT_TRUE(control_->summary().is_null());
  ControlReply first = apply(policyText("one", "23"));
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.result["version"], 1);
  EXPECT_TRUE(first.result["previousVersion"].is_null());
  EXPECT_EQ(first.result["rules"], 1);
  EXPECT_EQ(first.result["persisted"], true);
  ASSERT_NE(registry_->current(), nullptr);
  EXPECT_EQ(registry_->current()->version(), 1u);
  EXPECT_EQ(registry_->current()->name(), "one");

  ControlReply second = apply(policyText("two", "25"));
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.result["version"], 2);
  EXPECT_EQ(second.result["previousVersion"], 1);
  EXPECT_EQ(registry_->current()->version(), 2u);
  ASSERT_EQ(names_.size(), 2u);
  EXPECT_EQ(names_[1].version, 2u);
  EXPECT_EQ(names_[1].policyName, "two");
  EXPECT_EQ(names_[1].ruleNames, std::vector<std::string>{"deny-port"});

  Json summary = control_->summary();
  EXPECT_EQ(summary["version"], 2);
  EXPECT_EQ(summary["name"], "two");
  EXPECT_EQ(summary["source"], "vgatectl (uid 0, pid 42)");
}

TEST_F(PolicyControlTest, ABadPolicyChangesNothingAndNamesFileLineColumnAndRule) {
  ASSERT_TRUE(apply(policyText("good", "23")).ok());
  ControlReply bad = apply(kBadRules, "bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status, EINVAL);
  EXPECT_NE(bad.error.find("version 1, is unchanged"), std::string::npos) << bad.error;
  ASSERT_EQ(bad.result["diagnostics"].size(), 2u) << bad.result.dump();
  std::string firstLine = bad.result["diagnostics"][0];
  std::string secondLine = bad.result["diagnostics"][1];
  EXPECT_EQ(firstLine.rfind("bad.yaml:8:", 0), 0u) << firstLine;
  EXPECT_NE(firstLine.find("rule 'first-bad': "), std::string::npos) << firstLine;
  EXPECT_EQ(secondLine.rfind("bad.yaml:10:", 0), 0u) << secondLine;
  EXPECT_NE(secondLine.find("rule 'second-bad': "), std::string::npos) << secondLine;
  EXPECT_EQ(bad.result["inForce"], 1);
  EXPECT_EQ(registry_->current()->version(), 1u);
  EXPECT_EQ(registry_->current()->name(), "good");
  EXPECT_EQ(names_.size(), 1u);
  ControlReply got = control_->get(Json::object());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.result["text"], policyText("good", "23"));

  // A failed attempt is in the history, without a version; the next good one is version 2.
  ControlReply history = control_->history(Json::object());
  ASSERT_EQ(history.result["history"].size(), 2u);
  EXPECT_EQ(history.result["history"][1]["version"], 0);
  EXPECT_EQ(history.result["history"][1]["result"], "invalid: 2 error(s)");
  EXPECT_EQ(apply(policyText("good", "24")).result["version"], 2);
}

TEST_F(PolicyControlTest, MalformedRequestsAreRefused) {
  auto peer = PeerCredentials{1, 0, 0};
  EXPECT_EQ(control_->apply(Json::object(), peer).status, EINVAL);
  EXPECT_EQ(control_->apply({{"text", 12}}, peer).status, EINVAL);
  EXPECT_EQ(control_->apply({{"text", "x"}, {"bogus", 1}}, peer).status, EINVAL);
  EXPECT_EQ(control_->apply({{"text", "x"}, {"reevaluate", "yes"}}, peer).status, EINVAL);
  EXPECT_EQ(control_->validate({{"text", "x"}, {"reevaluate", true}}).status, EINVAL);
  EXPECT_EQ(control_->apply({{"text", std::string(kMaxPolicyTextBytes + 1, ' ')}}, peer).status, EFBIG);
  EXPECT_EQ(control_->get({{"x", 1}}).status, EINVAL);
  EXPECT_EQ(control_->get(Json::object()).status, ENOENT);
  ControlReply notYaml = control_->apply({{"text", "{{{"}, {"fileName", "junk.yaml"}}, peer);
  EXPECT_EQ(notYaml.status, EINVAL);
  EXPECT_EQ(notYaml.result["diagnostics"][0].get<std::string>().rfind("junk.yaml:", 0), 0u);
  EXPECT_EQ(registry_->current(), nullptr);
}

TEST_F(PolicyControlTest, ValidateCompilesButPublishesNothing) {
  ControlReply valid = control_->validate({{"text", policyText("v", "23")}, {"fileName", "v.yaml"}});
  ASSERT_TRUE(valid.ok()) << valid.error;
  EXPECT_EQ(valid.result["rules"], 1);
  EXPECT_EQ(registry_->current(), nullptr);
  ControlReply invalid = control_->validate({{"text", kBadRules}, {"fileName", "bad.yaml"}});
  EXPECT_EQ(invalid.status, EINVAL);
  EXPECT_EQ(invalid.result["diagnostics"].size(), 2u);
  EXPECT_TRUE(control_->history(Json::object()).result["history"].empty());
}

TEST_F(PolicyControlTest, DiffAgainstThePolicyInForce) {
  ASSERT_TRUE(apply(policyText("p", "23")).ok());
  std::string extra =
      "    - name: deny-ssh\n      action: deny\n      match: {protocol: tcp, destination: "
      "{ports: [\"22\"]}}\n";
  ControlReply diff = control_->diff({{"text", policyText("p", "2323", extra)}, {"fileName", "n.yaml"}});
  ASSERT_TRUE(diff.ok()) << diff.error;
  EXPECT_EQ(diff.result["from"]["version"], 1);
  EXPECT_EQ(diff.result["added"], Json::array({"deny-ssh"}));
  EXPECT_EQ(diff.result["changed"][0]["rule"], "deny-port");
  EXPECT_EQ(diff.result["changed"][0]["fields"], Json::array({"match.destination.ports"}));
  EXPECT_EQ(control_->diff({{"text", kBadRules}}).status, EINVAL);
  EXPECT_EQ(registry_->current()->version(), 1u);
}

TEST_F(PolicyControlTest, TheAppliedPolicyComesBackAfterARestartUnderItsVersion) {
  ASSERT_TRUE(apply(policyText("a", "23")).ok());
  ASSERT_TRUE(apply(policyText("b", "25")).ok());
  open();
  auto restored = control_->restore("");
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_NE(restored.value().find("version 2"), std::string::npos) << restored.value();
  ASSERT_NE(registry_->current(), nullptr);
  EXPECT_EQ(registry_->current()->version(), 2u);
  EXPECT_EQ(registry_->current()->name(), "b");
  EXPECT_EQ(control_->history(Json::object()).result["history"].size(), 2u);
  EXPECT_EQ(apply(policyText("c", "26")).result["version"], 3);
}

TEST_F(PolicyControlTest, PolicyFileWinsOnlyWhenNewOrChangedSinceItWasLastApplied) {
  std::string path = writeFile("policy.yaml", policyText("from-file", "23"));
  auto first = control_->restore(path);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(registry_->current()->name(), "from-file");
  EXPECT_EQ(registry_->current()->version(), 1u);

  // vgatectl applies another; a restart with the same, unchanged file keeps vgatectl's.
  ASSERT_TRUE(apply(policyText("from-socket", "25")).ok());
  open();
  auto kept = control_->restore(path);
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_NE(kept.value().find("unchanged since version 1"), std::string::npos) << kept.value();
  EXPECT_EQ(registry_->current()->name(), "from-socket");
  EXPECT_EQ(registry_->current()->version(), 2u);

  // The file changes while vgated is down: at the next start it is the newer word.
  writeFile("policy.yaml", policyText("file-edited", "26"));
  open();
  auto changed = control_->restore(path);
  ASSERT_TRUE(changed.ok()) << changed.error().message;
  EXPECT_EQ(registry_->current()->name(), "file-edited");
  EXPECT_EQ(registry_->current()->version(), 3u);
  EXPECT_EQ(control_->summary()["source"], "--policy " + path + " at start");
}

TEST_F(PolicyControlTest, ReloadFileIsANewVersionAndABadFileChangesNothing) {
  std::string path = writeFile("policy.yaml", policyText("one", "23"));
  ASSERT_TRUE(control_->restore(path).ok());
  writeFile("policy.yaml", policyText("two", "24"));
  auto reloaded = control_->reloadFile(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.error().message;
  EXPECT_EQ(registry_->current()->version(), 2u);
  writeFile("policy.yaml", kBadRules);
  auto bad = control_->reloadFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("rule 'first-bad'"), std::string::npos) << bad.error().message;
  EXPECT_EQ(registry_->current()->version(), 2u);
  fs::remove(path);
  EXPECT_FALSE(control_->reloadFile(path).ok());
  auto history = control_->history(Json::object()).result["history"];
  ASSERT_EQ(history.size(), 4u);
  EXPECT_EQ(history[3]["result"].get<std::string>().rfind("unreadable", 0), 0u);
}

TEST_F(PolicyControlTest, ABadPersistedPolicyStopsTheStartWithTheWayOut) {
  ASSERT_TRUE(apply(policyText("a", "23")).ok());
  // Tamper with the text and its hash together, as a hand edit would.
  PolicyStore store(dir_);
  auto record = store.loadApplied().value().value();
  record.text = kBadRules;
  record.sha256 = sha256Hex(record.text);
  ASSERT_TRUE(store.saveApplied(record).ok());
  open();
  auto restored = control_->restore("");
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.error().message.find("move it away"), std::string::npos) << restored.error().message;
}

}  // namespace
}  // namespace vgate::control
