// Tests for the dataplane worker on hand-built frames: L3/L4 denies in enforce and audit mode, verdicts held
// pending until a TLS ClientHello, IPv4/IPv6 fragment reassembly, and ICMP errors about known flows.
#include "dataplane/worker/worker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/verdict/compiled_policy.h"
#include "dataplane/verdict/policy_registry.h"
#include "support/byte_builder.h"
#include "support/eal_environment.h"

namespace vgate::dataplane {
namespace {

using vgate::testing::Bytes;

constexpr uint8_t kFin = 0x01;
constexpr uint8_t kSyn = 0x02;
constexpr uint8_t kRst = 0x04;
constexpr uint8_t kAck = 0x10;
constexpr uint8_t kPshAck = 0x18;
constexpr uint8_t kSynAck = 0x12;
constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kServerIsn = 5000;
constexpr uint32_t kPolicyVersion = 3;
constexpr unsigned kMbufs = 511;

using vgate::testing::Builder;

struct Address {
  explicit Address(const std::string& text) : v6(text.find(':') != std::string::npos) {
    EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, text.c_str(), bytes), 1) << text;
  }
  bool v6;
  uint8_t bytes[16] = {};
};

std::string addressText(const uint8_t* bytes, uint8_t ipVersion) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(ipVersion == 6 ? AF_INET6 : AF_INET, bytes, text, sizeof(text));
  return text;
}

Bytes ethernet(bool v6) {
  return Builder().u16(0x0200).u32(1).u16(0x0200).u32(2).u16(v6 ? 0x86dd : 0x0800).done();
}

