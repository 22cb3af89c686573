// Application-layer inspection: see inspector.h.
#include "dataplane/inspect/inspector.h"

#include <netinet/in.h>
#include <rte_malloc.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

namespace vgate::dataplane {

namespace {

constexpr uint8_t kTlsHandshakeRecord = 0x16;
// Bytes of a client's first payload needed to tell an HTTP method from anything else ("OPTIONS " is 8).
constexpr uint32_t kHttpDetectBytes = 8;

// Copies a NUL-terminated field into a fixed record buffer, cut to fit and always terminated.
template <size_t N>
void copyString(char (&out)[N], const char* in) {
  size_t length = strnlen(in, N - 1);
  std::memcpy(out, in, length);
  out[length] = '\0';
}

enum HttpPhase : uint8_t { kHttpHead, kHttpBody, kHttpChunked, kHttpStopped };

}  // namespace

Result<std::unique_ptr<InspectionPool>> InspectionPool::create(uint32_t slots, int socket) {
  if (slots == 0) return makeError(EINVAL, "the inspection pool needs at least one slot");
  auto* states = static_cast<InspectionState*>(
      rte_zmalloc_socket("vgate_inspection", sizeof(InspectionState) * size_t{slots}, 64, socket));
  auto* freeStack = static_cast<uint32_t*>(
      rte_zmalloc_socket("vgate_inspection_free", sizeof(uint32_t) * slots, 0, socket));
  if (states == nullptr || freeStack == nullptr) {
    rte_free(states);
    rte_free(freeStack);
    return makeError(ENOMEM, "cannot allocate " + std::to_string(slots) + " inspection slots (" +
                                 std::to_string(sizeof(InspectionState) * size_t{slots} >> 20) + " MiB)");
  }
  return std::unique_ptr<InspectionPool>(new InspectionPool(states, freeStack, slots));
}

InspectionPool::InspectionPool(InspectionState* states, uint32_t* freeStack, uint32_t slots)
    : states_(states), freeStack_(freeStack), slots_(slots), freeCount_(slots) {
  for (uint32_t i = 0; i < slots; ++i) freeStack_[i] = slots - 1 - i;
}

InspectionPool::~InspectionPool() {
  rte_free(states_);
  rte_free(freeStack_);
}

uint32_t InspectionPool::acquire(const uint32_t* seqBase, uint8_t baseKnown) {
  if (freeCount_ == 0) return UINT32_MAX;
  uint32_t index = freeStack_[--freeCount_];
  InspectionState& state = states_[index];
  // Everything but the stream storage, which reset() makes empty by clearing only its presence bits.
  std::memset(static_cast<void*>(&state), 0, offsetof(InspectionState, storage));
  for (int direction = 0; direction < 2; ++direction) {
    state.stream[direction].reset(state.storage[direction], kInspectionWindow);
    state.baseKnown[direction] = (baseKnown >> direction) & 1;
    state.streamBase[direction] = seqBase[direction];
  }
  return index;
}

void InspectionPool::release(uint32_t index) { freeStack_[freeCount_++] = index; }

bool Inspector::onPacket(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload,
                         int direction, const HttpJudge* judge) {
  state.dropSegment = false;
  if (packet.protocol == IPPROTO_TCP) return onTcp(state, packet, payload, direction, judge);
  if (packet.protocol == IPPROTO_UDP) return onUdp(state, packet, payload, direction);
  state.clientDone = state.serverDone = true;
  return true;
}

bool Inspector::onTcp(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload,
                      int direction, const HttpJudge* judge) {
  if (packet.tcpFlags & kTcpSyn) {
    state.streamBase[direction] = packet.tcpSeq + 1;
    state.baseKnown[direction] = true;
  }
  if (packet.payloadLength == 0) {
    // A reset ends the conversation: nothing more will come to finish a half-read message.
    if (packet.tcpFlags & kTcpRst) state.clientDone = state.serverDone = true;
    return finished(state);
  }
  if (!state.baseKnown[direction]) {
    // Picked up mid-stream (no SYN seen): the first payload we see is byte 0.
    state.streamBase[direction] = packet.tcpSeq;
    state.baseKnown[direction] = true;
  }
  if (direction == kToServer && state.httpStream.perRequest && !state.clientDone &&
      (state.proto == AppProto::kUnknown || state.proto == AppProto::kHttp) &&
      onHttpSegment(state, packet, payload, judge)) {
    if (packet.tcpFlags & (kTcpFin | kTcpRst)) state.clientDone = true;
    return finished(state);
  }
  // A SYN's own data (TCP Fast Open) starts after the sequence number the SYN itself takes.
  uint32_t dataSeq = packet.tcpSeq + ((packet.tcpFlags & kTcpSyn) ? 1 : 0);
  uint32_t offset = dataSeq - state.streamBase[direction];
  if (offset < 0x80000000u) {  // serial-number arithmetic: larger means before the base (an old retransmit)
    InsertResult result = state.stream[direction].insert(offset, payload, packet.payloadLength);
    if (result == InsertResult::kOverlapConflict) {
      ++counters_.overlapConflicts;
      state.overlapConflict = true;
    }
  }
  if (direction == kToServer) {
    state.clientSpoke = true;
    if (!state.clientDone) inspectClientStream(state);
  } else {
    if (!state.clientSpoke && state.proto == AppProto::kUnknown) {
      state.clientDone = state.serverDone = true;  // server speaks first: SSH, SMTP, ... not ours to parse
    } else if (!state.serverDone) {
      inspectServerStream(state);
    }
  }
  if (packet.tcpFlags & (kTcpFin | kTcpRst)) {
    if (direction == kToServer) state.clientDone = true;
    if (direction == kToClient) state.serverDone = true;
  }
  return finished(state);
}

void Inspector::inspectClientStream(InspectionState& state) {
  const ReassemblyBuffer& stream = state.stream[kToServer];
  uint32_t length = stream.contiguousLength();
  const uint8_t* data = stream.data();
  if (length == 0) return;
  if (state.proto == AppProto::kUnknown) {
    if (data[0] == kTlsHandshakeRecord) {
      state.proto = AppProto::kTls;
    } else if (data[0] >= 'A' && data[0] <= 'Z' && length < kHttpDetectBytes) {
      return;  // could be an HTTP method: wait for a few more bytes
    } else if (http::looksLikeHttpRequest(data, length)) {
      state.proto = AppProto::kHttp;
      state.serverDone = true;  // the response is not inspected
    } else {
      state.clientDone = state.serverDone = true;
      return;
    }
  }
  bool windowFull = length >= stream.capacity();
  if (state.proto == AppProto::kTls) {
    switch (helloParser_.parseRecords(data, length, state.hello)) {
      case tls::ClientHelloStatus::kComplete:
        state.helloComplete = true;
        state.clientDone = true;
        ++counters_.tlsClientHellos;
        return;
      case tls::ClientHelloStatus::kNeedMoreData:
        if (windowFull) {
          ++counters_.windowExceeded;
          state.clientDone = true;
        }
        return;
      default:
        ++counters_.tlsClientHelloErrors;
        state.unreadableHello = true;
        state.clientDone = true;
        return;
    }
  }
  if (state.proto == AppProto::kHttp) {
    switch (http::parseHttpRequest(data, length, state.http)) {
      case http::HttpStatus::kComplete:
        state.httpComplete = true;
        state.clientDone = true;
        state.targetStatus = http::normalizeTarget(state.http, state.target);
        ++counters_.httpRequests;
        return;
      case http::HttpStatus::kNeedMoreData:
        if (windowFull) {
          ++counters_.windowExceeded;
          state.clientDone = true;
        }
        return;
      default:
        ++counters_.httpErrors;
        state.clientDone = true;
        return;
    }
  }
}

bool Inspector::onHttpSegment(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload,
                              const HttpJudge* judge) {
  HttpStream& stream = state.httpStream;
  if (!stream.seqKnown) {
    stream.nextSeq = state.streamBase[kToServer];
    stream.seqKnown = true;
  }
  const auto delta = static_cast<int32_t>(packet.tcpSeq - stream.nextSeq);
  const uint32_t n = packet.payloadLength;
  if (delta > 0) {
    // A hole before it: forwarded, the server could put it together with bytes this reading never saw.
    state.dropSegment = true;
    ++counters_.httpOutOfOrder;
    return true;
  }
  // Bytes [0, seen) of the segment were seen before. Where they are still in the window they must be equal:
  // the window holds the stream's bytes [nextSeq - length, nextSeq).
  const uint32_t seen = std::min<uint32_t>(static_cast<uint32_t>(-static_cast<int64_t>(delta)), n);
  const int64_t overlapBegin = std::max<int64_t>(delta, -static_cast<int64_t>(stream.length));
  const int64_t overlapEnd = std::min<int64_t>(static_cast<int64_t>(delta) + n, 0);
  for (int64_t i = overlapBegin; i < overlapEnd; ++i) {
    if (payload[i - delta] != state.httpWindow[stream.length + i]) {
      ++counters_.overlapConflicts;
      refuseHttp(state, HttpRefusal::kConflict, judge);
      return true;
    }
  }
  // The stream buffer keeps the first bytes for protocol detection, payload conditions and the record.
  const uint32_t offset = packet.tcpSeq - state.streamBase[kToServer];
  if (offset < 0x80000000u) {
    if (state.stream[kToServer].insert(offset, payload, n) == InsertResult::kOverlapConflict)
      ++counters_.overlapConflicts;
  }
  state.clientSpoke = true;
  const uint8_t* bytes = payload + seen;
  uint32_t left = n - seen;
  stream.nextSeq += left;
  if (state.proto == AppProto::kUnknown) {
    const ReassemblyBuffer& first = state.stream[kToServer];
    http::LineShape shape = http::LineShape::kNeedMoreData;
    if (first.contiguousLength() > 0) {
      shape = first.data()[0] == kTlsHandshakeRecord
                  ? http::LineShape::kNotHttp
                  : http::requestLineShape(first.data(), first.contiguousLength());
    }
    // A first line longer than a head may be: read as HTTP, which refuses it as too large.
    if (shape == http::LineShape::kNeedMoreData && first.contiguousLength() >= http::kMaxRequestHeadLength) {
      shape = http::LineShape::kHttp;
    }
    if (shape == http::LineShape::kNotHttp) {
      // Not HTTP: the regular path reads it (TLS, or nothing), and this reading stops.
      stream.perRequest = false;
      inspectClientStream(state);
      return true;
    }
    if (shape == http::LineShape::kHttp) {
      state.proto = AppProto::kHttp;
      state.serverDone = true;  // the response is not inspected
    }
  }
  while (left > 0 && stream.phase != kHttpStopped) {
    if (stream.start == stream.length && stream.phase != kHttpHead) {
      // Nothing unread is buffered: the body passes without a copy, and the window, which must hold the
      // stream's last bytes for retransmissions to be checked against, starts again empty.
      stream.start = stream.length = 0;
    }
    if (stream.length == 0 && stream.phase == kHttpBody) {
      const uint32_t take = passBody(state, bytes, left, judge);
      bytes += take;
      left -= take;
      continue;
    }
    if (stream.length == 0 && stream.phase == kHttpChunked) {
      size_t used = 0;
      const http::ChunkedStatus status = http::consumeChunked(stream.chunked, bytes, left, used);
      bytes += used;
      left -= static_cast<uint32_t>(used);
      if (status == http::ChunkedStatus::kDone) stream.phase = kHttpHead;
      if (status == http::ChunkedStatus::kMalformed) refuseHttp(state, HttpRefusal::kFraming, judge);
      continue;
    }
    if (stream.start > 0) {
      std::memmove(state.httpWindow, state.httpWindow + stream.start, stream.length - stream.start);
      stream.length -= stream.start;
      stream.start = 0;
    }
    const uint32_t take = std::min<uint32_t>(left, sizeof(state.httpWindow) - stream.length);
    std::memcpy(state.httpWindow + stream.length, bytes, take);
    stream.length += take;
    bytes += take;
    left -= take;
    if (state.proto == AppProto::kHttp) readRequests(state, judge);
    if (take == 0) break;  // a full window that readRequests could not consume: it refused
  }
  return true;
}

void Inspector::readRequests(InspectionState& state, const HttpJudge* judge) {
  HttpStream& stream = state.httpStream;
  for (;;) {
    const uint8_t* data = state.httpWindow + stream.start;
    uint32_t available = stream.length - stream.start;
    switch (stream.phase) {
      case kHttpHead: {
        // RFC 9112 2.2: a server ignores empty lines before a request line; a client may send one after a
        // body.
        if (stream.requests > 0) {
          while (available > 0 && (*data == '\r' || *data == '\n')) {
            ++data;
            --available;
            ++stream.start;
          }
        }
        if (available == 0) return;
        const http::HttpStatus status = http::parseHttpRequest(data, available, stream.current);
        if (status == http::HttpStatus::kNeedMoreData) return;
        if (status != http::HttpStatus::kComplete) {
          ++counters_.httpErrors;
          refuseHttp(state,
                     status == http::HttpStatus::kTooLarge ? HttpRefusal::kTooLarge : HttpRefusal::kMalformed,
                     judge);
          return;
        }
        ++stream.requests;
        state.targetStatus = http::normalizeTarget(stream.current, state.target);
        if (stream.requests == 1) {
          state.http = stream.current;
          state.httpComplete = true;
          ++counters_.httpRequests;
        }
        if (state.targetStatus != http::TargetStatus::kOk) {
          refuseHttp(state, HttpRefusal::kTarget, judge);
          return;
        }
        ++counters_.httpRequestsJudged;
        if (judge != nullptr && !judge->judge(judge->context, state)) {
          stream.deniedRequest = stream.requests;
          stream.phase = kHttpStopped;
          state.clientDone = true;
          return;
        }
        // Judged on its head; if its body's end cannot be found, nothing after it can be.
        if (stream.current.body == http::HttpBody::kUnframed) {
          refuseHttp(state, HttpRefusal::kFraming, judge);
          return;
        }
        stream.start += stream.current.headLength;
        if (stream.current.body == http::HttpBody::kLength) {
          stream.phase = kHttpBody;
          stream.bodyLeft = stream.current.contentLength;
          stream.prefixLength = 0;
          stream.prefixDecided = false;
        } else if (stream.current.body == http::HttpBody::kChunked) {
          stream.phase = kHttpChunked;
          stream.chunked = http::ChunkedState{};
        }
        continue;
      }
      case kHttpBody:
        if (available == 0) return;
        {
          const uint32_t take = passBody(state, data, available, judge);
          if (stream.phase == kHttpStopped) return;
          stream.start += take;
          continue;
        }
      case kHttpChunked: {
        if (available == 0) return;
        size_t used = 0;
        const http::ChunkedStatus status = http::consumeChunked(stream.chunked, data, available, used);
        stream.start += static_cast<uint32_t>(used);
        if (status == http::ChunkedStatus::kMalformed) {
          refuseHttp(state, HttpRefusal::kFraming, judge);
          return;
        }
        if (status == http::ChunkedStatus::kNeedMoreData) return;
        stream.phase = kHttpHead;
        continue;
      }
      default:
        stream.start = stream.length;
        return;
    }
  }
}

uint32_t Inspector::passBody(InspectionState& state, const uint8_t* data, uint32_t length,
                             const HttpJudge* judge) {
  HttpStream& stream = state.httpStream;
  const auto take = static_cast<uint32_t>(std::min<uint64_t>(length, stream.bodyLeft));
  for (uint32_t i = 0; i < take && !stream.prefixDecided; ++i) {
    if (stream.prefixLength == 0 && (data[i] == '\r' || data[i] == '\n')) continue;
    stream.bodyPrefix[stream.prefixLength++] = data[i];
    const http::LineShape shape = http::requestStartShape(stream.bodyPrefix, stream.prefixLength);
    if (shape == http::LineShape::kHttp) {
      // Framed, this is a body; read by a server that skips bodies it does not want, the next request.
      refuseHttp(state, HttpRefusal::kFraming, judge);
      return take;
    }
    stream.prefixDecided =
        shape == http::LineShape::kNotHttp || stream.prefixLength == sizeof(stream.bodyPrefix);
  }
  stream.bodyLeft -= take;
  if (stream.bodyLeft == 0) stream.phase = kHttpHead;
  return take;
}

void Inspector::refuseHttp(InspectionState& state, HttpRefusal refusal, const HttpJudge* judge) {
  HttpStream& stream = state.httpStream;
  stream.refusal = refusal;
  // The request refused: the last one parsed when its target or framing was at fault, else the one being
  // read.
  const bool parsed = refusal == HttpRefusal::kTarget || refusal == HttpRefusal::kFraming;
  stream.deniedRequest = parsed ? stream.requests : stream.requests + 1;
  if (refusal == HttpRefusal::kTarget) {
    ++counters_.httpNormalizationRefused;
  } else if (refusal != HttpRefusal::kConflict) {
    ++counters_.httpFramingUnparseable;
  }
  stream.phase = kHttpStopped;
  stream.start = stream.length = 0;
  state.clientDone = true;
  if (judge != nullptr) judge->judge(judge->context, state);
}

void Inspector::inspectServerStream(InspectionState& state) {
  if (state.proto != AppProto::kTls) {
    state.serverDone = true;
    return;
  }
  const ReassemblyBuffer& stream = state.stream[kToClient];
  uint32_t length = stream.contiguousLength();
  if (length == 0) return;
  switch (tls::parseServerFlight(stream.data(), length, state.server)) {
    case tls::ServerFlightStatus::kComplete:
    case tls::ServerFlightStatus::kEncrypted:
      state.serverComplete = true;
      state.serverDone = true;
      if (state.server.hasCertificate) ++counters_.tlsCertificates;
      return;
    case tls::ServerFlightStatus::kNeedMoreData:
      if (length >= stream.capacity()) {
        ++counters_.windowExceeded;
        state.serverDone = true;
      }
      return;
    default:
      ++counters_.tlsServerErrors;
      state.serverDone = true;
      return;
  }
}

bool Inspector::onUdp(InspectionState& state, const ParsedPacket& packet, const uint8_t* payload,
                      int direction) {
  if (packet.payloadLength == 0) return finished(state);
  if (direction == kToClient) {
    // The server's Initials are protected with server keys and carry no ClientHello: nothing to read there.
    if (!state.clientSpoke && state.proto == AppProto::kUnknown) state.clientDone = true;
    state.serverDone = true;
    return finished(state);
  }
  state.clientSpoke = true;
  state.serverDone = true;
  // A QUIC long header has the form and fixed bits set; anything else on a new UDP flow is not QUIC.
  if (state.proto == AppProto::kUnknown && (payload[0] & 0xc0) != 0xc0) {
    state.clientDone = true;
    return true;
  }
  uint32_t position = 0;
  while (position < packet.payloadLength) {
    quic::InitialPacket initial;
    quic::QuicStatus status = quicDecryptor_.decryptClientInitial(
        payload + position, packet.payloadLength - position, quicPlaintext_, sizeof(quicPlaintext_), initial);
    if (status == quic::QuicStatus::kOk) {
      ++counters_.quicInitials;
      ++state.quicInitials;
      state.proto = AppProto::kQuic;
      state.quicVersion = initial.version;
      for (uint32_t i = 0; i < initial.cryptoFrameCount; ++i) {
        const quic::CryptoFrame& frame = initial.crypto[i];
        InsertResult result =
            state.stream[kToServer].insert(frame.offset, quicPlaintext_ + frame.dataOffset, frame.length);
        if (result == InsertResult::kOverlapConflict) {
          ++counters_.overlapConflicts;
          state.overlapConflict = true;
        }
      }
    } else if (status == quic::QuicStatus::kDecryptFailed) {
      ++counters_.quicDecryptFailures;
    } else if (status != quic::QuicStatus::kNotInitial) {
      break;  // not QUIC, or a version we cannot read: the rest of the datagram cannot be walked either
    }
    if (initial.packetLength == 0) break;
    position += initial.packetLength;
  }
  if (state.proto != AppProto::kQuic) {
    state.clientDone = true;
    return true;
  }
  const ReassemblyBuffer& stream = state.stream[kToServer];
  if (stream.contiguousLength() > 0) {
    switch (helloParser_.parseHandshake(stream.data(), stream.contiguousLength(), tls::TlsTransport::kQuic,
                                        state.hello)) {
      case tls::ClientHelloStatus::kComplete:
        state.helloComplete = true;
        state.clientDone = true;
        ++counters_.quicClientHellos;
        break;
      case tls::ClientHelloStatus::kNeedMoreData:
        break;
      default:
        ++counters_.tlsClientHelloErrors;
        state.clientDone = true;
        break;
    }
  }
  if (!state.clientDone && state.quicInitials >= kMaxQuicInitials) {
    ++counters_.windowExceeded;
    state.clientDone = true;
  }
  return finished(state);
}

AppProto Inspector::appProto(const InspectionState& state) {
  // A protocol is named only once its message parsed: bytes that began like TLS or HTTP but broke (truncated,
  // lying lengths) are "failed", as Suricata reports them, not a protocol the flow never spoke.
  switch (state.proto) {
    case AppProto::kTls:
      return state.helloComplete || state.serverComplete ? AppProto::kTls : AppProto::kFailed;
    case AppProto::kHttp:
      return state.httpComplete ? AppProto::kHttp : AppProto::kFailed;
    default:
      return state.proto;
  }
}

void Inspector::collectFacts(const InspectionState& state, InspectionFacts& out) {
  L7Facts& facts = out.facts;
  if (state.helloComplete) {
    facts.sni = state.hello.sni;
    for (uint8_t i = 0; i < state.hello.alpnCount; ++i) out.alpn[i] = state.hello.alpn[i];
    facts.alpn = out.alpn;
    facts.alpnCount = state.hello.alpnCount;
    facts.presentFields |= (state.hello.hasSni ? kFactSni : 0) | kFactAlpn;
  }
  if (state.serverComplete && state.server.hasCertificate) {
    const tls::ServerCertificate& certificate = state.server.certificate;
    facts.certSubject = certificate.subject;
    facts.certIssuer = certificate.issuer;
    for (uint8_t i = 0; i < certificate.sanCount; ++i) out.sans[i] = certificate.sans[i];
    facts.sans = out.sans;
    facts.sanCount = certificate.sanCount;
    facts.presentFields |= kFactCertSubject | kFactCertIssuer | kFactSan;
  }
  // The request judged: the first, or a perRequest stream's current one; its path and host as normalized.
  // A request whose target did not normalize has no HTTP facts (perRequest streams refuse it instead).
  if (state.httpComplete && state.targetStatus == http::TargetStatus::kOk) {
    const http::HttpRequest& request = state.httpStream.perRequest ? state.httpStream.current : state.http;
    facts.httpHost = std::string_view(state.target.host, state.target.hostLength);
    facts.httpPath = std::string_view(state.target.path, state.target.pathLength);
    facts.httpMethod = request.method;
    facts.presentFields |= (state.target.hasHost ? kFactHttpHost : 0) | kFactHttpPath | kFactHttpMethod;
  }
  for (int direction = 0; direction < 2; ++direction) {
    const ReassemblyBuffer& stream = state.stream[direction];
    if (stream.contiguousLength() == 0) continue;
    std::string_view bytes(reinterpret_cast<const char*>(stream.data()), stream.contiguousLength());
    (direction == kToServer ? facts.payloadToServer : facts.payloadToClient) = bytes;
    facts.presentFields |= direction == kToServer ? kFactPayloadToServer : kFactPayloadToClient;
  }
}

bool Inspector::fillMetadata(const InspectionState& state, FlowMetadataRecord& record) {
  record.appProto = appProto(state);
  bool any = false;
  if ((state.proto == AppProto::kTls || state.proto == AppProto::kQuic) &&
      (state.helloComplete || state.serverComplete)) {
    auto& tls = record.tls;
    tls.present = true;
    if (state.helloComplete) {
      const tls::ClientHello& hello = state.hello;
      copyString(tls.sni, hello.sni);
      tls.echOuter = hello.echOuter;
      tls.version = hello.maxSupportedVersion;
      tls.alpnCount =
          static_cast<uint8_t>(hello.alpnCount < kMaxRecordAlpn ? hello.alpnCount : kMaxRecordAlpn);
      for (int i = 0; i < tls.alpnCount; ++i) copyString(tls.alpn[i], hello.alpn[i]);
      copyString(tls.ja3, hello.ja3);
      copyString(tls.ja4, hello.ja4);
    }
    if (state.serverComplete) {
      tls.version = state.server.version;
      if (state.server.hasCertificate) {
        const tls::ServerCertificate& cert = state.server.certificate;
        tls.hasCertificate = true;
        copyString(tls.subject, cert.subject);
        copyString(tls.issuer, cert.issuer);
        copyString(tls.serial, cert.serial);
        copyString(tls.fingerprint, cert.fingerprint);
        tls.notBefore = cert.notBefore;
        tls.notAfter = cert.notAfter;
      }
    }
    any = true;
  }
  if (state.proto == AppProto::kQuic) {
    record.quic.present = true;
    record.quic.version = state.quicVersion;
    any = true;
  }
  const HttpStream& stream = state.httpStream;
  if (state.proto == AppProto::kHttp && (state.httpComplete || stream.refusal != HttpRefusal::kNone)) {
    auto& http = record.http;
    http.present = true;
    copyString(http.hostname, state.http.host);
    copyString(http.url, state.http.url);
    copyString(http.method, state.http.method);
    copyString(http.protocol, state.http.protocol);
    copyString(http.userAgent, state.http.userAgent);
    http.requests = stream.perRequest ? stream.requests : 1;
    http.deniedRequest = stream.deniedRequest;
    http.refusal = stream.refusal;
    if (stream.deniedRequest != 0 && stream.deniedRequest == stream.requests &&
        state.targetStatus == http::TargetStatus::kOk) {
      copyString(http.deniedPath, state.target.path);
    }
    any = true;
  }
  return any;
}

}  // namespace vgate::dataplane
