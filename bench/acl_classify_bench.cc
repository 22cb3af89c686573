// L3/L4 classification cost per packet at 10 to 100k rules, on the bitmap engine (the default) and on
// rte_acl, against a linear scan of the same rules in the same run; also each size's build time and memory.
// Two traffic shapes: uniform (every tuple near a rule drawn evenly: the worst case, each packet reads tables
// no recent packet read) and skewed (rules drawn Zipf-like, s = 1, as real traffic concentrates on a few
// services). Goal: 100k rules cost <= 1.5x what 10 rules cost.
#include <netinet/in.h>
#include <rte_memory.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <rte_acl.h>

#include "bench/bench_support.h"
#include "dataplane/l34/l34_classifier.h"

namespace {

using namespace vgate::dataplane;

constexpr uint32_t kBurst = 32;
constexpr int kBitmap = -1;  // the "algorithm" argument that selects the bitmap engine
constexpr size_t kTuples =
    1u << 14;  // more than one burst's worth so that the trie is walked along many paths

// A policy shaped like real ones: mostly IPv4, one CIDR each side between /8 and /32 (biased to long
// prefixes), a destination port or range on most rules, TCP and UDP more often than "any".
struct Workload {
  std::vector<L34Rule> rules;
  std::vector<L34Tuple> tuples;        // near rules drawn evenly
  std::vector<L34Tuple> skewedTuples;  // near rules drawn Zipf-like
  // By rte_acl algorithm, 0 = the best one; kBitmap for the bitmap engine.
  std::map<int, std::unique_ptr<L34Classifier>> classifiers;

  const L34Classifier& classifier(int algorithm) {
    auto& built = classifiers[algorithm];
    if (built == nullptr) {
      vgate::dataplane::L34ClassifierConfig config;
      config.engine = algorithm == kBitmap ? L34Engine::kBitmap : L34Engine::kRteAcl;
      config.algorithm = algorithm == kBitmap ? 0 : algorithm;
      if (const char* fieldBytes = std::getenv("VGATE_BITMAP_FIELD_BYTES"))
        config.bitmapFieldBytes = std::strtoull(fieldBytes, nullptr, 0);
      if (const char* maxSize = std::getenv("VGATE_ACL_MAX_SIZE"))
        config.maxTrieBytes = std::strtoull(maxSize, nullptr, 0);
      auto result = L34Classifier::build(
          rules, "bench_acl_" + std::to_string(rules.size()) + "_" + std::to_string(algorithm), SOCKET_ID_ANY,
          config);
      if (!result.ok()) {
        std::fprintf(stderr, "build at %zu rules failed: %s\n", rules.size(), result.error().message.c_str());
        std::exit(1);
      }
      built = std::move(result).value();
    }
    return *built;
  }
};

// The linear scan's rule: flattened, one CIDR and one range each side, as the generator makes them.
struct FlatRule {
  uint32_t ruleId;
  uint8_t protocol;
  uint8_t family;  // 0: any
  uint8_t srcPrefix, dstPrefix;
  uint8_t src[16], dst[16];
  uint16_t srcLow, srcHigh, dstLow, dstHigh;
  bool hasPorts;
};

bool prefixMatches(const uint8_t* net, uint8_t length, const uint8_t* address) {
  int full = length / 8;
  for (int i = 0; i < full; ++i) {
    if (net[i] != address[i]) return false;
  }
  if (length % 8 == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - length % 8));
  return (net[full] & mask) == (address[full] & mask);
}

uint32_t linearScan(const std::vector<FlatRule>& rules, const L34Tuple& t) {
  bool ported = t.protocol == IPPROTO_TCP || t.protocol == IPPROTO_UDP || t.protocol == IPPROTO_SCTP;
  for (const auto& rule : rules) {
    if (rule.protocol != 0 && rule.protocol != t.protocol) continue;
    if (rule.hasPorts && (!ported || t.srcPort < rule.srcLow || t.srcPort > rule.srcHigh ||
                          t.dstPort < rule.dstLow || t.dstPort > rule.dstHigh))
      continue;
    if (rule.family != 0 && (rule.family != t.ipVersion || !prefixMatches(rule.src, rule.srcPrefix, t.src) ||
                             !prefixMatches(rule.dst, rule.dstPrefix, t.dst)))
      continue;
    return rule.ruleId;
  }
  return kNoRule;
}

