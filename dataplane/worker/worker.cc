// The dataplane worker: see worker.h.
#include "dataplane/worker/worker.h"

#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "dataplane/flow/flow_key_builder.h"
#include "vgate/bpf/port_tag.h"

namespace vgate::dataplane {

namespace {

constexpr uint8_t kReplyResetSender = 0x01;
constexpr uint8_t kReplyResetReceiver = 0x02;
constexpr uint8_t kReplyUnreachable = 0x04;
constexpr uint32_t kScratchBytes = 65536 + 256;

FlowState recordState(const Flow& flow) {
  if (flow.key.protocol == IPPROTO_TCP) {
    switch (flow.tcp) {
      case TcpProgress::kClosed:
        return FlowState::kClosed;
      case TcpProgress::kEstablished:
      case TcpProgress::kFinSeen:
        return FlowState::kEstablished;
      default:
        return FlowState::kNew;
    }
  }
  return flow.pkts[kToClient] > 0 ? FlowState::kEstablished : FlowState::kNew;
}

void advanceTcp(Flow& flow, uint8_t flags, int direction, uint32_t payloadLength) {
  if (flags & kTcpRst) {
    flow.tcp = TcpProgress::kClosed;
    return;
  }
  if (flags & kTcpFin) {
    flow.finSeen |= static_cast<uint8_t>(1u << direction);
    flow.tcp = flow.finSeen == 3 ? TcpProgress::kClosed : TcpProgress::kFinSeen;
    return;
  }
  if (flow.tcp >= TcpProgress::kEstablished) return;
  if ((flags & (kTcpSyn | kTcpAck)) == kTcpSyn) {
    if (flow.tcp == TcpProgress::kNone) flow.tcp = TcpProgress::kSynSent;
  } else if ((flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
    flow.tcp = TcpProgress::kSynAckSeen;
  } else if ((flags & kTcpAck) && (flow.tcp == TcpProgress::kSynAckSeen || payloadLength > 0 ||
                                   (flow.pkts[kToServer] > 0 && flow.pkts[kToClient] > 0))) {
    // The handshake's last ACK, or a flow picked up mid-stream that talks both ways.
    flow.tcp = TcpProgress::kEstablished;
  }
}

// The checksums a receiver checks before it believes a packet: the IPv4 header's (not for a datagram DPDK
// reassembled, whose header it rewrote), and the TCP, UDP, ICMP or ICMPv6 checksum over the whole datagram.
// A UDP checksum of 0 over IPv4 means none (RFC 768); over IPv6 it is an error (RFC 8200). SCTP's CRC32c is
// not checked.
bool checksumsValid(const rte_mbuf* mbuf, const ParsedPacket& packet, bool reassembled) {
  const uint8_t* frame = rte_pktmbuf_mtod(mbuf, const uint8_t*);
  const bool ipv4 = packet.ipVersion == 4;
  if (ipv4 && !reassembled &&
      rte_raw_cksum(frame + packet.l3Offset, static_cast<size_t>(packet.l4Offset - packet.l3Offset)) !=
          0xffff)
    return false;
  uint32_t l4Length = packet.l3Offset + packet.ipLength - packet.l4Offset;
  switch (packet.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      break;
    case IPPROTO_UDP:
      l4Length = 8 + packet.payloadLength;
      if (ipv4 && frame[packet.l4Offset + 6] == 0 && frame[packet.l4Offset + 7] == 0) return true;
      break;
    default:
      return true;
  }
  uint16_t raw = 0;
  if (rte_raw_cksum_mbuf(mbuf, packet.l4Offset, l4Length, &raw) != 0) return false;
  uint32_t sum = raw;
  if (packet.protocol != IPPROTO_ICMP) {  // the others sum a pseudo-header too
    const size_t addressLength = ipv4 ? 4 : 16;
    sum += rte_raw_cksum(packet.srcAddr, addressLength) + rte_raw_cksum(packet.dstAddr, addressLength);
    sum += rte_cpu_to_be_16(static_cast<uint16_t>(l4Length)) + rte_cpu_to_be_16(packet.protocol);
  }
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

}  // namespace

WorkerConfig workerConfigFor(uint16_t id, int socket, const RecordPools& records, uint32_t flowCapacity,
                             uint32_t inspectionSlots, const FlowTimeouts& timeouts) {
  WorkerConfig config;
  config.id = id;
  config.socket = socket;
  config.flowCapacity = flowCapacity;
  config.inspectionSlots = inspectionSlots;
  config.timeouts = timeouts;
  config.records = records.channel(id);
  return config;
}

void WorkerCounters::add(const WorkerCounters& other) {
  VGATE_WORKER_COUNTERS(VGATE_COUNTER_ADD)
  for (int i = 0; i < kParseStatusCount; ++i) parseStatus[i] += other.parseStatus[i];
}

struct Worker::SlotOwner {
  FlowKey key;
  uint64_t sinceUs;  // 0: the slot is free
};

struct Worker::OffloadAccount {
  uint64_t pkts[2];  // what the fast path had counted at the last look
  uint64_t bytes[2];
};

Result<std::unique_ptr<Worker>> Worker::create(const WorkerConfig& config) {
  if (config.records.ring == nullptr || config.records.endRecords == nullptr ||
      config.records.metadataRecords == nullptr) {
    return makeError(EINVAL, "a worker needs its record ring and record pools");
  }
  std::unique_ptr<Worker> worker(new Worker(config));
  FlowTableConfig tableConfig;
  tableConfig.name = "vgate_flows_" + std::to_string(config.id);
  tableConfig.capacity = config.flowCapacity;
  tableConfig.socket = config.socket;
  auto table = FlowTable::create(tableConfig);
  if (!table) return table.error();
  worker->table_ = std::move(table).value();
  if (config.offload != nullptr) {
    worker->offloadAccounts_ = std::make_unique<OffloadAccount[]>(worker->table_->capacity());
  }
  auto pool = InspectionPool::create(config.inspectionSlots, config.socket);
  if (!pool) return pool.error();
  worker->inspections_ = std::move(pool).value();
  worker->slotOwners_ = std::make_unique<SlotOwner[]>(config.inspectionSlots);
  FragmentConfig fragmentConfig;
  fragmentConfig.datagrams = config.fragmentFlows;
  fragmentConfig.timeoutUs = config.fragmentTimeoutUs;
  fragmentConfig.socket = config.socket;
  auto fragments = FragmentReassembler::create(fragmentConfig);
  if (!fragments) return fragments.error();
  worker->fragments_ = std::move(fragments).value();
  if (config.policies != nullptr) {
    if (auto registered = config.policies->registerWorker(config.id); !registered) return registered.error();
    worker->registered_ = true;
  }
  // net_pcap (and NICs with timestamping) stamp each mbuf; the field exists only once a driver registered it.
  worker->timestampOffset_ = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
  int flagBit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
  worker->timestampFlag_ = flagBit >= 0 ? (uint64_t{1} << flagBit) : 0;
  return worker;
}

Worker::Worker(const WorkerConfig& config)
    : config_(config),
      inspector_(std::make_unique<Inspector>()),
      scratch_(std::make_unique<uint8_t[]>(kScratchBytes)) {}

// Reads the policy in force for one burst (or one expiry sweep) and reports quiescence when it ends, so that
// a publish can free the previous policy as soon as every worker has finished a burst with it.
struct Worker::PolicyBurst {
  explicit PolicyBurst(Worker& worker) : worker_(worker) {
    worker_.policy_ = worker_.config_.policies ? worker_.config_.policies->current() : nullptr;
  }
  ~PolicyBurst() {
    worker_.policy_ = nullptr;
    worker_.reportQuiescent();
  }
  Worker& worker_;
};

void Worker::reportQuiescent() {
  if (config_.policies != nullptr) config_.policies->quiescent(config_.id);
}

Worker::~Worker() {
  if (registered_) config_.policies->unregisterWorker(config_.id);
}

uint16_t Worker::processBurst(rte_mbuf** mbufs, uint16_t count, uint64_t nowUs) {
  PolicyBurst policyBurst(*this);
  ParsedPacket packets[kBurstSize];
  FlowKey keys[kBurstSize];
  const FlowKey* keyPointers[kBurstSize] = {};  // zeroed: GCC cannot see that only [0, flowCount) is read
  bool srcIsLow[kBurstSize];
  uint64_t frameCounts[kBurstSize];
  uint64_t byteCounts[kBurstSize];
  uint64_t timestamps[kBurstSize];
  uint16_t flowSlot[kBurstSize];  // for each flow packet, its place among the kept mbufs
  bool forward[kBurstSize];
  // Datagrams completed in this burst, by their place among the kept mbufs (-1: not one): they leave as
  // fragments cut again from what was judged.
  int8_t datagramOf[kBurstSize];
  ReassembledDatagram datagrams[kBurstSize];
  uint16_t datagramCount = 0;
  const ParsedPacket* parsedOf[kBurstSize];  // by place among the kept mbufs, for those that are flows
  uint8_t replies[kBurstSize] = {};
  uint16_t flowCount = 0;
  uint16_t kept = 0;

  for (uint16_t i = 0; i < count && i < kBurstSize; ++i) {
    rte_mbuf* mbuf = mbufs[i];
    uint64_t timestamp = nowUs;
    if (timestampOffset_ >= 0 && (mbuf->ol_flags & timestampFlag_)) {
      timestamp = *RTE_MBUF_DYNFIELD(mbuf, timestampOffset_, uint64_t*);
    }
    clockUs_ = std::max(clockUs_, timestamp);
    ++counters_.packets;
    counters_.bytes += mbuf->pkt_len;
    ParsedPacket& packet = packets[flowCount];
    ParseStatus status =
        parsePacket(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, mbuf->pkt_len, packet);
    ++counters_.parseStatus[static_cast<int>(status)];
    uint64_t frames = 1;
    uint64_t frameBytes = mbuf->pkt_len;
    datagramOf[kept] = -1;
    if (status == ParseStatus::kFragment) {
      ReassembledDatagram& datagram = datagrams[datagramCount];
      if (!fragments_->add(mbuf, packet, timestamp, datagram)) continue;  // held, or dropped and counted
      mbuf = datagram.mbuf;
      frames = datagram.frames;
      frameBytes = datagram.frameBytes;
      status = parsePacket(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, mbuf->pkt_len, packet);
      datagram.setHeaders(packet);
      datagramOf[kept] = static_cast<int8_t>(datagramCount++);
    }
    // Only ARP passes unjudged; a frame of another ethertype or one that does not parse is dropped, never
    // passed on unread (the fast path drops most of them before they get here).
    forward[kept] = status == ParseStatus::kOk || status == ParseStatus::kArp;
    if (!forward[kept]) {
      ++counters_.unparsedDropped;
    } else if (status == ParseStatus::kOk && config_.verifyChecksums &&
               !checksumsValid(mbuf, packet, datagramOf[kept] >= 0)) {
      // Never a verdict, a flow update or a byte of inspection from a packet its receiver will discard.
      forward[kept] = false;
      ++counters_.checksumErrors;
    }
    mbufs[kept++] = mbuf;
    if (status != ParseStatus::kOk || !forward[kept - 1]) continue;
    if ((packet.protocol == IPPROTO_ICMP || packet.protocol == IPPROTO_ICMPV6) &&
        judgeRelatedIcmpError(mbuf, packet, forward[kept - 1])) {
      if (!forward[kept - 1]) ++counters_.denied;
      continue;
    }
    srcIsLow[flowCount] = buildFlowKey(packet, keys[flowCount]);
    keyPointers[flowCount] = &keys[flowCount];
    frameCounts[flowCount] = frames;
    byteCounts[flowCount] = frameBytes;
    timestamps[flowCount] = timestamp;
    flowSlot[flowCount] = static_cast<uint16_t>(kept - 1);
    parsedOf[kept - 1] = &packets[flowCount];
    ++flowCount;
  }

  int32_t positions[kBurstSize];
  table_->lookupBurst(keyPointers, flowCount, positions);
  bool evicted = false;
  for (uint16_t i = 0; i < flowCount; ++i) {
    int32_t position = positions[i];
    if (evicted) table_->lookupBurst(&keyPointers[i], 1, &position);  // an eviction may have moved things
    if (position >= 0 && startsNewConnection(position, packets[i], srcIsLow[i])) {
      ++counters_.flowsReused;
      endFlow(position, FlowEndReason::kReused, timestamps[i]);
      evicted = true;  // as after an eviction, positions looked up before may be stale
      position = -1;
    }
    if (position < 0) position = table_->insert(keys[i]);
    if (position < 0) {
      int32_t victim = table_->pickVictim();
      if (victim >= 0) {
        ++counters_.flowsEvicted;
        ++table_->stats().evicted;
        endFlow(victim, FlowEndReason::kEviction, timestamps[i]);
        evicted = true;
        position = table_->insert(keys[i]);
      }
    }
    if (position < 0) {
      // No flow to keep state in: the packet alone is judged, as its flow's first packet would be but with no
      // L7 facts to wait for, and dropped unless that allows it.
      ++counters_.flowInsertFailed;
      forward[flowSlot[i]] = judgeStateless(packets[i]);
      if (!forward[flowSlot[i]]) ++counters_.denied;
      continue;
    }
    const Flow& flow = table_->at(position);
    const uint8_t flagsBefore = flow.flowId == 0 ? 0 : flow.inspectFlags;
    bool decidedNow = flow.flowId == 0 || (flagsBefore & kVerdictPending);
    forward[flowSlot[i]] = updateFlow(position, packets[i], srcIsLow[i], mbufs[flowSlot[i]], frameCounts[i],
                                      byteCounts[i], timestamps[i]);
    // A later HTTP request's deny ends a connection the server holds, as a first verdict would.
    decidedNow = decidedNow || ((flow.inspectFlags & ~flagsBefore) & kDeniedMidConnection);
    if (!forward[flowSlot[i]]) {
      ++counters_.denied;
      replies[flowSlot[i]] = repliesFor(flow, packets[i], srcIsLow[i], decidedNow);
    }
  }

  // Denied packets leave the burst here; the rest keep their order, a judged datagram as its fragments.
  rte_mbuf* out[kBurstOutputCapacity];
  uint16_t forwarded = 0;
  for (uint16_t i = 0; i < kept; ++i) {
    if (!forward[i]) {
      if (replies[i] != 0) sendReplies(mbufs[i], *parsedOf[i], replies[i], clockUs_, out, forwarded);
      rte_pktmbuf_free(mbufs[i]);
    } else if (datagramOf[i] >= 0) {
      forwarded += fragments_->refragment(datagrams[datagramOf[i]], out + forwarded);
    } else {
      out[forwarded++] = mbufs[i];
    }
  }
  std::memcpy(mbufs, out, forwarded * sizeof(rte_mbuf*));
  return forwarded;
}

uint8_t Worker::repliesFor(const Flow& flow, const ParsedPacket& packet, bool srcIsLow,
                           bool decidedNow) const {
  if (!dropsPackets(flow)) return 0;
  const bool tcp = packet.protocol == IPPROTO_TCP;
  if (tcp && (packet.tcpFlags & kTcpRst)) return 0;  // a reset is never answered
  // Past its SYN, a segment's receiver holds a connection the drop would leave half open.
  const bool receiverHasState = decidedNow && tcp && !(packet.tcpFlags & kTcpSyn);
  if (flow.action == VerdictAction::kReject) {
    if (packet.protocol == IPPROTO_ICMP || packet.protocol == IPPROTO_ICMPV6)
      return 0;  // no error for an error
    if (!tcp) return kReplyUnreachable;
    return static_cast<uint8_t>(kReplyResetSender | (receiverHasState ? kReplyResetReceiver : 0));
  }
  // A deny stays silent to the client, but a server must not keep a connection the verdict ended.
  if (!receiverHasState) return 0;
  bool fromClient = srcIsLow == (flow.clientIsLow != 0);
  return fromClient ? kReplyResetReceiver : kReplyResetSender;
}

void Worker::sendReplies(const rte_mbuf* dropped, const ParsedPacket& packet, uint8_t replies, uint64_t nowUs,
                         rte_mbuf** out, uint16_t& count) {
  for (uint8_t reply : {kReplyResetSender, kReplyResetReceiver, kReplyUnreachable}) {
    if (!(replies & reply)) continue;
    if (!replyLimiter_.take(nowUs)) {
      ++counters_.repliesRateLimited;
      continue;
    }
    rte_mbuf* built = reply == kReplyUnreachable
                          ? buildPortUnreachable(dropped, packet, dropped->pool)
                          : buildTcpReset(dropped, packet,
                                          reply == kReplyResetSender ? ResetTo::kSender : ResetTo::kReceiver,
                                          dropped->pool);
    if (built == nullptr) {
      ++counters_.repliesNoBuffer;
      continue;
    }
    // Whatever leaves a worker leaves by the other side of its pair (the lane flips the tag): a reply to the
    // sender is flipped first, so that it goes back out the way the dropped packet came in.
    if (config_.outerTagIsPortPair && reply != kReplyResetReceiver)
      vgate_port_tag_flip_side(rte_pktmbuf_mtod(built, uint8_t*));
    ++(reply == kReplyUnreachable ? counters_.unreachablesSent : counters_.resetsSent);
    out[count++] = built;
  }
}

bool Worker::startsNewConnection(int32_t position, const ParsedPacket& packet, bool srcIsLow) {
  if (packet.protocol != IPPROTO_TCP || (packet.tcpFlags & (kTcpSyn | kTcpAck | kTcpRst)) != kTcpSyn)
    return false;
  Flow& flow = table_->at(position);
  // A RST or FINs may have crossed the fast path since the worker last looked.
  if (flow.offloadState != kNotOffloaded) collectOffloadUsage(position);
  if (flow.tcp == TcpProgress::kClosed) return true;
  bool fromClient = srcIsLow == (flow.clientIsLow != 0);
  bool sameIsn = fromClient && (flow.inspectFlags & (kInspectBaseKnown << kToServer)) &&
                 flow.seqBase[kToServer] == packet.tcpSeq + 1;
  return !sameIsn;
}

// Flow ids stay below 2^53 so that JSON readers that parse numbers as doubles keep them exact: 45 bits of
// serial (from the seed on), 8 of worker id. 0 marks a free flow slot, so it is skipped.
uint64_t Worker::nextFlowId() {
  for (;;) {
    uint64_t id = (((config_.flowIdSeed + nextFlowSerial_++) & ((uint64_t{1} << 45) - 1)) << 8) | config_.id;
    if (id != 0) return id;
  }
}

bool Worker::dropsPackets(const Flow& flow) const {
  return !(flow.inspectFlags & kVerdictPending) && enforcedAsDrop(flow.action);
}

bool Worker::enforcedAsDrop(VerdictAction action) const {
  bool denied = action == VerdictAction::kDeny || action == VerdictAction::kReject;
  return denied && policy_ != nullptr && policy_->mode() == PolicyMode::kEnforce;
}

bool Worker::judgeRelatedIcmpError(const rte_mbuf* mbuf, const ParsedPacket& packet, bool& forward) {
  ParsedPacket quoted;
  if (!parseIcmpErrorQuote(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, packet, quoted))
    return false;
  FlowKey key;
  buildFlowKey(quoted, key);
  const FlowKey* keyPointer = &key;
  int32_t position = -1;
  table_->lookupBurst(&keyPointer, 1, &position);
  if (position < 0) return false;  // about no flow of ours: judged as a flow of its own
  const Flow& flow = table_->at(position);
  forward = !dropsPackets(flow);
  ++counters_.icmpErrorsRelated;
  return true;
}

bool Worker::updateFlow(int32_t position, const ParsedPacket& packet, bool srcIsLow, rte_mbuf* mbuf,
                        uint64_t pkts, uint64_t bytes, uint64_t timestampUs) {
  Flow& flow = table_->at(position);
  if (flow.flowId == 0) {
    // Flow ids stay below 2^53 so that JSON readers that parse numbers as doubles keep them exact.
    flow.flowId = nextFlowId();
    flow.startUs = timestampUs;
    flow.lastUs = timestampUs;
    // The client is the side that opened the flow; a SYN-ACK seen first means we missed the SYN.
    bool synAck =
        packet.protocol == IPPROTO_TCP && (packet.tcpFlags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck);
    flow.clientIsLow = (srcIsLow != synAck) ? 1 : 0;
    flow.icmpType = packet.icmpType;
    flow.icmpCode = packet.icmpCode;
    ++counters_.flowsCreated;
    judgeNewFlow(flow, packet, srcIsLow == (flow.clientIsLow != 0));
  }
  int direction = (srcIsLow == (flow.clientIsLow != 0)) ? kToServer : kToClient;
  flow.lastUs = std::max(flow.lastUs, timestampUs);
  flow.pkts[direction] += pkts;
  flow.bytes[direction] += bytes;
  if (packet.protocol == IPPROTO_TCP) {
    flow.tcpFlags[direction] |= packet.tcpFlags;
    advanceTcp(flow, packet.tcpFlags, direction, packet.payloadLength);
    if (packet.tcpFlags & kTcpSyn) {
      flow.seqBase[direction] = packet.tcpSeq + 1;
      flow.inspectFlags |= static_cast<uint8_t>(kInspectBaseKnown << direction);
    }
  }
  if (!(flow.inspectFlags & kInspectFinished) &&
      (packet.protocol == IPPROTO_TCP || packet.protocol == IPPROTO_UDP) &&
      inspect(flow, packet, mbuf, direction)) {
    return false;
  }
  // Pending flows pass (the handshake must complete for the facts to arrive); a decided deny drops, from the
  // packet that completed the decision on. Audit mode only records what enforce would have done.
  if (flow.inspectFlags & kVerdictPending) return true;
  bool drop = dropsPackets(flow);
  // Offloaded once the verdict is final and the client's side is inspected (SNI, ALPN, JA4, HTTP request):
  // the server's flight is not waited for, and a deny needs nothing more. An allowed TCP flow still being
  // inspected gets an inspect entry once its handshake is through, so that segments too large for the trunk
  // (a jumbo-MTU peer's) go straight to the other side while the rest still comes here: without it, such a
  // flow's first full-size segment could never arrive (spoofed SYNs never get that far, so they cost no
  // map writes).
  if (config_.offload != nullptr) {
    bool clientSideDone =
        (flow.inspectFlags & kInspectFinished) ||
        (flow.inspection != kNoInspection && Inspector::clientSideDone(inspections_->at(flow.inspection)));
    bool inspecting = (flow.offloadState & kOffloadInspecting) != 0;
    if (flow.offloadState == kNotOffloaded || inspecting) {
      if (drop) {
        maybeOffload(position, mbuf, direction, OffloadAction::kDrop);
      } else if (clientSideDone) {
        maybeOffload(position, mbuf, direction, OffloadAction::kAllow);
      } else if (!inspecting && flow.key.protocol == IPPROTO_TCP && flow.tcp >= TcpProgress::kEstablished &&
                 !(flow.inspectFlags & kHttpJudged)) {
        maybeOffload(position, mbuf, direction, OffloadAction::kInspect);
      }
    }
  }
  return !drop;
}

void Worker::maybeOffload(int32_t position, const rte_mbuf* mbuf, int direction, OffloadAction action) {
  Flow& flow = table_->at(position);
  if (flow.key.protocol != IPPROTO_TCP && flow.key.protocol != IPPROTO_UDP) return;
  // What an inspect entry let past the slow path is folded in before the entry is replaced.
  if (flow.offloadState != kNotOffloaded) collectOffloadUsage(position);
  uint8_t previous = flow.offloadState;
  flow.offloadState = config_.offload->offload(flow, mbuf, direction == kToServer, action);
  if (flow.offloadState == kNotOffloaded) {
    if (previous != kNotOffloaded) config_.offload->retire(flow);
    return;
  }
  if (previous == kNotOffloaded) ++counters_.flowsOffloaded;
  OffloadAccount& account = offloadAccounts_[position];
  std::memset(&account, 0, sizeof(account));
}

bool Worker::collectOffloadUsage(int32_t position) {
  Flow& flow = table_->at(position);
  OffloadUsage usage;
  ++counters_.offloadChecks;
  if (!config_.offload->usage(flow, usage)) {
    ++counters_.offloadEntriesLost;
    flow.offloadState = kNotOffloaded;  // its next packet misses and comes back to this flow
    return false;
  }
  OffloadAccount& account = offloadAccounts_[position];
  for (int direction = 0; direction < 2; ++direction) {
    // Counters only grow while the entry lives; a smaller one is a new entry (re-offloaded), counted whole.
    uint64_t pkts = usage.pkts[direction] >= account.pkts[direction]
                        ? usage.pkts[direction] - account.pkts[direction]
                        : usage.pkts[direction];
    uint64_t bytes = usage.bytes[direction] >= account.bytes[direction]
                         ? usage.bytes[direction] - account.bytes[direction]
                         : usage.bytes[direction];
    flow.pkts[direction] += pkts;
    flow.bytes[direction] += bytes;
    counters_.fastPathBytes += bytes;
    account.pkts[direction] = usage.pkts[direction];
    account.bytes[direction] = usage.bytes[direction];
    flow.tcpFlags[direction] |= usage.tcpFlags[direction];
  }
  if (usage.lastSeenUs > flow.lastUs) flow.lastUs = usage.lastSeenUs;
  if (flow.key.protocol == IPPROTO_TCP) {
    uint8_t flags = flow.tcpFlags[kToServer] | flow.tcpFlags[kToClient];
    bool finBothWays = (flow.tcpFlags[kToServer] & kTcpFin) && (flow.tcpFlags[kToClient] & kTcpFin);
    if ((flags & kTcpRst) || finBothWays) flow.tcp = TcpProgress::kClosed;
  }
  return true;
}

bool Worker::offloadedFlowStillActive(int32_t position, uint64_t nowUs) {
  if (!collectOffloadUsage(position)) return false;
  const Flow& flow = table_->at(position);
  return !(nowUs > flow.lastUs && nowUs - flow.lastUs > FlowTable::idleTimeout(flow, config_.timeouts));
}

namespace {

L34Tuple tupleOf(const ParsedPacket& packet, bool fromClient) {
  L34Tuple tuple{};
  tuple.ipVersion = packet.ipVersion;
  tuple.protocol = packet.protocol;
  std::memcpy(tuple.src, fromClient ? packet.srcAddr : packet.dstAddr, 16);
  std::memcpy(tuple.dst, fromClient ? packet.dstAddr : packet.srcAddr, 16);
  tuple.srcPort = fromClient ? packet.srcPort : packet.dstPort;
  tuple.dstPort = fromClient ? packet.dstPort : packet.srcPort;
  if (packet.protocol == IPPROTO_ICMP || packet.protocol == IPPROTO_ICMPV6) tuple.icmpType = packet.icmpType;
  return tuple;
}

L34Tuple tupleOf(const Flow& flow) {
  L34Tuple tuple{};
  bool ipv4 = flow.key.isIpv4();
  bool clientLow = flow.clientIsLow != 0;
  tuple.ipVersion = ipv4 ? 4 : 6;
  tuple.protocol = flow.key.protocol;
  keyAddressToRecord(clientLow ? flow.key.addrLow : flow.key.addrHigh, ipv4, tuple.src);
  keyAddressToRecord(clientLow ? flow.key.addrHigh : flow.key.addrLow, ipv4, tuple.dst);
  tuple.srcPort = clientLow ? flow.key.portLow : flow.key.portHigh;
  tuple.dstPort = clientLow ? flow.key.portHigh : flow.key.portLow;
  tuple.direction = static_cast<uint8_t>((flow.inspectFlags & kFlowDirectionMask) >> kFlowDirectionShift);
  // The type of the flow's first packet (updateFlow records it before judging the flow): what the first
  // classification saw, so a re-classification under a newer policy agrees with it.
  tuple.icmpType = flow.icmpType;
  return tuple;
}

}  // namespace

uint8_t Worker::directionOf(const ParsedPacket& packet, bool packetFromClient) const {
  // Live, the port tag's side says where the packet entered its pair: the inner side is the container's own
  // end, so a packet from the client entering there means the container opened the flow. Replay has no
  // tags: CompiledPolicy tells the direction from the policy's endpoints.
  if (!config_.outerTagIsPortPair || packet.vlanCount == 0) return kDirectionUnknown;
  bool enteredInner = vgate_port_tag_side_of_pcp(packet.outerVlanPcp) == VGATE_FP_SIDE_INNER;
  return enteredInner == packetFromClient ? kDirectionEgress : kDirectionIngress;
}

bool Worker::judgeStateless(const ParsedPacket& packet) const {
  if (policy_ == nullptr) return true;
  L34Tuple tuple = tupleOf(packet, true);  // as far as anyone can tell, its sender opened the flow
  tuple.direction = directionOf(packet, true);
  VerdictDecision decision = policy_->classifyNewFlow(tuple);
  VerdictAction action = decision.action;
  if (decision.pending) {
    InspectionFacts none;
    action = config_.id < policy_->workerScratches()
                 ? policy_->decide(tuple, none.facts, decision.ruleId, policy_->scratchFor(config_.id)).action
                 : policy_->actionOf(decision.ruleId);
  }
  return !enforcedAsDrop(action);
}

void Worker::judgeNewFlow(Flow& flow, const ParsedPacket& packet, bool packetFromClient) {
  uint8_t direction = directionOf(packet, packetFromClient);
  flow.inspectFlags =
      static_cast<uint8_t>((flow.inspectFlags & ~kFlowDirectionMask) | (direction << kFlowDirectionShift));
  if (policy_ == nullptr) return;
  L34Tuple tuple = tupleOf(packet, packetFromClient);
  tuple.direction = direction;
  VerdictDecision decision = policy_->classifyNewFlow(tuple);
  flow.ruleId = decision.ruleId;
  flow.action = decision.action;
  flow.policyVersion = policy_->version();
  bool inspectable = packet.protocol == IPPROTO_TCP || packet.protocol == IPPROTO_UDP;
  if (decision.pending && inspectable) {
    flow.inspectFlags |= kVerdictPending;
  } else if (decision.pending) {
    resolvePendingVerdict(flow, nullptr);  // no L7 facts will ever come: decide on none
  } else {
    ++counters_.verdictsImmediate;
  }
}

void Worker::resolvePendingVerdict(Flow& flow, const InspectionState* state) {
  if (policy_ == nullptr) return;
  // A policy published while the flow waited: its fallback rule id belongs to the old version.
  uint32_t fallback = flow.ruleId;
  if (flow.policyVersion != policy_->version()) {
    fallback = policy_->classifyNewFlow(tupleOf(flow)).ruleId;
    flow.policyVersion = policy_->version();
  }
  if (config_.id >= policy_->workerScratches()) {
    ++counters_.verdictsWithoutScratch;
    state = nullptr;
  }
  InspectionFacts facts;
  if (state != nullptr) Inspector::collectFacts(*state, facts);
  VerdictDecision decision =
      config_.id < policy_->workerScratches()
          ? policy_->decide(tupleOf(flow), facts.facts, fallback, policy_->scratchFor(config_.id))
          : VerdictDecision{fallback, policy_->actionOf(fallback), false};
  flow.ruleId = decision.ruleId;
  flow.action = decision.action;
  flow.inspectFlags &= static_cast<uint8_t>(~kVerdictPending);
  ++counters_.verdictsAfterL7;
}

void Worker::denyEvasion(Flow& flow, const InspectionState& state) {
  if (policy_ == nullptr) return;  // no policy: nothing is refused
  ++(state.overlapConflict ? counters_.overlapDenied : counters_.unreadableHelloDenied);
  flow.action = VerdictAction::kDeny;
  flow.ruleId = kNoRule;
  flow.policyVersion = policy_->version();
  if (flow.inspectFlags & kVerdictPending) ++counters_.verdictsAfterL7;
  flow.inspectFlags &= static_cast<uint8_t>(~kVerdictPending);
}

void Worker::decideByException(Flow& flow) {
  if (!(flow.inspectFlags & kVerdictPending) || policy_ == nullptr) return;
  if (config_.exceptionPolicy == ExceptionPolicy::kPolicy) {
    resolvePendingVerdict(flow, nullptr);
    return;
  }
  flow.action =
      config_.exceptionPolicy == ExceptionPolicy::kDrop ? VerdictAction::kDeny : VerdictAction::kAllow;
  flow.ruleId = kNoRule;
  flow.policyVersion = policy_->version();
  flow.inspectFlags &= static_cast<uint8_t>(~kVerdictPending);
  ++counters_.verdictsAfterL7;
}

void Worker::reclaimSlowInspections(uint64_t nowUs, uint32_t budget) {
  const uint32_t slots = inspections_->slots();
  for (uint32_t n = 0; n < budget && n < slots; ++n) {
    uint32_t slot = nextSlotToCheck_;
    nextSlotToCheck_ = nextSlotToCheck_ + 1 == slots ? 0 : nextSlotToCheck_ + 1;
    SlotOwner& owner = slotOwners_[slot];
    if (owner.sinceUs == 0 || nowUs <= owner.sinceUs || nowUs - owner.sinceUs <= config_.inspectionTimeoutUs)
      continue;
    const FlowKey* key = &owner.key;
    int32_t position = -1;
    table_->lookupBurst(&key, 1, &position);
    if (position < 0 || table_->at(position).inspection != slot) {
      owner.sinceUs = 0;  // not expected: every flow gives its slot back through finishInspection
      continue;
    }
    Flow& flow = table_->at(position);
    ++counters_.exceptionSlowHandshake;
    decideByException(flow);
    finishInspection(flow);
  }
}

bool Worker::judgeHttpRequest(Flow& flow, const InspectionState& state) {
  const bool pending = (flow.inspectFlags & kVerdictPending) != 0;
  VerdictDecision decision;
  if (state.httpStream.refusal != HttpRefusal::kNone) {
    // A request that cannot be judged under a policy whose HTTP rules could deny it: denied by vgate itself.
    decision = VerdictDecision{kRuleHttpRefused, VerdictAction::kDeny, false};
    if (pending) ++counters_.verdictsAfterL7;
  } else if (pending) {
    resolvePendingVerdict(flow, &state);  // the first request decides the flow's verdict, as for any L7 rule
    return flow.action != VerdictAction::kDeny && flow.action != VerdictAction::kReject;
  } else if (policy_ == nullptr || config_.id >= policy_->workerScratches()) {
    return true;
  } else {
    InspectionFacts facts;
    Inspector::collectFacts(state, facts);
    const L34Tuple tuple = tupleOf(flow);
    const uint32_t fallback = policy_->classifyNewFlow(tuple).ruleId;
    decision = policy_->decide(tuple, facts.facts, fallback, policy_->scratchFor(config_.id));
    if (decision.action != VerdictAction::kDeny && decision.action != VerdictAction::kReject) return true;
  }
  // A later request's deny is the flow's from here on; an allowed one leaves the first request's verdict.
  flow.ruleId = decision.ruleId;
  flow.action = decision.action;
  if (policy_ != nullptr) flow.policyVersion = policy_->version();
  flow.inspectFlags &= static_cast<uint8_t>(~kVerdictPending);
  if (!pending) {
    flow.inspectFlags |= kDeniedMidConnection;
    ++inspector_->counters().httpDeniedMidConnection;
  }
  return false;
}

bool Worker::inspect(Flow& flow, const ParsedPacket& packet, rte_mbuf* mbuf, int direction) {
  if (flow.inspection == kNoInspection) {
    if (packet.payloadLength == 0) return false;
    // Whether every HTTP request must be judged is known once the flow has payload, under the policy then.
    const bool judged = packet.protocol == IPPROTO_TCP && (flow.inspectFlags & kVerdictPending) &&
                        policy_ != nullptr && policy_->judgesHttp(tupleOf(flow));
    if (judged) flow.inspectFlags |= kHttpJudged;
    flow.inspection = inspections_->acquire(flow.seqBase, flow.inspectFlags & 0x3);
    if (flow.inspection == kNoInspection) {
      ++inspector_->counters().poolExhausted;
      flow.inspectFlags |= kInspectFinished;
      if (judged) {
        // Without a state its requests cannot be read: letting them through unjudged would make a full pool
        // a way around the policy.
        flow.ruleId = kRuleHttpRefused;
        flow.action = VerdictAction::kDeny;
        flow.inspectFlags &= static_cast<uint8_t>(~kVerdictPending);
        ++counters_.verdictsAfterL7;
      } else if (flow.inspectFlags & kVerdictPending) {
        ++counters_.exceptionNoSlot;
        decideByException(flow);
      }
      return false;
    }
    ++inspector_->counters().started;
    slotOwners_[flow.inspection] = SlotOwner{flow.key, std::max<uint64_t>(flow.lastUs, 1)};
    inspections_->at(flow.inspection).httpStream.perRequest = judged;
  }
  const uint8_t* payload = nullptr;
  if (packet.payloadLength > 0) {
    if (packet.payloadOffset + packet.payloadLength <= mbuf->data_len) {
      payload = rte_pktmbuf_mtod_offset(mbuf, const uint8_t*, packet.payloadOffset);
    } else {
      uint32_t length = std::min<uint32_t>(packet.payloadLength, kScratchBytes);
      payload =
          static_cast<const uint8_t*>(rte_pktmbuf_read(mbuf, packet.payloadOffset, length, scratch_.get()));
      if (payload == nullptr) return false;
    }
  }
  InspectionState& state = inspections_->at(flow.inspection);
  struct Judging {
    Worker* worker;
    Flow* flow;
  } judging{this, &flow};
  const HttpJudge judge{[](void* context, const InspectionState& judged) {
                          auto* j = static_cast<Judging*>(context);
                          return j->worker->judgeHttpRequest(*j->flow, judged);
                        },
                        &judging};
  const bool finished = inspector_->onPacket(state, packet, payload, direction, &judge);
  const bool dropSegment = state.dropSegment;
  // Not HTTP after all (TLS, say): nothing per request to judge, and an inspect entry is fine again.
  if (!state.httpStream.perRequest) flow.inspectFlags &= static_cast<uint8_t>(~kHttpJudged);
  if (state.overlapConflict || (state.unreadableHello && (flow.inspectFlags & kVerdictPending))) {
    denyEvasion(flow, state);
    finishInspection(flow);
  } else if (finished) {
    finishInspection(flow);
  } else if ((flow.inspectFlags & kVerdictPending) && Inspector::clientSideDone(state) &&
             (Inspector::serverSideDone(state) || policy_ == nullptr || !policy_->needsServerFacts())) {
    // The client's side is complete: decide now, so that a deny drops this packet and the rest, while
    // inspection goes on for the log (the server's certificate).
    resolvePendingVerdict(flow, &state);
  }
  return dropSegment;
}

void Worker::finishInspection(Flow& flow) {
  if (flow.inspection == kNoInspection) return;
  const InspectionState& state = inspections_->at(flow.inspection);
  flow.appProto = Inspector::appProto(state);
  if (flow.inspectFlags & kVerdictPending) resolvePendingVerdict(flow, &state);
  auto* record = static_cast<FlowMetadataRecord*>(takeRecordObject(config_.records.metadataRecords));
  if (record == nullptr) {
    ++counters_.metadataLost;
    ++counters_.metadataLostNoRecord;
  } else {
    new (record) FlowMetadataRecord();
    record->flowId = flow.flowId;
    if (Inspector::fillMetadata(state, *record)) {
      if (sendRecord(record, config_.records.metadataRecords)) {
        flow.hasMetadata = 1;
      } else {
        ++counters_.metadataLost;
        ++counters_.metadataLostRingFull;
      }
    } else {
      rte_mempool_put(config_.records.metadataRecords, record);
    }
  }
  slotOwners_[flow.inspection].sinceUs = 0;
  inspections_->release(flow.inspection);
  flow.inspection = kNoInspection;
  flow.inspectFlags |= kInspectFinished;
}

void Worker::endFlow(int32_t position, FlowEndReason reason, uint64_t nowUs) {
  Flow& flow = table_->at(position);
  if (flow.offloadState != kNotOffloaded) {
    collectOffloadUsage(position);
    // At shutdown the fast path keeps carrying the flow for the next vgated; otherwise its entries go with
    // it.
    if (reason != FlowEndReason::kShutdown) config_.offload->retire(flow);
  }
  bool decidedAtEnd = (flow.inspectFlags & kVerdictPending) != 0;
  finishInspection(flow);
  if (flow.inspectFlags & kVerdictPending) resolvePendingVerdict(flow, nullptr);  // ended before any payload
  auto* record = static_cast<FlowEndRecord*>(takeRecordObject(config_.records.endRecords));
  if (record == nullptr) {
    ++counters_.recordsLost;
    ++counters_.recordsLostNoRecord;
  } else {
    new (record) FlowEndRecord();
    record->state = recordState(flow);
    // A flow that closed with FIN or RST ended for that reason, whenever its closing timeout noticed it.
    record->reason = reason;
    if (flow.key.protocol == IPPROTO_TCP && flow.tcp == TcpProgress::kClosed) {
      record->reason =
          ((flow.tcpFlags[0] | flow.tcpFlags[1]) & kTcpRst) ? FlowEndReason::kRst : FlowEndReason::kFin;
    }
    record->appProto = flow.appProto;
    record->action = flow.action;
    record->ruleId = flow.ruleId;
    record->policyVersion = flow.policyVersion;
    record->mode = policy_ != nullptr ? policy_->mode() : PolicyMode::kEnforce;
    bool ipv4 = flow.key.isIpv4();
    record->ipVersion = ipv4 ? 4 : 6;
    record->protocol = flow.key.protocol;
    record->tcpFlags[kToServer] = flow.tcpFlags[kToServer];
    record->tcpFlags[kToClient] = flow.tcpFlags[kToClient];
    uint32_t zone = uint32_t{flow.key.zone[0]} << 16 | uint32_t{flow.key.zone[1]} << 8 | flow.key.zone[2];
    uint16_t outer = static_cast<uint16_t>(zone >> 12);
    uint16_t inner = static_cast<uint16_t>(zone & 0xfff);
    if (config_.outerTagIsPortPair) {
      record->portPair = outer;
      outer = inner;
      inner = 0;
    }
    record->vlanCount = inner ? 2 : outer ? 1 : 0;
    record->vlanIds[0] = outer;
    record->vlanIds[1] = inner;
    record->hasMetadata = flow.hasMetadata != 0;
    record->decidedAtEnd = decidedAtEnd;
    record->direction = static_cast<uint8_t>((flow.inspectFlags & kFlowDirectionMask) >> kFlowDirectionShift);
    bool clientLow = flow.clientIsLow != 0;
    keyAddressToRecord(clientLow ? flow.key.addrLow : flow.key.addrHigh, ipv4, record->srcAddr);
    keyAddressToRecord(clientLow ? flow.key.addrHigh : flow.key.addrLow, ipv4, record->dstAddr);
    record->srcPort = clientLow ? flow.key.portLow : flow.key.portHigh;
    record->dstPort = clientLow ? flow.key.portHigh : flow.key.portLow;
    record->icmpType = flow.icmpType;
    record->icmpCode = flow.icmpCode;
    record->flowId = flow.flowId;
    record->startUs = flow.startUs;
    record->endUs = std::max(flow.lastUs, flow.startUs);
    (void)nowUs;  // the record's end is the last packet seen, not when we noticed the flow had ended
    for (int direction = 0; direction < 2; ++direction) {
      record->pkts[direction] = flow.pkts[direction];
      record->bytes[direction] = flow.bytes[direction];
    }
    if (!sendRecord(record, config_.records.endRecords)) {
      ++counters_.recordsLost;
      ++counters_.recordsLostRingFull;
    }
  }
  ++counters_.flowsEnded;
  table_->remove(position);
}

void Worker::expire(uint64_t nowUs, uint32_t budget) {
  PolicyBurst policyBurst(*this);
  table_->sweep(nowUs, config_.timeouts, budget, [&](int32_t position) {
    if (table_->at(position).offloadState != kNotOffloaded && offloadedFlowStillActive(position, nowUs))
      return;
    ++counters_.flowsTimedOut;
    endFlow(position, FlowEndReason::kTimeout, nowUs);
  });
  reclaimSlowInspections(nowUs, budget);
}

void Worker::flushAll(uint64_t nowUs, FlowEndReason reason) {
  PolicyBurst policyBurst(*this);
  table_->forEach([&](int32_t position) { endFlow(position, reason, nowUs); });
}

void* Worker::takeRecordObject(rte_mempool* pool) {
  void* object = nullptr;
  while (rte_mempool_get(pool, &object) != 0) {
    if (!config_.losslessRecords) return nullptr;
    rte_pause();
  }
  return object;
}

bool Worker::sendRecord(void* object, rte_mempool* pool) {
  while (rte_ring_sp_enqueue(config_.records.ring, object) != 0) {
    if (!config_.losslessRecords) {
      rte_mempool_put(pool, object);
      return false;
    }
    rte_pause();
  }
  return true;
}

}  // namespace vgate::dataplane
