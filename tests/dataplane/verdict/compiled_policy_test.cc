// The verdict engine's semantics on hand-built policies: first match in rule order across L3/L4 and L7 rules,
// when a flow is held pending, L7 candidates whose own L3/L4 part fails, container selectors, IPv6, port
// ranges.
#include "dataplane/verdict/compiled_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "support/eal_environment.h"

namespace vgate::dataplane {
namespace {

policy::Cidr cidr(const char* text, uint8_t prefix) {
  policy::Cidr c;
  bool v6 = std::string(text).find(':') != std::string::npos;
  c.family = v6 ? 6 : 4;
  inet_pton(v6 ? AF_INET6 : AF_INET, text, c.address);
  c.prefixLength = prefix;
  return c;
}

L34Tuple tuple(const char* src, const char* dst, uint16_t dport, uint8_t protocol = IPPROTO_TCP) {
  L34Tuple t{};
  bool v6 = std::string(src).find(':') != std::string::npos;
  t.ipVersion = v6 ? 6 : 4;
  t.protocol = protocol;
  inet_pton(v6 ? AF_INET6 : AF_INET, src, t.src);
  inet_pton(v6 ? AF_INET6 : AF_INET, dst, t.dst);
  t.srcPort = 40000;
  t.dstPort = dport;
  return t;
}

policy::Rule rule(const char* name, VerdictAction action) {
  policy::Rule r;
  r.name = name;
  r.action = action;
  return r;
}

std::shared_ptr<const CompiledPolicy> compile(const policy::Policy& policy) {
  auto compiled = CompiledPolicy::compile(policy, 7, {}, 1);
  EXPECT_TRUE(compiled.ok()) << (compiled.ok() ? "" : compiled.error().message);
  return compiled.ok() ? compiled.value() : nullptr;
}

VerdictDecision decideWithSni(const CompiledPolicy& policy, const L34Tuple& t, uint32_t fallback,
                              const char* sni) {
  L7Facts facts;
  if (sni != nullptr) {
    facts.sni = sni;
    facts.presentFields = kFactSni;
  }
  return policy.decide(t, facts, fallback, policy.scratchFor(0));
}

TEST(CompiledPolicy, AnEarlierL7RuleHoldsTheFlowThenTheFirstWholeMatchDecides) {
  policy::Policy p;
  p.defaultAction = VerdictAction::kAllow;
  auto bank = rule("deny-bank", VerdictAction::kDeny);
  bank.protocol = policy::Protocol::kTcp;
  bank.tls.sni = {"*.bank.example"};
  bank.destination.cidrs = {cidr("10.9.0.0", 16)};  // its L3/L4 part: only this network
  auto web = rule("deny-80-8100", VerdictAction::kReject);
  web.protocol = policy::Protocol::kTcp;
  web.destination.ports = {{80, 80}, {8000, 8100}};
  p.rules = {bank, web};
  auto policy = compile(p);
  ASSERT_TRUE(policy);

  // Into 10.9/16: deny-bank could still match, so the flow waits with deny-80-8100 (or the default) as
  // fallback.
  VerdictDecision first = policy->classifyNewFlow(tuple("10.1.0.1", "10.9.0.1", 8100));
  EXPECT_TRUE(first.pending);
  EXPECT_EQ(first.ruleId, 1u);
  EXPECT_EQ(decideWithSni(*policy, tuple("10.1.0.1", "10.9.0.1", 8100), 1, "WWW.Bank.Example").ruleId, 0u);
  EXPECT_EQ(decideWithSni(*policy, tuple("10.1.0.1", "10.9.0.1", 8100), 1, "bank.example").ruleId, 1u);
  EXPECT_EQ(decideWithSni(*policy, tuple("10.1.0.1", "10.9.0.1", 8100), 1, nullptr).action,
            VerdictAction::kReject);

  // Elsewhere the L7 rule's L3/L4 part cannot match: decided on the first packet, and an SNI match later
  // (checked here directly) must not be taken either.
  VerdictDecision other = policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 80));
  EXPECT_FALSE(other.pending);
  EXPECT_EQ(other.ruleId, 1u);
  EXPECT_EQ(decideWithSni(*policy, tuple("10.1.0.1", "10.2.0.1", 80), 1, "www.bank.example").ruleId, 1u);

  // Port range edges and protocols.
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 7999)).ruleId, kNoRule);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 8000)).ruleId, 1u);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 8101)).ruleId, kNoRule);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 80, IPPROTO_UDP)).ruleId, kNoRule);
  EXPECT_EQ(policy->actionOf(kNoRule), VerdictAction::kAllow);
}

