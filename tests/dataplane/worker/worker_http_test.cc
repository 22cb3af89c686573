// Tests for HTTP judged per request in the worker, on hand-built TCP connections: a kept-alive connection's
// second request denied, its encoded forms, pipelined, split and body-framed requests, the refusals, and
// segments that arrive ahead of a hole.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/verdict/compiled_policy.h"
#include "dataplane/verdict/policy_registry.h"
#include "dataplane/worker/worker.h"
#include "support/byte_builder.h"
#include "support/eal_environment.h"

namespace vgate::dataplane {
namespace {

using vgate::testing::Builder;
using vgate::testing::Bytes;

constexpr uint8_t kSyn = 0x02;
constexpr uint8_t kAck = 0x10;
constexpr uint8_t kPshAck = 0x18;
constexpr uint8_t kSynAck = 0x12;
constexpr unsigned kMbufs = 511;

Bytes ipv4Frame(uint32_t src, uint32_t dst, const Bytes& l4) {
  Builder b;
  b.u16(0x0200).u32(1).u16(0x0200).u32(2).u16(0x0800);
  b.u8(0x45).u8(0).u16(static_cast<uint32_t>(20 + l4.size())).u16(0).u16(0).u8(64).u8(IPPROTO_TCP).u16(0);
  b.u32(src).u32(dst);
  return b.add(l4).done();
}

// One TCP connection, its sequence numbers kept as the conversation goes.
class Connection {
 public:
  Connection(uint16_t clientPort, uint16_t serverPort) : clientPort_(clientPort), serverPort_(serverPort) {}

  Bytes syn() { return toServer(kSyn, 1000, 0, {}); }
  Bytes synAck() { return toClient(kSynAck, 5000, 1001, {}); }
  Bytes ack() { return toServer(kAck, 1001, 5001, {}); }
  // The client's next segment, with `text` as its payload; advances the client's sequence number.
  Bytes send(const std::string& text) {
    Bytes frame = toServer(kPshAck, clientSeq_, serverSeq_, Bytes(text.begin(), text.end()));
    clientSeq_ += static_cast<uint32_t>(text.size());
    return frame;
  }
  // A segment `ahead` bytes past the client's next one (a hole before it); does not advance.
  Bytes sendAhead(uint32_t ahead, const std::string& text) const {
    return toServer(kPshAck, clientSeq_ + ahead, serverSeq_, Bytes(text.begin(), text.end()));
  }
  // A retransmission of the client's last `back` bytes, carrying `text` instead.
  Bytes resend(uint32_t back, const std::string& text) const {
    return toServer(kPshAck, clientSeq_ - back, serverSeq_, Bytes(text.begin(), text.end()));
  }
  Bytes reply(const std::string& text) {
    Bytes frame = toClient(kPshAck, serverSeq_, clientSeq_, Bytes(text.begin(), text.end()));
    serverSeq_ += static_cast<uint32_t>(text.size());
    return frame;
  }
  uint16_t clientPort() const { return clientPort_; }

 private:
  static Bytes segment(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
                       const Bytes& payload) {
    return Builder()
        .u16(sport)
        .u16(dport)
        .u32(seq)
        .u32(ack)
        .u8(5 << 4)
        .u8(flags)
        .u16(65535)
        .u32(0)
        .add(payload)
        .done();
  }
  Bytes toServer(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload) const {
    return ipv4Frame(0x0a010001, 0x0a020001, segment(clientPort_, serverPort_, flags, seq, ack, payload));
  }
  Bytes toClient(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload) const {
    return ipv4Frame(0x0a020001, 0x0a010001, segment(serverPort_, clientPort_, flags, seq, ack, payload));
  }