Workload makeWorkload(uint32_t ruleCount) {
  Workload workload;
  std::mt19937 engine(ruleCount);
  auto below = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(engine); };
  for (uint32_t i = 0; i < ruleCount; ++i) {
    L34Rule rule;
    rule.ruleId = i;
    uint32_t roll = below(100);
    rule.protocol = roll < 50 ? IPPROTO_TCP : roll < 85 ? IPPROTO_UDP : 0;
    bool v6 = below(10) == 0;
    for (auto* side : {&rule.sources, &rule.destinations}) {
      vgate::policy::Cidr cidr;
      cidr.family = v6 ? 6 : 4;
      int bits = v6 ? 128 : 32;
      uint32_t lengthRoll = below(100);
      int length = lengthRoll < 10   ? 8
                   : lengthRoll < 30 ? 16
                   : lengthRoll < 50 ? 24
                   : lengthRoll < 60 ? 28
                                     : 32;
      if (v6) length = length == 32 ? 128 : length + 32;
      cidr.prefixLength = static_cast<uint8_t>(length);
      cidr.address[0] = v6 ? 0x20 : 10;
      if (v6) cidr.address[1] = 0x01;
      for (int byte = v6 ? 2 : 1; byte < bits / 8; ++byte)
        cidr.address[byte] = static_cast<uint8_t>(below(256));
      for (int bit = length; bit < bits; ++bit)
        cidr.address[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
      side->push_back(cidr);
    }
    uint32_t portRoll = below(100);
    if (portRoll < 60) {
      auto port = static_cast<uint16_t>(below(4) == 0 ? 443 : 1 + below(10000));
      rule.destinationPorts.push_back({port, port});
    } else if (portRoll < 85) {
      auto low = static_cast<uint16_t>(1024 + below(50000));
      rule.destinationPorts.push_back({low, static_cast<uint16_t>(low + below(1000))});
    }
    workload.rules.push_back(std::move(rule));
  }
  // Tuples: most fall inside some rule's CIDRs and ports (so that the scan's cost is that of finding a match,
  // not of reading every rule), the rest hit nothing.
  auto tupleNear = [&](const L34Rule& near) {
    L34Tuple t{};
    t.ipVersion = near.sources[0].family;
    t.protocol =
        near.protocol != 0 ? near.protocol : static_cast<uint8_t>(below(2) ? IPPROTO_TCP : IPPROTO_UDP);
    for (int b = 0; b < 16; ++b)
      t.src[b] = static_cast<uint8_t>(below(256)), t.dst[b] = static_cast<uint8_t>(below(256));
    if (below(10) < 7) {
      for (auto [cidr, out] : {std::pair{&near.sources[0], t.src}, std::pair{&near.destinations[0], t.dst}}) {
        for (int bit = 0; bit < cidr->prefixLength; ++bit) {
          auto mask = static_cast<uint8_t>(0x80 >> (bit % 8));
          out[bit / 8] = static_cast<uint8_t>((out[bit / 8] & ~mask) | (cidr->address[bit / 8] & mask));
        }
      }
    }
    t.srcPort = static_cast<uint16_t>(32768 + below(28000));
    t.dstPort =
        near.destinationPorts.empty()
            ? static_cast<uint16_t>(below(65536))
            : static_cast<uint16_t>(near.destinationPorts[0].low +
                                    below(near.destinationPorts[0].high - near.destinationPorts[0].low + 1u));
    return t;
  };
  for (size_t i = 0; i < kTuples; ++i) workload.tuples.push_back(tupleNear(workload.rules[below(ruleCount)]));
  // Skewed traffic: each rule has one flow (its addresses, protocol and destination port), popular flows
  // recur as connections to popular services do. Rule ranks by a random permutation (popular services sit
  // anywhere in a policy, not first), rank r drawn with weight 1 / (r + 1); the source port is new each time.
  std::vector<L34Tuple> flows;
  for (const auto& rule : workload.rules) flows.push_back(tupleNear(rule));
  std::vector<uint32_t> byRank(ruleCount);
  std::iota(byRank.begin(), byRank.end(), 0u);
  std::shuffle(byRank.begin(), byRank.end(), engine);
  std::vector<double> cumulative(ruleCount);
  double total = 0;
  for (uint32_t rank = 0; rank < ruleCount; ++rank) cumulative[rank] = total += 1.0 / (rank + 1);
  for (size_t i = 0; i < kTuples; ++i) {
    double draw = std::uniform_real_distribution<double>(0, total)(engine);
    auto rank = static_cast<uint32_t>(std::lower_bound(cumulative.begin(), cumulative.end(), draw) -
                                      cumulative.begin());
    L34Tuple t = flows[byRank[std::min(rank, ruleCount - 1)]];
    t.srcPort = static_cast<uint16_t>(32768 + below(28000));
    workload.skewedTuples.push_back(t);
  }
  return workload;
}

Workload& workload(uint32_t ruleCount) {
  static std::map<uint32_t, Workload> workloads;
  auto found = workloads.find(ruleCount);
  if (found == workloads.end()) found = workloads.emplace(ruleCount, makeWorkload(ruleCount)).first;
  return found->second;
}

