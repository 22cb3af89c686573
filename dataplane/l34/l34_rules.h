// Policy rules as the engines take them: checked, then each rule's cross product within one IP family.
// Private to dataplane/l34.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "dataplane/l34/l34_classifier.h"
#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::dataplane::l34 {

inline bool carriesPorts(uint8_t protocol) {
  return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_SCTP;
}

inline bool carriesIcmpType(uint8_t protocol) {
  return protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6;
}

inline uint32_t loadBigEndian32(const uint8_t* bytes) {
  return uint32_t{bytes[0]} << 24 | uint32_t{bytes[1]} << 16 | uint32_t{bytes[2]} << 8 | bytes[3];
}

// One address constraint in a family: the CIDR's words (host order) and their prefix lengths.
struct Prefix {
  uint32_t words[4] = {};
  uint8_t lengths[4] = {};
};

// One rule within one family, as the lists whose cross product are its elements. ICMP types take the
// destination port's place (validate() keeps them from rules with ports): both engines then compare a
// packet's type where they compare its destination port.
struct Expansion {
  std::vector<uint8_t> protocols;
  std::vector<Prefix> sources, destinations;
  std::vector<policy::PortRange> sourcePorts, destinationPorts;
};

// Every rule's expansions in both families (by rule, in policy order), and the elements they make.
struct ExpandedRules {
  std::vector<Expansion> ipv4, ipv6;
  uint64_t ipv4Elements = 0, ipv6Elements = 0;
};

// Product of the sizes, saturating at UINT64_MAX.
uint64_t product(std::initializer_list<size_t> sizes);

Result<void> validate(const std::vector<L34Rule>& rules, L34Engine engine);

// Expands validated rules, counting each one's elements as the engine makes them (elementsOf); refused once
// the elements of both families pass maxElements.
Result<ExpandedRules> expandRules(const std::vector<L34Rule>& rules, uint64_t (*elementsOf)(const Expansion&),
                                  uint64_t maxElements);

}  // namespace vgate::dataplane::l34
