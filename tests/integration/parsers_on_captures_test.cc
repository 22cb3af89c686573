// The L7 parsers on the real-client captures, without the worker: the test reassembles each flow's client
// stream itself (TCP payload by sequence number; QUIC Initials decrypted, CRYPTO frames by offset) and checks
// what the TLS, QUIC and HTTP parsers read against tests/data/captures.json.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/http/http_request.h"
#include "dataplane/packet/packet_parser.h"
#include "dataplane/quic/quic_initial.h"
#include "dataplane/tls/client_hello.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace vgate::dataplane;

const fs::path kData = VGATE_TEST_DATA_DIR;

struct Case {
  std::string file;
  Json flow;
};

std::vector<Case> cases() {
  std::ifstream in(kData / "captures.json");
  Json manifest = Json::parse(in);
  std::vector<Case> all;
  for (const auto& entry : manifest["pcaps"]) {
    if (entry["crafted"].get<bool>()) continue;  // real clients only: the crafted ones are the replay test's
    for (const auto& flow : entry["flows"]) all.push_back({entry["file"], flow});
  }
  return all;
}

std::string addressText(const ParsedPacket& packet, bool source) {
  char text[64];
  const uint8_t* a = source ? packet.srcAddr : packet.dstAddr;
  if (packet.ipVersion == 4) {
    std::snprintf(text, sizeof text, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    return text;
  }
  char v6[64];
  inet_ntop(AF_INET6, a, v6, sizeof v6);
  return v6;
}

// The client's payload packets of the flow, in capture order.
std::vector<std::pair<ParsedPacket, std::vector<uint8_t>>> clientPackets(const Case& c) {
  std::vector<std::pair<ParsedPacket, std::vector<uint8_t>>> packets;
  char error[PCAP_ERRBUF_SIZE];
  pcap_t* capture = pcap_open_offline((kData / c.file).c_str(), error);
  EXPECT_NE(capture, nullptr) << error;
  if (capture == nullptr) return packets;
  pcap_pkthdr* header;
  const u_char* data;
  while (pcap_next_ex(capture, &header, &data) == 1) {
    ParsedPacket packet;
    if (parsePacket(data, header->caplen, header->caplen, packet) != ParseStatus::kOk) continue;
    if (addressText(packet, true) != c.flow["src_ip"] || packet.srcPort != c.flow["src_port"]) continue;
    if (addressText(packet, false) != c.flow["dest_ip"] || packet.dstPort != c.flow["dest_port"]) continue;
    if (packet.payloadLength == 0) continue;
    packets.push_back(
        {packet, {data + packet.payloadOffset, data + packet.payloadOffset + packet.payloadLength}});
  }
  pcap_close(capture);
  return packets;
}

class ParsersOnCaptures : public ::testing::TestWithParam<Case> {};

TEST_P(ParsersOnCaptures, ReadWhatTheClientSent) {
  const Case& c = GetParam();
  auto packets = clientPackets(c);
  ASSERT_FALSE(packets.empty());
  tls::ClientHelloParser parser;
  tls::ClientHello hello;
  if (c.flow.contains("tls") || c.flow.contains("http")) {
    std::map<uint32_t, std::vector<uint8_t>> bySeq;
    for (auto& [packet, payload] : packets) bySeq.emplace(packet.tcpSeq, payload);
    std::vector<uint8_t> stream;
    for (auto& [seq, payload] : bySeq) stream.insert(stream.end(), payload.begin(), payload.end());
    if (c.flow.contains("tls")) {
      ASSERT_EQ(parser.parseRecords(stream.data(), stream.size(), hello), tls::ClientHelloStatus::kComplete);
      EXPECT_EQ(std::string(hello.sni), c.flow["tls"]["sni"]);
      std::vector<std::string> alpn(hello.alpn, hello.alpn + hello.alpnCount);
      EXPECT_EQ(Json(alpn), c.flow["tls"]["alpn"]);
      EXPECT_EQ(hello.maxSupportedVersion,
                0x0304);  // every client here offers TLS 1.3 (the server may pick 1.2)
      EXPECT_EQ(std::string(hello.ja4).substr(0, 4), "t13d");
    } else {
      http::HttpRequest request;
      ASSERT_EQ(http::parseHttpRequest(stream.data(), stream.size(), request), http::HttpStatus::kComplete);
      EXPECT_EQ(std::string(request.host), c.flow["http"]["hostname"]);
      EXPECT_EQ(std::string(request.url), c.flow["http"]["url"]);
      EXPECT_EQ(std::string(request.method), c.flow["http"]["http_method"]);
    }
  }
  if (c.flow.contains("quic")) {
    quic::InitialDecryptor decryptor;
    std::vector<uint8_t> crypto(65536);
    std::vector<bool> present(65536);
    std::vector<uint8_t> plaintext(65536);
    for (auto& [packet, payload] : packets) {
      quic::InitialPacket initial;
      if (decryptor.decryptClientInitial(payload.data(), payload.size(), plaintext.data(), plaintext.size(),
                                         initial) != quic::QuicStatus::kOk)
        continue;
      EXPECT_EQ(initial.version, c.flow["quic"]["version"].get<uint32_t>());
      for (uint32_t i = 0; i < initial.cryptoFrameCount; ++i) {
        const auto& frame = initial.crypto[i];
        for (uint32_t b = 0; b < frame.length && frame.offset + b < crypto.size(); ++b) {
          crypto[frame.offset + b] = plaintext[frame.dataOffset + b];
          present[frame.offset + b] = true;
        }
      }
    }
    size_t contiguous = 0;
    while (contiguous < present.size() && present[contiguous]) ++contiguous;
    ASSERT_EQ(parser.parseHandshake(crypto.data(), contiguous, tls::TlsTransport::kQuic, hello),
              tls::ClientHelloStatus::kComplete);
    EXPECT_EQ(std::string(hello.sni), c.flow["quic"]["sni"]);
    std::vector<std::string> alpn(hello.alpn, hello.alpn + hello.alpnCount);
    EXPECT_EQ(Json(alpn), c.flow["quic"]["alpn"]);
    EXPECT_EQ(std::string(hello.ja4).substr(0, 4), "q13d");
  }
}

INSTANTIATE_TEST_SUITE_P(RealClients, ParsersOnCaptures, ::testing::ValuesIn(cases()), [](const auto& test) {
  std::string name = fs::path(test.param.file).stem().string() + "_" +
                     std::to_string(test.param.flow["src_port"].template get<int>());
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
});

}  // namespace