  uint16_t clientPort_;
  uint16_t serverPort_;
  uint32_t clientSeq_ = 1001;
  uint32_t serverSeq_ = 5001;
};

std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: web.example\r\n\r\n";
}
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

class Records : public RecordSink {
 public:
  void onMetadata(const FlowMetadataRecord& metadata) override { metadata_.push_back(metadata); }
  void onEnd(const FlowEndRecord& record) override { ends_.push_back(record); }
  const FlowEndRecord* endOf(uint16_t clientPort) const {
    for (const FlowEndRecord& record : ends_) {
      if (record.srcPort == clientPort) return &record;
    }
    return nullptr;
  }
  const FlowMetadataRecord* metadataOf(uint64_t flowId) const {
    for (const FlowMetadataRecord& m : metadata_) {
      if (m.flowId == flowId) return &m;
    }
    return nullptr;
  }

 private:
  std::vector<FlowEndRecord> ends_;
  std::vector<FlowMetadataRecord> metadata_;
};

// Rule 0 denies /admin/* on port 80; rule 1 allows port 80 by L3/L4 (so the flows are HTTP-judged: rule 0
// comes first); the default denies.
policy::Policy adminPolicy(PolicyMode mode = PolicyMode::kEnforce) {
  policy::Rule admin;
  admin.name = "deny-admin";
  admin.action = VerdictAction::kDeny;
  admin.protocol = policy::Protocol::kTcp;
  admin.destination.ports = {{80, 80}};
  admin.http.path = {"/admin/*"};
  policy::Rule web;
  web.name = "allow-web";
  web.action = VerdictAction::kAllow;
  web.protocol = policy::Protocol::kTcp;
  web.destination.ports = {{80, 81}};
  policy::Policy policy;
  policy.name = "http-test";
  policy.mode = mode;
  policy.defaultAction = VerdictAction::kDeny;
  policy.rules = {admin, web};
  return policy;
}

class WorkerHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mbufs_ = rte_pktmbuf_pool_create("wht_mbufs", kMbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(mbufs_, nullptr);
    auto pools = RecordPools::create("wht_rec", 1, {1024, 1024, 256, 0, 0}, SOCKET_ID_ANY);
    ASSERT_TRUE(pools.ok()) << pools.error().message;
    pools_ = std::move(pools).value();
  }

  void TearDown() override {
    worker_.reset();
    registry_.reset();
    if (pools_) pools_->drain(records_);
    pools_.reset();
    if (mbufs_ != nullptr) {
      EXPECT_EQ(rte_mempool_avail_count(mbufs_), kMbufs) << "mbufs leaked";
      rte_mempool_free(mbufs_);
    }
  }

  void start(const policy::Policy& policy, uint32_t inspectionSlots = 16) {
    auto registry = PolicyRegistry::create(1);
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    registry_ = std::move(registry).value();
    auto compiled = CompiledPolicy::compile(policy, 1, CompileOptions{}, 1);
    ASSERT_TRUE(compiled.ok()) << compiled.error().message;
    registry_->publish(std::move(compiled).value());
    WorkerConfig config;
    config.flowCapacity = 1024;
    config.inspectionSlots = inspectionSlots;
    config.fragmentFlows = 64;
    config.verifyChecksums = false;  // the frames here leave TCP checksums at zero
    config.records = pools_->channel(0);
    config.losslessRecords = true;
    config.policies = registry_.get();
    auto worker = Worker::create(config);
    ASSERT_TRUE(worker.ok()) << worker.error().message;
    worker_ = std::move(worker).value();
  }

