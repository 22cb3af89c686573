// The bitmap engine, the default. Each element of the rules' cross product goes to one of four parts: the
// list part of the field (source, destination, destination port) where its range holds the fewest other
// elements' starts, if that is at most kListCrowd; else the wide part, per field groups of the key space
// with the bitmap of the elements overlapping each, which a packet ANDs. A packet takes the first element
// that matches in each part, each walk stopping at the best found so far; candidates are checked exactly,
// so lists and groups only need to over-approximate. What a lookup costs at scale is not the candidates it
// checks but the cache lines it reads finding them: hence one search per field (PieceLine, KeyDirectory),
// and, once the tables pass kStagedBytes, every table's next line requested before any is read.
#include "dataplane/l34/bitmap_engine.h"

#include <emmintrin.h>

#include <algorithm>
#include <bit>
#include <compare>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

namespace vgate::dataplane::l34 {
namespace {

// A 128-bit address in host order, compared as an unsigned number (hi first).
struct Key128 {
  uint64_t hi = 0, lo = 0;
  auto operator<=>(const Key128&) const = default;
};

template <typename Key>
constexpr Key keyMax() {
  if constexpr (std::is_same_v<Key, Key128>) {
    return Key128{UINT64_MAX, UINT64_MAX};
  } else {
    return std::numeric_limits<Key>::max();
  }
}

template <typename Key>
Key keyNext(Key key) {
  if constexpr (std::is_same_v<Key, Key128>) {
    return key.lo == UINT64_MAX ? Key128{key.hi + 1, 0} : Key128{key.hi, key.lo + 1};
  } else {
    return key + 1;
  }
}

uint64_t loadBigEndian64(const uint8_t* bytes) {
  return uint64_t{loadBigEndian32(bytes)} << 32 | loadBigEndian32(bytes + 4);
}

template <typename Key>
Key addressKey(const uint8_t* address) {
  if constexpr (std::is_same_v<Key, Key128>) {
    return Key128{loadBigEndian64(address), loadBigEndian64(address + 8)};
  } else {
    return loadBigEndian32(address);
  }
}

// A prefix as the closed range of addresses it covers.
template <typename Key>
void prefixRange(const Prefix& prefix, Key& low, Key& high) {
  auto wordMask = [&](int word) {
    return prefix.lengths[word] == 0 ? uint32_t{0} : ~uint32_t{0} << (32 - prefix.lengths[word]);
  };
  if constexpr (std::is_same_v<Key, Key128>) {
    uint64_t masks[2], values[2];
    for (int half = 0; half < 2; ++half) {
      masks[half] = uint64_t{wordMask(2 * half)} << 32 | wordMask(2 * half + 1);
      values[half] = uint64_t{prefix.words[2 * half]} << 32 | prefix.words[2 * half + 1];
    }
    low = Key128{values[0], values[1]};
    high = Key128{values[0] | ~masks[0], values[1] | ~masks[1]};
  } else {
    low = prefix.words[0];
    high = prefix.words[0] | ~wordMask(0);
  }
}

// What a packet is compared with: its fields in the index's key form.
template <typename Key>
struct Probe {
  Key src, dst;
  uint16_t srcPort, dstPort;  // 0 unless the protocol carries ports; dstPort: ICMP/ICMPv6's type
  uint8_t protocol;
  uint8_t direction;
};

// One element of the cross product, as the index checks it.
template <typename Key>
struct BitmapElement {
  Key srcLow, srcHigh, dstLow, dstHigh;
  // [0, 65535] when the rule names no such port; an ICMP rule's types are its destination port range (the
  // probe's dstPort is then the packet's type), with hasPorts false.
  uint16_t srcPortLow, srcPortHigh, dstPortLow, dstPortHigh;
  uint8_t protocol;   // 0: any
  bool hasPorts;      // the rule names ports: only TCP, UDP and SCTP match
  uint8_t direction;  // kDirection*; kDirectionUnknown: any
  uint32_t order;     // position among the family's elements: the priority, lower wins (and the rule's id
                   // by BitmapFamily::ruleIdOf, out of the line: an IPv4 element is then 32 bytes, and a run
                   // never starts a line early or ends one late)

  bool matches(const Probe<Key>& probe) const {
    if (protocol != 0 && protocol != probe.protocol) return false;
    if (direction != kDirectionUnknown && direction != probe.direction) return false;
    // Always checked: the full range for elements without destination ports or ICMP types.
    if (probe.dstPort < dstPortLow || probe.dstPort > dstPortHigh) return false;
    if (hasPorts &&
        (!carriesPorts(probe.protocol) || probe.srcPort < srcPortLow || probe.srcPort > srcPortHigh))
      return false;
    return probe.src >= srcLow && probe.src <= srcHigh && probe.dst >= dstLow && probe.dst <= dstHigh;
  }
};

static_assert(sizeof(BitmapElement<uint32_t>) == 32);

// a < b as 0 or 1 without branches (Key128's operator<=> compares hi, then branches to lo).
inline uint64_t lessBit(const Key128& a, const Key128& b) {
  return static_cast<uint64_t>(a.hi < b.hi) | (static_cast<uint64_t>(a.hi == b.hi) & (a.lo < b.lo));
}

// Storage aligned to cache lines, so that a block of SortedStarts or a PieceLine is one line: a lookup then
// misses once per table, not once per halving.
template <typename T>
struct LineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kLine{64};
  LineAllocator() = default;
  template <typename U>
  LineAllocator(const LineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kLine)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kLine); }
  template <typename U>
  bool operator==(const LineAllocator<U>&) const {
    return true;
  }
};
template <typename T>
using LineVector = std::vector<T, LineAllocator<T>>;

