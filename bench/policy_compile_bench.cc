// A policy swap end to end at 1k/10k/100k rules: YAML text in memory -> loadPolicy -> CompiledPolicy::compile
// -> PolicyRegistry::publish (with one registered reader, as a worker would be), cold (empty database cache)
// and warm (cache hit), with the memory the compiled policy holds. Goals: 10k rules < 1 s, 100k < 10 s.
// Edit rows, after a warm compile: "edit" changes one SNI regex rule, "insert" puts one new SNI regex rule at
// the top (every later rule's index shifts); each then recompiles only the database chunks it touches.
// The baseline, in the same run: the same swap as before this benchmark's changes (rte_acl classifiers, one
// Hyperscan thread; the chunking and the per-pattern ALLOWEMPTY stay), cold.
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <rte_malloc.h>

#include "bench/bench_support.h"
#include "control/policy/policy_loader.h"
#include "dataplane/eal/eal.h"
#include "dataplane/verdict/compiled_policy.h"
#include "dataplane/verdict/policy_registry.h"

namespace {

using namespace vgate::dataplane;
namespace policy = vgate::policy;

// The rule mix: 40% L3/L4 only (CIDRs and ports as in acl_classify_bench), 30% SNI literals, 20% "*.suffix"
// wildcards and 10% SNI regexes (as in l7match_bench), the L7 ones on tcp/443 to some destination CIDR.
// The rules' YAML, one string per document of at most kRulesPerDocument rules: the loader refuses documents
// over 4 MiB, which a 100k-rule policy is (about 15 MB), so that one is loaded as 10 documents and merged.
constexpr int kRulesPerDocument = 10000;

std::vector<std::string> makePolicyTexts(int rules) {
  std::mt19937 engine(static_cast<uint32_t>(rules));
  auto below = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(engine); };
  auto cidr = [&] {
    static constexpr int kLengths[] = {8, 16, 24, 24, 28, 32, 32, 32};
    int length = kLengths[below(8)];
    uint32_t address = 10u << 24 | below(1u << 24);
    address &= length == 32 ? ~0u : ~((1u << (32 - length)) - 1);
    return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 255) + "." +
           std::to_string((address >> 8) & 255) + "." + std::to_string(address & 255) + "/" +
           std::to_string(length);
  };
  std::vector<std::string> texts;
  std::string text;
  for (int i = 0; i < rules; ++i) {
    if (i % kRulesPerDocument == 0) {
      if (!text.empty()) texts.push_back(std::move(text));
      text = "apiVersion: vgate.io/v1\nkind: Policy\nmetadata:\n  name: bench-" + std::to_string(rules) +
             "\nspec:\n  mode: enforce\n  default: allow\n  rules:\n";
    }
    int kind = i % 10;
    text += "    - name: r" + std::to_string(i) + "\n      action: " + (i % 3 == 0 ? "allow" : "deny") +
            "\n      match:\n";
    if (kind < 4) {
      text += std::string("        protocol: ") + (below(2) ? "tcp" : "udp") + "\n";
      text += "        source: {cidrs: [\"" + cidr() + "\"]}\n";
      uint32_t portRoll = below(100);
      std::string ports;
      if (portRoll < 60) {
        ports = ", ports: [" + std::to_string(below(4) == 0 ? 443 : 1 + below(10000)) + "]";
      } else if (portRoll < 85) {
        uint32_t low = 1024 + below(50000);
        ports = ", ports: [\"" + std::to_string(low) + "-" + std::to_string(low + below(1000)) + "\"]";
      }
      text += "        destination: {cidrs: [\"" + cidr() + "\"]" + ports + "}\n";
      continue;
    }
    text += "        protocol: tcp\n        destination: {cidrs: [\"" + cidr() + "\"], ports: [443]}\n";
    if (kind < 7) {
      text += "        tls: {sni: [\"host" + std::to_string(i) + ".svc" + std::to_string(i % 97) +
              ".example\"]}\n";
    } else if (kind < 9) {
      text += "        tls: {sni: [\"*.zone" + std::to_string(i) + ".example\"]}\n";
    } else {
      text +=
          "        tls: {sniRegex: [\"api" + std::to_string(i) + "-[0-9]+\\\\.svc[a-z]*\\\\.example\"]}\n";
    }
  }
  texts.push_back(std::move(text));
  return texts;
}

