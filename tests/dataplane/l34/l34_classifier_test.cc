// L3/L4 classifier: first match in policy order across protocols, CIDRs of both families, port ranges and
// their cross products, checked case by case and against a linear scan on random policies.
#include "dataplane/l34/l34_classifier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rte_acl.h>
#include <rte_memory.h>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/eal_environment.h"

namespace vgate::dataplane {
namespace {

policy::Cidr cidr(const std::string& text) {
  policy::Cidr result;
  auto slash = text.find('/');
  std::string address = text.substr(0, slash);
  if (address.find(':') != std::string::npos) {
    result.family = 6;
    EXPECT_EQ(inet_pton(AF_INET6, address.c_str(), result.address), 1) << text;
    result.prefixLength =
        slash == std::string::npos ? 128 : static_cast<uint8_t>(std::stoi(text.substr(slash + 1)));
  } else {
    result.family = 4;
    EXPECT_EQ(inet_pton(AF_INET, address.c_str(), result.address), 1) << text;
    result.prefixLength =
        slash == std::string::npos ? 32 : static_cast<uint8_t>(std::stoi(text.substr(slash + 1)));
  }
  return result;
}

L34Tuple tuple(uint8_t protocol, const std::string& src, uint16_t srcPort, const std::string& dst,
               uint16_t dstPort) {
  L34Tuple result{};
  result.protocol = protocol;
  bool v6 = src.find(':') != std::string::npos;
  result.ipVersion = v6 ? 6 : 4;
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, src.c_str(), result.src), 1) << src;
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, dst.c_str(), result.dst), 1) << dst;
  result.srcPort = srcPort;
  result.dstPort = dstPort;
  return result;
}

int serial = 0;
std::unique_ptr<L34Classifier> build(const std::vector<L34Rule>& rules,
                                     const L34ClassifierConfig& config = {}) {
  auto built = L34Classifier::build(rules, "l34_test_" + std::to_string(serial++), SOCKET_ID_ANY, config);
  EXPECT_TRUE(built.ok()) << (built.ok() ? "" : built.error().message);
  return built.ok() ? std::move(built).value() : nullptr;
}

L34ClassifierConfig rteAcl() {
  L34ClassifierConfig config;
  config.engine = L34Engine::kRteAcl;
  return config;
}

uint32_t classifyOne(const L34Classifier& classifier, const L34Tuple& t) {
  const L34Tuple* pointer = &t;
  uint32_t ruleId = 0;
  classifier.classify(&pointer, 1, &ruleId);
  return ruleId;
}

// The reference: the model's semantics written as plainly as possible.
bool cidrMatches(const policy::Cidr& c, const L34Tuple& t, const uint8_t* address) {
  if (c.family != t.ipVersion) return false;
  for (int bit = 0; bit < c.prefixLength; ++bit) {
    uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((c.address[bit / 8] & mask) != (address[bit / 8] & mask)) return false;
  }
  return true;
}

bool sideMatches(const std::vector<policy::Cidr>& cidrs, const L34Tuple& t, const uint8_t* address) {
  if (cidrs.empty()) return true;
  for (const auto& c : cidrs) {
    if (cidrMatches(c, t, address)) return true;
  }
  return false;
}

bool portsMatch(const std::vector<policy::PortRange>& ranges, uint16_t port) {
  if (ranges.empty()) return true;
  for (const auto& range : ranges) {
    if (port >= range.low && port <= range.high) return true;
  }
  return false;
}

uint32_t linearScan(const std::vector<L34Rule>& rules, const L34Tuple& t) {
  if (t.ipVersion != 4 && t.ipVersion != 6) return kNoRule;
  for (const auto& rule : rules) {
    if (rule.protocol != 0 && rule.protocol != t.protocol) continue;
    if (rule.direction != kDirectionUnknown && rule.direction != t.direction) continue;
    if (rule.family != 0 && rule.family != t.ipVersion) continue;
    if (!rule.sourcePorts.empty() || !rule.destinationPorts.empty()) {
      if (t.protocol != IPPROTO_TCP && t.protocol != IPPROTO_UDP && t.protocol != IPPROTO_SCTP) continue;
    }
    if (!portsMatch(rule.sourcePorts, t.srcPort) || !portsMatch(rule.destinationPorts, t.dstPort)) continue;
    if (!rule.icmpTypes.empty()) {
      if (t.protocol != IPPROTO_ICMP && t.protocol != IPPROTO_ICMPV6) continue;
      if (!portsMatch(rule.icmpTypes, t.icmpType)) continue;
    }
    if (!sideMatches(rule.sources, t, t.src) || !sideMatches(rule.destinations, t, t.dst)) continue;
    return rule.ruleId;
  }
  return kNoRule;
}

struct Case {
  const char* name;
  L34Tuple tuple;
  uint32_t expected;
};

void expectCases(const std::vector<L34Rule>& rules, const std::vector<Case>& cases,
                 const L34ClassifierConfig& config = {}) {
  auto classifier = build(rules, config);
  ASSERT_NE(classifier, nullptr);
  for (const auto& c : cases) {
    EXPECT_EQ(classifyOne(*classifier, c.tuple), c.expected) << c.name;
    EXPECT_EQ(linearScan(rules, c.tuple), c.expected) << c.name << " (reference)";
  }
}

TEST(L34Classifier, EmptyRuleListMatchesNothing) {
  auto classifier = build({});
  ASSERT_NE(classifier, nullptr);
  EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_TCP, "10.0.0.1", 1000, "10.0.0.2", 80)), kNoRule);
  EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_UDP, "2001:db8::1", 1000, "2001:db8::2", 53)), kNoRule);
  EXPECT_EQ(classifier->stats().ipv4AclRules, 0u);
  EXPECT_EQ(classifier->stats().ipv6AclRules, 0u);
}

TEST(L34Classifier, IcmpNeverMatchesRulesWithPorts) {
  std::vector<L34Rule> rules = {
      {10, 0, {}, {}, {}, {{0, 65535}}, {}},         // any protocol, ports: TCP/UDP/SCTP only
      {11, IPPROTO_ICMP, {}, {}, {{0, 0}}, {}, {}},  // ICMP with ports: matches nothing
      {12, IPPROTO_ICMP, {cidr("10.0.0.0/8")}, {}, {}, {}, {}},
      {13, IPPROTO_ICMPV6, {}, {}, {}, {}, {}},
  };
  expectCases(rules, {
                         {"icmp echo id 0", tuple(IPPROTO_ICMP, "10.1.1.1", 0, "10.2.2.2", 0), 12},
                         {"icmp echo id 7", tuple(IPPROTO_ICMP, "10.1.1.1", 7, "10.2.2.2", 7), 12},
                         {"icmp elsewhere", tuple(IPPROTO_ICMP, "11.1.1.1", 0, "10.2.2.2", 0), kNoRule},
                         {"icmpv6", tuple(IPPROTO_ICMPV6, "fe80::1", 0, "ff02::1", 0), 13},
                         {"tcp port 0", tuple(IPPROTO_TCP, "11.1.1.1", 0, "10.2.2.2", 0), 10},
                         {"sctp", tuple(IPPROTO_SCTP, "11.1.1.1", 5, "10.2.2.2", 6), 10},
                         {"gre", tuple(47, "11.1.1.1", 0, "10.2.2.2", 0), kNoRule},
                     });
}

