// The metric list: names after Prometheus practice, the contract names with their label sets, the counter
// lists exported whole, and the README's table generated from the list.
#include "control/metrics/metric_list.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace vgate::control::metrics {
namespace {

const MetricSpec* find(const std::string& name) {
  for (const MetricSpec& spec : metricCatalog())
    if (spec.name == name) return &spec;
  return nullptr;
}

TEST(MetricList, NamesAreValidUniqueAndFollowPractice) {
  std::regex valid("^vgate_[a-z0-9_]+$");
  std::set<std::string> seen;
  for (const MetricSpec& spec : metricCatalog()) {
    EXPECT_TRUE(std::regex_match(spec.name, valid)) << spec.name;
    EXPECT_TRUE(seen.insert(spec.name).second) << "twice: " << spec.name;
    bool total = spec.name.size() > 6 && spec.name.substr(spec.name.size() - 6) == "_total";
    EXPECT_EQ(total, spec.type == MetricType::kCounter) << spec.name;
    EXPECT_FALSE(spec.help.empty()) << spec.name;
    for (const std::string& label : spec.labels)
      EXPECT_TRUE(std::regex_match(label, std::regex("^[a-z_]+$")));
  }
}

TEST(MetricList, ContractNamesHaveTheirLabels) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> contract = {
      {"vgate_flows_processed_total", {"verdict", "protocol"}},
      {"vgate_flows_active", {}},
      {"vgate_flows_ended_total", {"reason"}},
      {"vgate_policy_verdicts_total", {"direction", "match", "action", "rule"}},
      {"vgate_drop_total", {"reason"}},
      {"vgate_packets_total", {"path"}},
      {"vgate_bytes_total", {"path"}},
      {"vgate_container_packets_total", {"container", "direction", "verdict"}},
      {"vgate_container_bytes_total", {"container", "direction", "verdict"}},
      {"vgate_worker_busy_ratio", {"worker"}},
      {"vgate_fastpath_map_pressure", {"map"}},
      {"vgate_flow_log_records_total", {"result"}},
      {"vgate_policy_info", {"name", "version", "mode"}},
      {"vgate_policy_rules", {}},
      {"vgate_policy_compile_seconds", {}},
      {"vgate_policy_apply_total", {"result"}},
      {"vgate_control_requests_total", {"verb", "status"}},
      {"vgate_build_info", {"version"}},
  };
  for (const auto& [name, labels] : contract) {
    const MetricSpec* spec = find(name);
    ASSERT_NE(spec, nullptr) << name;
    EXPECT_EQ(spec->labels, labels) << name;
  }
  EXPECT_EQ(find("vgate_policy_compile_seconds")->type, MetricType::kHistogram);
}

TEST(MetricList, EveryCounterListIsExported) {
  // One entry per counter of each list, named from the counter's name.
  size_t expected = kMetricCount;
  dataplane::WorkerCounters{}.forEach([&](const CounterInfo&, uint64_t) { ++expected; });
  dataplane::InspectionCounters{}.forEach([&](const CounterInfo&, uint64_t) { ++expected; });
  dataplane::LaneCounters{}.forEach([&](const CounterInfo&, uint64_t) { ++expected; });
  dataplane::FragmentCounters{}.forEach([&](const CounterInfo&, uint64_t) { ++expected; });
  dataplane::FastPathStats{}.forEach([&](const CounterInfo&, uint64_t) { ++expected; });
  FlowLogCounters{}.forEach([&](const CounterInfo&, uint64_t) { ++expected; });
  EXPECT_EQ(metricCatalog().size(), expected);
  EXPECT_NE(find("vgate_worker_flows_created_total"), nullptr);
  EXPECT_NE(find("vgate_inspection_tls_client_hellos_total"), nullptr);
  EXPECT_NE(find("vgate_fastpath_fail_closed_drops_total"), nullptr);
  EXPECT_NE(find("vgate_fragments_overlapping_total"), nullptr);
  EXPECT_NE(find("vgate_flow_log_metadata_pending"), nullptr);  // a gauge: no _total
  const MetricSpec* busy = find("vgate_lane_busy_time_seconds_total");
  ASSERT_NE(busy, nullptr);
  EXPECT_DOUBLE_EQ(busy->scale, 1e-9);
}

TEST(MetricList, SnakeCase) {
  EXPECT_EQ(snakeCase("flowsCreated"), "flows_created");
  EXPECT_EQ(snakeCase("tlsClientHellos"), "tls_client_hellos");
  EXPECT_EQ(snakeCase("hits"), "hits");
}

// The README's metric table is the list's rendering. VGATE_WRITE_README=1 rewrites it.
TEST(MetricList, ReadmeTableMatchesTheList) {
  std::string path = std::string(VGATE_TEST_DATA_DIR) + "/../../README.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  std::string readme = text.str();
  const std::string begin = "<!-- metrics table: generated from control/metrics/metric_list.h -->\n";
  const std::string end = "<!-- end of metrics table -->";
  auto from = readme.find(begin);
  auto to = readme.find(end);
  ASSERT_NE(from, std::string::npos) << "README.md lacks the line " << begin;
  ASSERT_NE(to, std::string::npos);
  from += begin.size();
  std::string table = renderMetricTable();
  if (std::getenv("VGATE_WRITE_README") != nullptr) {
    readme.replace(from, to - from, table);
    std::ofstream(path) << readme;
    return;
  }
  EXPECT_EQ(readme.substr(from, to - from), table)
      << "README.md's metric table is stale: run VGATE_WRITE_README=1 " << ::testing::internal::GetArgvs()[0];
}

}  // namespace
}  // namespace vgate::control::metrics
