// The port pairs vgated has rewired, kept in <state-dir>/ports.json so that the next vgated adopts them (or
// cleans up those whose container died meanwhile). Written whole and renamed into place: a crash leaves the
// old file or the new one, never half of one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control/interposer/port_pair.h"
#include "vgate/result.h"

namespace vgate::control {

class PortStore {
 public:
  explicit PortStore(const std::string& stateDir) : path_(stateDir + "/ports.json") {}

  // The pairs the file holds; none when there is no file. A file that is not vgate's is an error that names
  // the way out.
  Result<std::vector<PortPair>> load() const;
  Result<void> save(const std::map<uint16_t, PortPair>& ports) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace vgate::control