// An ICMP/ICMPv6 message of `type`; `id` is what the parser puts in both ports for echo messages.
L34Tuple icmpTuple(uint8_t protocol, const std::string& src, const std::string& dst, uint8_t type,
                   uint16_t id = 0) {
  L34Tuple t = tuple(protocol, src, id, dst, id);
  t.icmpType = type;
  return t;
}

TEST(L34Classifier, IcmpTypes) {
  std::vector<L34Rule> rules = {
      {1, IPPROTO_ICMP, {}, {cidr("10.0.0.0/8")}, {}, {}, {{8, 8}}},  // echo-request to 10/8
      {2, IPPROTO_ICMP, {}, {}, {}, {}, {{3, 4}, {11, 11}}},
      {3, IPPROTO_ICMPV6, {}, {}, {}, {}, {{128, 128}}},
      {4, IPPROTO_ICMPV6, {}, {}, {}, {}, {{133, 137}}},
      {5, IPPROTO_ICMP, {}, {}, {}, {}, {{255, 255}}},
  };
  std::vector<Case> cases = {
      {"echo-request", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "10.1.1.1", 8, 77), 1},
      {"echo-request id 0", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "10.1.1.1", 8), 1},
      {"echo-reply", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "10.1.1.1", 0, 77), kNoRule},
      {"echo-reply, id 8", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "10.1.1.1", 0, 8), kNoRule},
      {"echo-request elsewhere", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "11.1.1.1", 8), kNoRule},
      {"unreachable", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "11.1.1.1", 3), 2},
      {"type 4", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "11.1.1.1", 4), 2},
      {"type 5", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "11.1.1.1", 5), kNoRule},
      {"time-exceeded", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "11.1.1.1", 11), 2},
      {"type 255", icmpTuple(IPPROTO_ICMP, "192.168.0.1", "11.1.1.1", 255), 5},
      {"icmp over ipv6", icmpTuple(IPPROTO_ICMP, "2001:db8::1", "2001:db8::2", 3), 2},
      {"icmpv6 echo-request", icmpTuple(IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::2", 128, 9), 3},
      {"icmpv6 echo-reply", icmpTuple(IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::2", 129, 128), kNoRule},
      {"icmpv6 neighbor-solicitation", icmpTuple(IPPROTO_ICMPV6, "fe80::1", "ff02::1:ff00:1", 135), 4},
      {"icmpv6 type 138", icmpTuple(IPPROTO_ICMPV6, "fe80::1", "ff02::1", 138), kNoRule},
      {"icmpv6 type 8", icmpTuple(IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::2", 8), kNoRule},
      {"icmpv6 over ipv4", icmpTuple(IPPROTO_ICMPV6, "192.168.0.1", "10.1.1.1", 128), 3},
  };
  // Typed rules never match TCP or UDP, whatever their ports and whatever icmpType holds.
  for (uint8_t protocol : {uint8_t{IPPROTO_TCP}, uint8_t{IPPROTO_UDP}, uint8_t{IPPROTO_SCTP}}) {
    for (uint16_t port : {0, 3, 8, 11, 128, 135, 255}) {
      L34Tuple t = tuple(protocol, "192.168.0.1", port, "10.1.1.1", port);
      t.icmpType = static_cast<uint8_t>(port);
      cases.push_back({"port as type", t, kNoRule});
      L34Tuple v6 = tuple(protocol, "2001:db8::1", port, "2001:db8::2", port);
      v6.icmpType = static_cast<uint8_t>(port);
      cases.push_back({"v6 port as type", v6, kNoRule});
    }
  }
  expectCases(rules, cases);
  expectCases(rules, cases, rteAcl());
}

// First match in policy order between typed and untyped ICMP rules.
TEST(L34Classifier, IcmpTypedAndUntypedRulesInOrder) {
  std::vector<L34Rule> rules = {
      {1, IPPROTO_ICMP, {}, {}, {}, {}, {{8, 8}}},
      {2, IPPROTO_ICMP, {}, {cidr("10.0.0.0/8")}, {}, {}, {}},  // any type
      {3, IPPROTO_ICMP, {}, {}, {}, {}, {{0, 0}}},
      {4, IPPROTO_ICMPV6, {}, {cidr("2001:db8::/32")}, {}, {}, {}},
      {5, IPPROTO_ICMPV6, {}, {}, {}, {}, {{128, 129}}},
      {6, IPPROTO_TCP, {}, {}, {}, {{8, 8}}, {}},
      {7, 0, {cidr("172.16.0.0/12")}, {}, {}, {}, {}},  // any protocol, any type
      {8, IPPROTO_ICMP, {}, {}, {}, {}, {{0, 255}}},
  };
  std::vector<Case> cases = {
      {"echo-request to 10/8: the typed rule first", icmpTuple(IPPROTO_ICMP, "1.1.1.1", "10.1.1.1", 8), 1},
      {"echo-reply to 10/8: the untyped one", icmpTuple(IPPROTO_ICMP, "1.1.1.1", "10.1.1.1", 0), 2},
      {"echo-reply elsewhere", icmpTuple(IPPROTO_ICMP, "1.1.1.1", "11.1.1.1", 0), 3},
      {"echo-request elsewhere", icmpTuple(IPPROTO_ICMP, "1.1.1.1", "11.1.1.1", 8), 1},
      {"other type from 172.16/12", icmpTuple(IPPROTO_ICMP, "172.16.0.1", "11.1.1.1", 3), 7},
      {"other type elsewhere", icmpTuple(IPPROTO_ICMP, "1.1.1.1", "11.1.1.1", 3), 8},
      {"icmpv6 to 2001:db8::/32: untyped first", icmpTuple(IPPROTO_ICMPV6, "fe80::1", "2001:db8::1", 128), 4},
      {"icmpv6 elsewhere", icmpTuple(IPPROTO_ICMPV6, "fe80::1", "2001:db9::1", 129), 5},
      {"icmpv6 other type elsewhere", icmpTuple(IPPROTO_ICMPV6, "fe80::1", "2001:db9::1", 1), kNoRule},
      {"tcp port 8", tuple(IPPROTO_TCP, "1.1.1.1", 1000, "11.1.1.1", 8), 6},
      {"tcp port 0", tuple(IPPROTO_TCP, "1.1.1.1", 1000, "11.1.1.1", 0), kNoRule},
  };
  expectCases(rules, cases);
  expectCases(rules, cases, rteAcl());
}

TEST(L34Classifier, ProtocolAnyAndSpecific) {
  std::vector<L34Rule> rules = {
      {1, IPPROTO_UDP, {}, {cidr("10.0.0.53")}, {}, {{53, 53}}, {}},
      {2, 0, {}, {cidr("10.0.0.53")}, {}, {}, {}},
  };
  expectCases(rules, {
                         {"udp 53", tuple(IPPROTO_UDP, "1.2.3.4", 999, "10.0.0.53", 53), 1},
                         {"tcp 53", tuple(IPPROTO_TCP, "1.2.3.4", 999, "10.0.0.53", 53), 2},
                         {"udp 54", tuple(IPPROTO_UDP, "1.2.3.4", 999, "10.0.0.53", 54), 2},
                         {"gre", tuple(47, "1.2.3.4", 0, "10.0.0.53", 0), 2},
                         {"other host", tuple(IPPROTO_UDP, "1.2.3.4", 999, "10.0.0.54", 53), kNoRule},
                     });
}

TEST(L34Classifier, ZeroPrefixesStayInTheirFamily) {
  std::vector<L34Rule> rules = {
      {1, 0, {cidr("0.0.0.0/0")}, {}, {}, {}, {}},
      {2, 0, {cidr("::/0")}, {}, {}, {}, {}},
  };
  expectCases(rules,
              {
                  {"v4", tuple(IPPROTO_TCP, "203.0.113.9", 1, "198.51.100.1", 2), 1},
                  {"v6", tuple(IPPROTO_TCP, "2001:db8::9", 1, "2001:db8::1", 2), 2},
                  {"v4-mapped v6", tuple(IPPROTO_TCP, "::ffff:203.0.113.9", 1, "::ffff:1.1.1.1", 2), 2},
              });
  std::vector<L34Rule> destinationOnly = {{5, 0, {}, {cidr("0.0.0.0/0")}, {}, {}, {}}};
  expectCases(destinationOnly, {
                                   {"v4", tuple(IPPROTO_UDP, "1.1.1.1", 1, "2.2.2.2", 2), 5},
                                   {"v6", tuple(IPPROTO_UDP, "::1", 1, "::2", 2), kNoRule},
                               });
}

TEST(L34Classifier, Ipv4RuleNeverMatchesMappedIpv6) {
  std::vector<L34Rule> rules = {
      {1, IPPROTO_TCP, {cidr("10.0.0.0/8")}, {cidr("192.168.1.1/32")}, {}, {}, {}},
      {2, 0, {}, {}, {}, {}, {}},  // no CIDRs: both families
  };
  expectCases(rules, {
                         {"v4", tuple(IPPROTO_TCP, "10.9.9.9", 1, "192.168.1.1", 2), 1},
                         {"mapped v6", tuple(IPPROTO_TCP, "::ffff:10.9.9.9", 1, "::ffff:192.168.1.1", 2), 2},
                         {"v6 with v4 bits first", tuple(IPPROTO_TCP, "a09:909::", 1, "c0a8:101::", 2), 2},
                     });
}

TEST(L34Classifier, MixedFamilyRuleHasNoCrossFamilyElements) {
  // Sources v4, destinations v6: no packet has both, so the rule matches nothing.
  std::vector<L34Rule> rules = {{1, 0, {cidr("10.0.0.0/8")}, {cidr("2001:db8::/32")}, {}, {}, {}}};
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  EXPECT_EQ(classifier->stats().ipv4AclRules, 0u);
  EXPECT_EQ(classifier->stats().ipv6AclRules, 0u);
  EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_TCP, "10.0.0.1", 1, "10.0.0.2", 2)), kNoRule);
  EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_TCP, "2001:db8::1", 1, "2001:db8::2", 2)), kNoRule);
}

