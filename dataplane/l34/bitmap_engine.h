// The bitmap engine, the default: per field, sorted lists of the elements narrow in it, and group bitmaps
// for the few wide in every field. Private to dataplane/l34.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/l34/l34_classifier.h"
#include "dataplane/l34/l34_engine.h"
#include "dataplane/l34/l34_rules.h"

namespace vgate::dataplane::l34 {

// Elements are numbered in 32 bits.
inline constexpr uint64_t kBitmapMaxElements = UINT32_MAX;

// A rule's elements here: one per item of its cross product, but "any protocol with ports" stays one.
uint64_t bitmapElementCount(const Expansion& expansion);

// Fills stats.memoryBytes, stats.listed and stats.algorithm. expanded is released before the index is built.
std::unique_ptr<Engine> buildBitmapEngine(const std::vector<L34Rule>& rules, ExpandedRules expanded,
                                          const L34ClassifierConfig& config, L34ClassifierStats& stats);

}  // namespace vgate::dataplane::l34