// An IPv4 header for `after` bytes of payload, checksummed.
Bytes ipv4(const Address& src, const Address& dst, uint8_t protocol, size_t after, uint16_t id = 0,
           uint16_t fragmentField = 0) {
  Builder b;
  b.u8(0x45)
      .u8(0)
      .u16(static_cast<uint32_t>(20 + after))
      .u16(id)
      .u16(fragmentField)
      .u8(64)
      .u8(protocol)
      .u16(0);
  for (int i = 0; i < 4; ++i) b.u8(src.bytes[i]);
  for (int i = 0; i < 4; ++i) b.u8(dst.bytes[i]);
  Bytes header = b.done();
  uint32_t sum = 0;
  for (size_t i = 0; i < header.size(); i += 2) sum += uint32_t{header[i]} << 8 | header[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  header[10] = static_cast<uint8_t>(~sum >> 8);
  header[11] = static_cast<uint8_t>(~sum);
  return header;
}

Bytes ipv6(const Address& src, const Address& dst, uint8_t nextHeader, size_t after) {
  Builder b;
  b.u32(0x60000000).u16(static_cast<uint32_t>(after)).u8(nextHeader).u8(64);
  for (uint8_t x : src.bytes) b.u8(x);
  for (uint8_t x : dst.bytes) b.u8(x);
  return b.done();
}

// A whole frame: Ethernet, the IP header of the addresses' family, then `l4`.
Bytes ipFrame(const std::string& from, const std::string& to, uint8_t protocol, const Bytes& l4) {
  Address src(from), dst(to);
  Bytes ip = src.v6 ? ipv6(src, dst, protocol, l4.size()) : ipv4(src, dst, protocol, l4.size());
  return Builder().add(ethernet(src.v6)).add(ip).add(l4).done();
}

Bytes tcpSegment(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
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

Bytes udpDatagram(uint16_t sport, uint16_t dport, size_t payloadLength) {
  Builder b;
  b.u16(sport).u16(dport).u16(static_cast<uint32_t>(8 + payloadLength)).u16(0);
  for (size_t i = 0; i < payloadLength; ++i) b.u8(0x30 + i);
  return b.done();
}

ParsedPacket parsed(const Bytes& frame) {
  ParsedPacket packet;
  EXPECT_EQ(parsePacket(frame.data(), static_cast<uint32_t>(frame.size()),
                        static_cast<uint32_t>(frame.size()), packet),
            ParseStatus::kOk);
  return packet;
}

// One TCP connection's frames, the client's ISN kClientIsn and the server's kServerIsn.
struct TcpConversation {
  std::string client;
  uint16_t clientPort;
  std::string server;
  uint16_t serverPort;

  Bytes toServer(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload = {}) const {
    return ipFrame(client, server, IPPROTO_TCP, tcpSegment(clientPort, serverPort, flags, seq, ack, payload));
  }
  Bytes toClient(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload = {}) const {
    return ipFrame(server, client, IPPROTO_TCP, tcpSegment(serverPort, clientPort, flags, seq, ack, payload));
  }
  Bytes syn() const { return toServer(kSyn, kClientIsn, 0); }
  Bytes synAck() const { return toClient(kSynAck, kServerIsn, kClientIsn + 1); }
  Bytes ack() const { return toServer(kAck, kClientIsn + 1, kServerIsn + 1); }
  // What an ICMP error about this flow quotes: the client's IP header and the first 8 bytes of its segment.
  Bytes quote() const {
    Bytes l4 = tcpSegment(clientPort, serverPort, kAck, kClientIsn + 1, kServerIsn + 1, {});
    l4.resize(8);
    Address src(client), dst(server);
    return Builder().add(ipv4(src, dst, IPPROTO_TCP, 20)).add(l4).done();
  }
};

// A minimal TLS 1.3 ClientHello record: two suites, SNI and supported_versions.
Bytes clientHello(const std::string& serverName) {
  Builder sni;
  sni.u16(static_cast<uint32_t>(serverName.size() + 3)).u8(0).u16(static_cast<uint32_t>(serverName.size()));
  sni.add(serverName);
  Bytes sniData = sni.done();
  Builder extensions;
  extensions.u16(0x0000).u16(static_cast<uint32_t>(sniData.size())).add(sniData);
  extensions.u16(0x002b).u16(3).u8(2).u16(0x0304);
  Bytes extensionBlock = extensions.done();
  Builder body;
  body.u16(0x0303);
  for (int i = 0; i < 32; ++i) body.u8(i);
  body.u8(0).u16(4).u16(0x1301).u16(0x1302).u8(1).u8(0);
  body.u16(static_cast<uint32_t>(extensionBlock.size())).add(extensionBlock);
  Bytes hello = body.done();
  Bytes handshake = Builder().u8(1).u24(static_cast<uint32_t>(hello.size())).add(hello).done();
  return Builder().u8(0x16).u16(0x0301).u16(static_cast<uint32_t>(handshake.size())).add(handshake).done();
}

// A 48-byte UDP datagram (8-byte header, 40 bytes of data) in two fragments: bytes [0, 24) with MF, then
// [24, 48). IPv6 fragments carry their fragment header right after the fixed header, unless
// `behindDestinationOptions` puts a destination options header first.
std::vector<Bytes> udpFragments(const std::string& from, const std::string& to, uint16_t sport,
                                uint16_t dport, uint32_t id, bool behindDestinationOptions = false) {
  Address src(from), dst(to);
  Bytes datagram = udpDatagram(sport, dport, 40);
  std::vector<Bytes> fragments;
  for (size_t offset : {size_t{0}, size_t{24}}) {
    Bytes chunk(datagram.begin() + static_cast<long>(offset),
                datagram.begin() + static_cast<long>(offset + 24));
    bool more = offset == 0;
    Builder frame;
    frame.add(ethernet(src.v6));
    if (!src.v6) {
      frame.add(ipv4(src, dst, IPPROTO_UDP, chunk.size(), static_cast<uint16_t>(id),
                     static_cast<uint16_t>(offset / 8 | (more ? 0x2000 : 0))));
    } else if (!behindDestinationOptions) {
      frame.add(ipv6(src, dst, IPPROTO_FRAGMENT, 8 + chunk.size()));
    } else {
      frame.add(ipv6(src, dst, IPPROTO_DSTOPTS, 16 + chunk.size()));
      frame.u8(IPPROTO_FRAGMENT).u8(0).u8(1).u8(4).u32(0);  // PadN over the header's 6 option bytes
    }
    if (src.v6) frame.u8(IPPROTO_UDP).u8(0).u16(static_cast<uint32_t>(offset | (more ? 1 : 0))).u32(id);
    fragments.push_back(frame.add(chunk).done());
  }
  return fragments;
}

// `datagram` (the IP payload: a transport header and its data) from `from` to `to` cut into fragments at the
// given data offsets (multiples of 8, the first 0): each fragment's data runs to the next offset, or the end.
std::vector<Bytes> fragmentsAt(const std::string& from, const std::string& to, uint8_t protocol,
                               const Bytes& datagram, std::vector<size_t> offsets, uint32_t id,
                               std::vector<size_t> ends = {}) {
  Address src(from), dst(to);
  std::vector<Bytes> fragments;
  for (size_t i = 0; i < offsets.size(); ++i) {
    size_t offset = offsets[i];
    size_t end = i < ends.size() ? ends[i] : i + 1 < offsets.size() ? offsets[i + 1] : datagram.size();
    Bytes chunk(datagram.begin() + static_cast<long>(offset), datagram.begin() + static_cast<long>(end));
    bool more = end < datagram.size();
    Builder frame;
    frame.add(ethernet(src.v6));
    if (!src.v6) {
      frame.add(ipv4(src, dst, protocol, chunk.size(), static_cast<uint16_t>(id),
                     static_cast<uint16_t>(offset / 8 | (more ? 0x2000 : 0))));
    } else {
      frame.add(ipv6(src, dst, IPPROTO_FRAGMENT, 8 + chunk.size()));
      frame.u8(protocol).u8(0).u16(static_cast<uint32_t>(offset | (more ? 1 : 0))).u32(id);
    }
    fragments.push_back(frame.add(chunk).done());
  }
  return fragments;
}

// The IP payload of a frame whose headers are Ethernet and IPv4 without options or IPv6 with a fragment
// header, and its fragment offset: to put judged fragments back together in a test.
Bytes reassembledPayload(const std::vector<Bytes>& fragments, bool v6) {
  Bytes whole;
  for (const Bytes& fragment : fragments) {
    size_t headers = 14 + (v6 ? 48 : 20);
    size_t offset = v6 ? ((size_t{fragment[14 + 42]} << 8 | fragment[14 + 43]) & 0xfff8)
                       : ((size_t{fragment[14 + 6]} << 8 | fragment[14 + 7]) & 0x1fff) * 8;
    Bytes data(fragment.begin() + static_cast<long>(headers), fragment.end());
    if (whole.size() < offset + data.size()) whole.resize(offset + data.size());
    std::copy(data.begin(), data.end(), whole.begin() + static_cast<long>(offset));
  }
  return whole;
}

// ICMP destination unreachable, fragmentation needed (type 3 code 4), from `from` to `to`, quoting `quote`.
Bytes fragmentationNeeded(const std::string& from, const std::string& to, const Bytes& quote) {
  return ipFrame(from, to, IPPROTO_ICMP, Builder().u8(3).u8(4).u16(0).u16(0).u16(1280).add(quote).done());
}

policy::Rule portRule(const char* name, VerdictAction action, policy::Protocol protocol, uint16_t port) {
  policy::Rule rule;
  rule.name = name;
  rule.action = action;
  rule.protocol = protocol;
  rule.destination.ports = {{port, port}};
  return rule;
}

policy::Policy makePolicy(std::vector<policy::Rule> rules, PolicyMode mode = PolicyMode::kEnforce) {
  policy::Policy policy;
  policy.name = "worker-test";
  policy.mode = mode;
  policy.defaultAction = VerdictAction::kAllow;
  policy.rules = std::move(rules);
  return policy;
}

// Rule 0 allows SSH, rule 1 denies telnet: a deny names rule 1.
policy::Policy telnetPolicy(PolicyMode mode) {
  return makePolicy({portRule("allow-ssh", VerdictAction::kAllow, policy::Protocol::kTcp, 22),
                     portRule("deny-telnet", VerdictAction::kDeny, policy::Protocol::kTcp, 23)},
                    mode);
}

// Keeps every record the worker sent.
class Records : public RecordSink {
 public:
  void onMetadata(const FlowMetadataRecord& metadata) override { metadata_.push_back(metadata); }
  void onEnd(const FlowEndRecord& record) override {
    // A flow's metadata, when it has some, comes before its end record.
    bool metadataSeen = false;
    for (const FlowMetadataRecord& m : metadata_) metadataSeen |= m.flowId == record.flowId;
    EXPECT_EQ(metadataSeen, record.hasMetadata) << "flow " << record.flowId;
    ends_.push_back(record);
  }

  size_t ends() const { return ends_.size(); }
  // The end record of the flow whose client is `client` (port 0: an ICMP flow).
  const FlowEndRecord* endOf(const std::string& client, uint16_t clientPort) const {
    for (const FlowEndRecord& record : ends_) {
      if (addressText(record.srcAddr, record.ipVersion) == client && record.srcPort == clientPort)
        return &record;
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

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mbufs_ = rte_pktmbuf_pool_create("wt_mbufs", kMbufs, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(mbufs_, nullptr);
    auto pools = RecordPools::create("wt_rec", 1, {1024, 1024, 256, 0, 0}, SOCKET_ID_ANY);
    ASSERT_TRUE(pools.ok()) << pools.error().message;
    pools_ = std::move(pools).value();
  }

  void TearDown() override {
    worker_.reset();  // before the registry it is registered with; frees the fragments it still holds
    registry_.reset();
    if (pools_) pools_->drain(records_);
    pools_.reset();
    if (mbufs_ != nullptr) {
      EXPECT_EQ(rte_mempool_avail_count(mbufs_), kMbufs) << "mbufs leaked";
      rte_mempool_free(mbufs_);
    }
  }

  // The frames these tests build leave the TCP/UDP checksum at zero: checked only where a test says so.
  void start(const policy::Policy& policy, bool verifyChecksums = false, uint64_t flowIdSeed = 0) {
    auto registry = PolicyRegistry::create(1);
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    registry_ = std::move(registry).value();
    auto compiled = CompiledPolicy::compile(policy, kPolicyVersion, CompileOptions{}, 1);
    ASSERT_TRUE(compiled.ok()) << compiled.error().message;
    // Published before the worker registers: a publish waits for every registered worker's quiescence.
    registry_->publish(std::move(compiled).value());
    WorkerConfig config;
    config.flowCapacity = 1024;
    config.inspectionSlots = 16;
    config.fragmentFlows = 64;
    config.verifyChecksums = verifyChecksums;
    config.flowIdSeed = flowIdSeed;
    config.records = pools_->channel(0);
    config.losslessRecords = true;
    config.policies = registry_.get();
    auto worker = Worker::create(config);
    ASSERT_TRUE(worker.ok()) << worker.error().message;
    worker_ = std::move(worker).value();
  }

  // Runs one burst; returns the frames the worker kept to forward, in order (and frees them).
  std::vector<Bytes> send(const std::vector<Bytes>& frames) {
    rte_mbuf* burst[kBurstOutputCapacity];
    EXPECT_LE(frames.size(), kBurstSize);
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
  // One frame in its own burst: whether the worker forwarded it unchanged.
  bool passes(const Bytes& frame) {
    std::vector<Bytes> forwarded = send({frame});
    return forwarded.size() == 1 && forwarded[0] == frame;
  }
  bool dropped(const Bytes& frame) { return send({frame}).empty(); }

  // Ends every flow and collects the records.
  const Records& finish() {
    worker_->flushAll(nowUs_, FlowEndReason::kEndOfInput);
    EXPECT_TRUE(pools_->drain(records_));
    return records_;
  }

  const WorkerCounters& counters() const { return worker_->counters(); }
  const FragmentCounters& fragmentCounters() const { return worker_->fragmentCounters(); }

  rte_mempool* mbufs_ = nullptr;
  std::unique_ptr<RecordPools> pools_;
  std::unique_ptr<PolicyRegistry> registry_;
  std::unique_ptr<Worker> worker_;
  Records records_;
  uint64_t nowUs_ = 1'700'000'000'000'000;
};

const TcpConversation kTelnet{"10.1.0.1", 40000, "10.2.0.1", 23};
const TcpConversation kWeb{"10.1.0.1", 40001, "10.2.0.1", 80};

TEST_F(WorkerTest, EnforceDropsADeniedSynAndItsRecordNamesTheRule) {
  ASSERT_NO_FATAL_FAILURE(start(telnetPolicy(PolicyMode::kEnforce)));
  // One burst: the telnet SYN leaves it, the web SYN stays.
  std::vector<Bytes> forwarded = send({kTelnet.syn(), kWeb.syn()});
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(forwarded[0], kWeb.syn());
  EXPECT_EQ(counters().denied, 1u);
  // The retransmitted SYN meets the same verdict.
  EXPECT_TRUE(dropped(kTelnet.syn()));
  EXPECT_TRUE(passes(kWeb.synAck()));
  EXPECT_EQ(counters().packets, 4u);
  EXPECT_EQ(counters().denied, 2u);
  EXPECT_EQ(counters().flowsCreated, 2u);
  EXPECT_EQ(counters().verdictsImmediate, 2u);
  EXPECT_EQ(counters().verdictsAfterL7, 0u);

  const Records& records = finish();
  EXPECT_EQ(records.ends(), 2u);
  const FlowEndRecord* telnet = records.endOf("10.1.0.1", 40000);
  ASSERT_NE(telnet, nullptr);
  EXPECT_EQ(telnet->action, VerdictAction::kDeny);
  EXPECT_EQ(telnet->ruleId, 1u);
  EXPECT_EQ(telnet->mode, PolicyMode::kEnforce);
  EXPECT_EQ(telnet->policyVersion, kPolicyVersion);
  EXPECT_EQ(telnet->ipVersion, 4);
  EXPECT_EQ(telnet->protocol, IPPROTO_TCP);
  EXPECT_EQ(addressText(telnet->dstAddr, 4), "10.2.0.1");
  EXPECT_EQ(telnet->dstPort, 23);
  EXPECT_EQ(telnet->pkts[kToServer], 2u);  // dropped packets are still the flow's
  EXPECT_EQ(telnet->pkts[kToClient], 0u);
  EXPECT_EQ(telnet->bytes[kToServer], 2 * kTelnet.syn().size());
  EXPECT_EQ(telnet->tcpFlags[kToServer], kSyn);
  EXPECT_EQ(telnet->state, FlowState::kNew);
  EXPECT_EQ(telnet->reason, FlowEndReason::kEndOfInput);
  EXPECT_FALSE(telnet->decidedAtEnd);

  const FlowEndRecord* web = records.endOf("10.1.0.1", 40001);
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->action, VerdictAction::kAllow);
  EXPECT_EQ(web->ruleId, kNoRule);  // the default decided
  EXPECT_EQ(web->pkts[kToServer], 1u);
  EXPECT_EQ(web->pkts[kToClient], 1u);
  EXPECT_EQ(web->tcpFlags[kToClient], kSynAck);
}

TEST_F(WorkerTest, AuditForwardsADeniedSynButRecordsTheDeny) {
  ASSERT_NO_FATAL_FAILURE(start(telnetPolicy(PolicyMode::kAudit)));
  EXPECT_TRUE(passes(kTelnet.syn()));
  EXPECT_TRUE(passes(kTelnet.synAck()));
  EXPECT_EQ(counters().denied, 0u);
  EXPECT_EQ(counters().verdictsImmediate, 1u);

  const Records& records = finish();
  const FlowEndRecord* telnet = records.endOf("10.1.0.1", 40000);
  ASSERT_NE(telnet, nullptr);
  EXPECT_EQ(telnet->action, VerdictAction::kDeny);
  EXPECT_EQ(telnet->ruleId, 1u);
  EXPECT_EQ(telnet->mode, PolicyMode::kAudit);
  EXPECT_EQ(telnet->pkts[kToServer], 1u);
  EXPECT_EQ(telnet->pkts[kToClient], 1u);
}

TEST_F(WorkerTest, ATlsSniRuleHoldsTheFlowUntilTheClientHelloDecides) {
  policy::Rule bank;
  bank.name = "deny-bank";
  bank.action = VerdictAction::kDeny;
  bank.protocol = policy::Protocol::kTcp;
  bank.tls.sni = {"*.bank.example"};
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({bank})));
  const TcpConversation denied{"10.1.0.1", 41000, "10.9.0.1", 443};
  const TcpConversation allowed{"10.1.0.1", 41001, "10.9.0.2", 443};
  const TcpConversation silent{"10.1.0.1", 41002, "10.9.0.3", 443};

  // The handshakes pass while the verdicts wait.
  for (const TcpConversation* flow : {&denied, &allowed, &silent}) {
    EXPECT_TRUE(passes(flow->syn()));
    EXPECT_TRUE(passes(flow->synAck()));
    EXPECT_TRUE(passes(flow->ack()));
  }
  EXPECT_EQ(counters().verdictsImmediate, 0u);
  EXPECT_EQ(counters().verdictsAfterL7, 0u);
  EXPECT_EQ(counters().denied, 0u);

  // The ClientHello naming a bank decides deny: it and everything after it, both ways, are dropped.
  const Bytes bankHello = clientHello("www.bank.example");
  const uint32_t afterHello = kClientIsn + 1 + static_cast<uint32_t>(bankHello.size());
  // The server, which holds the connection, is reset in sequence in the ClientHello's place.
  std::vector<Bytes> reset = send({denied.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, bankHello)});
  ASSERT_EQ(reset.size(), 1u);
  ParsedPacket rst = parsed(reset[0]);
  EXPECT_EQ(addressText(rst.dstAddr, 4), "10.9.0.1");
  EXPECT_EQ(rst.srcPort, 41000);
  EXPECT_EQ(rst.dstPort, 443);
  EXPECT_EQ(rst.tcpFlags, kRst | kAck);
  EXPECT_EQ(rst.tcpSeq, kClientIsn + 1);
  EXPECT_EQ(counters().resetsSent, 1u);
  EXPECT_EQ(counters().verdictsAfterL7, 1u);
  EXPECT_EQ(counters().denied, 1u);
  EXPECT_TRUE(dropped(denied.toClient(kAck, kServerIsn + 1, afterHello)));
  EXPECT_TRUE(dropped(denied.toServer(kFin | kAck, afterHello, kServerIsn + 1)));
  EXPECT_EQ(counters().denied, 3u);

  // Another name falls to the default and passes.
  EXPECT_TRUE(
      passes(allowed.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, clientHello("www.example.org"))));
  EXPECT_EQ(counters().verdictsAfterL7, 2u);
  EXPECT_EQ(counters().denied, 3u);

  // A flow reset before any payload is still pending, and passes.
  EXPECT_TRUE(passes(silent.toServer(kRst, kClientIsn + 1, 0)));
  EXPECT_EQ(counters().verdictsAfterL7, 2u);

  const Records& records = finish();
  EXPECT_EQ(counters().verdictsAfterL7, 3u);  // the silent flow, decided as it ended
  EXPECT_EQ(records.ends(), 3u);
  const FlowEndRecord* bankFlow = records.endOf("10.1.0.1", 41000);
  ASSERT_NE(bankFlow, nullptr);
  EXPECT_EQ(bankFlow->action, VerdictAction::kDeny);
  EXPECT_EQ(bankFlow->ruleId, 0u);
  EXPECT_EQ(bankFlow->appProto, AppProto::kTls);
  EXPECT_FALSE(bankFlow->decidedAtEnd);
  EXPECT_EQ(bankFlow->pkts[kToServer], 4u);
  EXPECT_EQ(bankFlow->pkts[kToClient], 2u);
  ASSERT_TRUE(bankFlow->hasMetadata);
  const FlowMetadataRecord* bankMetadata = records.metadataOf(bankFlow->flowId);
  ASSERT_NE(bankMetadata, nullptr);
  EXPECT_TRUE(bankMetadata->tls.present);
  EXPECT_STREQ(bankMetadata->tls.sni, "www.bank.example");

  const FlowEndRecord* otherFlow = records.endOf("10.1.0.1", 41001);
  ASSERT_NE(otherFlow, nullptr);
  EXPECT_EQ(otherFlow->action, VerdictAction::kAllow);
  EXPECT_EQ(otherFlow->ruleId, kNoRule);
  EXPECT_FALSE(otherFlow->decidedAtEnd);
  const FlowMetadataRecord* otherMetadata = records.metadataOf(otherFlow->flowId);
  ASSERT_NE(otherMetadata, nullptr);
  EXPECT_STREQ(otherMetadata->tls.sni, "www.example.org");

  const FlowEndRecord* silentFlow = records.endOf("10.1.0.1", 41002);
  ASSERT_NE(silentFlow, nullptr);
  EXPECT_TRUE(silentFlow->decidedAtEnd);
  EXPECT_EQ(silentFlow->action, VerdictAction::kAllow);
  EXPECT_EQ(silentFlow->ruleId, kNoRule);
  EXPECT_EQ(silentFlow->reason, FlowEndReason::kRst);
  EXPECT_EQ(silentFlow->appProto, AppProto::kUnknown);
  EXPECT_FALSE(silentFlow->hasMetadata);
}