// A key as an unsigned number, for the directory's arithmetic.
template <typename Key>
unsigned __int128 wideOf(Key key) {
  if constexpr (std::is_same_v<Key, Key128>) {
    return static_cast<unsigned __int128>(key.hi) << 64 | key.lo;
  } else {
    return key;
  }
}

template <typename Key>
Key keyOfWide(unsigned __int128 wide) {
  if constexpr (std::is_same_v<Key, Key128>) {
    return Key128{static_cast<uint64_t>(wide >> 64), static_cast<uint64_t>(wide)};
  } else {
    return static_cast<Key>(wide);
  }
}

// Keys of keys[0..n) at or below key.
template <size_t n, typename Key>
size_t countAtOrBelow(const Key* keys, Key key) {
  if constexpr (std::is_same_v<Key, uint32_t> && n % 16 == 0) {
    // 16 compares in four SSE2 instructions (clang does not vectorize the loop below); unsigned order by
    // flipping the sign bits.
    const __m128i flip = _mm_set1_epi32(INT32_MIN);
    const __m128i probe = _mm_xor_si128(_mm_set1_epi32(static_cast<int>(key)), flip);
    size_t above = 0;
    for (size_t at = 0; at < n; at += 16) {
      const auto* lanes = reinterpret_cast<const __m128i*>(keys + at);
      __m128i greater[4];
      for (int i = 0; i < 4; ++i)
        greater[i] = _mm_cmpgt_epi32(_mm_xor_si128(_mm_loadu_si128(lanes + i), flip), probe);
      __m128i bytes =
          _mm_packs_epi16(_mm_packs_epi32(greater[0], greater[1]), _mm_packs_epi32(greater[2], greater[3]));
      above += static_cast<size_t>(std::popcount(static_cast<uint32_t>(_mm_movemask_epi8(bytes))));
    }
    return n - above;
  } else {
    uint64_t above = 0;
    for (size_t i = 0; i < n; ++i) above += lessBit(key, keys[i]);
    return n - above;
  }
}

// Where a key falls among sorted keys (firsts[i] <= key < firsts[i + 1]), without walking a tree: slot s
// holds the keys base + [s << shift, (s + 1) << shift) (base is the lowest key above the key space's floor;
// keys below it go to slot 0, keys past the last slot to the last), and slots[s] is where the slot's first
// key falls (slot 0's: the floor's). A key then falls at one of slots[s] .. slots[s + 1], found among those
// keys in one branch-free compare of kWindow keys. With about two slots per key that is two short reads
// wherever the keys bunch, where a tree reads one line per level. Slots spanning more than kWindow keys
// (keys bunched tighter than the slots) are left to the caller's exact search. Sized by the keys and placed
// by their range, not by fixed bits, so that it stays small enough for the cache.
template <typename Key>
struct KeyDirectory {
  static constexpr size_t kWindow = 16;
  static constexpr size_t kNone = SIZE_MAX;
  Key base{};
  unsigned shift = 0;
  size_t lastSlot = 0;
  LineVector<uint32_t> slots;  // lastSlot + 2 entries; empty: not built

  // firsts[0..count): sorted, firsts[0] the key space's floor, at least kWindow keyMax after them (the
  // window may read that far past any key); exact(key): where a key falls, for building.
  template <typename Exact>
  void build(const Key* firsts, size_t count, Exact exact) {
    slots.clear();
    if (count < 2) return;
    base = firsts[1];
    unsigned __int128 range = wideOf(firsts[count - 1]) - wideOf(base);
    shift = 0;
    while ((range >> shift) >= 2 * count) ++shift;
    lastSlot = static_cast<size_t>(range >> shift);
    slots.resize(lastSlot + 2);
    for (size_t slot = 0; slot <= lastSlot; ++slot)
      slots[slot] = static_cast<uint32_t>(
          exact(keyOfWide<Key>(wideOf(base) + (static_cast<unsigned __int128>(slot) << shift))));
    // Slot 0 holds the keys below base too, which fall at 0.
    slots[0] = 0;
    slots[lastSlot + 1] = static_cast<uint32_t>(count - 1);
  }
  bool built() const { return !slots.empty(); }
  // Where key falls, or kNone when its slot is too crowded for the window.
  size_t find(const Key* firsts, Key key) const {
    size_t slot = slotOf(key);
    size_t first = slots[slot], last = slots[slot + 1];
    if (last - first > kWindow) [[unlikely]]
      return kNone;
    return std::min(first + countAtOrBelow<kWindow>(firsts + first + 1, key), last);
  }
  size_t slotOf(Key key) const {
    if constexpr (std::is_same_v<Key, uint32_t>) {
      uint64_t offset = key >= base ? uint64_t{key} - base : 0;
      return std::min<size_t>(offset >> shift, lastSlot);
    } else {
      unsigned __int128 offset = key >= base ? (wideOf(key) - wideOf(base)) >> shift : 0;
      return offset > lastSlot ? lastSlot : static_cast<size_t>(offset);
    }
  }
  size_t memoryBytes() const { return slots.capacity() * sizeof(uint32_t); }
};

// Sorted starts (the first is the key space's lowest key), searched as a static B-tree of cache lines:
// level 0 is the starts, each level above holds every kBlock-th key of the one below, up to one line.
// Finding a key's index counts the keys at or below it in one line per level, without branches. Above two
// levels a KeyDirectory over level 1 finds the level-0 line instead of the walk down the upper levels.
template <typename Key>
struct SortedStarts {
  static constexpr size_t kBlock = 64 / sizeof(Key);
  size_t count = 0;                     // starts
  std::vector<LineVector<Key>> levels;  // [0]: the starts; each padded to whole lines with keyMax
  std::vector<size_t> sizes;            // each level's keys before the padding
  KeyDirectory<Key> directory;          // over levels[1]; not built below three levels

