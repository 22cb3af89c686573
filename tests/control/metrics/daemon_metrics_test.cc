// The daemon's metrics object end to end on a real socket: /metrics served by the exposer on loopback, the
// tee passing records on to the writer, control requests counted, and an address in use refused.
#include "control/metrics/daemon_metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace vgate::control::metrics {
namespace {

// A plain HTTP/1.0 GET on 127.0.0.1:port; the whole response.
std::string httpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return {};
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buffer[65536];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;)
    response.append(buffer, static_cast<size_t>(n));
  close(fd);
  return response;
}

struct CountingSink : RecordSink {
  void onMetadata(const FlowMetadataRecord&) override { ++metadata; }
  void onEnd(const FlowEndRecord& record) override { lastFlowId = record.flowId, ++ends; }
  int metadata = 0;
  int ends = 0;
  uint64_t lastFlowId = 0;
};

DataplaneSnapshot twoWorkers() {
  DataplaneSnapshot snapshot;
  snapshot.workers.resize(2);
  snapshot.workers[0].counters.packets = 5;
  snapshot.workers[1].id = 1;
  snapshot.workers[1].counters.packets = 6;
  return snapshot;
}

TEST(DaemonMetrics, ServesTheExpositionOnLoopback) {
  CountingSink writer;
  DaemonMetrics metrics(writer, "9.9.9");
  ASSERT_TRUE(metrics.serve("127.0.0.1:0", "/nonexistent", twoWorkers).ok());
  ASSERT_EQ(metrics.listeningPorts().size(), 1u);
  int port = metrics.listeningPorts()[0];

  FlowEndRecord record;
  record.flowId = 77;
  metrics.sink().onEnd(record);
  metrics.sink().onMetadata(FlowMetadataRecord{});
  EXPECT_EQ(writer.ends, 1);
  EXPECT_EQ(writer.metadata, 1);
  EXPECT_EQ(writer.lastFlowId, 77u);

  std::string response = httpGet(port, "/metrics");
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response;
  EXPECT_NE(response.find("vgate_packets_total{path=\"slow\"} 11"), std::string::npos) << response;
  EXPECT_NE(response.find("vgate_build_info{version=\"9.9.9\"} 1"), std::string::npos);
  EXPECT_NE(response.find("vgate_flows_processed_total{verdict=\"allow\",protocol=\"other\"} 1"),
            std::string::npos);
  // No fast path pinned there: no map pressure series, and no failure either.
  EXPECT_EQ(response.find("vgate_fastpath_map_pressure{"), std::string::npos);

  metrics.stop();
  EXPECT_EQ(httpGet(port, "/metrics"), "");  // nothing listens any more
}

TEST(DaemonMetrics, CountsControlRequestsByVerbAndStatus) {
  CountingSink writer;
  DaemonMetrics metrics(writer, "1");
  ControlHandlers handlers;
  handlers["status"] = [](const nlohmann::json&, const PeerCredentials&) { return ControlReply::success(); };
  handlers["attach"] = [](const nlohmann::json&, const PeerCredentials&) {
    return ControlReply::failure(ENOENT, "no such namespace");
  };
  metrics.countRequests(handlers);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(handlers["status"]({}, {}).ok());
  EXPECT_EQ(handlers["attach"]({}, {}).status, ENOENT);
  auto view = metrics.flows().view();
  EXPECT_EQ(view.controlRequests.at({"status", "OK"}), 3);
  EXPECT_EQ(view.controlRequests.at({"attach", "ENOENT"}), 1);
}

TEST(DaemonMetrics, AnAddressInUseIsAnError) {
  CountingSink writer;
  DaemonMetrics first(writer, "1");
  ASSERT_TRUE(first.serve("127.0.0.1:0", "", twoWorkers).ok());
  std::string taken = "127.0.0.1:" + std::to_string(first.listeningPorts()[0]);
  DaemonMetrics second(writer, "1");
  auto served = second.serve(taken, "", twoWorkers);
  ASSERT_FALSE(served.ok());
  EXPECT_NE(served.error().message.find(taken), std::string::npos) << served.error().message;
}

}  // namespace
}  // namespace vgate::control::metrics
