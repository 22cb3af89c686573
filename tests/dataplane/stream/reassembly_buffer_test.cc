// Tests of ReassemblyBuffer: orderings, duplicates, overlaps, capacity edges, and a random run against a
// byte-by-byte reference model.
#include "dataplane/stream/reassembly_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <vector>

namespace vgate::dataplane {
namespace {

constexpr uint32_t kCapacity = 16 * 1024;

std::vector<uint8_t> pattern(size_t length, uint32_t seed = 1) {
  std::vector<uint8_t> bytes(length);
  std::mt19937 rng(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

// A buffer with its storage, surrounded by guard bytes that must never change.
class Fixture {
 public:
  explicit Fixture(uint32_t capacity = kCapacity)
      : storage_(ReassemblyBuffer::storageBytes(capacity) + 2 * kGuard, 0xA5), capacity_(capacity) {
    buffer_.reset(storage_.data() + kGuard, capacity);
  }
  ~Fixture() { checkGuards(); }

  void checkGuards() const {
    for (size_t i = 0; i < kGuard; ++i) {
      EXPECT_EQ(storage_[i], 0xA5);
      EXPECT_EQ(storage_[storage_.size() - 1 - i], 0xA5);
    }
  }
  void reset() { buffer_.reset(storage_.data() + kGuard, capacity_); }
  ReassemblyBuffer& buffer() { return buffer_; }

 private:
  static constexpr size_t kGuard = 64;
  std::vector<uint8_t> storage_;
  uint32_t capacity_;
  ReassemblyBuffer buffer_;
};

// The obvious model: one optional byte per position.
class Model {
 public:
  explicit Model(uint32_t capacity) : bytes_(capacity) {}

  InsertResult insert(uint64_t offset, const uint8_t* data, uint32_t length) {
    if (length == 0) return InsertResult::kDuplicate;
    if (offset >= bytes_.size()) {
      truncated_ = true;
      return InsertResult::kBeyondCapacity;
    }
    bool added = false;
    bool conflict = false;
    for (uint32_t i = 0; i < length; ++i) {
      const uint64_t at = offset + i;
      if (at >= bytes_.size()) {
        truncated_ = true;
        break;
      }
      if (!bytes_[at]) {
        bytes_[at] = data[i];
        added = true;
      } else if (*bytes_[at] != data[i]) {
        conflict = true;
      }
    }
    if (conflict) return InsertResult::kOverlapConflict;
    return added ? InsertResult::kAdded : InsertResult::kDuplicate;
  }
  uint32_t contiguous() const {
    uint32_t n = 0;
    while (n < bytes_.size() && bytes_[n]) ++n;
    return n;
  }
  bool truncated() const { return truncated_; }
  const std::optional<uint8_t>& at(size_t i) const { return bytes_[i]; }

 private:
  std::vector<std::optional<uint8_t>> bytes_;
  bool truncated_ = false;
};

void expectMatches(const ReassemblyBuffer& buffer, const Model& model, uint32_t capacity) {
  ASSERT_EQ(buffer.contiguousLength(), model.contiguous());
  ASSERT_EQ(buffer.truncated(), model.truncated());
  for (size_t i = 0; i < capacity; ++i) {
    if (model.at(i)) {
      ASSERT_EQ(buffer.data()[i], *model.at(i)) << "byte " << i;
    }
  }
}

TEST(ReassemblyBufferTest, StorageBytesAddsOneBitPerByte) {
  EXPECT_EQ(ReassemblyBuffer::storageBytes(16384), 16384u + 2048u);
  EXPECT_EQ(ReassemblyBuffer::storageBytes(1), 2u);
  EXPECT_EQ(ReassemblyBuffer::storageBytes(9), 11u);
}

TEST(ReassemblyBufferTest, EmptyAfterReset) {
  Fixture f;
  EXPECT_EQ(f.buffer().contiguousLength(), 0u);
  EXPECT_EQ(f.buffer().capacity(), kCapacity);
  EXPECT_FALSE(f.buffer().truncated());
}

TEST(ReassemblyBufferTest, InOrderOneChunk) {
  Fixture f;
  const auto bytes = pattern(kCapacity);
  EXPECT_EQ(f.buffer().insert(0, bytes.data(), kCapacity), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), kCapacity);
  EXPECT_FALSE(f.buffer().truncated());
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.buffer().data()));
}

TEST(ReassemblyBufferTest, InOrderOneByteChunks) {
  Fixture f;
  const auto bytes = pattern(kCapacity);
  for (uint32_t i = 0; i < kCapacity; ++i) {
    ASSERT_EQ(f.buffer().insert(i, &bytes[i], 1), InsertResult::kAdded);
    ASSERT_EQ(f.buffer().contiguousLength(), i + 1);
  }
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.buffer().data()));
}

