// vgated in front of real Docker containers on a user-defined bridge network, driven as a user drives it
// (vgated run, vgatectl attach/detach/status): TCP, UDP, ICMP, TLS with SNI and container <-> host traffic
// cross it and are logged with the containers' names; a policy denies by port and by SNI; a removed container
// is cleaned up; detach restores the container and its host veth exactly; jumbo frames pass. Needs root and
// Docker (tests/support/make-test-image.sh installs and starts it, and builds the offline image).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "support/docker_host.h"

namespace {

using Json = nlohmann::json;
using vgate::testing::Container;
using vgate::testing::DockerNetwork;
using vgate::testing::sh;
using vgate::testing::Shell;
using vgate::testing::trim;
using vgate::testing::waitFor;

// "1\n2\n...": a payload both sides can make, with busybox's seq in a container.
std::string sequencePayload(int count) {
  std::string text;
  for (int i = 1; i <= count; ++i) text += std::to_string(i) + "\n";
  return text;
}

// A one-connection TCP server on the host that keeps what it receives.
class HostSink {
 public:
  explicit HostSink(const std::string& address) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, address.c_str(), &local.sin_addr);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) == 0 && listen(fd_, 1) == 0;
    socklen_t length = sizeof(local);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
    port_ = ntohs(local.sin_port);
    thread_ = std::thread([this] {
      pollfd waiting{fd_, POLLIN, 0};
      if (poll(&waiting, 1, 20000) != 1) return;
      int connection = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection < 0) return;
      char buffer[65536];
      for (;;) {
        pollfd readable{connection, POLLIN, 0};
        if (poll(&readable, 1, 20000) != 1) break;
        ssize_t n = read(connection, buffer, sizeof(buffer));
        if (n <= 0) break;
        received_.append(buffer, static_cast<size_t>(n));
      }
      close(connection);
      done_ = true;
    });
  }
  ~HostSink() {
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  bool bound() const { return bound_; }
  int port() const { return port_; }
  // What arrived, once the peer closed (empty if it did not within `timeout`).
  std::string received(std::chrono::milliseconds timeout) {
    waitFor([&] { return done_.load(); }, timeout);
    if (thread_.joinable() && done_) thread_.join();
    return done_ ? received_ : std::string();
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  int port_ = 0;
  std::atomic<bool> done_{false};
  std::string received_;
  std::thread thread_;
};

// Sends `payload` from the host to address:port and closes.
bool sendFromHost(const std::string& address, int port, const std::string& payload) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.c_str(), &remote.sin_addr);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) == 0;
  for (size_t sent = 0; ok && sent < payload.size();) {
    ssize_t n = write(fd, payload.data() + sent, payload.size() - sent);
    ok = n > 0;
    if (ok) sent += static_cast<size_t>(n);
  }
  close(fd);
  return ok;
}

class DockerLive : public vgate::testing::DockerHostTest {
 protected:
  void waitListening(const Container& container, int port, const char* protocol = "t") {
    std::string command =
        "netstat -ln" + std::string(protocol) + " | grep -q ':" + std::to_string(port) + " '";
    ASSERT_TRUE(waitFor([&] { return exec(container, command).exitCode == 0; }, std::chrono::seconds(10)))
        << container.name << " does not listen on " << port;
  }

  // A TCP server in `server` that writes what it receives to /tmp/recv-PORT (busybox nc exits on its
  // stdin's end, so the sleep keeps it open).
  void startSink(const Container& server, int port) {
    execDetached(server,
                 "sleep 60 | nc -l -p " + std::to_string(port) + " > /tmp/recv-" + std::to_string(port));
    waitListening(server, port);
  }

  // `bytes` random bytes from client to server:port over TCP; true when they arrived exactly.
  bool transfer(const Container& client, const Container& server, int port, int bytes) {
    startSink(server, port);
    std::string file = "/tmp/send-" + std::to_string(port);
    Shell sent =
        exec(client, "head -c " + std::to_string(bytes) + " /dev/urandom > " + file + " && nc -w 3 " +
                         server.ip4 + " " + std::to_string(port) + " < " + file + " && sha256sum < " + file);
    if (sent.exitCode != 0) return false;
    std::string want = sent.out.substr(0, 64);
    std::string check = "sha256sum < /tmp/recv-" + std::to_string(port);
    return waitFor([&] { return exec(server, check).out.substr(0, 64) == want; }, std::chrono::seconds(5));
  }