  void assign(const std::vector<Key>& starts) {
    count = starts.size();
    levels.clear();
    levels.emplace_back(starts.begin(), starts.end());
    while (levels.back().size() > kBlock) {
      LineVector<Key> above;
      for (size_t i = 0; i < levels.back().size(); i += kBlock) above.push_back(levels.back()[i]);
      levels.push_back(std::move(above));
    }
    // A key counts the padding only when it is keyMax, and then every real key before it too: the index is
    // capped at the level's last real key.
    sizes.clear();
    for (auto& level : levels) {
      sizes.push_back(level.size());
      level.resize((level.size() + kBlock - 1) / kBlock * kBlock, keyMax<Key>());
    }
    directory.slots.clear();
    if (levels.size() < 3) return;
    levels[1].resize(levels[1].size() + KeyDirectory<Key>::kWindow, keyMax<Key>());
    directory.build(levels[1].data(), sizes[1], [&](Key key) { return treeBlockOf(key) / kBlock; });
  }
  // The index of the last start at or below key. No prefetch between finding the level-0 line and reading
  // it: lookups read PieceIndex, and this serves its fallback and the builds.
  uint32_t find(Key key) const {
    size_t found = directory.built() ? directory.find(levels[1].data(), key) : KeyDirectory<Key>::kNone;
    size_t block = found != KeyDirectory<Key>::kNone ? found * kBlock : treeBlockOf(key);
    return static_cast<uint32_t>(indexIn(0, block, key));
  }
  size_t treeBlockOf(Key key) const {
    size_t block = 0;
    for (size_t level = levels.size() - 1; level > 0; --level) block = indexIn(level, block, key) * kBlock;
    return block;
  }
  size_t indexIn(size_t level, size_t block, Key key) const {
    return std::min(block + countAtOrBelow<kBlock>(levels[level].data() + block, key) - 1, sizes[level] - 1);
  }
  size_t size() const { return count; }
  size_t memoryBytes() const {
    size_t bytes = directory.memoryBytes();
    for (const auto& level : levels) bytes += level.capacity() * sizeof(Key);
    return bytes;
  }
};

// A piece's run of list entries and its group in the wide part of the field.
struct Run {
  uint32_t begin, end;
  uint16_t group;
};

// One cache line (two for IPv6) holding all a packet needs from up to kPieces consecutive pieces: their
// starts, the bounds of their runs and their groups. A large policy's lookup is bound by the lines it
// misses, so a field costs one line here rather than one per array.
template <typename Key>
struct alignas(64) PieceLine {
  static constexpr size_t kPieces = sizeof(Key) == 4 ? 6 : 5;
  Key starts[kPieces];           // keyMax after the field's last piece
  uint32_t bounds[kPieces + 1];  // piece j's run: entries [bounds[j], bounds[j + 1])
  uint16_t groups[kPieces];
};
static_assert(sizeof(PieceLine<uint32_t>) == 64 && sizeof(PieceLine<Key128>) == 128);

// A field's pieces: the line through a KeyDirectory over the lines' first starts (or a SortedStarts of them
// where the directory cannot place a key), then a count within the line.
template <typename Key>
struct PieceIndex {
  using Line = PieceLine<Key>;
  static constexpr size_t kPieces = Line::kPieces;
  size_t count = 0;  // pieces
  LineVector<Line> lines;
  LineVector<Key> firsts;  // each line's first start, then KeyDirectory::kWindow keyMax
  SortedStarts<Key> tree;  // the same starts
  KeyDirectory<Key> directory;

  // starts: the pieces' (the first is the key space's lowest key); offsets: pieces + 1 run bounds; groups:
  // one per piece, or none.
  void assign(const std::vector<Key>& starts, const std::vector<uint32_t>& offsets,
              const std::vector<uint16_t>& groups) {
    count = starts.size();
    size_t lineCount = (count + kPieces - 1) / kPieces;
    lines.assign(lineCount, Line{});
    std::vector<Key> lineFirsts;
    for (size_t line = 0; line < lineCount; ++line) {
      Line& out = lines[line];
      for (size_t j = 0; j <= kPieces; ++j) {
        size_t piece = line * kPieces + j;
        out.bounds[j] = offsets[std::min(piece, count)];
        if (j == kPieces) break;
        out.starts[j] = piece < count ? starts[piece] : keyMax<Key>();
        out.groups[j] = piece < count && !groups.empty() ? groups[piece] : 0;
      }
      lineFirsts.push_back(out.starts[0]);
    }
    tree.assign(lineFirsts);
    firsts.assign(lineFirsts.begin(), lineFirsts.end());
    firsts.resize(lineCount + KeyDirectory<Key>::kWindow, keyMax<Key>());
    directory.slots.clear();
    // Up to one line of firsts the tree is as short.
    if (lineCount > tree.kBlock)
      directory.build(firsts.data(), lineCount, [&](Key key) { return tree.find(key); });
  }
  size_t lineOf(Key key) const {
    if (lines.size() == 1) return 0;
    if (directory.built()) {
      size_t found = directory.find(firsts.data(), key);
      if (found != KeyDirectory<Key>::kNone) return found;
    }
    return tree.find(key);
  }
  void prefetchLine(size_t line) const {
    const char* at = reinterpret_cast<const char*>(&lines[line]);
    __builtin_prefetch(at);
    if constexpr (sizeof(Line) > 64) __builtin_prefetch(at + 64);
  }
  Run runIn(size_t line, Key key) const {
    const Line& in = lines[line];
    // At least 1: the line's first start is at or below the key. A key of keyMax also counts the padding
    // after the last piece: capped at the line's last real piece.
    size_t j = std::min(startsAtOrBelow(in, key) - 1, count - 1 - line * kPieces);
    return Run{in.bounds[j], in.bounds[j + 1], in.groups[j]};
  }
  Run find(Key key) const { return runIn(lineOf(key), key); }
  size_t size() const { return count; }
  static size_t startsAtOrBelow(const Line& line, Key key) {
    if constexpr (std::is_same_v<Key, uint32_t>) {
      // The six starts and the first two bounds in two SSE2 compares; the bounds' lanes are masked off.
      const __m128i flip = _mm_set1_epi32(INT32_MIN);
      const __m128i probe = _mm_xor_si128(_mm_set1_epi32(static_cast<int>(key)), flip);
      const auto* lanes = reinterpret_cast<const __m128i*>(line.starts);
      __m128i low = _mm_cmpgt_epi32(_mm_xor_si128(_mm_load_si128(lanes), flip), probe);
      __m128i high = _mm_cmpgt_epi32(_mm_xor_si128(_mm_load_si128(lanes + 1), flip), probe);
      auto above = static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(low))) |
                   static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(high))) << 4;
      return kPieces - static_cast<size_t>(std::popcount(above & ((1u << kPieces) - 1)));
    } else {
      return countAtOrBelow<kPieces>(line.starts, key);
    }
  }
  size_t memoryBytes() const {
    return lines.capacity() * sizeof(Line) + firsts.capacity() * sizeof(Key) + tree.memoryBytes() +
           directory.memoryBytes();
  }
};

