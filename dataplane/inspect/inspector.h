// Application-layer inspection of a flow's first bytes: TLS ClientHello and server certificate, QUIC
// Initials, HTTP/1 request head. State lives in a bounded per-worker pool, taken when a TCP/UDP flow starts
// and given back as soon as the flow's L7 facts are known, so long-lived flows cost nothing here; the
// exception is an HTTP flow whose every request is judged (HttpStream), which keeps its state while it
// speaks HTTP. What the policy and the flow log need of it leaves through collectFacts and fillMetadata:
// nothing else reads the state's parsers.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/http/http_request.h"
#include "dataplane/http/http_target.h"
#include "dataplane/l7match/l7_matcher.h"
#include "dataplane/packet/packet_parser.h"
#include "dataplane/quic/quic_initial.h"
#include "dataplane/stream/reassembly_buffer.h"
#include "dataplane/tls/client_hello.h"
#include "dataplane/tls/server_flight.h"
#include "vgate/counters.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

namespace vgate::dataplane {

// Stream bytes kept per direction: a post-quantum ClientHello from a current browser is ~2 KB and a server's
// certificate chain rarely passes 8 KB; 16 KiB covers both with room for several records.
inline constexpr uint32_t kInspectionWindow = 16 * 1024;
// QUIC client Initials looked at before giving up on a ClientHello.
inline constexpr uint8_t kMaxQuicInitials = 16;

// Reading every request of a client's HTTP/1 stream (keep-alive, pipelining), for flows the worker marks
// perRequest. The stream is followed in order only: a segment that would leave a hole is dropped (the
// client sends it again), so that what the server has is exactly what was judged. Request heads are read
// from `InspectionState::httpWindow`; bodies stream past, delimited by their framing, without a copy.
struct HttpStream {
  bool perRequest;
  bool seqKnown;
  uint8_t phase;  // HttpPhase (inspector.cc)
  HttpRefusal refusal;
  uint32_t nextSeq;  // the client's next new byte
  uint32_t start;    // httpWindow[start, length) is read but not yet consumed
  uint32_t length;
  uint64_t bodyLeft;  // Content-Length bytes still to pass
  // The body's first bytes, leading CR/LF left out, until they cannot begin a request line (see
  // http::requestStartShape); kBodyPrefix of them always decide.
  uint8_t bodyPrefix[24];
  uint8_t prefixLength;
  bool prefixDecided;
  http::ChunkedState chunked;
  uint32_t requests;       // request heads read
  uint32_t deniedRequest;  // 1-based; 0: none
  http::HttpRequest current;
};

struct InspectionState;

// What the worker hands inspection to judge each request of a perRequest stream with, as it completes: the
// state's current request and target (collectFacts) or, when httpStream.refusal is set, a refusal. It
// returns false when the request is denied: inspection then stops reading the stream.
struct HttpJudge {
  bool (*judge)(void* context, const InspectionState& state);
  void* context;
};

struct InspectionState {
  ReassemblyBuffer stream[2];  // kToServer, kToClient
  uint32_t streamBase[2];      // TCP sequence number of stream byte 0 per direction
  bool baseKnown[2];
  bool clientSpoke;  // the client sent payload: a server that speaks first is not TLS, HTTP or QUIC
  AppProto proto;
  bool clientDone;  // nothing more to learn from the client's side
  bool serverDone;
  bool helloComplete;
  bool serverComplete;
  bool httpComplete;
  // Evasion signs, for the worker to deny the flow on: retransmitted bytes that differ from the first copy
  // (either direction), or a TLS record layer whose ClientHello does not parse.
  bool overlapConflict;
  bool unreadableHello;
  uint8_t quicInitials;
  uint32_t quicVersion;
  tls::ClientHello hello;
  tls::ServerFlight server;
  bool dropSegment;  // set by onPacket: the packet must not reach the server (out of order, see HttpStream)
  http::HttpRequest http;  // the first request, as the record reports it
  http::TargetStatus targetStatus;
  http::NormalizedTarget target;  // the judged request's path and host: the first's, or the current one's
  HttpStream httpStream;
  alignas(64) uint8_t storage[2][ReassemblyBuffer::storageBytes(kInspectionWindow)];
  uint8_t httpWindow[http::kMaxRequestHeadLength];  // not cleared on acquire: httpStream says what is valid
};

#define VGATE_INSPECTION_COUNTERS(X)                                                                        \
  X(started, counter, "flows", "flows that got an inspection slot")                                         \
  X(poolExhausted, counter, "flows", "flows that got no inspection slot: their L7 fields are not known")    \
  X(tlsClientHellos, counter, "messages", "TLS ClientHellos parsed whole")                                  \
  X(tlsClientHelloErrors, counter, "messages", "TLS ClientHellos that did not parse")                       \
  X(tlsCertificates, counter, "messages", "server certificates parsed (TLS 1.2 and earlier)")               \
  X(tlsServerErrors, counter, "messages", "server first flights that did not parse")                        \
  X(quicInitials, counter, "packets", "QUIC client Initial packets looked at")                              \
  X(quicDecryptFailures, counter, "packets", "QUIC Initial packets that did not decrypt")                   \
  X(quicClientHellos, counter, "messages", "ClientHellos read from QUIC Initials")                          \
  X(httpRequests, counter, "messages", "HTTP/1 request heads parsed")                                       \
  X(httpErrors, counter, "messages", "HTTP/1 request heads that did not parse")                             \
  X(httpRequestsJudged, counter, "messages",                                                                \
    "HTTP/1 requests judged one by one on flows HTTP rules apply to")                                       \
  X(httpDeniedMidConnection, counter, "flows", "flows denied at a later HTTP request after an allowed one") \
  X(httpFramingUnparseable, counter, "flows",                                                               \
    "judged HTTP flows refused: a head that does not parse, or framing that cannot be followed")            \
  X(httpNormalizationRefused, counter, "flows",                                                             \
    "judged HTTP flows refused: a path or host that cannot be normalized safely")                           \
  X(httpOutOfOrder, counter, "segments", "client segments of judged HTTP flows dropped for arriving early") \
  X(overlapConflicts, counter, "segments",                                                                  \
    "segments whose retransmitted bytes differ from the first copy (an evasion attempt)")                   \
  X(windowExceeded, counter, "flows",                                                                       \
    "inspections given up because the window filled before the message ended")

struct InspectionCounters {
  VGATE_COUNTER_MEMBERS(InspectionCounters, VGATE_INSPECTION_COUNTERS)
};

// A flow's L7 facts as the policy matches them. Views into the InspectionState they came from: valid while
// that state is held, and not copyable (facts.alpn and facts.sans point into this object).
struct InspectionFacts {
  InspectionFacts() = default;
  InspectionFacts(const InspectionFacts&) = delete;
  InspectionFacts& operator=(const InspectionFacts&) = delete;

