// Tests of the L7 inspector and its state pool: TLS ClientHellos, HTTP request heads and QUIC Initials fed as
// real frames (split, reordered, retransmitted), what collectFacts, fillMetadata and appProto make of them.
#include "dataplane/inspect/inspector.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <rte_memory.h>

#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tests/support/eal_environment.h"

namespace vgate::dataplane {
namespace {

using Bytes = std::vector<uint8_t>;

static_assert(!std::is_copy_constructible_v<InspectionFacts>);
static_assert(!std::is_copy_assignable_v<InspectionFacts>);

constexpr uint8_t kSyn = 0x02;
constexpr uint8_t kRst = 0x04;
constexpr uint8_t kPshAck = 0x18;
constexpr uint16_t kServerPort = 443;
constexpr uint32_t kIsn[2] = {1000, 900000};  // client's, server's initial sequence number

Bytes bytesOf(std::string_view text) { return Bytes(text.begin(), text.end()); }
std::string_view textOf(const char* field) { return field; }

void put16(Bytes& out, uint32_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void put32(Bytes& out, uint32_t value) {
  put16(out, value >> 16);
  put16(out, value);
}

// Ethernet + IPv4 + TCP, client 10.0.0.1:40000 and server 10.0.0.2:443, `direction` saying who sends.
Bytes tcpFrame(int direction, uint32_t seq, uint8_t flags, const Bytes& payload) {
  const uint8_t client[4] = {10, 0, 0, 1};
  const uint8_t server[4] = {10, 0, 0, 2};
  const bool toServer = direction == kToServer;
  Bytes frame = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
  frame.insert(frame.end(), {0x45, 0});
  put16(frame, 40 + payload.size());
  frame.insert(frame.end(), {0, 1, 0x40, 0, 64, 6, 0, 0});
  frame.insert(frame.end(), toServer ? client : server, (toServer ? client : server) + 4);
  frame.insert(frame.end(), toServer ? server : client, (toServer ? server : client) + 4);
  put16(frame, toServer ? 40000 : kServerPort);
  put16(frame, toServer ? kServerPort : 40000);
  put32(frame, seq);
  put32(frame, 0);
  frame.insert(frame.end(), {0x50, flags, 0xff, 0xff, 0, 0, 0, 0});
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

// One frame of a capture, parsed.
struct CapturedPacket {
  ParsedPacket packet;
  Bytes frame;
  int direction() const { return packet.dstPort == kServerPort ? kToServer : kToClient; }
  const uint8_t* payload() const { return frame.data() + packet.payloadOffset; }
};

std::vector<CapturedPacket> readCapture(const std::string& name) {
  std::vector<CapturedPacket> packets;
  char error[PCAP_ERRBUF_SIZE] = {};
  pcap_t* capture = pcap_open_offline((std::string(VGATE_TEST_DATA_DIR) + "/pcap/" + name).c_str(), error);
  EXPECT_NE(capture, nullptr) << error;
  if (capture == nullptr) return packets;
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(capture, &header, &data) == 1) {
    CapturedPacket captured;
    captured.frame.assign(data, data + header->caplen);
    EXPECT_EQ(parsePacket(data, header->caplen, header->caplen, captured.packet), ParseStatus::kOk);
    packets.push_back(std::move(captured));
  }
  pcap_close(capture);
  return packets;
}

// The client's first payload in curl_https_h1_tls13.pcap: one TLS 1.3 ClientHello for www.vgate.test.
Bytes curlClientHello() {
  for (const CapturedPacket& captured : readCapture("curl_https_h1_tls13.pcap")) {
    if (captured.direction() == kToServer && captured.packet.payloadLength > 0) {
      return Bytes(captured.payload(), captured.payload() + captured.packet.payloadLength);
    }
  }
  return {};
}

Bytes slice(const Bytes& bytes, size_t from, size_t to) {
  return Bytes(bytes.begin() + from, bytes.begin() + to);
}

class InspectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pool = InspectionPool::create(2, SOCKET_ID_ANY);
    ASSERT_TRUE(pool) << pool.error().message;
    pool_ = std::move(pool).value();
    // As the worker does once it saw both SYNs: stream byte 0 follows each side's ISN.
    const uint32_t bases[2] = {kIsn[kToServer] + 1, kIsn[kToClient] + 1};
    index_ = pool_->acquire(bases, 0b11);
    ASSERT_NE(index_, UINT32_MAX);
  }
  void TearDown() override {
    if (pool_ != nullptr && index_ != UINT32_MAX) pool_->release(index_);
  }