class WorkerFragmentTest : public WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(
        start(makePolicy({portRule("deny-udp-9999", VerdictAction::kDeny, policy::Protocol::kUdp, 9999)})));
  }

  // Two datagrams from `client`: from port 5000 to port 53 in order, across two bursts (allowed: forwarded
  // whole once complete), and from port 5001 to port 9999 reversed in one burst (denied by its real port).
  void reassemblesAndJudges(const std::string& client, const std::string& server) {
    const bool v6 = Address(client).v6;
    std::vector<Bytes> dns = udpFragments(client, server, 5000, 53, 0x1234);
    EXPECT_TRUE(send({dns[0]}).empty());  // held until its datagram completes
    EXPECT_EQ(fragmentCounters().fragments, 1u);
    EXPECT_EQ(fragmentCounters().fragmentsReassembled, 0u);
    EXPECT_EQ(counters().flowsCreated, 0u);
    // Judged whole, then sent on as fragments cut again from it: here the same cuts as the sender's.
    std::vector<Bytes> forwarded = send({dns[1]});
    EXPECT_EQ(forwarded, dns);
    EXPECT_EQ(fragmentCounters().fragmentsReassembled, 1u);
    EXPECT_EQ(fragmentCounters().fragmentsSent, 2u);
    EXPECT_EQ(counters().flowsCreated, 1u);

    std::vector<Bytes> blocked = udpFragments(client, server, 5001, 9999, 0x1235);
    EXPECT_TRUE(send({blocked[1], blocked[0]}).empty());
    EXPECT_EQ(fragmentCounters().fragments, 4u);
    EXPECT_EQ(fragmentCounters().fragmentsReassembled, 2u);
    EXPECT_EQ(fragmentCounters().fragmentsSent, 2u);
    EXPECT_EQ(counters().denied, 1u);
    EXPECT_EQ(fragmentCounters().fragmentsUnsupported, 0u);

    const Records& records = finish();
    EXPECT_EQ(records.ends(), 2u);
    const FlowEndRecord* dnsFlow = records.endOf(client, 5000);
    const FlowEndRecord* blockedFlow = records.endOf(client, 5001);
    ASSERT_NE(dnsFlow, nullptr);
    ASSERT_NE(blockedFlow, nullptr);
    EXPECT_EQ(dnsFlow->action, VerdictAction::kAllow);
    EXPECT_EQ(blockedFlow->action, VerdictAction::kDeny);
    EXPECT_EQ(blockedFlow->ruleId, 0u);
    for (const auto& [record, frames] : {std::pair{dnsFlow, &dns}, std::pair{blockedFlow, &blocked}}) {
      EXPECT_EQ(record->ipVersion, v6 ? 6 : 4);
      EXPECT_EQ(record->protocol, IPPROTO_UDP);
      EXPECT_EQ(addressText(record->dstAddr, record->ipVersion), server);
      // The frames on the wire, not the reassembled datagram.
      EXPECT_EQ(record->pkts[kToServer], 2u);
      EXPECT_EQ(record->bytes[kToServer], (*frames)[0].size() + (*frames)[1].size());
    }
    EXPECT_EQ(dnsFlow->dstPort, 53);
    EXPECT_EQ(blockedFlow->dstPort, 9999);
  }
};

