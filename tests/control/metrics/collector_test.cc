// The collector as a scrape sees it: the exposition text of a snapshot of two workers, their counters summed,
// every metric of the list with its type, and `promtool check metrics` clean on it.
#include "control/metrics/collector.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "control/metrics/metric_list.h"

namespace vgate::control::metrics {
namespace {

// "name{labels} value" lines of an exposition, by their "name{labels}" part.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

dataplane::LiveWorkerStatus worker(uint16_t id, uint64_t scale) {
  dataplane::LiveWorkerStatus status;
  status.id = id;
  status.flows = static_cast<uint32_t>(10 * scale);
  status.counters.packets = 100 * scale;
  status.counters.bytes = 1000 * scale;
  status.counters.fastPathBytes = 7 * scale;
  status.counters.denied = 3 * scale;
  status.counters.recordsLost = scale;
  status.counters.parseStatus[static_cast<int>(dataplane::ParseStatus::kOk)] = 90 * scale;
  status.inspection.tlsClientHellos = 2 * scale;
  status.lane.txDropped = scale;
  status.lane.busyTime = 250'000'000 * scale;
  status.lane.idleTime = 750'000'000 * scale;
  status.recordRingUsed = static_cast<uint32_t>(1024 * scale);
  status.recordRingCapacity = 8191;
  return status;
}

FlowEndRecord endRecord(VerdictAction action, uint8_t direction, uint16_t port) {
  FlowEndRecord record;
  record.action = action;
  record.protocol = IPPROTO_TCP;
  record.reason = FlowEndReason::kFin;
  record.direction = direction;
  record.portPair = port;
  record.pkts[kToServer] = 4;
  record.pkts[kToClient] = 3;
  record.bytes[kToServer] = 400;
  record.bytes[kToClient] = 300;
  return record;
}

class Collector : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_.workers = {worker(0, 1), worker(1, 2)};
    snapshot_.fastPath.hits = 500;
    snapshot_.fastPath.failClosedDrops = 4;
    snapshot_.flowLog.recordsWritten = 9;
    snapshot_.maps = {{"vgate_fp_flows", 256, 1024}};
    snapshot_.attachedPorts = {1};
    flows_.setPortName(1, "web");
  }
  std::string scrape() { return renderExposition(collector_); }

  FlowMetrics flows_;
  DataplaneSnapshot snapshot_;
  MetricsCollector collector_{flows_, [this] { return snapshot_; }, "1.2.3"};
};

TEST_F(Collector, SumsWorkersAtScrapeTime) {
  auto values = samples(scrape());
  EXPECT_EQ(values["vgate_packets_total{path=\"slow\"}"], 300);
  EXPECT_EQ(values["vgate_packets_total{path=\"fast\"}"], 500);
  EXPECT_EQ(values["vgate_bytes_total{path=\"slow\"}"], 3000);
  EXPECT_EQ(values["vgate_bytes_total{path=\"fast\"}"], 21);
  EXPECT_EQ(values["vgate_worker_packets_total"], 300);
  EXPECT_EQ(values["vgate_inspection_tls_client_hellos_total"], 6);
  EXPECT_EQ(values["vgate_flows_active"], 30);
  EXPECT_EQ(values["vgate_drop_total{reason=\"policy_denied\"}"], 9);
  EXPECT_EQ(values["vgate_drop_total{reason=\"fail_closed\"}"], 4);
  EXPECT_EQ(values["vgate_drop_total{reason=\"trunk_tx_full\"}"], 3);
  EXPECT_EQ(values["vgate_flow_log_records_lost_total{cause=\"end_ring_full\"}"], 3);
  EXPECT_EQ(values["vgate_flow_log_records_total{result=\"written\"}"], 9);
  EXPECT_EQ(values["vgate_packets_parsed_total{result=\"ok\"}"], 270);
  EXPECT_DOUBLE_EQ(values["vgate_lane_busy_time_seconds_total"], 0.75);
  EXPECT_DOUBLE_EQ(values["vgate_fastpath_map_pressure{map=\"vgate_fp_flows\"}"], 0.25);
  EXPECT_NEAR(values["vgate_record_ring_occupancy_ratio{worker=\"1\"}"], 2048.0 / 8191, 1e-9);
  EXPECT_EQ(values["vgate_build_info{version=\"1.2.3\"}"], 1);

  // More counted by the workers: the next scrape shows the new sums, and the busy ratio is since the last.
  snapshot_.workers[0].counters.packets += 50;
  snapshot_.workers[1].lane.busyTime += 900'000'000;
  snapshot_.workers[1].lane.idleTime += 100'000'000;
  values = samples(scrape());
  EXPECT_EQ(values["vgate_packets_total{path=\"slow\"}"], 350);
  EXPECT_DOUBLE_EQ(values["vgate_worker_busy_ratio{worker=\"1\"}"], 0.9);
  EXPECT_DOUBLE_EQ(values["vgate_worker_busy_ratio{worker=\"0\"}"], 0);  // nothing since the last scrape
}

