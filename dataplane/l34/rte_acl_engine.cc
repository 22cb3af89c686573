// The rte_acl engine: one DPDK ACL context per IP family, its rules the elements of the policy's cross
// product, earlier rules at higher priorities.
#include "dataplane/l34/rte_acl_engine.h"

#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include <cstring>
#include <type_traits>

namespace vgate::dataplane::l34 {
namespace {

// The classifier's input layouts. rte_acl reads the first field as one byte, then every further input index
// as four consecutive bytes, all in network order, hence the padding after the protocol.
struct Ipv4Input {
  uint8_t protocol;
  uint8_t pad[3];
  uint8_t src[4];
  uint8_t dst[4];
  uint16_t srcPort;  // network order
  uint16_t dstPort;
};
static_assert(sizeof(Ipv4Input) == 16);

struct Ipv6Input {
  uint8_t protocol;
  uint8_t pad[3];
  uint8_t src[16];
  uint8_t dst[16];
  uint16_t srcPort;
  uint16_t dstPort;
};
static_assert(sizeof(Ipv6Input) == 40);

enum Ipv4Field { kV4Proto, kV4Src, kV4Dst, kV4SrcPort, kV4DstPort, kV4Fields };
enum Ipv6Field { kV6Proto, kV6Src0, kV6Dst0 = kV6Src0 + 4, kV6SrcPort = kV6Dst0 + 4, kV6DstPort, kV6Fields };

RTE_ACL_RULE_DEF(Ipv4AclRule, kV4Fields);
RTE_ACL_RULE_DEF(Ipv6AclRule, kV6Fields);

// Rules are handed to rte_acl in chunks, so that expanding a large policy never holds it all in the C++ heap
// as well as in the context.
constexpr size_t kAddChunk = 4096;

// Field order is DPDK's examples' (protocol, source, destination, ports): ports first grew the tries and gave
// wrong answers.
rte_acl_config ipv4Config() {
  rte_acl_config config{};
  config.num_categories = 1;
  config.num_fields = kV4Fields;
  config.defs[0] = {RTE_ACL_FIELD_TYPE_BITMASK, 1, kV4Proto, 0, offsetof(Ipv4Input, protocol)};
  config.defs[1] = {RTE_ACL_FIELD_TYPE_MASK, 4, kV4Src, 1, offsetof(Ipv4Input, src)};
  config.defs[2] = {RTE_ACL_FIELD_TYPE_MASK, 4, kV4Dst, 2, offsetof(Ipv4Input, dst)};
  // Both ports share one four-byte input index.
  config.defs[3] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV4SrcPort, 3, offsetof(Ipv4Input, srcPort)};
  config.defs[4] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV4DstPort, 3, offsetof(Ipv4Input, dstPort)};
  return config;
}

rte_acl_config ipv6Config() {
  rte_acl_config config{};
  config.num_categories = 1;
  config.num_fields = kV6Fields;
  config.defs[0] = {RTE_ACL_FIELD_TYPE_BITMASK, 1, kV6Proto, 0, offsetof(Ipv6Input, protocol)};
  for (uint8_t word = 0; word < 4; ++word) {
    config.defs[1 + word] = {RTE_ACL_FIELD_TYPE_MASK, 4, static_cast<uint8_t>(kV6Src0 + word),
                             static_cast<uint8_t>(1 + word),
                             static_cast<uint32_t>(offsetof(Ipv6Input, src) + 4u * word)};
    config.defs[5 + word] = {RTE_ACL_FIELD_TYPE_MASK, 4, static_cast<uint8_t>(kV6Dst0 + word),
                             static_cast<uint8_t>(5 + word),
                             static_cast<uint32_t>(offsetof(Ipv6Input, dst) + 4u * word)};
  }
  config.defs[9] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV6SrcPort, 9, offsetof(Ipv6Input, srcPort)};
  config.defs[10] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV6DstPort, 9, offsetof(Ipv6Input, dstPort)};
  return config;
}

