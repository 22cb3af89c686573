// Policy loader: the full example document field by field, each validation error with its exact
// file:line:column, several errors at once, aliases, many regexes (checked ahead on several threads),
// host-name normalization, IPv6 CIDRs and the shipped policies.
#include "control/policy/policy_loader.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace vgate::control {
namespace {

using policy::Cidr;
using policy::Direction;
using policy::Protocol;

constexpr const char* kExample = R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: example}
spec:
  mode: enforce          # enforce | audit
  default: allow         # allow | deny
  rules:                 # ordered; first match wins
    - name: no-bank
      action: deny       # allow | deny | reject | log
      log: false         # optional
      direction: any     # optional: any | egress | ingress
      match:
        protocol: tcp    # tcp | udp | icmp | icmpv6 | sctp | any
        source: {cidrs: [10.0.0.0/8], containers: {name: "web-*", labels: {app: web}}, ports: []}
        destination: {cidrs: ["0.0.0.0/0", "::/0"], ports: ["443", "8000-8100", 53]}
        tls: {sni: ["*.bank.example", "api.example.com"], sniRegex: [], alpn: [h2],
              certificate: {subject: [], issuer: [], san: []}}
        http: {host: [], path: ["/admin/*"], method: []}
        payload: {regex: [], window: 4096}
  endpoints:             # optional, for replay: container identities by address
    - {name: web-1, labels: {app: web}, addresses: [10.0.0.5, "fd00::5"]}
)";

// Five lines, so that the first rule of a test document starts on line 6.
constexpr const char* kHeader =
    "apiVersion: vgate.io/v1\n"
    "kind: Policy\n"
    "metadata: {name: t}\n"
    "spec:\n"
    "  rules:\n";

Cidr cidr(const char* address, int prefix) {
  Cidr out;
  bool v6 = std::string(address).find(':') != std::string::npos;
  out.family = v6 ? 6 : 4;
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, address, out.address), 1) << address;
  out.prefixLength = static_cast<uint8_t>(prefix);
  return out;
}

void expectCidr(const Cidr& actual, const Cidr& expected) {
  EXPECT_EQ(actual.family, expected.family);
  EXPECT_EQ(actual.prefixLength, expected.prefixLength);
  EXPECT_EQ(0, std::memcmp(actual.address, expected.address, sizeof(actual.address)));
}

std::vector<std::string> diagnose(const std::string& text, policy::Policy* out = nullptr) {
  std::vector<std::string> lines;
  for (const PolicyDiagnostic& d : validatePolicy(text, "p.yaml", out)) lines.push_back(d.toString());
  return lines;
}

policy::Policy loadOk(const std::string& text) {
  Result<policy::Policy> result = loadPolicy(text, "p.yaml");
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  return result.ok() ? result.value() : policy::Policy{};
}

TEST(PolicyLoader, FullExample) {
  std::vector<PolicyDiagnostic> diagnostics;
  policy::Policy p;
  diagnostics = validatePolicy(kExample, "example.yaml", &p);
  ASSERT_TRUE(diagnostics.empty()) << diagnostics[0].toString();
  EXPECT_EQ(p.name, "example");
  EXPECT_EQ(p.mode, PolicyMode::kEnforce);
  EXPECT_EQ(p.defaultAction, VerdictAction::kAllow);
  ASSERT_EQ(p.rules.size(), 1u);
  const policy::Rule& r = p.rules[0];
  EXPECT_EQ(r.name, "no-bank");
  EXPECT_EQ(r.action, VerdictAction::kDeny);
  EXPECT_FALSE(r.log);
  EXPECT_EQ(r.direction, Direction::kAny);
  EXPECT_EQ(r.protocol, Protocol::kTcp);
  EXPECT_EQ(r.location.file, "example.yaml");
  EXPECT_EQ(r.location.line, 8);
  EXPECT_EQ(r.location.column, 7);
  ASSERT_EQ(r.source.cidrs.size(), 1u);
  expectCidr(r.source.cidrs[0], cidr("10.0.0.0", 8));
  EXPECT_TRUE(r.source.containers.present);
  EXPECT_EQ(r.source.containers.name, "web-*");
  EXPECT_EQ(r.source.containers.labels, (std::map<std::string, std::string>{{"app", "web"}}));
  EXPECT_TRUE(r.source.ports.empty());
  ASSERT_EQ(r.destination.cidrs.size(), 2u);
  expectCidr(r.destination.cidrs[0], cidr("0.0.0.0", 0));
  expectCidr(r.destination.cidrs[1], cidr("::", 0));
  EXPECT_FALSE(r.destination.containers.present);
  ASSERT_EQ(r.destination.ports.size(), 3u);
  EXPECT_EQ(r.destination.ports[0].low, 443);
  EXPECT_EQ(r.destination.ports[0].high, 443);
  EXPECT_EQ(r.destination.ports[1].low, 8000);
  EXPECT_EQ(r.destination.ports[1].high, 8100);
  EXPECT_EQ(r.destination.ports[2].low, 53);
  EXPECT_EQ(r.destination.ports[2].high, 53);
  EXPECT_EQ(r.tls.sni, (std::vector<std::string>{"*.bank.example", "api.example.com"}));
  EXPECT_TRUE(r.tls.sniRegex.empty());
  EXPECT_EQ(r.tls.alpn, std::vector<std::string>{"h2"});
  EXPECT_TRUE(r.tls.certificate.subject.empty());
  EXPECT_TRUE(r.http.host.empty());
  EXPECT_EQ(r.http.path, std::vector<std::string>{"/admin/*"});
  EXPECT_TRUE(r.http.method.empty());
  EXPECT_TRUE(r.payload.regex.empty());
  EXPECT_EQ(r.payload.window, 4096u);
  EXPECT_TRUE(r.hasL7());
  ASSERT_EQ(p.endpoints.size(), 1u);
  EXPECT_EQ(p.endpoints[0].name, "web-1");
  EXPECT_EQ(p.endpoints[0].labels, (std::map<std::string, std::string>{{"app", "web"}}));
  ASSERT_EQ(p.endpoints[0].addresses.size(), 2u);
  expectCidr(p.endpoints[0].addresses[0], cidr("10.0.0.5", 32));
  expectCidr(p.endpoints[0].addresses[1], cidr("fd00::5", 128));
  // sha256 of the exact text: a different byte gives a different cache key.
  EXPECT_EQ(p.sourceHash.size(), 64u);
  EXPECT_EQ(p.sourceHash, loadOk(kExample).sourceHash);
  EXPECT_NE(p.sourceHash, loadOk(std::string(kExample) + "\n").sourceHash);
}

