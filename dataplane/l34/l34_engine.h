// What L34Classifier needs of an engine once built: classifying bursts. Private to dataplane/l34.
#pragma once

#include <cstdint>

#include "dataplane/l34/l34_classifier.h"

namespace vgate::dataplane::l34 {

// The most tuples an engine classifies at once: L34Classifier::classify splits longer arrays.
inline constexpr uint32_t kBurst = 64;

// One engine's index, read-only once built, so that many threads may classify through it at once.
class Engine {
 public:
  virtual ~Engine() = default;
  // ruleIds[i] = the first matching rule's id for tuples[i], or kNoRule; count is at most kBurst.
  virtual void classifyBurst(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const = 0;
};

}  // namespace vgate::dataplane::l34
