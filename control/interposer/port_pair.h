// The state of one interposed container port: what attach built and what detach must restore. Serialized to
// JSON so that vgated can persist it in its state dir and adopt the pair after a restart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/interposer/host_end_l3.h"
#include "control/interposer/netlink_socket.h"
#include "vgate/result.h"

namespace vgate::control {

// The container's original host-side veth end, as it was before attach.
struct HostEndSettings {
  std::string name;
  int ifindex = 0;
  std::vector<uint8_t> mac;
  uint32_t mtu = 0;
  uint32_t txqlen = 0;
  uint32_t numTxQueues = 0;
  uint32_t numRxQueues = 0;
  bool up = false;
  std::string alias;
  std::string bridgeName;  // empty: a routed host end, on no bridge
  int bridgeIfindex = 0;
  // Every IFLA_BRPORT_* attribute the kernel reported, raw; restore replays the writable ones.
  std::vector<BridgePortAttribute> bridgePort;
  HostEndL3 l3;  // addresses, permanent neighbours, routes and sysctls (all a routed host end needs)
  bool routed() const { return bridgeName.empty(); }
  bool operator==(const HostEndSettings&) const = default;
};

struct PortPair {
  uint16_t id = 0;        // 1..4094: the port tag
  std::string name;       // given by the user (container name), informational
  std::string netnsPath;  // as given, or /proc/<pid>/ns/net
  int pid = 0;            // 0 if attached by path
  std::string containerIfname;
  int containerIfindex = 0;
  std::string hostIfname;  // the host end's name, kept by the new host end
  std::string bridgeName;  // empty: routed
  int bridgeIfindex = 0;
  std::string innerName;  // vgi-<id>: the original host end, now in vgate's netns, peer of the container
  int innerIfindex = 0;
  std::string outerName;  // vge-<id>: peer of the new host end, in vgate's netns
  int outerIfindex = 0;
  int hostIfindex = 0;  // the new host end, in the host netns
  HostEndSettings original;
  bool operator==(const PortPair&) const = default;

  nlohmann::json toJson() const;
  static Result<PortPair> fromJson(const nlohmann::json& json);
};

}  // namespace vgate::control
