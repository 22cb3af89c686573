// Fuzzes ReassemblyBuffer against a byte-by-byte reference model: the input is a sequence of insert
// operations on a 16 KiB buffer, and any difference in result, prefix length, truncation or stored bytes
// aborts.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "dataplane/stream/reassembly_buffer.h"

// The model's per-byte loops run tens of thousands of times per input; keeping coverage instrumentation out
// of them (and not inlining them into instrumented code) keeps the fuzzer fast and its feedback about the
// buffer, not about the model.
#define VGATE_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))

namespace {

using vgate::dataplane::InsertResult;
using vgate::dataplane::ReassemblyBuffer;

constexpr uint32_t kCapacity = 16 * 1024;

void check(bool ok) {
  if (!ok) std::abort();
}

// The obvious reassembly: one optional byte per position, first value wins.
class Model {
 public:
  VGATE_NO_COVERAGE void reset() {
    bytes_.assign(kCapacity, std::nullopt);
    contiguous_ = 0;
    truncated_ = false;
  }

  VGATE_NO_COVERAGE InsertResult insert(uint64_t offset, const uint8_t* data, uint32_t length) {
    if (length == 0) return InsertResult::kDuplicate;
    if (offset >= kCapacity) {
      truncated_ = true;
      return InsertResult::kBeyondCapacity;
    }
    bool added = false;
    bool conflict = false;
    for (uint32_t i = 0; i < length; ++i) {
      const uint64_t pos = offset + i;
      if (pos >= kCapacity) {
        truncated_ = true;
        break;
      }
      if (!bytes_[pos]) {
        bytes_[pos] = data[i];
        added = true;
      } else if (*bytes_[pos] != data[i]) {
        conflict = true;
      }
    }
    // Bytes are never removed, so the prefix only grows: advance it instead of rescanning.
    while (contiguous_ < kCapacity && bytes_[contiguous_]) ++contiguous_;
    if (conflict) return InsertResult::kOverlapConflict;
    return added ? InsertResult::kAdded : InsertResult::kDuplicate;
  }

  VGATE_NO_COVERAGE bool sameBytes(const uint8_t* data) const {
    for (uint32_t i = 0; i < kCapacity; ++i) {
      if (bytes_[i] && *bytes_[i] != data[i]) return false;
    }
    return true;
  }

  uint32_t contiguous() const { return contiguous_; }
  bool truncated() const { return truncated_; }

 private:
  std::vector<std::optional<uint8_t>> bytes_ = std::vector<std::optional<uint8_t>>(kCapacity);
  uint32_t contiguous_ = 0;
  bool truncated_ = false;
};

// The stream's "true" bytes, used by pattern chunks so that overlapping pattern chunks agree.
VGATE_NO_COVERAGE void fillPattern(uint8_t* out, uint64_t offset, uint32_t length) {
  for (uint32_t i = 0; i < length; ++i) {
    const uint64_t at = offset + i;
    out[i] = static_cast<uint8_t>(at * 31 + (at >> 8) + 7);
  }
}

}  // namespace

// Each operation: mode byte, 16-bit offset field, 16-bit length field, then (for literal chunks) the data.
// mode & 3 picks the offset: 0 absolute (mod capacity + 1 KiB), 1 relative to the current prefix, 2 near
// UINT64_MAX, 3 a multiple of 64 (word aligned). mode & 0x80 selects pattern data, else literal input bytes.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> storage(ReassemblyBuffer::storageBytes(kCapacity));
  static std::vector<uint8_t> chunk(4096);
  static Model model;
  ReassemblyBuffer buffer;
  buffer.reset(storage.data(), kCapacity);
  model.reset();

  size_t at = 0;
  while (size - at >= 5) {
    const uint8_t mode = data[at];
    const uint32_t offsetField = data[at + 1] | (data[at + 2] << 8);
    uint32_t length = data[at + 3] | (data[at + 4] << 8);
    at += 5;
    uint64_t offset = 0;
    switch (mode & 3) {
      case 0:
        offset = offsetField % (kCapacity + 1024);
        break;
      case 1:
        offset = buffer.contiguousLength() + offsetField % 256;
        break;
      case 2:
        offset = UINT64_MAX - offsetField;
        break;
      default:
        offset = (offsetField * uint64_t{64}) % (kCapacity + 128);
        break;
    }
    const uint8_t* chunkData;
    if (mode & 0x80) {
      length %= 4096;
      fillPattern(chunk.data(), offset, length);
      chunkData = chunk.data();
    } else {
      length %= 512;
      if (length > size - at) length = static_cast<uint32_t>(size - at);
      chunkData = data + at;
      at += length;
    }
    const InsertResult expected = model.insert(offset, chunkData, length);
    check(buffer.insert(offset, chunkData, length) == expected);
    check(buffer.contiguousLength() == model.contiguous());
    check(buffer.truncated() == model.truncated());
  }
  check(model.sameBytes(buffer.data()));
  return 0;
}
