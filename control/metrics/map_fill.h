// How full the fast path's pinned BPF maps are, for vgate_fastpath_map_pressure: entries counted by walking
// the map's keys from user space (the kernel keeps no count of a hash map's entries), at most once per
// interval, so that a scrape never walks a million-entry map more often than that.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "control/metrics/collector.h"

namespace vgate::control::metrics {

class PinnedMapFill {
 public:
  using Clock = std::chrono::steady_clock;
  // The maps `names` pinned in `pinDir`.
  PinnedMapFill(std::string pinDir, std::vector<std::string> names,
                Clock::duration interval = std::chrono::seconds(10))
      : pinDir_(std::move(pinDir)), names_(std::move(names)), interval_(interval) {}

  // The last count, or a new one when it is older than the interval. A map that cannot be opened is left
  // out.
  std::vector<MapFill> read();

 private:
  std::string pinDir_;
  std::vector<std::string> names_;
  Clock::duration interval_;
  std::mutex mutex_;
  Clock::time_point countedAt_{};
  bool counted_ = false;
  std::vector<MapFill> last_;
};

// Entries of the map behind `fd` and its max_entries; false when it cannot be read.
bool countMapEntries(int fd, MapFill& fill);

}  // namespace vgate::control::metrics
