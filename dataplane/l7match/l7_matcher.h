// The L7 matcher: a policy's L7 conditions compiled into Hyperscan databases and host tables, shared
// read-only by all workers, and the per-worker scratch that turns a flow's L7 facts into the set of rules
// whose L7 conditions all hold. Patterns of one field are ORed (sni and sniRegex are one field), fields are
// ANDed, and a field whose fact is absent is false. Exact host names and "*.suffix" live in hash tables, as
// Hyperscan compiles many names slowly; the rest is split into small chunks by hash, so that an edit
// recompiles few, compiled in parallel and cached per chunk. What each value compiles to: l7_patterns.h.
#pragma once

#include <hs/hs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataplane/l7match/l7_patterns.h"
#include "vgate/policy.h"
#include "vgate/result.h"

namespace vgate::dataplane {

// The L7 fields, each with its own databases (payload directions share them).
enum class L7Field : uint8_t {
  kSni,
  kAlpn,
  kCertSubject,
  kCertIssuer,
  kSan,
  kHttpHost,
  kHttpPath,
  kHttpMethod,
  kPayload,
};
inline constexpr size_t kL7FieldCount = 9;
const char* l7FieldName(L7Field field);

// Bits of L7Facts::presentFields. Payload has one bit per direction; the others one bit per field.
inline constexpr uint32_t l7FactBit(L7Field field) { return 1u << static_cast<uint32_t>(field); }
inline constexpr uint32_t kFactSni = l7FactBit(L7Field::kSni);
inline constexpr uint32_t kFactAlpn = l7FactBit(L7Field::kAlpn);
inline constexpr uint32_t kFactCertSubject = l7FactBit(L7Field::kCertSubject);
inline constexpr uint32_t kFactCertIssuer = l7FactBit(L7Field::kCertIssuer);
inline constexpr uint32_t kFactSan = l7FactBit(L7Field::kSan);
inline constexpr uint32_t kFactHttpHost = l7FactBit(L7Field::kHttpHost);
inline constexpr uint32_t kFactHttpPath = l7FactBit(L7Field::kHttpPath);
inline constexpr uint32_t kFactHttpMethod = l7FactBit(L7Field::kHttpMethod);
inline constexpr uint32_t kFactPayloadToServer = l7FactBit(L7Field::kPayload);
inline constexpr uint32_t kFactPayloadToClient = 1u << kL7FieldCount;

// What inspection learnt about a flow. Views only: the matcher neither copies nor keeps them.
struct L7Facts {
  std::string_view sni;
  const std::string_view* alpn = nullptr;
  size_t alpnCount = 0;
  std::string_view httpHost, httpPath, httpMethod, certSubject, certIssuer;
  const std::string_view* sans = nullptr;
  size_t sanCount = 0;
  std::string_view payloadToServer, payloadToClient;
  uint32_t presentFields = 0;  // kFact* bits: which facts are known
};

// A dynamic bitset over rule indices, allocated once per worker. It remembers which words it set so that
// clearing costs the number of matches, not the number of rules.
class RuleSet {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  RuleSet() = default;
  explicit RuleSet(size_t ruleCount) { resize(ruleCount); }

  void resize(size_t ruleCount);  // allocates: not on the hot path
  size_t size() const { return ruleCount_; }
  bool test(uint32_t rule) const { return rule < ruleCount_ && (words_[rule >> 6] >> (rule & 63)) & 1; }
  void set(uint32_t rule);
  void clear();
  size_t count() const;
  bool empty() const { return touchedCount_ == 0; }
  // The lowest set rule index below `bound`, or kNone.
  uint32_t firstBelow(uint32_t bound) const;
  // The lowest set rule in [from, bound), or kNone: walks the matches in rule order.
  uint32_t nextAtOrAbove(uint32_t from, uint32_t bound) const;

 private:
  friend class L7Matcher;
  // Stores a whole word that the caller knows was zero.
  void storeWord(uint32_t word, uint64_t bits) {
    if (bits == 0) return;
    words_[word] = bits;
    touched_[touchedCount_++] = word;
  }

  size_t ruleCount_ = 0;
  std::vector<uint64_t> words_;
  std::vector<uint32_t> touched_;  // sized to the word count: each word is listed at most once
  size_t touchedCount_ = 0;
};

class L7Matcher;

// Per-worker matching state: Hyperscan scratch (sized for every database of one matcher) and one hit bitset
// per field. Make one with L7Matcher::makeScratch() and clone it for each further worker; it is valid only
// with the matcher that made it (or one compiled from the same policy).
class L7Scratch {
 public:
  ~L7Scratch();
  L7Scratch(const L7Scratch&) = delete;
  L7Scratch& operator=(const L7Scratch&) = delete;

  Result<std::unique_ptr<L7Scratch>> clone() const;

 private:
  friend class L7Matcher;
  L7Scratch() = default;
  void resize(size_t words);