void classifyIn(benchmark::State& state, uint32_t burst, bool skewed) {
  auto& w = workload(static_cast<uint32_t>(state.range(0)));
  const L34Classifier& classifier = w.classifier(static_cast<int>(state.range(1)));
  std::vector<const L34Tuple*> pointers;
  for (const auto& t : skewed ? w.skewedTuples : w.tuples) pointers.push_back(&t);
  size_t next = 0;
  uint32_t ruleIds[kBurst];
  for (auto _ : state) {
    // One call per tuple when burst is 1: how the worker classifies a new flow
    // (CompiledPolicy::classifyNewFlow).
    for (uint32_t i = 0; i < kBurst; i += burst)
      classifier.classify(pointers.data() + next + i, burst, ruleIds + i);
    benchmark::DoNotOptimize(ruleIds);
    next = (next + kBurst) % (pointers.size() - kBurst);
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kBurst);
  const auto& stats = classifier.stats();
  state.counters["aclRules"] = static_cast<double>(stats.ipv4AclRules + stats.ipv6AclRules);
  state.counters["buildMs"] = static_cast<double>(stats.buildNanoseconds) / 1e6;
  state.counters["memMB"] = static_cast<double>(stats.memoryBytes) / (1 << 20);
  state.counters["wide"] = static_cast<double>(stats.ipv4AclRules + stats.ipv6AclRules - stats.listed[0] -
                                               stats.listed[1] - stats.listed[2]);
  state.SetLabel(stats.algorithm);
}

void BM_AclClassify(benchmark::State& state) { classifyIn(state, kBurst, false); }
void BM_AclClassifyOne(benchmark::State& state) { classifyIn(state, 1, false); }
void BM_AclClassifySkewed(benchmark::State& state) { classifyIn(state, kBurst, true); }
void BM_AclClassifyOneSkewed(benchmark::State& state) { classifyIn(state, 1, true); }

void linearScanIn(benchmark::State& state, bool skewed) {
  auto& w = workload(static_cast<uint32_t>(state.range(0)));
  const auto& tuples = skewed ? w.skewedTuples : w.tuples;
  std::vector<FlatRule> flat;
  for (const auto& rule : w.rules) {
    FlatRule f{};
    f.ruleId = rule.ruleId;
    f.protocol = rule.protocol;
    f.family = rule.sources[0].family;
    f.srcPrefix = rule.sources[0].prefixLength;
    f.dstPrefix = rule.destinations[0].prefixLength;
    std::memcpy(f.src, rule.sources[0].address, 16);
    std::memcpy(f.dst, rule.destinations[0].address, 16);
    f.srcLow = 0, f.srcHigh = 65535, f.dstLow = 0, f.dstHigh = 65535;
    f.hasPorts = !rule.destinationPorts.empty();
    if (f.hasPorts) f.dstLow = rule.destinationPorts[0].low, f.dstHigh = rule.destinationPorts[0].high;
    flat.push_back(f);
  }
  // The scan must agree with both engines, or the comparison means nothing.
  for (size_t i = 0; i < 256; ++i) {
    const L34Tuple* t = &tuples[i];
    uint32_t acl, bitmap;
    w.classifier(0).classify(&t, 1, &acl);
    w.classifier(kBitmap).classify(&t, 1, &bitmap);
    if (acl != linearScan(flat, *t) || bitmap != acl) {
      state.SkipWithError("linear scan and classifiers disagree");
      return;
    }
  }
  size_t next = 0;
  uint32_t ruleIds[kBurst];
  for (auto _ : state) {
    for (uint32_t i = 0; i < kBurst; ++i) ruleIds[i] = linearScan(flat, tuples[next + i]);
    benchmark::DoNotOptimize(ruleIds);
    next = (next + kBurst) % (tuples.size() - kBurst);
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * kBurst);
}

void BM_LinearScan(benchmark::State& state) { linearScanIn(state, false); }
void BM_LinearScanSkewed(benchmark::State& state) { linearScanIn(state, true); }

BENCHMARK(BM_AclClassify)
    ->ArgNames({"rules", "alg"})
    ->Args({10, kBitmap})
    ->Args({1000, kBitmap})
    ->Args({10000, kBitmap})
    ->Args({100000, kBitmap})
    ->Args({10, 0})
    ->Args({1000, 0})
    ->Args({10000, 0})
    ->Args({100000, 0})
    // Each implementation at both ends (2 scalar, 2 sse, 3 avx2, 6 avx512x16), to pick the default on data.
    ->ArgsProduct({{10, 100000},
                   {RTE_ACL_CLASSIFY_SCALAR, RTE_ACL_CLASSIFY_SSE, RTE_ACL_CLASSIFY_AVX2,
                    RTE_ACL_CLASSIFY_AVX512X16}});