TEST(ReassemblyBufferTest, ReversedOneByteChunks) {
  Fixture f;
  const auto bytes = pattern(kCapacity);
  for (uint32_t i = kCapacity; i-- > 1;) {
    ASSERT_EQ(f.buffer().insert(i, &bytes[i], 1), InsertResult::kAdded);
    ASSERT_EQ(f.buffer().contiguousLength(), 0u);
  }
  EXPECT_EQ(f.buffer().insert(0, &bytes[0], 1), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), kCapacity);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.buffer().data()));
}

TEST(ReassemblyBufferTest, RandomPermutationsOfOneByteChunks) {
  const auto bytes = pattern(kCapacity);
  for (uint32_t seed : {1u, 2u, 3u, 42u, 2024u}) {
    Fixture f;
    std::vector<uint32_t> order(kCapacity);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), std::mt19937(seed));
    Model model(kCapacity);
    for (uint32_t i : order) {
      ASSERT_EQ(f.buffer().insert(i, &bytes[i], 1), InsertResult::kAdded);
      model.insert(i, &bytes[i], 1);
      ASSERT_EQ(f.buffer().contiguousLength(), model.contiguous()) << "seed " << seed;
    }
    EXPECT_EQ(f.buffer().contiguousLength(), kCapacity);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.buffer().data())) << "seed " << seed;
  }
}

TEST(ReassemblyBufferTest, RandomPermutationsOfVariableChunks) {
  // Segments of 1..1500 bytes in shuffled order, crossing bitmap words at every alignment.
  const auto bytes = pattern(kCapacity);
  for (uint32_t seed : {5u, 6u, 7u}) {
    std::mt19937 rng(seed);
    std::vector<std::pair<uint32_t, uint32_t>> chunks;
    for (uint32_t at = 0; at < kCapacity;) {
      const uint32_t length = std::min<uint32_t>(1 + rng() % 1500, kCapacity - at);
      chunks.emplace_back(at, length);
      at += length;
    }
    std::shuffle(chunks.begin(), chunks.end(), rng);
    Fixture f;
    for (auto [at, length] : chunks)
      ASSERT_EQ(f.buffer().insert(at, &bytes[at], length), InsertResult::kAdded);
    EXPECT_EQ(f.buffer().contiguousLength(), kCapacity);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.buffer().data()));
  }
}

TEST(ReassemblyBufferTest, DuplicatesAreReported) {
  Fixture f;
  const auto bytes = pattern(1000);
  EXPECT_EQ(f.buffer().insert(100, &bytes[100], 500), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().insert(100, &bytes[100], 500), InsertResult::kDuplicate);
  EXPECT_EQ(f.buffer().insert(150, &bytes[150], 1), InsertResult::kDuplicate);
  EXPECT_EQ(f.buffer().insert(200, &bytes[200], 300), InsertResult::kDuplicate);
  EXPECT_EQ(f.buffer().contiguousLength(), 0u);
  EXPECT_EQ(f.buffer().insert(0, &bytes[0], 1000), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), 1000u);
  EXPECT_EQ(f.buffer().insert(0, &bytes[0], 1000), InsertResult::kDuplicate);
}

TEST(ReassemblyBufferTest, OverlapWithSameDataAddsOnlyNewBytes) {
  Fixture f;
  const auto bytes = pattern(300);
  EXPECT_EQ(f.buffer().insert(0, &bytes[0], 100), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().insert(50, &bytes[50], 100), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), 150u);
  // Covers a hole with old bytes on both sides.
  EXPECT_EQ(f.buffer().insert(200, &bytes[200], 50), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().insert(100, &bytes[100], 200), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), 300u);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), f.buffer().data()));
}

