// The port pairs the dataplane serves, by pair id (the port tag's VID): each pair's inner and outer ifindex
// in vgate's namespace. Written by the control thread on attach and detach, read by workers when they offload
// a flow: one 64-bit atomic per pair, no locks.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "vgate/bpf/fast_path.h"

namespace vgate::dataplane {

struct PortPairIfindexes {
  uint32_t inner = 0;  // 0: no such pair
  uint32_t outer = 0;
};

class PortTable {
 public:
  void set(uint16_t pairId, PortPairIfindexes ports) {
    if (pairId >= VGATE_FP_MAX_PAIRS) return;
    pairs_[pairId].store(uint64_t{ports.inner} << 32 | ports.outer, std::memory_order_release);
  }
  void clear(uint16_t pairId) { set(pairId, {}); }
  PortPairIfindexes get(uint16_t pairId) const {
    if (pairId >= VGATE_FP_MAX_PAIRS) return {};
    uint64_t packed = pairs_[pairId].load(std::memory_order_acquire);
    return {static_cast<uint32_t>(packed >> 32), static_cast<uint32_t>(packed)};
  }

 private:
  std::array<std::atomic<uint64_t>, VGATE_FP_MAX_PAIRS> pairs_{};
};

}  // namespace vgate::dataplane