BENCHMARK(BM_AclClassifyOne)
    ->ArgNames({"rules", "alg"})
    ->ArgsProduct({{10, 1000, 10000, 100000}, {kBitmap, 0}});
BENCHMARK(BM_LinearScan)->ArgName("rules")->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_AclClassifySkewed)
    ->ArgNames({"rules", "alg"})
    ->ArgsProduct({{10, 1000, 10000, 100000}, {kBitmap, 0}});
BENCHMARK(BM_AclClassifyOneSkewed)
    ->ArgNames({"rules", "alg"})
    ->ArgsProduct({{10, 1000, 10000, 100000}, {kBitmap, 0}});
BENCHMARK(BM_LinearScanSkewed)->ArgName("rules")->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);

}  // namespace

int main(int argc, char** argv) {
  vgate::bench::startEal(8192);
  // VGATE_ACL_DEBUG=1 shows rte_acl's build log: how many tries each context was split into, and their size.
  if (std::getenv("VGATE_ACL_DEBUG") != nullptr) rte_log_set_level_pattern("lib.acl", RTE_LOG_DEBUG);
  benchmark::Initialize(&argc, argv);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.printRatios({
      {"BM_AclClassify/rules:10/alg:-1", "BM_LinearScan/rules:10"},
      {"BM_AclClassify/rules:1000/alg:-1", "BM_LinearScan/rules:1000"},
      {"BM_AclClassify/rules:10000/alg:-1", "BM_LinearScan/rules:10000"},
      {"BM_AclClassify/rules:100000/alg:-1", "BM_LinearScan/rules:100000"},
      {"BM_AclClassify/rules:10/alg:-1", "BM_AclClassify/rules:10/alg:0"},
      {"BM_AclClassify/rules:1000/alg:-1", "BM_AclClassify/rules:1000/alg:0"},
      {"BM_AclClassify/rules:10000/alg:-1", "BM_AclClassify/rules:10000/alg:0"},
      {"BM_AclClassify/rules:100000/alg:-1", "BM_AclClassify/rules:100000/alg:0"},
      // The goal on the default engine: this ratio at or above 1/1.5 = 0.667.
      {"BM_AclClassify/rules:100000/alg:-1", "BM_AclClassify/rules:10/alg:-1"},
      {"BM_AclClassifyOne/rules:10/alg:-1", "BM_AclClassifyOne/rules:10/alg:0"},
      {"BM_AclClassifyOne/rules:1000/alg:-1", "BM_AclClassifyOne/rules:1000/alg:0"},
      {"BM_AclClassifyOne/rules:10000/alg:-1", "BM_AclClassifyOne/rules:10000/alg:0"},
      {"BM_AclClassifyOne/rules:100000/alg:-1", "BM_AclClassifyOne/rules:100000/alg:0"},
      {"BM_AclClassifyOne/rules:100000/alg:-1", "BM_AclClassifyOne/rules:10/alg:-1"},
      {"BM_AclClassifyOne/rules:100000/alg:0", "BM_AclClassifyOne/rules:10/alg:0"},
      {"BM_AclClassify/rules:10/alg:0", "BM_LinearScan/rules:10"},
      {"BM_AclClassify/rules:1000/alg:0", "BM_LinearScan/rules:1000"},
      {"BM_AclClassify/rules:10000/alg:0", "BM_LinearScan/rules:10000"},
      {"BM_AclClassify/rules:100000/alg:0", "BM_LinearScan/rules:100000"},
      {"BM_AclClassify/rules:100000/alg:0", "BM_AclClassify/rules:10/alg:0"},
      // Skewed traffic: the same goal, and against the linear scan.
      {"BM_AclClassifySkewed/rules:100000/alg:-1", "BM_AclClassifySkewed/rules:10/alg:-1"},
      {"BM_AclClassifyOneSkewed/rules:100000/alg:-1", "BM_AclClassifyOneSkewed/rules:10/alg:-1"},
      {"BM_AclClassifySkewed/rules:100000/alg:0", "BM_AclClassifySkewed/rules:10/alg:0"},
      {"BM_AclClassifyOneSkewed/rules:100000/alg:0", "BM_AclClassifyOneSkewed/rules:10/alg:0"},
      {"BM_AclClassifySkewed/rules:100000/alg:-1", "BM_AclClassifySkewed/rules:100000/alg:0"},
      {"BM_AclClassifyOneSkewed/rules:100000/alg:-1", "BM_AclClassifyOneSkewed/rules:100000/alg:0"},
      {"BM_AclClassifySkewed/rules:100000/alg:-1", "BM_LinearScanSkewed/rules:100000"},
  });
  benchmark::Shutdown();
  return 0;
}
