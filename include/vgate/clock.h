// The clocks the dataplane and the fast path share, in nanoseconds: CLOCK_MONOTONIC is what the TC program's
// bpf_ktime_get_ns reads (heartbeat, last-seen times); CLOCK_REALTIME is the flow log's. vDSO calls, no
// syscall.
#pragma once

#include <time.h>

#include <cstdint>

namespace vgate {

inline uint64_t clockNs(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

inline uint64_t monotonicNs() { return clockNs(CLOCK_MONOTONIC); }

}  // namespace vgate
