// EVE-compatible flow records, streamed: each line is written key by key into a reused buffer. The members,
// their order and every byte are those of the DOM formatter this replaced (tests/support/eve_dom_format.h),
// which a test checks on randomized records.
#include "control/flowlog/flow_log_format.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "control/flowlog/community_id.h"

namespace vgate::control {

namespace {

void appendUnsigned(std::string& out, uint64_t value) {
  char text[24];
  auto end = std::to_chars(text, text + sizeof(text), value).ptr;
  out.append(text, static_cast<size_t>(end - text));
}

void appendTwoDigits(char* at, unsigned value) {
  at[0] = static_cast<char>('0' + value / 10);
  at[1] = static_cast<char>('0' + value % 10);
}

// Days since 1970-01-01 to the proleptic Gregorian date (H. Hinnant's civil_from_days): what gmtime_r gives,
// without its lock and strftime's parsing.
void civilFromDays(int64_t days, int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  auto dayOfEra = static_cast<unsigned>(days - era * 146097);
  unsigned yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365;
  year = static_cast<int64_t>(yearOfEra) + era * 400;
  unsigned dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100);
  unsigned monthIndex = (5 * dayOfYear + 2) / 153;
  day = dayOfYear - (153 * monthIndex + 2) / 5 + 1;
  month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9;
  if (month <= 2) ++year;
}

void appendQuotedTimestamp(std::string& out, uint64_t microseconds) {
  out.push_back('"');
  appendEveTimestamp(out, microseconds);
  out.push_back('"');
}

// strftime's %Y-%m-%dT%H:%M:%S of gmtime_r, kept as it was for certificate dates (signed, once per flow).
std::string isoSeconds(int64_t seconds) {
  std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return text;
}

void appendAddress(std::string& out, const uint8_t* address, uint8_t ipVersion) {
  out.push_back('"');
  if (ipVersion == 4) {
    char text[16];
    char* at = text;
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *at++ = '.';
      at = std::to_chars(at, text + sizeof(text), address[i]).ptr;
    }
    out.append(text, static_cast<size_t>(at - text));
  } else {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, address, text, sizeof(text));
    out.append(text);
  }
  out.push_back('"');
}

void appendHexByte(std::string& out, uint8_t value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  out.push_back(kHex[value >> 4]);
  out.push_back(kHex[value & 15]);
  out.push_back('"');
}

// A NUL-terminated field of a record, never read past its array.
template <size_t N>
std::string_view field(const char (&text)[N]) {
  return {text, strnlen(text, N)};
}

void appendTcp(std::string& out, const FlowEndRecord& record) {
  uint8_t all = record.tcpFlags[kToServer] | record.tcpFlags[kToClient];
  out.append(",\"tcp\":{\"tcp_flags\":");
  appendHexByte(out, all);
  out.append(",\"tcp_flags_ts\":");
  appendHexByte(out, record.tcpFlags[kToServer]);
  out.append(",\"tcp_flags_tc\":");
  appendHexByte(out, record.tcpFlags[kToClient]);
  static constexpr struct {
    uint8_t bit;
    const char* member;
  } kFlags[] = {{0x02, ",\"syn\":true"}, {0x01, ",\"fin\":true"}, {0x04, ",\"rst\":true"},
                {0x08, ",\"psh\":true"}, {0x10, ",\"ack\":true"}, {0x20, ",\"urg\":true"},
                {0x40, ",\"ece\":true"}, {0x80, ",\"cwr\":true"}};
  for (const auto& flag : kFlags) {
    if (all & flag.bit) out.append(flag.member);
  }
  out.push_back('}');
}

void appendAlpn(std::string& out, const FlowMetadataRecord& metadata) {
  out.append(",\"alpn\":[");
  for (int i = 0; i < metadata.tls.alpnCount && i < kMaxRecordAlpn; ++i) {
    if (i > 0) out.push_back(',');
    appendJsonString(out, field(metadata.tls.alpn[i]));
  }
  out.push_back(']');
}

// nlohmann::json's UTF-8 decoder (Bjoern Hoehrmann's DFA, as in its serializer), so that invalid input is
// replaced exactly where nlohmann replaced it.
constexpr uint8_t kUtf8Accept = 0;
constexpr uint8_t kUtf8Reject = 1;
constexpr uint8_t kUtf8d[400] = {
    // clang-format off
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    0xA, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x4, 0x3, 0x3,
    0xB, 0x6, 0x6, 0x6, 0x5, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8,
    0x0, 0x1, 0x2, 0x3, 0x5, 0x8, 0x7, 0x1, 0x1, 0x1, 0x4, 0x6, 0x1, 0x1, 0x1, 0x1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1,
    1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1,
    1, 3, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    // clang-format on
};

