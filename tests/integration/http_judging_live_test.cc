// HTTP judged per request, live: a real HTTP/1.1 file server (python's http.server) in one container and a
// keep-alive client in another. On the plain bridge the client's second request for /admin/secret, and its
// encoded forms, are served; through vgated under a policy denying /admin/* they get nothing, and the flow
// log names the rule.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/live_node.h"

namespace {

using vgate::testing::Background;
using vgate::testing::LiveNode;
using vgate::testing::shOut;
using Json = nlohmann::json;

constexpr int kPort = 8080;

constexpr const char* kPolicy = R"(apiVersion: vgate.io/v1
kind: Policy
metadata:
  name: live-http
spec:
  mode: enforce
  default: allow
  rules:
    - name: deny-admin
      action: deny
      match:
        protocol: tcp
        destination: {ports: ["8080"]}
        http: {path: ["/admin/*"]}
)";

// One kept-alive connection from a fixed source port: each target in turn, every request written raw (no
// client-side path clean-up), each answer read by its Content-Length. Prints a JSON list with each
// answer's status code, or "timeout" / "closed". A target "smuggle:<path>" is a GET of / whose body is a
// GET of <path>: a server that leaves the body unread answers it as a second request, so two answers are
// read.
constexpr const char* kClient = R"PY(
import json, socket, sys
host, port, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = socket.socket(); c.settimeout(2)
c.bind(('', sport)); c.connect((host, port))
buffered = b''

def request(target):
    return 'GET %s HTTP/1.1\r\nHost: web.example\r\n' % target

def answer():
    global buffered
    while b'\r\n\r\n' not in buffered:
        d = c.recv(65536)
        if not d: raise EOFError()
        buffered += d
    head, buffered = buffered.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(':')
        if name.strip().lower() == 'content-length': length = int(value)
    while len(buffered) < length:
        d = c.recv(65536)
        if not d: raise EOFError()
        buffered += d
    buffered = buffered[length:]
    return int(lines[0].split()[1])

results = []
for target in sys.argv[4:]:
    answers = 1
    if target.startswith('smuggle:'):
        body = request(target[8:]) + '\r\n'
        data = request('/') + 'Content-Length: %d\r\n\r\n' % len(body) + body
        answers = 2
    else:
        data = request(target) + '\r\n'
    try:
        c.sendall(data.encode())
        for _ in range(answers): results.append(answer())
    except socket.timeout:
        results.append('timeout'); break
    except (EOFError, ConnectionError):
        results.append('closed'); break
print(json.dumps(results))
)PY";