  hs_scratch_t* hs_ = nullptr;
  size_t words_ = 0;
  std::array<std::vector<uint64_t>, kL7FieldCount> hits_;
  std::vector<uint64_t> any_;      // union of hits_: which words have a touched list entry
  std::vector<uint32_t> touched_;  // sized to the word count
  size_t touchedCount_ = 0;
  L7Field current_ = L7Field::kSni;  // the field being scanned, for the callback
  // The scanned database's id -> rules table (see L7Matcher::Database), for the callback.
  const uint32_t* currentFirst_ = nullptr;
  const uint32_t* currentRules_ = nullptr;
};

struct CompileOptions {
  // Empty: no cache; else one <cacheDir>/<32 hex digits>.hsdb per chunk (see l7_database_cache.h).
  std::string cacheDir;
  unsigned threads = 0;  // Hyperscan compile threads; 0: one per CPU
  // For CompiledPolicy: build the L3/L4 classifiers on rte_acl instead of rule bitmaps (for comparisons).
  bool rteAcl = false;
};

// A field is split into the fewest power-of-two chunks that average at most kChunkPatterns distinct patterns
// (kMaxChunks at most); kChunkPatterns is where Hyperscan's time per pattern starts to grow.
inline constexpr size_t kChunkPatterns = 128;
inline constexpr size_t kMaxChunks = 1024;
// Cache files kept beyond the ones the latest compile used (at least): the previous policy's, to go back to.
inline constexpr size_t kCacheKeepOther = 64;

struct L7MatcherStats {
  double compileMillis = 0;  // wall time of compile(), including cache reads and writes
  // CPU time of the chunk threads (Hyperscan compiles, cache reads and writes): the work, whatever the load.
  double chunkCpuMillis = 0;
  size_t ruleCount = 0;
  size_t l7RuleCount = 0;
  std::array<size_t, kL7FieldCount> patternCount{};
  std::array<size_t, kL7FieldCount> databaseBytes{};  // hs_database_size; 0 where the field has no database
  std::array<size_t, kL7FieldCount> databaseCount{};  // the field's chunks
  size_t totalDatabaseBytes = 0;
  std::array<bool, kL7FieldCount> loadedFromCache{};
  size_t cacheHits = 0;         // databases loaded from the cache
  size_t cacheWrites = 0;       // databases compiled and written to the cache
  size_t cacheRejected = 0;     // cache files present but unusable (corrupt, other platform or version)
  size_t cacheEvicted = 0;      // older cache files removed to bound the directory
  size_t compiledPatterns = 0;  // patterns Hyperscan compiled in this call (the cache missed their chunks)
  std::array<size_t, kL7FieldCount> tablePatterns{};  // of patternCount, those answered by the host tables
};

// Hash and equality for the host tables: ASCII-caseless, and transparent so that a lookup takes a string_view
// without building a string.
struct CaselessHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const;
};
struct CaselessEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};

class L7Matcher {
 public:
  ~L7Matcher();
  L7Matcher(const L7Matcher&) = delete;
  L7Matcher& operator=(const L7Matcher&) = delete;

  // Off the hot path. Fails, naming the rule and Hyperscan's message, when a pattern does not compile.
  static Result<std::shared_ptr<const L7Matcher>> compile(const policy::Policy& policy,
                                                          const CompileOptions& options = {});

  // Scratch for one worker; clone it for the others.
  Result<std::unique_ptr<L7Scratch>> makeScratch() const;

  // Hot path, no allocation: `out` (sized with ruleSet()) becomes the set of rules that have L7 conditions
  // and all of whose L7 conditions hold for `facts`.
  void match(const L7Facts& facts, L7Scratch& scratch, RuleSet& out) const;
  // match(), then the lowest matching rule index below `bound`, or RuleSet::kNone.
  uint32_t firstMatchingRule(const L7Facts& facts, L7Scratch& scratch, RuleSet& out, uint32_t bound) const;

  RuleSet ruleSet() const { return RuleSet(ruleCount_); }
  size_t ruleCount() const { return ruleCount_; }
  // Whether any rule has a condition on `field` (answered by Hyperscan, the host tables or both).
  bool hasField(L7Field field) const { return !required_[static_cast<size_t>(field)].empty(); }
  bool hasDatabase(L7Field field) const { return !databases_[static_cast<size_t>(field)].empty(); }
  // The cache file names (without the directory) of the field's chunks, in scan order; for tests and tools.
  std::vector<std::string> cacheFiles(L7Field field) const;
  bool hasL7(uint32_t rule) const { return rule < ruleCount_ && (l7Rules_[rule >> 6] >> (rule & 63)) & 1; }
  // The most payload bytes per direction that any rule inspects: what inspection needs to buffer.
  uint32_t payloadWindow() const { return payloadWindow_; }
  const L7MatcherStats& stats() const { return stats_; }

 private:
  class Compiler;  // compile()'s steps

  L7Matcher() = default;
  static int onMatch(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags,
                     void* context);
  void scan(L7Field field, std::string_view data, L7Scratch& scratch) const;
  // The Hyperscan database and the host tables of one field.
  void lookup(L7Field field, std::string_view data, L7Scratch& scratch) const;
  static void recordHit(L7Scratch& scratch, L7Field field, uint32_t rule);

  using HostTable = std::unordered_map<std::string, std::vector<uint32_t>, CaselessHash, CaselessEqual>;
  struct HostTables {
    HostTable exact;  // "api.example.com"
    HostTable under;  // "*.bank.example", keyed "bank.example"
  };

  // One chunk: Hyperscan reports pattern `id`, and rules_[first_[id]] .. rules_[first_[id + 1] - 1] use it.
  struct Database {
    hs_database_t* hs = nullptr;
    std::vector<uint32_t> first;
    std::vector<uint32_t> rules;
    std::string cacheFile;
  };

  size_t ruleCount_ = 0;
  size_t words_ = 0;
  std::array<std::vector<Database>, kL7FieldCount> databases_;  // a field's chunks
  std::array<HostTables, kL7FieldCount> tables_;                // sni, san and http host only
  // Per field, the rules that have a condition on it; and the rules that have any L7 condition.
  std::array<std::vector<uint64_t>, kL7FieldCount> required_;
  std::vector<uint64_t> l7Rules_;
  uint32_t payloadWindow_ = 0;
  L7MatcherStats stats_;
};

}  // namespace vgate::dataplane