  std::vector<Bytes> send(const std::vector<Bytes>& frames) {
    rte_mbuf* burst[kBurstSize];
    uint16_t count = 0;
    for (const Bytes& frame : frames) {
      rte_mbuf* mbuf = rte_pktmbuf_alloc(mbufs_);
      EXPECT_NE(mbuf, nullptr);
      if (mbuf == nullptr) break;
      std::memcpy(rte_pktmbuf_append(mbuf, static_cast<uint16_t>(frame.size())), frame.data(), frame.size());
      burst[count++] = mbuf;
    }
    nowUs_ += 1000;
    uint16_t kept = worker_->processBurst(burst, count, nowUs_);
    std::vector<Bytes> forwarded;
    for (uint16_t i = 0; i < kept; ++i) {
      Bytes bytes(burst[i]->pkt_len);
      const auto* data =
          static_cast<const uint8_t*>(rte_pktmbuf_read(burst[i], 0, bytes.size(), bytes.data()));
      if (data != bytes.data()) std::memcpy(bytes.data(), data, bytes.size());
      forwarded.push_back(std::move(bytes));
    }
    rte_pktmbuf_free_bulk(burst, kept);
    return forwarded;
  }
  bool passes(const Bytes& frame) {
    std::vector<Bytes> forwarded = send({frame});
    return forwarded.size() == 1 && forwarded[0] == frame;
  }
  // Not forwarded: nothing leaves but the resets a deny sends (the server's connection ends with it).
  bool dropped(const Bytes& frame) {
    for (const Bytes& out : send({frame})) {
      if (out == frame || out.size() < 14 + 20 + 20) return false;
      const size_t l4 = out[12] == 0x86 ? 14 + 40 : 14 + static_cast<size_t>(out[14] & 0x0f) * 4;
      if (out.size() < l4 + 14 || !(out[l4 + 13] & 0x04)) return false;  // only a RST may leave
      ++resetsSeen_;
    }
    return true;
  }
  uint64_t resetsSeen_ = 0;

  // The handshake, then `first` as the first request and its answer: all of it passes.
  void open(Connection& connection, const std::string& first = get("/")) {
    EXPECT_TRUE(passes(connection.syn()));
    EXPECT_TRUE(passes(connection.synAck()));
    EXPECT_TRUE(passes(connection.ack()));
    EXPECT_TRUE(passes(connection.send(first)));
    EXPECT_TRUE(passes(connection.reply(kOk)));
  }

  const Records& finish() {
    worker_->flushAll(nowUs_, FlowEndReason::kEndOfInput);
    EXPECT_TRUE(pools_->drain(records_));
    return records_;
  }
  const InspectionCounters& inspection() const { return worker_->inspectionCounters(); }

  rte_mempool* mbufs_ = nullptr;
  std::unique_ptr<RecordPools> pools_;
  std::unique_ptr<PolicyRegistry> registry_;
  std::unique_ptr<Worker> worker_;
  Records records_;
  uint64_t nowUs_ = 1'700'000'000'000'000;
};

TEST_F(WorkerHttpTest, TheSecondRequestOfAKeptAliveConnectionIsJudgedAndDropped) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  Connection c(40000, 80);
  open(c);
  EXPECT_TRUE(passes(c.send(get("/index.html"))));
  EXPECT_TRUE(passes(c.reply(kOk)));
  EXPECT_EQ(inspection().httpRequestsJudged, 2u);
  // The denied request does not reach the server, and nothing after it does, either way.
  EXPECT_TRUE(dropped(c.send(get("/admin/secret"))));
  EXPECT_EQ(resetsSeen_, 1u) << "the server is reset: it must not hold the denied connection";
  EXPECT_TRUE(dropped(c.send(get("/"))));
  EXPECT_TRUE(dropped(c.reply(kOk)));
  EXPECT_EQ(inspection().httpRequestsJudged, 3u);
  EXPECT_EQ(inspection().httpDeniedMidConnection, 1u);
  EXPECT_EQ(worker_->counters().denied, 3u);

  const Records& records = finish();
  const FlowEndRecord* end = records.endOf(40000);
  ASSERT_NE(end, nullptr);
  EXPECT_EQ(end->action, VerdictAction::kDeny);
  EXPECT_EQ(end->ruleId, 0u);
  EXPECT_EQ(end->appProto, AppProto::kHttp);
  ASSERT_TRUE(end->hasMetadata);
  const FlowMetadataRecord* metadata = records.metadataOf(end->flowId);
  ASSERT_NE(metadata, nullptr);
  EXPECT_STREQ(metadata->http.url, "/");  // the first request, as before
  EXPECT_STREQ(metadata->http.hostname, "web.example");
  EXPECT_EQ(metadata->http.requests, 3u);
  EXPECT_EQ(metadata->http.deniedRequest, 3u);
  EXPECT_STREQ(metadata->http.deniedPath, "/admin/secret");
  EXPECT_EQ(metadata->http.refusal, HttpRefusal::kNone);
}

