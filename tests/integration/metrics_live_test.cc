// vgated's Prometheus metrics end to end: vgated serving --metrics-address on the loopback of a throwaway
// node netns, two containers rewired through it with real traffic (allowed and denied TCP, UDP, ping, TLS),
// a real Prometheus (Debian's) scraping it every second from the same netns, then every query of every
// Grafana dashboard panel (docker/grafana/dashboards/*.json) run through Prometheus' HTTP API: each must
// return data. `promtool check metrics` must find nothing to say about the exposition.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/live_node.h"

namespace {

using vgate::testing::Background;
using vgate::testing::fileText;
using vgate::testing::LiveNode;
using vgate::testing::shOut;
using Json = nlohmann::json;

constexpr int kMetricsPort = 19477;
constexpr int kPrometheusPort = 19090;
// Prometheus scrapes every second; Grafana's $__rate_interval would be four scrapes at least.
constexpr const char* kRateInterval = "5s";

constexpr const char* kPolicy = R"(apiVersion: vgate.io/v1
kind: Policy
metadata:
  name: metrics-live
spec:
  mode: enforce
  default: allow
  rules:
    - name: deny-port-7005
      action: deny
      match:
        protocol: tcp
        destination: {ports: ["7005"]}
    - name: deny-bank-tls
      action: deny
      match:
        protocol: tcp
        tls:
          sni: ["*.bank.example"]
)";

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string dashboardsDir() { return std::string(VGATE_TEST_DATA_DIR) + "/../../docker/grafana/dashboards"; }

struct PanelQuery {
  std::string dashboard;
  std::string panel;
  std::string expr;
};

// Every target of every panel of every dashboard file.
std::vector<PanelQuery> panelQueries(std::vector<Json>* boards = nullptr) {
  std::vector<PanelQuery> queries;
  for (const auto& entry : std::filesystem::directory_iterator(dashboardsDir())) {
    if (entry.path().extension() != ".json") continue;
    Json board = Json::parse(fileText(entry.path()));
    if (boards != nullptr) boards->push_back(board);
    for (const Json& panel : board["panels"]) {
      for (const Json& target : panel.value("targets", Json::array())) {
        queries.push_back(
            {entry.path().filename().string(), panel.value("title", ""), target.value("expr", "")});
      }
    }
  }
  return queries;
}

// A panel query as Grafana would send it with every variable at "All".
std::string substitute(std::string expr) {
  expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval)"), kRateInterval);
  return std::regex_replace(expr, std::regex(R"(\$(instance|container|worker)\b)"), ".*");
}

// The dashboards' conventions, checked without any server.
TEST(Dashboards, UseADatasourceVariableAndRateInterval) {
  std::vector<Json> boards;
  auto queries = panelQueries(&boards);
  ASSERT_EQ(boards.size(), 4u);
  ASSERT_GT(queries.size(), 30u);
  for (const Json& board : boards) {
    EXPECT_FALSE(board.contains("__inputs")) << board["title"];
    bool datasourceVariable = false;
    for (const Json& variable : board["templating"]["list"]) {
      if (variable["type"] == "datasource" && variable["query"] == "prometheus") datasourceVariable = true;
    }
    EXPECT_TRUE(datasourceVariable) << board["title"];
    EXPECT_EQ(board.dump().find("DS_PROMETHEUS"), std::string::npos) << board["title"];
  }
  std::regex rangeFunction(R"((rate|irate|increase|delta|deriv|_over_time)\([^\[]*\[([^\]]*)\])");
  for (const PanelQuery& query : queries) {
    EXPECT_FALSE(query.expr.empty()) << query.dashboard << " / " << query.panel;
    for (std::sregex_iterator it(query.expr.begin(), query.expr.end(), rangeFunction), end; it != end; ++it) {
      EXPECT_EQ((*it)[2].str(), "$__rate_interval")
          << query.dashboard << " / " << query.panel << ": " << query.expr;
    }
  }
}

// A bad --metrics-address stops vgated run before it touches anything (no root needed).
TEST(VgatedRun, RefusesABadMetricsAddress) {
  std::string vgated = std::string(VGATE_BINARY_DIR) + "/control/vgated";
  if (!std::filesystem::exists(vgated)) GTEST_SKIP() << "vgated not built";
  for (const char* address : {"9477", "localhost:", ":9477", "127.0.0.1:70000"}) {
    auto run = shOut(vgated + " run --state-dir /nonexistent/vgate --metrics-address '" + address + "'");
    EXPECT_EQ(run.exitCode, 2) << address << ": " << run.out;
    EXPECT_NE(run.out.find("--metrics-address must be HOST:PORT"), std::string::npos) << run.out;
  }
}