// Every key where one of the ranges [lows[i], highs[i]] starts or ends, sorted, from the lowest key on.
template <typename Key>
std::vector<Key> boundariesOf(const std::vector<Key>& lows, const std::vector<Key>& highs, Key top) {
  std::vector<Key> boundaries;
  boundaries.reserve(lows.size() * 2 + 1);
  boundaries.push_back(Key{});
  for (size_t i = 0; i < lows.size(); ++i) {
    boundaries.push_back(lows[i]);
    if (highs[i] != top) boundaries.push_back(keyNext(highs[i]));
  }
  std::sort(boundaries.begin(), boundaries.end());
  boundaries.erase(std::unique(boundaries.begin(), boundaries.end()), boundaries.end());
  return boundaries;
}

// The bitmap part of the index, for the elements wide in every field (few in real policies, but they overlap
// most packets). One field's groups, and per group `stride` words: the summary (bit w set when bitmap word
// w is not zero), then the bitmap of the elements that overlap the group. Lookups find a packet's group
// through the field's list pieces (ListPart::groups); `groups` here serves the build.
template <typename Key>
struct BitmapField {
  SortedStarts<Key> groups;
  std::vector<uint64_t> bits;

  // Groups elements' ranges into at most maxGroups groups, then fills the bitmaps. A group closes at a
  // boundary once enough elements have started in it, so that groups hold about as many elements each.
  void build(const std::vector<Key>& lows, const std::vector<Key>& highs, Key top, size_t maxGroups,
             size_t summaryWords, size_t stride) {
    std::vector<Key> boundaries = boundariesOf(lows, highs, top);
    std::vector<Key> sortedLows = lows;
    std::sort(sortedLows.begin(), sortedLows.end());
    size_t target = std::max<size_t>(1, (lows.size() + maxGroups - 1) / maxGroups);
    std::vector<Key> starts;
    size_t started = 0, next = 0;
    for (const Key& boundary : boundaries) {
      if (starts.empty() || (started >= target && starts.size() < maxGroups)) {
        starts.push_back(boundary);
        started = 0;
      }
      while (next < sortedLows.size() && sortedLows[next] == boundary) ++started, ++next;
    }
    groups.assign(starts);
    bits.assign(starts.size() * stride, 0);
    for (size_t i = 0; i < lows.size(); ++i) {
      uint32_t first = groups.find(lows[i]), last = groups.find(highs[i]);
      for (uint32_t group = first; group <= last; ++group) {
        bits[group * stride + summaryWords + (i >> 6)] |= uint64_t{1} << (i & 63);
        bits[group * stride + (i >> 12)] |= uint64_t{1} << ((i >> 6) & 63);
      }
    }
  }
};

// Up to this many wide elements are checked one by one rather than through the bitmaps.
constexpr size_t kScanWide = 16;

template <typename Key>
struct BitmapPart {
  std::vector<BitmapElement<Key>> elements;  // in policy order
  size_t summaryWords = 0, stride = 0;
  BitmapField<Key> src, dst;
  BitmapField<uint32_t> dstPort;
  uint8_t protocolGroup[256] = {};  // protocol -> group of `protocols`
  std::vector<uint64_t> protocols;  // stride words per group, as in BitmapField

  size_t memoryBytes() const {
    return elements.capacity() * sizeof(elements[0]) +
           (src.bits.capacity() + dst.bits.capacity() + dstPort.bits.capacity() + protocols.capacity()) * 8 +
           src.groups.memoryBytes() + dst.groups.memoryBytes() + dstPort.groups.memoryBytes();
  }

