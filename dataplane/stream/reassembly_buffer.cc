// Reassembly of a stream's first bytes: data copied in place, presence kept as a bitmap that is set, tested
// and scanned 64 bits at a time.
#include "dataplane/stream/reassembly_buffer.h"

#include <bit>
#include <cstring>

namespace vgate::dataplane {

namespace {

// Stream byte i is bit (i % 64) of bitmap word i / 64; a word is the 8 bitmap bytes at 8 * (i / 64), read
// little-endian so that bit k of byte j is stream byte 8 * j + k whatever the host order. The bitmap has
// (capacity + 7) / 8 bytes, so its last word may be short: those reads are zero-padded, those writes clipped.
constexpr uint32_t kWordBits = 64;

inline uint64_t fromLittleEndian(uint64_t word) {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap64(word);
  return word;
}

inline uint64_t loadWord(const uint8_t* bitmap, uint32_t bitmapBytes, uint32_t index) {
  const uint32_t at = index * 8;
  uint64_t word = 0;
  std::memcpy(&word, bitmap + at, bitmapBytes - at >= 8 ? 8 : bitmapBytes - at);
  return fromLittleEndian(word);
}

inline void storeWord(uint8_t* bitmap, uint32_t bitmapBytes, uint32_t index, uint64_t word) {
  const uint32_t at = index * 8;
  word = fromLittleEndian(word);
  std::memcpy(bitmap + at, &word, bitmapBytes - at >= 8 ? 8 : bitmapBytes - at);
}

// Bits [from, to) of a word, 0 <= from < to <= 64.
inline uint64_t bitRange(uint32_t from, uint32_t to) {
  const uint64_t upTo = to == kWordBits ? ~uint64_t{0} : (uint64_t{1} << to) - 1;
  return upTo & ~((uint64_t{1} << from) - 1);
}

}  // namespace

void ReassemblyBuffer::reset(uint8_t* storage, uint32_t capacity) {
  data_ = storage;
  present_ = storage + capacity;
  capacity_ = capacity;
  contiguous_ = 0;
  truncated_ = false;
  // Only the bitmap needs clearing: a data byte is never read before its presence bit is set.
  std::memset(present_, 0, (static_cast<size_t>(capacity) + 7) / 8);
}

InsertResult ReassemblyBuffer::insert(uint64_t offset, const uint8_t* data, uint32_t length) {
  // An empty chunk (a bare ACK, an empty CRYPTO frame) carries nothing new and nothing conflicting.
  if (length == 0) return InsertResult::kDuplicate;
  if (offset >= capacity_) {
    // Checked before computing offset + length, which could overflow for offsets near UINT64_MAX.
    truncated_ = true;
    return InsertResult::kBeyondCapacity;
  }
  // offset < 2^32 and length < 2^32: the sum cannot overflow 64 bits.
  uint64_t end = offset + length;
  if (end > capacity_) {
    truncated_ = true;
    end = capacity_;
  }
  const uint32_t begin = static_cast<uint32_t>(offset);
  const uint32_t stop = static_cast<uint32_t>(end);
  const uint32_t bitmapBytes = (capacity_ + 7) / 8;

  bool added = false;
  bool conflict = false;
  // One bitmap word (64 stream bytes) per step: the common cases, a block all new or all already present,
  // cost one memcpy or one memcmp; only a block mixing both walks its runs of bits.
  for (uint32_t at = begin; at < stop;) {
    const uint32_t index = at / kWordBits;
    const uint32_t wordStart = index * kWordBits;
    const uint32_t wordStop = stop - wordStart < kWordBits ? stop - wordStart : kWordBits;
    const uint64_t mask = bitRange(at - wordStart, wordStop);
    const uint64_t word = loadWord(present_, bitmapBytes, index);
    const uint64_t fresh = mask & ~word;
    const uint64_t old = mask & word;
    const uint8_t* src = data + (at - begin);
    const uint32_t blockLength = wordStart + wordStop - at;

    if (fresh == mask) {
      std::memcpy(data_ + at, src, blockLength);
    } else if (old == mask) {
      conflict = conflict || std::memcmp(data_ + at, src, blockLength) != 0;
    } else {
      // Runs of new bytes are copied, runs of old bytes compared. Within one word there are at most 32 runs.
      uint64_t rest = mask;
      while (rest != 0) {
        const uint32_t runStart = static_cast<uint32_t>(std::countr_zero(rest));
        const bool isOld = (word >> runStart) & 1;
        const uint64_t same = isOld ? (word >> runStart) : (~word >> runStart);
        uint32_t runLength = static_cast<uint32_t>(std::countr_one(same));
        if (runStart + runLength > wordStop) runLength = wordStop - runStart;
        const uint32_t streamAt = wordStart + runStart;
        const uint8_t* runSrc = data + (streamAt - begin);
        if (isOld) {
          conflict = conflict || std::memcmp(data_ + streamAt, runSrc, runLength) != 0;
        } else {
          std::memcpy(data_ + streamAt, runSrc, runLength);
        }
        rest &= ~bitRange(runStart, runStart + runLength);
      }
    }
    if (fresh != 0) {
      storeWord(present_, bitmapBytes, index, word | fresh);
      added = true;
    }
    at = wordStart + wordStop;
  }

  // The prefix can only grow when this chunk filled the byte right after it; then scan whole words of present
  // bits. Each stream byte is scanned past once over the buffer's life, so the scan is amortised O(1) per
  // byte.
  if (added && begin <= contiguous_ && contiguous_ < stop) {
    uint32_t at = contiguous_;
    while (at < capacity_) {
      const uint32_t index = at / kWordBits;
      const uint32_t bit = at % kWordBits;
      // Bits below `bit` are known present; pretend they are set so countr_one measures from word start.
      const uint64_t word = loadWord(present_, bitmapBytes, index) | ((uint64_t{1} << bit) - 1);
      const uint32_t ones = static_cast<uint32_t>(std::countr_one(word));
      at = index * kWordBits + ones;
      if (ones < kWordBits) break;
    }
    // Padding bits past capacity read as zero, but clamp anyway so a short last word can never overshoot.
    contiguous_ = at < capacity_ ? at : capacity_;
  }

  // A conflict is reported even when the chunk also brought new bytes (which are kept): the caller counts
  // conflicts as an evasion signal, and it must not be hidden by a chunk that mixes old and new data.
  if (conflict) return InsertResult::kOverlapConflict;
  return added ? InsertResult::kAdded : InsertResult::kDuplicate;
}

}  // namespace vgate::dataplane