  InspectionState& state() { return pool_->at(index_); }

  // Sends `payload` at stream offset `offset` of `direction` as one TCP segment; returns onPacket's answer.
  bool send(int direction, uint32_t offset, const Bytes& payload, uint8_t flags = kPshAck) {
    Bytes frame = tcpFrame(direction, kIsn[direction] + 1 + offset, flags, payload);
    ParsedPacket packet;
    EXPECT_EQ(parsePacket(frame.data(), static_cast<uint32_t>(frame.size()),
                          static_cast<uint32_t>(frame.size()), packet),
              ParseStatus::kOk);
    EXPECT_EQ(packet.payloadLength, payload.size());
    return inspector_->onPacket(state(), packet, frame.data() + packet.payloadOffset, direction);
  }
  bool send(int direction, uint32_t offset, std::string_view text) {
    return send(direction, offset, bytesOf(text));
  }

  bool send(const CapturedPacket& captured) {
    return inspector_->onPacket(state(), captured.packet, captured.payload(), captured.direction());
  }

  std::unique_ptr<InspectionPool> pool_;
  uint32_t index_ = UINT32_MAX;
  std::unique_ptr<Inspector> inspector_ = std::make_unique<Inspector>();  // 64 KiB of QUIC plaintext
};

TEST_F(InspectorTest, ClientHelloInReorderedSegmentsGivesSniAndAlpn) {
  const Bytes hello = curlClientHello();
  ASSERT_EQ(hello.size(), 517u);
  // Three segments, the last first: nothing is known until the hole at byte 100 fills.
  EXPECT_FALSE(send(kToServer, 300, slice(hello, 300, hello.size())));
  EXPECT_FALSE(send(kToServer, 0, slice(hello, 0, 100)));
  {
    InspectionFacts facts;
    Inspector::collectFacts(state(), facts);
    EXPECT_EQ(facts.facts.presentFields, kFactPayloadToServer);
    EXPECT_EQ(facts.facts.payloadToServer.size(), 100u);
    // Began as TLS, no whole ClientHello yet: named failed if the flow ended now.
    EXPECT_EQ(Inspector::appProto(state()), AppProto::kFailed);
  }
  // The client's side is done, the server's first flight is still awaited.
  EXPECT_FALSE(send(kToServer, 100, slice(hello, 100, 300)));
  EXPECT_EQ(inspector_->counters().tlsClientHellos, 1u);
  EXPECT_EQ(inspector_->counters().tlsClientHelloErrors, 0u);

  InspectionFacts facts;
  Inspector::collectFacts(state(), facts);
  const L7Facts& l7 = facts.facts;
  EXPECT_EQ(l7.presentFields, kFactSni | kFactAlpn | kFactPayloadToServer);
  EXPECT_EQ(l7.sni, "www.vgate.test");
  ASSERT_EQ(l7.alpnCount, 1u);
  EXPECT_EQ(l7.alpn[0], "http/1.1");
  EXPECT_EQ(l7.payloadToServer.size(), hello.size());
  EXPECT_EQ(Inspector::appProto(state()), AppProto::kTls);

  FlowMetadataRecord record;
  ASSERT_TRUE(Inspector::fillMetadata(state(), record));
  EXPECT_EQ(record.appProto, AppProto::kTls);
  EXPECT_TRUE(record.tls.present);
  EXPECT_EQ(textOf(record.tls.sni), "www.vgate.test");
  ASSERT_EQ(record.tls.alpnCount, 1u);
  EXPECT_EQ(textOf(record.tls.alpn[0]), "http/1.1");
  EXPECT_EQ(record.tls.version, 0x0304);  // the client's highest supported_versions entry
  EXPECT_EQ(std::strlen(record.tls.ja3), 32u);
  EXPECT_EQ(textOf(record.tls.ja4).substr(0, 3), "t13");
  EXPECT_FALSE(record.tls.hasCertificate);
  EXPECT_FALSE(record.quic.present);
  EXPECT_FALSE(record.http.present);

  // A reset ends what the server could still send.
  EXPECT_TRUE(send(kToClient, 0, Bytes{}, kRst));
}

TEST_F(InspectorTest, WholeTls13CaptureEndsAtTheServersFirstFlight) {
  const std::vector<CapturedPacket> packets = readCapture("curl_https_h1_tls13.pcap");
  ASSERT_EQ(packets.size(), 23u);
  size_t fed = 0;
  while (fed < packets.size() && !send(packets[fed])) ++fed;
  // SYN, SYN-ACK, ACK, ClientHello, ACK, then the server's ServerHello (the rest is encrypted).
  EXPECT_EQ(fed, 5u);
  EXPECT_EQ(Inspector::appProto(state()), AppProto::kTls);
  FlowMetadataRecord record;
  ASSERT_TRUE(Inspector::fillMetadata(state(), record));
  EXPECT_EQ(textOf(record.tls.sni), "www.vgate.test");
  EXPECT_EQ(record.tls.version, 0x0304);
  EXPECT_FALSE(record.tls.hasCertificate);  // TLS 1.3 encrypts it
}

TEST_F(InspectorTest, HttpRequestHeadInSegmentsGivesHostPathAndMethod) {
  const std::string head =
      "GET /search/items?q=shoes&page=2 HTTP/1.1\r\nHost: Shop.Example:8080\r\nUser-Agent: probe/1\r\n\r\n";
  // Two bytes could begin any method: the inspector waits for more before deciding.
  EXPECT_FALSE(send(kToServer, 0, head.substr(0, 2)));
  EXPECT_EQ(state().proto, AppProto::kUnknown);
  EXPECT_FALSE(send(kToServer, 2, head.substr(2, 40)));
  EXPECT_EQ(state().proto, AppProto::kHttp);
  EXPECT_FALSE(state().httpComplete);
  // The response is not inspected: the request's end finishes the flow's inspection.
  EXPECT_TRUE(send(kToServer, 42, head.substr(42)));
  EXPECT_EQ(inspector_->counters().httpRequests, 1u);

  InspectionFacts facts;
  Inspector::collectFacts(state(), facts);
  const L7Facts& l7 = facts.facts;
  EXPECT_EQ(l7.presentFields, kFactHttpHost | kFactHttpPath | kFactHttpMethod | kFactPayloadToServer);
  EXPECT_EQ(l7.httpHost, "shop.example");
  EXPECT_EQ(l7.httpPath, "/search/items");
  EXPECT_EQ(l7.httpMethod, "GET");
  EXPECT_EQ(l7.payloadToServer, head);
  EXPECT_EQ(Inspector::appProto(state()), AppProto::kHttp);

  FlowMetadataRecord record;
  ASSERT_TRUE(Inspector::fillMetadata(state(), record));
  EXPECT_EQ(record.appProto, AppProto::kHttp);
  EXPECT_TRUE(record.http.present);
  EXPECT_EQ(textOf(record.http.hostname), "shop.example");
  EXPECT_EQ(textOf(record.http.url), "/search/items?q=shoes&page=2");  // the record keeps the query
  EXPECT_EQ(textOf(record.http.method), "GET");
  EXPECT_EQ(textOf(record.http.protocol), "HTTP/1.1");
  EXPECT_EQ(textOf(record.http.userAgent), "probe/1");
  EXPECT_FALSE(record.tls.present);
}

// Judges each request of a perRequest stream by the path of its normalized target, keeping what it saw.
struct PathJudge {
  std::vector<std::string> paths;
  std::vector<HttpRefusal> refusals;
  std::string deny;  // a path denied, if any

