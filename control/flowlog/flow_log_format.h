// Formats a flow's end record (and its L7 metadata) as one EVE-compatible JSON line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgate/flow_record.h"

namespace vgate::control {

// What the flow log needs of the policy in force to name the deciding rule.
struct PolicyNames {
  bool loaded = false;
  uint32_t version = 0;  // the policy version these names belong to
  std::string policyName;
  std::vector<std::string> ruleNames;  // indexed by FlowEndRecord::ruleId
};

// "2026-11-23T17:19:32.123456+0000": the EVE timestamp format (UTC, microseconds).
std::string formatEveTimestamp(uint64_t microsecondsSinceEpoch);
// "TLS 1.3", "TLS 1.2", "TLS 1.1", "TLSv1", "SSLv3", "SSLv2": Suricata's names; "UNDETERMINED" otherwise.
std::string tlsVersionName(uint16_t version);
// "TCP", "UDP", "ICMP", "IPv6-ICMP", "SCTP", or the number.
std::string protocolName(uint8_t protocol);

// The app-layer objects ("tls", "quic", "http") of a flow, kept by the writer until the flow's end record.
nlohmann::ordered_json formatMetadata(const FlowMetadataRecord& metadata);

// The rewired container interface a live flow crossed (FlowEndRecord::portPair).
struct PortIdentity {
  uint16_t id = 0;
  std::string container;   // the name given at attach
  std::string ifname;      // inside the container
  std::string hostIfname;  // the host end's name, as `ip link` and Docker show it
};

// One line, no trailing newline. `metadata` and `port` may be null.
std::string formatFlowRecord(const FlowEndRecord& record, const nlohmann::ordered_json* metadata,
                             const PolicyNames& policy, const PortIdentity* port = nullptr);

}  // namespace vgate::control