TEST_F(WorkerFragmentTest, Ipv4FragmentsAreReassembledAndJudgedByTheirPorts) {
  reassemblesAndJudges("10.1.0.1", "10.2.0.1");
}

TEST_F(WorkerFragmentTest, Ipv6FragmentsAreReassembledAndJudgedByTheirPorts) {
  reassemblesAndJudges("2001:db8::1", "2001:db8::2");
}

// The evasions of RFC 1858 and RFC 5722: an overlapping fragment that would rewrite the ports (or the TCP
// flags) after the first fragment was judged, in either order, drops the whole datagram.
TEST_F(WorkerFragmentTest, OverlappingFragmentsDropTheDatagram) {
  for (const char* client : {"10.1.0.1", "2001:db8::1"}) {
    const char* server = Address(client).v6 ? "2001:db8::2" : "10.2.0.1";
    Bytes allowed = udpDatagram(5000, 53, 40);
    Bytes denied = udpDatagram(5000, 9999, 40);
    // [0, 24) of a datagram to port 53, then [0, 8) again carrying port 9999, then the rest.
    std::vector<Bytes> first = fragmentsAt(client, server, IPPROTO_UDP, allowed, {0, 24}, 0x4242);
    std::vector<Bytes> rewrite = fragmentsAt(client, server, IPPROTO_UDP, denied, {0}, 0x4242, {8});
    EXPECT_TRUE(send({first[0]}).empty());
    EXPECT_TRUE(send({rewrite[0]}).empty());
    EXPECT_TRUE(send({first[1]}).empty());
    // The other order: a fragment at offset 8 before the first that it overlaps.
    std::vector<Bytes> late = fragmentsAt(client, server, IPPROTO_UDP, allowed, {8, 32}, 0x4343, {32, 48});
    std::vector<Bytes> head = fragmentsAt(client, server, IPPROTO_UDP, allowed, {0}, 0x4343, {16});
    EXPECT_TRUE(send({late[0], head[0], late[1]}).empty());
  }
  EXPECT_EQ(fragmentCounters().fragmentsOverlapping, 8u);  // the overlapping ones and all that follow them
  EXPECT_EQ(fragmentCounters().fragmentsReassembled, 0u);
  EXPECT_EQ(counters().flowsCreated, 0u);
  EXPECT_EQ(finish().ends(), 0u);
}