TEST(L34Classifier, PortRangeBoundaries) {
  std::vector<L34Rule> rules = {
      {1, IPPROTO_TCP, {}, {}, {{1024, 65535}}, {{8000, 8080}}, {}},
      {2, IPPROTO_TCP, {}, {}, {}, {{0, 0}}, {}},
      {3, IPPROTO_TCP, {}, {}, {}, {{65535, 65535}}, {}},
  };
  expectCases(rules, {
                         {"low edge", tuple(IPPROTO_TCP, "1.1.1.1", 1024, "2.2.2.2", 8000), 1},
                         {"high edge", tuple(IPPROTO_TCP, "1.1.1.1", 65535, "2.2.2.2", 8080), 1},
                         {"src below", tuple(IPPROTO_TCP, "1.1.1.1", 1023, "2.2.2.2", 8000), kNoRule},
                         {"dst above", tuple(IPPROTO_TCP, "1.1.1.1", 2000, "2.2.2.2", 8081), kNoRule},
                         {"dst 0", tuple(IPPROTO_TCP, "1.1.1.1", 5, "2.2.2.2", 0), 2},
                         {"dst 65535", tuple(IPPROTO_TCP, "1.1.1.1", 5, "2.2.2.2", 65535), 3},
                         {"udp", tuple(IPPROTO_UDP, "1.1.1.1", 2000, "2.2.2.2", 8000), kNoRule},
                     });
}

TEST(L34Classifier, FirstMatchWinsBroadBeforeNarrow) {
  std::vector<L34Rule> rules = {
      {1, 0, {cidr("10.0.0.0/8")}, {}, {}, {}, {}},
      {2, IPPROTO_TCP, {cidr("10.1.2.3/32")}, {}, {}, {{443, 443}}, {}},  // shadowed entirely
      {3, IPPROTO_TCP, {cidr("10.1.2.3/32"), cidr("2001:db8::/64")}, {}, {}, {}, {}},
  };
  expectCases(rules, {
                         {"narrow tuple", tuple(IPPROTO_TCP, "10.1.2.3", 5, "1.1.1.1", 443), 1},
                         {"v6", tuple(IPPROTO_TCP, "2001:db8::5", 5, "2001:db9::1", 443), 3},
                     });
}

TEST(L34Classifier, FirstMatchWinsNarrowBeforeBroad) {
  std::vector<L34Rule> rules = {
      {1, IPPROTO_TCP, {cidr("10.1.2.3/32")}, {}, {}, {{443, 443}}, {}},
      {2, 0, {cidr("10.0.0.0/8")}, {}, {}, {}, {}},
      {3, 0, {}, {}, {}, {}, {}},
  };
  expectCases(rules, {
                         {"narrow", tuple(IPPROTO_TCP, "10.1.2.3", 5, "1.1.1.1", 443), 1},
                         {"narrow other port", tuple(IPPROTO_TCP, "10.1.2.3", 5, "1.1.1.1", 80), 2},
                         {"broad", tuple(IPPROTO_UDP, "10.200.0.1", 5, "1.1.1.1", 443), 2},
                         {"catch-all", tuple(IPPROTO_UDP, "11.0.0.1", 5, "1.1.1.1", 443), 3},
                         {"catch-all v6", tuple(IPPROTO_UDP, "::1", 5, "::2", 443), 3},
                     });
}

