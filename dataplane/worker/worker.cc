// The dataplane worker: see worker.h.
#include "dataplane/worker/worker.h"

#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
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

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint32_t kFragmentAccounts = 256;
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

struct Worker::FragmentAccount {
  uint8_t src[16];
  uint8_t dst[16];
  uint32_t id;
  uint8_t ipVersion;
  bool used;
  uint64_t pkts;
  uint64_t bytes;
  uint64_t lastUs;
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
  // The fragment table's clock is whatever the caller passes as "cycles": we pass microseconds of packet
  // time, so replayed captures age fragments in capture time.
  uint32_t buckets = std::max<uint32_t>(config.fragmentFlows / 8, 16);
  worker->fragmentTable_ =
      rte_ip_frag_table_create(buckets, 8, buckets * 8, config.fragmentTimeoutUs, config.socket);
  if (worker->fragmentTable_ == nullptr) return makeError(ENOMEM, "cannot create the IP fragment table");
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
      fragmentAccounts_(std::make_unique<FragmentAccount[]>(kFragmentAccounts)),
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
  if (fragmentTable_ != nullptr) rte_ip_frag_table_destroy(fragmentTable_);
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
    if (status == ParseStatus::kFragment) {
      ++counters_.fragments;
      ParsedPacket fragment = packet;
      accountFragment(fragment, mbuf->pkt_len, timestamp);
      if (!reassemble(mbuf, packet, timestamp)) {
        continue;  // kept by the fragment table (or dropped as unsupported) until its datagram completes
      }
      ++counters_.fragmentsReassembled;
      if (!takeFragmentAccount(fragment, frames, frameBytes)) {
        frames = 1;
        frameBytes = mbuf->pkt_len;
      }
      status = parsePacket(rte_pktmbuf_mtod(mbuf, const uint8_t*), mbuf->data_len, mbuf->pkt_len, packet);
    }
    forward[kept] = true;
    mbufs[kept++] = mbuf;
    if (status != ParseStatus::kOk)
      continue;  // ARP and other ethertypes pass; drop reasons are counted above
    if ((packet.protocol == IPPROTO_ICMP || packet.protocol == IPPROTO_ICMPV6) &&
        judgeRelatedIcmpError(mbuf, packet, forward[kept - 1]))
      continue;
    srcIsLow[flowCount] = buildFlowKey(packet, keys[flowCount]);
    keyPointers[flowCount] = &keys[flowCount];
    frameCounts[flowCount] = frames;
    byteCounts[flowCount] = frameBytes;
    timestamps[flowCount] = timestamp;
    flowSlot[flowCount] = static_cast<uint16_t>(kept - 1);
    ++flowCount;
  }

  int32_t positions[kBurstSize];
  table_->lookupBurst(keyPointers, flowCount, positions);
  bool evicted = false;
  for (uint16_t i = 0; i < flowCount; ++i) {
    int32_t position = positions[i];
    if (evicted) table_->lookupBurst(&keyPointers[i], 1, &position);  // an eviction may have moved things
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
      ++counters_.flowInsertFailed;
      continue;
    }
    forward[flowSlot[i]] = updateFlow(position, packets[i], srcIsLow[i], mbufs[flowSlot[i]], frameCounts[i],
                                      byteCounts[i], timestamps[i]);
  }

  // Denied packets leave the burst here; the rest keep their order.
  uint16_t forwarded = 0;
  for (uint16_t i = 0; i < kept; ++i) {
    if (forward[i]) {
      mbufs[forwarded++] = mbufs[i];
    } else {
      ++counters_.denied;
      rte_pktmbuf_free(mbufs[i]);
    }
  }
  return forwarded;
}

bool Worker::reassemble(rte_mbuf*& mbuf, ParsedPacket& packet, uint64_t timestampUs) {
  rte_ip_frag_death_row deathRow;
  deathRow.cnt = 0;
  rte_mbuf* result = nullptr;
  mbuf->l2_len = packet.l3Offset;
  if (packet.ipVersion == 4) {
    auto* header = rte_pktmbuf_mtod_offset(mbuf, rte_ipv4_hdr*, packet.l3Offset);
    mbuf->l3_len = rte_ipv4_hdr_len(header);
    result = rte_ipv4_frag_reassemble_packet(fragmentTable_, &deathRow, mbuf, timestampUs, header);
  } else {
    auto* header = rte_pktmbuf_mtod_offset(mbuf, rte_ipv6_hdr*, packet.l3Offset);
    // DPDK reassembles only a fragment header right after the fixed header; one behind other extension
    // headers is counted and dropped rather than misread.
    auto* fragmentHeader = rte_ipv6_frag_get_ipv6_fragment_header(header);
    if (fragmentHeader == nullptr) {
      ++counters_.fragmentsUnsupported;
      rte_pktmbuf_free(mbuf);
      return false;
    }
    mbuf->l3_len = sizeof(rte_ipv6_hdr) + sizeof(rte_ipv6_fragment_ext);
    result =
        rte_ipv6_frag_reassemble_packet(fragmentTable_, &deathRow, mbuf, timestampUs, header, fragmentHeader);
  }
  rte_ip_frag_free_death_row(&deathRow, 0);
  if (result == nullptr) return false;
  mbuf = result;
  return true;
}