template <typename AclRule>
void fillCommon(AclRule& acl, int32_t priority, uint32_t userdata, uint8_t protocol, int protoField,
                int srcPortField, int dstPortField, const policy::PortRange& sp,
                const policy::PortRange& dp) {
  acl.data.category_mask = 1;
  acl.data.priority = priority;
  acl.data.userdata = userdata;
  acl.field[protoField].value.u8 = protocol;
  acl.field[protoField].mask_range.u8 = protocol == 0 ? 0 : 0xff;
  acl.field[srcPortField].value.u16 = sp.low;
  acl.field[srcPortField].mask_range.u16 = sp.high;
  acl.field[dstPortField].value.u16 = dp.low;
  acl.field[dstPortField].mask_range.u16 = dp.high;
}

// Emits every element of the rule's cross product in this family's rule layout.
template <typename AclRule, typename Sink>
void emit(const Expansion& expansion, int32_t priority, uint32_t userdata, Sink&& sink) {
  for (uint8_t protocol : expansion.protocols) {
    for (const auto& src : expansion.sources) {
      for (const auto& dst : expansion.destinations) {
        for (const auto& sp : expansion.sourcePorts) {
          for (const auto& dp : expansion.destinationPorts) {
            AclRule acl{};
            // Chosen by type, not by `family`, so that the IPv4 layout never sees IPv6 field indexes.
            if constexpr (std::is_same_v<AclRule, Ipv4AclRule>) {
              fillCommon(acl, priority, userdata, protocol, kV4Proto, kV4SrcPort, kV4DstPort, sp, dp);
              acl.field[kV4Src].value.u32 = src.words[0];
              acl.field[kV4Src].mask_range.u32 = src.lengths[0];
              acl.field[kV4Dst].value.u32 = dst.words[0];
              acl.field[kV4Dst].mask_range.u32 = dst.lengths[0];
            } else {
              fillCommon(acl, priority, userdata, protocol, kV6Proto, kV6SrcPort, kV6DstPort, sp, dp);
              for (int word = 0; word < 4; ++word) {
                acl.field[kV6Src0 + word].value.u32 = src.words[word];
                acl.field[kV6Src0 + word].mask_range.u32 = src.lengths[word];
                acl.field[kV6Dst0 + word].value.u32 = dst.words[word];
                acl.field[kV6Dst0 + word].mask_range.u32 = dst.lengths[word];
              }
            }
            sink(acl);
          }
        }
      }
    }
  }
}

uint64_t heapAllocatedBytes() {
  uint64_t total = 0;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats stats{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &stats) == 0) total += stats.heap_allocsz_bytes;
  }
  return total;
}

struct AlgorithmName {
  enum rte_acl_classify_alg algorithm;
  const char* name;
};

// rte_acl's own preference order (acl_get_best_alg); set explicitly so that stats() can say which one runs.
// AVX-512 is refused unless EAL runs with --force-max-simd-bitwidth=512.
constexpr AlgorithmName kAlgorithms[] = {
    {RTE_ACL_CLASSIFY_AVX512X32, "avx512x32"}, {RTE_ACL_CLASSIFY_AVX512X16, "avx512x16"},
    {RTE_ACL_CLASSIFY_AVX2, "avx2"},           {RTE_ACL_CLASSIFY_SSE, "sse"},
    {RTE_ACL_CLASSIFY_NEON, "neon"},           {RTE_ACL_CLASSIFY_ALTIVEC, "altivec"},
    {RTE_ACL_CLASSIFY_SCALAR, "scalar"},
};

// Sets the requested algorithm, or the best one supported; its name, or null if the requested one is not.
const char* selectAlgorithm(rte_acl_ctx* ctx, int requested) {
  for (const auto& candidate : kAlgorithms) {
    if (requested != 0 && candidate.algorithm != requested) continue;
    if (rte_acl_set_ctx_classify(ctx, candidate.algorithm) == 0) return candidate.name;
  }
  return nullptr;
}