TEST(ReassemblyBufferTest, OverlapWithDifferentDataKeepsFirstCopy) {
  Fixture f;
  const auto first = pattern(300, 1);
  const auto second = pattern(300, 2);
  EXPECT_EQ(f.buffer().insert(100, &first[100], 100), InsertResult::kAdded);
  // Wholly old and different.
  EXPECT_EQ(f.buffer().insert(120, &second[120], 10), InsertResult::kOverlapConflict);
  // New bytes on both sides of conflicting old ones: the new ones are stored, the conflict still reported.
  EXPECT_EQ(f.buffer().insert(0, &second[0], 300), InsertResult::kOverlapConflict);
  EXPECT_EQ(f.buffer().contiguousLength(), 300u);
  for (size_t i = 0; i < 300; ++i) {
    ASSERT_EQ(f.buffer().data()[i], (i >= 100 && i < 200) ? first[i] : second[i]) << i;
  }
}

TEST(ReassemblyBufferTest, SingleDifferingByteIsAConflict) {
  Fixture f;
  auto bytes = pattern(200);
  EXPECT_EQ(f.buffer().insert(0, bytes.data(), 200), InsertResult::kAdded);
  bytes[137] ^= 1;
  EXPECT_EQ(f.buffer().insert(0, bytes.data(), 200), InsertResult::kOverlapConflict);
  EXPECT_EQ(f.buffer().data()[137], static_cast<uint8_t>(bytes[137] ^ 1));
}

TEST(ReassemblyBufferTest, ChunkStraddlingCapacityKeepsInsidePart) {
  Fixture f;
  const auto bytes = pattern(kCapacity + 100);
  EXPECT_EQ(f.buffer().insert(kCapacity - 50, &bytes[kCapacity - 50], 150), InsertResult::kAdded);
  EXPECT_TRUE(f.buffer().truncated());
  EXPECT_EQ(f.buffer().insert(0, bytes.data(), kCapacity - 50), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), kCapacity);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.begin() + kCapacity, f.buffer().data()));
}

TEST(ReassemblyBufferTest, ChunkEndingExactlyAtCapacityIsNotTruncated) {
  Fixture f;
  const auto bytes = pattern(kCapacity);
  EXPECT_EQ(f.buffer().insert(kCapacity - 1, &bytes[kCapacity - 1], 1), InsertResult::kAdded);
  EXPECT_FALSE(f.buffer().truncated());
}

TEST(ReassemblyBufferTest, ChunkWhollyBeyondCapacity) {
  Fixture f;
  const auto bytes = pattern(100);
  EXPECT_EQ(f.buffer().insert(kCapacity, bytes.data(), 100), InsertResult::kBeyondCapacity);
  EXPECT_TRUE(f.buffer().truncated());
  EXPECT_EQ(f.buffer().contiguousLength(), 0u);
}

TEST(ReassemblyBufferTest, HugeOffsetsDoNotOverflow) {
  Fixture f;
  const auto bytes = pattern(100);
  EXPECT_EQ(f.buffer().insert(UINT64_MAX, bytes.data(), 100), InsertResult::kBeyondCapacity);
  EXPECT_EQ(f.buffer().insert(UINT64_MAX - 50, bytes.data(), 100), InsertResult::kBeyondCapacity);
  EXPECT_EQ(f.buffer().insert(UINT64_MAX - 99, bytes.data(), 100), InsertResult::kBeyondCapacity);
  EXPECT_EQ(f.buffer().insert(uint64_t{1} << 32, bytes.data(), 100), InsertResult::kBeyondCapacity);
  EXPECT_EQ(f.buffer().insert((uint64_t{1} << 62) + 3, bytes.data(), 1), InsertResult::kBeyondCapacity);
  EXPECT_TRUE(f.buffer().truncated());
  EXPECT_EQ(f.buffer().contiguousLength(), 0u);
  // Nothing was stored: byte 0 is still free.
  EXPECT_EQ(f.buffer().insert(0, bytes.data(), 1), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), 1u);
}

TEST(ReassemblyBufferTest, MaximalLengthIsClipped) {
  // A 4 GiB - 1 length is never read beyond capacity: only the first bytes of `bytes` are touched.
  Fixture f(64);
  const auto bytes = pattern(64);
  EXPECT_EQ(f.buffer().insert(0, bytes.data(), UINT32_MAX), InsertResult::kAdded);
  EXPECT_TRUE(f.buffer().truncated());
  EXPECT_EQ(f.buffer().contiguousLength(), 64u);
}

TEST(ReassemblyBufferTest, ZeroLengthChunkChangesNothing) {
  Fixture f;
  EXPECT_EQ(f.buffer().insert(0, nullptr, 0), InsertResult::kDuplicate);
  EXPECT_EQ(f.buffer().insert(kCapacity + 5, nullptr, 0), InsertResult::kDuplicate);
  EXPECT_EQ(f.buffer().insert(UINT64_MAX, nullptr, 0), InsertResult::kDuplicate);
  EXPECT_EQ(f.buffer().contiguousLength(), 0u);
  EXPECT_FALSE(f.buffer().truncated());
}