  void build(size_t fieldBytes) {
    size_t count = elements.size();
    size_t words = (count + 63) / 64;
    summaryWords = (words + 63) / 64;
    stride = summaryWords + words;
    // At most 65,536 groups: pieces name them in 16 bits.
    size_t maxGroups =
        std::min<size_t>(65536, std::max<size_t>(16, fieldBytes / (std::max<size_t>(stride, 1) * 8)));
    std::vector<Key> lows(count), highs(count);
    for (size_t i = 0; i < count; ++i) lows[i] = elements[i].srcLow, highs[i] = elements[i].srcHigh;
    src.build(lows, highs, keyMax<Key>(), maxGroups, summaryWords, stride);
    for (size_t i = 0; i < count; ++i) lows[i] = elements[i].dstLow, highs[i] = elements[i].dstHigh;
    dst.build(lows, highs, keyMax<Key>(), maxGroups, summaryWords, stride);
    std::vector<uint32_t> portLows(count), portHighs(count);
    for (size_t i = 0; i < count; ++i) {
      // Packets without ports look up port 0 (ICMP ones their type); elements without destination ports or
      // ICMP types span every port.
      portLows[i] = elements[i].dstPortLow;
      portHighs[i] = elements[i].dstPortHigh;
    }
    dstPort.build(portLows, portHighs, 65535u, maxGroups, summaryWords, stride);

    // Protocols: one group per protocol some element names (TCP, UDP and SCTP too when an element is "any
    // protocol with ports"), and group 0 for every other protocol.
    std::vector<uint8_t> named;
    for (const auto& element : elements) {
      if (element.protocol != 0) {
        named.push_back(element.protocol);
      } else if (element.hasPorts) {
        named.insert(named.end(), {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP});
      }
    }
    std::sort(named.begin(), named.end());
    named.erase(std::unique(named.begin(), named.end()), named.end());
    for (size_t g = 0; g < named.size(); ++g) protocolGroup[named[g]] = static_cast<uint8_t>(g + 1);
    protocols.assign((named.size() + 1) * stride, 0);
    for (size_t i = 0; i < count; ++i) {
      const auto& element = elements[i];
      for (size_t group = 0; group <= named.size(); ++group) {
        uint8_t protocol = group == 0 ? 0 : named[group - 1];
        bool member = element.protocol != 0 ? element.protocol == protocol
                                            : !element.hasPorts || carriesPorts(protocol);
        if (!member) continue;
        protocols[group * stride + summaryWords + (i >> 6)] |= uint64_t{1} << (i & 63);
        protocols[group * stride + (i >> 12)] |= uint64_t{1} << ((i >> 6) & 63);
      }
    }
  }

  // The four bitmaps (with their summaries) a packet ANDs: its source, destination, port and protocol groups.
  struct Rows {
    const uint64_t* bits[4];
  };
  // A handful of elements: checking them in turn is cheaper than finding four groups.
  bool scanned() const { return elements.size() <= kScanWide; }

  // The rows of a packet's groups (found with its pieces: ListPart::groups), prefetched so that a burst can
  // overlap their misses.
  Rows rowsOf(const uint32_t* groups, uint8_t protocol) const {
    Rows rows{{&src.bits[groups[0] * stride], &dst.bits[groups[1] * stride],
               &dstPort.bits[groups[2] * stride], &protocols[protocolGroup[protocol] * stride]}};
    for (const uint64_t* row : rows.bits) __builtin_prefetch(row);
    return rows;
  }
  // The first bitmap word with a candidate (summaryWords + its index, or 0 when there is none).
  size_t firstWord(const Rows& rows) const {
    const uint64_t* const* r = rows.bits;
    for (size_t s = 0; s < summaryWords; ++s) {
      uint64_t summary = r[0][s] & r[1][s] & r[2][s] & r[3][s];
      if (summary != 0) return summaryWords + s * 64 + static_cast<size_t>(std::countr_zero(summary));
    }
    return 0;
  }
  void prefetchWord(const Rows& rows, size_t at) const {
    if (at == 0) return;
    for (const uint64_t* row : rows.bits) __builtin_prefetch(row + at);
  }
  void prefetchCandidate(const Rows& rows, size_t at) const {
    if (at == 0) return;
    const uint64_t* const* r = rows.bits;
    uint64_t candidates = r[0][at] & r[1][at] & r[2][at] & r[3][at];
    if (candidates == 0) return;
    __builtin_prefetch(
        &elements[(at - summaryWords) * 64 + static_cast<size_t>(std::countr_zero(candidates))]);
  }

  const BitmapElement<Key>* scan(const Probe<Key>& probe, uint32_t bound) const {
    for (const auto& element : elements) {
      if (element.order >= bound) return nullptr;
      if (element.matches(probe)) return &element;
    }
    return nullptr;
  }
  const BitmapElement<Key>* walk(const Probe<Key>& probe, const Rows& rows, uint32_t bound) const {
    const uint64_t *a = rows.bits[0], *b = rows.bits[1], *c = rows.bits[2], *d = rows.bits[3];
    for (size_t s = 0; s < summaryWords; ++s) {
      uint64_t summary = a[s] & b[s] & c[s] & d[s];
      while (summary != 0) {
        size_t word = s * 64 + static_cast<size_t>(std::countr_zero(summary));
        summary &= summary - 1;
        size_t at = summaryWords + word;
        uint64_t candidates = a[at] & b[at] & c[at] & d[at];
        while (candidates != 0) {
          size_t index = word * 64 + static_cast<size_t>(std::countr_zero(candidates));
          candidates &= candidates - 1;
          const auto& element = elements[index];
          if (element.order >= bound) return nullptr;
          if (element.matches(probe)) return &element;
        }
      }
    }
    return nullptr;
  }
};