// loadPolicy on each document, the rules appended in order; the cache key joins the documents' hashes.
vgate::Result<policy::Policy> loadAll(const std::vector<std::string>& texts) {
  policy::Policy merged;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto loaded = vgate::control::loadPolicy(texts[i], "bench-" + std::to_string(i) + ".yaml");
    if (!loaded) return loaded.error();
    if (i == 0) {
      merged = std::move(loaded).value();
      merged.sourceHash = merged.sourceHash.substr(0, 16);
      continue;
    }
    for (auto& rule : loaded.value().rules) merged.rules.push_back(std::move(rule));
    merged.sourceHash += loaded.value().sourceHash.substr(0, 16);
  }
  return merged;
}

uint64_t heapBytes() {
  uint64_t total = 0;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats stats{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &stats) == 0) total += stats.heap_allocsz_bytes;
  }
  return total;
}

uint64_t rssBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

double millisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

struct Figures {
  double loadMs = 0, compileMs = 0, publishMs = 0, l34Ms = 0, l7Ms = 0, totalMs = 0;
  double heapMb = 0, rssMb = 0, policyMb = 0;
};
std::map<std::string, Figures>& figures() {
  static std::map<std::string, Figures> all;
  return all;
}

std::string cacheDir() {
  static std::string dir =
      (std::filesystem::temp_directory_path() / ("vgate-compilebench-" + std::to_string(::getpid())))
          .string();
  return dir;
}

const std::vector<std::string>& policyTexts(int rules) {
  static std::map<int, std::vector<std::string>> texts;
  auto& text = texts[rules];
  if (text.empty()) text = makePolicyTexts(rules);
  return text;
}

enum Mode { kCold, kWarm, kBaseline, kEdit, kInsert };

// The policy after one edit: rule r9's regex changed, or a new regex rule in front of r0. `serial` makes each
// edit new, so that a repeated run never finds it in the cache.
std::vector<std::string> editedTexts(const std::vector<std::string>& texts, Mode mode, int serial) {
  std::vector<std::string> edited = texts;
  std::string& first = edited.front();
  if (mode == kEdit) {
    size_t at = first.find("\"api9-");
    if (at != std::string::npos) first.replace(at, 6, "\"edit" + std::to_string(serial) + "-");
    return edited;
  }
  std::string rule = "    - name: inserted" + std::to_string(serial) +
                     "\n      action: deny\n      match:\n        protocol: tcp\n"
                     "        destination: {cidrs: [\"10.1.2.0/24\"], ports: [443]}\n"
                     "        tls: {sniRegex: [\"inserted" +
                     std::to_string(serial) + "-[0-9]+\\\\.svc[a-z]*\\\\.example\"]}\n";
  size_t at = first.find("  rules:\n");
  if (at != std::string::npos) first.insert(at + 9, rule);
  return edited;
}

