// Formats a flow's end record (and its L7 metadata) as one EVE-compatible JSON line, written straight into
// the caller's buffer: no JSON DOM, no allocation once the buffer has grown (DESIGN.md, "Flow log").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vgate/flow_record.h"

namespace vgate::control {

// What the flow log needs of the policy in force to name the deciding rule.
struct PolicyNames {
  bool loaded = false;
  uint32_t version = 0;  // the policy version these names belong to
  std::string policyName;
  std::vector<std::string> ruleNames;  // indexed by FlowEndRecord::ruleId
};

// The rewired container interface a live flow crossed (FlowEndRecord::portPair).
struct PortIdentity {
  uint16_t id = 0;
  std::string container;   // the name given at attach
  std::string ifname;      // inside the container
  std::string hostIfname;  // the host end's name, as `ip link` and Docker show it
};

// "2026-11-23T17:19:32.123456+0000": the EVE timestamp format (UTC, microseconds).
std::string formatEveTimestamp(uint64_t microsecondsSinceEpoch);
void appendEveTimestamp(std::string& out, uint64_t microsecondsSinceEpoch);
// "TLS 1.3", "TLS 1.2", "TLS 1.1", "TLSv1", "SSLv3", "SSLv2": Suricata's names; "UNDETERMINED" otherwise.
std::string tlsVersionName(uint16_t version);
// "TCP", "UDP", "ICMP", "IPv6-ICMP", "SCTP", or the number.
std::string protocolName(uint8_t protocol);

// `text` as a JSON string, quoted and escaped byte for byte as nlohmann::json dumps it (control characters
// escaped, other bytes as they are), with each invalid UTF-8 sequence replaced by U+FFFD as its `replace`
// error handler does: bytes from the wire (an SNI is whatever the client sent) never break the line.
void appendJsonString(std::string& out, std::string_view text);

// The app-layer members of a flow's line ("tls", "quic", "http"), each as `,"name":{...}`: kept by the
// writer until the flow's end record, then spliced into its line. Empty when there is none.
void appendMetadataMembers(std::string& out, const FlowMetadataRecord& metadata);
std::string formatMetadata(const FlowMetadataRecord& metadata);

// Appends one line, without its newline. `metadataMembers` is appendMetadataMembers' text (empty: none);
// `port` may be null.
void appendFlowRecord(std::string& out, const FlowEndRecord& record, std::string_view metadataMembers,
                      const PolicyNames& policy, const PortIdentity* port = nullptr);
std::string formatFlowRecord(const FlowEndRecord& record, std::string_view metadataMembers,
                             const PolicyNames& policy, const PortIdentity* port = nullptr);

}  // namespace vgate::control