// The list part of the index, for elements narrow in one field (most of a real policy). That field's key
// space is cut at every boundary of the part's elements; each piece lists, in policy order, copies of the
// elements that cover it, so a packet reads one short run of consecutive elements. The key space is cut at
// the starts of the wide part's groups of the field too, and each piece names its group: one search finds
// both: searches cost a lookup more than its misses do.
template <typename Key, typename FieldKey>
struct ListPart {
  PieceIndex<FieldKey> pieces;
  LineVector<BitmapElement<Key>> entries;
  bool grouped = false;  // pieces name groups of the wide part: it has bitmaps

  size_t memoryBytes() const { return pieces.memoryBytes() + entries.capacity() * sizeof(entries[0]); }
  // Whether a packet looks this field up at all.
  bool searched() const { return !entries.empty() || grouped; }

  // wide: the wide part's groups of this field, or null when the wide part is scanned.
  void build(const std::vector<BitmapElement<Key>>& elements, const std::vector<FieldKey>& lows,
             const std::vector<FieldKey>& highs, FieldKey top, const BitmapField<FieldKey>* wide) {
    std::vector<FieldKey> boundaries = boundariesOf(lows, highs, top);
    if (wide != nullptr) {
      const auto& starts = wide->groups.levels[0];
      boundaries.insert(boundaries.end(), starts.begin(), starts.begin() + wide->groups.size());
      std::sort(boundaries.begin(), boundaries.end());
      boundaries.erase(std::unique(boundaries.begin(), boundaries.end()), boundaries.end());
    }
    grouped = wide != nullptr;
    std::vector<uint16_t> groups;
    if (grouped) {
      groups.resize(boundaries.size());
      for (size_t piece = 0; piece < boundaries.size(); ++piece)
        groups[piece] = static_cast<uint16_t>(wide->groups.find(boundaries[piece]));
    }
    auto pieceOf = [&](FieldKey key) {
      return static_cast<uint32_t>(std::upper_bound(boundaries.begin(), boundaries.end(), key) -
                                   boundaries.begin() - 1);
    };
    std::vector<uint32_t> counts(boundaries.size() + 1, 0);
    std::vector<std::pair<uint32_t, uint32_t>> spans(elements.size());
    for (size_t i = 0; i < elements.size(); ++i) {
      spans[i] = {pieceOf(lows[i]), pieceOf(highs[i])};
      for (uint32_t piece = spans[i].first; piece <= spans[i].second; ++piece) ++counts[piece + 1];
    }
    std::vector<uint32_t> offsets(boundaries.size() + 1, 0);
    for (size_t piece = 0; piece < boundaries.size(); ++piece)
      offsets[piece + 1] = offsets[piece] + counts[piece + 1];
    entries.resize(offsets.back());
    std::vector<uint32_t> filled(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < elements.size(); ++i) {
      for (uint32_t piece = spans[i].first; piece <= spans[i].second; ++piece)
        entries[filled[piece]++] = elements[i];
    }
    pieces.assign(boundaries, offsets, groups);
  }

  const BitmapElement<Key>* firstIn(const Probe<Key>& probe, Run run, uint32_t bound) const {
    for (uint32_t i = run.begin; i < run.end; ++i) {
      const auto& entry = entries[i];
      if (entry.order >= bound) return nullptr;
      if (entry.matches(probe)) return &entry;
    }
    return nullptr;
  }
};

// An element goes to the list part of the field where its range holds the fewest other elements' starts,
// if that is at most this many (it is then copied to at most about twice as many pieces); else to the
// bitmap part.
constexpr size_t kListCrowd = 32;

template <typename Key>
struct BitmapFamily {
  std::vector<BitmapElement<Key>> elements;  // all, in policy order, while building
  std::vector<uint32_t> ruleIdOf;            // by element order
  ListPart<Key, Key> bySrc, byDst;
  ListPart<Key, uint32_t> byDstPort;
  BitmapPart<Key> wide;
  uint32_t listed[3] = {};
  // Whether lookups go through classifyBurst's stages: worth it only once the tables outgrow the L1 and L2
  // caches; below, they cost more than they save.
  bool staged = false;
  static constexpr size_t kStagedBytes = size_t{256} << 10;

  size_t memoryBytes() const {
    return bySrc.memoryBytes() + byDst.memoryBytes() + byDstPort.memoryBytes() + wide.memoryBytes() +
           ruleIdOf.capacity() * sizeof(uint32_t);
  }

