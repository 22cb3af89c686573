// Checks policy rules and expands each into its cross product per family, for either engine.
#include "dataplane/l34/l34_rules.h"

#include <algorithm>
#include <iterator>
#include <string>

namespace vgate::dataplane::l34 {
namespace {

constexpr uint8_t kPortProtocols[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP};

Prefix toPrefix(const policy::Cidr& cidr) {
  Prefix prefix;
  int remaining = cidr.prefixLength;
  int words = cidr.family == 4 ? 1 : 4;
  for (int word = 0; word < words; ++word) {
    int length = std::clamp(remaining - 32 * word, 0, 32);
    uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
    // Host bits are cleared here too: the model promises it, but a stray one would silently never match.
    prefix.words[word] = loadBigEndian32(cidr.address + 4 * word) & mask;
    prefix.lengths[word] = static_cast<uint8_t>(length);
  }
  return prefix;
}

// The address constraints of one side of a rule within one family; "any" when the side lists no CIDR, empty
// when it lists CIDRs of the other family only (the rule then has no element in this family).
std::vector<Prefix> prefixesOf(const std::vector<policy::Cidr>& cidrs, uint8_t family) {
  if (cidrs.empty()) return {Prefix{}};
  std::vector<Prefix> prefixes;
  for (const auto& cidr : cidrs) {
    if (cidr.family == family) prefixes.push_back(toPrefix(cidr));
  }
  return prefixes;
}

// Protocol values to put in the index: a rule with ports matches only protocols that carry them, so "any
// protocol with ports" becomes TCP, UDP and SCTP, and "ICMP with ports" becomes nothing.
std::vector<uint8_t> protocolsOf(const L34Rule& rule) {
  bool hasPorts = !rule.sourcePorts.empty() || !rule.destinationPorts.empty();
  if (!hasPorts) return {rule.protocol};
  if (rule.protocol == 0) return {std::begin(kPortProtocols), std::end(kPortProtocols)};
  if (std::find(std::begin(kPortProtocols), std::end(kPortProtocols), rule.protocol) !=
      std::end(kPortProtocols))
    return {rule.protocol};
  return {};
}

std::vector<policy::PortRange> rangesOf(const std::vector<policy::PortRange>& ranges) {
  if (ranges.empty()) return {policy::PortRange{0, 65535}};
  return ranges;
}

uint64_t saturatingAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

Expansion expand(const L34Rule& rule, uint8_t family) {
  if (rule.family != 0 && rule.family != family) return Expansion{};  // no element in this family
  return Expansion{protocolsOf(rule), prefixesOf(rule.sources, family), prefixesOf(rule.destinations, family),
                   rangesOf(rule.sourcePorts),
                   rangesOf(rule.icmpTypes.empty() ? rule.destinationPorts : rule.icmpTypes)};
}

}  // namespace

uint64_t product(std::initializer_list<size_t> sizes) {
  uint64_t total = 1;
  for (size_t size : sizes) {
    if (size == 0) return 0;
    if (total > UINT64_MAX / size) return UINT64_MAX;
    total *= size;
  }
  return total;
}
Result<void> validate(const std::vector<L34Rule>& rules, L34Engine engine) {
  for (const auto& rule : rules) {
    std::string which = "rule " + std::to_string(rule.ruleId) + ": ";
    if (rule.ruleId == kNoRule) return makeError(EINVAL, which + "id UINT32_MAX is reserved for 'no rule'");
    if (rule.direction > kDirectionIngress)
      return makeError(EINVAL, which + "direction " + std::to_string(rule.direction) + " is unknown");
    // rte_acl's fields are the packet's; a direction would need categories per direction, and rte_acl is
    // kept for comparison only.
    if (rule.direction != kDirectionUnknown && engine == L34Engine::kRteAcl)
      return makeError(ENOTSUP,
                       which + "the rte_acl engine cannot match a direction (the bitmap engine can)");
    for (const auto* cidrs : {&rule.sources, &rule.destinations}) {
      for (const auto& cidr : *cidrs) {
        if (cidr.family != 4 && cidr.family != 6)
          return makeError(EINVAL,
                           which + "CIDR family " + std::to_string(cidr.family) + " is neither 4 nor 6");
        if (cidr.prefixLength > (cidr.family == 4 ? 32 : 128))
          return makeError(EINVAL,
                           which + "prefix length " + std::to_string(cidr.prefixLength) + " too long");
      }
    }
    for (const auto* ranges : {&rule.sourcePorts, &rule.destinationPorts}) {
      for (const auto& range : *ranges) {
        if (range.low > range.high) return makeError(EINVAL, which + "port range low above high");
      }
    }
    if (!rule.icmpTypes.empty()) {
      if (!carriesIcmpType(rule.protocol))
        return makeError(EINVAL, which + "ICMP types need protocol ICMP or ICMPv6");
      if (!rule.sourcePorts.empty() || !rule.destinationPorts.empty())
        return makeError(EINVAL, which + "ICMP types and ports together");
      for (const auto& range : rule.icmpTypes) {
        if (range.low > range.high || range.high > 255)
          return makeError(EINVAL, which + "ICMP type range not within 0..255 or low above high");
      }
    }
  }
  return {};
}

Result<ExpandedRules> expandRules(const std::vector<L34Rule>& rules, uint64_t (*elementsOf)(const Expansion&),
                                  uint64_t maxElements) {
  ExpandedRules expanded;
  expanded.ipv4.reserve(rules.size());
  expanded.ipv6.reserve(rules.size());
  for (const auto& rule : rules) {
    expanded.ipv4.push_back(expand(rule, 4));
    expanded.ipv6.push_back(expand(rule, 6));
    expanded.ipv4Elements = saturatingAdd(expanded.ipv4Elements, elementsOf(expanded.ipv4.back()));
    expanded.ipv6Elements = saturatingAdd(expanded.ipv6Elements, elementsOf(expanded.ipv6.back()));
    if (saturatingAdd(expanded.ipv4Elements, expanded.ipv6Elements) > maxElements)
      return makeError(E2BIG, "rules expand to more than " + std::to_string(maxElements) +
                                  " elements (the cross product of each rule's CIDRs, ports and protocols); "
                                  "stopped at rule " +
                                  std::to_string(rule.ruleId));
  }
  return expanded;
}

}  // namespace vgate::dataplane::l34
