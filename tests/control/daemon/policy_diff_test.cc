// Rule-level policy differences, on policies loaded from YAML as vgated loads them.
#include "control/daemon/policy_diff.h"

#include <gtest/gtest.h>

#include "control/policy/policy_loader.h"

namespace vgate::control {
namespace {

using Json = nlohmann::json;

policy::Policy load(const std::string& rules,
                    const std::string& settings = "mode: enforce\n  default: allow") {
  std::string text = "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  " + settings +
                     "\n  rules:\n" + rules;
  auto loaded = loadPolicy(text, "p.yaml");
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message) << "\n" << text;
  return loaded.ok() ? loaded.value() : policy::Policy{};
}

std::string rule(const std::string& name, const std::string& action, const std::string& port) {
  return "    - name: " + name + "\n      action: " + action +
         "\n      match: {protocol: tcp, destination: {ports: [\"" + port + "\"]}}\n";
}

TEST(PolicyDiff, SamePolicyIsIdentical) {
  auto a = load(rule("a", "deny", "23") + rule("b", "allow", "80"));
  PolicyDiff diff = diffPolicies(a, a);
  EXPECT_TRUE(diff.empty());
  EXPECT_EQ(diff.toJson()["identical"], true);
}

TEST(PolicyDiff, AddedRemovedAndChangedRulesByName) {
  auto before = load(rule("keep", "deny", "23") + rule("gone", "deny", "25") + rule("edit", "allow", "80"));
  auto after = load(rule("keep", "deny", "23") + rule("edit", "deny", "8080") + rule("new", "deny", "443"));
  PolicyDiff diff = diffPolicies(before, after);
  EXPECT_EQ(diff.added, std::vector<std::string>{"new"});
  EXPECT_EQ(diff.removed, std::vector<std::string>{"gone"});
  ASSERT_EQ(diff.changed.size(), 1u);
  EXPECT_EQ(diff.changed[0].rule, "edit");
  EXPECT_EQ(diff.changed[0].fields, (std::vector<std::string>{"action", "match.destination.ports"}));
  EXPECT_FALSE(diff.orderChanged);
  EXPECT_TRUE(diff.settings.empty());
}

TEST(PolicyDiff, AMovedRuleIsAnOrderChangeNotAnEdit) {
  auto before = load(rule("a", "deny", "23") + rule("b", "allow", "80"));
  auto after = load(rule("b", "allow", "80") + rule("a", "deny", "23"));
  PolicyDiff diff = diffPolicies(before, after);
  EXPECT_TRUE(diff.added.empty());
  EXPECT_TRUE(diff.removed.empty());
  EXPECT_TRUE(diff.changed.empty());
  EXPECT_TRUE(diff.orderChanged);
  EXPECT_FALSE(diff.empty());
}

TEST(PolicyDiff, SettingsModeAndDefault) {
  auto before = load(rule("a", "deny", "23"));
  auto after = load(rule("a", "deny", "23"), "mode: audit\n  default: deny");
  PolicyDiff diff = diffPolicies(before, after);
  ASSERT_EQ(diff.settings.size(), 2u);
  EXPECT_EQ(diff.settings[0].field, "mode");
  EXPECT_EQ(diff.settings[0].from, "enforce");
  EXPECT_EQ(diff.settings[0].to, "audit");
  EXPECT_EQ(diff.settings[1].field, "default");
  EXPECT_EQ(diff.settings[1].to, "deny");
}

TEST(PolicyDiff, FromNothingEveryRuleIsAdded) {
  auto after = load(rule("a", "deny", "23") + rule("b", "allow", "80"));
  PolicyDiff diff = diffPolicies(policy::Policy{}, after);
  EXPECT_EQ(diff.added, (std::vector<std::string>{"a", "b"}));
}

TEST(PolicyDiff, L7FieldsAreCompared) {
  std::string tls =
      "    - name: t\n      action: deny\n      match: {protocol: tcp, tls: {sni: [\"a.example\"]}}\n";
  std::string tls2 =
      "    - name: t\n      action: deny\n      match: {protocol: tcp, tls: {sni: [\"b.example\"]}}\n";
  PolicyDiff diff = diffPolicies(load(tls), load(tls2));
  ASSERT_EQ(diff.changed.size(), 1u);
  EXPECT_EQ(diff.changed[0].fields, std::vector<std::string>{"match.tls.sni"});
}

TEST(PolicyDiff, RuleJsonLeavesTheLocationOut) {
  auto a = load(rule("a", "deny", "23"));
  auto b = load("\n\n" + rule("a", "deny", "23"));  // same rule, other lines
  ASSERT_EQ(a.rules.size(), 1u);
  ASSERT_EQ(b.rules.size(), 1u);
  EXPECT_NE(a.rules[0].location.line, b.rules[0].location.line);
  EXPECT_EQ(ruleJson(a.rules[0]), ruleJson(b.rules[0]));
  EXPECT_EQ(ruleJson(a.rules[0])["match"]["destination"]["ports"], Json::array({"23"}));
  EXPECT_EQ(ruleJson(a.rules[0])["match"]["protocol"], "tcp");
}

}  // namespace
}  // namespace vgate::control