  void build(size_t fieldBytes) {
    size_t count = elements.size();
    std::vector<Key> srcLows(count), dstLows(count);
    std::vector<uint32_t> portLows(count);
    // The destination port range, or an ICMP rule's types ([0, 65535] for elements with neither).
    auto portLow = [](const BitmapElement<Key>& e) { return uint32_t{e.dstPortLow}; };
    auto portHigh = [](const BitmapElement<Key>& e) { return uint32_t{e.dstPortHigh}; };
    for (size_t i = 0; i < count; ++i) {
      srcLows[i] = elements[i].srcLow;
      dstLows[i] = elements[i].dstLow;
      portLows[i] = portLow(elements[i]);
    }
    std::sort(srcLows.begin(), srcLows.end());
    std::sort(dstLows.begin(), dstLows.end());
    std::sort(portLows.begin(), portLows.end());
    auto crowd = [](const auto& sortedLows, const auto& low, const auto& high) {
      return static_cast<size_t>(std::upper_bound(sortedLows.begin(), sortedLows.end(), high) -
                                 std::lower_bound(sortedLows.begin(), sortedLows.end(), low));
    };
    std::vector<BitmapElement<Key>> parts[3];
    for (const auto& element : elements) {
      size_t crowds[3] = {crowd(srcLows, element.srcLow, element.srcHigh),
                          crowd(dstLows, element.dstLow, element.dstHigh),
                          crowd(portLows, portLow(element), portHigh(element))};
      size_t best = static_cast<size_t>(std::min_element(crowds, crowds + 3) - crowds);
      if (crowds[best] <= kListCrowd) {
        parts[best].push_back(element);
      } else {
        wide.elements.push_back(element);
      }
    }
    elements.clear();
    elements.shrink_to_fit();
    for (int part = 0; part < 3; ++part) listed[part] = static_cast<uint32_t>(parts[part].size());
    auto build = [&](auto& list, const std::vector<BitmapElement<Key>>& part, auto lowOf, auto highOf,
                     auto top, const auto* groups) {
      using FieldKey = decltype(top);
      std::vector<FieldKey> lows(part.size()), highs(part.size());
      for (size_t i = 0; i < part.size(); ++i) lows[i] = lowOf(part[i]), highs[i] = highOf(part[i]);
      list.build(part, lows, highs, top, groups);
    };
    wide.build(fieldBytes);
    bool bitmaps = !wide.scanned();
    build(
        bySrc, parts[0], [](const auto& e) { return e.srcLow; }, [](const auto& e) { return e.srcHigh; },
        keyMax<Key>(), bitmaps ? &wide.src : nullptr);
    build(
        byDst, parts[1], [](const auto& e) { return e.dstLow; }, [](const auto& e) { return e.dstHigh; },
        keyMax<Key>(), bitmaps ? &wide.dst : nullptr);
    build(byDstPort, parts[2], portLow, portHigh, 65535u, bitmaps ? &wide.dstPort : nullptr);
    staged = memoryBytes() > kStagedBytes;
  }

  // An ICMP/ICMPv6 packet's type goes in the destination port's place, where ICMP rules keep their types.
  static Probe<Key> probeOf(const L34Tuple& tuple) {
    bool ported = carriesPorts(tuple.protocol);
    uint16_t dstPort = ported ? tuple.dstPort : carriesIcmpType(tuple.protocol) ? tuple.icmpType : 0;
    return Probe<Key>{addressKey<Key>(tuple.src),
                      addressKey<Key>(tuple.dst),
                      static_cast<uint16_t>(ported ? tuple.srcPort : 0),
                      dstPort,
                      tuple.protocol,
                      tuple.direction};
  }

  uint32_t classify(const L34Tuple& tuple) const {
    Probe<Key> probe = probeOf(tuple);
    const BitmapElement<Key>* best = nullptr;
    uint32_t bound = UINT32_MAX;
    auto consider = [&](const BitmapElement<Key>* found) {
      if (found != nullptr) best = found, bound = found->order;
    };
    uint32_t groups[3] = {};
    auto search = [&](const auto& list, auto key, uint32_t& group) {
      if (!list.searched()) return;
      Run run = list.pieces.find(key);
      consider(list.firstIn(probe, run, bound));
      group = run.group;
    };
    search(bySrc, probe.src, groups[0]);
    search(byDst, probe.dst, groups[1]);
    search(byDstPort, uint32_t{probe.dstPort}, groups[2]);
    consider(wide.scanned() ? wide.scan(probe, bound)
                            : wide.walk(probe, wide.rowsOf(groups, probe.protocol), bound));
    return best != nullptr ? ruleIdOf[best->order] : kNoRule;
  }

  // classify() for tuples[indexes[0..count)] (at most kBurst), in stages over the whole burst so that the
  // cache misses of different packets, and of one packet's tables, overlap: find the pieces' lines and
  // prefetch them; find the runs, prefetch the lists' first entries and the groups' rows; prefetch the first
  // bitmap words; then walk. Used for single packets too once the tables outgrow the caches: a packet's
  // tables are then read side by side rather than one after another.
  void classifyBurst(const L34Tuple* const* tuples, const uint32_t* indexes, uint32_t count,
                     uint32_t* ruleIds) const {
    Probe<Key> probes[kBurst];
    size_t lines[kBurst][3];
    Run runs[kBurst][3];
    typename BitmapPart<Key>::Rows rows[kBurst];
    bool bitmaps = !wide.scanned();
    auto findLine = [](const auto& list, auto key, size_t& line) {
      if (!list.searched()) return;
      line = list.pieces.lineOf(key);
      list.pieces.prefetchLine(line);
    };
    auto findRun = [](const auto& list, auto key, size_t line, Run& run) {
      if (!list.searched()) {
        run = Run{0, 0, 0};
        return;
      }
      run = list.pieces.runIn(line, key);
      // Most pieces' runs are empty (every element in them is listed in another field): no line to fetch.
      if (run.begin != run.end) __builtin_prefetch(&list.entries[run.begin]);
    };
    for (uint32_t i = 0; i < count; ++i) {
      const Probe<Key>& probe = probes[i] = probeOf(*tuples[indexes[i]]);
      findLine(bySrc, probe.src, lines[i][0]);
      findLine(byDst, probe.dst, lines[i][1]);
      findLine(byDstPort, uint32_t{probe.dstPort}, lines[i][2]);
    }
    for (uint32_t i = 0; i < count; ++i) {
      const Probe<Key>& probe = probes[i];
      findRun(bySrc, probe.src, lines[i][0], runs[i][0]);
      findRun(byDst, probe.dst, lines[i][1], runs[i][1]);
      findRun(byDstPort, uint32_t{probe.dstPort}, lines[i][2], runs[i][2]);
      uint32_t groups[3] = {runs[i][0].group, runs[i][1].group, runs[i][2].group};
      if (bitmaps) rows[i] = wide.rowsOf(groups, probe.protocol);
    }
    size_t words[kBurst];
    if (bitmaps) {
      for (uint32_t i = 0; i < count; ++i) wide.prefetchWord(rows[i], words[i] = wide.firstWord(rows[i]));
      if (count > 1) {
        for (uint32_t i = 0; i < count; ++i) wide.prefetchCandidate(rows[i], words[i]);
      }
    }
    for (uint32_t i = 0; i < count; ++i) {
      const BitmapElement<Key>* best = nullptr;
      uint32_t bound = UINT32_MAX;
      auto consider = [&](const BitmapElement<Key>* found) {
        if (found != nullptr) best = found, bound = found->order;
      };
      consider(bySrc.firstIn(probes[i], runs[i][0], bound));
      consider(byDst.firstIn(probes[i], runs[i][1], bound));
      consider(byDstPort.firstIn(probes[i], runs[i][2], bound));
      consider(bitmaps ? wide.walk(probes[i], rows[i], bound) : wide.scan(probes[i], bound));
      ruleIds[indexes[i]] = best != nullptr ? ruleIdOf[best->order] : kNoRule;
    }
  }
};