// A rule with a direction matches flows known to go that way only; one without matches every flow. rte_acl
// refuses directions rather than ignore them.
TEST(L34Classifier, DirectionsMatchOnlyTheirWay) {
  L34Rule egress{0, IPPROTO_TCP, {}, {cidr("10.0.0.0/8")}, {}, {{443, 443}}, {}, kDirectionEgress};
  L34Rule ingress{1, IPPROTO_TCP, {cidr("10.0.0.0/8")}, {}, {}, {}, {}, kDirectionIngress};
  L34Rule any{2, 0, {}, {}, {}, {}, {}, kDirectionUnknown};
  std::vector<L34Rule> rules = {egress, ingress, any};
  auto withDirection = [](L34Tuple t, uint8_t direction) {
    t.direction = direction;
    return t;
  };
  L34Tuple out = tuple(IPPROTO_TCP, "192.168.1.5", 40000, "10.1.2.3", 443);
  L34Tuple in = tuple(IPPROTO_TCP, "10.1.2.3", 40000, "192.168.1.5", 22);
  expectCases(rules, {
                         {"egress to 10/8:443", withDirection(out, kDirectionEgress), 0},
                         {"the same flow seen as ingress", withDirection(out, kDirectionIngress), 2},
                         {"the same flow, direction unknown", withDirection(out, kDirectionUnknown), 2},
                         {"ingress from 10/8", withDirection(in, kDirectionIngress), 1},
                         {"egress from 10/8", withDirection(in, kDirectionEgress), 2},
                     });
  auto refused = L34Classifier::build(rules, "l34_test_direction_acl", SOCKET_ID_ANY, rteAcl());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ENOTSUP);
  EXPECT_NE(refused.error().message.find("direction"), std::string::npos) << refused.error().message;
}

// A family limits a rule to one IP version, its "any address" sides included, in both engines.
TEST(L34Classifier, FamilyLimitsAnyAddressToOneVersion) {
  for (const L34ClassifierConfig& config : {L34ClassifierConfig{}, rteAcl()}) {
    L34Rule v6Only{0, IPPROTO_TCP, {}, {}, {}, {{22, 22}}, {}, kDirectionUnknown, 6};
    L34Rule v4Only{1, 0, {}, {}, {}, {}, {}, kDirectionUnknown, 4};
    auto classifier = build({v6Only, v4Only}, config);
    ASSERT_NE(classifier, nullptr);
    EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_TCP, "2001:db8::1", 40000, "2001:db8::2", 22)), 0u);
    EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_TCP, "2001:db8::1", 40000, "2001:db8::2", 23)), kNoRule);
    EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_TCP, "10.0.0.1", 40000, "10.0.0.2", 22)), 1u);
    EXPECT_EQ(classifyOne(*classifier, tuple(IPPROTO_UDP, "10.0.0.1", 40000, "10.0.0.2", 53)), 1u);
  }
}

TEST(L34Classifier, RuleIdsNeedNotBeDense) {
  std::vector<L34Rule> rules = {
      {1000, IPPROTO_TCP, {}, {}, {}, {{22, 22}}, {}},
      {7, 0, {}, {}, {}, {}, {}},
      {0, 0, {}, {}, {}, {}, {}},
  };
  expectCases(rules, {
                         {"ssh", tuple(IPPROTO_TCP, "1.1.1.1", 5, "2.2.2.2", 22), 1000},
                         {"else", tuple(IPPROTO_TCP, "1.1.1.1", 5, "2.2.2.2", 23), 7},
                     });
}

TEST(L34Classifier, CrossProductExpansion) {
  std::vector<L34Rule> rules = {
      {1,
       0,
       {cidr("10.0.0.0/8"), cidr("172.16.0.0/12"), cidr("fd00::/8")},
       {cidr("192.168.0.0/16"), cidr("fd01::1")},
       {},
       {{80, 80}, {443, 443}, {8000, 8999}},
       {}},
  };
  auto acl = build(rules, rteAcl());
  ASSERT_NE(acl, nullptr);
  // v4: 2 sources x 1 destination x 3 protocols x 3 ranges; v6: 1 x 1 x 3 x 3.
  EXPECT_EQ(acl->stats().ipv4AclRules, 18u);
  EXPECT_EQ(acl->stats().ipv6AclRules, 9u);
  EXPECT_GT(acl->stats().memoryBytes, 0u);
  EXPECT_STRNE(acl->stats().algorithm, "none");
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  // The bitmap engine keeps "any protocol with ports" as one element.
  EXPECT_EQ(classifier->stats().ipv4AclRules, 6u);
  EXPECT_EQ(classifier->stats().ipv6AclRules, 3u);
  EXPECT_GT(classifier->stats().memoryBytes, 0u);
  EXPECT_STREQ(classifier->stats().algorithm, "bitmap");
  std::vector<Case> cases = {
      {"first cidr", tuple(IPPROTO_TCP, "10.1.1.1", 5, "192.168.3.4", 80), 1},
      {"second cidr", tuple(IPPROTO_UDP, "172.31.1.1", 5, "192.168.3.4", 443), 1},
      {"third range", tuple(IPPROTO_SCTP, "172.16.0.1", 5, "192.168.0.0", 8500), 1},
      {"outside ranges", tuple(IPPROTO_TCP, "172.16.0.1", 5, "192.168.0.0", 9000), kNoRule},
      {"outside cidrs", tuple(IPPROTO_TCP, "172.32.0.1", 5, "192.168.0.0", 80), kNoRule},
      {"v6", tuple(IPPROTO_TCP, "fd12::1", 5, "fd01::1", 8999), 1},
      {"v6 other dst", tuple(IPPROTO_TCP, "fd12::1", 5, "fd01::2", 8999), kNoRule},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(classifyOne(*classifier, c.tuple), c.expected) << c.name;
    EXPECT_EQ(linearScan(rules, c.tuple), c.expected) << c.name;
  }
}

TEST(L34Classifier, Ipv6PrefixesAcrossWordBoundaries) {
  std::vector<L34Rule> rules = {
      {1, 0, {cidr("2001:db8:aaaa:bbbb:cccc::/80")}, {}, {}, {}, {}},
      {2, 0, {cidr("2001:db8::/31")}, {}, {}, {}, {}},
      {3, 0, {}, {cidr("::1/128")}, {}, {}, {}},
      {4, 0, {cidr("2001:db8:aaaa:bbbb::/33")}, {}, {}, {}, {}},
  };
  expectCases(rules,
              {
                  {"/80", tuple(IPPROTO_TCP, "2001:db8:aaaa:bbbb:cccc::9", 1, "::2", 2), 1},
                  {"/80 miss -> /31", tuple(IPPROTO_TCP, "2001:db8:aaaa:bbbb:cccd::9", 1, "::2", 2), 2},
                  {"/31 other half", tuple(IPPROTO_TCP, "2001:db9::", 1, "::2", 2), 2},
                  {"/128", tuple(IPPROTO_TCP, "2001:dba::", 1, "::1", 2), 3},
                  {"none", tuple(IPPROTO_TCP, "2001:dba::", 1, "::2", 2), kNoRule},
              });
}

TEST(L34Classifier, HostBitsInRuleAreIgnored) {
  policy::Cidr sloppy = cidr("10.1.2.3/8");
  std::vector<L34Rule> rules = {{1, 0, {sloppy}, {}, {}, {}, {}}};
  expectCases(rules, {{"same /8", tuple(IPPROTO_TCP, "10.200.0.1", 1, "1.1.1.1", 2), 1}});
}

