// ports.json: see port_store.h.
#include "control/daemon/port_store.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

namespace vgate::control {

Result<std::vector<PortPair>> PortStore::load() const {
  std::vector<PortPair> pairs;
  std::ifstream in(path_);
  if (!in) return pairs;
  nlohmann::json document = nlohmann::json::parse(in, nullptr, false);
  if (document.is_discarded() || !document.contains("ports") || !document["ports"].is_array()) {
    return makeError(EINVAL, path_ + " is not a vgate state file; move it away to start afresh");
  }
  for (const nlohmann::json& entry : document["ports"]) {
    auto pair = PortPair::fromJson(entry);
    if (!pair) return makeError(EINVAL, path_ + ": " + pair.error().message);
    pairs.push_back(std::move(pair).value());
  }
  return pairs;
}

Result<void> PortStore::save(const std::map<uint16_t, PortPair>& ports) const {
  nlohmann::json document{{"version", 1}, {"ports", nlohmann::json::array()}};
  for (const auto& [id, pair] : ports) document["ports"].push_back(pair.toJson());
  std::string temporary = path_ + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << document.dump(2) << "\n";
    out.flush();
    if (!out) return makeError(EIO, "cannot write " + temporary);
  }
  if (std::rename(temporary.c_str(), path_.c_str()) != 0) {
    return makeError(errno, "cannot replace " + path_ + ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace vgate::control
