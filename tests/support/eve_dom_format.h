// The flow log's former formatter, kept only as the reference for tests and the baseline for benchmarks: it
// built each line as an nlohmann::ordered_json DOM and dumped it, with Community ID through OpenSSL's EVP and
// times through gmtime_r/strftime. control/flowlog/flow_log_format.cc must produce the same bytes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "control/flowlog/community_id.h"
#include "control/flowlog/flow_log_format.h"
#include "vgate/flow_record.h"

namespace vgate::testing::dom {

using control::CommunityIdInput;
using control::PolicyNames;
using control::PortIdentity;
using Json = nlohmann::ordered_json;

inline bool icmpCounterpart(uint8_t protocol, uint16_t type, uint16_t& counterpart) {
  struct Pair {
    uint8_t a, b;
  };
  static constexpr Pair kIcmp[] = {{8, 0}, {13, 14}, {15, 16}, {10, 9}, {17, 18}};
  static constexpr Pair kIcmp6[] = {{128, 129}, {130, 131}, {133, 134}, {135, 136}, {139, 140}, {144, 145}};
  const Pair* pairs = protocol == IPPROTO_ICMP ? kIcmp : kIcmp6;
  size_t count = protocol == IPPROTO_ICMP ? std::size(kIcmp) : std::size(kIcmp6);
  for (size_t i = 0; i < count; ++i) {
    if (type == pairs[i].a) {
      counterpart = pairs[i].b;
      return true;
    }
    if (type == pairs[i].b) {
      counterpart = pairs[i].a;
      return true;
    }
  }
  return false;
}

inline std::string evpCommunityIdV1(const CommunityIdInput& input, uint16_t seed = 0) {
  size_t addrLength = input.ipVersion == 4 ? 4 : input.ipVersion == 6 ? 16 : 0;
  if (addrLength == 0 || input.srcAddr == nullptr || input.dstAddr == nullptr) return {};
  bool hasPorts = input.protocol == IPPROTO_TCP || input.protocol == IPPROTO_UDP ||
                  input.protocol == IPPROTO_SCTP || input.protocol == IPPROTO_ICMP ||
                  input.protocol == IPPROTO_ICMPV6;
  const uint8_t* src = input.srcAddr;
  const uint8_t* dst = input.dstAddr;
  uint16_t srcPort = input.srcPort;
  uint16_t dstPort = input.dstPort;
  bool oneWay = false;
  if (input.protocol == IPPROTO_ICMP || input.protocol == IPPROTO_ICMPV6) {
    uint16_t counterpart = 0;
    if (icmpCounterpart(input.protocol, srcPort, counterpart)) {
      dstPort = counterpart;
    } else {
      oneWay = true;
    }
  }
  int order = std::memcmp(src, dst, addrLength);
  if (!oneWay && (order > 0 || (order == 0 && srcPort > dstPort))) {
    std::swap(src, dst);
    std::swap(srcPort, dstPort);
  }
  uint8_t buffer[2 + 16 + 16 + 2 + 4];
  size_t length = 0;
  buffer[length++] = static_cast<uint8_t>(seed >> 8);
  buffer[length++] = static_cast<uint8_t>(seed);
  std::memcpy(buffer + length, src, addrLength);
  length += addrLength;
  std::memcpy(buffer + length, dst, addrLength);
  length += addrLength;
  buffer[length++] = input.protocol;
  buffer[length++] = 0;
  if (hasPorts) {
    buffer[length++] = static_cast<uint8_t>(srcPort >> 8);
    buffer[length++] = static_cast<uint8_t>(srcPort);
    buffer[length++] = static_cast<uint8_t>(dstPort >> 8);
    buffer[length++] = static_cast<uint8_t>(dstPort);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  if (EVP_Digest(buffer, length, digest, &digestLength, EVP_sha1(), nullptr) != 1) return {};
  unsigned char encoded[64];
  int encodedLength = EVP_EncodeBlock(encoded, digest, static_cast<int>(digestLength));
  return "1:" + std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(encodedLength));
}

inline std::string addressText(const uint8_t* address, uint8_t ipVersion) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(ipVersion == 4 ? AF_INET : AF_INET6, address, text, sizeof(text));
  return text;
}