uint8_t decodeUtf8(uint8_t& state, uint32_t& codepoint, uint8_t byte) {
  uint8_t type = kUtf8d[byte];
  codepoint = state != kUtf8Accept ? (byte & 0x3fu) | (codepoint << 6u) : (0xffu >> type) & byte;
  state = kUtf8d[256u + state * 16u + type];
  return state;
}

// nlohmann's dump_escaped with ensure_ascii off and error_handler_t::replace, from a point where no
// sequence is open.
void appendEscapedSlow(std::string& out, const uint8_t* text, size_t length) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  uint32_t codepoint = 0;
  uint8_t state = kUtf8Accept;
  size_t afterLastAccept = out.size();
  size_t undumped = 0;
  for (size_t i = 0; i < length; ++i) {
    uint8_t byte = text[i];
    switch (decodeUtf8(state, codepoint, byte)) {
      case kUtf8Accept:
        switch (codepoint) {
          case 0x08:
            out.append("\\b");
            break;
          case 0x09:
            out.append("\\t");
            break;
          case 0x0a:
            out.append("\\n");
            break;
          case 0x0c:
            out.append("\\f");
            break;
          case 0x0d:
            out.append("\\r");
            break;
          case 0x22:
            out.append("\\\"");
            break;
          case 0x5c:
            out.append("\\\\");
            break;
          default:
            if (codepoint <= 0x1f) {
              static constexpr char kHex[] = "0123456789abcdef";
              char escape[6] = {'\\', 'u', '0', '0', kHex[codepoint >> 4], kHex[codepoint & 15]};
              out.append(escape, sizeof(escape));
            } else {
              out.push_back(static_cast<char>(byte));
            }
        }
        afterLastAccept = out.size();
        undumped = 0;
        break;
      case kUtf8Reject:
        // The byte may be fine on its own, only not after the sequence it ended: read it again.
        if (undumped > 0) --i;
        out.resize(afterLastAccept);
        out.append(kReplacement, 3);
        afterLastAccept = out.size();
        undumped = 0;
        state = kUtf8Accept;
        break;
      default:  // within a multi-byte sequence
        out.push_back(static_cast<char>(byte));
        ++undumped;
    }
  }
  if (state != kUtf8Accept) {  // the string ended inside a sequence
    out.resize(afterLastAccept);
    out.append(kReplacement, 3);
  }
}

}  // namespace

void appendJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  size_t plain = 0;
  while (plain < text.size()) {
    uint8_t byte = bytes[plain];
    if (byte < 0x20 || byte == '"' || byte == '\\' || byte >= 0x80) break;
    ++plain;
  }
  out.append(text.data(), plain);
  if (plain < text.size()) appendEscapedSlow(out, bytes + plain, text.size() - plain);
  out.push_back('"');
}

void appendEveTimestamp(std::string& out, uint64_t microsecondsSinceEpoch) {
  uint64_t seconds = microsecondsSinceEpoch / 1'000'000;
  auto micros = static_cast<unsigned>(microsecondsSinceEpoch % 1'000'000);
  int64_t year = 0;
  unsigned month = 0, day = 0;
  civilFromDays(static_cast<int64_t>(seconds / 86400), year, month, day);
  auto secondOfDay = static_cast<unsigned>(seconds % 86400);
  if (year < 1000 || year > 9999) {
    appendUnsigned(out, static_cast<uint64_t>(year));  // strftime's %Y: no padding beyond four digits
  } else {
    char text[4];
    appendTwoDigits(text, static_cast<unsigned>(year / 100));
    appendTwoDigits(text + 2, static_cast<unsigned>(year % 100));
    out.append(text, 4);
  }
  char text[] = "-MM-DDTHH:MM:SS.uuuuuu+0000";
  appendTwoDigits(text + 1, month);
  appendTwoDigits(text + 4, day);
  appendTwoDigits(text + 7, secondOfDay / 3600);
  appendTwoDigits(text + 10, secondOfDay / 60 % 60);
  appendTwoDigits(text + 13, secondOfDay % 60);
  appendTwoDigits(text + 16, micros / 10000);
  appendTwoDigits(text + 18, micros / 100 % 100);
  appendTwoDigits(text + 20, micros % 100);
  out.append(text, sizeof(text) - 1);
}

std::string formatEveTimestamp(uint64_t microsecondsSinceEpoch) {
  std::string text;
  appendEveTimestamp(text, microsecondsSinceEpoch);
  return text;
}