  // An HTTPS server (openssl s_server -www, the image's self-signed certificate) in `server` on `port`.
  void startTlsServer(const Container& server, int port) {
    execDetached(server, "sleep 600 | openssl s_server -quiet -www -accept " + std::to_string(port) +
                             " -cert /etc/vgate-test/cert.pem -key /etc/vgate-test/key.pem");
    waitListening(server, port);
  }
  Shell httpsGet(const Container& client, const std::string& sni, const Container& server, int port) {
    std::string target = sni + ":" + std::to_string(port);
    return exec(client,
                "curl -sk --max-time 4 --resolve " + target + ":" + server.ip4 + " https://" + target + "/");
  }

  Shell ping(const Container& from, const std::string& address, const std::string& extra = "") {
    return exec(from, "ping -c 3 -i 0.2 -W 2 " + extra + " " + address);
  }

  // The records of flows whose fields all equal `match`'s.
  std::vector<Json> recordsMatching(const std::vector<Json>& records, const Json& match) {
    std::vector<Json> found;
    for (const auto& record : records) {
      bool all = true;
      for (const auto& [key, value] : match.items())
        all = all && record.contains(key) && record[key] == value;
      if (all) found.push_back(record);
    }
    return found;
  }
  static std::set<std::string> containerNames(const std::vector<Json>& records) {
    std::set<std::string> names;
    for (const auto& record : records) {
      if (record.contains("container") && record["container"]["name"].is_string())
        names.insert(record["container"]["name"].get<std::string>());
    }
    return names;
  }
};