inline std::string hexByte(uint8_t value) {
  char text[3];
  std::snprintf(text, sizeof(text), "%02x", value);
  return text;
}

inline std::string isoSeconds(int64_t seconds) {
  std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return text;
}

inline std::string formatEveTimestamp(uint64_t microsecondsSinceEpoch) {
  std::time_t seconds = static_cast<std::time_t>(microsecondsSinceEpoch / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[48];
  size_t length = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof(text) - length, ".%06" PRIu64 "+0000",
                microsecondsSinceEpoch % 1'000'000);
  return text;
}

inline Json tcpObject(const FlowEndRecord& record) {
  uint8_t all = record.tcpFlags[kToServer] | record.tcpFlags[kToClient];
  Json tcp;
  tcp["tcp_flags"] = hexByte(all);
  tcp["tcp_flags_ts"] = hexByte(record.tcpFlags[kToServer]);
  tcp["tcp_flags_tc"] = hexByte(record.tcpFlags[kToClient]);
  static constexpr struct {
    uint8_t bit;
    const char* name;
  } kFlags[] = {{0x02, "syn"}, {0x01, "fin"}, {0x04, "rst"}, {0x08, "psh"},
                {0x10, "ack"}, {0x20, "urg"}, {0x40, "ece"}, {0x80, "cwr"}};
  for (const auto& flag : kFlags) {
    if (all & flag.bit) tcp[flag.name] = true;
  }
  return tcp;
}

inline Json formatMetadata(const FlowMetadataRecord& metadata) {
  Json app = Json::object();
  auto alpnList = [&]() {
    Json list = Json::array();
    for (int i = 0; i < metadata.tls.alpnCount && i < kMaxRecordAlpn; ++i)
      list.push_back(metadata.tls.alpn[i]);
    return list;
  };
  if (metadata.tls.present && !metadata.quic.present) {
    Json tls;
    if (metadata.tls.hasCertificate) {
      tls["subject"] = metadata.tls.subject;
      tls["issuerdn"] = metadata.tls.issuer;
      tls["serial"] = metadata.tls.serial;
      tls["fingerprint"] = metadata.tls.fingerprint;
    }
    if (metadata.tls.sni[0] != '\0') tls["sni"] = metadata.tls.sni;
    if (metadata.tls.echOuter) tls["ech_outer"] = true;
    tls["version"] = control::tlsVersionName(metadata.tls.version);
    if (metadata.tls.hasCertificate) {
      tls["notbefore"] = isoSeconds(metadata.tls.notBefore);
      tls["notafter"] = isoSeconds(metadata.tls.notAfter);
    }
    tls["alpn"] = alpnList();
    if (metadata.tls.ja3[0] != '\0') tls["ja3"] = Json{{"hash", metadata.tls.ja3}};
    if (metadata.tls.ja4[0] != '\0') tls["ja4"] = metadata.tls.ja4;
    app["tls"] = std::move(tls);
  }
  if (metadata.quic.present) {
    Json quic;
    quic["version"] = metadata.quic.version == 0x6b3343cf ? "2" : std::to_string(metadata.quic.version);
    if (metadata.tls.sni[0] != '\0') quic["sni"] = metadata.tls.sni;
    if (metadata.tls.echOuter) quic["ech_outer"] = true;
    quic["alpn"] = alpnList();
    if (metadata.tls.ja4[0] != '\0') quic["ja4"] = metadata.tls.ja4;
    app["quic"] = std::move(quic);
  }
  if (metadata.http.present) {
    Json http;
    if (metadata.http.hostname[0] != '\0') http["hostname"] = metadata.http.hostname;
    http["url"] = metadata.http.url;
    if (metadata.http.userAgent[0] != '\0') http["http_user_agent"] = metadata.http.userAgent;
    http["http_method"] = metadata.http.method;
    http["protocol"] = metadata.http.protocol;
    app["http"] = std::move(http);
  }
  return app;
}