TEST_F(WorkerHttpTest, EncodedFormsOfTheDeniedPathAreDroppedToo) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  const std::vector<std::string> targets = {
      "/%61dmin/secret",     "/admin/../admin/secret",
      "//admin/secret",      "/./admin/secret",
      "/%2e/admin/%73ecret", "/public/%2E%2E/admin/secret",
      "/admin\\secret",      "http://web.example/admin/secret",
  };
  uint16_t port = 41000;
  for (const std::string& target : targets) {
    Connection c(port++, 80);
    open(c);
    EXPECT_TRUE(dropped(c.send(get(target)))) << target;
  }
  EXPECT_EQ(inspection().httpDeniedMidConnection, targets.size());
  const Records& records = finish();
  for (uint16_t p = 41000; p < port; ++p) {
    const FlowEndRecord* end = records.endOf(p);
    ASSERT_NE(end, nullptr);
    EXPECT_EQ(end->action, VerdictAction::kDeny) << targets[p - 41000];
    EXPECT_EQ(end->ruleId, 0u);
    const FlowMetadataRecord* metadata = records.metadataOf(end->flowId);
    ASSERT_NE(metadata, nullptr);
    EXPECT_STREQ(metadata->http.deniedPath, "/admin/secret") << targets[p - 41000];
  }
}

TEST_F(WorkerHttpTest, PipelinedAndSplitRequestsAreEachJudged) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  // Two requests in one segment: the segment carries a denied one, so it is dropped whole.
  Connection pipelined(42000, 80);
  open(pipelined);
  EXPECT_TRUE(dropped(pipelined.send(get("/a") + get("/admin/secret"))));
  // A request split across segments: the part before its head ends passes, the segment that completes it is
  // judged.
  Connection split(42001, 80);
  open(split);
  EXPECT_TRUE(passes(split.send("GET /adm")));
  EXPECT_TRUE(passes(split.send("in/secre")));
  EXPECT_TRUE(dropped(split.send("t HTTP/1.1\r\nHost: web.example\r\n\r\n")));
  // Allowed ones pipelined pass, and leading empty lines between requests are skipped.
  Connection allowed(42002, 80);
  open(allowed);
  EXPECT_TRUE(passes(allowed.send(get("/a") + "\r\n" + get("/b") + get("/c"))));
  EXPECT_EQ(inspection().httpRequestsJudged, 2u + 2u + 4u + 1u);
  const Records& records = finish();
  EXPECT_EQ(records.endOf(42000)->action, VerdictAction::kDeny);
  EXPECT_EQ(records.endOf(42001)->action, VerdictAction::kDeny);
  EXPECT_EQ(records.endOf(42002)->action, VerdictAction::kAllow);
  EXPECT_EQ(records.endOf(42002)->ruleId, 1u);
}