TEST_F(WorkerFragmentTest, DuplicateFragmentsAreDroppedAndTheFirstCopySent) {
  std::vector<Bytes> dns = udpFragments("10.1.0.1", "10.2.0.1", 5000, 53, 0x99);
  EXPECT_TRUE(send({dns[0], dns[0]}).empty());
  EXPECT_EQ(send({dns[1]}), dns);
  EXPECT_EQ(fragmentCounters().fragmentsDuplicate, 1u);
}

// A first fragment too short for the whole TCP header leaves the flags to a later fragment: dropped, and the
// rest of its datagram with it.
TEST_F(WorkerFragmentTest, TinyFirstFragmentsAreDropped) {
  Bytes segment = tcpSegment(40000, 22, kSyn, kClientIsn, 0, Bytes(16, 0x41));
  std::vector<Bytes> fragments = fragmentsAt("10.1.0.1", "10.2.0.1", IPPROTO_TCP, segment, {0, 8}, 0x77);
  EXPECT_TRUE(send(fragments).empty());
  EXPECT_EQ(fragmentCounters().fragmentsTinyFirst, 1u);
  EXPECT_EQ(fragmentCounters().fragmentsOverlapping, 1u);  // the rest of a dropped datagram
  EXPECT_EQ(counters().flowsCreated, 0u);
}

TEST_F(WorkerFragmentTest, MalformedAndTooManyFragmentsAreDropped) {
  // Data not a multiple of 8 in a fragment that is not the last.
  Bytes datagram = udpDatagram(5000, 53, 92);
  std::vector<Bytes> odd = fragmentsAt("10.1.0.1", "10.2.0.1", IPPROTO_UDP, datagram, {0, 24}, 1, {20, 100});
  EXPECT_TRUE(send({odd[0]}).empty());
  EXPECT_EQ(fragmentCounters().fragmentsMalformed, 1u);
  // Nine fragments of 8 bytes: DPDK reassembles eight at most.
  Bytes small = udpDatagram(5001, 53, 64);
  std::vector<Bytes> nine =
      fragmentsAt("10.1.0.1", "10.2.0.1", IPPROTO_UDP, small, {0, 8, 16, 24, 32, 40, 48, 56, 64}, 2);
  EXPECT_TRUE(send(nine).empty());
  EXPECT_EQ(fragmentCounters().fragmentsTooMany, 1u);
  EXPECT_EQ(fragmentCounters().fragmentsReassembled, 0u);
  EXPECT_EQ(counters().flowsCreated, 0u);
}

// A datagram larger than the MTU, cut unevenly by its sender: judged whole, and sent on in fragments no
// larger than its largest, which put together give back the datagram.
TEST_F(WorkerFragmentTest, JudgedDatagramsAreCutAgainNoLargerThanTheSendersLargest) {
  for (const char* client : {"10.1.0.1", "2001:db8::1"}) {
    const bool v6 = Address(client).v6;
    const char* server = v6 ? "2001:db8::2" : "10.2.0.1";
    Bytes datagram = udpDatagram(5000, 53, 3000);
    std::vector<Bytes> fragments =
        fragmentsAt(client, server, IPPROTO_UDP, datagram, {0, 1448, 1456, 2904}, 0x5151);
    size_t largest = 0;
    for (const Bytes& fragment : fragments) largest = std::max(largest, fragment.size());
    std::vector<Bytes> forwarded = send(fragments);
    ASSERT_EQ(forwarded.size(), 3u) << client;
    for (const Bytes& fragment : forwarded) EXPECT_LE(fragment.size(), largest);
    EXPECT_EQ(reassembledPayload(forwarded, v6), datagram);
    const Bytes& last = forwarded.back();
    EXPECT_EQ(v6 ? last[14 + 43] & 1 : last[14 + 6] & 0x20, 0) << "the last fragment has no more after it";
  }
}

TEST_F(WorkerFragmentTest, Ipv6FragmentHeaderBehindOtherHeadersIsDroppedAsUnsupported) {
  std::vector<Bytes> fragments = udpFragments("2001:db8::1", "2001:db8::2", 5000, 53, 0x77, true);
  EXPECT_TRUE(send(fragments).empty());
  EXPECT_EQ(fragmentCounters().fragments, 2u);
  EXPECT_EQ(fragmentCounters().fragmentsUnsupported, 2u);
  EXPECT_EQ(fragmentCounters().fragmentsReassembled, 0u);
  EXPECT_EQ(counters().denied, 0u);  // not a verdict
  EXPECT_EQ(counters().flowsCreated, 0u);
  EXPECT_EQ(finish().ends(), 0u);
}

