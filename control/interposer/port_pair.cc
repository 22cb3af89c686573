// JSON form of PortPair; see port_pair.h.
#include "control/interposer/port_pair.h"

#include <cerrno>

#include "control/interposer/hex_text.h"

namespace vgate::control {

nlohmann::json PortPair::toJson() const {
  nlohmann::json bridgePort = nlohmann::json::array();
  for (const auto& attribute : original.bridgePort) {
    bridgePort.push_back({{"type", attribute.type}, {"value", toHex(attribute.value, "")}});
  }
  return {
      {"id", id},
      {"name", name},
      {"netns_path", netnsPath},
      {"pid", pid},
      {"container_ifname", containerIfname},
      {"container_ifindex", containerIfindex},
      {"host_ifname", hostIfname},
      {"bridge_name", bridgeName},
      {"bridge_ifindex", bridgeIfindex},
      {"inner_name", innerName},
      {"inner_ifindex", innerIfindex},
      {"outer_name", outerName},
      {"outer_ifindex", outerIfindex},
      {"host_ifindex", hostIfindex},
      {"original",
       {{"name", original.name},
        {"ifindex", original.ifindex},
        {"mac", toHex(original.mac, ":")},
        {"mtu", original.mtu},
        {"txqlen", original.txqlen},
        {"num_tx_queues", original.numTxQueues},
        {"num_rx_queues", original.numRxQueues},
        {"up", original.up},
        {"alias", original.alias},
        {"bridge_name", original.bridgeName},
        {"bridge_ifindex", original.bridgeIfindex},
        {"bridge_port", bridgePort},
        {"l3", original.l3.toJson()}}},
  };
}

Result<PortPair> PortPair::fromJson(const nlohmann::json& json) {
  // Edge of control/: nlohmann reports type errors by exception, turned into an Error here.
  try {
    PortPair pair;
    pair.id = json.at("id").get<uint16_t>();
    pair.name = json.at("name").get<std::string>();
    pair.netnsPath = json.at("netns_path").get<std::string>();
    pair.pid = json.at("pid").get<int>();
    pair.containerIfname = json.at("container_ifname").get<std::string>();
    pair.containerIfindex = json.at("container_ifindex").get<int>();
    pair.hostIfname = json.at("host_ifname").get<std::string>();
    pair.bridgeName = json.at("bridge_name").get<std::string>();
    pair.bridgeIfindex = json.at("bridge_ifindex").get<int>();
    pair.innerName = json.at("inner_name").get<std::string>();
    pair.innerIfindex = json.at("inner_ifindex").get<int>();
    pair.outerName = json.at("outer_name").get<std::string>();
    pair.outerIfindex = json.at("outer_ifindex").get<int>();
    pair.hostIfindex = json.at("host_ifindex").get<int>();
    const auto& original = json.at("original");
    pair.original.name = original.at("name").get<std::string>();
    pair.original.ifindex = original.at("ifindex").get<int>();
    pair.original.mac = fromHex(original.at("mac").get<std::string>());
    pair.original.mtu = original.at("mtu").get<uint32_t>();
    pair.original.txqlen = original.at("txqlen").get<uint32_t>();
    pair.original.numTxQueues = original.at("num_tx_queues").get<uint32_t>();
    pair.original.numRxQueues = original.at("num_rx_queues").get<uint32_t>();
    pair.original.up = original.at("up").get<bool>();
    pair.original.alias = original.at("alias").get<std::string>();
    pair.original.bridgeName = original.at("bridge_name").get<std::string>();
    pair.original.bridgeIfindex = original.at("bridge_ifindex").get<int>();
    for (const auto& attribute : original.at("bridge_port")) {
      pair.original.bridgePort.push_back(BridgePortAttribute{
          attribute.at("type").get<uint16_t>(), fromHex(attribute.at("value").get<std::string>())});
    }
    // State files written before vgate carried layer-3 state have none: bridged ports only.
    if (original.contains("l3")) {
      auto l3 = HostEndL3::fromJson(original.at("l3"));
      if (!l3) return l3.error();
      pair.original.l3 = std::move(l3).value();
    }
    if (pair.id < 1 || pair.id > 4094) return makeError(EINVAL, "port pair id out of range 1..4094");
    return pair;
  } catch (const std::exception& e) {
    return makeError(EINVAL, std::string("invalid port pair state: ") + e.what());
  }
}

}  // namespace vgate::control