TEST(CompiledPolicy, AnEarlierL3L4MatchIsNeverOverriddenByALaterL7Rule) {
  policy::Policy p;
  auto ports = rule("allow-443", VerdictAction::kAllow);
  ports.protocol = policy::Protocol::kTcp;
  ports.destination.ports = {{443, 443}};
  auto sni = rule("deny-sni", VerdictAction::kDeny);
  sni.tls.sni = {"evil.example"};
  p.rules = {ports, sni};
  auto policy = compile(p);
  ASSERT_TRUE(policy);
  VerdictDecision decision = policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 443));
  EXPECT_FALSE(decision.pending);
  EXPECT_EQ(decision.ruleId, 0u);
  // Port 8443: only the SNI rule can match; it waits, and without that SNI the default applies.
  VerdictDecision other = policy->classifyNewFlow(tuple("10.1.0.1", "10.2.0.1", 8443));
  EXPECT_TRUE(other.pending);
  EXPECT_EQ(decideWithSni(*policy, tuple("10.1.0.1", "10.2.0.1", 8443), other.ruleId, "good.example").ruleId,
            kNoRule);
  EXPECT_EQ(decideWithSni(*policy, tuple("10.1.0.1", "10.2.0.1", 8443), other.ruleId, "evil.example").ruleId,
            1u);
}

// A ping (ICMP echo-request, or ICMPv6's) as its client sent it; `id` is what the parser puts in both ports.
L34Tuple icmpTuple(const char* src, const char* dst, uint8_t type, uint16_t id = 0) {
  bool v6 = std::string(src).find(':') != std::string::npos;
  L34Tuple t = tuple(src, dst, id, static_cast<uint8_t>(v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP}));
  t.srcPort = id;
  t.icmpType = type;
  return t;
}

TEST(CompiledPolicy, FlowsAnHttpRuleCouldDecideAreJudgedPerRequest) {
  // 0: allow SSH (L3/L4); 1: deny HTTP /admin/* to 10.2.0.0/16; 2: deny SNI *.bank.example; 3: allow 80.
  policy::Policy p;
  p.name = "p";
  policy::Rule ssh = rule("ssh", VerdictAction::kAllow);
  ssh.protocol = policy::Protocol::kTcp;
  ssh.destination.ports = {{22, 22}};
  policy::Rule admin = rule("admin", VerdictAction::kDeny);
  admin.protocol = policy::Protocol::kTcp;
  admin.destination.cidrs = {cidr("10.2.0.0", 16)};
  admin.http.path = {"/admin/*"};
  policy::Rule bank = rule("bank", VerdictAction::kDeny);
  bank.tls.sni = {"*.bank.example"};
  policy::Rule web = rule("web", VerdictAction::kAllow);
  web.protocol = policy::Protocol::kTcp;
  web.destination.ports = {{80, 80}};
  p.rules = {ssh, admin, bank, web};
  auto policy = compile(p);
  ASSERT_NE(policy, nullptr);
  EXPECT_TRUE(policy->hasHttpRules());
  EXPECT_TRUE(policy->judgesHttp(tuple("10.1.0.1", "10.2.0.1", 80)));
  EXPECT_TRUE(policy->judgesHttp(tuple("10.1.0.1", "10.2.0.1", 8080)));
  // SSH is decided by rule 0 before the HTTP rule; another destination is out of the HTTP rule's reach
  // (only the SNI rule holds it); UDP cannot match the HTTP rule.
  EXPECT_FALSE(policy->judgesHttp(tuple("10.1.0.1", "10.2.0.1", 22)));
  EXPECT_FALSE(policy->judgesHttp(tuple("10.1.0.1", "10.3.0.1", 80)));
  EXPECT_TRUE(policy->classifyNewFlow(tuple("10.1.0.1", "10.3.0.1", 80)).pending);
  EXPECT_FALSE(policy->judgesHttp(tuple("10.1.0.1", "10.2.0.1", 80, IPPROTO_UDP)));

  p.rules = {ssh, bank, web};
  auto withoutHttp = compile(p);
  ASSERT_NE(withoutHttp, nullptr);
  EXPECT_FALSE(withoutHttp->hasHttpRules());
  EXPECT_FALSE(withoutHttp->judgesHttp(tuple("10.1.0.1", "10.2.0.1", 80)));
}