class MetricsLive : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = LiveNode::missingPrerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    for (const char* tool : {"prometheus", "promtool"}) {
      if (vgate::testing::sh(std::string("command -v ") + tool + " >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "needs " << tool << " (Debian package prometheus)";
    }
    node_ = std::make_unique<LiveNode>();
    ASSERT_TRUE(node_->create());
  }
  void TearDown() override {
    prometheus_ = Background();
    servers_.clear();
    if (node_ && HasFailure()) {
      std::fprintf(stderr, "vgated log:\n%s\n", node_->vgatedLog().c_str());
      std::fprintf(stderr, "prometheus log:\n%s\n", fileText(node_->dir() / "prometheus.log").c_str());
    }
    node_.reset();
  }

  void serve(int n, const std::string& command, int port, bool udp = false) {
    servers_.emplace_back(node_->in(n, command),
                          (node_->dir() / ("server-" + std::to_string(servers_.size()) + ".log")).string());
    std::string check = node_->in(
        n, std::string("ss -H") + (udp ? "lun" : "ltn") + " 'sport = :" + std::to_string(port) + "'");
    for (int i = 0; i < 100; ++i) {
      if (shOut(check).out.find(':' + std::to_string(port)) != std::string::npos) return;
      sleepMs(50);
    }
    ADD_FAILURE() << "server did not listen on " << port << ": " << command;
  }

  // Prometheus in the node's netns, on loopback, with its own config and storage in the test's directory.
  void startPrometheus() {
    std::filesystem::path config = node_->dir() / "prometheus.yml";
    std::ofstream(config) << "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
                             "scrape_configs:\n"
                             "  - job_name: vgate\n"
                             "    static_configs: [{targets: ['127.0.0.1:"
                          << kMetricsPort << "']}]\n";
    std::filesystem::create_directories(node_->dir() / "prometheus-data");
    prometheus_ =
        Background(node_->inNode("prometheus --config.file=" + config.string() +
                                 " --storage.tsdb.path=" + (node_->dir() / "prometheus-data").string() +
                                 " --web.listen-address=127.0.0.1:" + std::to_string(kPrometheusPort) +
                                 " --storage.tsdb.retention.time=1h"),
                   (node_->dir() / "prometheus.log").string());
  }

  // An instant query through Prometheus' HTTP API; the parsed reply (null when there was none).
  Json query(const std::string& promql) {
    std::filesystem::path file = node_->dir() / "query.txt";
    std::ofstream(file) << promql;
    auto reply =
        shOut(node_->inNode("curl -s -m 10 --get --data-urlencode query@" + file.string() +
                            " http://127.0.0.1:" + std::to_string(kPrometheusPort) + "/api/v1/query"));
    auto json = Json::parse(reply.out, nullptr, false);
    return json.is_discarded() ? Json() : json;
  }
  static size_t resultCount(const Json& reply) {
    if (!reply.is_object() || reply.value("status", "") != "success") return 0;
    return reply["data"]["result"].size();
  }
  double value(const std::string& promql) {
    Json reply = query(promql);
    if (resultCount(reply) == 0) return -1;
    return std::stod(reply["data"]["result"][0]["value"][1].get<std::string>());
  }
  // Waits until `promql` has a result with a value of at least `atLeast`.
  bool waitFor(const std::string& promql, double atLeast, int seconds) {
    for (int i = 0; i < seconds * 2; ++i) {
      if (value(promql) >= atLeast) return true;
      sleepMs(500);
    }
    return false;
  }

  std::unique_ptr<LiveNode> node_;
  std::vector<Background> servers_;
  Background prometheus_;
};

