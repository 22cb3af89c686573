// The L3/L4 classifier: the first rule (in policy order) whose protocol, addresses and ports (or ICMP types)
// match a flow's first packet. One IPv4 and one IPv6 index, built once, then shared read-only by workers. Two
// engines: rule bitmaps (the default, see bitmap_engine.cc) and DPDK rte_acl (kept for comparison).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::dataplane {

namespace l34 {
class Engine;  // l34_engine.h
}

inline constexpr uint32_t kNoRule = UINT32_MAX;

// Which way a flow goes relative to the protected container it was seen at (policy::Direction's values): a
// rule with a direction matches only flows known to go that way.
inline constexpr uint8_t kDirectionUnknown = 0;
inline constexpr uint8_t kDirectionEgress = 1;   // the container is the client
inline constexpr uint8_t kDirectionIngress = 2;  // the container is the server

// The L3/L4 part of one policy rule. Its position in the builder's input is its priority: earlier wins.
struct L34Rule {
  uint32_t ruleId = 0;                              // anything but kNoRule
  uint8_t protocol = 0;                             // IPPROTO_*; 0 = any
  std::vector<policy::Cidr> sources;                // empty = any address (of either family)
  std::vector<policy::Cidr> destinations;           // empty = any address (of either family)
  std::vector<policy::PortRange> sourcePorts;       // empty = any port; non-empty: TCP/UDP/SCTP only
  std::vector<policy::PortRange> destinationPorts;  // empty = any port; non-empty: TCP/UDP/SCTP only
  // ICMP/ICMPv6 types (ranges within 0..255); empty = any type. Non-empty: protocol must be ICMP or ICMPv6
  // and there must be no ports. Classified in the destination port's place (L34Tuple::icmpType).
  std::vector<policy::PortRange> icmpTypes = {};
  uint8_t direction = kDirectionUnknown;  // kDirectionEgress or kDirectionIngress; unknown: any
  uint8_t family = 0;                     // 4 or 6: that IP version only; 0: both
};

// What is classified: a flow's first packet as the client sent it.
struct L34Tuple {
  uint8_t ipVersion;  // 4 or 6; anything else never matches
  uint8_t protocol;
  uint8_t src[16];  // network order; IPv4 in the first 4 bytes
  uint8_t dst[16];
  uint16_t srcPort;  // host order; ignored unless the protocol is TCP, UDP or SCTP
  uint16_t dstPort;
  uint8_t direction;  // kDirection*: unknown matches only rules without a direction
  uint8_t icmpType;   // ignored unless the protocol is ICMP or ICMPv6
};

enum class L34Engine : uint8_t {
  // Elements narrow in one field (source, destination or destination port) in sorted lists over that field;
  // the few wide in every field in per-field group bitmaps that classify ANDs. See bitmap_engine.cc.
  kBitmap,
  kRteAcl,
};

struct L34ClassifierConfig {
  L34Engine engine = L34Engine::kBitmap;
  // kBitmap: bytes of bitmaps per field and family for the wide elements. More bytes give more, narrower
  // groups (fewer candidates to check per packet); the group count is at least 16 whatever the rule count.
  size_t bitmapFieldBytes = 4u << 20;
  // The cross product of a rule's CIDRs, port ranges (and, for rte_acl and "any protocol with ports",
  // TCP/UDP/SCTP) is one element each; a policy that expands beyond this is refused rather than built for
  // minutes.
  uint64_t maxAclRules = 4u << 20;
  // rte_acl_config.max_size: a cap on the run-time tries' memory (0 = none). Over it, rte_acl splits the
  // rules into more tries (slower classify) and fails only when even RTE_ACL_MAX_TRIES tries do not fit.
  size_t maxTrieBytes = 0;
  // An enum rte_acl_classify_alg value to use instead of the best one the CPU and EAL allow (0): for tests
  // and benchmarks that compare the implementations. Refused if unsupported here.
  int algorithm = 0;
};

struct L34ClassifierStats {
  uint32_t rules = 0;         // L34Rule count
  uint64_t ipv4AclRules = 0;  // elements after expansion
  uint64_t ipv6AclRules = 0;
  uint64_t buildNanoseconds = 0;
  // kRteAcl: rte_malloc bytes the two contexts hold after the build (rules kept by rte_acl plus the run-time
  // tries), measured as the heap's growth across the build: exact when nothing else allocates meanwhile.
  // kBitmap: the bytes of its tables.
  uint64_t memoryBytes = 0;
  // kBitmap: elements indexed by source, destination and destination port lists; the rest are in bitmaps.
  uint32_t listed[3] = {};
  const char* algorithm = "none";  // "bitmap", or the rte_acl classify method in use: "avx2", "sse", ...
};

class L34Classifier {
 public:
  // name: unique among live classifiers (rte_acl context names are process-global), at most 28 characters.
  // socket: NUMA socket for the contexts, SOCKET_ID_ANY (-1) for any.
  static Result<std::unique_ptr<L34Classifier>> build(const std::vector<L34Rule>& rules,
                                                      const std::string& name, int socket,
                                                      const L34ClassifierConfig& config = {});
  ~L34Classifier();
  L34Classifier(const L34Classifier&) = delete;
  L34Classifier& operator=(const L34Classifier&) = delete;

  // ruleIds[i] = the first matching rule's id for tuples[i], or kNoRule. Any count (split into bursts of 64);
  // allocates nothing. Safe to call from many threads at once: the bitmap index is read-only once built, and
  // rte_acl_classify only reads the built context (it takes it const, and DPDK's l3fwd-acl shares one
  // context per socket between lcores the same way).
  void classify(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const;

  const L34ClassifierStats& stats() const { return stats_; }

 private:
  L34Classifier() = default;

  std::unique_ptr<l34::Engine> engine_;  // the one config.engine names
  L34ClassifierStats stats_;
};

}  // namespace vgate::dataplane