TEST_F(DockerLive, TcpUdpIcmpTlsAndHostTrafficCrossVgateAndAreLoggedByContainer) {
  DockerNetwork network = createNetwork("net");
  Container a = startContainer("a", network);
  Container b = startContainer("b", network);
  ASSERT_FALSE(HasFailure());
  // Docker's own FORWARD rules allow traffic within one user-defined network: the baseline works.
  ASSERT_EQ(ping(a, b.ip4).exitCode, 0) << "no traffic between containers before vgate";

  startVgated();
  attach(a);
  attach(b);
  ASSERT_EQ(status()["ports"].size(), 2u) << status().dump(2);

  Shell icmp = ping(a, b.ip4);
  EXPECT_EQ(icmp.exitCode, 0) << icmp.out;
  if (!b.ip6.empty()) {
    Shell icmp6 = exec(a, "ping6 -c 3 -i 0.2 -W 2 " + b.ip6);
    EXPECT_EQ(icmp6.exitCode, 0) << icmp6.out;
  }
  EXPECT_TRUE(transfer(a, b, 5001, 4000000)) << "4 MB over TCP did not arrive intact";

  execDetached(b, "iperf3 -s -1 -p 5201");
  waitListening(b, 5201);
  Shell udp = exec(a, "iperf3 -u -c " + b.ip4 + " -p 5201 -t 1 -b 20M -J");
  ASSERT_EQ(udp.exitCode, 0) << udp.out;
  Json udpResult = Json::parse(udp.out, nullptr, false);
  ASSERT_FALSE(udpResult.is_discarded()) << udp.out;
  int64_t datagrams = udpResult["end"]["sum"].value("packets", int64_t{0});
  int64_t lost = udpResult["end"]["sum"].value("lost_packets", int64_t{0});
  EXPECT_GT(datagrams, 100);
  EXPECT_LT(lost * 10, datagrams) << "more than 10% of UDP datagrams lost";

  startTlsServer(b, 8443);
  Shell tls = httpsGet(a, "shop.example", b, 8443);
  EXPECT_EQ(tls.exitCode, 0) << tls.out;
  EXPECT_NE(tls.out.find("s_server"), std::string::npos) << tls.out;

  // Container -> host (the network's gateway) and host -> container.
  const std::string payload = sequencePayload(50000);
  HostSink sink(network.gateway4);
  ASSERT_TRUE(sink.bound());
  Shell toHost = exec(a, "seq 1 50000 | nc -w 3 " + network.gateway4 + " " + std::to_string(sink.port()));
  EXPECT_EQ(toHost.exitCode, 0) << toHost.out;
  EXPECT_TRUE(sink.received(std::chrono::seconds(5)) == payload) << "container -> host payload differs";
  startSink(a, 5002);
  EXPECT_TRUE(sendFromHost(a.ip4, 5002, payload));
  EXPECT_TRUE(waitFor([&] { return exec(a, "cat /tmp/recv-5002").out == payload; }, std::chrono::seconds(5)))
      << "host -> container payload differs";

  Json counters = status();
  EXPECT_GT(counters["fastPath"]["hits"].get<uint64_t>(), 0u) << counters.dump(2);
  EXPECT_EQ(stopVgated(), 0);

  auto records = flowRecords();
  ASSERT_FALSE(records.empty()) << readText(dir_ / "vgated.log");
  // A flow between two attached containers crosses two ports: one record from each, named after its port's
  // container.
  auto expectFlow = [&](const std::string& what, const Json& match,
                        const std::set<std::string>& namesWanted) {
    auto found = recordsMatching(records, match);
    ASSERT_FALSE(found.empty()) << what << ": no record with " << match.dump();
    EXPECT_EQ(containerNames(found), namesWanted) << what << ": " << found.front().dump();
    for (const auto& record : found) EXPECT_EQ(record["verdict"]["action"], "allow") << record.dump();
  };
  const std::set<std::string> both{a.name, b.name};
  expectFlow("ping", {{"proto", "ICMP"}, {"src_ip", a.ip4}, {"dest_ip", b.ip4}}, both);
  if (!b.ip6.empty()) expectFlow("ping6", {{"proto", "IPv6-ICMP"}, {"dest_ip", b.ip6}}, both);
  expectFlow("tcp", {{"proto", "TCP"}, {"src_ip", a.ip4}, {"dest_ip", b.ip4}, {"dest_port", 5001}}, both);
  expectFlow("udp", {{"proto", "UDP"}, {"src_ip", a.ip4}, {"dest_ip", b.ip4}, {"dest_port", 5201}}, both);
  expectFlow("tls", {{"proto", "TCP"}, {"src_ip", a.ip4}, {"dest_ip", b.ip4}, {"dest_port", 8443}}, both);
  expectFlow("to host",
             {{"proto", "TCP"}, {"src_ip", a.ip4}, {"dest_ip", network.gateway4}, {"dest_port", sink.port()}},
             {a.name});
  expectFlow("from host",
             {{"proto", "TCP"}, {"src_ip", network.gateway4}, {"dest_ip", a.ip4}, {"dest_port", 5002}},
             {a.name});
  for (const auto& record : recordsMatching(records, {{"dest_port", 8443}})) {
    EXPECT_EQ(record.value("/tls/sni"_json_pointer, std::string()), "shop.example") << record.dump();
  }
  auto tcp = recordsMatching(records, {{"proto", "TCP"}, {"dest_port", 5001}});
  EXPECT_GE(tcp.front()["flow"]["bytes_toserver"].get<uint64_t>(), 4000000u) << tcp.front().dump();
}