TEST(L34Classifier, LargeBurstsAndUnknownVersions) {
  std::vector<L34Rule> rules = {{1, IPPROTO_TCP, {cidr("10.0.0.0/8")}, {}, {}, {}, {}},
                                {2, 0, {}, {}, {}, {}, {}}};
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  std::vector<L34Tuple> tuples;
  for (int i = 0; i < 300; ++i) {
    if (i % 3 == 0)
      tuples.push_back(tuple(IPPROTO_TCP, "10.0.0." + std::to_string(i % 250), 1, "1.1.1.1", 2));
    if (i % 3 == 1) tuples.push_back(tuple(IPPROTO_TCP, "2001:db8::" + std::to_string(i), 1, "::1", 2));
    if (i % 3 == 2) {
      tuples.push_back(tuple(IPPROTO_TCP, "10.0.0.1", 1, "1.1.1.1", 2));
      tuples.back().ipVersion = 5;
    }
  }
  std::vector<const L34Tuple*> pointers;
  for (const auto& t : tuples) pointers.push_back(&t);
  std::vector<uint32_t> ruleIds(tuples.size(), 12345);
  classifier->classify(pointers.data(), static_cast<uint32_t>(pointers.size()), ruleIds.data());
  for (size_t i = 0; i < tuples.size(); ++i) {
    EXPECT_EQ(ruleIds[i], i % 3 == 0 ? 1u : i % 3 == 1 ? 2u : kNoRule) << i;
  }
}

TEST(L34Classifier, RefusesExpansionOverTheLimit) {
  L34Rule wide{1, 0, {}, {}, {}, {}, {}};
  for (int i = 0; i < 10; ++i) wide.sources.push_back(cidr("10." + std::to_string(i) + ".0.0/16"));
  for (int i = 0; i < 10; ++i) wide.destinations.push_back(cidr("11." + std::to_string(i) + ".0.0/16"));
  for (uint16_t i = 0; i < 10; ++i) wide.destinationPorts.push_back({i, i});
  L34ClassifierConfig config = rteAcl();
  config.maxAclRules = 2999;  // 10 x 10 x 10 x 3 protocols = 3000
  auto refused = L34Classifier::build({wide}, "l34_test_limit", SOCKET_ID_ANY, config);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, E2BIG);
  EXPECT_NE(refused.error().message.find("2999"), std::string::npos) << refused.error().message;
  config.maxAclRules = 3000;
  auto classifier = build({wide}, config);
  ASSERT_NE(classifier, nullptr);
  EXPECT_EQ(classifier->stats().ipv4AclRules, 3000u);
  L34ClassifierConfig bitmap;
  bitmap.maxAclRules = 999;  // 10 x 10 x 10
  EXPECT_FALSE(L34Classifier::build({wide}, "l34_test_limit", SOCKET_ID_ANY, bitmap).ok());
  bitmap.maxAclRules = 1000;
  EXPECT_TRUE(L34Classifier::build({wide}, "l34_test_limit", SOCKET_ID_ANY, bitmap).ok());
}

TEST(L34Classifier, RefusesInvalidRulesAndDuplicateNames) {
  auto bad = [](L34Rule rule) { return L34Classifier::build({rule}, "l34_test_bad", SOCKET_ID_ANY).ok(); };
  policy::Cidr longV4 = cidr("10.0.0.0/8");
  longV4.prefixLength = 33;
  policy::Cidr noFamily = cidr("10.0.0.0/8");
  noFamily.family = 5;
  EXPECT_FALSE(bad({1, 0, {longV4}, {}, {}, {}, {}}));
  EXPECT_FALSE(bad({1, 0, {}, {noFamily}, {}, {}, {}}));
  EXPECT_FALSE(bad({1, 0, {}, {}, {{10, 9}}, {}, {}}));
  EXPECT_FALSE(bad({kNoRule, 0, {}, {}, {}, {}, {}}));
  EXPECT_FALSE(bad({1, IPPROTO_TCP, {}, {}, {}, {}, {{8, 8}}})) << "ICMP types need ICMP or ICMPv6";
  EXPECT_FALSE(bad({1, 0, {}, {}, {}, {}, {{8, 8}}}));
  EXPECT_FALSE(bad({1, IPPROTO_ICMP, {}, {}, {}, {{8, 8}}, {{8, 8}}})) << "ICMP types with ports";
  EXPECT_FALSE(bad({1, IPPROTO_ICMP, {}, {}, {}, {}, {{9, 8}}}));
  EXPECT_FALSE(bad({1, IPPROTO_ICMPV6, {}, {}, {}, {}, {{0, 256}}}));
  EXPECT_TRUE(bad({1, IPPROTO_ICMPV6, {}, {}, {}, {}, {{0, 255}}}));
  EXPECT_FALSE(L34Classifier::build({}, std::string(40, 'x'), SOCKET_ID_ANY).ok());

  // rte_acl context names are process-global.
  std::vector<L34Rule> rules = {{1, 0, {}, {}, {}, {}, {}}};
  auto first = L34Classifier::build(rules, "l34_test_dup", SOCKET_ID_ANY, rteAcl());
  ASSERT_TRUE(first.ok());
  auto second = L34Classifier::build(rules, "l34_test_dup", SOCKET_ID_ANY, rteAcl());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EEXIST);
  first.value().reset();
  EXPECT_TRUE(L34Classifier::build(rules, "l34_test_dup", SOCKET_ID_ANY, rteAcl()).ok())
      << "the name is free again";
}

// Random policies against the linear scan. Tuples are mostly drawn inside some rule's CIDRs and ports, so
// that most of them match something and shadowing between random rules is exercised, not just misses.
class Random {
 public:
  explicit Random(uint32_t seed) : engine_(seed) {}
  uint32_t below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(engine_); }
  bool chance(uint32_t percent) { return below(100) < percent; }

  policy::Cidr cidr(uint8_t family) {
    policy::Cidr c;
    c.family = family;
    int bits = family == 4 ? 32 : 128;
    // Short prefixes are rare in policies but are where /0 and word-boundary bugs live; keep them common.
    // Short prefixes are rare in policies but are where /0 and word-boundary bugs live: keep some, few enough
    // that they do not shadow everything after them.
    uint32_t roll = below(100);
    c.prefixLength = static_cast<uint8_t>(roll < 2   ? 0
                                          : roll < 6 ? 1 + below(8)
                                                     : 8 + below(static_cast<uint32_t>(bits) - 7));
    for (int i = 0; i < bits / 8; ++i)
      c.address[i] = static_cast<uint8_t>(below(4));  // small alphabet: overlap
    if (family == 6 && chance(30)) c.address[0] = 0x20, c.address[1] = 0x01;
    for (int bit = c.prefixLength; bit < bits; ++bit)
      c.address[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    return c;
  }
  policy::PortRange range() {
    if (chance(50)) {
      auto port = static_cast<uint16_t>(below(8) == 0 ? below(65536) : below(16));
      return {port, port};
    }
    auto a = static_cast<uint16_t>(below(65536)), b = static_cast<uint16_t>(below(65536));
    return {std::min(a, b), std::max(a, b)};
  }
  policy::PortRange icmpTypes() {
    // Mostly single well-known types (which overlap between rules), some ranges anywhere in 0..255.
    static constexpr uint8_t kTypes[] = {0, 3, 8, 11, 1, 2, 128, 129, 133, 134, 135, 136};
    if (chance(70)) {
      uint8_t type = chance(80) ? kTypes[below(sizeof(kTypes))] : static_cast<uint8_t>(below(256));
      return {type, type};
    }
    auto a = static_cast<uint16_t>(below(256)), b = static_cast<uint16_t>(below(256));
    return {std::min(a, b), std::max(a, b)};
  }
  uint8_t protocol() {
    static constexpr uint8_t kProtocols[] = {
        0, 0, IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_ICMPV6, 47};
    return kProtocols[below(sizeof(kProtocols))];
  }

 private:
  std::mt19937 engine_;
};