TEST(CompiledPolicy, IcmpTypesDecideByTheFirstPacketsType) {
  policy::Policy p;
  p.defaultAction = VerdictAction::kAllow;
  auto ping = rule("deny-ping", VerdictAction::kDeny);  // icmp: {types: [echo-request]}
  ping.protocol = policy::Protocol::kIcmp;
  ping.icmpTypes = {{8, 8}};
  auto ping6 = rule("reject-ping6", VerdictAction::kReject);
  ping6.protocol = policy::Protocol::kIcmpv6;
  ping6.icmpTypes = {{128, 128}};
  // An L7 rule whose L3/L4 part has types: decide() re-checks them.
  auto payload = rule("log-unreachable-payload", VerdictAction::kLog);
  payload.protocol = policy::Protocol::kIcmp;
  payload.icmpTypes = {{3, 3}};
  payload.payload.regex = {"secret"};
  p.rules = {ping, ping6, payload};
  for (bool rteAcl : {false, true}) {
    SCOPED_TRACE(rteAcl ? "rte_acl" : "bitmap");
    CompileOptions options;
    options.rteAcl = rteAcl;
    auto compiled = CompiledPolicy::compile(p, 7, options, 1);
    ASSERT_TRUE(compiled.ok()) << compiled.error().message;
    const CompiledPolicy& policy = *compiled.value();

    VerdictDecision echo = policy.classifyNewFlow(icmpTuple("10.1.0.1", "10.2.0.1", 8, 4242));
    EXPECT_FALSE(echo.pending);
    EXPECT_EQ(echo.ruleId, 0u);
    EXPECT_EQ(echo.action, VerdictAction::kDeny);
    // Another type, even with the echo identifier equal to 8, is not a ping: the default allows it.
    for (uint8_t type : {0, 11, 13}) {
      VerdictDecision other = policy.classifyNewFlow(icmpTuple("10.1.0.1", "10.2.0.1", type, 8));
      EXPECT_FALSE(other.pending) << int{type};
      EXPECT_EQ(other.ruleId, kNoRule) << int{type};
      EXPECT_EQ(other.action, VerdictAction::kAllow) << int{type};
    }
    // TCP to port 8 is not a ping either.
    L34Tuple tcp = tuple("10.1.0.1", "10.2.0.1", 8);
    tcp.icmpType = 8;
    EXPECT_EQ(policy.classifyNewFlow(tcp).ruleId, kNoRule);

    EXPECT_EQ(policy.classifyNewFlow(icmpTuple("fd00::1", "fd00::2", 128, 1)).action, VerdictAction::kReject);
    EXPECT_EQ(policy.classifyNewFlow(icmpTuple("fd00::1", "fd00::2", 129, 128)).ruleId, kNoRule);
    EXPECT_EQ(policy.classifyNewFlow(icmpTuple("fd00::1", "fd00::2", 8)).ruleId, kNoRule);

    // The L7 rule: pending only for its type, and its type re-checked when the facts come.
    VerdictDecision unreachable = policy.classifyNewFlow(icmpTuple("10.1.0.1", "10.2.0.1", 3));
    EXPECT_TRUE(unreachable.pending);
    EXPECT_FALSE(policy.classifyNewFlow(icmpTuple("10.1.0.1", "10.2.0.1", 4)).pending);
    L7Facts facts;
    facts.payloadToServer = "a secret";
    facts.presentFields = kFactPayloadToServer;
    EXPECT_EQ(
        policy.decide(icmpTuple("10.1.0.1", "10.2.0.1", 3), facts, kNoRule, policy.scratchFor(0)).ruleId, 2u);
    EXPECT_EQ(
        policy.decide(icmpTuple("10.1.0.1", "10.2.0.1", 4), facts, kNoRule, policy.scratchFor(0)).ruleId,
        kNoRule);
  }
}

TEST(CompiledPolicy, ContainerSelectorsResolveThroughEndpointsAndNeverWidenToAny) {
  policy::Policy p;
  p.defaultAction = VerdictAction::kDeny;
  p.endpoints = {{"web-1", {{"tier", "frontend"}}, {cidr("10.0.0.5", 32), cidr("fd00::5", 128)}},
                 {"web-9", {{"tier", "backend"}}, {cidr("10.0.0.9", 32)}},
                 {"db-1", {{"tier", "frontend"}}, {cidr("10.0.0.20", 32)}}};
  auto web = rule("web-frontend", VerdictAction::kAllow);
  web.source.containers.present = true;
  web.source.containers.name = "web-*";
  web.source.containers.labels = {{"tier", "frontend"}};
  auto nobody = rule("nobody", VerdictAction::kAllow);
  nobody.source.containers.present = true;
  nobody.source.containers.name = "cache-*";
  auto v6 = rule("v6-net", VerdictAction::kLog);
  v6.destination.cidrs = {cidr("fd00:1::", 64)};
  p.rules = {web, nobody, v6};
  auto policy = compile(p);
  ASSERT_TRUE(policy);
  EXPECT_EQ(policy->stats().neverMatching, 1u);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.0.0.5", "192.0.2.1", 443)).ruleId, 0u);
  EXPECT_EQ(policy->classifyNewFlow(tuple("fd00::5", "2001:db8::1", 443)).ruleId, 0u);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.0.0.9", "192.0.2.1", 443)).ruleId, kNoRule);   // wrong label
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.0.0.20", "192.0.2.1", 443)).ruleId, kNoRule);  // wrong name
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.0.0.77", "192.0.2.1", 443)).ruleId,
            kNoRule);  // not a container
  EXPECT_EQ(policy->classifyNewFlow(tuple("fd00::77", "fd00:1::1", 22)).ruleId, 2u);
  EXPECT_EQ(policy->classifyNewFlow(tuple("fd00::77", "fd00:2::1", 22)).ruleId, kNoRule);
  EXPECT_EQ(policy->classifyNewFlow(tuple("fd00::77", "fd00:2::1", 22)).action, VerdictAction::kDeny);
  EXPECT_EQ(policy->version(), 7u);
}