std::string tlsVersionName(uint16_t version) {
  switch (version) {
    case 0x0200:
      return "SSLv2";
    case 0x0300:
      return "SSLv3";
    case 0x0301:
      return "TLSv1";
    case 0x0302:
      return "TLS 1.1";
    case 0x0303:
      return "TLS 1.2";
    case 0x0304:
      return "TLS 1.3";
    default:
      return "UNDETERMINED";
  }
}

std::string protocolName(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_ICMP:
      return "ICMP";
    case IPPROTO_ICMPV6:
      return "IPv6-ICMP";
    case IPPROTO_SCTP:
      return "SCTP";
    default:
      return std::to_string(protocol);
  }
}

void appendMetadataMembers(std::string& out, const FlowMetadataRecord& metadata) {
  const auto& tls = metadata.tls;
  if (tls.present && !metadata.quic.present) {
    out.append(",\"tls\":{");
    bool first = true;
    auto member = [&](const char* name) {
      if (!first) out.push_back(',');
      first = false;
      out.push_back('"');
      out.append(name);
      out.append("\":");
    };
    if (tls.hasCertificate) {
      member("subject");
      appendJsonString(out, field(tls.subject));
      member("issuerdn");
      appendJsonString(out, field(tls.issuer));
      member("serial");
      appendJsonString(out, field(tls.serial));
      member("fingerprint");
      appendJsonString(out, field(tls.fingerprint));
    }
    if (tls.sni[0] != '\0') {
      member("sni");
      appendJsonString(out, field(tls.sni));
    }
    if (tls.echOuter) {
      member("ech_outer");
      out.append("true");
    }
    member("version");
    appendJsonString(out, tlsVersionName(tls.version));
    if (tls.hasCertificate) {
      member("notbefore");
      appendJsonString(out, isoSeconds(tls.notBefore));
      member("notafter");
      appendJsonString(out, isoSeconds(tls.notAfter));
    }
    appendAlpn(out, metadata);  // never first: version precedes it
    if (tls.ja3[0] != '\0') {
      out.append(",\"ja3\":{\"hash\":");
      appendJsonString(out, field(tls.ja3));
      out.push_back('}');
    }
    if (tls.ja4[0] != '\0') {
      out.append(",\"ja4\":");
      appendJsonString(out, field(tls.ja4));
    }
    out.push_back('}');
  }
  if (metadata.quic.present) {
    out.append(",\"quic\":{\"version\":");
    appendJsonString(
        out, metadata.quic.version == 0x6b3343cf ? std::string("2") : std::to_string(metadata.quic.version));
    if (tls.sni[0] != '\0') {
      out.append(",\"sni\":");
      appendJsonString(out, field(tls.sni));
    }
    if (tls.echOuter) out.append(",\"ech_outer\":true");
    appendAlpn(out, metadata);
    if (tls.ja4[0] != '\0') {
      out.append(",\"ja4\":");
      appendJsonString(out, field(tls.ja4));
    }
    out.push_back('}');
  }
  const auto& http = metadata.http;
  if (http.present) {
    out.append(",\"http\":{");
    if (http.hostname[0] != '\0') {
      out.append("\"hostname\":");
      appendJsonString(out, field(http.hostname));
      out.push_back(',');
    }
    out.append("\"url\":");
    appendJsonString(out, field(http.url));
    if (http.userAgent[0] != '\0') {
      out.append(",\"http_user_agent\":");
      appendJsonString(out, field(http.userAgent));
    }
    out.append(",\"http_method\":");
    appendJsonString(out, field(http.method));
    out.append(",\"protocol\":");
    appendJsonString(out, field(http.protocol));
    out.push_back('}');
  }
}

std::string formatMetadata(const FlowMetadataRecord& metadata) {
  std::string members;
  appendMetadataMembers(members, metadata);
  return members;
}

