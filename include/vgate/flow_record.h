// What a worker hands to the flow log writer: a flow's end record, and its L7 metadata once inspection
// finished. Fixed-size PODs, so they travel through rte_rings as mempool objects without allocation.
#pragma once

#include <cstdint>

#include "vgate/flow_key.h"

namespace vgate {

// kReused: a new connection (a SYN with a new sequence number, or after the old one closed) took the 5-tuple.
enum class FlowEndReason : uint8_t { kFin, kRst, kTimeout, kEviction, kShutdown, kEndOfInput, kReused };
enum class FlowState : uint8_t { kNew, kEstablished, kClosed };
enum class VerdictAction : uint8_t { kAllow, kDeny, kReject, kLog };
enum class PolicyMode : uint8_t { kEnforce, kAudit };
enum class AppProto : uint8_t { kUnknown, kTls, kQuic, kHttp, kFailed };

inline constexpr const char* flowEndReasonName(FlowEndReason reason) {
  constexpr const char* kNames[] = {"fin",      "rst",          "timeout", "eviction",
                                    "shutdown", "end_of_input", "reused"};
  return kNames[static_cast<int>(reason)];
}
inline constexpr const char* flowStateName(FlowState state) {
  constexpr const char* kNames[] = {"new", "established", "closed"};
  return kNames[static_cast<int>(state)];
}
inline constexpr const char* verdictActionName(VerdictAction action) {
  constexpr const char* kNames[] = {"allow", "deny", "reject", "log"};
  return kNames[static_cast<int>(action)];
}
inline constexpr const char* appProtoName(AppProto proto) {
  constexpr const char* kNames[] = {"unknown", "tls", "quic", "http", "failed"};
  return kNames[static_cast<int>(proto)];
}

// Why vgate refused to judge an HTTP request on a flow whose HTTP rules could have changed its verdict
// (DESIGN.md "HTTP judging"): the flow is then denied by kRuleHttpRefused, not by a rule of the policy.
enum class HttpRefusal : uint8_t {
  kNone,
  kMalformed,  // a request head that does not parse, or is not HTTP/1 (the HTTP/2 preface)
  kTooLarge,   // a request head longer than vgate reads (16 KiB)
  kFraming,    // where the next request starts cannot be told: Transfer-Encoding, Upgrade, CONNECT, chunks
  kTarget,     // a path or host that cannot be normalized safely (%2F, %00, bad percent-encoding, ...)
  kConflict,   // retransmitted bytes that differ from the copy judged
  kNoSlot,     // no inspection state was free to read the requests with
};
inline constexpr const char* httpRefusalName(HttpRefusal refusal) {
  constexpr const char* kNames[] = {"none",   "malformed", "too_large", "framing",
                                    "target", "conflict",  "no_slot"};
  return kNames[static_cast<int>(refusal)];
}
// The rule id of a flow denied by such a refusal; rule ids of the policy are below it (kNoRule is above).
inline constexpr uint32_t kRuleHttpRefused = UINT32_MAX - 1;

enum class FlowMessageType : uint8_t { kEnd, kMetadata };

// Direction index used in every per-direction array: 0 = client to server, 1 = server to client.
inline constexpr int kToServer = 0;
inline constexpr int kToClient = 1;

struct FlowEndRecord {
  FlowMessageType type = FlowMessageType::kEnd;
  FlowState state = FlowState::kNew;
  FlowEndReason reason = FlowEndReason::kEndOfInput;
  AppProto appProto = AppProto::kUnknown;
  VerdictAction action = VerdictAction::kAllow;
  PolicyMode mode = PolicyMode::kEnforce;
  uint8_t ipVersion = 4;
  uint8_t protocol = 0;
  uint8_t tcpFlags[2] = {};  // OR of the flags seen per direction
  uint8_t vlanCount = 0;
  bool hasMetadata = false;  // a FlowMetadataRecord with the same flowId was sent before this record
  // The verdict waited for L7 facts (a ClientHello, a request line) and the flow ended first: it is the
  // policy's verdict on what was seen. On the receiver's pair of a same-node flow whose ClientHello the
  // sender's pair dropped, this marks the "allow" of a handshake that never got further.
  bool decidedAtEnd = false;
  // Live: the flow's direction at its port pair, as l34's kDirection*: 0 unknown (replay), 1 egress (the
  // container opened it), 2 ingress (it accepted it). Fills what was padding.
  uint8_t direction = 0;
  uint16_t vlanIds[2] = {};
  uint16_t portPair = 0;     // live: the rewired container interface the flow crossed (0: none, replay)
  uint8_t srcAddr[16] = {};  // the client, the side that opened the flow; IPv4 in the first 4 bytes
  uint8_t dstAddr[16] = {};
  uint16_t srcPort = 0;
  uint16_t dstPort = 0;
  uint8_t icmpType = 0;  // ICMP flows: the first packet's type and code (Community ID needs them)
  uint8_t icmpCode = 0;
  uint32_t ruleId = UINT32_MAX;  // UINT32_MAX: no rule decided (default verdict)
  uint32_t policyVersion = 0;
  uint64_t flowId = 0;
  uint64_t startUs = 0;  // microseconds since the epoch
  uint64_t endUs = 0;
  uint64_t pkts[2] = {};   // kToServer, kToClient
  uint64_t bytes[2] = {};  // whole frames as received, Ethernet header included
};

inline constexpr int kMaxRecordAlpn = 8;

// L7 fields for the flow log, copied out of the inspection state (which is freed when inspection ends).
struct FlowMetadataRecord {
  FlowMessageType type = FlowMessageType::kMetadata;
  AppProto appProto = AppProto::kUnknown;
  uint64_t flowId = 0;
  struct Tls {
    bool present = false;
    bool echOuter = false;
    uint16_t version = 0;  // negotiated (server) if seen, else the client's highest supported
    uint8_t alpnCount = 0;
    char sni[256] = {};
    char alpn[kMaxRecordAlpn][33] = {};
    char ja3[33] = {};
    char ja4[37] = {};
    bool hasCertificate = false;
    char subject[512] = {};
    char issuer[512] = {};
    char serial[128] = {};
    char fingerprint[60] = {};
    int64_t notBefore = 0;
    int64_t notAfter = 0;
  } tls;
  struct Quic {
    bool present = false;
    uint32_t version = 0;
  } quic;
  struct Http {
    bool present = false;
    char hostname[256] = {};
    char url[2049] = {};
    char method[17] = {};
    char protocol[9] = {};
    char userAgent[256] = {};
    // Flows whose every request was judged: how many request heads were read, which one (1-based, 0: none)
    // was denied or refused, that request's normalized path, and why it was refused, if it was.
    uint32_t requests = 0;
    uint32_t deniedRequest = 0;
    HttpRefusal refusal = HttpRefusal::kNone;
    char deniedPath[2049] = {};
  } http;
};

// Whoever takes the workers' records off their rings (the flow log writer), on one thread, in the order each
// worker produced them.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void onMetadata(const FlowMetadataRecord& metadata) = 0;
  virtual void onEnd(const FlowEndRecord& record) = 0;
};

}  // namespace vgate