// direction is relative to the protected container: egress when it opened the flow, ingress when it
// accepted it. Live, the port tag gives it (the tuple carries it); in replay the endpoints do: the client is
// one (egress), else the server is (ingress), else it is unknown and no rule with a direction matches. Both
// the L3/L4 classifier and an L7 rule's own L3/L4 check honour it.
TEST(CompiledPolicy, DirectionIsRelativeToTheProtectedContainer) {
  policy::Policy p;
  p.endpoints = {{"web-1", {}, {cidr("10.0.0.5", 32)}}};
  auto noInbound = rule("no-inbound-ssh", VerdictAction::kDeny);
  noInbound.direction = policy::Direction::kIngress;
  noInbound.protocol = policy::Protocol::kTcp;
  noInbound.destination.ports = {{22, 22}};
  auto outboundTls = rule("outbound-bank", VerdictAction::kDeny);
  outboundTls.direction = policy::Direction::kEgress;
  outboundTls.tls.sni = {"*.bank.example"};
  p.rules = {noInbound, outboundTls};
  auto policy = compile(p);
  ASSERT_TRUE(policy);
  auto with = [](L34Tuple t, uint8_t direction) {
    t.direction = direction;
    return t;
  };
  // Replay: from the endpoints.
  EXPECT_EQ(policy->directionOf(tuple("10.9.9.9", "10.0.0.5", 22)), kDirectionIngress);
  EXPECT_EQ(policy->directionOf(tuple("10.0.0.5", "10.9.9.9", 22)), kDirectionEgress);
  EXPECT_EQ(policy->directionOf(tuple("10.9.9.9", "10.8.8.8", 22)), kDirectionUnknown);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.9.9.9", "10.0.0.5", 22)).ruleId, 0u);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.0.0.5", "10.9.9.9", 22)).ruleId, kNoRule);
  EXPECT_EQ(policy->classifyNewFlow(tuple("10.9.9.9", "10.8.8.8", 22)).ruleId, kNoRule);
  // Live: the tag's direction wins over the addresses (a flow between two containers is egress at the
  // client's pair and ingress at the server's).
  EXPECT_EQ(policy->classifyNewFlow(with(tuple("10.0.0.5", "10.0.0.6", 22), kDirectionIngress)).ruleId, 0u);
  EXPECT_EQ(policy->classifyNewFlow(with(tuple("10.9.9.9", "10.0.0.5", 22), kDirectionEgress)).ruleId,
            kNoRule);
  // The L7 rule: pending only where its direction can hold, and its L3/L4 check honours the direction.
  auto out = tuple("10.0.0.5", "192.0.2.1", 443);
  EXPECT_TRUE(policy->classifyNewFlow(out).pending);
  EXPECT_EQ(decideWithSni(*policy, out, kNoRule, "www.bank.example").ruleId, 1u);
  auto in = tuple("192.0.2.1", "10.0.0.5", 443);
  EXPECT_FALSE(policy->classifyNewFlow(in).pending);
  EXPECT_EQ(decideWithSni(*policy, in, kNoRule, "www.bank.example").ruleId, kNoRule);
  EXPECT_EQ(decideWithSni(*policy, with(out, kDirectionIngress), kNoRule, "www.bank.example").ruleId,
            kNoRule);
}

TEST(CompiledPolicy, GlobsOnContainerNames) {
  EXPECT_TRUE(globMatches("web-*", "web-1"));
  EXPECT_TRUE(globMatches("web-*", "web-"));
  EXPECT_FALSE(globMatches("web-*", "xweb-1"));
  EXPECT_TRUE(globMatches("*-db", "orders-db"));
  EXPECT_TRUE(globMatches("a?c", "abc"));
  EXPECT_FALSE(globMatches("a?c", "ac"));
  EXPECT_TRUE(globMatches("*", ""));
  EXPECT_TRUE(globMatches("w*b*x", "wabbbx"));
  EXPECT_FALSE(globMatches("w*b*x", "wabbby"));
}

}  // namespace
}  // namespace vgate::dataplane