TEST(PolicyLoader, Sha256OfText) {
  // sha256("") would not load; check a known digest through a minimal document instead.
  std::string text = "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: m}\nspec: {}\n";
  policy::Policy p = loadOk(text);
  EXPECT_EQ(p.sourceHash.size(), 64u);
  EXPECT_EQ(p.sourceHash.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(p.defaultAction, VerdictAction::kAllow);
  EXPECT_EQ(p.mode, PolicyMode::kEnforce);
  EXPECT_TRUE(p.rules.empty());
}

TEST(PolicyLoader, OtherFieldValues) {
  policy::Policy p = loadOk(std::string(R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: v}
spec:
  mode: audit
  default: deny
  rules:
    - {name: a, action: allow, log: true, direction: egress,
       match: {protocol: udp, destination: {ports: [0, "65535"]}}}
    - {name: b, action: reject, direction: ingress, match: {protocol: icmp}}
    - {name: c, action: log, match: {protocol: icmpv6}}
    - {name: d, action: deny, match: {protocol: sctp, source: {ports: ["1-1"]}}}
    - {name: e, action: deny, match: {protocol: any, payload: {regex: ["GET /x"], window: 65536}}}
    - {name: f, action: deny, match: {tls: {sniRegex: ['^[a-z]+\.example$'], alpn: [H2, "http/1.1"],
                                            certificate: {subject: ["CN=*"], issuer: ["O=Evil"], san: [x]}}}}
    - {name: g, action: deny, match: {http: {host: [Example.COM], method: [GET, PROPFIND], path: ["/"]}}}
)"));
  EXPECT_EQ(p.mode, PolicyMode::kAudit);
  EXPECT_EQ(p.defaultAction, VerdictAction::kDeny);
  ASSERT_EQ(p.rules.size(), 7u);
  EXPECT_TRUE(p.rules[0].log);
  EXPECT_EQ(p.rules[0].direction, Direction::kEgress);
  EXPECT_EQ(p.rules[0].protocol, Protocol::kUdp);
  EXPECT_EQ(p.rules[0].destination.ports[0].low, 0);
  EXPECT_EQ(p.rules[0].destination.ports[1].high, 65535);
  EXPECT_EQ(p.rules[1].action, VerdictAction::kReject);
  EXPECT_EQ(p.rules[1].direction, Direction::kIngress);
  EXPECT_EQ(p.rules[1].protocol, Protocol::kIcmp);
  EXPECT_EQ(p.rules[2].action, VerdictAction::kLog);
  EXPECT_EQ(p.rules[2].protocol, Protocol::kIcmpv6);
  EXPECT_EQ(p.rules[3].protocol, Protocol::kSctp);
  EXPECT_EQ(p.rules[4].protocol, Protocol::kAny);
  EXPECT_EQ(p.rules[4].payload.regex, std::vector<std::string>{"GET /x"});
  EXPECT_EQ(p.rules[4].payload.window, 65536u);
  EXPECT_EQ(p.rules[5].tls.sniRegex, std::vector<std::string>{"^[a-z]+\\.example$"});
  EXPECT_EQ(p.rules[5].tls.alpn, (std::vector<std::string>{"H2", "http/1.1"}));  // ALPN is kept exactly
  EXPECT_EQ(p.rules[5].tls.certificate.subject, std::vector<std::string>{"CN=*"});
  EXPECT_EQ(p.rules[5].tls.certificate.issuer, std::vector<std::string>{"O=Evil"});
  EXPECT_EQ(p.rules[5].tls.certificate.san, std::vector<std::string>{"x"});
  EXPECT_EQ(p.rules[6].http.host, std::vector<std::string>{"example.com"});
  EXPECT_EQ(p.rules[6].http.method, (std::vector<std::string>{"GET", "PROPFIND"}));
}

struct ErrorCase {
  const char* label;
  std::string rules;  // appended to kHeader: the first line is line 6
  std::vector<std::string> expected;
};

void PrintTo(const ErrorCase& c, std::ostream* out) { *out << c.label; }

class PolicyErrors : public testing::TestWithParam<ErrorCase> {};

TEST_P(PolicyErrors, ReportsExactly) {
  const ErrorCase& c = GetParam();
  policy::Policy p;
  p.name = "untouched";
  EXPECT_EQ(diagnose(kHeader + c.rules, &p), c.expected);
  EXPECT_EQ(p.name, "untouched");  // not filled when there are errors
  EXPECT_FALSE(loadPolicy(kHeader + c.rules, "p.yaml").ok());
}

INSTANTIATE_TEST_SUITE_P(
    Rules, PolicyErrors,
    testing::Values(
        ErrorCase{"UnknownRuleKeyWithSuggestion",
                  "    - name: r\n"
                  "      acton: deny\n",
                  {"p.yaml:6:7: rule 'r': missing required key 'action'",
                   "p.yaml:7:7: rule 'r': unknown key 'acton' (did you mean 'action'?)"}},
        ErrorCase{"UnknownKeyNoSuggestion",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match: {flavour: x}\n",
                  {"p.yaml:8:15: rule 'r': unknown key 'flavour'"}},
        ErrorCase{"UnknownNestedKey",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match:\n"
                  "        tls: {snii: [a.example], certificate: {subjct: [x]}}\n",
                  {"p.yaml:9:15: rule 'r': unknown key 'snii' (did you mean 'sni'?)",
                   "p.yaml:9:48: rule 'r': unknown key 'subjct' (did you mean 'subject'?)"}},
        ErrorCase{
            "PathsNotInNormalForm",
            "    - name: r\n"
            "      action: deny\n"
            "      match:\n"
            "        http: {path: [\"/%61dmin/*\", \"/a//b\", \"/a/../b\", \"/a%2Fb\", \"/a%2f\", admin]}\n",
            {"p.yaml:9:23: rule 'r': HTTP path '/%61dmin/*' percent-encodes an unreserved character: "
             "write it as itself",
             "p.yaml:9:37: rule 'r': HTTP path '/a//b' contains '//': slashes are merged",
             "p.yaml:9:46: rule 'r': HTTP path '/a/../b' contains a '.' or '..' segment: dot segments are "
             "removed",
             "p.yaml:9:57: rule 'r': HTTP path '/a%2Fb' contains %2F, %5C or %00: requests with those are "
             "refused, never matched",
             "p.yaml:9:67: rule 'r': HTTP path '/a%2f' '%' must be followed by two upper-case hex digits",
             "p.yaml:9:76: rule 'r': HTTP path 'admin' must start with '/' or '*': request paths are "
             "matched normalized, from their first '/'"}},
        ErrorCase{"BadAction",
                  "    - name: r\n"
                  "      action: drop\n",
                  {"p.yaml:7:15: rule 'r': invalid action 'drop': expected one of allow, deny, reject, log"}},
        ErrorCase{
            "BadActionCase",
            "    - {name: r, action: Deny}\n",
            {"p.yaml:6:25: rule 'r': invalid action 'Deny': expected one of allow, deny, reject, log (did "
             "you mean 'deny'?)"}},
        ErrorCase{
            "BadProtocolAndDirection",
            "    - name: r\n"
            "      action: deny\n"
            "      direction: out\n"
            "      match: {protocol: tcpp}\n",
            {"p.yaml:8:18: rule 'r': invalid direction 'out': expected one of any, egress, ingress",
             "p.yaml:9:25: rule 'r': invalid protocol 'tcpp': expected one of tcp, udp, icmp, icmpv6, sctp, "
             "gre, esp, ah, any (did you mean 'tcp'?)"}},
        ErrorCase{"ProtocolNumberTooLarge",
                  "    - {name: r, action: deny, match: {protocol: 256}}\n",
                  {"p.yaml:6:49: rule 'r': invalid protocol '256': an IP protocol number is 0 to 255"}},
        ErrorCase{"BadLog",
                  "    - {name: r, action: deny, log: maybe}\n",
                  {"p.yaml:6:36: rule 'r': 'log' must be true or false, not 'maybe'"}},
        ErrorCase{"CidrHostBits",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match:\n"
                  "        source: {cidrs: [10.1.2.3/8, \"2001:db8::1/32\"]}\n",
                  {"p.yaml:9:26: rule 'r': CIDR '10.1.2.3/8' has host bits set; did you mean '10.0.0.0/8'?",
                   "p.yaml:9:38: rule 'r': CIDR '2001:db8::1/32' has host bits set; did you mean "
                   "'2001:db8::/32'?"}},
        ErrorCase{"CidrUnparsableAndPrefix",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match:\n"
                  "        destination:\n"
                  "          cidrs:\n"
                  "            - 10.0.0.0/33\n"
                  "            - \"::/129\"\n"
                  "            - 10.0.0/8\n"
                  "            - 10.0.0.0/x\n"
                  "            - fe80::1%eth0\n",
                  {"p.yaml:11:15: rule 'r': invalid CIDR '10.0.0.0/33': prefix length must be 0..32",
                   "p.yaml:12:15: rule 'r': invalid CIDR '::/129': prefix length must be 0..128",
                   "p.yaml:13:15: rule 'r': invalid CIDR '10.0.0/8': not an IPv4 or IPv6 address",
                   "p.yaml:14:15: rule 'r': invalid CIDR '10.0.0.0/x': prefix length must be 0..32",
                   "p.yaml:15:15: rule 'r': invalid CIDR 'fe80::1%eth0': not an IPv4 or IPv6 address"}},
        ErrorCase{"Ports",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match:\n"
                  "        protocol: tcp\n"
                  "        destination: {ports: [65536, \"10-5\", \"x\", \"-1\", 1-2-3, \" 80\"]}\n",
                  {"p.yaml:10:31: rule 'r': invalid port '65536': ports are 0..65535",
                   "p.yaml:10:38: rule 'r': invalid port range '10-5': 10 is above 5",
                   "p.yaml:10:46: rule 'r': invalid port 'x': not a number, a range 'N-M' or a port group "
                   "(spec.portGroups defines none)",
                   "p.yaml:10:51: rule 'r': invalid port '-1': expected a number or a range 'N-M'",
                   "p.yaml:10:57: rule 'r': invalid port '1-2-3': expected a number or a range 'N-M'",
                   "p.yaml:10:64: rule 'r': invalid port ' 80': expected a number or a range 'N-M'"}},
        ErrorCase{
            "Family",
            "    - name: r\n"
            "      action: deny\n"
            "      match: {family: ipv5}\n"
            "    - name: s\n"
            "      action: deny\n"
            "      match: {family: ipv4, destination: {cidrs: [\"fd00::/8\", 10.0.0.0/8]}}\n"
            "    - name: t\n"
            "      action: deny\n"
            "      match: {family: ipv6, protocol: icmp}\n",
            {"p.yaml:8:23: rule 'r': invalid family 'ipv5': expected one of any, ipv4, ipv6 (did you mean "
             "'ipv4'?)",
             "p.yaml:11:23: rule 's': destination CIDR fd00::/8 is not ipv4: it could never match",
             "p.yaml:14:23: rule 't': protocol icmp never runs over ipv6"}},
        ErrorCase{"PortsWithoutPortProtocol",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match:\n"
                  "        destination: {ports: [80]}\n"
                  "    - name: s\n"
                  "      action: deny\n"
                  "      match: {protocol: icmp, source: {ports: [80]}}\n"
                  "    - name: t\n"
                  "      action: deny\n"
                  "      match: {protocol: icmpv6, source: {ports: [80]}}\n",
                  {"p.yaml:9:30: rule 'r': ports need protocol tcp, udp or sctp (protocol is any)",
                   "p.yaml:12:47: rule 's': ports need protocol tcp, udp or sctp (protocol is icmp)",
                   "p.yaml:15:49: rule 't': ports need protocol tcp, udp or sctp (protocol is icmpv6)"}},
        ErrorCase{"DuplicateAndEmptyNames",
                  "    - {name: a, action: deny, match: {protocol: tcp}}\n"
                  "    - {name: a, action: deny, match: {protocol: udp}}\n"
                  "    - {name: \"\", action: deny, match: {protocol: udp}}\n"
                  "    - {action: deny, match: {protocol: udp}}\n",
                  {"p.yaml:7:14: rule 'a': duplicate rule name 'a' (first defined at line 6)",
                   "p.yaml:8:14: rule '#3': rule name must not be empty",
                   "p.yaml:9:7: rule '#4': missing required key 'name'"}},
        ErrorCase{
            "RegexRejectedByHyperscan",
            "    - name: r\n"
            "      action: deny\n"
            "      match:\n"
            "        tls: {sniRegex: [\"(a\"]}\n"
            "        payload: {regex: [\"a{3,2}\", \"\\\\k<x>\"]}\n",
            {"p.yaml:9:26: rule 'r': invalid regex '(a': Missing close parenthesis for group started at "
             "index 0.",
             "p.yaml:10:27: rule 'r': invalid regex 'a{3,2}': Invalid repeat at index 1.",
             "p.yaml:10:37: rule 'r': invalid regex '\\k<x>': Invalid back reference to label 'x'."}},
        ErrorCase{"RegexCompiledLikeTheDataPlane",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match:\n"
                  "        tls: {sniRegex: [\"a)(b\"]}\n"
                  "        payload: {window: 4, regex: [\"abcdefgh\"]}\n",
                  {"p.yaml:9:26: rule 'r': invalid regex 'a)(b': Unmatched parentheses at index 1.",
                   "p.yaml:10:38: rule 'r': invalid regex 'abcdefgh': Expression has max_offset=4 but "
                   "requires 8 bytes to match."}},
        ErrorCase{
            "HostPatternsThatCannotMatch",
            "    - name: r\n"
            "      action: deny\n"
            "      match:\n"
            "        tls:\n"
            "          sni:\n"
            "            - a..example\n"
            "            - www.*.example\n"
            "            - \"*.\"\n"
            "            - \"a?.example\"\n"
            "            - \"w*.example\"\n"
            "            - under_score.example\n"
            "            - " +
                std::string(64, 'a') +
                ".example\n"
                "            - \"\"\n"
                "        http: {host: [\"a b.example\"]}\n",
            {"p.yaml:11:15: rule 'r': invalid SNI pattern 'a..example': empty label",
             "p.yaml:12:15: rule 'r': invalid SNI pattern 'www.*.example': '*' is only allowed as the whole "
             "first label ('*.example.com')",
             "p.yaml:13:15: rule 'r': invalid SNI pattern '*.': no name after '*.'",
             "p.yaml:14:15: rule 'r': invalid SNI pattern 'a?.example': character '?' is not allowed in a "
             "host name (letters, digits, '-')",
             "p.yaml:15:15: rule 'r': invalid SNI pattern 'w*.example': '*' is only allowed as the whole "
             "first label ('*.example.com')",
             "p.yaml:16:15: rule 'r': invalid SNI pattern 'under_score.example': character '_' is not "
             "allowed in a host name (letters, digits, '-')",
             "p.yaml:17:15: rule 'r': invalid SNI pattern '" + std::string(64, 'a') +
                 ".example': label longer than 63 characters",
             "p.yaml:18:15: rule 'r': invalid SNI pattern '': empty pattern",
             "p.yaml:19:23: rule 'r': invalid HTTP host pattern 'a b.example': character ' ' is not "
             "allowed in a host name (letters, digits, '-')"}},
        ErrorCase{"HostNameTooLong",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match: {tls: {sni: [" +
                      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                      std::string(62, 'd') + "]}}\n",
                  {"p.yaml:8:27: rule 'r': invalid SNI pattern '" + std::string(63, 'a') + "." +
                   std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(62, 'd') +
                   "': name longer than 253 characters"}},
        ErrorCase{"Window",
                  "    - {name: r, action: deny, match: {payload: {window: 0}}}\n"
                  "    - {name: s, action: deny, match: {payload: {window: 65537}}}\n"
                  "    - {name: t, action: deny, match: {payload: {window: big}}}\n",
                  {"p.yaml:6:57: rule 'r': payload window must be 1..65536 bytes, not '0'",
                   "p.yaml:7:57: rule 's': payload window must be 1..65536 bytes, not '65537'",
                   "p.yaml:8:57: rule 't': payload window must be 1..65536 bytes, not 'big'"}},
        ErrorCase{
            "L7ConditionsWithWrongProtocol",
            "    - {name: r, action: deny, match: {protocol: udp, http: {path: [/]}}}\n"
            "    - {name: s, action: deny, match: {protocol: icmp, tls: {sni: [a.example]}}}\n"
            "    - {name: t, action: deny, match: {protocol: icmpv6, http: {host: [a.example]}}}\n"
            "    - {name: quic, action: deny, match: {protocol: udp, tls: {sni: [a.example]}}}\n",
            {"p.yaml:6:54: rule 'r': http conditions need protocol tcp or any (protocol is udp)",
             "p.yaml:7:55: rule 's': tls conditions need protocol tcp, udp (QUIC) or any (protocol is icmp)",
             "p.yaml:8:57: rule 't': http conditions need protocol tcp or any (protocol is icmpv6)"}},
        ErrorCase{
            "UnreachableAfterCatchAll",
            "    - {name: everything, action: deny}\n"
            "    - {name: never, action: allow, match: {protocol: tcp}}\n"
            "    - {name: log-only, action: log, match: {source: {cidrs: []}}}\n",
            {"p.yaml:7:7: rule 'never': rule can never match: rule 'everything' at line 6 has no conditions "
             "and matches every flow",
             "p.yaml:8:7: rule 'log-only': rule can never match: rule 'everything' at line 6 has no "
             "conditions "
             "and matches every flow"}},
        ErrorCase{"EmptyLabelKey",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      match: {source: {containers: {name: web, labels: {\"\": x, app: }}}}\n",
                  {"p.yaml:8:57: rule 'r': label key must not be empty",
                   "p.yaml:8:64: rule 'r': label 'app' must have a string value, not null"}},
        ErrorCase{"WrongTypes",
                  "    - name: r\n"
                  "      action: [deny]\n"
                  "      match:\n"
                  "        source: [10.0.0.0/8]\n"
                  "        destination: {cidrs: {a: b}, ports: 443}\n"
                  "        tls: {sni: [[a.example]]}\n",
                  {"p.yaml:7:15: rule 'r': 'action' must be a string, not a list",
                   "p.yaml:9:17: rule 'r': 'source' must be a map, not a list",
                   "p.yaml:10:30: rule 'r': 'cidrs' must be a list, not a map",
                   "p.yaml:10:45: rule 'r': 'ports' must be a list, not a string",
                   "p.yaml:11:21: rule 'r': items of 'sni' must be strings, not a list"}},
        ErrorCase{
            "RuleNotAMap", "    - deny-all\n", {"p.yaml:6:7: rule '#1': a rule must be a map, not a string"}},
        ErrorCase{"DuplicateKey",
                  "    - name: r\n"
                  "      action: deny\n"
                  "      action: allow\n",
                  {"p.yaml:8:7: rule 'r': duplicate key 'action' (first at line 7)"}}),
    [](const testing::TestParamInfo<ErrorCase>& test) { return std::string(test.param.label); });

struct DocumentCase {
  const char* label;
  std::string text;
  std::vector<std::string> expected;
};

void PrintTo(const DocumentCase& c, std::ostream* out) { *out << c.label; }

class PolicyDocumentErrors : public testing::TestWithParam<DocumentCase> {};

TEST_P(PolicyDocumentErrors, ReportsExactly) { EXPECT_EQ(diagnose(GetParam().text), GetParam().expected); }

INSTANTIATE_TEST_SUITE_P(
    Document, PolicyDocumentErrors,
    testing::Values(
        DocumentCase{"SyntaxError",
                     "apiVersion: vgate.io/v1\nkind: Policy\nspec:\n  rules: [a, b\n  mode: x\n",
                     {"p.yaml:5:7: end of sequence flow not found"}},
        DocumentCase{"SyntaxErrorBadIndent", "a: b\n  c: d\n", {"p.yaml:2:4: illegal map value"}},
        DocumentCase{"Empty", "", {"p.yaml:1:1: policy document is empty"}},
        DocumentCase{"NotAMap", "- a\n", {"p.yaml:1:1: a policy document must be a map, not a list"}},
        DocumentCase{
            "MissingEverything",
            "foo: 1\n",
            {"p.yaml:1:1: unknown key 'foo'", "p.yaml:1:1: missing required key 'apiVersion'",
             "p.yaml:1:1: missing required key 'kind'", "p.yaml:1:1: missing required key 'metadata'",
             "p.yaml:1:1: missing required key 'spec'"}},
        DocumentCase{
            "WrongVersionKindAndName",
            "apiVersion: vgate.io/v2\nkind: Polcy\nmetadata: {labels: {a: b}}\nspec: {mode: enforcing, "
            "default: reject, rulez: []}\n",
            {"p.yaml:1:13: apiVersion must be 'vgate.io/v1', not 'vgate.io/v2'",
             "p.yaml:2:7: kind must be 'Policy', not 'Polcy'",
             "p.yaml:3:11: missing required key 'metadata.name'",
             "p.yaml:4:14: invalid mode 'enforcing': expected one of enforce, audit",
             "p.yaml:4:34: invalid default 'reject': expected one of allow, deny",
             "p.yaml:4:42: unknown key 'rulez' (did you mean 'rules'?)"}},
        DocumentCase{"RulesNotAList",
                     std::string(kHeader).substr(0, std::string(kHeader).size() - 1) + " {a: b}\n",
                     {"p.yaml:5:10: 'rules' must be a list, not a map"}},
        // Empty nodes are placed where yaml-cpp places them, at the next token (libyaml, which parses
        // well-formed documents, puts them right after the '-' or ':'), down to the end of the document.
        DocumentCase{
            "EmptyNodesAtTheNextToken",
            std::string(kHeader) +
                "    -\n    - name: r\n      action:\n      match:\n        tls: {sni: [a.example]}\n"
                "        http:\n          host:\n            - \n            # why\n            -\n",
            {"p.yaml:7:5: rule '#1': a rule must be a map, not null",
             "p.yaml:8:7: rule 'r': 'action' must be a string, not null",
             "p.yaml:15:13: rule 'r': items of 'host' must be strings, not null",
             "p.yaml:16:1: rule 'r': items of 'host' must be strings, not null"}},
        DocumentCase{"CrLfLineBreaks",
                     "apiVersion: vgate.io/v1\r\nkind: Policy\r\nmetadata: {name: t}\r\nspec:\r\n  rules:\r\n"
                     "    - name: r\r\n      action: deny\r\n      match: {tls: {snii: [a]}}\r\n",
                     {"p.yaml:8:21: rule 'r': unknown key 'snii' (did you mean 'sni'?)"}},
        // yaml-cpp and libyaml read '?' in flow context differently; yaml-cpp's reading is the one kept.
        DocumentCase{"QuestionMarkInFlow",
                     "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: t? }\nspec: {}\n",
                     {"p.yaml:3:19: end of map flow not found"}},
        DocumentCase{"TwoDocuments",
                     "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: a}\nspec: {}\n---\nx: 1\n",
                     {"p.yaml:5:1: a policy file holds one YAML document; found a second one"}},
        DocumentCase{"Endpoints",
                     "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: a}\nspec:\n  endpoints:\n"
                     "    - {name: e, addresses: [10.0.0.1, 10.0.0.0/8x]}\n"
                     "    - {name: e, addresses: [10.0.0.1], labels: {\"\": y}}\n"
                     "    - {labels: {a: b}}\n",
                     {"p.yaml:6:39: invalid CIDR '10.0.0.0/8x': prefix length must be 0..32",
                      "p.yaml:7:14: duplicate endpoint name 'e' (first defined at line 6)",
                      "p.yaml:7:29: address 10.0.0.1/32 already belongs to endpoint 'e'",
                      "p.yaml:7:49: label key must not be empty", "p.yaml:8:7: missing required key 'name'"}},
        DocumentCase{
            "PortGroups",
            "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: a}\nspec:\n  portGroups:\n"
            "    web: [\"80\", \"70000\"]\n"
            "    9x: [\"1\"]\n"
            "    web: [\"81\"]\n"
            "    empty: []\n"
            "    nested: [web]\n"
            "  rules:\n"
            "    - name: r\n      action: deny\n"
            "      match: {protocol: tcp, destination: {ports: [web, webs, \"22\"]}}\n",
            {"p.yaml:6:17: invalid port '70000': ports are 0..65535",
             "p.yaml:7:5: invalid port group name '9x': a letter, then letters, digits, '-', '_' or '.'",
             "p.yaml:8:5: duplicate port group 'web'", "p.yaml:9:5: port group 'empty' lists no port",
             "p.yaml:10:14: invalid port 'web': a port group lists numbers and ranges 'N-M' only",
             "p.yaml:14:57: rule 'r': invalid port 'webs': not a number, a range 'N-M' or a port group "
             "(spec.portGroups defines empty, nested, web)"}}),
    [](const testing::TestParamInfo<DocumentCase>& test) { return std::string(test.param.label); });

// family limits a rule to one IP version, "any address" included.
// Any IP protocol can be named, by a name for the common ones or by its number.
TEST(PolicyLoader, ProtocolsByNameOrNumber) {
  policy::Policy p;
  EXPECT_TRUE(diagnose(std::string(kHeader) + "    - {name: gre, action: deny, match: {protocol: gre}}\n"
                                              "    - {name: esp, action: allow, match: {protocol: \"50\"}}\n"
                                              "    - {name: ipip, action: deny, match: {protocol: 4}}\n",
                       &p)
                  .empty());
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(static_cast<int>(p.rules[0].protocol), 47);
  EXPECT_EQ(static_cast<int>(p.rules[1].protocol), 50);
  EXPECT_EQ(static_cast<int>(p.rules[2].protocol), 4);
}

TEST(PolicyLoader, FamilyLimitsARuleToOneIpVersion) {
  policy::Policy p =
      loadOk(std::string(kHeader) +
             "    - name: v6-only\n      action: deny\n      match: {family: ipv6, protocol: tcp}\n"
             "    - name: any\n      action: allow\n      match: {family: any}\n");
  ASSERT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(p.rules[0].family, policy::Family::kIpv6);
  EXPECT_EQ(p.rules[1].family, policy::Family::kAny);
}

// Named port groups: a rule's ports list them by name, beside numbers and ranges, on either side; each
// expands to its ports in place.
TEST(PolicyLoader, PortGroupsExpandWhereTheyAreNamed) {
  policy::Policy p = loadOk(
      "apiVersion: vgate.io/v1\nkind: Policy\nmetadata: {name: a}\nspec:\n"
      "  portGroups: {web: [\"80\", \"443\", \"8000-8100\"], dns: [\"53\"], high.ports: [\"32768-60999\"]}\n"
      "  rules:\n"
      "    - name: r\n      action: allow\n"
      "      match: {protocol: tcp, source: {ports: [high.ports]}, destination: {ports: [\"22\", web]}}\n"
      "    - name: s\n      action: allow\n"
      "      match: {protocol: udp, destination: {ports: [dns]}}\n");
  ASSERT_EQ(p.rules.size(), 2u);
  const auto& destination = p.rules[0].destination.ports;
  ASSERT_EQ(destination.size(), 4u);
  EXPECT_EQ(destination[0].low, 22);
  EXPECT_EQ(destination[1].low, 80);
  EXPECT_EQ(destination[2].low, 443);
  EXPECT_EQ(destination[3].low, 8000);
  EXPECT_EQ(destination[3].high, 8100);
  ASSERT_EQ(p.rules[0].source.ports.size(), 1u);
  EXPECT_EQ(p.rules[0].source.ports[0].low, 32768);
  EXPECT_EQ(p.rules[0].source.ports[0].high, 60999);
  ASSERT_EQ(p.rules[1].destination.ports.size(), 1u);
  EXPECT_EQ(p.rules[1].destination.ports[0].low, 53);
}

TEST(PolicyLoader, ReportsEveryErrorTogether) {
  std::string text = std::string(kHeader) +
                     "    - name: a\n"
                     "      action: nope\n"
                     "      match:\n"
                     "        protocol: tcp\n"
                     "        destination: {cidrs: [1.2.3.4/24], ports: [99999]}\n"
                     "    - name: a\n"
                     "      action: deny\n"
                     "      match: {tls: {sni: [\"bad..name\"]}, payload: {regex: [\"[\"]}}\n";
  std::vector<std::string> got = diagnose(text);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0], "p.yaml:7:15: rule 'a': invalid action 'nope': expected one of allow, deny, reject, log");
  EXPECT_EQ(got[1],
            "p.yaml:10:31: rule 'a': CIDR '1.2.3.4/24' has host bits set; did you mean '1.2.3.0/24'?");
  EXPECT_EQ(got[2], "p.yaml:10:52: rule 'a': invalid port '99999': ports are 0..65535");
  EXPECT_EQ(got[3], "p.yaml:11:13: rule 'a': duplicate rule name 'a' (first defined at line 6)");
  EXPECT_EQ(got[4], "p.yaml:13:27: rule 'a': invalid SNI pattern 'bad..name': empty label");
  EXPECT_EQ(got[5].substr(0, 43), "p.yaml:13:60: rule 'a': invalid regex '[': ");
  Result<policy::Policy> result = loadPolicy(text, "p.yaml");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EINVAL);
  EXPECT_EQ(std::count(result.error().message.begin(), result.error().message.end(), '\n'), 5);
}

TEST(PolicyLoader, TooManyErrorsIsBounded) {
  std::string text = kHeader;
  for (int i = 0; i < 300; ++i) text += "    - {name: r" + std::to_string(i) + ", action: x}\n";
  std::vector<PolicyDiagnostic> diagnostics = validatePolicy(text, "p.yaml", nullptr);
  ASSERT_EQ(diagnostics.size(), 101u);
  EXPECT_EQ(diagnostics.back().toString(), "p.yaml:0:0: too many errors; stopping after 100");
}

// An alias is the anchored node itself, so what is reported about it points at the anchor; an alias to an
// ancestor (a cycle) is reported like any other misplaced map, and does not loop.
TEST(PolicyLoader, AliasesAreTheAnchoredNode) {
  std::string text = std::string(kHeader) +
                     "    - &r {name: a, action: deny, match: {protocol: tcp, tls: {sniRegex: [\"x+\"]}}}\n"
                     "    - *r\n"
                     "    - name: b\n"
                     "      action: deny\n"
                     "      match: &m {protocol: tcp, source: *m}\n"
                     "    - name: c\n"
                     "      action: deny\n"
                     "      match: {payload: {regex: &l [\"a{100}\", \"b{5}\"], window: 10}}\n"
                     "    - name: d\n"
                     "      action: deny\n"
                     "      match: {payload: {regex: *l}}\n";
  policy::Policy p;
  EXPECT_EQ(
      diagnose(text, &p),
      (std::vector<std::string>{
          "p.yaml:6:17: rule 'a': duplicate rule name 'a' (first defined at line 6)",
          "p.yaml:10:18: rule 'b': unknown key 'protocol'",
          "p.yaml:10:33: rule 'b': unknown key 'source'",
          "p.yaml:13:36: rule 'c': invalid regex 'a{100}': Expression has max_offset=10 but requires 100 "
          "bytes to match.",
      }));
  // The same text without the duplicate and the cycle loads, the aliased list checked against each window.
  text = std::string(kHeader) +
         "    - &r {name: a, action: deny, match: {protocol: tcp, tls: {sniRegex: [\"x+\"]}}}\n"
         "    - {name: b, action: deny, match: {payload: {regex: &l [\"a{100}\", \"b{5}\"]}}}\n"
         "    - {name: c, action: deny, match: {payload: {regex: *l, window: 200}}}\n";
  p = loadOk(text);
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].tls.sniRegex, (std::vector<std::string>{"x+"}));
  EXPECT_EQ(p.rules[2].payload.regex, (std::vector<std::string>{"a{100}", "b{5}"}));
  EXPECT_EQ(p.rules[2].payload.window, 200u);
  EXPECT_EQ(
      diagnose(std::string(kHeader) + "    - &r {name: a, action: deny, match: {payload: {regex: [x]}}}\n" +
               "    - {name: b, action: deny, match: *r}\n"),
      (std::vector<std::string>{"p.yaml:6:11: rule 'b': unknown key 'name'",
                                "p.yaml:6:20: rule 'b': unknown key 'action'",
                                "p.yaml:6:34: rule 'b': unknown key 'match'"}));
}

// Regexes are checked ahead of the rules, in batches, on several threads; what is reported is the same as
// checking each in turn: every error at its place, in document order, and no more than the cap.
TEST(PolicyLoader, ManyRegexesReportInDocumentOrder) {
  std::string text = kHeader;
  std::vector<std::string> expected;
  for (int i = 0; i < 600; ++i) {
    std::string name = "r" + std::to_string(i);
    std::string line = "    - {name: " + name +
                       ", action: deny, match: {protocol: tcp, tls: {sniRegex: [\"ok" + std::to_string(i) +
                       "-[0-9]+\", ";
    std::string bad = i % 97 == 5   ? "(" + std::to_string(i)
                      : i % 89 == 7 ? "(?x)a" + std::to_string(i) + "#"
                                    : "";
    std::string reason = bad.rfind("(?x)", 0) == 0
                             ? "Unterminated comment."
                             : "Missing close parenthesis for group started at index 0.";
    if (!bad.empty()) {
      expected.push_back("p.yaml:" + std::to_string(6 + i) + ":" + std::to_string(line.size() + 1) +
                         ": rule '" + name + "': invalid regex '" + bad + "': " + reason);
    }
    line += "\"" + (bad.empty() ? "x" + std::to_string(i) : bad) + "\"]}}}\n";
    text += line;
  }
  EXPECT_EQ(diagnose(text), expected);

  text = kHeader;
  expected.clear();
  for (int i = 0; i < 300; ++i) {
    std::string line = "    - {name: r" + std::to_string(i) + ", action: deny, match: {tls: {sniRegex: [";
    expected.push_back("p.yaml:" + std::to_string(6 + i) + ":" + std::to_string(line.size() + 1) +
                       ": rule 'r" + std::to_string(i) + "': invalid regex '(" + std::to_string(i) +
                       "': Missing close parenthesis for group started at index 0.");
    text += line + "\"(" + std::to_string(i) + "\"]}}}\n";
  }
  std::vector<std::string> got = diagnose(text);
  ASSERT_EQ(got.size(), 101u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], expected[i]);
  EXPECT_EQ(got[100], "p.yaml:0:0: too many errors; stopping after 100");
}

TEST(PolicyLoader, HostNormalization) {
  policy::Policy p = loadOk(std::string(kHeader) +
                            "    - name: r\n"
                            "      action: deny\n"
                            "      match:\n"
                            "        tls: {sni: [API.Example.COM., \"*.Bank.Example.\", bücher.example, "
                            "\"*.BÜCHER.example\", \"*\", xn--bcher-kva.example, faß.de, ĳ.example]}\n"
                            "        http: {host: [\"Straße.Example\", WWW.EXAMPLE.ORG.]}\n");
  ASSERT_EQ(p.rules.size(), 1u);
  EXPECT_EQ(
      p.rules[0].tls.sni,
      (std::vector<std::string>{"api.example.com", "*.bank.example", "xn--bcher-kva.example",
                                "*.xn--bcher-kva.example", "*", "xn--bcher-kva.example",
                                // Non-transitional UTS 46: ß is kept (not mapped to "ss"); ĳ maps to "ij".
                                "xn--fa-hia.de", "ij.example"}));
  EXPECT_EQ(p.rules[0].http.host, (std::vector<std::string>{"xn--strae-oqa.example", "www.example.org"}));
}

TEST(PolicyLoader, Ipv6Cidrs) {
  policy::Policy p =
      loadOk(std::string(kHeader) +
             "    - name: r\n"
             "      action: deny\n"
             "      match:\n"
             "        source: {cidrs: [\"2001:db8::/32\", \"fd00::5\", \"::/0\", \"::ffff:10.0.0.0/104\"]}\n"
             "        destination: {cidrs: [\"2001:DB8:0:0:1::/80\", 192.168.0.0/16, 10.0.0.1]}\n");
  ASSERT_EQ(p.rules.size(), 1u);
  const auto& src = p.rules[0].source.cidrs;
  ASSERT_EQ(src.size(), 4u);
  expectCidr(src[0], cidr("2001:db8::", 32));
  expectCidr(src[1], cidr("fd00::5", 128));
  expectCidr(src[2], cidr("::", 0));
  expectCidr(src[3], cidr("::ffff:10.0.0.0", 104));
  const auto& dst = p.rules[0].destination.cidrs;
  ASSERT_EQ(dst.size(), 3u);
  expectCidr(dst[0], cidr("2001:db8:0:0:1::", 80));
  expectCidr(dst[1], cidr("192.168.0.0", 16));
  expectCidr(dst[2], cidr("10.0.0.1", 32));
}

std::vector<std::pair<int, int>> rangesOf(const std::vector<policy::PortRange>& ranges) {
  std::vector<std::pair<int, int>> out;
  for (const auto& range : ranges) out.emplace_back(range.low, range.high);
  return out;
}

TEST(PolicyLoader, IcmpTypes) {
  policy::Policy p =
      loadOk(std::string(kHeader) +
             "    - name: ping\n"
             "      action: deny\n"
             "      match:\n"
             "        protocol: icmp\n"
             "        icmp: {types: [8, echo-request, \"3-4\", echo-reply, destination-unreachable,\n"
             "                       time-exceeded, parameter-problem, redirect, router-solicitation,\n"
             "                       router-advertisement, 255, 0-255, \"7-7\"]}\n"
             "    - name: ping6\n"
             "      action: allow\n"
             "      match:\n"
             "        protocol: icmpv6\n"
             "        icmp:\n"
             "          types: [echo-request, echo-reply, destination-unreachable, packet-too-big,\n"
             "                  time-exceeded, parameter-problem, redirect, router-solicitation,\n"
             "                  router-advertisement, neighbor-solicitation, neighbor-advertisement,\n"
             "                  \"130-132\", 0]\n"
             "    - {name: any-icmp, action: allow, match: {protocol: icmp}}\n");
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(rangesOf(p.rules[0].icmpTypes), (std::vector<std::pair<int, int>>{{8, 8},
                                                                              {8, 8},
                                                                              {3, 4},
                                                                              {0, 0},
                                                                              {3, 3},
                                                                              {11, 11},
                                                                              {12, 12},
                                                                              {5, 5},
                                                                              {10, 10},
                                                                              {9, 9},
                                                                              {255, 255},
                                                                              {0, 255},
                                                                              {7, 7}}));
  EXPECT_EQ(rangesOf(p.rules[1].icmpTypes), (std::vector<std::pair<int, int>>{{128, 128},
                                                                              {129, 129},
                                                                              {1, 1},
                                                                              {2, 2},
                                                                              {3, 3},
                                                                              {4, 4},
                                                                              {137, 137},
                                                                              {133, 133},
                                                                              {134, 134},
                                                                              {135, 135},
                                                                              {136, 136},
                                                                              {130, 132},
                                                                              {0, 0}}));
  EXPECT_TRUE(p.rules[2].icmpTypes.empty()) << "no icmp key: every type";
  EXPECT_FALSE(p.rules[0].hasL7());
}

TEST(PolicyLoader, IcmpTypeErrors) {
  EXPECT_EQ(
      diagnose(std::string(kHeader) +
               "    - name: a\n"
               "      action: deny\n"
               "      match:\n"
               "        protocol: icmp\n"
               "        icmp: {types: [256, \"9-8\", x, packet-too-big, neighbor-solicitation, "
               "echo-requst, \"-1\",\n"
               "                       \"1-2-3\", \"\"], code: 0}\n"
               "    - name: b\n"
               "      action: deny\n"
               "      match: {protocol: tcp, icmp: {types: [8, echo-request]}}\n"
               "    - name: c\n"
               "      action: deny\n"
               "      match: {icmp: {types: [echo-request]}}\n"
               "    - name: d\n"
               "      action: deny\n"
               "      match: {protocol: icmpv6, icmp: {types: []}}\n"
               "    - name: e\n"
               "      action: deny\n"
               "      match: {protocol: icmp, icmp: {}}\n"
               "    - name: f\n"
               "      action: deny\n"
               "      match: {protocol: icmp, destination: {ports: [80]}, icmp: {types: [8]}}\n"
               "    - name: g\n"
               "      action: deny\n"
               "      match: {protocol: udp, source: {ports: [53]}, icmp: {types: [8]}}\n"
               "    - name: h\n"
               "      action: deny\n"
               "      match: {protocol: icmpv6, icmp: {types: 128}}\n"
               "    - name: i\n"
               "      action: deny\n"
               "      match: {protocol: icmpv6, icmp: {types:}}\n"
               "    - name: j\n"
               "      action: deny\n"
               "      match: {protocol: icmpv6, icmp: }\n"
               "    - name: k\n"
               "      action: deny\n"
               "      match: {protocol: icmpx, icmp: {types: [8, 300]}}\n"),
      (std::vector<std::string>{
          "p.yaml:10:24: rule 'a': invalid ICMP type '256': types are 0..255",
          "p.yaml:10:29: rule 'a': invalid ICMP type range '9-8': 9 is above 8",
          "p.yaml:10:36: rule 'a': unknown ICMP type 'x': expected a number 0..255, a range 'N-M' or a name",
          "p.yaml:10:39: rule 'a': ICMP type 'packet-too-big' does not exist for protocol icmp",
          "p.yaml:10:55: rule 'a': ICMP type 'neighbor-solicitation' does not exist for protocol icmp",
          "p.yaml:10:78: rule 'a': unknown ICMP type 'echo-requst': expected a number 0..255, a range 'N-M' "
          "or a name (did you mean 'echo-request'?)",
          "p.yaml:10:91: rule 'a': invalid ICMP type '-1': expected a number 0..255, a range 'N-M' or a name",
          "p.yaml:11:24: rule 'a': invalid ICMP type '1-2-3': expected a number 0..255, a range 'N-M' or a "
          "name",
          "p.yaml:11:33: rule 'a': unknown ICMP type '': expected a number 0..255, a range 'N-M' or a name",
          "p.yaml:11:38: rule 'a': unknown key 'code'",
          "p.yaml:14:30: rule 'b': 'icmp' needs protocol icmp or icmpv6 (protocol is tcp)",
          "p.yaml:17:15: rule 'c': 'icmp' needs protocol icmp or icmpv6 (protocol is any)",
          "p.yaml:20:47: rule 'd': 'types' must not be empty (leave 'icmp' out to match every type)",
          "p.yaml:23:37: rule 'e': missing required key 'types'",
          "p.yaml:26:52: rule 'f': ports need protocol tcp, udp or sctp (protocol is icmp)",
          "p.yaml:26:59: rule 'f': 'icmp' cannot be combined with ports: ICMP messages have none",
          "p.yaml:29:53: rule 'g': 'icmp' needs protocol icmp or icmpv6 (protocol is udp)",
          "p.yaml:29:53: rule 'g': 'icmp' cannot be combined with ports: ICMP messages have none",
          "p.yaml:32:47: rule 'h': 'types' must be a list, not a string",
          "p.yaml:35:40: rule 'i': 'types' must not be empty (leave 'icmp' out to match every type)",
          "p.yaml:38:33: rule 'j': 'icmp' needs 'types' (leave 'icmp' out to match every type)",
          "p.yaml:41:25: rule 'k': invalid protocol 'icmpx': expected one of tcp, udp, icmp, icmpv6, sctp, "
          "gre, esp, ah, any (did you mean 'icmp'?)",
          "p.yaml:41:50: rule 'k': invalid ICMP type '300': types are 0..255"}));
}

TEST(PolicyLoader, LogCatchAllDoesNotHideLaterRules) {
  // Whether "log" ends evaluation is the data plane's call, so rules after a catch-all log rule are accepted.
  policy::Policy p = loadOk(std::string(kHeader) +
                            "    - {name: log-all, action: log}\n"
                            "    - {name: deny-tcp, action: deny, match: {protocol: tcp}}\n");
  EXPECT_EQ(p.rules.size(), 2u);
}

TEST(PolicyLoader, FileApi) {
  std::string dir = testing::TempDir();
  std::string path = dir + "/policy_loader_test.yaml";
  {
    std::ofstream out(path);
    out << kExample;
  }
  Result<policy::Policy> result = loadPolicyFile(path);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result.value().rules[0].location.file, path);
  std::filesystem::remove(path);
  Result<policy::Policy> missing = loadPolicyFile(dir + "/does-not-exist.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
}

TEST(PolicyLoader, NeverThrowsOnOddInput) {
  const char* inputs[] = {"\t", "{", "[", "&a [*a]", "*x", "? [a]\n: b\n", "apiVersion: !!binary x\n",
                          "spec: {rules: [{name: {a: b}}]}\n", "\xff\xfe", "a: 'unterminated",
                          // yaml-cpp's LoadAll loops forever on this one.
                          ",% v", "a: 1\n,% v\n"};
  for (const char* input : inputs) {
    EXPECT_NO_THROW({
      auto diagnostics = validatePolicy(input, "odd.yaml", nullptr);
      EXPECT_FALSE(diagnostics.empty()) << input;
    });
  }
}

TEST(PolicyLoader, ShippedPoliciesLoadClean) {
  std::filesystem::path dir = std::filesystem::path(VGATE_TEST_DATA_DIR) / ".." / ".." / "policies";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    std::vector<PolicyDiagnostic> diagnostics = validatePolicy(text.str(), entry.path().string(), nullptr);
    EXPECT_TRUE(diagnostics.empty()) << entry.path() << ": " << diagnostics[0].toString();
  }
  EXPECT_GE(count, 3);

  auto load = [&](const char* name) {
    Result<policy::Policy> result = loadPolicyFile((dir / name).string());
    EXPECT_TRUE(result.ok()) << name;
    return result.ok() ? result.value() : policy::Policy{};
  };
  policy::Policy allow = load("default-allow.yaml");
  EXPECT_EQ(allow.defaultAction, VerdictAction::kAllow);
  EXPECT_EQ(allow.mode, PolicyMode::kAudit);

  policy::Policy bank = load("deny-bank-sni.yaml");
  ASSERT_EQ(bank.rules.size(), 2u);
  EXPECT_EQ(bank.rules[0].protocol, Protocol::kTcp);
  EXPECT_EQ(bank.rules[1].protocol, Protocol::kUdp);
  for (const policy::Rule& rule : bank.rules) {
    EXPECT_EQ(rule.action, VerdictAction::kDeny);
    EXPECT_EQ(rule.tls.sni, (std::vector<std::string>{"*.bank.example", "api.example.com"}));
  }

  policy::Policy web = load("web-egress.yaml");
  EXPECT_EQ(web.defaultAction, VerdictAction::kDeny);
  EXPECT_FALSE(web.endpoints.empty());
  for (const policy::Rule& rule : web.rules) EXPECT_EQ(rule.source.containers.name, "web-*");
}

}  // namespace
}  // namespace vgate::control