TEST_F(WorkerTest, IcmpErrorsAboutKnownFlowsTakeTheirVerdict) {
  // Rule 1 denies every destination unreachable that is a flow of its own.
  policy::Rule unreachable;
  unreachable.name = "deny-unreachable";
  unreachable.action = VerdictAction::kDeny;
  unreachable.protocol = policy::Protocol::kIcmp;
  unreachable.icmpTypes = {{3, 3}};
  ASSERT_NO_FATAL_FAILURE(start(
      makePolicy({portRule("deny-telnet", VerdictAction::kDeny, policy::Protocol::kTcp, 23), unreachable})));
  EXPECT_TRUE(passes(kWeb.syn()));
  EXPECT_TRUE(passes(kWeb.synAck()));
  EXPECT_TRUE(dropped(kTelnet.syn()));
  EXPECT_EQ(counters().flowsCreated, 2u);
  EXPECT_EQ(counters().denied, 1u);

  // About the allowed flow: passes (rule 1 notwithstanding), creates no flow.
  const std::string router = "10.1.0.254";
  EXPECT_TRUE(passes(fragmentationNeeded(router, "10.1.0.1", kWeb.quote())));
  EXPECT_EQ(counters().icmpErrorsRelated, 1u);
  EXPECT_EQ(counters().flowsCreated, 2u);
  EXPECT_EQ(worker_->flowTable().size(), 2u);

  // About the denied flow: dropped with it.
  EXPECT_TRUE(dropped(fragmentationNeeded(router, "10.1.0.1", kTelnet.quote())));
  EXPECT_EQ(counters().icmpErrorsRelated, 2u);
  EXPECT_EQ(counters().denied, 2u);
  EXPECT_EQ(counters().flowsCreated, 2u);

  // About no flow of ours: a flow of its own, which rule 1 denies.
  const TcpConversation unknown{"10.1.0.1", 40009, "10.2.0.1", 80};
  EXPECT_TRUE(dropped(fragmentationNeeded(router, "10.1.0.1", unknown.quote())));
  EXPECT_EQ(counters().icmpErrorsRelated, 2u);
  EXPECT_EQ(counters().flowsCreated, 3u);
  EXPECT_EQ(counters().denied, 3u);

  const Records& records = finish();
  EXPECT_EQ(records.ends(), 3u);
  const FlowEndRecord* icmp = records.endOf(router, 0);
  ASSERT_NE(icmp, nullptr);
  EXPECT_EQ(icmp->protocol, IPPROTO_ICMP);
  EXPECT_EQ(icmp->icmpType, 3);
  EXPECT_EQ(icmp->icmpCode, 4);
  EXPECT_EQ(icmp->action, VerdictAction::kDeny);
  EXPECT_EQ(icmp->ruleId, 1u);
  EXPECT_EQ(addressText(icmp->dstAddr, 4), "10.1.0.1");
  EXPECT_EQ(icmp->pkts[kToServer], 1u);
  // The related errors were judged, not counted in the flows they were about.
  const FlowEndRecord* web = records.endOf("10.1.0.1", 40001);
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->action, VerdictAction::kAllow);
  EXPECT_EQ(web->pkts[kToServer] + web->pkts[kToClient], 2u);
  const FlowEndRecord* telnet = records.endOf("10.1.0.1", 40000);
  ASSERT_NE(telnet, nullptr);
  EXPECT_EQ(telnet->pkts[kToServer] + telnet->pkts[kToClient], 1u);
}

// Only ARP crosses unjudged: a frame of another ethertype, a VLAN-tagged frame inside a port's traffic, or an
// IP packet that does not parse is dropped and counted, never passed on unread.
TEST_F(WorkerTest, OnlyArpPassesUnjudged) {
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({})));
  Bytes arp = Builder().u16(0xffff).u32(0xffffffff).u16(0x0200).u32(2).u16(0x0806).add(Bytes(28, 1)).done();
  Bytes lldp = Builder().u16(0x0180).u32(0xc200000e).u16(0x0200).u32(2).u16(0x88cc).add(Bytes(46, 2)).done();
  Bytes syn = kTelnet.syn();
  Bytes truncated(syn.begin(), syn.begin() + 14 + 20 + 10);  // the TCP header cut short
  truncated[14 + 3] = static_cast<uint8_t>(20 + 10);         // and the IP length says so
  Bytes badLength = syn;
  badLength[14 + 20 + 12] = 0x30;  // a TCP data offset of 12 bytes
  EXPECT_TRUE(passes(arp));
  EXPECT_TRUE(dropped(lldp));
  EXPECT_TRUE(dropped(truncated));
  EXPECT_TRUE(dropped(badLength));
  EXPECT_EQ(counters().unparsedDropped, 3u);
  EXPECT_EQ(counters().flowsCreated, 0u);
}

// IP protocols without ports (GRE here) are flows of their addresses, judged by protocol rules and the
// default like any other.
TEST_F(WorkerTest, OtherIpProtocolsAreJudgedByProtocolRules) {
  policy::Rule denyGre;
  denyGre.name = "deny-gre";
  denyGre.action = VerdictAction::kDeny;
  denyGre.protocol = static_cast<policy::Protocol>(IPPROTO_GRE);
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({denyGre})));
  Bytes gre =
      ipFrame("10.1.0.1", "10.2.0.1", IPPROTO_GRE, Builder().u16(0).u16(0x0800).add(Bytes(20, 0)).done());
  Bytes esp =
      ipFrame("10.1.0.1", "10.2.0.1", IPPROTO_ESP, Builder().u32(0x100).u32(1).add(Bytes(24, 0)).done());
  EXPECT_TRUE(dropped(gre));
  EXPECT_TRUE(passes(esp));  // the default allows
  const Records& records = finish();
  EXPECT_EQ(records.ends(), 2u);  // one flow per protocol between the two addresses
  EXPECT_EQ(counters().denied, 1u);
}

// A SYN behind IPv6 extension headers is judged by its real port, wherever the headers put it.
TEST_F(WorkerTest, Ipv6ExtensionHeadersAreWalkedToTheRealPort) {
  ASSERT_NO_FATAL_FAILURE(
      start(makePolicy({portRule("deny-telnet", VerdictAction::kDeny, policy::Protocol::kTcp, 23)})));
  Address src("2001:db8::1"), dst("2001:db8::2");
  Bytes segment = tcpSegment(40000, 23, kSyn, kClientIsn, 0, {});
  Bytes options = Builder().u8(IPPROTO_ROUTING).u8(0).u8(1).u8(4).u32(0).done();  // PadN
  Bytes routing = Builder().u8(IPPROTO_TCP).u8(0).u8(0).u8(0).u32(0).done();      // no segments left
  Bytes frame = Builder()
                    .add(ethernet(true))
                    .add(ipv6(src, dst, IPPROTO_DSTOPTS, options.size() + routing.size() + segment.size()))
                    .add(options)
                    .add(routing)
                    .add(segment)
                    .done();
  EXPECT_TRUE(dropped(frame));
  EXPECT_EQ(counters().denied, 1u);
  const Records& records = finish();
  const FlowEndRecord* flow = records.endOf("2001:db8::1", 40000);
  ASSERT_NE(flow, nullptr);
  EXPECT_EQ(flow->dstPort, 23);
  EXPECT_EQ(flow->action, VerdictAction::kDeny);
}

