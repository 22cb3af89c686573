// The L7 matcher: pattern translation, Hyperscan compilation with a serialized-database cache, and the
// allocation-free match over a flow's L7 facts.
#include "dataplane/l7match/l7_matcher.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>

namespace vgate::dataplane {

namespace {

constexpr const char* kFieldNames[kL7FieldCount] = {
    "sni", "alpn", "cert-subject", "cert-issuer", "san", "http-host", "http-path", "http-method", "payload"};

// Bumped whenever the translation or the cache file layout changes, so that old files are rebuilt.
constexpr uint32_t kCacheFormat = 3;
constexpr char kCacheMagic[8] = {'V', 'G', 'L', '7', 'H', 'S', 'D', 'B'};
constexpr std::string_view kCacheSuffix = ".hsdb";
// A temporary file older than this is a crashed writer's and is removed by the sweep.
constexpr auto kStaleTemporary = std::chrono::hours(1);

struct CacheHeader {
  char magic[8];
  uint32_t format;
  uint32_t patternCount;
  uint64_t length;         // bytes of serialized database after the header
  uint8_t key[32];         // the chunk's key (see chunkKey); the file name is its first half
  uint8_t dataDigest[32];  // SHA-256 of the serialized database
};

// Whole-string end: `$` would also match before a trailing newline, which would let "host\n" pass as "host".
constexpr std::string_view kEnd = "\\z";

bool isPlain(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Everything but ASCII letters and digits goes in as \xHH: no metacharacter, NUL or UTF-8 byte can leak.
void appendEscaped(std::string& out, char c) {
  if (isPlain(c)) {
    out.push_back(c);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  auto byte = static_cast<unsigned char>(c);
  out += "\\x";
  out.push_back(kHex[byte >> 4]);
  out.push_back(kHex[byte & 15]);
}

std::string globPattern(std::string_view glob, std::string_view star, std::string_view question) {
  std::string out = "^";
  for (char c : glob) {
    if (c == '*') {
      out += star;
    } else if (c == '?') {
      out += question;
    } else {
      appendEscaped(out, c);
    }
  }
  out += kEnd;
  return out;
}

struct Pattern {
  std::string expression;
  unsigned int flags = 0;
  unsigned int id = 0;
  uint32_t maxOffset = 0;  // payload only: the rule's window
  const char* condition = "";
  const std::string* source = nullptr;  // the pattern as the user wrote it
};

struct FieldPatterns {
  std::vector<Pattern> patterns;
};

// HS_FLAG_ALLOWEMPTY is added per pattern, where it can match the empty string (see withAllowEmpty).
constexpr unsigned int kBaseFlags = HS_FLAG_SINGLEMATCH;

void addAll(FieldPatterns& field, const std::vector<std::string>& sources, uint32_t rule,
            const char* condition, unsigned int flags, std::string (*translate)(std::string_view),
            uint32_t maxOffset = 0) {
  for (const auto& source : sources) {
    field.patterns.push_back(
        Pattern{translate(source), kBaseFlags | flags, rule, maxOffset, condition, &source});
  }
}

std::string sniRegexPattern(std::string_view regex) {
  std::string out = "^(?:";
  out += regex;
  out += ")";
  out += kEnd;
  return out;
}

// Whether `regex` has balanced groups, so that wrapping it as ^(?:regex)\z cannot be escaped: "a)|(b" alone
// is invalid, but wrapped it would parse as an unanchored alternative. Skips escapes, \Q..\E and classes.
bool groupsBalanced(std::string_view regex) {
  int depth = 0;
  size_t i = 0;
  while (i < regex.size()) {
    char c = regex[i];
    if (c == '\\') {
      if (i + 1 < regex.size() && regex[i + 1] == 'Q') {
        size_t end = regex.find("\\E", i + 2);
        i = end == std::string_view::npos ? regex.size() : end + 2;
      } else {
        i += 2;
      }
      continue;
    }
    if (c == '[') {
      // A class: a leading ']' (after an optional '^') is literal; "[:name:]" inside is a POSIX class.
      ++i;
      if (i < regex.size() && regex[i] == '^') ++i;
      if (i < regex.size() && regex[i] == ']') ++i;
      while (i < regex.size() && regex[i] != ']') {
        if (regex[i] == '\\') {
          i += 2;
        } else if (regex[i] == '[' && i + 1 < regex.size() && regex[i + 1] == ':') {
          size_t end = regex.find(":]", i + 2);
          i = end == std::string_view::npos ? regex.size() : end + 2;
        } else {
          ++i;
        }
      }
      ++i;
      continue;
    }
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return false;
    ++i;
  }
  return depth == 0;
}

std::string asIs(std::string_view regex) { return std::string(regex); }

void sha256(const void* data, size_t length, uint8_t (&out)[32]) {
  unsigned int outLength = 0;
  EVP_Digest(data, length, out, &outLength, EVP_sha256(), nullptr);
}

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

// What a serialized database is a function of, besides its patterns: this build's layout and Hyperscan, and
// the CPU it compiles for (compile() passes no platform, so Hyperscan tunes for this host).
const std::string& cacheContext() {
  static const std::string context = [] {
    hs_platform_info_t platform{};
    hs_populate_platform(&platform);
    return "vgate-l7/" + std::to_string(kCacheFormat) + "/" + hs_version() + "/" +
           std::to_string(platform.tune) + "/" + std::to_string(platform.cpu_features) + "/" +
           std::to_string(HS_MODE_BLOCK) + "\n";
  }();
  return context;
}

// The chunk's key: the context, then each pattern's expression, flags and window in id order. Rule indices
// are not in it: they live in the table beside the database.
void chunkKey(const Members& members, uint8_t (&out)[32]) {
  std::string all = cacheContext();
  for (const auto* member : members) {
    const Pattern& pattern = *member->first;
    all += pattern.expression;
    all.push_back('\0');
    all += std::to_string(pattern.flags) + "/" + std::to_string(pattern.maxOffset);
    all.push_back('\0');
  }
  sha256(all.data(), all.size(), out);
}

// Hex digits only, so that nothing from a policy can reach a path.
std::string cacheFileName(const uint8_t (&key)[32]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  for (size_t i = 0; i < 16; ++i) {
    name.push_back(kHex[key[i] >> 4]);
    name.push_back(kHex[key[i] & 15]);
  }
  return name + std::string(kCacheSuffix);
}

// Whether the pattern can match the empty string (Hyperscan then needs HS_FLAG_ALLOWEMPTY). A pattern
// Hyperscan cannot parse counts as one that can, so that compiling it reports the real error.
bool canMatchEmpty(const Pattern& pattern) {
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* error = nullptr;
  hs_expr_ext_t ext{};
  if (pattern.maxOffset > 0) {
    ext.flags = HS_EXT_FLAG_MAX_OFFSET;
    ext.max_offset = pattern.maxOffset;
  }
  if (hs_expression_ext_info(pattern.expression.c_str(), pattern.flags | HS_FLAG_ALLOWEMPTY,
                             pattern.maxOffset > 0 ? &ext : nullptr, &info, &error) != HS_SUCCESS) {
    if (error != nullptr) hs_free_compile_error(error);
    return true;
  }
  bool empty = info->min_width == 0;
  std::free(info);
  return empty;
}

// A usable database from the cache, or nullptr (absent, corrupt, another key, platform or version).
hs_database_t* loadCached(const std::string& path, const uint8_t (&key)[32], size_t patternCount,
                          bool& rejected) {
  rejected = false;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return nullptr;
  rejected = true;
  CacheHeader header;
  std::string data;
  struct stat status {};
  bool readOk = ::fstat(::fileno(file), &status) == 0 && std::fread(&header, sizeof(header), 1, file) == 1;
  // The file must be exactly the header and the length it promises: no longer (not what was written), and
  // no shorter, which also keeps a corrupt length from sizing a huge buffer.
  if (readOk && std::memcmp(header.magic, kCacheMagic, sizeof(kCacheMagic)) == 0 &&
      header.format == kCacheFormat && header.patternCount == patternCount &&
      std::memcmp(header.key, key, sizeof(key)) == 0 && header.length > 0 &&
      static_cast<uint64_t>(status.st_size) == sizeof(header) + header.length) {
    data.resize(header.length);
    readOk = std::fread(data.data(), 1, data.size(), file) == data.size();
  } else {
    readOk = false;
  }
  std::fclose(file);
  if (!readOk) return nullptr;
  uint8_t digest[32];
  sha256(data.data(), data.size(), digest);
  if (std::memcmp(digest, header.dataDigest, 32) != 0) return nullptr;
  // Asks Hyperscan whether this build and this CPU can run it before handing it over.
  char* info = nullptr;
  if (hs_serialized_database_info(data.data(), data.size(), &info) != HS_SUCCESS) return nullptr;
  std::free(info);
  hs_database_t* database = nullptr;
  if (hs_deserialize_database(data.data(), data.size(), &database) != HS_SUCCESS) return nullptr;
  rejected = false;
  // Marks the file recently used, for the sweep's LRU order.
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
  return database;
}

// Best effort: a cache that cannot be written only costs the next compile its time.
bool storeCached(const std::string& directory, const std::string& path, const uint8_t (&key)[32],
                 size_t patternCount, const hs_database_t* database) {
  static std::atomic<uint64_t> temporaries{0};
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  char* bytes = nullptr;
  size_t length = 0;
  if (hs_serialize_database(database, &bytes, &length) != HS_SUCCESS) return false;
  CacheHeader header{};
  std::memcpy(header.magic, kCacheMagic, sizeof(kCacheMagic));
  header.format = kCacheFormat;
  header.patternCount = static_cast<uint32_t>(patternCount);
  header.length = length;
  std::memcpy(header.key, key, sizeof(key));
  sha256(bytes, length, header.dataDigest);
  // Written aside under a name no other writer uses (process and counter) and renamed, so that a concurrent
  // compile never reads half a file and two writers of one chunk never interleave.
  std::string temporary =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(temporaries.fetch_add(1));
  bool ok = false;
  if (std::FILE* file = std::fopen(temporary.c_str(), "wb")) {
    ok = std::fwrite(&header, sizeof(header), 1, file) == 1 && std::fwrite(bytes, 1, length, file) == length;
    ok = std::fclose(file) == 0 && ok;
  }
  std::free(bytes);
  if (ok) ok = std::rename(temporary.c_str(), path.c_str()) == 0;
  if (!ok) std::remove(temporary.c_str());
  return ok;
}

// Bounds the directory: keeps `used`, and of the other cache files the most recently used
// max(kCacheKeepOther, used.size()); removes temporary files left by crashed writers. Returns the removals.
size_t sweepCache(const std::string& directory, const std::unordered_set<std::string>& used) {
  struct Entry {
    std::filesystem::file_time_type time;
    std::filesystem::path path;
  };
  std::vector<Entry> others;
  size_t removed = 0;
  std::error_code error;
  auto now = std::filesystem::file_time_type::clock::now();
  for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end;
       it.increment(error)) {
    std::string name = it->path().filename().string();
    auto time = it->last_write_time(error);
    if (error) {
      error.clear();
      continue;
    }
    if (name.find(std::string(kCacheSuffix) + ".tmp.") != std::string::npos) {
      if (now - time > kStaleTemporary && std::filesystem::remove(it->path(), error)) ++removed;
      error.clear();
      continue;
    }
    if (!name.ends_with(kCacheSuffix) || used.count(name) != 0) continue;
    others.push_back(Entry{time, it->path()});
  }
  size_t keep = std::max(kCacheKeepOther, used.size());
  if (others.size() <= keep) return removed;
  std::sort(others.begin(), others.end(), [](const Entry& a, const Entry& b) { return a.time > b.time; });
  for (size_t i = keep; i < others.size(); ++i) {
    if (std::filesystem::remove(others[i].path, error)) ++removed;
    error.clear();
  }
  return removed;
}

std::string describe(const policy::Policy& policy, const Pattern& pattern) {
  const auto& rule = policy.rules[pattern.id];
  std::string message = "rule '" + rule.name + "'";
  if (!rule.location.file.empty() || rule.location.line > 0) {
    message += " (" + rule.location.file + ":" + std::to_string(rule.location.line) + ")";
  }
  return message + ": " + std::string(pattern.condition) + " '" + *pattern.source + "': ";
}

// What Hyperscan cannot see once a pattern is a C string and wrapped.
Result<void> checkPatterns(const policy::Policy& policy, const FieldPatterns& patterns) {
  for (const auto& pattern : patterns.patterns) {
    if (pattern.source->find('\0') != std::string::npos) {
      return makeError(EINVAL, describe(policy, pattern) + "contains a NUL byte (write \\x00)");
    }
    if (std::strcmp(pattern.condition, "tls.sniRegex") == 0 && !groupsBalanced(*pattern.source)) {
      return makeError(EINVAL, describe(policy, pattern) + "unbalanced parentheses");
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

// Compiles without HS_FLAG_ALLOWEMPTY first (it slows compilation by about a fifth); only if Hyperscan then
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
      if (canMatchEmpty(*members[i]->first)) flags[i] |= HS_FLAG_ALLOWEMPTY;
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

std::string l7HostPattern(std::string_view pattern) {
  // One or more whole labels: the "any name under" of "*.example.com", never the apex, never "xexample.com".
  constexpr std::string_view kLabels = "[^.]+(?:\\.[^.]+)*";
  if (pattern == "*") return "^" + std::string(kLabels) + std::string(kEnd);
  std::string prefix;
  if (pattern.starts_with("*.")) {
    prefix = std::string(kLabels) + "\\.";
    pattern.remove_prefix(2);
  }
  std::string rest = globPattern(pattern, "[^.]*", "[^.]");
  return "^" + prefix + rest.substr(1);
}

std::string l7PathPattern(std::string_view glob) { return globPattern(glob, ".*", "[^/]"); }

std::string l7DnPattern(std::string_view glob) { return globPattern(glob, ".*", "."); }

std::string l7ExactPattern(std::string_view text) {
  std::string out = "^";
  for (char c : text) appendEscaped(out, c);
  out += kEnd;
  return out;
}

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

  std::array<FieldPatterns, kL7FieldCount> fields;
  auto at = [&](L7Field field) -> FieldPatterns& { return fields[static_cast<size_t>(field)]; };
  auto require = [&](L7Field field, uint32_t rule) {
    auto& required = matcher->required_[static_cast<size_t>(field)];
    if (required.empty()) required.assign(matcher->words_, 0);
    setBit(required, rule);
  };
  // Exact names and "*.suffix" go to the host tables; every other host pattern to Hyperscan.
  auto addHosts = [&](L7Field field, const std::vector<std::string>& sources, uint32_t rule,
                      const char* condition) {
    auto f = static_cast<size_t>(field);
    for (const auto& source : sources) {
      std::string_view text = source;
      bool under = text.starts_with("*.");
      if (under) text.remove_prefix(2);
      if (text.empty() || text.find_first_of("*?") != std::string_view::npos) {
        fields[f].patterns.push_back(
            Pattern{l7HostPattern(source), kBaseFlags | HS_FLAG_CASELESS, rule, 0, condition, &source});
        continue;
      }
      std::string key(text);
      for (char& c : key) c = asciiLower(c);
      auto& rules = (under ? matcher->tables_[f].under : matcher->tables_[f].exact)[std::move(key)];
      if (rules.empty() || rules.back() != rule) rules.push_back(rule);
      ++matcher->stats_.tablePatterns[f];
      ++matcher->stats_.patternCount[f];
    }
  };
  for (uint32_t index = 0; index < ruleCount; ++index) {
    const auto& rule = policy.rules[index];
    if (!rule.hasL7()) continue;
    setBit(matcher->l7Rules_, index);
    ++matcher->stats_.l7RuleCount;
    addHosts(L7Field::kSni, rule.tls.sni, index, "tls.sni");
    addAll(at(L7Field::kSni), rule.tls.sniRegex, index, "tls.sniRegex", HS_FLAG_CASELESS, sniRegexPattern);
    addAll(at(L7Field::kAlpn), rule.tls.alpn, index, "tls.alpn", 0, l7ExactPattern);
    addAll(at(L7Field::kCertSubject), rule.tls.certificate.subject, index, "tls.certificate.subject",
           HS_FLAG_CASELESS, l7DnPattern);
    addAll(at(L7Field::kCertIssuer), rule.tls.certificate.issuer, index, "tls.certificate.issuer",
           HS_FLAG_CASELESS, l7DnPattern);
    addHosts(L7Field::kSan, rule.tls.certificate.san, index, "tls.certificate.san");
    addHosts(L7Field::kHttpHost, rule.http.host, index, "http.host");
    addAll(at(L7Field::kHttpPath), rule.http.path, index, "http.path", 0, l7PathPattern);
    addAll(at(L7Field::kHttpMethod), rule.http.method, index, "http.method", 0, l7ExactPattern);
    // A window of 0 would mean "inspect nothing": treat it as the model's default rather than a dead rule.
    uint32_t window = rule.payload.window > 0 ? rule.payload.window : policy::PayloadMatch{}.window;
    addAll(at(L7Field::kPayload), rule.payload.regex, index, "payload.regex", HS_FLAG_DOTALL, asIs, window);
    if (!rule.payload.regex.empty() && window > matcher->payloadWindow_) matcher->payloadWindow_ = window;
    if (!rule.tls.sni.empty()) require(L7Field::kSni, index);
    if (!rule.tls.certificate.san.empty()) require(L7Field::kSan, index);
    if (!rule.http.host.empty()) require(L7Field::kHttpHost, index);
  }

  // Each field's distinct patterns in chunks by hash (see the top of the header); each chunk from the cache,
  // or compiled on one of the threads.
  bool useCache = !options.cacheDir.empty();
  struct Chunk {
    L7Field field = L7Field::kSni;
    Members members;
    uint8_t key[32] = {};
    std::string file;
    hs_database_t* database = nullptr;
    std::optional<Error> error;
    uint32_t failedRule = UINT32_MAX;  // the rule a failure names: of several, the lowest is reported
    bool cached = false, rejected = false, written = false;
  };
  std::array<std::vector<Distinct>, kL7FieldCount> distinct;
  std::vector<Chunk> chunks;
  for (size_t f = 0; f < kL7FieldCount; ++f) {
    auto field = static_cast<L7Field>(f);
    auto& patterns = fields[f];
    matcher->stats_.patternCount[f] += patterns.patterns.size();
    if (patterns.patterns.empty()) continue;
    for (const auto& pattern : patterns.patterns) require(field, pattern.id);
    if (auto checked = checkPatterns(policy, patterns); !checked) return checked.error();
    // Identical patterns once, with all their rules; keyed by hash, then compared in full.
    auto& unique = distinct[f];
    unique.reserve(patterns.patterns.size());
    std::unordered_multimap<uint64_t, size_t> byHash;
    for (const auto& pattern : patterns.patterns) {
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
    size_t first = chunks.size();
    chunks.resize(first + count);
    for (const auto& pattern : unique) {
      size_t bucket = count == 1 ? 0 : static_cast<size_t>(pattern.hash >> shift);
      chunks[first + bucket].members.push_back(&pattern);
    }
    for (size_t i = first; i < chunks.size(); ++i) {
      chunks[i].field = field;
      std::sort(chunks[i].members.begin(), chunks[i].members.end(), patternBefore);
    }
    // A hash range that no pattern fell in is no database.
    chunks.erase(std::remove_if(chunks.begin() + static_cast<ptrdiff_t>(first), chunks.end(),
                                [](const Chunk& chunk) { return chunk.members.empty(); }),
                 chunks.end());
  }
  // Loading, compiling and writing all run on the threads: a warm compile reads and checks files in parallel,
  // and a cold one writes each file while other chunks are still compiling.
  unsigned threads =
      options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::clamp<size_t>(threads, 1, std::max<size_t>(chunks.size(), 1)));
  std::atomic<size_t> next{0};
  std::atomic<int64_t> cpuNanos{0};
  auto threadCpuNanos = [] {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  };
  auto work = [&] {
    int64_t cpuStarted = threadCpuNanos();
    for (size_t i = next++; i < chunks.size(); i = next++) {
      Chunk& chunk = chunks[i];
      if (useCache) {
        chunkKey(chunk.members, chunk.key);
        chunk.file = cacheFileName(chunk.key);
        chunk.database =
            loadCached(options.cacheDir + "/" + chunk.file, chunk.key, chunk.members.size(), chunk.rejected);
        chunk.cached = chunk.database != nullptr;
        if (chunk.cached) continue;
      }
      auto compiled = compileChunk(policy, chunk.field, chunk.members, chunk.failedRule);
      if (!compiled) {
        chunk.error = compiled.error();
        continue;
      }
      chunk.database = compiled.value();
      if (useCache) {
        chunk.written = storeCached(options.cacheDir, options.cacheDir + "/" + chunk.file, chunk.key,
                                    chunk.members.size(), chunk.database);
      }
    }
    cpuNanos += threadCpuNanos() - cpuStarted;
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (auto& worker : workers) worker.join();
  matcher->stats_.chunkCpuMillis = static_cast<double>(cpuNanos.load()) / 1e6;
  // Every chunk's database now belongs to the matcher (freed by its destructor), the failed ones aside. Of
  // several failures, the one with the lowest rule is reported, as a compile in rule order would.
  const Chunk* failed = nullptr;
  std::unordered_set<std::string> used;
  for (auto& chunk : chunks) {
    auto f = static_cast<size_t>(chunk.field);
    auto& stats = matcher->stats_;
    stats.cacheRejected += chunk.rejected ? 1 : 0;
    stats.cacheHits += chunk.cached ? 1 : 0;
    stats.cacheWrites += chunk.written ? 1 : 0;
    if (!chunk.cached) stats.compiledPatterns += chunk.members.size();
    if (useCache) used.insert(chunk.file);
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
    stats.loadedFromCache[f] = (matcher->databases_[f].empty() || stats.loadedFromCache[f]) && chunk.cached;
    matcher->databases_[f].push_back(std::move(database));
    ++stats.databaseCount[f];
    size_t bytes = 0;
    if (hs_database_size(chunk.database, &bytes) == HS_SUCCESS) {
      stats.databaseBytes[f] += bytes;
      stats.totalDatabaseBytes += bytes;
    }
  }
  if (failed != nullptr) return *failed->error;
  // Only a compile that added files can have grown the directory past its bound.
  if (useCache && matcher->stats_.cacheWrites > 0) {
    matcher->stats_.cacheEvicted = sweepCache(options.cacheDir, used);
  }
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