// directions: some rules get one (the bitmap engine only: rte_acl refuses them).
std::vector<L34Rule> randomRules(Random& random, uint32_t count, bool directions = false) {
  std::vector<L34Rule> rules;
  for (uint32_t i = 0; i < count; ++i) {
    L34Rule rule;
    rule.ruleId = i * 3 + random.below(3);  // ascending, sparse
    rule.protocol = random.protocol();
    uint8_t family = random.chance(50) ? 4 : 6;
    for (auto* side : {&rule.sources, &rule.destinations}) {
      uint32_t n = random.chance(5) ? 0 : 1 + random.below(3);  // 0: any
      for (uint32_t k = 0; k < n; ++k) side->push_back(random.cidr(random.chance(85) ? family : 10 - family));
    }
    // Rules that match every address shadow everything after them: keep them to the end of the policy, where
    // catch-alls are in real ones, so that the comparison covers many rules.
    if (rule.sources.empty() && rule.destinations.empty() && i < count * 95 / 100)
      rule.destinations.push_back(random.cidr(family));
    bool icmp = rule.protocol == IPPROTO_ICMP || rule.protocol == IPPROTO_ICMPV6;
    if (icmp && random.chance(60)) {
      // ICMP types instead of ports.
      uint32_t n = 1 + random.below(3);
      for (uint32_t k = 0; k < n; ++k) rule.icmpTypes.push_back(random.icmpTypes());
    } else {
      for (auto* ports : {&rule.sourcePorts, &rule.destinationPorts}) {
        uint32_t n = random.chance(50) ? 0 : random.below(3);
        for (uint32_t k = 0; k < n; ++k) ports->push_back(random.range());
      }
    }
    if (directions && random.chance(20)) rule.direction = static_cast<uint8_t>(1 + random.below(2));
    // A family on a rule with addresses (its "any" sides then stay in that family).
    if ((!rule.sources.empty() || !rule.destinations.empty()) && random.chance(10))
      rule.family = random.chance(50) ? 4 : 6;
    rules.push_back(std::move(rule));
  }
  return rules;
}