TEST_F(WorkerHttpTest, BodiesAreSkippedByTheirFramingAndTheNextRequestIsJudged) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  // A body that holds a denied request is a body: it passes; the request after it is judged.
  const std::string smuggled = "text=" + get("/admin/secret");
  Connection length(43000, 80);
  open(length, "POST /form HTTP/1.1\r\nHost: web.example\r\nContent-Length: " +
                   std::to_string(smuggled.size() + 10) + "\r\n\r\n" + smuggled.substr(0, 5));
  EXPECT_TRUE(passes(length.send(smuggled.substr(5))));
  // An honest retransmission of body bytes, which were never kept, is no conflict.
  EXPECT_TRUE(passes(length.resend(static_cast<uint32_t>(smuggled.size() - 5), smuggled.substr(5))));
  EXPECT_TRUE(passes(length.send("0123456789" + get("/ok"))));
  EXPECT_TRUE(dropped(length.send(get("/admin/x"))));

  Connection chunked(43001, 80);
  open(chunked, "POST /upload HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", smuggled.size());
  EXPECT_TRUE(passes(chunked.send("lo\r\n" + std::string(size) + "\r\n" + smuggled + "\r\n0\r\n")));
  EXPECT_TRUE(passes(chunked.send("\r\n" + get("/ok"))));
  EXPECT_TRUE(dropped(chunked.send(get("/admin/x"))));
  EXPECT_EQ(inspection().httpDeniedMidConnection, 2u);
  EXPECT_EQ(inspection().httpFramingUnparseable, 0u);
  const Records& records = finish();
  EXPECT_EQ(records.metadataOf(records.endOf(43000)->flowId)->http.deniedRequest, 3u);
  EXPECT_EQ(records.metadataOf(records.endOf(43001)->flowId)->http.deniedRequest, 3u);
}

TEST_F(WorkerHttpTest, RequestsThatCannotBeJudgedAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  struct Case {
    std::string request;
    HttpRefusal refusal;
    const char* deniedPath;
  };
  const std::vector<Case> cases = {
      {get("/admin%2Fsecret"), HttpRefusal::kTarget, ""},
      {get("/admin%00"), HttpRefusal::kTarget, ""},
      {get("/%zz"), HttpRefusal::kTarget, ""},
      {"POST /a HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: gzip\r\n\r\n", HttpRefusal::kFraming, "/a"},
      {"POST /a HTTP/1.1\r\nHost: w\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       HttpRefusal::kFraming, "/a"},
      {"GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
       HttpRefusal::kFraming, "/ws"},
      // A body that starts like a request: what a server that skips reading bodies takes for the next one.
      {"GET /a HTTP/1.1\r\nHost: w\r\nContent-Length: 49\r\n\r\n" + get("/admin/secret"),
       HttpRefusal::kFraming, "/a"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HttpRefusal::kMalformed, ""},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HttpRefusal::kMalformed, ""},
  };
  uint16_t port = 44000;
  for (const Case& c : cases) {
    Connection connection(port++, 80);
    open(connection);
    EXPECT_TRUE(dropped(connection.send(c.request))) << c.request;
  }
  // A first request that cannot be judged is refused as well: the flow never reaches the server with it.
  Connection first(port++, 80);
  EXPECT_TRUE(passes(first.syn()));
  EXPECT_TRUE(passes(first.synAck()));
  EXPECT_TRUE(passes(first.ack()));
  EXPECT_TRUE(dropped(first.send(get("/%2e%2e%2fadmin"))));
  EXPECT_EQ(inspection().httpNormalizationRefused, 4u);
  EXPECT_EQ(inspection().httpFramingUnparseable, 6u);
  EXPECT_EQ(inspection().httpDeniedMidConnection, cases.size());

  const Records& records = finish();
  for (size_t i = 0; i <= cases.size(); ++i) {
    const FlowEndRecord* end = records.endOf(static_cast<uint16_t>(44000 + i));
    ASSERT_NE(end, nullptr);
    EXPECT_EQ(end->action, VerdictAction::kDeny) << i;
    EXPECT_EQ(end->ruleId, kRuleHttpRefused) << i;
    const FlowMetadataRecord* metadata = records.metadataOf(end->flowId);
    ASSERT_NE(metadata, nullptr) << i;
    if (i == cases.size()) {
      EXPECT_EQ(metadata->http.refusal, HttpRefusal::kTarget);
      EXPECT_EQ(metadata->http.deniedRequest, 1u);
      continue;
    }
    EXPECT_EQ(metadata->http.refusal, cases[i].refusal) << cases[i].request;
    EXPECT_EQ(metadata->http.deniedRequest, 2u) << cases[i].request;
    EXPECT_STREQ(metadata->http.deniedPath, cases[i].deniedPath) << cases[i].request;
  }
}