inline std::string formatFlowRecord(const FlowEndRecord& record, const Json* metadata,
                                    const PolicyNames& policy, const PortIdentity* port = nullptr) {
  Json line;
  line["timestamp"] = formatEveTimestamp(record.endUs);
  line["flow_id"] = record.flowId;
  if (port != nullptr && !port->hostIfname.empty()) line["in_iface"] = port->hostIfname;
  line["event_type"] = "flow";
  if (record.vlanCount > 0) {
    Json vlan = Json::array();
    for (int i = 0; i < record.vlanCount && i < 2; ++i) vlan.push_back(record.vlanIds[i]);
    line["vlan"] = std::move(vlan);
  }
  bool icmp = record.protocol == IPPROTO_ICMP || record.protocol == IPPROTO_ICMPV6;
  bool ports =
      record.protocol == IPPROTO_TCP || record.protocol == IPPROTO_UDP || record.protocol == IPPROTO_SCTP;
  line["src_ip"] = addressText(record.srcAddr, record.ipVersion);
  if (ports) line["src_port"] = record.srcPort;
  line["dest_ip"] = addressText(record.dstAddr, record.ipVersion);
  if (ports) line["dest_port"] = record.dstPort;
  line["proto"] = control::protocolName(record.protocol);
  if (icmp) {
    line["icmp_type"] = record.icmpType;
    line["icmp_code"] = record.icmpCode;
  }
  if (record.appProto != AppProto::kUnknown) line["app_proto"] = appProtoName(record.appProto);
  CommunityIdInput id{record.ipVersion,
                      record.protocol,
                      record.srcAddr,
                      record.dstAddr,
                      icmp ? uint16_t{record.icmpType} : record.srcPort,
                      icmp ? uint16_t{record.icmpCode} : record.dstPort};
  std::string communityId = evpCommunityIdV1(id);
  if (!communityId.empty()) line["community_id"] = communityId;

  Json flow;
  flow["pkts_toserver"] = record.pkts[kToServer];
  flow["pkts_toclient"] = record.pkts[kToClient];
  flow["bytes_toserver"] = record.bytes[kToServer];
  flow["bytes_toclient"] = record.bytes[kToClient];
  flow["start"] = formatEveTimestamp(record.startUs);
  flow["end"] = formatEveTimestamp(record.endUs);
  flow["age"] = (record.endUs - record.startUs) / 1'000'000;
  flow["state"] = flowStateName(record.state);
  flow["reason"] = flowEndReasonName(record.reason);
  line["flow"] = std::move(flow);
  if (record.protocol == IPPROTO_TCP) line["tcp"] = tcpObject(record);
  if (metadata != nullptr) {
    for (const auto& [name, value] : metadata->items()) line[name] = value;
  }

  Json verdict;
  verdict["action"] = verdictActionName(record.action);
  bool ruled = policy.loaded && record.ruleId < policy.ruleNames.size();
  verdict["rule"] = ruled ? Json(policy.ruleNames[record.ruleId]) : Json(nullptr);
  verdict["policy"] = policy.loaded ? Json(policy.policyName) : Json(nullptr);
  verdict["policy_version"] = policy.loaded ? Json(record.policyVersion) : Json(nullptr);
  verdict["mode"] =
      policy.loaded ? Json(record.mode == PolicyMode::kAudit ? "audit" : "enforce") : Json(nullptr);
  verdict["decided_at_end"] = record.decidedAtEnd;
  line["verdict"] = std::move(verdict);
  if (record.portPair != 0) {
    Json container;
    container["port"] = record.portPair;
    container["name"] = port != nullptr ? Json(port->container) : Json(nullptr);
    container["ifname"] = port != nullptr ? Json(port->ifname) : Json(nullptr);
    line["container"] = std::move(container);
  }
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace vgate::testing::dom