L34Tuple randomTuple(Random& random, const std::vector<L34Rule>& rules) {
  L34Tuple t{};
  const L34Rule& near = rules[random.below(static_cast<uint32_t>(rules.size()))];
  t.ipVersion = random.chance(50) ? 4 : 6;
  if (!near.sources.empty() && random.chance(80)) t.ipVersion = near.sources[0].family;
  t.protocol = near.protocol != 0 && random.chance(80) ? near.protocol : random.protocol();
  int bytes = t.ipVersion == 4 ? 4 : 16;
  auto address = [&](const std::vector<policy::Cidr>& cidrs, uint8_t* out) {
    uint32_t alphabet = random.chance(50) ? 4 : 256;
    for (int i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(random.below(alphabet));
    if (cidrs.empty() || random.chance(20)) return;
    const auto& c = cidrs[random.below(static_cast<uint32_t>(cidrs.size()))];
    if (c.family != t.ipVersion) return;
    for (int bit = 0; bit < c.prefixLength; ++bit) {
      uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
      out[bit / 8] = static_cast<uint8_t>((out[bit / 8] & ~mask) | (c.address[bit / 8] & mask));
    }
  };
  address(near.sources, t.src);
  address(near.destinations, t.dst);
  auto port = [&](const std::vector<policy::PortRange>& ranges) -> uint16_t {
    if (ranges.empty() || random.chance(20))
      return static_cast<uint16_t>(random.chance(50) ? random.below(16) : random.below(65536));
    const auto& r = ranges[random.below(static_cast<uint32_t>(ranges.size()))];
    return static_cast<uint16_t>(r.low + random.below(uint32_t{r.high} - r.low + 1));
  };
  t.srcPort = port(near.sourcePorts);
  t.dstPort = port(near.destinationPorts);
  // A type for every tuple (the classifier must ignore it unless the protocol is ICMP or ICMPv6), mostly
  // inside the near rule's types.
  t.icmpType = static_cast<uint8_t>(random.below(256));
  if (!near.icmpTypes.empty() && random.chance(80)) {
    const auto& r = near.icmpTypes[random.below(static_cast<uint32_t>(near.icmpTypes.size()))];
    t.icmpType = static_cast<uint8_t>(r.low + random.below(uint32_t{r.high} - r.low + 1));
  } else if (random.chance(50)) {
    t.icmpType = static_cast<uint8_t>(random.below(4) * 8);  // 0, 8, 16, 24: often a port's low numbers too
  }
  // ICMP echo: the parser puts the identifier in both ports; other ICMP messages have 0 in both.
  if (t.protocol == IPPROTO_ICMP || t.protocol == IPPROTO_ICMPV6) {
    t.srcPort = t.dstPort = static_cast<uint16_t>(random.chance(50) ? 0 : random.below(65536));
    if (random.chance(20)) t.srcPort = t.dstPort = t.icmpType;
  }
  t.direction = static_cast<uint8_t>(random.below(3));  // unknown, egress or ingress
  return t;
}

// Classifies random tuples (20,000 by default) against random rules (2,000) and compares every answer with
// the linear scan.
void checkAgainstLinearScan(uint32_t seed, const L34ClassifierConfig& config, uint32_t ruleCount = 2000,
                            int tupleCount = 20000) {
  Random random(seed);
  auto rules = randomRules(random, ruleCount, config.engine == L34Engine::kBitmap);
  auto classifier = build(rules, config);
  ASSERT_NE(classifier, nullptr);
  std::vector<L34Tuple> tuples;
  for (int i = 0; i < tupleCount; ++i) tuples.push_back(randomTuple(random, rules));
  std::vector<const L34Tuple*> pointers;
  for (const auto& t : tuples) pointers.push_back(&t);
  std::vector<uint32_t> ruleIds(tuples.size());
  classifier->classify(pointers.data(), static_cast<uint32_t>(pointers.size()), ruleIds.data());
  size_t matched = 0, mismatches = 0, typed = 0;
  std::set<uint32_t> distinct, typedRules;
  for (const auto& rule : rules) {
    if (!rule.icmpTypes.empty()) typedRules.insert(rule.ruleId);
  }
  for (size_t i = 0; i < tuples.size(); ++i) {
    uint32_t expected = linearScan(rules, tuples[i]);
    matched += expected != kNoRule;
    typed += typedRules.count(expected);
    distinct.insert(expected);
    if (ruleIds[i] != expected && ++mismatches <= 10) {
      ADD_FAILURE() << "seed " << seed << " tuple " << i << ": classifier " << ruleIds[i] << ", linear scan "
                    << expected;
    }
  }
  EXPECT_EQ(mismatches, 0u);
  // The comparison means something only if many tuples match, and not all of them the same rule.
  EXPECT_GT(matched, tuples.size() / 4) << "seed " << seed;
  EXPECT_GT(distinct.size(), 200u) << "seed " << seed;
  EXPECT_GT(typed, tuples.size() / 100) << "seed " << seed << ": too few tuples decided by ICMP types";
  std::printf(
      "seed %u: %u rules -> %llu + %llu ACL rules, %zu/%zu tuples matched, %zu distinct results, "
      "%zu by ICMP types, build %.1f ms, %llu bytes, %s, listed %u/%u/%u\n",
      seed, classifier->stats().rules, static_cast<unsigned long long>(classifier->stats().ipv4AclRules),
      static_cast<unsigned long long>(classifier->stats().ipv6AclRules), matched, tuples.size(),
      distinct.size(), typed, static_cast<double>(classifier->stats().buildNanoseconds) / 1e6,
      static_cast<unsigned long long>(classifier->stats().memoryBytes), classifier->stats().algorithm,
      classifier->stats().listed[0], classifier->stats().listed[1], classifier->stats().listed[2]);
}

TEST(L34Classifier, AgreesWithLinearScanOnRandomPolicies) {
  checkAgainstLinearScan(1, {});
  checkAgainstLinearScan(2, {});
  checkAgainstLinearScan(1, rteAcl());
}

// The bitmap engine's wide part over-approximates with coarse groups and relies on checking candidates:
// starve it of memory (16 groups per field) so that nearly every element is a candidate everywhere.
TEST(L34Classifier, BitmapEngineWithCoarseGroupsAgrees) {
  L34ClassifierConfig config;
  config.bitmapFieldBytes = 1;
  checkAgainstLinearScan(5, config);
}

// More rules than the summary words' 4096-element span, so that the walk crosses summary words.
TEST(L34Classifier, BitmapEngineAgreesOnLargerPolicies) {
  // Seed 14, not 6: since the generator draws ICMP types, seed 6's policy starts with a wide rule that takes
  // most tuples (170 distinct results, under the floor).
  checkAgainstLinearScan(14, {}, 9000, 8000);
  L34ClassifierConfig config;
  config.bitmapFieldBytes = 1;
  checkAgainstLinearScan(8, config, 9000, 8000);
}

// Many rules on one port (as tcp/443 is in real policies), some with wide addresses: long runs in the port
// list, crowded address pieces and a large bitmap part, and enough pieces that the starts' search has
// several levels above its last line.
TEST(L34Classifier, BitmapEngineAgreesWhenManyRulesShareAPort) {
  Random random(9);
  std::vector<L34Rule> rules;
  for (uint32_t i = 0; i < 20000; ++i) {
    L34Rule rule;
    rule.ruleId = i;
    rule.protocol = random.chance(80) ? IPPROTO_TCP : 0;
    uint8_t family = random.chance(80) ? 4 : 6;
    for (auto* side : {&rule.sources, &rule.destinations}) {
      if (random.chance(10)) continue;  // any
      policy::Cidr c = random.cidr(family);
      // Spread the addresses (the random alphabet is small) so that most rules are narrow somewhere.
      for (int b = 0; b < 16; ++b) c.address[b] = static_cast<uint8_t>(random.below(256));
      uint32_t roll = random.below(100);
      c.prefixLength = static_cast<uint8_t>(roll < 10     ? 8
                                            : roll < 30   ? 16
                                            : roll < 50   ? 24
                                            : family == 4 ? 32
                                                          : 128);
      if (family == 6 && c.prefixLength < 128) c.prefixLength = static_cast<uint8_t>(c.prefixLength + 32);
      int bits = family == 4 ? 32 : 128;
      for (int bit = c.prefixLength; bit < bits; ++bit)
        c.address[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
      side->push_back(c);
    }
    uint32_t portRoll = random.below(100);
    if (portRoll < 70) {
      rule.destinationPorts.push_back({443, 443});
    } else if (portRoll < 85) {
      auto low = static_cast<uint16_t>(random.below(65536));
      rule.destinationPorts.push_back(
          {low, static_cast<uint16_t>(std::min(65535u, low + random.below(2000u)))});
    }
    rules.push_back(std::move(rule));
  }
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  size_t matched = 0;
  for (int i = 0; i < 6000; ++i) {
    L34Tuple t = randomTuple(random, rules);
    if (random.chance(60)) t.dstPort = 443;
    uint32_t expected = linearScan(rules, t);
    matched += expected != kNoRule;
    ASSERT_EQ(classifyOne(*classifier, t), expected) << i;
  }
  EXPECT_GT(matched, 1000u);
  EXPECT_GT(classifier->stats().ipv4AclRules + classifier->stats().ipv6AclRules -
                classifier->stats().listed[0] - classifier->stats().listed[1] - classifier->stats().listed[2],
            100u)
      << "the bitmap part should hold the wide rules";
}

// The starts' search finds a key's block through a directory placed over the keys' range: keys bunched into
// a few addresses among others spread over the whole space leave slots spanning many blocks (the tree takes
// those), slots of one block, and keys below and above every start. Host routes and short ranges in one
// pod CIDR beside scattered ones, in both families and in bursts of every size up to 70, each answer against
// the linear scan.
TEST(L34Classifier, BitmapEngineAgreesWhereKeysBunch) {
  Random random(11);
  std::vector<L34Rule> rules;
  auto host = [&](uint8_t family, uint32_t index, bool bunched) {
    policy::Cidr c;
    c.family = family;
    int bytes = family == 4 ? 4 : 16;
    for (int b = 0; b < bytes; ++b) c.address[b] = static_cast<uint8_t>(random.below(256));
    if (bunched) {
      // 10.244.x.y or fd00::x:y, x.y counting up: every key within 2^13 of the first.
      std::memset(c.address, 0, bytes);
      c.address[0] = family == 4 ? 10 : 0xfd;
      c.address[1] = family == 4 ? 244 : 0;
      c.address[bytes - 2] = static_cast<uint8_t>(index >> 8);
      c.address[bytes - 1] = static_cast<uint8_t>(index);
    }
    // Mostly hosts, some short ranges (/27 to /31 and their IPv6 peers): ranges that span several pieces
    // are what a wrong block shows on, since a host's piece is wherever the search puts its address.
    int bits = family == 4 ? 32 : 128;
    c.prefixLength = static_cast<uint8_t>(random.chance(70) ? bits : bits - 1 - random.below(5));
    for (int bit = c.prefixLength; bit < bits; ++bit)
      c.address[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    return c;
  };
  for (uint32_t i = 0; i < 12000; ++i) {
    L34Rule rule;
    rule.ruleId = i;
    rule.protocol = random.chance(70) ? IPPROTO_TCP : 0;
    uint8_t family = i % 4 == 3 ? 6 : 4;
    bool bunched = random.chance(90);
    (random.chance(50) ? rule.sources : rule.destinations).push_back(host(family, i & 0x1fff, bunched));
    if (random.chance(60))
      rule.destinationPorts.push_back({static_cast<uint16_t>(random.below(4) * 1000), 8080});
    rules.push_back(std::move(rule));
  }
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  std::vector<L34Tuple> tuples;
  for (int i = 0; i < 20000; ++i) {
    const L34Rule& near = rules[random.below(static_cast<uint32_t>(rules.size()))];
    const auto& cidrs = near.sources.empty() ? near.destinations : near.sources;
    L34Tuple t{};
    t.ipVersion = cidrs[0].family;
    t.protocol = random.chance(80) ? IPPROTO_TCP : IPPROTO_UDP;
    int bytes = t.ipVersion == 4 ? 4 : 16;
    for (int b = 0; b < bytes; ++b)
      t.src[b] = static_cast<uint8_t>(random.below(256)), t.dst[b] = static_cast<uint8_t>(random.below(256));
    uint32_t roll = random.below(10);
    uint8_t* side = near.sources.empty() ? t.dst : t.src;
    if (roll < 6) {  // inside the rule's range
      std::memcpy(side, cidrs[0].address, bytes);
      side[bytes - 1] =
          static_cast<uint8_t>(side[bytes - 1] | random.below(1u << (bytes * 8 - cidrs[0].prefixLength)));
    }
    if (roll == 6) std::memset(side, 0, bytes);     // below every start
    if (roll == 7) std::memset(side, 0xff, bytes);  // past the last slot
    if (roll == 8) {                                // beside the bunch
      std::memcpy(side, cidrs[0].address, bytes);
      side[bytes - 1] = static_cast<uint8_t>(side[bytes - 1] ^ 1);
    }
    t.srcPort = static_cast<uint16_t>(random.below(65536));
    t.dstPort = static_cast<uint16_t>(random.chance(50) ? 8080 : random.below(65536));
    tuples.push_back(t);
  }
  std::vector<const L34Tuple*> pointers;
  for (const auto& t : tuples) pointers.push_back(&t);
  std::vector<uint32_t> ruleIds(tuples.size());
  for (size_t done = 0, burst = 1; done < tuples.size(); done += burst, burst = burst % 70 + 1) {
    uint32_t count = static_cast<uint32_t>(std::min(burst, tuples.size() - done));
    classifier->classify(pointers.data() + done, count, ruleIds.data() + done);
  }
  size_t matched = 0, mismatches = 0;
  for (size_t i = 0; i < tuples.size(); ++i) {
    uint32_t expected = linearScan(rules, tuples[i]);
    matched += expected != kNoRule;
    if (ruleIds[i] != expected && ++mismatches <= 10)
      ADD_FAILURE() << "tuple " << i << ": classifier " << ruleIds[i] << ", linear scan " << expected;
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(matched, tuples.size() / 3);
}

// The ends of every key space (address 0 and all ones, port 0 and 65535), where the padding of the starts'
// search lines and the last pieces' bounds are.
TEST(L34Classifier, BitmapEngineAgreesAtTheKeySpaceEnds) {
  Random random(10);
  auto rules = randomRules(random, 3000);
  for (const char* text : {"255.255.255.255/32", "255.255.255.0/24", "0.0.0.0/32", "0.0.0.0/31",
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "ffff::/16", "::/128"}) {
    L34Rule rule;
    rule.ruleId = static_cast<uint32_t>(rules.size() * 3 + 3);
    rule.destinations.push_back(cidr(text));
    if (rules.size() % 2 == 0) rule.destinationPorts.push_back({65535, 65535});
    rules.insert(rules.begin() + static_cast<long>(random.below(static_cast<uint32_t>(rules.size()))), rule);
  }
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  for (int i = 0; i < 20000; ++i) {
    L34Tuple t = randomTuple(random, rules);
    int bytes = t.ipVersion == 4 ? 4 : 16;
    for (uint8_t* address : {t.src, t.dst}) {
      uint32_t roll = random.below(4);
      if (roll == 0) std::memset(address, 0xff, bytes);
      if (roll == 1) std::memset(address, 0, bytes);
    }
    uint32_t portRoll = random.below(4);
    if (portRoll == 0) t.dstPort = 65535, t.srcPort = 65535;
    if (portRoll == 1) t.dstPort = 0, t.srcPort = 0;
    ASSERT_EQ(classifyOne(*classifier, t), linearScan(rules, t)) << i;
  }
}

// A policy of nothing but catch-alls and near catch-alls: every element lands in the bitmap part.
TEST(L34Classifier, BitmapEngineAllWideElements) {
  std::vector<L34Rule> rules;
  for (uint32_t i = 0; i < 200; ++i) {
    L34Rule rule;
    rule.ruleId = i;
    rule.protocol = i % 3 == 0 ? 0 : i % 3 == 1 ? IPPROTO_TCP : IPPROTO_UDP;
    if (i % 5 == 0) rule.destinationPorts.push_back({static_cast<uint16_t>(i), 65535});
    if (i % 7 == 0) rule.sources.push_back(cidr(i % 2 ? "0.0.0.0/1" : "::/1"));
    rules.push_back(std::move(rule));
  }
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  Random random(8);
  for (int i = 0; i < 5000; ++i) {
    L34Tuple t = randomTuple(random, rules);
    ASSERT_EQ(classifyOne(*classifier, t), linearScan(rules, t)) << i;
  }
}

// Workers may run on CPUs where rte_acl picks another implementation: each must give the same answers.
TEST(L34Classifier, EveryClassifyImplementationAgrees) {
  for (int algorithm : {RTE_ACL_CLASSIFY_SCALAR, RTE_ACL_CLASSIFY_SSE, RTE_ACL_CLASSIFY_AVX2,
                        RTE_ACL_CLASSIFY_AVX512X16, RTE_ACL_CLASSIFY_AVX512X32}) {
    L34ClassifierConfig config = rteAcl();
    config.algorithm = algorithm;
    auto probe = L34Classifier::build({{1, 0, {}, {}, {}, {}, {}}}, "l34_test_probe", SOCKET_ID_ANY, config);
    if (!probe.ok()) {
      EXPECT_EQ(probe.error().code, ENOTSUP) << probe.error().message;
      std::printf("algorithm %d not supported here\n", algorithm);
      continue;
    }
    probe.value().reset();
    SCOPED_TRACE(algorithm);
    checkAgainstLinearScan(3, config);
  }
}

// One built classifier, many readers at once, as workers share it.
TEST(L34Classifier, ConcurrentReadersGetTheSameAnswers) {
  Random random(4);
  auto rules = randomRules(random, 500);
  auto classifier = build(rules);
  ASSERT_NE(classifier, nullptr);
  std::vector<L34Tuple> tuples;
  for (int i = 0; i < 4096; ++i) tuples.push_back(randomTuple(random, rules));
  std::vector<const L34Tuple*> pointers;
  for (const auto& t : tuples) pointers.push_back(&t);
  std::vector<uint32_t> expected(tuples.size());
  for (size_t i = 0; i < tuples.size(); ++i) expected[i] = linearScan(rules, tuples[i]);
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int thread = 0; thread < 4; ++thread) {
    readers.emplace_back([&] {
      std::vector<uint32_t> ruleIds(tuples.size());
      for (int round = 0; round < 20; ++round) {
        classifier->classify(pointers.data(), static_cast<uint32_t>(pointers.size()), ruleIds.data());
        if (ruleIds != expected) ++wrong;
      }
    });
  }
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace vgate::dataplane