TEST_F(MetricsLive, EveryDashboardPanelHasDataFromARealPrometheus) {
  ASSERT_TRUE(node_->addContainer(1));
  ASSERT_TRUE(node_->addContainer(2));
  std::string policyPath = (node_->dir() / "policy.yaml").string();
  std::ofstream(policyPath) << kPolicy;
  ASSERT_TRUE(node_->startVgated("--policy " + policyPath +
                                 " --metrics-address 127.0.0.1:" + std::to_string(kMetricsPort)));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  startPrometheus();
  ASSERT_TRUE(waitFor("up{job=\"vgate\"}", 1, 60)) << "Prometheus never scraped vgated";

  std::string tool = "/usr/bin/python3 " + node_->toolPath();
  serve(2, tool + " serve-tcp 7001", 7001);
  serve(2, tool + " serve-tcp 7005", 7005);
  serve(2, tool + " serve-udp 7002", 7002, true);
  for (int sport : {41001, 41002, 41003}) {
    auto tcp = shOut("timeout 30 " + node_->tool(1, "send-tcp " + LiveNode::v4(2) + " 7001 " +
                                                        std::to_string(sport) + " 200000 seed 5"));
    EXPECT_EQ(tcp.exitCode, 0) << tcp.out;
  }
  auto denied =
      shOut("timeout 30 " + node_->tool(1, "send-tcp " + LiveNode::v4(2) + " 7005 41005 1000 seed 2"));
  EXPECT_NE(denied.exitCode, 0) << "port 7005 is denied: " << denied.out;
  auto udp = shOut("timeout 20 " + node_->tool(1, "send-udp " + LiveNode::v4(2) + " 7002 41011 5"));
  EXPECT_EQ(udp.exitCode, 0) << udp.out;
  auto ping = shOut(node_->in(1, "ping -c 3 -i 0.2 -W 2 " + LiveNode::v4(2)));
  EXPECT_EQ(ping.exitCode, 0) << ping.out;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(node_->ctl("status").exitCode, 0);

  // Closed TCP flows end 10 s after their FIN; the denied one when its SYNs time out (30 s).
  EXPECT_TRUE(waitFor("sum(vgate_container_packets_total{container=\"c1\",direction=\"egress\"})", 1, 60));
  EXPECT_TRUE(waitFor("sum(vgate_flows_processed_total{verdict=\"deny\",protocol=\"tcp\"})", 1, 90));
  EXPECT_TRUE(waitFor("sum(vgate_policy_verdicts_total{rule=\"deny-port-7005\",action=\"deny\"})", 1, 10));
  EXPECT_TRUE(waitFor("sum(vgate_container_packets_total{container=\"c2\",direction=\"ingress\"})", 1, 10));
  EXPECT_GE(value("vgate_policy_info{name=\"metrics-live\",version=\"1\",mode=\"enforce\"}"), 1);
  EXPECT_GE(value("vgate_policy_rules"), 2);
  EXPECT_GE(value("sum(vgate_control_requests_total{verb=\"status\",status=\"OK\"})"), 3);
  EXPECT_GE(value("sum(vgate_packets_total{path=\"slow\"})"), 10);
  EXPECT_GE(value("vgate_fastpath_map_pressure{map=\"vgate_fp_ports\"}"), 0);
  sleepMs(6000);  // series that appeared last need a few scrapes in the rate window

  auto queries = panelQueries();
  ASSERT_GT(queries.size(), 30u);
  for (const PanelQuery& panel : queries) {
    std::string promql = substitute(panel.expr);
    Json reply = query(promql);
    EXPECT_GT(resultCount(reply), 0u)
        << panel.dashboard << " / " << panel.panel << ": " << promql << " -> " << reply.dump();
  }
  // The dashboards' variables (label_values(metric, label)) have values.
  for (const auto& entry : std::filesystem::directory_iterator(dashboardsDir())) {
    if (entry.path().extension() != ".json") continue;
    Json board = Json::parse(fileText(entry.path()));
    for (const Json& variable : board["templating"]["list"]) {
      if (variable["type"] != "query") continue;
      std::smatch parts;
      std::string definition = variable["definition"];
      ASSERT_TRUE(std::regex_match(definition, parts, std::regex(R"(label_values\((.*), (\w+)\))")));
      Json reply = query("count by (" + parts[2].str() + ") (" + substitute(parts[1].str()) + ")");
      EXPECT_GT(resultCount(reply), 0u) << entry.path().filename() << " variable " << variable["name"];
    }
  }

  // Prometheus' linter on what vgated serves.
  std::string exposition = (node_->dir() / "exposition.txt").string();
  auto scraped = shOut(node_->inNode("curl -sf -o " + exposition +
                                     " http://127.0.0.1:" + std::to_string(kMetricsPort) + "/metrics"));
  ASSERT_EQ(scraped.exitCode, 0) << scraped.out;
  EXPECT_NE(fileText(exposition).find("vgate_container_bytes_total{container=\"c1\""), std::string::npos);
  auto lint = shOut("promtool check metrics < " + exposition);
  EXPECT_EQ(lint.exitCode, 0) << lint.out;
  EXPECT_EQ(lint.out, "") << lint.out;
}

// --metrics-address off serves nothing; the default is 127.0.0.1:9477.
TEST_F(MetricsLive, DefaultAddressAndOff) {
  ASSERT_TRUE(node_->startVgated());
  auto scrape = shOut(node_->inNode("curl -sf http://127.0.0.1:9477/metrics"));
  EXPECT_EQ(scrape.exitCode, 0) << scrape.out;
  EXPECT_NE(scrape.out.find("vgate_build_info{version="), std::string::npos);
  ASSERT_EQ(node_->stopVgated(), 0);
  ASSERT_TRUE(node_->startVgated("--metrics-address off"));
  EXPECT_NE(shOut(node_->inNode("curl -sf http://127.0.0.1:9477/metrics")).exitCode, 0);
  EXPECT_NE(node_->vgatedLog().find("running"), std::string::npos);
}

}  // namespace
