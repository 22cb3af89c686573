// The L7 matcher: the policy's L7 conditions compiled into Hyperscan databases chunk by chunk (from the cache
// where it can), and the allocation-free match over a flow's L7 facts.
#include "dataplane/l7match/l7_matcher.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>

#include "dataplane/l7match/l7_database_cache.h"

namespace vgate::dataplane {

namespace {

constexpr const char* kFieldNames[kL7FieldCount] = {
    "sni", "alpn", "cert-subject", "cert-issuer", "san", "http-host", "http-path", "http-method", "payload"};

// One policy value as Hyperscan compiles it, with the rule that has it.
struct Pattern : L7Expression {
  unsigned int id = 0;
  L7Condition condition = L7Condition::kSni;
  const std::string* source = nullptr;  // the pattern as the user wrote it
};

// One Hyperscan pattern of a field, with every rule that uses it (in rule order).
struct Distinct {
  const Pattern* first = nullptr;  // the first rule's pattern: expression, flags, window and error messages
  uint64_t hash = 0;
  std::vector<uint32_t> rules;
};

// The patterns of one chunk, in the order that gives them their Hyperscan ids.
using Members = std::vector<const Distinct*>;

uint64_t mix(uint64_t x) {
  // murmur3's finaliser: FNV-1a alone leaves the top bits, which pick the chunk, poorly mixed.
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

uint64_t patternHash(const Pattern& pattern) {
  uint64_t hash = 14695981039346656037ull;
  auto add = [&](const void* data, size_t length) {
    for (size_t i = 0; i < length; ++i) {
      hash ^= static_cast<const unsigned char*>(data)[i];
      hash *= 1099511628211ull;
    }
  };
  add(pattern.expression.data(), pattern.expression.size());
  add(&pattern.flags, sizeof(pattern.flags));
  add(&pattern.maxOffset, sizeof(pattern.maxOffset));
  return mix(hash);
}

bool samePattern(const Pattern& a, const Pattern& b) {
  return a.expression == b.expression && a.flags == b.flags && a.maxOffset == b.maxOffset;
}

bool patternBefore(const Distinct* a, const Distinct* b) {
  if (a->hash != b->hash) return a->hash < b->hash;
  if (a->first->expression != b->first->expression) return a->first->expression < b->first->expression;
  if (a->first->flags != b->first->flags) return a->first->flags < b->first->flags;
  return a->first->maxOffset < b->first->maxOffset;
}

std::string describe(const policy::Policy& policy, const Pattern& pattern) {
  const auto& rule = policy.rules[pattern.id];
  std::string message = "rule '" + rule.name + "'";
  if (!rule.location.file.empty() || rule.location.line > 0) {
    message += " (" + rule.location.file + ":" + std::to_string(rule.location.line) + ")";
  }
  return message + ": " + l7ConditionName(pattern.condition) + " '" + *pattern.source + "': ";
}

// What Hyperscan cannot see once a pattern is a C string and wrapped.
Result<void> checkPatterns(const policy::Policy& policy, const std::vector<Pattern>& patterns) {
  for (const auto& pattern : patterns) {
    if (const char* problem = l7ValueProblem(pattern.condition, *pattern.source)) {
      return makeError(EINVAL, describe(policy, pattern) + problem);
    }
  }
  return {};
}

hs_error_t compileOnce(const Members& members, const std::vector<unsigned int>& flags,
                       hs_database_t** database, hs_compile_error_t** error) {
  size_t count = members.size();
  std::vector<const char*> expressions(count);
  std::vector<unsigned int> ids(count);
  std::vector<hs_expr_ext_t> exts(count);
  std::vector<const hs_expr_ext_t*> extPointers(count, nullptr);
  for (size_t i = 0; i < count; ++i) {
    const auto& pattern = *members[i]->first;
    expressions[i] = pattern.expression.c_str();
    ids[i] = static_cast<unsigned int>(i);
    if (pattern.maxOffset > 0) {
      exts[i] = hs_expr_ext_t{};
      exts[i].flags = HS_EXT_FLAG_MAX_OFFSET;
      exts[i].max_offset = pattern.maxOffset;
      extPointers[i] = &exts[i];
    }
  }
  return hs_compile_ext_multi(expressions.data(), flags.data(), ids.data(), extPointers.data(),
                              static_cast<unsigned int>(count), HS_MODE_BLOCK, nullptr, database, error);
}

// Compiles without HS_FLAG_ALLOWEMPTY first (it slows compilation); only if Hyperscan then
// refuses a pattern for matching the empty string are the patterns analysed, and the flag added to those
// that can. The result is the same as with the flag on every pattern.
// On failure, `failedRule` is the rule the message names (UINT32_MAX: none).
Result<hs_database_t*> compileChunk(const policy::Policy& policy, L7Field field, const Members& members,
                                    uint32_t& failedRule) {
  failedRule = UINT32_MAX;
  size_t count = members.size();
  std::vector<unsigned int> flags(count);
  for (size_t i = 0; i < count; ++i) flags[i] = members[i]->first->flags;
  hs_database_t* database = nullptr;
  hs_compile_error_t* error = nullptr;
  hs_error_t status = compileOnce(members, flags, &database, &error);
  if (status != HS_SUCCESS && error != nullptr && error->message != nullptr &&
      std::strstr(error->message, "empty") != nullptr) {
    hs_free_compile_error(error);
    error = nullptr;
    for (size_t i = 0; i < count; ++i) {
      if (l7CanMatchEmpty(*members[i]->first)) flags[i] |= HS_FLAG_ALLOWEMPTY;
    }
    status = compileOnce(members, flags, &database, &error);
  }
  if (status == HS_SUCCESS) return database;
  std::string message;
  if (error != nullptr && error->expression >= 0 && static_cast<size_t>(error->expression) < count) {
    const Pattern& pattern = *members[static_cast<size_t>(error->expression)]->first;
    message = describe(policy, pattern);
    failedRule = pattern.id;
  } else {
    message = std::string("L7 ") + l7FieldName(field) + " database: ";
  }
  message += "Hyperscan: ";
  message += error != nullptr && error->message != nullptr ? error->message : "compile failed";
  if (error != nullptr) hs_free_compile_error(error);
  return makeError(EINVAL, std::move(message));
}

char asciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

void setBit(std::vector<uint64_t>& words, uint32_t bit) { words[bit >> 6] |= uint64_t{1} << (bit & 63); }

}  // namespace

const char* l7FieldName(L7Field field) { return kFieldNames[static_cast<size_t>(field)]; }

size_t CaselessHash::operator()(std::string_view text) const {
  // FNV-1a over the lowered bytes: names are short, and this keeps lookups free of any copy.
  uint64_t hash = 14695981039346656037ull;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(asciiLower(c));
    hash *= 1099511628211ull;
  }
  return static_cast<size_t>(hash);
}

bool CaselessEqual::operator()(std::string_view a, std::string_view b) const {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

// ---- RuleSet ----

void RuleSet::resize(size_t ruleCount) {
  ruleCount_ = ruleCount;
  size_t words = (ruleCount + 63) / 64;
  words_.assign(words, 0);
  touched_.assign(words, 0);
  touchedCount_ = 0;
}

void RuleSet::set(uint32_t rule) {
  if (rule >= ruleCount_) return;
  uint64_t& word = words_[rule >> 6];
  if (word == 0) touched_[touchedCount_++] = rule >> 6;
  word |= uint64_t{1} << (rule & 63);
}

void RuleSet::clear() {
  for (size_t i = 0; i < touchedCount_; ++i) words_[touched_[i]] = 0;
  touchedCount_ = 0;
}

size_t RuleSet::count() const {
  size_t total = 0;
  for (size_t i = 0; i < touchedCount_; ++i) total += static_cast<size_t>(std::popcount(words_[touched_[i]]));
  return total;
}

uint32_t RuleSet::firstBelow(uint32_t bound) const {
  // The touched list is in match order, not rule order: take the minimum over it.
  uint32_t best = kNone;
  for (size_t i = 0; i < touchedCount_; ++i) {
    uint32_t word = touched_[i];
    uint32_t first = word * 64 + static_cast<uint32_t>(std::countr_zero(words_[word]));
    if (first < best) best = first;
  }
  return best < bound ? best : kNone;
}

uint32_t RuleSet::nextAtOrAbove(uint32_t from, uint32_t bound) const {
  // Over the touched words only, so the cost follows the number of matches, not of rules.
  uint32_t best = kNone;
  for (size_t i = 0; i < touchedCount_; ++i) {
    uint32_t word = touched_[i];
    if ((word + 1) * 64 <= from) continue;
    uint64_t bits = words_[word];
    if (word * 64 < from) bits &= ~uint64_t{0} << (from - word * 64);
    if (bits == 0) continue;
    uint32_t first = word * 64 + static_cast<uint32_t>(std::countr_zero(bits));
    if (first < best) best = first;
  }
  return best < bound ? best : kNone;
}

// ---- L7Scratch ----

L7Scratch::~L7Scratch() {
  if (hs_ != nullptr) hs_free_scratch(hs_);
}

void L7Scratch::resize(size_t words) {
  words_ = words;
  for (auto& hits : hits_) hits.assign(words, 0);
  any_.assign(words, 0);
  touched_.assign(words, 0);
  touchedCount_ = 0;
}

Result<std::unique_ptr<L7Scratch>> L7Scratch::clone() const {
  std::unique_ptr<L7Scratch> copy(new L7Scratch());
  copy->resize(words_);
  if (hs_ != nullptr && hs_clone_scratch(hs_, &copy->hs_) != HS_SUCCESS) {
    return makeError(ENOMEM, "cannot clone Hyperscan scratch");
  }
  return copy;
}

// ---- L7Matcher ----

L7Matcher::~L7Matcher() {
  for (const auto& chunks : databases_) {
    for (const auto& database : chunks) hs_free_database(database.hs);
  }
}

std::vector<std::string> L7Matcher::cacheFiles(L7Field field) const {
  std::vector<std::string> names;
  for (const auto& database : databases_[static_cast<size_t>(field)]) names.push_back(database.cacheFile);
  return names;
}

// ---- compile ----

// compile()'s steps, in order, on the matcher being built.
class L7Matcher::Compiler {
 public:
  Compiler(const policy::Policy& policy, const CompileOptions& options, L7Matcher& matcher)
      : policy_(policy),
        options_(options),
        matcher_(matcher),
        useCache_(!options.cacheDir.empty()),
        cache_(options.cacheDir) {}

  // Every rule's L7 conditions, into the host tables or their field's patterns.
  void collect();
  // Each field's distinct patterns in chunks chosen by hash, so that a chunk depends on its patterns only;
  // fails on a pattern that cannot be translated.
  Result<void> plan();
  // Each chunk from the cache, or compiled (and written to the cache), on parallel threads.
  void build();
  // The chunks' databases and their stats into the matcher; of several failures, the lowest rule's.
  Result<void> install();
  // Only a compile that added files can have grown the cache directory past its bound.
  void sweep();

 private:
  struct Chunk {
    L7Field field = L7Field::kSni;
    Members members;
    L7CacheKey key = {};
    std::string file;
    hs_database_t* database = nullptr;
    std::optional<Error> error;
    uint32_t failedRule = UINT32_MAX;  // the rule a failure names: of several, the lowest is reported
    bool cached = false, rejected = false, written = false;
  };

  void require(L7Field field, uint32_t rule);
  // Exact names and "*.suffix" go to the host tables; every other host pattern to Hyperscan.
  void addHosts(L7Field field, L7Condition condition, const std::vector<std::string>& sources, uint32_t rule);
  void addAll(L7Field field, L7Condition condition, const std::vector<std::string>& sources, uint32_t rule,
              uint32_t window = 0);
  Result<void> planField(L7Field field);
  void buildChunk(Chunk& chunk);

  const policy::Policy& policy_;
  const CompileOptions& options_;
  L7Matcher& matcher_;
  bool useCache_;
  L7DatabaseCache cache_;
  std::array<std::vector<Pattern>, kL7FieldCount> fields_;
  std::array<std::vector<Distinct>, kL7FieldCount> distinct_;  // what the chunks' members point to
  std::vector<Chunk> chunks_;
  std::unordered_set<std::string> used_;  // the chunks' cache files
};

void L7Matcher::Compiler::require(L7Field field, uint32_t rule) {
  auto& required = matcher_.required_[static_cast<size_t>(field)];
  if (required.empty()) required.assign(matcher_.words_, 0);
  setBit(required, rule);
}

void L7Matcher::Compiler::addHosts(L7Field field, L7Condition condition,
                                   const std::vector<std::string>& sources, uint32_t rule) {
  auto f = static_cast<size_t>(field);
  for (const auto& source : sources) {
    std::string_view text = source;
    bool under = text.starts_with("*.");
    if (under) text.remove_prefix(2);
    if (text.empty() || text.find_first_of("*?") != std::string_view::npos) {
      fields_[f].push_back(Pattern{l7Expression(condition, source), rule, condition, &source});
      continue;
    }
    std::string key(text);
    for (char& c : key) c = asciiLower(c);
    auto& rules = (under ? matcher_.tables_[f].under : matcher_.tables_[f].exact)[std::move(key)];
    if (rules.empty() || rules.back() != rule) rules.push_back(rule);
    ++matcher_.stats_.tablePatterns[f];
    ++matcher_.stats_.patternCount[f];
  }
}

void L7Matcher::Compiler::addAll(L7Field field, L7Condition condition,
                                 const std::vector<std::string>& sources, uint32_t rule, uint32_t window) {
  for (const auto& source : sources) {
    fields_[static_cast<size_t>(field)].push_back(
        Pattern{l7Expression(condition, source, window), rule, condition, &source});
  }
}

void L7Matcher::Compiler::collect() {
  for (uint32_t index = 0; index < matcher_.ruleCount_; ++index) {
    const auto& rule = policy_.rules[index];
    if (!rule.hasL7()) continue;
    setBit(matcher_.l7Rules_, index);
    ++matcher_.stats_.l7RuleCount;
    addHosts(L7Field::kSni, L7Condition::kSni, rule.tls.sni, index);
    addAll(L7Field::kSni, L7Condition::kSniRegex, rule.tls.sniRegex, index);
    addAll(L7Field::kAlpn, L7Condition::kAlpn, rule.tls.alpn, index);
    addAll(L7Field::kCertSubject, L7Condition::kCertSubject, rule.tls.certificate.subject, index);
    addAll(L7Field::kCertIssuer, L7Condition::kCertIssuer, rule.tls.certificate.issuer, index);
    addHosts(L7Field::kSan, L7Condition::kSan, rule.tls.certificate.san, index);
    addHosts(L7Field::kHttpHost, L7Condition::kHttpHost, rule.http.host, index);
    addAll(L7Field::kHttpPath, L7Condition::kHttpPath, rule.http.path, index);
    addAll(L7Field::kHttpMethod, L7Condition::kHttpMethod, rule.http.method, index);
    // A window of 0 would mean "inspect nothing": treat it as the model's default rather than a dead rule.
    uint32_t window = rule.payload.window > 0 ? rule.payload.window : policy::PayloadMatch{}.window;
    addAll(L7Field::kPayload, L7Condition::kPayloadRegex, rule.payload.regex, index, window);
    if (!rule.payload.regex.empty() && window > matcher_.payloadWindow_) matcher_.payloadWindow_ = window;
    if (!rule.tls.sni.empty()) require(L7Field::kSni, index);
    if (!rule.tls.certificate.san.empty()) require(L7Field::kSan, index);
    if (!rule.http.host.empty()) require(L7Field::kHttpHost, index);
  }
}

Result<void> L7Matcher::Compiler::planField(L7Field field) {
  auto f = static_cast<size_t>(field);
  const auto& patterns = fields_[f];
  matcher_.stats_.patternCount[f] += patterns.size();
  if (patterns.empty()) return {};
  for (const auto& pattern : patterns) require(field, pattern.id);
  if (auto checked = checkPatterns(policy_, patterns); !checked) return checked.error();
  // Identical patterns once, with all their rules; keyed by hash, then compared in full. Reserved, so that
  // the chunks' pointers stay valid.
  auto& unique = distinct_[f];
  unique.reserve(patterns.size());
  std::unordered_multimap<uint64_t, size_t> byHash;
  for (const auto& pattern : patterns) {
    uint64_t hash = patternHash(pattern);
    Distinct* same = nullptr;
    for (auto [it, end] = byHash.equal_range(hash); it != end; ++it) {
      if (samePattern(*unique[it->second].first, pattern)) same = &unique[it->second];
    }
    if (same == nullptr) {
      byHash.emplace(hash, unique.size());
      unique.push_back(Distinct{&pattern, hash, {}});
      same = &unique.back();
    }
    if (same->rules.empty() || same->rules.back() != pattern.id) same->rules.push_back(pattern.id);
  }
  size_t wanted = (unique.size() + kChunkPatterns - 1) / kChunkPatterns;
  size_t count = std::min(std::bit_ceil(wanted), kMaxChunks);
  int shift = 64 - std::countr_zero(count);  // the hash's top log2(count) bits pick the chunk
  size_t first = chunks_.size();
  chunks_.resize(first + count);
  for (const auto& pattern : unique) {
    size_t bucket = count == 1 ? 0 : static_cast<size_t>(pattern.hash >> shift);
    chunks_[first + bucket].members.push_back(&pattern);
  }
  for (size_t i = first; i < chunks_.size(); ++i) {
    chunks_[i].field = field;
    std::sort(chunks_[i].members.begin(), chunks_[i].members.end(), patternBefore);
  }
  // A hash range that no pattern fell in is no database.
  chunks_.erase(std::remove_if(chunks_.begin() + static_cast<ptrdiff_t>(first), chunks_.end(),
                               [](const Chunk& chunk) { return chunk.members.empty(); }),
                chunks_.end());
  return {};
}

Result<void> L7Matcher::Compiler::plan() {
  for (size_t f = 0; f < kL7FieldCount; ++f) {
    if (auto planned = planField(static_cast<L7Field>(f)); !planned) return planned;
  }
  return {};
}

void L7Matcher::Compiler::buildChunk(Chunk& chunk) {
  if (useCache_) {
    std::vector<const L7Expression*> patterns;
    patterns.reserve(chunk.members.size());
    for (const auto* member : chunk.members) patterns.push_back(member->first);
    chunk.key = L7DatabaseCache::key(patterns);
    chunk.file = L7DatabaseCache::fileName(chunk.key);
    chunk.database = cache_.load(chunk.file, chunk.key, chunk.members.size(), chunk.rejected);
    chunk.cached = chunk.database != nullptr;
    if (chunk.cached) return;
  }
  auto compiled = compileChunk(policy_, chunk.field, chunk.members, chunk.failedRule);
  if (!compiled) {
    chunk.error = compiled.error();
    return;
  }
  chunk.database = compiled.value();
  if (useCache_) chunk.written = cache_.store(chunk.file, chunk.key, chunk.members.size(), chunk.database);
}

void L7Matcher::Compiler::build() {
  // Loading, compiling and writing all run on the threads: a warm compile reads and checks files in parallel,
  // and a cold one writes each file while other chunks are still compiling.
  unsigned threads =
      options_.threads != 0 ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::clamp<size_t>(threads, 1, std::max<size_t>(chunks_.size(), 1)));
  std::atomic<size_t> next{0};
  std::atomic<int64_t> cpuNanos{0};
  auto threadCpuNanos = [] {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  };
  auto work = [&] {
    int64_t cpuStarted = threadCpuNanos();
    for (size_t i = next++; i < chunks_.size(); i = next++) buildChunk(chunks_[i]);
    cpuNanos += threadCpuNanos() - cpuStarted;
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (auto& worker : workers) worker.join();
  matcher_.stats_.chunkCpuMillis = static_cast<double>(cpuNanos.load()) / 1e6;
}

Result<void> L7Matcher::Compiler::install() {
  // Every chunk's database now belongs to the matcher (freed by its destructor), the failed ones aside. Of
  // several failures, the one with the lowest rule is reported, as a compile in rule order would.
  const Chunk* failed = nullptr;
  auto& stats = matcher_.stats_;
  for (auto& chunk : chunks_) {
    auto f = static_cast<size_t>(chunk.field);
    stats.cacheRejected += chunk.rejected ? 1 : 0;
    stats.cacheHits += chunk.cached ? 1 : 0;
    stats.cacheWrites += chunk.written ? 1 : 0;
    if (!chunk.cached) stats.compiledPatterns += chunk.members.size();
    if (useCache_) used_.insert(chunk.file);
    if (chunk.database == nullptr) {
      if (failed == nullptr || chunk.failedRule < failed->failedRule) failed = &chunk;
      continue;
    }
    Database database;
    database.hs = chunk.database;
    database.cacheFile = chunk.file;
    database.first.reserve(chunk.members.size() + 1);
    for (const auto* member : chunk.members) {
      database.first.push_back(static_cast<uint32_t>(database.rules.size()));
      database.rules.insert(database.rules.end(), member->rules.begin(), member->rules.end());
    }
    database.first.push_back(static_cast<uint32_t>(database.rules.size()));
    stats.loadedFromCache[f] = (matcher_.databases_[f].empty() || stats.loadedFromCache[f]) && chunk.cached;
    matcher_.databases_[f].push_back(std::move(database));
    ++stats.databaseCount[f];
    size_t bytes = 0;
    if (hs_database_size(chunk.database, &bytes) == HS_SUCCESS) {
      stats.databaseBytes[f] += bytes;
      stats.totalDatabaseBytes += bytes;
    }
  }
  if (failed != nullptr) return *failed->error;
  return {};
}

void L7Matcher::Compiler::sweep() {
  if (useCache_ && matcher_.stats_.cacheWrites > 0) {
    matcher_.stats_.cacheEvicted = cache_.sweep(used_, kCacheKeepOther);
  }
}

Result<std::shared_ptr<const L7Matcher>> L7Matcher::compile(const policy::Policy& policy,
                                                            const CompileOptions& options) {
  auto started = std::chrono::steady_clock::now();
  if (hs_valid_platform() != HS_SUCCESS) return makeError(ENOTSUP, "Hyperscan: CPU lacks SSSE3");
  std::shared_ptr<L7Matcher> matcher(new L7Matcher());
  size_t ruleCount = policy.rules.size();
  if (ruleCount > UINT32_MAX / 2) return makeError(E2BIG, "too many rules for the L7 matcher");
  matcher->ruleCount_ = ruleCount;
  matcher->words_ = (ruleCount + 63) / 64;
  matcher->l7Rules_.assign(matcher->words_, 0);
  matcher->stats_.ruleCount = ruleCount;
  Compiler compiler(policy, options, *matcher);
  compiler.collect();
  if (auto planned = compiler.plan(); !planned) return planned.error();
  compiler.build();
  if (auto installed = compiler.install(); !installed) return installed.error();
  compiler.sweep();
  matcher->stats_.compileMillis =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return std::shared_ptr<const L7Matcher>(std::move(matcher));
}

Result<std::unique_ptr<L7Scratch>> L7Matcher::makeScratch() const {
  std::unique_ptr<L7Scratch> scratch(new L7Scratch());
  scratch->resize(words_);
  for (const auto& chunks : databases_) {
    for (const auto& database : chunks) {
      // Growing one scratch over every database: one scratch serves all fields' scans.
      if (hs_alloc_scratch(database.hs, &scratch->hs_) != HS_SUCCESS) {
        return makeError(ENOMEM, "cannot allocate Hyperscan scratch");
      }
    }
  }
  return scratch;
}

void L7Matcher::recordHit(L7Scratch& scratch, L7Field field, uint32_t rule) {
  size_t word = rule >> 6;
  if (word >= scratch.words_) return;  // a scratch from another matcher: ignore rather than overrun
  uint64_t bit = uint64_t{1} << (rule & 63);
  scratch.hits_[static_cast<size_t>(field)][word] |= bit;
  if (scratch.any_[word] == 0) scratch.touched_[scratch.touchedCount_++] = static_cast<uint32_t>(word);
  scratch.any_[word] |= bit;
}

int L7Matcher::onMatch(unsigned int id, unsigned long long /*from*/, unsigned long long /*to*/,
                       unsigned int /*flags*/, void* context) {
  auto* scratch = static_cast<L7Scratch*>(context);
  for (uint32_t i = scratch->currentFirst_[id]; i < scratch->currentFirst_[id + 1]; ++i) {
    recordHit(*scratch, scratch->current_, scratch->currentRules_[i]);
  }
  return 0;
}

void L7Matcher::scan(L7Field field, std::string_view data, L7Scratch& scratch) const {
  scratch.current_ = field;
  // Hyperscan wants a non-null pointer even for an empty buffer.
  const char* bytes = data.data() != nullptr ? data.data() : "";
  for (const auto& database : databases_[static_cast<size_t>(field)]) {
    scratch.currentFirst_ = database.first.data();
    scratch.currentRules_ = database.rules.data();
    hs_scan(database.hs, bytes, static_cast<unsigned int>(data.size()), 0, scratch.hs_, onMatch, &scratch);
  }
}

void L7Matcher::lookup(L7Field field, std::string_view data, L7Scratch& scratch) const {
  if (hasDatabase(field)) scan(field, data, scratch);
  const auto& tables = tables_[static_cast<size_t>(field)];
  if (!tables.exact.empty()) {
    auto found = tables.exact.find(data);
    if (found != tables.exact.end()) {
      for (uint32_t rule : found->second) recordHit(scratch, field, rule);
    }
  }
  if (tables.under.empty()) return;
  // "*.suffix" holds when the name is one or more non-empty labels, a dot, then the suffix: try the suffix
  // after each dot, left to right, and stop at the first empty label (every longer prefix contains it).
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] != '.') continue;
    if (i == 0 || data[i - 1] == '.') return;
    auto found = tables.under.find(data.substr(i + 1));
    if (found != tables.under.end()) {
      for (uint32_t rule : found->second) recordHit(scratch, field, rule);
    }
  }
}

