// Flow table on rte_hash: see flow_table.h for the design.
#include "dataplane/flow/flow_table.h"

#include <netinet/in.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <cstring>

namespace vgate::dataplane {

namespace {

// How many occupied slots pickVictim() compares: enough to avoid evicting an active flow in practice, few
// enough to stay a couple of cache misses.
constexpr int kVictimSample = 8;

}  // namespace

namespace {

// Bytes allocated from the EAL heap on every socket: rte_hash reports no footprint of its own, so the table
// measures what its creation took.
size_t heapAllocatedBytes() {
  size_t total = 0;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats stats{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &stats) == 0) total += stats.heap_allocsz_bytes;
  }
  return total;
}

}  // namespace

Result<std::unique_ptr<FlowTable>> FlowTable::create(const FlowTableConfig& config) {
  if (config.capacity < 8) return makeError(EINVAL, "flow table capacity must be at least 8");
  size_t heapBefore = heapAllocatedBytes();
  rte_hash_parameters params{};
  params.name = config.name.c_str();
  params.entries = config.capacity;
  params.key_len = sizeof(FlowKey);
  params.hash_func = rte_hash_crc;
  params.hash_func_init_val = 0;
  params.socket_id = config.socket;
  // Extendable buckets: every one of `entries` keys fits, whatever the hash distribution; without them cuckoo
  // insertion can fail well before the table is full, which would turn into needless evictions.
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
  rte_hash* hash = rte_hash_create(&params);
  if (hash == nullptr) {
    return makeError(rte_errno, "rte_hash_create(" + config.name + ", " + std::to_string(config.capacity) +
                                    "): " + rte_strerror(rte_errno));
  }
  auto* flows = static_cast<Flow*>(
      rte_zmalloc_socket("vgate_flows", sizeof(Flow) * size_t{config.capacity}, 64, config.socket));
  if (flows == nullptr) {
    rte_hash_free(hash);
    return makeError(ENOMEM, "cannot allocate " + std::to_string(config.capacity) + " flow entries");
  }
  auto table = std::unique_ptr<FlowTable>(new FlowTable(hash, flows, config.capacity));
  table->memoryBytes_ = heapAllocatedBytes() - heapBefore;
  return table;
}

FlowTable::FlowTable(rte_hash* hash, Flow* flows, uint32_t capacity)
    : hash_(hash), flows_(flows), capacity_(capacity) {}

FlowTable::~FlowTable() {
  rte_hash_free(hash_);
  rte_free(flows_);
}

void FlowTable::lookupBurst(const FlowKey* const* keys, uint32_t n, int32_t* positions) const {
  if (n == 0) return;
  rte_hash_lookup_bulk(hash_, reinterpret_cast<const void**>(const_cast<const FlowKey**>(keys)), n,
                       positions);
  for (uint32_t i = 0; i < n; ++i) {
    if (positions[i] < 0) positions[i] = -1;
  }
}

int32_t FlowTable::insert(const FlowKey& key) {
  if (size_ >= capacity_) {
    // A key already present (inserted earlier in this burst) is still found.
    int32_t existing = rte_hash_lookup(hash_, &key);
    return existing >= 0 ? existing : -1;
  }
  int32_t position = rte_hash_add_key(hash_, &key);
  if (position < 0) {
    ++stats_.insertFailed;
    return -1;
  }
  Flow& flow = flows_[position];
  if (flow.flowId == 0) {
    std::memset(&flow, 0, sizeof(Flow));
    flow.key = key;
    flow.inspection = kNoInspection;
    flow.ruleId = UINT32_MAX;
    ++size_;
    ++stats_.inserted;
  }
  return position;
}

int32_t FlowTable::pickVictim() {
  if (size_ == 0) return -1;
  int32_t victim = -1;
  int sampled = 0;
  for (uint32_t visited = 0; visited < capacity_ && sampled < kVictimSample; ++visited) {
    uint32_t position = victimCursor_;
    victimCursor_ = victimCursor_ + 1 == capacity_ ? 0 : victimCursor_ + 1;
    const Flow& flow = flows_[position];
    if (flow.flowId == 0) continue;
    ++sampled;
    // Prefer flows that never got an answer or are already closing: a SYN flood then evicts its own entries.
    bool weak =
        flow.tcp == TcpProgress::kSynSent || flow.tcp == TcpProgress::kClosed || flow.pkts[kToClient] == 0;
    if (victim < 0) {
      victim = static_cast<int32_t>(position);
      continue;
    }
    const Flow& best = flows_[victim];
    bool bestWeak =
        best.tcp == TcpProgress::kSynSent || best.tcp == TcpProgress::kClosed || best.pkts[kToClient] == 0;
    if ((weak && !bestWeak) || (weak == bestWeak && flow.lastUs < best.lastUs))
      victim = static_cast<int32_t>(position);
  }
  return victim;
}

void FlowTable::remove(int32_t position) {
  Flow& flow = flows_[position];
  if (flow.flowId == 0) return;
  rte_hash_del_key(hash_, &flow.key);
  flow.flowId = 0;
  --size_;
  ++stats_.removed;
}

size_t FlowTable::memoryBytes() const { return memoryBytes_; }

uint64_t FlowTable::idleTimeout(const Flow& flow, const FlowTimeouts& timeouts) {
  switch (flow.key.protocol) {
    case IPPROTO_TCP:
      switch (flow.tcp) {
        case TcpProgress::kClosed:
          return timeouts.tcpClosedUs;
        case TcpProgress::kEstablished:
        case TcpProgress::kFinSeen:
          return timeouts.tcpEstablishedUs;
        default:
          return timeouts.tcpNewUs;
      }
    case IPPROTO_UDP:
      return flow.pkts[kToClient] > 0 ? timeouts.udpEstablishedUs : timeouts.udpNewUs;
    default:
      return timeouts.otherUs;
  }
}

}  // namespace vgate::dataplane