  HttpJudge judge() {
    return HttpJudge{[](void* context, const InspectionState& state) {
                       auto* self = static_cast<PathJudge*>(context);
                       if (state.httpStream.refusal != HttpRefusal::kNone) {
                         self->refusals.push_back(state.httpStream.refusal);
                         return false;
                       }
                       InspectionFacts facts;
                       Inspector::collectFacts(state, facts);
                       self->paths.emplace_back(facts.facts.httpPath);
                       return facts.facts.httpPath != self->deny;
                     },
                     this};
  }
};

TEST_F(InspectorTest, PerRequestStreamsHandEveryRequestToTheJudge) {
  state().httpStream.perRequest = true;
  PathJudge paths;
  const HttpJudge judge = paths.judge();
  auto sendJudged = [&](uint32_t offset, const std::string& text) {
    Bytes frame = tcpFrame(kToServer, kIsn[kToServer] + 1 + offset, kPshAck, bytesOf(text));
    ParsedPacket packet;
    EXPECT_EQ(parsePacket(frame.data(), static_cast<uint32_t>(frame.size()),
                          static_cast<uint32_t>(frame.size()), packet),
              ParseStatus::kOk);
    return inspector_->onPacket(state(), packet, frame.data() + packet.payloadOffset, kToServer, &judge);
  };
  const std::string stream =
      "PROPFIND /%61 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
      "GET //b/./c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nxyz\r\n0\r\n\r\n"
      "\r\nGET /d/../e?q HTTP/1.1\r\nHost: a\r\n\r\n";
  // Fed in 7-byte pieces: heads, bodies and chunk lines all split.
  for (uint32_t offset = 0; offset < stream.size(); offset += 7) {
    EXPECT_FALSE(sendJudged(offset, stream.substr(offset, 7))) << offset;
    EXPECT_FALSE(state().dropSegment);
  }
  EXPECT_EQ(paths.paths, (std::vector<std::string>{"/a", "/b/c", "/e"}));
  EXPECT_EQ(state().httpStream.requests, 3u);
  EXPECT_EQ(inspector_->counters().httpRequestsJudged, 3u);
  EXPECT_STREQ(state().http.method, "PROPFIND");  // the first request stays the record's

  // A segment that leaves a hole is dropped and not read; the denied request then stops the reading.
  const uint32_t end = static_cast<uint32_t>(stream.size());
  const std::string denied = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_FALSE(sendJudged(end + 4, denied.substr(4)));
  EXPECT_TRUE(state().dropSegment);
  EXPECT_EQ(inspector_->counters().httpOutOfOrder, 1u);
  paths.deny = "/x";
  EXPECT_FALSE(sendJudged(end, denied.substr(0, 4)));
  EXPECT_TRUE(sendJudged(end + 4, denied.substr(4)));  // denied: the client's side is done
  EXPECT_EQ(paths.paths.back(), "/x");
  EXPECT_EQ(state().httpStream.deniedRequest, 4u);
  FlowMetadataRecord record;
  ASSERT_TRUE(Inspector::fillMetadata(state(), record));
  EXPECT_EQ(record.http.requests, 4u);
  EXPECT_EQ(record.http.deniedRequest, 4u);
  EXPECT_EQ(textOf(record.http.deniedPath), "/x");
  EXPECT_EQ(textOf(record.http.url), "/%61");
}

TEST_F(InspectorTest, PerRequestStreamsRefuseWhatTheyCannotRead) {
  state().httpStream.perRequest = true;
  PathJudge paths;
  const HttpJudge judge = paths.judge();
  Bytes frame = tcpFrame(kToServer, kIsn[kToServer] + 1, kPshAck,
                         bytesOf("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /a%2fb HTTP/1.1\r\nHost: a\r\n\r\n"));
  ParsedPacket packet;
  ASSERT_EQ(parsePacket(frame.data(), static_cast<uint32_t>(frame.size()),
                        static_cast<uint32_t>(frame.size()), packet),
            ParseStatus::kOk);
  EXPECT_TRUE(inspector_->onPacket(state(), packet, frame.data() + packet.payloadOffset, kToServer, &judge));
  EXPECT_EQ(paths.paths, std::vector<std::string>{"/"});
  EXPECT_EQ(paths.refusals, std::vector<HttpRefusal>{HttpRefusal::kTarget});
  EXPECT_EQ(state().httpStream.deniedRequest, 2u);
  EXPECT_EQ(inspector_->counters().httpNormalizationRefused, 1u);
}

TEST_F(InspectorTest, RetransmissionWithOtherBytesIsCountedAndTheFirstCopyKept) {
  EXPECT_FALSE(send(kToServer, 0, "GET /a HTTP/1.1\r\n"));
  EXPECT_FALSE(send(kToServer, 0, "GET /a HTTP/1.1\r\n"));  // an honest retransmission
  EXPECT_EQ(inspector_->counters().overlapConflicts, 0u);
  EXPECT_FALSE(send(kToServer, 0, "GET /b HTTP/1.1\r\n"));
  EXPECT_EQ(inspector_->counters().overlapConflicts, 1u);
  EXPECT_TRUE(send(kToServer, 17, "Host: a.example\r\n\r\n"));
  InspectionFacts facts;
  Inspector::collectFacts(state(), facts);
  EXPECT_EQ(facts.facts.httpPath, "/a");
}

TEST_F(InspectorTest, ServerThatSpeaksFirstEndsInspection) {
  // SSH, SMTP and the like greet first: none of TLS, HTTP or QUIC, so nothing to wait for.
  EXPECT_TRUE(send(kToClient, 0, "SSH-2.0-OpenSSH_9.2\r\n"));
  EXPECT_EQ(Inspector::appProto(state()), AppProto::kUnknown);
  FlowMetadataRecord record;
  EXPECT_FALSE(Inspector::fillMetadata(state(), record));
  EXPECT_EQ(record.appProto, AppProto::kUnknown);
  InspectionFacts facts;
  Inspector::collectFacts(state(), facts);
  EXPECT_EQ(facts.facts.presentFields, kFactPayloadToClient);
}

TEST_F(InspectorTest, ClientThatSpeaksNeitherTlsNorHttpEndsInspection) {
  EXPECT_TRUE(send(kToServer, 0, Bytes{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
  EXPECT_EQ(Inspector::appProto(state()), AppProto::kUnknown);
  FlowMetadataRecord record;
  EXPECT_FALSE(Inspector::fillMetadata(state(), record));
}

TEST_F(InspectorTest, SynSetsTheStreamBase) {
  const uint32_t clientIsn = 77777;
  Bytes syn = tcpFrame(kToServer, clientIsn, kSyn, {});
  ParsedPacket packet;
  ASSERT_EQ(
      parsePacket(syn.data(), static_cast<uint32_t>(syn.size()), static_cast<uint32_t>(syn.size()), packet),
      ParseStatus::kOk);
  EXPECT_FALSE(inspector_->onPacket(state(), packet, syn.data() + packet.payloadOffset, kToServer));
  EXPECT_EQ(state().streamBase[kToServer], clientIsn + 1);
  // The first payload after the SYN is stream byte 0, whatever base the slot was given.
  EXPECT_TRUE(send(kToServer, clientIsn + 1 - (kIsn[kToServer] + 1), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"));
  InspectionFacts facts;
  Inspector::collectFacts(state(), facts);
  EXPECT_EQ(facts.facts.httpPath, "/x");
}

struct QuicCase {
  const char* file;
  const char* sni;
  size_t datagramsUntilHello;
};

void PrintTo(const QuicCase& c, std::ostream* out) { *out << c.file; }

class InspectorQuicTest : public InspectorTest, public ::testing::WithParamInterface<QuicCase> {};

TEST_P(InspectorQuicTest, ClientInitialGivesSni) {
  const QuicCase& c = GetParam();
  const std::vector<CapturedPacket> packets = readCapture(c.file);
  ASSERT_GE(packets.size(), c.datagramsUntilHello);
  for (size_t i = 0; i < c.datagramsUntilHello; ++i) {
    EXPECT_EQ(send(packets[i]), i + 1 == c.datagramsUntilHello) << "datagram " << i;
  }
  EXPECT_EQ(inspector_->counters().quicInitials, c.datagramsUntilHello);
  EXPECT_EQ(inspector_->counters().quicClientHellos, 1u);
  EXPECT_EQ(Inspector::appProto(state()), AppProto::kQuic);

  InspectionFacts facts;
  Inspector::collectFacts(state(), facts);
  EXPECT_EQ(facts.facts.sni, c.sni);
  ASSERT_EQ(facts.facts.alpnCount, 1u);
  EXPECT_EQ(facts.facts.alpn[0], "h3");
  EXPECT_EQ(facts.facts.presentFields & (kFactSni | kFactAlpn), kFactSni | kFactAlpn);

  FlowMetadataRecord record;
  ASSERT_TRUE(Inspector::fillMetadata(state(), record));
  EXPECT_EQ(record.appProto, AppProto::kQuic);
  EXPECT_TRUE(record.quic.present);
  EXPECT_EQ(record.quic.version, 1u);
  EXPECT_EQ(textOf(record.tls.sni), c.sni);
}

INSTANTIATE_TEST_SUITE_P(
    Captures, InspectorQuicTest,
    ::testing::Values(QuicCase{"crafted_quic_initial.pcap", "quicinit.vgate.test", 1},
                      // the second half of the ClientHello arrives first
                      QuicCase{"crafted_quic_initial_split.pcap", "quicsplit.vgate.test", 2}),
    [](const auto& test) { return std::string(test.param.datagramsUntilHello == 1 ? "Whole" : "Split"); });

TEST(InspectionPool, ZeroSlotsIsInvalid) {
  auto pool = InspectionPool::create(0, SOCKET_ID_ANY);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().code, EINVAL);
}

TEST(InspectionPool, AcquireUntilExhaustedAndReleasedSlotsComeBackCleared) {
  auto created = InspectionPool::create(3, SOCKET_ID_ANY);
  ASSERT_TRUE(created) << created.error().message;
  InspectionPool& pool = *created.value();
  EXPECT_EQ(pool.slots(), 3u);
  EXPECT_EQ(pool.inUse(), 0u);
  const uint32_t bases[2] = {11, 22};
  std::vector<uint32_t> taken;
  for (int i = 0; i < 3; ++i) {
    uint32_t index = pool.acquire(bases, 0b01);
    ASSERT_LT(index, 3u);
    for (uint32_t other : taken) {
      EXPECT_NE(index, other);
    }
    taken.push_back(index);
    EXPECT_EQ(pool.inUse(), taken.size());
  }
  EXPECT_EQ(pool.acquire(bases, 0), UINT32_MAX);
  EXPECT_EQ(pool.inUse(), 3u);

  // Dirty a slot the way an inspection does, give it back, and take it again.
  const uint32_t dirty = taken[1];
  InspectionState& used = pool.at(dirty);
  const Bytes bytes = bytesOf("GET / HTTP/1.1\r\n");
  used.stream[kToServer].insert(0, bytes.data(), static_cast<uint32_t>(bytes.size()));
  used.clientSpoke = used.helloComplete = used.clientDone = true;
  used.proto = AppProto::kTls;
  used.hello.hasSni = true;
  std::strcpy(used.hello.sni, "old.example");
  pool.release(dirty);
  EXPECT_EQ(pool.inUse(), 2u);

  const uint32_t again = pool.acquire(bases, 0b10);
  ASSERT_EQ(again, dirty);  // the free list is a stack
  const InspectionState& fresh = pool.at(again);
  EXPECT_EQ(fresh.stream[kToServer].contiguousLength(), 0u);
  EXPECT_EQ(fresh.stream[kToServer].capacity(), kInspectionWindow);
  EXPECT_FALSE(fresh.clientSpoke || fresh.helloComplete || fresh.clientDone || fresh.hello.hasSni);
  EXPECT_EQ(fresh.proto, AppProto::kUnknown);
  EXPECT_EQ(fresh.hello.sni[0], '\0');
  EXPECT_FALSE(fresh.baseKnown[kToServer]);
  EXPECT_TRUE(fresh.baseKnown[kToClient]);
  EXPECT_EQ(fresh.streamBase[kToClient], 22u);

  for (uint32_t index : taken) pool.release(index);
  EXPECT_EQ(pool.inUse(), 0u);
}

}  // namespace
}  // namespace vgate::dataplane