TEST_F(Collector, EveryMetricHasItsTypeLine) {
  std::string text = scrape();
  for (const MetricSpec& spec : metricCatalog()) {
    std::string line = "# TYPE " + spec.name + " " + std::string(metricTypeName(spec.type)) + "\n";
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST_F(Collector, FlowRecordsGiveLabelledSeries) {
  policy::Policy policy;
  policy.name = "p";
  policy::Rule sni;
  sni.name = "deny-sni";
  sni.tls.sni = {"*.bank.example"};
  policy::Rule port;
  port.name = "deny-23";
  policy.rules = {sni, port};
  flows_.setPolicy(policy, 1);
  flows_.policyApplied(true, 0.02);

  FlowEndRecord allowed = endRecord(VerdictAction::kAllow, 1, 1);
  allowed.policyVersion = 1;
  flows_.observeEnd(allowed);
  FlowEndRecord tls = endRecord(VerdictAction::kDeny, 2, 1);
  tls.policyVersion = 1;
  tls.ruleId = 0;
  tls.appProto = AppProto::kQuic;
  tls.protocol = IPPROTO_UDP;
  flows_.observeEnd(tls);
  flows_.countRequest("status", 0);
  flows_.countRequest("attach", EINVAL);

  auto values = samples(scrape());
  EXPECT_EQ(values["vgate_flows_processed_total{verdict=\"allow\",protocol=\"tcp\"}"], 1);
  EXPECT_EQ(values["vgate_flows_processed_total{verdict=\"deny\",protocol=\"udp\"}"], 1);
  EXPECT_EQ(values["vgate_flows_ended_total{reason=\"fin\"}"], 2);
  EXPECT_EQ(values["vgate_flows_ended_total{reason=\"timeout\"}"], 0);
  EXPECT_EQ(values["vgate_policy_verdicts_total{direction=\"egress\",match=\"l3-l4\",action=\"allow\",rule="
                   "\"(default)\"}"],
            1);
  EXPECT_EQ(values["vgate_policy_verdicts_total{direction=\"ingress\",match=\"quic\",action=\"deny\",rule="
                   "\"deny-sni\"}"],
            1);
  // Egress flow: its client-to-server packets were sent by the container; ingress: the other way round.
  EXPECT_EQ(values["vgate_container_packets_total{container=\"web\",direction=\"egress\",verdict=\"allow\"}"],
            4);
  EXPECT_EQ(
      values["vgate_container_packets_total{container=\"web\",direction=\"ingress\",verdict=\"allow\"}"], 3);
  EXPECT_EQ(values["vgate_container_bytes_total{container=\"web\",direction=\"egress\",verdict=\"deny\"}"],
            300);
  EXPECT_EQ(values["vgate_policy_info{name=\"p\",version=\"1\",mode=\"enforce\"}"], 1);
  EXPECT_EQ(values["vgate_policy_rules"], 2);
  EXPECT_EQ(values["vgate_policy_apply_total{result=\"success\"}"], 1);
  EXPECT_EQ(values["vgate_policy_compile_seconds_bucket{le=\"0.01\"}"], 0);
  EXPECT_EQ(values["vgate_policy_compile_seconds_bucket{le=\"0.025\"}"], 1);
  EXPECT_EQ(values["vgate_policy_compile_seconds_bucket{le=\"+Inf\"}"], 1);
  EXPECT_EQ(values["vgate_policy_compile_seconds_count"], 1);
  EXPECT_EQ(values["vgate_control_requests_total{verb=\"status\",status=\"OK\"}"], 1);
  EXPECT_EQ(values["vgate_control_requests_total{verb=\"attach\",status=\"EINVAL\"}"], 1);
}

TEST_F(Collector, ContainerSeriesGoAMinuteAfterTheirPort) {
  flows_.observeEnd(endRecord(VerdictAction::kAllow, 1, 1));
  auto now = FlowMetrics::Clock::now();
  const std::string series =
      "vgate_container_packets_total{container=\"web\",direction=\"egress\",verdict=\"allow\"}";
  flows_.retirePorts({}, now);  // detached
  EXPECT_EQ(flows_.view().containerPackets.size(), 2u);
  flows_.retirePorts({}, now + std::chrono::seconds(59));
  EXPECT_EQ(flows_.view().containerPackets.size(), 2u);
  flows_.retirePorts({}, now + std::chrono::seconds(60));
  EXPECT_TRUE(flows_.view().containerPackets.empty());
  snapshot_.attachedPorts.clear();
  EXPECT_EQ(samples(scrape()).count(series), 0u);
}

TEST_F(Collector, PortIdReusedByAnotherContainerStartsAfresh) {
  flows_.observeEnd(endRecord(VerdictAction::kAllow, 1, 1));
  flows_.setPortName(1, "api");
  flows_.observeEnd(endRecord(VerdictAction::kAllow, 1, 1));
  auto view = flows_.view();
  EXPECT_EQ(view.containerPackets.count({"web", "egress", "allow"}), 0u);
  EXPECT_EQ(view.containerPackets.at({"api", "egress", "allow"}), 4);
}

// Prometheus' own linter on the exposition, with every kind of series present.
TEST_F(Collector, PromtoolChecksClean) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs promtool (prometheus)";
  flows_.observeEnd(endRecord(VerdictAction::kAllow, 1, 1));
  flows_.policyApplied(true, 0.1);
  flows_.countRequest("status", 0);
  std::string path = ::testing::TempDir() + "/vgate-exposition-" + std::to_string(getpid()) + ".txt";
  std::ofstream(path) << scrape();
  std::string command = "promtool check metrics < " + path + " 2>&1";
  std::FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  int status = pclose(pipe);
  std::filesystem::remove(path);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << output;
}

}  // namespace
}  // namespace vgate::control::metrics