TEST_F(DockerLive, PolicyDeniesByPortAndBySniAndNamesTheRule) {
  std::string policy = (dir_ / "policy.yaml").string();
  std::ofstream(policy) << R"(apiVersion: vgate.io/v1
kind: Policy
metadata: {name: docker-test}
spec:
  mode: enforce
  default: allow
  rules:
    - name: deny-port-2323
      action: deny
      match: {protocol: tcp, destination: {ports: [2323]}}
    - name: deny-bank-sni
      action: deny
      match: {protocol: tcp, tls: {sni: ["*.bank.example"]}}
)";
  DockerNetwork network = createNetwork("net", false);
  Container a = startContainer("a", network);
  Container b = startContainer("b", network);
  ASSERT_FALSE(HasFailure());
  startVgated(policy);
  attach(a);
  attach(b);

  startSink(b, 2323);
  Shell denied = exec(a, "echo secret | nc -w 2 " + b.ip4 + " 2323");
  EXPECT_NE(denied.exitCode, 0) << "a denied port connected: " << denied.out;
  EXPECT_TRUE(transfer(a, b, 2324, 100000)) << "a port next to the denied one must work";

  // s_server serves one connection at a time, and a denied handshake holds it until it gives up: the
  // allowed name goes first.
  startTlsServer(b, 8443);
  Shell shop = httpsGet(a, "shop.example", b, 8443);
  EXPECT_EQ(shop.exitCode, 0) << shop.out;
  Shell bank = httpsGet(a, "www.bank.example", b, 8443);
  EXPECT_NE(bank.exitCode, 0) << "TLS to a denied SNI succeeded: " << bank.out;
  EXPECT_EQ(ping(a, b.ip4).exitCode, 0);
  EXPECT_EQ(exec(b, "cat /tmp/recv-2323").out, "") << "the denied payload arrived";

  Json counters = status();
  EXPECT_EQ(stopVgated(), 0);
  auto records = flowRecords();
  auto port = recordsMatching(records, {{"dest_port", 2323}, {"dest_ip", b.ip4}});
  ASSERT_FALSE(port.empty()) << "no record of the denied port";
  for (const auto& record : port) {
    EXPECT_EQ(record["verdict"]["action"], "deny") << record.dump();
    EXPECT_EQ(record["verdict"]["rule"], "deny-port-2323") << record.dump();
    EXPECT_EQ(record["verdict"]["policy"], "docker-test") << record.dump();
  }
  bool bankLogged = false;
  bool shopLogged = false;
  for (const auto& record : recordsMatching(records, {{"dest_port", 8443}})) {
    std::string sni = record.value("/tls/sni"_json_pointer, std::string());
    if (sni == "www.bank.example") {
      bankLogged = true;
      EXPECT_EQ(record["verdict"]["action"], "deny") << record.dump();
      EXPECT_EQ(record["verdict"]["rule"], "deny-bank-sni") << record.dump();
    } else if (sni == "shop.example") {
      shopLogged = true;
      EXPECT_EQ(record["verdict"]["action"], "allow") << record.dump();
      EXPECT_TRUE(record["verdict"]["rule"].is_null()) << record.dump();
    }
  }
  EXPECT_TRUE(bankLogged) << "no record of the denied SNI";
  EXPECT_TRUE(shopLogged) << "no record of the allowed SNI";
  for (const auto& record : recordsMatching(records, {{"dest_port", 2324}}))
    EXPECT_EQ(record["verdict"]["action"], "allow") << record.dump();
  EXPECT_GT(counters["fastPath"]["denied"].get<uint64_t>() + counters["workers"][0]["denied"].get<uint64_t>(),
            0u)
      << counters.dump(2);
}

TEST_F(DockerLive, RemovedContainerIsCleanedUp) {
  DockerNetwork network = createNetwork("net", false);
  Container a = startContainer("a", network);
  Container b = startContainer("b", network);
  ASSERT_FALSE(HasFailure());
  startVgated();
  attach(a);
  attach(b);
  Json ports = status()["ports"];
  ASSERT_EQ(ports.size(), 2u);
  std::string inner;
  std::string outer;
  for (const auto& port : ports) {
    if (port["name"] == b.name) {
      inner = port["inner"].get<std::string>();
      outer = port["outer"].get<std::string>();
    }
  }
  ASSERT_FALSE(inner.empty() || outer.empty()) << ports.dump(2);
  EXPECT_EQ(ping(a, b.ip4).exitCode, 0);

  ASSERT_EQ(sh("docker rm -f " + b.name).exitCode, 0);
  EXPECT_TRUE(waitFor([&] { return status()["ports"].size() == 1u; }, std::chrono::seconds(5)))
      << status().dump(2);
  EXPECT_EQ(status()["ports"][0]["name"], a.name);
  Shell links = inVgateNetns("ip -br link");
  EXPECT_EQ(links.out.find(inner), std::string::npos) << links.out;
  EXPECT_EQ(links.out.find(outer), std::string::npos) << links.out;
  Shell orphan = sh("ip link show " + b.hostVeth);
  EXPECT_NE(orphan.exitCode, 0) << "the removed container's host veth is still there: " << orphan.out;
  EXPECT_EQ(ping(a, network.gateway4).exitCode, 0) << "the remaining container lost its traffic";
}

