// Randomized flow records, metadata, policies and port identities for the flow log's equivalence test and
// benchmarks: every record kind (v4/v6, TCP/UDP/ICMP/other, with and without TLS/QUIC/HTTP metadata, ports,
// policies), with strings that mix ASCII, JSON's special characters, valid UTF-8 and invalid bytes.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "control/flowlog/flow_log_format.h"
#include "vgate/flow_record.h"

namespace vgate::testing {

class RandomFlowRecords {
 public:
  explicit RandomFlowRecords(uint64_t seed) : rng_(seed) {}

  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }
  uint64_t any64() { return rng_(); }

  // Up to `maxLength` bytes. `nasty` mixes in escapes, multi-byte UTF-8 and invalid sequences.
  std::string text(size_t maxLength, bool nasty) {
    static const char* const kPieces[] = {"\"",
                                          "\\",
                                          "\n",
                                          "\t",
                                          "\b",
                                          "\f",
                                          "\r",
                                          "\x01",
                                          "\x1f",
                                          "\x7f",
                                          "/",
                                          "\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "\xf0\x9f\x98\x80",
                                          "\x80",
                                          "\xff",
                                          "\xc0\xaf",
                                          "\xe0\x80",
                                          "\xed\xa0\x80",
                                          "\xf4\x90\x80\x80",
                                          "\xc3",
                                          "\xe2\x82",
                                          "\xf0\x9f\x98",
                                          "\xfe",
                                          "\xc2\xa0",
                                          "\xef\xbf\xbd"};
    size_t length = below(maxLength + 1);
    std::string out;
    while (out.size() < length) {
      if (nasty && chance(25)) {
        out += kPieces[below(std::size(kPieces))];
      } else {
        out.push_back(static_cast<char>(' ' + below(95)));
      }
    }
    if (out.size() > maxLength) out.resize(maxLength);
    return out;
  }

  template <size_t N>
  void fill(char (&field)[N], bool nasty, int emptyPercent = 20) {
    std::memset(field, 0, N);
    if (chance(emptyPercent)) return;
    std::string value = text(N - 1, nasty);
    // A NUL inside would end the field early in both formatters alike; keep the test about the bytes after.
    for (char& c : value) {
      if (c == '\0') c = 'z';
    }
    std::memcpy(field, value.data(), value.size());
  }

  FlowEndRecord record() {
    FlowEndRecord record;
    record.ipVersion = chance(70) ? 4 : 6;
    static constexpr uint8_t kProtocols[] = {
        IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, 47, 0, 255};
    record.protocol = kProtocols[below(std::size(kProtocols))];
    for (auto* address : {record.srcAddr, record.dstAddr}) {
      for (int i = 0; i < 16; ++i) address[i] = static_cast<uint8_t>(chance(30) ? 0 : below(256));
      if (record.ipVersion == 6 && chance(10)) {  // v4-mapped and runs of zeros, which inet_ntop spells out
        std::memset(address, 0, 10);
        address[10] = address[11] = 0xff;
      }
      if (record.ipVersion == 4) std::memset(address + 4, 0, 12);
    }
    if (chance(5)) std::memcpy(record.dstAddr, record.srcAddr, 16);
    record.srcPort = static_cast<uint16_t>(below(65536));
    record.dstPort = static_cast<uint16_t>(chance(50) ? below(1024) : below(65536));
    record.icmpType = static_cast<uint8_t>(chance(50) ? below(20) : below(256));
    record.icmpCode = static_cast<uint8_t>(below(16));
    record.tcpFlags[kToServer] = static_cast<uint8_t>(below(256));
    record.tcpFlags[kToClient] = static_cast<uint8_t>(below(256));
    record.vlanCount = static_cast<uint8_t>(chance(70) ? 0 : below(4));
    record.vlanIds[0] = static_cast<uint16_t>(below(4096));
    record.vlanIds[1] = static_cast<uint16_t>(below(4096));
    record.state = static_cast<FlowState>(below(3));
    record.reason = static_cast<FlowEndReason>(below(6));
    record.appProto = static_cast<AppProto>(below(5));
    record.action = static_cast<VerdictAction>(below(4));
    record.mode = static_cast<PolicyMode>(below(2));
    record.hasMetadata = chance(50);
    record.decidedAtEnd = chance(20);
    record.portPair = static_cast<uint16_t>(chance(40) ? 0 : 1 + below(4094));
    record.ruleId = chance(30) ? UINT32_MAX : static_cast<uint32_t>(below(6));
    record.policyVersion = static_cast<uint32_t>(below(4));
    record.flowId = chance(50) ? below(1u << 20) : any64();
    uint64_t base = 1'700'000'000'000'000ull + below(400'000'000'000'000ull);
    record.startUs = chance(3) ? 0 : chance(3) ? any64() >> (10 + below(6)) : base;
    record.endUs = chance(5) ? record.startUs - below(1000) : record.startUs + below(100'000'000'000ull);
    for (int d = 0; d < 2; ++d) {
      record.pkts[d] = chance(90) ? below(100000) : any64();
      record.bytes[d] = chance(90) ? below(100'000'000) : any64();
    }
    return record;
  }

  FlowMetadataRecord metadata(uint64_t flowId) {
    FlowMetadataRecord metadata;
    metadata.flowId = flowId;
    auto& tls = metadata.tls;
    tls.present = chance(60);
    metadata.quic.present = chance(20);
    metadata.http.present = chance(40);
    metadata.appProto = static_cast<AppProto>(below(5));
    tls.echOuter = chance(10);
    static constexpr uint16_t kVersions[] = {0x0200, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0, 0x7f1c};
    tls.version = kVersions[below(std::size(kVersions))];
    tls.alpnCount = static_cast<uint8_t>(below(11));
    fill(tls.sni, true);
    for (auto& alpn : tls.alpn) fill(alpn, true, 0);
    fill(tls.ja3, false);
    fill(tls.ja4, false);
    tls.hasCertificate = chance(30);
    fill(tls.subject, true);
    fill(tls.issuer, true);
    fill(tls.serial, false);
    fill(tls.fingerprint, false);
    tls.notBefore = chance(80) ? static_cast<int64_t>(1'500'000'000 + below(1'000'000'000))
                               : static_cast<int64_t>(any64() >> below(40));
    tls.notAfter = chance(90) ? tls.notBefore + static_cast<int64_t>(below(100'000'000))
                              : -static_cast<int64_t>(below(1'000'000'000'000));
    metadata.quic.version = chance(50) ? 0x6b3343cf : chance(50) ? 1 : static_cast<uint32_t>(any64());
    auto& http = metadata.http;
    fill(http.hostname, true);
    fill(http.url, true, 5);
    fill(http.method, true, 5);
    fill(http.protocol, false, 5);
    fill(http.userAgent, true);
    return metadata;
  }

  std::vector<control::PolicyNames> policies() {
    std::vector<control::PolicyNames> out;
    for (uint32_t version = 1; version <= 3; ++version) {
      control::PolicyNames names;
      names.loaded = true;
      names.version = version;
      names.policyName = text(40, true);
      size_t rules = below(7);
      for (size_t i = 0; i < rules; ++i) names.ruleNames.push_back(text(30, true));
      out.push_back(std::move(names));
    }
    return out;
  }

  control::PortIdentity port(uint16_t id) {
    control::PortIdentity port;
    port.id = id;
    port.container = text(30, true);
    port.ifname = text(15, chance(20));
    port.hostIfname = chance(20) ? "" : text(15, chance(20));
    return port;
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace vgate::testing