// An ICMP rule's types come as its destination port ranges (expand()), with hasPorts false.
template <typename Key>
void addElements(BitmapFamily<Key>& family, const L34Rule& rule, const Expansion& expansion) {
  bool hasPorts = !rule.sourcePorts.empty() || !rule.destinationPorts.empty();
  // A rule with ports and a protocol that carries none matches nothing (expand() leaves no protocol).
  if (expansion.protocols.empty()) return;
  for (const auto& src : expansion.sources) {
    for (const auto& dst : expansion.destinations) {
      for (const auto& sp : expansion.sourcePorts) {
        for (const auto& dp : expansion.destinationPorts) {
          BitmapElement<Key> element{};
          prefixRange(src, element.srcLow, element.srcHigh);
          prefixRange(dst, element.dstLow, element.dstHigh);
          element.srcPortLow = sp.low;
          element.srcPortHigh = sp.high;
          element.dstPortLow = dp.low;
          element.dstPortHigh = dp.high;
          element.protocol = rule.protocol;
          element.hasPorts = hasPorts;
          element.direction = rule.direction;
          element.order = static_cast<uint32_t>(family.elements.size());
          family.ruleIdOf.push_back(rule.ruleId);
          family.elements.push_back(element);
        }
      }
    }
  }
}

class BitmapEngine final : public Engine {
 public:
  void build(const std::vector<L34Rule>& rules, ExpandedRules expanded, const L34ClassifierConfig& config,
             L34ClassifierStats& stats);
  void classifyBurst(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const override;

 private:
  BitmapFamily<uint32_t> ipv4_;
  BitmapFamily<Key128> ipv6_;
};

void BitmapEngine::build(const std::vector<L34Rule>& rules, ExpandedRules expanded,
                         const L34ClassifierConfig& config, L34ClassifierStats& stats) {
  ipv4_.elements.reserve(expanded.ipv4Elements);
  ipv4_.ruleIdOf.reserve(expanded.ipv4Elements);
  ipv6_.elements.reserve(expanded.ipv6Elements);
  ipv6_.ruleIdOf.reserve(expanded.ipv6Elements);
  for (size_t i = 0; i < rules.size(); ++i) {
    addElements(ipv4_, rules[i], expanded.ipv4[i]);
    addElements(ipv6_, rules[i], expanded.ipv6[i]);
  }
  expanded.ipv4.clear();
  expanded.ipv6.clear();
  ipv4_.build(config.bitmapFieldBytes);
  ipv6_.build(config.bitmapFieldBytes);
  stats.memoryBytes = ipv4_.memoryBytes() + ipv6_.memoryBytes();
  for (int part = 0; part < 3; ++part) stats.listed[part] = ipv4_.listed[part] + ipv6_.listed[part];
  stats.algorithm = "bitmap";
}

void BitmapEngine::classifyBurst(const L34Tuple* const* tuples, uint32_t count, uint32_t* ruleIds) const {
  if (!ipv4_.staged && !ipv6_.staged) {
    // Tables that fit the caches: no stages.
    for (uint32_t i = 0; i < count; ++i) {
      const L34Tuple& tuple = *tuples[i];
      ruleIds[i] = tuple.ipVersion == 4   ? ipv4_.classify(tuple)
                   : tuple.ipVersion == 6 ? ipv6_.classify(tuple)
                                          : kNoRule;
    }
    return;
  }
  uint32_t v4Index[kBurst], v6Index[kBurst];
  uint32_t v4Count = 0, v6Count = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t version = tuples[i]->ipVersion;
    ruleIds[i] = kNoRule;
    if (version == 4) v4Index[v4Count++] = i;
    if (version == 6) v6Index[v6Count++] = i;
  }
  if (v4Count > 0) ipv4_.classifyBurst(tuples, v4Index, v4Count, ruleIds);
  if (v6Count > 0) ipv6_.classifyBurst(tuples, v6Index, v6Count, ruleIds);
}

}  // namespace

uint64_t bitmapElementCount(const Expansion& expansion) {
  if (expansion.protocols.empty()) return 0;
  return product({expansion.sources.size(), expansion.destinations.size(), expansion.sourcePorts.size(),
                  expansion.destinationPorts.size()});
}

std::unique_ptr<Engine> buildBitmapEngine(const std::vector<L34Rule>& rules, ExpandedRules expanded,
                                          const L34ClassifierConfig& config, L34ClassifierStats& stats) {
  auto engine = std::make_unique<BitmapEngine>();
  engine->build(rules, std::move(expanded), config, stats);
  return engine;
}

}  // namespace vgate::dataplane::l34
