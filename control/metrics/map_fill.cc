// Pinned map fill: see map_fill.h.
#include "control/metrics/map_fill.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <vector>

namespace vgate::control::metrics {

bool countMapEntries(int fd, MapFill& fill) {
  bpf_map_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return false;
  fill.maxEntries = info.max_entries;
  fill.entries = 0;
  // Array maps are always full by construction: their "fill" is what is in use, which only the owner knows.
  if (info.type == BPF_MAP_TYPE_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_ARRAY) return false;
  std::vector<uint8_t> key(info.key_size), next(info.key_size);
  const void* previous = nullptr;
  // Entries deleted during the walk can restart it (the kernel goes back to the first bucket when the key is
  // gone): the count is bounded by max_entries so that it always ends.
  while (fill.entries < fill.maxEntries && bpf_map_get_next_key(fd, previous, next.data()) == 0) {
    ++fill.entries;
    key.swap(next);
    previous = key.data();
  }
  return true;
}

std::vector<MapFill> PinnedMapFill::read() {
  std::lock_guard lock(mutex_);
  if (counted_ && Clock::now() - countedAt_ < interval_) return last_;
  last_.clear();
  for (const std::string& name : names_) {
    int fd = bpf_obj_get((pinDir_ + "/" + name).c_str());
    if (fd < 0) continue;
    MapFill fill;
    fill.name = name;
    if (countMapEntries(fd, fill)) last_.push_back(fill);
    close(fd);
  }
  counted_ = true;
  countedAt_ = Clock::now();
  return last_;
}

}  // namespace vgate::control::metrics