policy::Rule sniRule(const char* name, VerdictAction action, const char* sni) {
  policy::Rule rule;
  rule.name = name;
  rule.action = action;
  rule.protocol = policy::Protocol::kTcp;
  rule.tls.sni = {sni};
  return rule;
}

policy::Policy defaultDeny(std::vector<policy::Rule> rules) {
  policy::Policy policy = makePolicy(std::move(rules));
  policy.defaultAction = VerdictAction::kDeny;
  return policy;
}

// reject answers a SYN with a RST from the server's side, acknowledging the SYN, and a datagram with ICMP
// port unreachable quoting it.
TEST_F(WorkerTest, RejectAnswersWithAResetOrAPortUnreachable) {
  ASSERT_NO_FATAL_FAILURE(
      start(makePolicy({portRule("reject-telnet", VerdictAction::kReject, policy::Protocol::kTcp, 23),
                        portRule("reject-9", VerdictAction::kReject, policy::Protocol::kUdp, 9)})));
  const Bytes syn = kTelnet.syn();
  std::vector<Bytes> answer = send({syn});
  ASSERT_EQ(answer.size(), 1u);
  ParsedPacket rst = parsed(answer[0]);
  EXPECT_EQ(addressText(rst.srcAddr, 4), "10.2.0.1");
  EXPECT_EQ(addressText(rst.dstAddr, 4), "10.1.0.1");
  EXPECT_EQ(rst.srcPort, 23);
  EXPECT_EQ(rst.dstPort, 40000);
  EXPECT_EQ(rst.tcpFlags, kRst | kAck);
  EXPECT_EQ(rst.tcpAck, kClientIsn + 1);
  EXPECT_EQ(Bytes(answer[0].begin(), answer[0].begin() + 6), Bytes(syn.begin() + 6, syn.begin() + 12))
      << "back to the sender's MAC";

  Bytes datagram = ipFrame("10.1.0.1", "10.2.0.1", IPPROTO_UDP, udpDatagram(5000, 9, 10));
  answer = send({datagram});
  ASSERT_EQ(answer.size(), 1u);
  ParsedPacket icmp = parsed(answer[0]);
  EXPECT_EQ(icmp.protocol, IPPROTO_ICMP);
  EXPECT_EQ(icmp.icmpType, 3);
  EXPECT_EQ(icmp.icmpCode, 3);
  EXPECT_EQ(addressText(icmp.dstAddr, 4), "10.1.0.1");
  ParsedPacket quoted;
  ASSERT_TRUE(parseIcmpErrorQuote(answer[0].data(), static_cast<uint32_t>(answer[0].size()), icmp, quoted));
  EXPECT_EQ(quoted.srcPort, 5000);
  EXPECT_EQ(quoted.dstPort, 9);
  EXPECT_EQ(counters().resetsSent, 1u);
  EXPECT_EQ(counters().unreachablesSent, 1u);
}

// After RST, a SYN with a new sequence number on the same 5-tuple is a new connection: the old flow ends
// (reason reused) and the new one is judged anew. A retransmitted SYN is not.
TEST_F(WorkerTest, AReusedFiveTupleIsANewFlow) {
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({sniRule("deny-bank", VerdictAction::kDeny, "*.bank.example")})));
  const TcpConversation web{"10.1.0.1", 41500, "10.9.0.1", 443};
  EXPECT_TRUE(passes(web.syn()));
  EXPECT_TRUE(passes(web.syn()));  // a retransmission
  EXPECT_TRUE(passes(web.synAck()));
  EXPECT_TRUE(passes(web.ack()));
  EXPECT_TRUE(passes(web.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, clientHello("www.example.org"))));
  EXPECT_TRUE(passes(web.toServer(kRst, kClientIsn + 1 + 300, 0)));
  EXPECT_EQ(counters().flowsReused, 0u);
  // The same client port again, another ISN, a denied name.
  const uint32_t isn = 77777;
  EXPECT_TRUE(passes(web.toServer(kSyn, isn, 0)));
  EXPECT_EQ(counters().flowsReused, 1u);
  EXPECT_TRUE(passes(web.toClient(kSynAck, kServerIsn, isn + 1)));
  EXPECT_TRUE(passes(web.toServer(kAck, isn + 1, kServerIsn + 1)));
  std::vector<Bytes> out =
      send({web.toServer(kPshAck, isn + 1, kServerIsn + 1, clientHello("www.bank.example"))});
  EXPECT_EQ(out.size(), 1u) << "the ClientHello dropped, the server reset";
  const Records& records = finish();
  ASSERT_EQ(records.ends(), 2u);
  EXPECT_EQ(counters().verdictsAfterL7, 2u);
  EXPECT_EQ(counters().denied, 1u);
}

// TCP Fast Open: a ClientHello in the SYN decides the flow before the SYN goes anywhere.
TEST_F(WorkerTest, AClientHelloInASynIsJudgedBeforeTheSynIsForwarded) {
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({sniRule("deny-bank", VerdictAction::kDeny, "*.bank.example")})));
  const TcpConversation bank{"10.1.0.1", 41600, "10.9.0.1", 443};
  const TcpConversation web{"10.1.0.1", 41601, "10.9.0.2", 443};
  EXPECT_TRUE(dropped(bank.toServer(kSyn, kClientIsn, 0, clientHello("www.bank.example"))));
  EXPECT_TRUE(passes(web.toServer(kSyn, kClientIsn, 0, clientHello("www.example.org"))));
  EXPECT_EQ(counters().verdictsAfterL7, 2u);
  EXPECT_EQ(counters().denied, 1u);
  EXPECT_EQ(counters().resetsSent, 0u) << "the server never saw the SYN: nothing to reset";
}