TEST(ReassemblyBufferTest, ResetAllowsReuse) {
  Fixture f;
  const auto first = pattern(kCapacity + 10, 1);
  const auto second = pattern(kCapacity, 2);
  EXPECT_EQ(f.buffer().insert(0, first.data(), kCapacity + 10), InsertResult::kAdded);
  EXPECT_TRUE(f.buffer().truncated());
  f.reset();
  EXPECT_EQ(f.buffer().contiguousLength(), 0u);
  EXPECT_FALSE(f.buffer().truncated());
  // Had presence survived the reset this would be a conflict.
  EXPECT_EQ(f.buffer().insert(0, second.data(), kCapacity), InsertResult::kAdded);
  EXPECT_EQ(f.buffer().contiguousLength(), kCapacity);
  EXPECT_TRUE(std::equal(second.begin(), second.end(), f.buffer().data()));
}

TEST(ReassemblyBufferTest, DefaultConstructedHoldsNothing) {
  ReassemblyBuffer buffer;
  const uint8_t byte = 1;
  EXPECT_EQ(buffer.insert(0, &byte, 1), InsertResult::kBeyondCapacity);
  EXPECT_TRUE(buffer.truncated());
}

TEST(ReassemblyBufferTest, OddCapacitiesMatchModel) {
  // Capacities whose bitmap ends inside a word or inside a byte exercise the short last word.
  for (uint32_t capacity : {1u, 7u, 8u, 9u, 63u, 64u, 65u, 100u, 511u, 513u, 1000u}) {
    Fixture f(capacity);
    Model model(capacity);
    std::mt19937 rng(capacity);
    const auto bytes = pattern(capacity + 64, 9);
    for (int op = 0; op < 500; ++op) {
      const uint32_t offset = rng() % (capacity + 40);
      const uint32_t length = rng() % 80;
      const uint8_t* src = &bytes[std::min<uint32_t>(offset, capacity)];
      const uint32_t maxLength = static_cast<uint32_t>(bytes.data() + bytes.size() - src);
      const uint32_t n = std::min(length, maxLength);
      ASSERT_EQ(f.buffer().insert(offset, src, n), model.insert(offset, src, n)) << capacity << " op " << op;
      expectMatches(f.buffer(), model, capacity);
    }
    f.buffer().insert(0, bytes.data(), capacity);
    EXPECT_EQ(f.buffer().contiguousLength(), capacity);
  }
}

TEST(ReassemblyBufferTest, RandomOperationsMatchModel) {
  // Short chunks near a moving front, occasional long ones and far ones, with a minority carrying different
  // data so conflicts and mixed new/old chunks both occur.
  for (uint32_t seed : {11u, 12u, 13u}) {
    Fixture f;
    Model model(kCapacity);
    std::mt19937_64 rng(seed);
    const auto good = pattern(kCapacity + 4096, 3);
    const auto bad = pattern(kCapacity + 4096, 4);
    for (int op = 0; op < 4000; ++op) {
      uint64_t offset;
      uint32_t length;
      switch (rng() % 8) {
        case 0:
          offset = rng() % (kCapacity + 2048);
          length = static_cast<uint32_t>(rng() % 2048);
          break;
        case 1:
          offset = UINT64_MAX - rng() % 4096;
          length = static_cast<uint32_t>(rng() % 4096);
          break;
        default:
          offset = (f.buffer().contiguousLength() + rng() % 512) % (kCapacity + 64);
          length = static_cast<uint32_t>(rng() % 130);
          break;
      }
      const auto& source = rng() % 10 == 0 ? bad : good;
      const size_t at = offset < kCapacity ? offset : 0;
      const uint32_t n = std::min<uint64_t>(length, source.size() - at);
      // The data is a slice of the same stream at the same offset, so "good" chunks never conflict.
      ASSERT_EQ(f.buffer().insert(offset, &source[at], n), model.insert(offset, &source[at], n))
          << "seed " << seed << " op " << op;
      if (op % 50 == 0) expectMatches(f.buffer(), model, kCapacity);
      ASSERT_EQ(f.buffer().contiguousLength(), model.contiguous());
    }
    expectMatches(f.buffer(), model, kCapacity);
  }
}

}  // namespace
}  // namespace vgate::dataplane