TEST_F(DockerLive, DetachRestoresContainerAndHostVethExactly) {
  DockerNetwork network = createNetwork("net");
  Container a = startContainer("a", network);
  Container b = startContainer("b", network);
  ASSERT_FALSE(HasFailure());
  auto containerView = [&] {
    return inNetns(a, "ip -d link show eth0; ip addr; ip route; ip -6 route; ethtool -k eth0").out;
  };
  // The bridge port's STP timers run on their own: everything else must match.
  auto hostView = [&] {
    return sh("ip -d link show " + a.hostVeth +
              " | sed -E 's/(hold|message_age|forward_delay)_timer +[0-9.]+//g'")
        .out;
  };
  std::string containerBefore = containerView();
  std::string hostBefore = hostView();

  startVgated();
  attach(a);
  EXPECT_EQ(ping(a, b.ip4).exitCode, 0);
  std::string hostAttached = hostView();
  EXPECT_NE(hostAttached.find("master " + network.bridge), std::string::npos)
      << "the new host end must sit on the bridge: " << hostAttached;
  detach(a);
  EXPECT_EQ(status()["ports"].size(), 0u);

  EXPECT_EQ(containerView(), containerBefore);
  EXPECT_EQ(hostView(), hostBefore);
  Shell inspect = sh("docker network inspect -f '{{range .Containers}}{{.Name}} {{end}}' " + network.name);
  EXPECT_NE(inspect.out.find(a.name), std::string::npos) << inspect.out;
  EXPECT_EQ(ping(a, b.ip4).exitCode, 0) << "no traffic after detach";
  EXPECT_TRUE(transfer(b, a, 5003, 100000));
  Shell links = inVgateNetns("ip -br link | grep -c '^vg[ei]-' || true");
  EXPECT_EQ(trim(links.out), "0") << inVgateNetns("ip -br link").out;
}

class DockerJumbo : public DockerLive {
 protected:
  void SetUp() override {
    DockerLive::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    network_ = createNetwork("jumbo", false, 9000);
    a_ = startContainer("a", network_);
    b_ = startContainer("b", network_);
    ASSERT_FALSE(HasFailure());
    ASSERT_NE(inNetns(a_, "ip link show eth0").out.find("mtu 9000"), std::string::npos);
    startVgated();
    attach(a_);
    attach(b_);
    ASSERT_NE(inNetns(a_, "ip link show eth0").out.find("mtu 9000"), std::string::npos);
  }
  DockerNetwork network_;
  Container a_;
  Container b_;
};

TEST_F(DockerJumbo, TcpBulkAndPingsLargerThan1500BytesCrossVgate) {
  EXPECT_EQ(ping(a_, b_.ip4).exitCode, 0);
  // Larger than a 1500 MTU allows, within what the slow path's trunks carry (~3.4 kB frames, DESIGN.md).
  for (const char* size : {"1600", "3000"}) {
    Shell big = ping(a_, b_.ip4, std::string("-s ") + size);
    EXPECT_EQ(big.exitCode, 0) << size << "-byte pings through vgate: " << big.out;
  }
  execDetached(b_, "iperf3 -s -1 -p 5201");
  waitListening(b_, 5201);
  Shell bulk = exec(a_, "iperf3 -c " + b_.ip4 + " -p 5201 -t 2 -J");
  ASSERT_EQ(bulk.exitCode, 0) << bulk.out;
  Json result = Json::parse(bulk.out, nullptr, false);
  ASSERT_FALSE(result.is_discarded());
  double bitsPerSecond = result["end"]["sum_received"].value("bits_per_second", 0.0);
  EXPECT_GT(bitsPerSecond, 1e8) << "jumbo TCP bulk crawled: " << bitsPerSecond / 1e6 << " Mbit/s";
  std::fprintf(stderr, "[ jumbo    ] TCP bulk through vgate at MTU 9000: %.2f Gbit/s\n", bitsPerSecond / 1e9);
}

// ICMP always takes the slow path, whose frames stop at ~3.4 kB: a larger echo is dropped by the fast path
// and counted as oversize, never lost silently (DESIGN.md, "Frame size").
TEST_F(DockerJumbo, PingsLargerThanTheSlowPathCarriesAreCountedAsOversize) {
  uint64_t before = status()["fastPath"].value("oversize", uint64_t{0});
  Shell big = ping(a_, b_.ip4, "-s 8000");
  EXPECT_NE(big.exitCode, 0) << "an 8 kB echo cannot cross the slow path: " << big.out;
  EXPECT_GT(status()["fastPath"].value("oversize", uint64_t{0}), before);
}

}  // namespace
