// Cache files of serialized Hyperscan databases: keys, names, checked loads, atomic stores and the LRU sweep.
#include "dataplane/l7match/l7_database_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

namespace vgate::dataplane {

namespace {

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
  uint8_t key[32];         // the chunk's key (see L7DatabaseCache::key); the file name is its first half
  uint8_t dataDigest[32];  // SHA-256 of the serialized database
};

void sha256(const void* data, size_t length, uint8_t* out) {
  unsigned int outLength = 0;
  EVP_Digest(data, length, out, &outLength, EVP_sha256(), nullptr);
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

}  // namespace

L7CacheKey L7DatabaseCache::key(const std::vector<const L7Expression*>& patterns) {
  std::string all = cacheContext();
  for (const L7Expression* pattern : patterns) {
    all += pattern->expression;
    all.push_back('\0');
    all += std::to_string(pattern->flags) + "/" + std::to_string(pattern->maxOffset);
    all.push_back('\0');
  }
  L7CacheKey out;
  sha256(all.data(), all.size(), out.data());
  return out;
}

std::string L7DatabaseCache::fileName(const L7CacheKey& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  for (size_t i = 0; i < 16; ++i) {
    name.push_back(kHex[key[i] >> 4]);
    name.push_back(kHex[key[i] & 15]);
  }
  return name + std::string(kCacheSuffix);
}

hs_database_t* L7DatabaseCache::load(const std::string& file, const L7CacheKey& key, size_t patternCount,
                                     bool& rejected) const {
  std::string path = directory_ + "/" + file;
  rejected = false;
  std::FILE* stream = std::fopen(path.c_str(), "rb");
  if (stream == nullptr) return nullptr;
  rejected = true;
  CacheHeader header;
  std::string data;
  struct stat status {};
  bool readOk =
      ::fstat(::fileno(stream), &status) == 0 && std::fread(&header, sizeof(header), 1, stream) == 1;
  // The file must be exactly the header and the length it promises: no longer (not what was written), and
  // no shorter, which also keeps a corrupt length from sizing a huge buffer.
  if (readOk && std::memcmp(header.magic, kCacheMagic, sizeof(kCacheMagic)) == 0 &&
      header.format == kCacheFormat && header.patternCount == patternCount &&
      std::memcmp(header.key, key.data(), key.size()) == 0 && header.length > 0 &&
      static_cast<uint64_t>(status.st_size) == sizeof(header) + header.length) {
    data.resize(header.length);
    readOk = std::fread(data.data(), 1, data.size(), stream) == data.size();
  } else {
    readOk = false;
  }
  std::fclose(stream);
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

bool L7DatabaseCache::store(const std::string& file, const L7CacheKey& key, size_t patternCount,
                            const hs_database_t* database) const {
  static std::atomic<uint64_t> temporaries{0};
  std::string path = directory_ + "/" + file;
  std::error_code error;
  std::filesystem::create_directories(directory_, error);
  char* bytes = nullptr;
  size_t length = 0;
  if (hs_serialize_database(database, &bytes, &length) != HS_SUCCESS) return false;
  CacheHeader header{};
  std::memcpy(header.magic, kCacheMagic, sizeof(kCacheMagic));
  header.format = kCacheFormat;
  header.patternCount = static_cast<uint32_t>(patternCount);
  header.length = length;
  std::memcpy(header.key, key.data(), key.size());
  sha256(bytes, length, header.dataDigest);
  // Written aside under a name no other writer uses (process and counter) and renamed, so that a concurrent
  // compile never reads half a file and two writers of one chunk never interleave.
  std::string temporary =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(temporaries.fetch_add(1));
  bool ok = false;
  if (std::FILE* stream = std::fopen(temporary.c_str(), "wb")) {
    ok = std::fwrite(&header, sizeof(header), 1, stream) == 1 &&
         std::fwrite(bytes, 1, length, stream) == length;
    ok = std::fclose(stream) == 0 && ok;
  }
  std::free(bytes);
  if (ok) ok = std::rename(temporary.c_str(), path.c_str()) == 0;
  if (!ok) std::remove(temporary.c_str());
  return ok;
}

size_t L7DatabaseCache::sweep(const std::unordered_set<std::string>& used, size_t keepOther) const {
  struct Entry {
    std::filesystem::file_time_type time;
    std::filesystem::path path;
  };
  std::vector<Entry> others;
  size_t removed = 0;
  std::error_code error;
  auto now = std::filesystem::file_time_type::clock::now();
  for (std::filesystem::directory_iterator it(directory_, error), end; !error && it != end;
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
  size_t keep = std::max(keepOther, used.size());
  if (others.size() <= keep) return removed;
  std::sort(others.begin(), others.end(), [](const Entry& a, const Entry& b) { return a.time > b.time; });
  for (size_t i = keep; i < others.size(); ++i) {
    if (std::filesystem::remove(others[i].path, error)) ++removed;
    error.clear();
  }
  return removed;
}

}  // namespace vgate::dataplane