// One swap: load, compile, publish to a registry with a live reader; the previous policy is freed by publish.
void BM_PolicySwap(benchmark::State& state) {
  int rules = static_cast<int>(state.range(0));
  auto mode = static_cast<Mode>(state.range(1));
  const auto& texts = policyTexts(rules);
  auto registry = PolicyRegistry::create(1);
  if (!registry) {
    state.SkipWithError(registry.error().message.c_str());
    return;
  }
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    if (!registry.value()->registerWorker(0)) return;
    while (!stop.load(std::memory_order_relaxed)) {
      benchmark::DoNotOptimize(registry.value()->current());
      registry.value()->quiescent(0);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    registry.value()->unregisterWorker(0);
  });
  CompileOptions options;
  if (mode != kBaseline) options.cacheDir = cacheDir();
  if (mode == kBaseline) options.threads = 1, options.rteAcl = true;
  uint32_t version = 0;
  Figures f;
  static int serial = 0;
  size_t compiledPatterns = 0, cacheWrites = 0;
  double l7CpuMs = 0;
  for (auto _ : state) {
    std::vector<std::string> edited;
    if (mode == kCold) {
      state.PauseTiming();
      std::error_code error;
      std::filesystem::remove_all(cacheDir(), error);
      state.ResumeTiming();
    }
    if (mode == kEdit || mode == kInsert) {
      // The unedited policy first, so that the cache holds all of its chunks.
      state.PauseTiming();
      std::string failed;
      {
        auto loaded = loadAll(texts);
        auto warm = loaded ? CompiledPolicy::compile(loaded.value(), ++version, options, 1)
                           : vgate::Result<std::shared_ptr<const CompiledPolicy>>(loaded.error());
        if (!warm) failed = warm.error().message;
      }  // freed here, outside the timing
      if (!failed.empty()) {
        state.SkipWithError(failed.c_str());
        break;
      }
      edited = editedTexts(texts, mode, ++serial);
      state.ResumeTiming();
    }
    uint64_t heapBefore = heapBytes(), rssBefore = rssBytes();
    auto started = std::chrono::steady_clock::now();
    auto loaded = loadAll(edited.empty() ? texts : edited);
    if (!loaded) {
      state.SkipWithError(loaded.error().message.c_str());
      break;
    }
    f.loadMs = millisSince(started);
    auto compileStarted = std::chrono::steady_clock::now();
    auto compiled = CompiledPolicy::compile(loaded.value(), ++version, options, 1);
    if (!compiled) {
      state.SkipWithError(compiled.error().message.c_str());
      break;
    }
    f.compileMs = millisSince(compileStarted);
    f.heapMb = static_cast<double>(heapBytes() - heapBefore) / (1 << 20);
    f.rssMb =
        static_cast<double>(static_cast<int64_t>(rssBytes()) - static_cast<int64_t>(rssBefore)) / (1 << 20);
    const auto& stats = compiled.value()->stats();
    f.l34Ms = static_cast<double>(stats.l34.buildNanoseconds + stats.l7L34.buildNanoseconds) / 1e6;
    f.l7Ms = stats.l7.compileMillis;
    compiledPatterns = stats.l7.compiledPatterns;
    cacheWrites = stats.l7.cacheWrites;
    l7CpuMs = stats.l7.chunkCpuMillis;
    // What the compiled policy holds: the classifiers' tables and the Hyperscan databases (host tables
    // aside).
    f.policyMb =
        static_cast<double>(stats.l34.memoryBytes + stats.l7L34.memoryBytes + stats.l7.totalDatabaseBytes) /
        (1 << 20);
    auto publishStarted = std::chrono::steady_clock::now();
    registry.value()->publish(std::move(compiled).value());
    f.publishMs = millisSince(publishStarted);
    f.totalMs = millisSince(started);
    // Free the policy before the next round (and before measuring its memory again).
    state.PauseTiming();
    registry.value()->publish(nullptr);
    state.ResumeTiming();
  }
  stop = true;
  reader.join();
  state.counters["load_ms"] = f.loadMs;
  state.counters["compile_ms"] = f.compileMs;
  state.counters["l34_ms"] = f.l34Ms;
  state.counters["l7_ms"] = f.l7Ms;
  state.counters["publish_ms"] = f.publishMs;
  state.counters["heap_MB"] = f.heapMb;
  state.counters["rss_MB"] = f.rssMb;
  state.counters["policy_MB"] = f.policyMb;
  state.counters["hs_compiled"] = static_cast<double>(compiledPatterns);  // patterns Hyperscan compiled
  state.counters["cache_writes"] = static_cast<double>(cacheWrites);
  // The L7 chunks' CPU time: on a machine shared with other work, a figure that the load does not inflate.
  state.counters["l7_cpu_ms"] = l7CpuMs;  // chunks compiled and stored
  static const char* kNames[] = {"cold", "warm", "baseline", "edit", "insert"};
  figures()[std::to_string(rules) + " " + kNames[mode]] = f;
  state.SetItemsProcessed(int64_t{state.iterations()} * rules);
}

void swapArguments(benchmark::internal::Benchmark* benchmark) {
  for (int rules : {1000, 10000, 100000}) {
    for (int mode : {kBaseline, kCold, kWarm, kEdit, kInsert}) benchmark->Args({rules, mode});
  }
}

BENCHMARK(BM_PolicySwap)
    ->ArgNames({"rules", "mode"})
    ->Apply(swapArguments)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // EAL as vgated starts it: the main lcore (the control thread, which loads and compiles) may run on every
  // CPU this process is allowed, so the compile threads it starts use them all. The other benches pin to one
  // CPU (startEal), which would serialize the compile.
  vgate::dataplane::EalOptions eal;
  eal.programName = "policy_compile_bench";
  eal.memoryMb = 4096;
  eal.lcores = 1;
  auto session = vgate::dataplane::EalSession::start(eal);
  if (!session) {
    std::fprintf(stderr, "%s\n", session.error().message.c_str());
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n%-16s %10s %10s %10s %10s %10s %10s %10s %10s %10s\n", "rules mode", "total ms", "load ms",
              "compile ms", "l3/l4 ms", "l7 ms", "publish ms", "policy MB", "heap MB", "rss MB");
  for (const auto& [name, f] : figures()) {
    std::printf("%-16s %10.1f %10.1f %10.1f %10.1f %10.1f %10.2f %10.1f %10.1f %10.1f\n", name.c_str(),
                f.totalMs, f.loadMs, f.compileMs, f.l34Ms, f.l7Ms, f.publishMs, f.policyMb, f.heapMb,
                f.rssMb);
  }
  benchmark::Shutdown();
  std::error_code error;
  std::filesystem::remove_all(cacheDir(), error);
  return 0;
}
