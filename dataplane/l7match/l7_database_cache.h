// The L7 matcher's cache of serialized Hyperscan databases: one file per chunk, named by a digest of all that
// its database is a function of, so that any policy with the same chunk reuses it.
#pragma once

#include <hs/hs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dataplane/l7match/l7_patterns.h"

namespace vgate::dataplane {

using L7CacheKey = std::array<uint8_t, 32>;

class L7DatabaseCache {
 public:
  explicit L7DatabaseCache(std::string directory) : directory_(std::move(directory)) {}

  // A chunk's key: this build's layout and Hyperscan, the CPU, then each pattern in id order. Rule indices
  // are not in it: they live in the table beside the database.
  static L7CacheKey key(const std::vector<const L7Expression*>& patterns);
  // Hex digits only, so that nothing from a policy can reach a path.
  static std::string fileName(const L7CacheKey& key);

  // A usable database from the directory's `file`, or nullptr; `rejected` when the file is there but
  // unusable (corrupt, another key, platform or version).
  hs_database_t* load(const std::string& file, const L7CacheKey& key, size_t patternCount,
                      bool& rejected) const;
  // Best effort: a cache that cannot be written only costs the next compile its time.
  bool store(const std::string& file, const L7CacheKey& key, size_t patternCount,
             const hs_database_t* database) const;
  // Bounds the directory: keeps `used`, and of the other cache files the most recently used
  // max(keepOther, used.size()); removes temporary files left by crashed writers. Returns the removals.
  size_t sweep(const std::unordered_set<std::string>& used, size_t keepOther) const;

 private:
  std::string directory_;
};

}  // namespace vgate::dataplane
