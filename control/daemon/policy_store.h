// The policy in force and the record of every apply, kept in <state-dir>/policy/ so that a restarted vgated
// judges with the policy it judged with before, under the same version number. applied.json holds the
// policy's text with its version, time and source; history.json the last kHistoryKeep attempts, failed ones
// too. Both are written whole and renamed into place: a crash leaves the old file or the new one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgate/result.h"

namespace vgate::control {

// Where a policy came from: `vgatectl policy apply`, or the --policy file (read at start or on SIGHUP).
enum class PolicyOrigin : uint8_t { kSocket, kFile };

struct PolicyRecord {
  uint32_t version = 0;  // 0 in history: the attempt failed and made no version
  std::string time;      // UTC, "2026-11-24T10:00:00Z"
  PolicyOrigin origin = PolicyOrigin::kSocket;
  std::string source;    // for people: "vgatectl (uid 0, pid 42)", "--policy /etc/p.yaml at start"
  std::string fileName;  // the file name its diagnostics carry (the --policy path for file origins)
  std::string name;      // metadata.name
  uint32_t rules = 0;
  std::string sha256;  // of the text
  std::string result;  // history: "applied", "invalid: 2 error(s)", "compile failed: ..."
  std::string text;    // applied.json only

  nlohmann::json toJson(bool withText) const;
  static Result<PolicyRecord> fromJson(const nlohmann::json& json);
};

inline constexpr size_t kHistoryKeep = 256;

class PolicyStore {
 public:
  explicit PolicyStore(const std::string& stateDir) : dir_(stateDir + "/policy") {}

  // The applied policy, or none when nothing was ever applied. A file that is not vgate's is an error that
  // names the way out.
  Result<std::optional<PolicyRecord>> loadApplied() const;
  Result<void> saveApplied(const PolicyRecord& applied) const;
  // Oldest first; none when there is no file.
  Result<std::vector<PolicyRecord>> loadHistory() const;
  // Writes `history`, keeping its last kHistoryKeep entries.
  Result<void> saveHistory(const std::vector<PolicyRecord>& history) const;

  const std::string& dir() const { return dir_; }

 private:
  Result<void> writeWhole(const std::string& name, const std::string& text) const;
  std::string dir_;
};

// The number the next policy gets: above every version the store has seen, so that versions never repeat
// across restarts (flow records carry them).
uint32_t nextPolicyVersion(const std::optional<PolicyRecord>& applied,
                           const std::vector<PolicyRecord>& history);

// The last successful apply from the --policy file at `path`, if any: at start, the file wins over the
// applied policy only when its text changed since then.
std::optional<PolicyRecord> lastAppliedFromFile(const std::vector<PolicyRecord>& history,
                                                const std::string& path);

std::string sha256Hex(const std::string& text);
// Now, as PolicyRecord::time has it.
std::string utcNow();

}  // namespace vgate::control