  L7Facts facts;
  std::string_view alpn[tls::kMaxAlpnEntries];
  std::string_view sans[tls::kMaxSanEntries];
};

// A fixed pool of states with a free stack of indices. One per worker, no locks.
class InspectionPool {
 public:
  static Result<std::unique_ptr<InspectionPool>> create(uint32_t slots, int socket);
  ~InspectionPool();
  InspectionPool(const InspectionPool&) = delete;
  InspectionPool& operator=(const InspectionPool&) = delete;

  // A cleared state's index, or UINT32_MAX when none is free. The TCP sequence bases learnt from the SYNs
  // (`baseKnown` bit per direction) seed the streams so that segments that arrive out of order still land
  // right.
  uint32_t acquire(const uint32_t* seqBase, uint8_t baseKnown);
  void release(uint32_t index);
  InspectionState& at(uint32_t index) { return states_[index]; }
  uint32_t inUse() const { return slots_ - freeCount_; }
  uint32_t slots() const { return slots_; }

 private:
  InspectionPool(InspectionState* states, uint32_t* freeStack, uint32_t slots);
  InspectionState* states_;
  uint32_t* freeStack_;
  uint32_t slots_;
  uint32_t freeCount_;
};

// The per-worker parsers (which own OpenSSL contexts) and the logic that feeds them.
class Inspector {
 public:
  Inspector() = default;

  // Feeds one packet of the flow. `payload` holds the packet's whole L4 payload contiguously. Returns true
  // once inspection is finished for the flow: the caller copies the results out (fillMetadata) and releases
  // the state.
  // `judge` judges each request of a perRequest HTTP stream (none: every request passes); the packet must be
  // dropped when `state.dropSegment` is set on return.
  bool onPacket(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload, int direction,
                const HttpJudge* judge = nullptr);

  // What is known so far of the flow's L7 facts: the ClientHello, certificate and request once complete, and
  // each direction's contiguous stream bytes.
  static void collectFacts(const InspectionState& state, InspectionFacts& out);
  // The L7 facts as the flow log carries them. Returns false when there is nothing to report.
  static bool fillMetadata(const InspectionState& state, FlowMetadataRecord& record);
  // Whether there is nothing more to learn from the client's side (its ClientHello or request head is
  // complete, or it cannot be one), or from the server's.
  static bool clientSideDone(const InspectionState& state) { return state.clientDone; }
  static bool serverSideDone(const InspectionState& state) { return state.serverDone; }
  // The flow's app_proto as the record names it.
  static AppProto appProto(const InspectionState& state);

  InspectionCounters& counters() { return counters_; }
  const InspectionCounters& counters() const { return counters_; }

 private:
  bool onTcp(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload, int direction,
             const HttpJudge* judge);
  bool onUdp(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload, int direction);
  void inspectClientStream(InspectionState& state);
  // A client segment of a perRequest stream; returns false when the regular path must take the segment
  // (the stream turned out not to be HTTP).
  bool onHttpSegment(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload,
                     const HttpJudge* judge);
  void readRequests(InspectionState& state, const HttpJudge* judge);
  // Passes up to `length` bytes of a Content-Length body; returns how many.
  uint32_t passBody(InspectionState& state, const uint8_t* data, uint32_t length, const HttpJudge* judge);
  void refuseHttp(InspectionState& state, HttpRefusal refusal, const HttpJudge* judge);
  void inspectServerStream(InspectionState& state);
  static bool finished(const InspectionState& state) { return state.clientDone && state.serverDone; }

  tls::ClientHelloParser helloParser_;
  quic::InitialDecryptor quicDecryptor_;
  InspectionCounters counters_;
  uint8_t quicPlaintext_[65536];
};

}  // namespace vgate::dataplane