class HttpJudgingLive : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = LiveNode::missingPrerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    node_ = std::make_unique<LiveNode>();
    ASSERT_TRUE(node_->create());
    ASSERT_TRUE(node_->addContainer(1));  // the client
    ASSERT_TRUE(node_->addContainer(2));  // the server
    const std::filesystem::path www = node_->dir() / "www";
    std::filesystem::create_directories(www / "admin");
    std::ofstream(www / "index.html") << "index\n";
    std::ofstream(www / "admin" / "secret") << "the secret\n";
    std::ofstream(node_->dir() / "client.py") << kClient;
    server_ = Background(node_->in(2, "/usr/bin/python3 -m http.server -p HTTP/1.1 -b 0.0.0.0 -d " +
                                          www.string() + " " + std::to_string(kPort)),
                         (node_->dir() / "server.log").string());
    for (int i = 0; i < 100; ++i) {
      if (shOut(node_->in(2, "ss -Hltn 'sport = :8080'")).out.find(":8080") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the HTTP server did not listen";
  }
  void TearDown() override {
    server_ = Background();
    if (node_ && HasFailure()) std::fprintf(stderr, "vgated log:\n%s\n", node_->vgatedLog().c_str());
    node_.reset();
  }

  // The statuses of one kept-alive connection's requests, from source port `sport`.
  Json requests(int sport, const std::vector<std::string>& targets) {
    std::string command =
        "timeout 20 " +
        node_->in(1, "/usr/bin/python3 " + (node_->dir() / "client.py").string() + " " + LiveNode::v4(2) +
                         " " + std::to_string(kPort) + " " + std::to_string(sport));
    for (const std::string& target : targets) command += " '" + target + "'";
    auto result = shOut(command);
    auto json = Json::parse(result.out, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << command << ": " << result.out;
    return json;
  }

  std::unique_ptr<LiveNode> node_;
  Background server_;
};

const std::vector<std::string> kDeniedForms = {"/admin/secret", "/%61dmin/secret", "/admin/../admin/secret",
                                               "//admin/secret", "/./admin/secret"};

TEST_F(HttpJudgingLive, ASecondRequestOnAKeptAliveConnectionIsJudged) {
  // Without vgate the attack works: after an allowed first request, the same connection gets the secret,
  // in every spelling.
  for (size_t i = 0; i < kDeniedForms.size(); ++i) {
    EXPECT_EQ(requests(41000 + static_cast<int>(i), {"/", kDeniedForms[i]}), Json::parse("[200, 200]"))
        << "plain bridge: " << kDeniedForms[i];
  }

  std::string policy = (node_->dir() / "policy.yaml").string();
  std::ofstream(policy) << kPolicy;
  ASSERT_TRUE(node_->startVgated("--policy " + policy));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  // Keep-alive through vgate works for what the policy allows.
  EXPECT_EQ(requests(42000, {"/", "/index.html", "/"}), Json::parse("[200, 200, 200]"));
  for (size_t i = 0; i < kDeniedForms.size(); ++i) {
    EXPECT_EQ(requests(42001 + static_cast<int>(i), {"/", kDeniedForms[i]}),
              Json::parse("[200, \"timeout\"]"))
        << "through vgate: " << kDeniedForms[i];
  }
  // The first request denied as before.
  EXPECT_EQ(requests(42100, {"/admin/secret"}), Json::parse("[\"timeout\"]"));

  Json status = node_->status();
  uint64_t judged = 0, midConnection = 0;
  for (const Json& worker : status.value("workers", Json::array())) {
    judged += worker["inspection"].value("httpRequestsJudged", uint64_t{0});
    midConnection += worker["inspection"].value("httpDeniedMidConnection", uint64_t{0});
  }
  EXPECT_EQ(midConnection, kDeniedForms.size()) << status.dump();
  EXPECT_GE(judged, 3 + 2 * kDeniedForms.size()) << status.dump();
  ASSERT_EQ(node_->stopVgated(), 0);

  // The client's pair denied each connection at its second request; the record keeps the first request.
  auto log = node_->flowLog();
  auto recordAtClient = [&](int sport) -> Json {
    for (const Json& record : log) {
      if (record.value("src_port", 0) == sport && record.contains("container") &&
          record["container"]["name"] == "c1")
        return record;
    }
    return Json();
  };
  Json allowed = recordAtClient(42000);
  ASSERT_FALSE(allowed.is_null()) << "flow 42000 not logged";
  EXPECT_EQ(allowed["verdict"]["action"], "allow") << allowed.dump();
  for (size_t i = 0; i < kDeniedForms.size(); ++i) {
    Json record = recordAtClient(42001 + static_cast<int>(i));
    ASSERT_FALSE(record.is_null()) << kDeniedForms[i] << " not logged";
    EXPECT_EQ(record["verdict"]["action"], "deny") << record.dump();
    EXPECT_EQ(record["verdict"]["rule"], "deny-admin") << record.dump();
    EXPECT_EQ(record["http"].value("url", ""), "/") << record.dump();
  }
  Json first = recordAtClient(42100);
  ASSERT_FALSE(first.is_null());
  EXPECT_EQ(first["verdict"]["rule"], "deny-admin") << first.dump();
}

// What vgate cannot judge safely is refused: an escaped slash (python's server decodes it into a path
// separator), and a body that python's server, which does not read a GET's body, takes for a request.
TEST_F(HttpJudgingLive, AnEscapedSlashAndASmuggledBodyAreRefused) {
  EXPECT_EQ(requests(43000, {"/", "/admin%2Fsecret"}), Json::parse("[200, 200]")) << "plain bridge";
  EXPECT_EQ(requests(43001, {"smuggle:/admin/secret"}), Json::parse("[200, 200]")) << "plain bridge";

  std::string policy = (node_->dir() / "policy.yaml").string();
  std::ofstream(policy) << kPolicy;
  ASSERT_TRUE(node_->startVgated("--policy " + policy));
  ASSERT_TRUE(node_->attach(1));
  ASSERT_TRUE(node_->attach(2));
  EXPECT_EQ(requests(44000, {"/", "/admin%2Fsecret"}), Json::parse("[200, \"timeout\"]"));
  EXPECT_EQ(requests(44001, {"/", "smuggle:/admin/secret"}), Json::parse("[200, \"timeout\"]"));
  Json status = node_->status();
  uint64_t normalization = 0, framing = 0;
  for (const Json& worker : status.value("workers", Json::array())) {
    normalization += worker["inspection"].value("httpNormalizationRefused", uint64_t{0});
    framing += worker["inspection"].value("httpFramingUnparseable", uint64_t{0});
  }
  EXPECT_EQ(normalization, 1u) << status.dump();
  EXPECT_EQ(framing, 1u) << status.dump();
  ASSERT_EQ(node_->stopVgated(), 0);
  for (int sport : {44000, 44001}) {
    bool seen = false;
    for (const Json& record : node_->flowLog()) {
      if (record.value("src_port", 0) != sport || record["container"]["name"] != "c1") continue;
      seen = true;
      // Denied by vgate's refusal, which is no rule of the policy.
      EXPECT_EQ(record["verdict"]["action"], "deny") << record.dump();
      EXPECT_NE(record["verdict"]["rule"], "deny-admin") << record.dump();
    }
    EXPECT_TRUE(seen) << sport << " not logged at c1";
  }
}

}  // namespace
