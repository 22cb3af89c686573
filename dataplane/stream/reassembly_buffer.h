// Reassembles the first bytes of a byte stream from chunks at arbitrary offsets: TCP segments
// (offset = seq - ISN - 1) and QUIC CRYPTO frames (their own offset) alike, in memory the caller owns.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgate::dataplane {

enum class InsertResult : uint8_t {
  kAdded,            // new bytes stored (contiguousLength() may have grown)
  kDuplicate,        // every byte was already there and equal
  kOverlapConflict,  // some bytes were already there with other values: the first copy is kept (counted)
  kBeyondCapacity,   // nothing of it falls within [0, capacity)
  kCount
};

class ReassemblyBuffer {
 public:
  // Bytes of caller-owned storage a buffer of `capacity` stream bytes needs (data plus its bookkeeping).
  static constexpr size_t storageBytes(uint32_t capacity) { return capacity + (capacity + 7) / 8; }

  // Starts an empty stream in `storage` (at least storageBytes(capacity) bytes). No allocation.
  void reset(uint8_t* storage, uint32_t capacity);

  // Stores the part of [offset, offset + length) that lies within [0, capacity). Out of order, duplicated and
  // overlapping chunks are all accepted; a byte, once stored, keeps its first value.
  //
  // Why the first copy wins: which copy of overlapping data a receiver keeps differs between TCP stacks
  // (Ptacek & Newsham, "Insertion, Evasion, and Denial of Service", 1998), so no choice matches every
  // endpoint. Keeping the first means bytes already inspected (an SNI, a Host) never change under a decision
  // made on them, and since honest retransmissions carry identical bytes, a difference is itself the evasion
  // signal: it is returned as kOverlapConflict (even when the chunk also brought new bytes, which are stored)
  // so the caller can count it and refuse the flow. A zero-length chunk returns kDuplicate and changes
  // nothing; any chunk reaching past capacity (including one wholly beyond it) sets truncated().
  InsertResult insert(uint64_t offset, const uint8_t* data, uint32_t length);

  // Bytes [0, contiguousLength()) are all present.
  uint32_t contiguousLength() const { return contiguous_; }
  const uint8_t* data() const { return data_; }
  uint32_t capacity() const { return capacity_; }
  // Whether any chunk reached past capacity (the stream is longer than we keep).
  bool truncated() const { return truncated_; }

 private:
  uint8_t* data_ = nullptr;
  uint8_t* present_ = nullptr;  // one bit per stream byte
  uint32_t capacity_ = 0;
  uint32_t contiguous_ = 0;
  bool truncated_ = false;
};

}  // namespace vgate::dataplane