void L7Matcher::match(const L7Facts& facts, L7Scratch& scratch, RuleSet& out) const {
  out.clear();
  if (scratch.words_ != words_ || out.words_.size() != words_) return;
  uint32_t present = facts.presentFields;
  auto has = [&](L7Field field, uint32_t bit) { return (present & bit) != 0 && hasField(field); };
  if (has(L7Field::kSni, kFactSni)) lookup(L7Field::kSni, facts.sni, scratch);
  if (has(L7Field::kAlpn, kFactAlpn)) {
    for (size_t i = 0; i < facts.alpnCount; ++i) scan(L7Field::kAlpn, facts.alpn[i], scratch);
  }
  if (has(L7Field::kCertSubject, kFactCertSubject)) scan(L7Field::kCertSubject, facts.certSubject, scratch);
  if (has(L7Field::kCertIssuer, kFactCertIssuer)) scan(L7Field::kCertIssuer, facts.certIssuer, scratch);
  if (has(L7Field::kSan, kFactSan)) {
    for (size_t i = 0; i < facts.sanCount; ++i) lookup(L7Field::kSan, facts.sans[i], scratch);
  }
  if (has(L7Field::kHttpHost, kFactHttpHost)) lookup(L7Field::kHttpHost, facts.httpHost, scratch);
  if (has(L7Field::kHttpPath, kFactHttpPath)) scan(L7Field::kHttpPath, facts.httpPath, scratch);
  if (has(L7Field::kHttpMethod, kFactHttpMethod)) scan(L7Field::kHttpMethod, facts.httpMethod, scratch);
  if (hasDatabase(L7Field::kPayload)) {
    // max_offset already bounds each rule; cutting at the largest window only saves scanning.
    if (present & kFactPayloadToServer) {
      scan(L7Field::kPayload, facts.payloadToServer.substr(0, payloadWindow_), scratch);
    }
    if (present & kFactPayloadToClient) {
      scan(L7Field::kPayload, facts.payloadToClient.substr(0, payloadWindow_), scratch);
    }
  }

  // Only words with a hit can hold a satisfied rule (every L7 rule has at least one condition): a rule holds
  // when, for every field it has a condition on, that field hit it.
  for (size_t i = 0; i < scratch.touchedCount_; ++i) {
    uint32_t word = scratch.touched_[i];
    uint64_t bits = l7Rules_[word];
    for (size_t f = 0; f < kL7FieldCount; ++f) {
      if (required_[f].empty()) continue;
      bits &= ~required_[f][word] | scratch.hits_[f][word];
      scratch.hits_[f][word] = 0;
    }
    scratch.any_[word] = 0;
    out.storeWord(word, bits);
  }
  scratch.touchedCount_ = 0;
}

uint32_t L7Matcher::firstMatchingRule(const L7Facts& facts, L7Scratch& scratch, RuleSet& out,
                                      uint32_t bound) const {
  match(facts, scratch, out);
  return out.firstBelow(bound);
}

}  // namespace vgate::dataplane