// With every inspection slot taken, a flow whose verdict waits on its SNI gets the policy's verdict without
// it (default deny), not a pass; a handshake slower than the inspection timeout gives its slot back.
TEST_F(WorkerTest, ExhaustedAndStalledInspectionsAreDecidedByTheExceptionPolicy) {
  ASSERT_NO_FATAL_FAILURE(start(defaultDeny({sniRule("allow-ok", VerdictAction::kAllow, "*.ok.example")})));
  const Bytes recordHeader = Builder().u8(0x16).u8(3).u8(1).u16(512).done();
  for (uint16_t i = 0; i < 16; ++i) {  // the pool's 16 slots, each held by a partial ClientHello
    const TcpConversation idle{"10.1.0.1", static_cast<uint16_t>(42000 + i), "10.9.0.1", 443};
    EXPECT_TRUE(passes(idle.syn()));
    EXPECT_TRUE(passes(idle.synAck()));
    EXPECT_TRUE(passes(idle.ack()));
    EXPECT_TRUE(passes(idle.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, recordHeader)));
  }
  const TcpConversation late{"10.1.0.1", 42100, "10.9.0.1", 443};
  EXPECT_TRUE(passes(late.syn()));
  EXPECT_TRUE(passes(late.synAck()));
  EXPECT_TRUE(passes(late.ack()));
  std::vector<Bytes> out =
      send({late.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, clientHello("www.ok.example"))});
  EXPECT_EQ(out.size(), 1u) << "dropped under the default deny (the server reset in its place)";
  EXPECT_EQ(counters().exceptionNoSlot, 1u);

  // Past the inspection timeout, the sweep gives the slots back and decides their flows: denied too.
  worker_->expire(nowUs_ + 6'000'000, 1024);
  EXPECT_EQ(counters().exceptionSlowHandshake, 16u);
  const TcpConversation idle0{"10.1.0.1", 42000, "10.9.0.1", 443};
  EXPECT_FALSE(passes(idle0.toServer(kPshAck, kClientIsn + 1 + 5, kServerIsn + 1, Bytes(100, 1))));
  const TcpConversation prompt{"10.1.0.1", 42200, "10.9.0.1", 443};
  EXPECT_TRUE(passes(prompt.syn()));
  EXPECT_TRUE(passes(prompt.synAck()));
  EXPECT_TRUE(passes(prompt.ack()));
  EXPECT_TRUE(passes(prompt.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, clientHello("www.ok.example"))))
      << "a slot is free again";
}

// The Internet checksum of `bytes` (RFC 1071), with a pseudo-header's words added first.
uint16_t internetChecksum(const Bytes& bytes, uint32_t pseudo) {
  uint32_t sum = pseudo;
  for (size_t i = 0; i < bytes.size(); i += 2)
    sum += uint32_t{bytes[i]} << 8 | (i + 1 < bytes.size() ? bytes[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// A TCP segment over IPv4 with its checksum filled in.
Bytes checksummedTcp(const TcpConversation& flow, uint8_t flags, uint32_t seq, uint32_t ack,
                     const Bytes& payload) {
  Address src(flow.client), dst(flow.server);
  Bytes segment = tcpSegment(flow.clientPort, flow.serverPort, flags, seq, ack, payload);
  uint32_t pseudo =
      (uint32_t{src.bytes[0]} << 8 | src.bytes[1]) + (uint32_t{src.bytes[2]} << 8 | src.bytes[3]) +
      (uint32_t{dst.bytes[0]} << 8 | dst.bytes[1]) + (uint32_t{dst.bytes[2]} << 8 | dst.bytes[3]) +
      IPPROTO_TCP + static_cast<uint32_t>(segment.size());
  uint16_t checksum = internetChecksum(segment, pseudo);
  segment[16] = static_cast<uint8_t>(checksum >> 8);
  segment[17] = static_cast<uint8_t>(checksum);
  return ipFrame(flow.client, flow.server, IPPROTO_TCP, segment);
}

// A segment with a bad checksum never decides a flow: its receiver drops it, so vgate must not believe it.
TEST_F(WorkerTest, PacketsWithBadChecksumsNeverTouchAFlow) {
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({}), true));
  Bytes good = checksummedTcp(kTelnet, kSyn, kClientIsn, 0, {});
  Bytes badTcp = good;
  badTcp[14 + 20 + 17] ^= 0x01;
  Bytes badIp = good;
  badIp[14 + 10] ^= 0x01;
  EXPECT_TRUE(dropped(badTcp));
  EXPECT_TRUE(dropped(badIp));
  EXPECT_EQ(counters().checksumErrors, 2u);
  EXPECT_EQ(counters().flowsCreated, 0u);
  EXPECT_EQ(counters().denied, 0u) << "not a verdict";
  EXPECT_TRUE(passes(good));
  EXPECT_EQ(counters().flowsCreated, 1u);
}

// A retransmission that carries other bytes than the first copy (an insertion: one end would read one, vgate
// the other) denies the flow, even one already allowed.
TEST_F(WorkerTest, ConflictingRetransmissionsDenyTheFlow) {
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({sniRule("deny-bank", VerdictAction::kDeny, "*.bank.example")})));
  const TcpConversation web{"10.1.0.1", 41700, "10.9.0.1", 443};
  EXPECT_TRUE(passes(web.syn()));
  EXPECT_TRUE(passes(web.synAck()));
  EXPECT_TRUE(passes(web.ack()));
  Bytes hello = clientHello("www.example.org");
  Bytes first(hello.begin(), hello.begin() + 40);
  EXPECT_TRUE(passes(web.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, first)));
  Bytes other = first;
  other[30] ^= 0xff;
  EXPECT_FALSE(passes(web.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, other)));
  EXPECT_EQ(counters().overlapDenied, 1u);
  EXPECT_TRUE(dropped(
      web.toServer(kPshAck, kClientIsn + 1 + 40, kServerIsn + 1, Bytes(hello.begin() + 40, hello.end()))));
  const Records& records = finish();
  const FlowEndRecord* flow = records.endOf("10.1.0.1", 41700);
  ASSERT_NE(flow, nullptr);
  EXPECT_EQ(flow->action, VerdictAction::kDeny);
}

// TLS records that start a ClientHello but do not parse leave an SNI rule nothing to judge: denied, not
// decided as if no ClientHello had come (which a deny-list would let pass).
TEST_F(WorkerTest, AnUnreadableClientHelloIsDenied) {
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({sniRule("deny-bank", VerdictAction::kDeny, "*.bank.example")})));
  const TcpConversation web{"10.1.0.1", 41800, "10.9.0.1", 443};
  EXPECT_TRUE(passes(web.syn()));
  EXPECT_TRUE(passes(web.synAck()));
  EXPECT_TRUE(passes(web.ack()));
  Bytes garbage =
      Builder().u8(0x16).u8(3).u8(1).u16(8).u8(1).u24(4).u32(0xdeadbeef).done();  // a 4-byte hello
  EXPECT_FALSE(passes(web.toServer(kPshAck, kClientIsn + 1, kServerIsn + 1, garbage)));
  EXPECT_EQ(counters().unreadableHelloDenied, 1u);
}

// Flow ids: from 1 without a seed (replay: the same ids on every run), from the seed on live, where each run
// has its own, so that a log spanning restarts never names two flows alike. Always below 2^53.
TEST_F(WorkerTest, FlowIdsStartAtTheSeed) {
  const uint64_t seed = 0x123456789abcdefull;
  ASSERT_NO_FATAL_FAILURE(start(makePolicy({}), false, seed));
  EXPECT_TRUE(passes(kTelnet.syn()));
  const Records& records = finish();
  const FlowEndRecord* telnet = records.endOf("10.1.0.1", 40000);
  ASSERT_NE(telnet, nullptr);
  EXPECT_EQ(telnet->flowId, ((seed + 1) & ((uint64_t{1} << 45) - 1)) << 8);
  EXPECT_LT(telnet->flowId, uint64_t{1} << 53);
}

}  // namespace
}  // namespace vgate::dataplane