// Creates, fills and builds one family's context; null (and no error) when no rule has an element in it.
template <typename AclRule>
Result<rte_acl_ctx*> buildContext(const std::vector<L34Rule>& rules, const std::vector<Expansion>& expansions,
                                  uint64_t count, uint8_t family, const std::string& name, int socket,
                                  const L34ClassifierConfig& config) {
  if (count == 0) return static_cast<rte_acl_ctx*>(nullptr);
  if (rte_acl_find_existing(name.c_str()) != nullptr)
    // rte_acl_create would hand back the existing context, which two owners would then both free.
    return makeError(EEXIST, "rte_acl context " + name + " already exists");
  rte_acl_param param{};
  param.name = name.c_str();
  param.socket_id = socket;
  param.rule_size = sizeof(AclRule);
  param.max_rule_num = static_cast<uint32_t>(count);
  rte_acl_ctx* ctx = rte_acl_create(&param);
  if (ctx == nullptr)
    return makeError(ENOMEM,
                     "rte_acl_create " + name + " failed (rte_errno " + std::to_string(rte_errno) + ")");
  std::vector<AclRule> chunk;
  chunk.reserve(kAddChunk);
  int status = 0;
  auto flush = [&] {
    if (status == 0 && !chunk.empty())
      status = rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(chunk.data()),
                                 static_cast<uint32_t>(chunk.size()));
    chunk.clear();
  };
  for (size_t i = 0; i < rules.size() && status == 0; ++i) {
    // Earlier rules get higher priorities: rte_acl returns the highest-priority match.
    auto priority = static_cast<int32_t>(RTE_ACL_MAX_PRIORITY - i);
    emit<AclRule>(expansions[i], priority, rules[i].ruleId + 1, [&](const AclRule& acl) {
      chunk.push_back(acl);
      if (chunk.size() == kAddChunk) flush();
    });
  }
  flush();
  if (status != 0) {
    rte_acl_free(ctx);
    return makeError(-status, "rte_acl_add_rules " + name + " failed: " + std::strerror(-status));
  }
  rte_acl_config aclConfig = family == 4 ? ipv4Config() : ipv6Config();
  aclConfig.max_size = config.maxTrieBytes;
  status = rte_acl_build(ctx, &aclConfig);
  if (status != 0) {
    rte_acl_free(ctx);
    std::string why =
        status == -ERANGE ? " (the tries exceed maxTrieBytes even split RTE_ACL_MAX_TRIES ways)" : "";
    return makeError(-status, "rte_acl_build " + name + " (" + std::to_string(count) +
                                  " rules) failed: " + std::strerror(-status) + why);
  }
  return ctx;
}

// What rte_acl compares with the destination port ranges: an ICMP/ICMPv6 packet's type, where ICMP rules
// keep their types (expand()); the port otherwise.
uint16_t dstPortOf(const L34Tuple& tuple) {
  return carriesIcmpType(tuple.protocol) ? tuple.icmpType : tuple.dstPort;
}

class RteAclEngine final : public Engine {
 public:
  RteAclEngine() = default;
  ~RteAclEngine() override {
    rte_acl_free(ipv4_);  // null-safe
    rte_acl_free(ipv6_);
  }
  RteAclEngine(const RteAclEngine&) = delete;
  RteAclEngine& operator=(const RteAclEngine&) = delete;