// Fragments are counted in their flow once their datagram completes; until then their frames wait here, so
// that the flow's packet and byte counts are those of the frames on the wire, not of the reassembled
// datagram.
void Worker::accountFragment(const ParsedPacket& packet, uint32_t frameLength, uint64_t timestampUs) {
  FragmentAccount* slot = nullptr;
  FragmentAccount* oldest = &fragmentAccounts_[0];
  for (uint32_t i = 0; i < kFragmentAccounts; ++i) {
    FragmentAccount& account = fragmentAccounts_[i];
    if (account.used && account.id == packet.fragmentId && account.ipVersion == packet.ipVersion &&
        std::memcmp(account.src, packet.srcAddr, 16) == 0 &&
        std::memcmp(account.dst, packet.dstAddr, 16) == 0) {
      slot = &account;
      break;
    }
    if (!account.used || account.lastUs < oldest->lastUs) oldest = &account;
  }
  if (slot == nullptr) {
    slot = oldest;
    std::memcpy(slot->src, packet.srcAddr, 16);
    std::memcpy(slot->dst, packet.dstAddr, 16);
    slot->id = packet.fragmentId;
    slot->ipVersion = packet.ipVersion;
    slot->used = true;
    slot->pkts = 0;
    slot->bytes = 0;
  }
  ++slot->pkts;
  slot->bytes += frameLength;
  slot->lastUs = timestampUs;
}

bool Worker::takeFragmentAccount(const ParsedPacket& packet, uint64_t& pkts, uint64_t& bytes) {
  for (uint32_t i = 0; i < kFragmentAccounts; ++i) {
    FragmentAccount& account = fragmentAccounts_[i];
    if (account.used && account.id == packet.fragmentId && account.ipVersion == packet.ipVersion &&
        std::memcmp(account.src, packet.srcAddr, 16) == 0 &&
        std::memcmp(account.dst, packet.dstAddr, 16) == 0) {
      pkts = account.pkts;
      bytes = account.bytes;
      account.used = false;
      return true;
    }
  }
  return false;
}

bool Worker::dropsPackets(const Flow& flow) const {
  if (flow.inspectFlags & kVerdictPending) return false;
  bool denied = flow.action == VerdictAction::kDeny || flow.action == VerdictAction::kReject;
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
    flow.flowId = ((nextFlowSerial_++ << 8) | config_.id) & ((uint64_t{1} << 53) - 1);
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

void Worker::judgeNewFlow(Flow& flow, const ParsedPacket& packet, bool packetFromClient) {
  // Live, the port tag's side says where the packet entered its pair: the inner side is the container's own
  // end, so a packet from the client entering there means the container opened the flow. Replay has no
  // tags: CompiledPolicy tells the direction from the policy's endpoints.
  uint8_t direction = kDirectionUnknown;
  if (config_.outerTagIsPortPair && packet.vlanCount > 0) {
    bool enteredInner = vgate_port_tag_side_of_pcp(packet.outerVlanPcp) == VGATE_FP_SIDE_INNER;
    direction = enteredInner == packetFromClient ? kDirectionEgress : kDirectionIngress;
  }
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
      }
      return false;
    }
    ++inspector_->counters().started;
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
  if (finished) {
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
  } else {
    new (record) FlowMetadataRecord();
    record->flowId = flow.flowId;
    if (Inspector::fillMetadata(state, *record)) {
      if (sendRecord(record, config_.records.metadataRecords)) {
        flow.hasMetadata = 1;
      } else {
        ++counters_.metadataLost;
      }
    } else {
      rte_mempool_put(config_.records.metadataRecords, record);
    }
  }
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
    if (!sendRecord(record, config_.records.endRecords)) ++counters_.recordsLost;
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
