// The applied policy and its history on disk: see policy_store.h.
#include "control/daemon/policy_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace vgate::control {

namespace {

using Json = nlohmann::json;

constexpr int kFormat = 1;

Result<Json> readJson(const std::string& path, bool* missing) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *missing = true;
    return Json();
  }
  *missing = false;
  Json document = Json::parse(in, nullptr, false);
  if (document.is_discarded() || !document.is_object() || document.value("format", 0) != kFormat) {
    return makeError(EINVAL, path + " is not a vgate policy state file; move it away to start afresh");
  }
  return document;
}

}  // namespace

Json PolicyRecord::toJson(bool withText) const {
  Json out{{"version", version},
           {"time", time},
           {"origin", origin == PolicyOrigin::kFile ? "file" : "socket"},
           {"source", source},
           {"fileName", fileName},
           {"name", name},
           {"rules", rules},
           {"sha256", sha256},
           {"result", result}};
  if (withText) out["text"] = text;
  return out;
}

Result<PolicyRecord> PolicyRecord::fromJson(const Json& json) {
  if (!json.is_object()) return makeError(EINVAL, "a policy record is not an object");
  PolicyRecord record;
  try {
    record.version = json.at("version").get<uint32_t>();
    record.time = json.at("time").get<std::string>();
    std::string origin = json.at("origin").get<std::string>();
    if (origin != "file" && origin != "socket") return makeError(EINVAL, "unknown origin '" + origin + "'");
    record.origin = origin == "file" ? PolicyOrigin::kFile : PolicyOrigin::kSocket;
    record.source = json.at("source").get<std::string>();
    record.fileName = json.at("fileName").get<std::string>();
    record.name = json.at("name").get<std::string>();
    record.rules = json.at("rules").get<uint32_t>();
    record.sha256 = json.at("sha256").get<std::string>();
    record.result = json.at("result").get<std::string>();
    if (json.contains("text")) record.text = json.at("text").get<std::string>();
  } catch (const Json::exception& error) {
    return makeError(EINVAL, std::string("bad policy record: ") + error.what());
  }
  return record;
}

Result<std::optional<PolicyRecord>> PolicyStore::loadApplied() const {
  std::string path = dir_ + "/applied.json";
  bool missing = false;
  auto document = readJson(path, &missing);
  if (!document) return document.error();
  if (missing) return std::optional<PolicyRecord>();
  auto record = PolicyRecord::fromJson(document.value().value("policy", Json()));
  if (!record) return makeError(EINVAL, path + ": " + record.error().message);
  if (record.value().version == 0 || sha256Hex(record.value().text) != record.value().sha256) {
    return makeError(EINVAL, path + " does not hold a whole applied policy; move it away to start afresh");
  }
  return std::optional<PolicyRecord>(std::move(record).value());
}

Result<void> PolicyStore::saveApplied(const PolicyRecord& applied) const {
  Json document{{"format", kFormat}, {"policy", applied.toJson(true)}};
  return writeWhole("applied.json", document.dump(1, ' ', false, Json::error_handler_t::replace) + "\n");
}

Result<std::vector<PolicyRecord>> PolicyStore::loadHistory() const {
  std::string path = dir_ + "/history.json";
  bool missing = false;
  auto document = readJson(path, &missing);
  if (!document) return document.error();
  std::vector<PolicyRecord> history;
  if (missing) return history;
  const Json& entries = document.value().value("history", Json::array());
  if (!entries.is_array()) return makeError(EINVAL, path + ": \"history\" is not a list");
  for (const Json& entry : entries) {
    auto record = PolicyRecord::fromJson(entry);
    if (!record) return makeError(EINVAL, path + ": " + record.error().message);
    history.push_back(std::move(record).value());
  }
  return history;
}

Result<void> PolicyStore::saveHistory(const std::vector<PolicyRecord>& history) const {
  Json entries = Json::array();
  size_t first = history.size() > kHistoryKeep ? history.size() - kHistoryKeep : 0;
  for (size_t i = first; i < history.size(); ++i) entries.push_back(history[i].toJson(false));
  Json document{{"format", kFormat}, {"history", std::move(entries)}};
  return writeWhole("history.json", document.dump(1, ' ', false, Json::error_handler_t::replace) + "\n");
}

Result<void> PolicyStore::writeWhole(const std::string& name, const std::string& text) const {
  std::error_code error;
  std::filesystem::create_directories(dir_, error);
  if (error) return makeError(error.value(), "cannot create " + dir_ + ": " + error.message());
  std::string path = dir_ + "/" + name;
  std::string temporary = path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return makeError(errno, "cannot write " + temporary + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t wrote = ::write(fd, text.data() + done, text.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      int code = wrote < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(temporary.c_str());
      return makeError(code, "cannot write " + temporary + ": " + std::strerror(code));
    }
    done += static_cast<size_t>(wrote);
  }
  // On disk before the rename, so that a crash never leaves an empty file under the real name.
  bool synced = ::fsync(fd) == 0;
  int syncErrno = errno;
  ::close(fd);
  if (!synced) {
    ::unlink(temporary.c_str());
    return makeError(syncErrno, "cannot sync " + temporary + ": " + std::strerror(syncErrno));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    int code = errno;
    ::unlink(temporary.c_str());
    return makeError(code, "cannot replace " + path + ": " + std::strerror(code));
  }
  return {};
}

uint32_t nextPolicyVersion(const std::optional<PolicyRecord>& applied,
                           const std::vector<PolicyRecord>& history) {
  uint32_t highest = applied ? applied->version : 0;
  for (const auto& entry : history) highest = std::max(highest, entry.version);
  return highest + 1;
}

std::optional<PolicyRecord> lastAppliedFromFile(const std::vector<PolicyRecord>& history,
                                                const std::string& path) {
  for (auto entry = history.rbegin(); entry != history.rend(); ++entry) {
    if (entry->version != 0 && entry->origin == PolicyOrigin::kFile && entry->fileName == path) return *entry;
  }
  return std::nullopt;
}

std::string sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string utcNow() {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

}  // namespace vgate::control