  // On failure, the contexts built so far are freed with the engine.
  Result<void> build(const std::vector<L34Rule>& rules, const ExpandedRules& expanded,
                     const std::string& name, int socket, const L34ClassifierConfig& config,
                     L34ClassifierStats& stats);
  void classifyBurst(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const override;

 private:
  rte_acl_ctx* ipv4_ = nullptr;  // null when no rule applies to IPv4
  rte_acl_ctx* ipv6_ = nullptr;
};

Result<void> RteAclEngine::build(const std::vector<L34Rule>& rules, const ExpandedRules& expanded,
                                 const std::string& name, int socket, const L34ClassifierConfig& config,
                                 L34ClassifierStats& stats) {
  uint64_t heapBefore = heapAllocatedBytes();
  auto ipv4 =
      buildContext<Ipv4AclRule>(rules, expanded.ipv4, expanded.ipv4Elements, 4, name + "_v4", socket, config);
  if (!ipv4) return ipv4.error();
  ipv4_ = ipv4.value();
  auto ipv6 =
      buildContext<Ipv6AclRule>(rules, expanded.ipv6, expanded.ipv6Elements, 6, name + "_v6", socket, config);
  if (!ipv6) return ipv6.error();
  ipv6_ = ipv6.value();
  uint64_t heapAfter = heapAllocatedBytes();
  stats.memoryBytes = heapAfter > heapBefore ? heapAfter - heapBefore : 0;
  for (rte_acl_ctx* ctx : {ipv4_, ipv6_}) {
    if (ctx == nullptr) continue;
    stats.algorithm = selectAlgorithm(ctx, config.algorithm);
    if (stats.algorithm == nullptr)
      return makeError(ENOTSUP, "rte_acl classify algorithm " + std::to_string(config.algorithm) +
                                    " is not supported on this CPU (or above EAL's max SIMD width)");
  }
  return {};
}

void RteAclEngine::classifyBurst(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const {
  Ipv4Input v4[kBurst];
  Ipv6Input v6[kBurst];
  const uint8_t* v4Data[kBurst];
  const uint8_t* v6Data[kBurst];
  uint32_t v4Index[kBurst], v6Index[kBurst];
  uint32_t v4Count = 0, v6Count = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const L34Tuple& tuple = *tuples[i];
    ruleIds[i] = kNoRule;
    if (tuple.ipVersion == 4 && ipv4_ != nullptr) {
      Ipv4Input& input = v4[v4Count];
      input.protocol = tuple.protocol;
      std::memcpy(input.src, tuple.src, 4);
      std::memcpy(input.dst, tuple.dst, 4);
      input.srcPort = rte_cpu_to_be_16(tuple.srcPort);
      input.dstPort = rte_cpu_to_be_16(dstPortOf(tuple));
      v4Data[v4Count] = reinterpret_cast<const uint8_t*>(&input);
      v4Index[v4Count++] = i;
    } else if (tuple.ipVersion == 6 && ipv6_ != nullptr) {
      Ipv6Input& input = v6[v6Count];
      input.protocol = tuple.protocol;
      std::memcpy(input.src, tuple.src, 16);
      std::memcpy(input.dst, tuple.dst, 16);
      input.srcPort = rte_cpu_to_be_16(tuple.srcPort);
      input.dstPort = rte_cpu_to_be_16(dstPortOf(tuple));
      v6Data[v6Count] = reinterpret_cast<const uint8_t*>(&input);
      v6Index[v6Count++] = i;
    }
  }
  // Results are userdata (ruleId + 1) or 0 for no match, so that subtracting one maps "none" to kNoRule.
  uint32_t results[kBurst];
  if (v4Count > 0 && rte_acl_classify(ipv4_, v4Data, results, v4Count, 1) == 0) {
    for (uint32_t i = 0; i < v4Count; ++i) ruleIds[v4Index[i]] = results[i] - 1;
  }
  if (v6Count > 0 && rte_acl_classify(ipv6_, v6Data, results, v6Count, 1) == 0) {
    for (uint32_t i = 0; i < v6Count; ++i) ruleIds[v6Index[i]] = results[i] - 1;
  }
}

}  // namespace

Result<void> checkRteAclRuleCount(size_t rules) {
  // Priorities run from RTE_ACL_MAX_PRIORITY down, one per rule, and must stay at or above the minimum.
  if (rules > uint64_t{RTE_ACL_MAX_PRIORITY} - RTE_ACL_MIN_PRIORITY + 1)
    return makeError(E2BIG, std::to_string(rules) + " rules exceed rte_acl's " +
                                std::to_string(RTE_ACL_MAX_PRIORITY) + " priorities");
  return {};
}

uint64_t rteAclElementCount(const Expansion& expansion) {
  return product({expansion.protocols.size(), expansion.sources.size(), expansion.destinations.size(),
                  expansion.sourcePorts.size(), expansion.destinationPorts.size()});
}

Result<std::unique_ptr<Engine>> buildRteAclEngine(const std::vector<L34Rule>& rules,
                                                  const ExpandedRules& expanded, const std::string& name,
                                                  int socket, const L34ClassifierConfig& config,
                                                  L34ClassifierStats& stats) {
  auto engine = std::make_unique<RteAclEngine>();
  if (auto built = engine->build(rules, expanded, name, socket, config, stats); !built) return built.error();
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace vgate::dataplane::l34
