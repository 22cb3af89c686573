// The policy model: what a vgate policy document says, after loading and validation, before compilation.
// control/policy loads YAML into it; dataplane/verdict compiles it (dataplane/l34's L3/L4 classifiers:
// field lists by default, rte_acl selectable; Hyperscan for L7).
//
// Evaluation (first match wins, in rule order):
//  - L3/L4-only rules are classified by one classifier, which returns the first matching one (R0) on a flow's
//    first packet. L7 rules' L3/L4 parts are in a second classifier that returns the first L7 rule whose
//    L3/L4 part matches (R1). If there is none before R0, the flow is decided at once by R0 (or the default).
//  - Otherwise the flow is pending until its L7 fields are known; Hyperscan then gives the set of L7 rules
//  whose
//    L7 conditions match, and the first of those before R0 whose L3/L4 part also matches decides (else R0).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vgate/flow_record.h"

namespace vgate::policy {

struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

struct Cidr {
  uint8_t family = 4;        // 4 or 6
  uint8_t address[16] = {};  // network order; IPv4 in the first 4 bytes; host bits zero
  uint8_t prefixLength = 0;
};

struct PortRange {
  uint16_t low = 0;
  uint16_t high = 65535;
};

// Which containers an endpoint is: a glob on the name ("web-*") and labels that must all be present with
// these values. Empty means "any container". In replay, the policy's endpoints section names the containers.
struct ContainerSelector {
  bool present = false;
  std::string name;  // glob: * and ?
  std::map<std::string, std::string> labels;
};

struct EndpointMatch {
  std::vector<Cidr> cidrs;  // empty: any address
  ContainerSelector containers;
  std::vector<PortRange> ports;  // empty: any port
};

struct CertificateMatch {
  std::vector<std::string> subject;  // globs on the subject / issuer DN strings, SAN entries
  std::vector<std::string> issuer;
  std::vector<std::string> san;
};

struct TlsMatch {
  std::vector<std::string> sni;       // "api.example.com", "*.bank.example" (any name under, not the apex)
  std::vector<std::string> sniRegex;  // Hyperscan/PCRE syntax, matched against the whole SNI
  std::vector<std::string> alpn;      // exact protocol ids; any offered one matches
  CertificateMatch certificate;
};

struct HttpMatch {
  std::vector<std::string> host;    // like sni: exact or "*.example.com"
  std::vector<std::string> path;    // globs: "/admin/*"
  std::vector<std::string> method;  // exact, case-sensitive as HTTP is
};

struct PayloadMatch {
  std::vector<std::string> regex;
  uint32_t window = 4096;  // bytes of each direction inspected
};

enum class Protocol : uint8_t { kAny = 0, kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpv6 = 58, kSctp = 132 };

enum class Direction : uint8_t { kAny, kEgress, kIngress };      // relative to the protected container
enum class Family : uint8_t { kAny = 0, kIpv4 = 4, kIpv6 = 6 };  // the IP version a rule applies to

struct Rule {
  std::string name;
  VerdictAction action = VerdictAction::kDeny;
  Protocol protocol = Protocol::kAny;
  Direction direction = Direction::kAny;
  Family family = Family::kAny;  // e.g. "any address" on one family only
  EndpointMatch source;
  EndpointMatch destination;
  TlsMatch tls;
  HttpMatch http;
  PayloadMatch payload;
  // ICMP/ICMPv6 message types (ranges of 0..255) the flow's first packet, as the client sent it, must have;
  // empty: any type. Only with protocol icmp or icmpv6, never with ports.
  std::vector<PortRange> icmpTypes;
  bool log = false;  // log the verdict on the flow even when it is allow
  SourceLocation location;

  bool hasL7() const {
    return !tls.sni.empty() || !tls.sniRegex.empty() || !tls.alpn.empty() ||
           !tls.certificate.subject.empty() || !tls.certificate.issuer.empty() ||
           !tls.certificate.san.empty() || !http.host.empty() || !http.path.empty() || !http.method.empty() ||
           !payload.regex.empty();
  }
};

// A container identity for replay and tests (live, the interposer supplies these).
struct Endpoint {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<Cidr> addresses;
};

struct Policy {
  std::string name;
  PolicyMode mode = PolicyMode::kEnforce;
  VerdictAction defaultAction = VerdictAction::kAllow;
  std::vector<Rule> rules;
  std::vector<Endpoint> endpoints;
  std::string sourceHash;  // SHA-256 of the document, hex: the key of the compiled-database cache
};

}  // namespace vgate::policy