void appendFlowRecord(std::string& out, const FlowEndRecord& record, std::string_view metadataMembers,
                      const PolicyNames& policy, const PortIdentity* port) {
  out.append("{\"timestamp\":");
  appendQuotedTimestamp(out, record.endUs);
  out.append(",\"flow_id\":");
  appendUnsigned(out, record.flowId);
  if (port != nullptr && !port->hostIfname.empty()) {
    out.append(",\"in_iface\":");
    appendJsonString(out, port->hostIfname);
  }
  out.append(",\"event_type\":\"flow\"");
  if (record.vlanCount > 0) {
    out.append(",\"vlan\":[");
    for (int i = 0; i < record.vlanCount && i < 2; ++i) {
      if (i > 0) out.push_back(',');
      appendUnsigned(out, record.vlanIds[i]);
    }
    out.push_back(']');
  }
  bool icmp = record.protocol == IPPROTO_ICMP || record.protocol == IPPROTO_ICMPV6;
  bool ports =
      record.protocol == IPPROTO_TCP || record.protocol == IPPROTO_UDP || record.protocol == IPPROTO_SCTP;
  out.append(",\"src_ip\":");
  appendAddress(out, record.srcAddr, record.ipVersion);
  if (ports) {
    out.append(",\"src_port\":");
    appendUnsigned(out, record.srcPort);
  }
  out.append(",\"dest_ip\":");
  appendAddress(out, record.dstAddr, record.ipVersion);
  if (ports) {
    out.append(",\"dest_port\":");
    appendUnsigned(out, record.dstPort);
  }
  out.append(",\"proto\":\"");
  out.append(protocolName(record.protocol));
  out.push_back('"');
  if (icmp) {
    out.append(",\"icmp_type\":");
    appendUnsigned(out, record.icmpType);
    out.append(",\"icmp_code\":");
    appendUnsigned(out, record.icmpCode);
  }
  if (record.appProto != AppProto::kUnknown) {
    out.append(",\"app_proto\":\"");
    out.append(appProtoName(record.appProto));
    out.push_back('"');
  }
  CommunityIdInput id{record.ipVersion,
                      record.protocol,
                      record.srcAddr,
                      record.dstAddr,
                      icmp ? uint16_t{record.icmpType} : record.srcPort,
                      icmp ? uint16_t{record.icmpCode} : record.dstPort};
  char communityId[kCommunityIdLength];
  if (size_t length = communityIdV1(id, communityId); length > 0) {
    out.append(",\"community_id\":\"");
    out.append(communityId, length);
    out.push_back('"');
  }

  out.append(",\"flow\":{\"pkts_toserver\":");
  appendUnsigned(out, record.pkts[kToServer]);
  out.append(",\"pkts_toclient\":");
  appendUnsigned(out, record.pkts[kToClient]);
  out.append(",\"bytes_toserver\":");
  appendUnsigned(out, record.bytes[kToServer]);
  out.append(",\"bytes_toclient\":");
  appendUnsigned(out, record.bytes[kToClient]);
  out.append(",\"start\":");
  appendQuotedTimestamp(out, record.startUs);
  out.append(",\"end\":");
  appendQuotedTimestamp(out, record.endUs);
  out.append(",\"age\":");
  appendUnsigned(out, (record.endUs - record.startUs) / 1'000'000);
  out.append(",\"state\":\"");
  out.append(flowStateName(record.state));
  out.append("\",\"reason\":\"");
  out.append(flowEndReasonName(record.reason));
  out.append("\"}");
  if (record.protocol == IPPROTO_TCP) appendTcp(out, record);
  out.append(metadataMembers);

  out.append(",\"verdict\":{\"action\":\"");
  out.append(verdictActionName(record.action));
  out.append("\",\"rule\":");
  if (policy.loaded && record.ruleId < policy.ruleNames.size()) {
    appendJsonString(out, policy.ruleNames[record.ruleId]);
  } else {
    out.append("null");
  }
  if (policy.loaded) {
    out.append(",\"policy\":");
    appendJsonString(out, policy.policyName);
    out.append(",\"policy_version\":");
    appendUnsigned(out, record.policyVersion);
    out.append(record.mode == PolicyMode::kAudit ? ",\"mode\":\"audit\"" : ",\"mode\":\"enforce\"");
  } else {
    out.append(",\"policy\":null,\"policy_version\":null,\"mode\":null");
  }
  out.append(record.decidedAtEnd ? ",\"decided_at_end\":true}" : ",\"decided_at_end\":false}");
  if (record.portPair != 0) {
    out.append(",\"container\":{\"port\":");
    appendUnsigned(out, record.portPair);
    if (port != nullptr) {
      out.append(",\"name\":");
      appendJsonString(out, port->container);
      out.append(",\"ifname\":");
      appendJsonString(out, port->ifname);
      out.push_back('}');
    } else {
      out.append(",\"name\":null,\"ifname\":null}");
    }
  }
  out.push_back('}');
}

std::string formatFlowRecord(const FlowEndRecord& record, std::string_view metadataMembers,
                             const PolicyNames& policy, const PortIdentity* port) {
  std::string line;
  appendFlowRecord(line, record, metadataMembers, policy, port);
  return line;
}

}  // namespace vgate::control
