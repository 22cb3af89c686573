// What every vgate benchmark shares: EAL started as vgated starts it, and a main() that prints, after Google
// Benchmark's own table, each measured figure next to its baseline from the same run and their ratio.
#pragma once

#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_log.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vgate::bench {

inline void startEal(int memoryMb) {
  rte_openlog_stream(stderr);
  std::vector<std::string> args = {"vgate-bench",
                                   "--no-huge",
                                   "-m",
                                   std::to_string(memoryMb),
                                   "--no-shconf",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--log-level=*:error",
                                   "-l",
                                   "0"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    std::fprintf(stderr, "cannot start EAL\n");
    std::exit(1);
  }
}

// Collects items_per_second of each run so that ratios can be printed at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      auto found = run.counters.find("items_per_second");
      if (found != run.counters.end()) rates_[run.benchmark_name()] = found->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  // Prints "figure vs baseline" lines for each (figure, baseline) pair, by benchmark name prefix.
  void printRatios(const std::vector<std::pair<std::string, std::string>>& pairs) const {
    std::printf("\n%-44s %14s %14s %8s\n", "measured (items/s)", "figure", "baseline", "ratio");
    for (const auto& [figure, baseline] : pairs) {
      double a = find(figure), b = find(baseline);
      if (a <= 0 || b <= 0) continue;
      std::printf("%-44s %14.0f %14.0f %8.3f   (baseline: %s)\n", figure.c_str(), a, b, a / b,
                  baseline.c_str());
    }
  }

 private:
  // The run named `name` (or "name/args"), or its median when the benchmark ran with repetitions.
  double find(const std::string& name) const {
    double plain = 0;
    for (const auto& [run, rate] : rates_) {
      if (run.rfind(name, 0) != 0 ||
          (run.size() > name.size() && run[name.size()] != '/' && run[name.size()] != '_'))
        continue;
      bool median = run.size() >= 7 && run.compare(run.size() - 7, 7, "_median") == 0;
      bool aggregate = median || run.find("_mean") != std::string::npos ||
                       run.find("_stddev") != std::string::npos || run.find("_cv") != std::string::npos;
      if (median) return rate;
      if (!aggregate && plain == 0) plain = rate;
    }
    return plain;
  }
  std::map<std::string, double> rates_;
};

}  // namespace vgate::bench