TEST_F(WorkerHttpTest, SegmentsAheadOfAHoleAreDroppedUntilTheHoleFills) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  Connection c(45000, 80);
  open(c);
  const std::string request = get("/admin/secret");
  // The second half first: forwarded, the server could assemble a request this judge never read.
  EXPECT_TRUE(dropped(c.sendAhead(8, request.substr(8))));
  EXPECT_EQ(inspection().httpOutOfOrder, 1u);
  EXPECT_EQ(worker_->counters().verdictsAfterL7, 1u);  // the first request's: no new verdict
  EXPECT_TRUE(passes(c.send(request.substr(0, 8))));
  EXPECT_TRUE(dropped(c.send(request.substr(8))));  // the retransmission, now in order, is judged
  EXPECT_EQ(inspection().httpDeniedMidConnection, 1u);
  // A retransmission that changes bytes already read is refused.
  Connection changed(45001, 80);
  open(changed);
  EXPECT_TRUE(passes(changed.send("GET /pub")));
  EXPECT_TRUE(passes(changed.resend(8, "GET /pub")));  // an honest retransmission
  EXPECT_TRUE(dropped(changed.resend(8, "GET /adm")));
  const Records& records = finish();
  EXPECT_EQ(records.endOf(45000)->ruleId, 0u);
  const FlowEndRecord* conflict = records.endOf(45001);
  ASSERT_NE(conflict, nullptr);
  EXPECT_EQ(conflict->ruleId, kRuleHttpRefused);
  EXPECT_EQ(records.metadataOf(conflict->flowId)->http.refusal, HttpRefusal::kConflict);
}

TEST_F(WorkerHttpTest, FlowsNoHttpRuleCanDecideAreNotJudgedPerRequest) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy()));
  // Port 81 is allowed by rule 1 and rule 0 (port 80) cannot match it: nothing to judge per request.
  Connection c(46000, 81);
  open(c);
  EXPECT_TRUE(passes(c.send(get("/admin/secret"))));
  EXPECT_EQ(inspection().httpRequestsJudged, 0u);
  const Records& records = finish();
  EXPECT_EQ(records.endOf(46000)->action, VerdictAction::kAllow);
  EXPECT_EQ(records.endOf(46000)->ruleId, 1u);
}

TEST_F(WorkerHttpTest, AuditModeRecordsTheLaterDenyAndForwards) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy(PolicyMode::kAudit)));
  Connection c(47000, 80);
  open(c);
  EXPECT_TRUE(passes(c.send(get("/admin/secret"))));
  EXPECT_TRUE(passes(c.send(get("/"))));
  EXPECT_EQ(inspection().httpDeniedMidConnection, 1u);
  const Records& records = finish();
  EXPECT_EQ(records.endOf(47000)->action, VerdictAction::kDeny);
  EXPECT_EQ(records.endOf(47000)->ruleId, 0u);
}

TEST_F(WorkerHttpTest, AJudgedFlowWithoutAnInspectionSlotIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start(adminPolicy(), 1));
  Connection holder(48000, 80);
  open(holder);  // keeps the only slot while it speaks HTTP
  Connection c(48001, 80);
  EXPECT_TRUE(passes(c.syn()));
  EXPECT_TRUE(passes(c.synAck()));
  EXPECT_TRUE(passes(c.ack()));
  EXPECT_TRUE(dropped(c.send(get("/"))));
  EXPECT_EQ(inspection().poolExhausted, 1u);
  const Records& records = finish();
  EXPECT_EQ(records.endOf(48001)->ruleId, kRuleHttpRefused);
  EXPECT_EQ(records.endOf(48000)->action, VerdictAction::kAllow);
}

}  // namespace
}  // namespace vgate::dataplane
