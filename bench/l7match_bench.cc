// The L7 matcher: compile time at 1k/10k/100k rules (60% SNI literals, 30% "*.suffix" wildcards, 10% SNI
// regexes), and SNI match time at 10/1k/10k/100k patterns against a baseline linear scan over the same
// literals and wildcards in the same run. The baseline skips the regexes (std::regex would be orders of
// magnitude slower and measure std::regex, not the scan), so it does strictly less work than the matcher.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_support.h"
#include "dataplane/l7match/l7_matcher.h"

namespace {

using namespace vgate::dataplane;
namespace policy = vgate::policy;

std::string literalName(int i) {
  return "host" + std::to_string(i) + ".svc" + std::to_string(i % 97) + ".example";
}
std::string wildcardSuffix(int i) { return "zone" + std::to_string(i) + ".example"; }

policy::Policy makePolicy(int rules) {
  policy::Policy result;
  result.sourceHash = "bench-" + std::to_string(rules);
  result.rules.reserve(static_cast<size_t>(rules));
  for (int i = 0; i < rules; ++i) {
    policy::Rule rule;
    rule.name = "r" + std::to_string(i);
    int kind = i % 10;
    if (kind < 6) {
      rule.tls.sni = {literalName(i)};
    } else if (kind < 9) {
      rule.tls.sni = {"*." + wildcardSuffix(i)};
    } else {
      rule.tls.sniRegex = {"api" + std::to_string(i) + "-[0-9]+\\.svc[a-z]*\\.example"};
    }
    result.rules.push_back(std::move(rule));
  }
  return result;
}

// One query set per size: a third literal hits, a third wildcard hits (two labels under), a third misses.
std::vector<std::string> makeQueries(int rules) {
  std::vector<std::string> queries;
  for (int j = 0; queries.size() < 1024; ++j) {
    int i = (j * 7919) % rules;
    switch (j % 3) {
      case 0:
        if (i % 10 < 6) queries.push_back(literalName(i));
        break;
      case 1:
        if (i % 10 >= 6 && i % 10 < 9) queries.push_back("a.B." + wildcardSuffix(i));
        break;
      default:
        queries.push_back("miss" + std::to_string(j) + ".other.example");
    }
    if (j > 1000000) break;
  }
  return queries;
}

// Compile figures per rule count, printed after the run: a fresh compile against a load from the cache.
struct CompileFigures {
  double compileMs = 0, cachedMs = 0;
  size_t databaseBytes = 0, tablePatterns = 0;
};
std::map<int, CompileFigures>& compileFigures() {
  static std::map<int, CompileFigures> figures;
  return figures;
}

std::string cacheDir() {
  static std::string dir =
      (std::filesystem::temp_directory_path() / ("vgate-l7bench-" + std::to_string(::getpid()))).string();
  return dir;
}

// Compiled once per size (through the cache, so the compile benchmark's work is reused).
std::shared_ptr<const L7Matcher> matcherFor(int rules) {
  static std::map<int, std::shared_ptr<const L7Matcher>> matchers;
  auto& slot = matchers[rules];
  if (slot == nullptr) {
    auto compiled = L7Matcher::compile(makePolicy(rules), CompileOptions{cacheDir()});
    if (!compiled) {
      std::fprintf(stderr, "compile: %s\n", compiled.error().message.c_str());
      std::exit(1);
    }
    slot = compiled.value();
  }
  return slot;
}

void BM_Compile(benchmark::State& state) {
  int rules = static_cast<int>(state.range(0));
  auto policyDoc = makePolicy(rules);
  std::shared_ptr<const L7Matcher> matcher;
  for (auto _ : state) {
    auto compiled = L7Matcher::compile(policyDoc);
    if (!compiled) {
      state.SkipWithError(compiled.error().message.c_str());
      return;
    }
    matcher = compiled.value();
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * rules);
  const auto& stats = matcher->stats();
  state.counters["compile_ms"] = stats.compileMillis;
  state.counters["chunk_cpu_ms"] = stats.chunkCpuMillis;  // all compile threads, unlike the CPU column
  auto& figures = compileFigures()[rules];
  figures.compileMs = stats.compileMillis;
  figures.databaseBytes = stats.totalDatabaseBytes;
  figures.tablePatterns = stats.tablePatterns[static_cast<size_t>(L7Field::kSni)];
  state.counters["db_bytes"] = static_cast<double>(stats.totalDatabaseBytes);
  state.counters["table_patterns"] =
      static_cast<double>(stats.tablePatterns[static_cast<size_t>(L7Field::kSni)]);
}

void BM_CompileFromCache(benchmark::State& state) {
  int rules = static_cast<int>(state.range(0));
  auto policyDoc = makePolicy(rules);
  matcherFor(rules);  // writes the cache
  size_t hits = 0;
  for (auto _ : state) {
    auto compiled = L7Matcher::compile(policyDoc, CompileOptions{cacheDir()});
    if (!compiled) {
      state.SkipWithError(compiled.error().message.c_str());
      return;
    }
    hits = compiled.value()->stats().cacheHits;
    compileFigures()[rules].cachedMs = compiled.value()->stats().compileMillis;
  }
  state.SetItemsProcessed(int64_t{state.iterations()} * rules);
  state.counters["cache_hits"] = static_cast<double>(hits);
}

void BM_MatchSni(benchmark::State& state) {
  int rules = static_cast<int>(state.range(0));
  auto matcher = matcherFor(rules);
  auto scratch = matcher->makeScratch();
  if (!scratch) {
    state.SkipWithError("scratch");
    return;
  }
  RuleSet out = matcher->ruleSet();
  auto queries = makeQueries(rules);
  size_t next = 0, matched = 0;
  for (auto _ : state) {
    L7Facts facts;
    facts.sni = queries[next];
    facts.presentFields = kFactSni;
    matcher->match(facts, *scratch.value(), out);
    matched += out.empty() ? 0 : 1;
    next = next + 1 == queries.size() ? 0 : next + 1;
  }
  benchmark::DoNotOptimize(matched);
  state.SetItemsProcessed(int64_t{state.iterations()});
  state.counters["hit_ratio"] = static_cast<double>(matched) / static_cast<double>(state.iterations());
  // Each SNI database is one more hs_scan per match: what the chunking costs here.
  state.counters["sni_dbs"] =
      static_cast<double>(matcher->stats().databaseCount[static_cast<size_t>(L7Field::kSni)]);
}

bool caselessEqual(std::string_view a, std::string_view b) { return CaselessEqual{}(a, b); }

// The baseline: every literal and wildcard compared in turn, as a hand-written matcher without an index
// would.
void BM_LinearSni(benchmark::State& state) {
  int rules = static_cast<int>(state.range(0));
  auto policyDoc = makePolicy(rules);
  struct Entry {
    std::string text;  // the literal, or the wildcard's suffix with its leading dot
    bool under;
    uint32_t rule;
  };
  std::vector<Entry> entries;
  for (uint32_t i = 0; i < policyDoc.rules.size(); ++i) {
    for (const auto& sni : policyDoc.rules[i].tls.sni) {
      bool under = sni.starts_with("*.");
      entries.push_back(Entry{under ? sni.substr(1) : sni, under, i});
    }
  }
  RuleSet out(policyDoc.rules.size());
  auto queries = makeQueries(rules);
  size_t next = 0, matched = 0;
  for (auto _ : state) {
    std::string_view name = queries[next];
    out.clear();
    for (const auto& entry : entries) {
      if (entry.under) {
        // Suffix ".zone1.example" with at least one non-empty label before it.
        if (name.size() > entry.text.size() && name[0] != '.' &&
            caselessEqual(name.substr(name.size() - entry.text.size()), entry.text) &&
            name.find("..") == std::string_view::npos) {
          out.set(entry.rule);
        }
      } else if (caselessEqual(name, entry.text)) {
        out.set(entry.rule);
      }
    }
    matched += out.empty() ? 0 : 1;
    next = next + 1 == queries.size() ? 0 : next + 1;
  }
  benchmark::DoNotOptimize(matched);
  state.SetItemsProcessed(int64_t{state.iterations()});
  state.counters["hit_ratio"] = static_cast<double>(matched) / static_cast<double>(state.iterations());
}

BENCHMARK(BM_Compile)->Arg(1000)->Arg(10000)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CompileFromCache)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MatchSni)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_LinearSni)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  vgate::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.printRatios({{"BM_MatchSni/10", "BM_LinearSni/10"},
                        {"BM_MatchSni/1000", "BM_LinearSni/1000"},
                        {"BM_MatchSni/10000", "BM_LinearSni/10000"},
                        {"BM_MatchSni/100000", "BM_LinearSni/100000"}});
  std::printf("\n%-10s %14s %14s %10s %14s %14s\n", "rules", "compile ms", "cache load ms", "ratio",
              "hs db bytes", "table patterns");
  for (const auto& [rules, figures] : compileFigures()) {
    std::printf("%-10d %14.1f %14.2f %10.1f %14zu %14zu\n", rules, figures.compileMs, figures.cachedMs,
                figures.cachedMs > 0 ? figures.compileMs / figures.cachedMs : 0.0, figures.databaseBytes,
                figures.tablePatterns);
  }
  benchmark::Shutdown();
  std::error_code error;
  std::filesystem::remove_all(cacheDir(), error);
  return 0;
}
