// The control socket's verbs as vgated serves them: each request's arguments checked into a typed request
// (a bad one is refused with EINVAL and a message that names the argument), and each reply's JSON. The
// daemon (daemon.cc) carries the requests out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/interposer/interposer.h"
#include "control/interposer/port_pair.h"
#include "dataplane/fastpath/fast_path.h"
#include "dataplane/live/live_dataplane.h"
#include "vgate/counters.h"
#include "vgate/result.h"

namespace vgate::control {

// attach {netns | pid, ifname?, name?}
Result<AttachRequest> parseAttachRequest(const nlohmann::json& args);

// detach {netns | pid | all}: the namespace the ports to detach live in, or every port.
struct DetachRequest {
  bool all = false;
  std::string netnsPath;
  int pid = 0;
};
Result<DetachRequest> parseDetachRequest(const nlohmann::json& args);

// A port as attach's reply and status list it.
nlohmann::json portSummary(const PortPair& pair);

// A counter list as a JSON object keyed by the counters' names.
template <typename Counters>
nlohmann::json countersJson(const Counters& counters) {
  nlohmann::json out = nlohmann::json::object();
  counters.forEach([&](const CounterInfo& info, uint64_t value) { out[std::string(info.name)] = value; });
  return out;
}

// One worker in status: its identity and every counter it has (worker, lane, parse status, inspection).
nlohmann::json workerStatus(const dataplane::LiveWorkerStatus& worker);

std::string failModeName(uint32_t mode);

}  // namespace vgate::control
