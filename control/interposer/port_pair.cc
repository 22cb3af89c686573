// JSON form of PortPair; see port_pair.h.
#include "control/interposer/port_pair.h"

#include <cerrno>
#include <cstdio>

namespace vgate::control {

namespace {

std::string toHex(const std::vector<uint8_t>& bytes, const char* separator) {
  std::string text;
  for (size_t i = 0; i < bytes.size(); ++i) {
    char digits[3];
    std::snprintf(digits, sizeof(digits), "%02x", bytes[i]);
    if (i > 0) text += separator;
    text += digits;
  }
  return text;
}

// Accepts "0a1b" and "0a:1b".
std::vector<uint8_t> fromHex(const std::string& text) {
  std::vector<uint8_t> bytes;
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    digits += c;
    if (digits.size() == 2) {
      bytes.push_back(static_cast<uint8_t>(std::stoul(digits, nullptr, 16)));
      digits.clear();
    }
  }
  if (!digits.empty()) throw std::invalid_argument("odd number of hex digits");
  return bytes;
}

}  // namespace

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
        {"bridge_port", bridgePort}}},
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
    if (pair.id < 1 || pair.id > 4094) return makeError(EINVAL, "port pair id out of range 1..4094");
    return pair;
  } catch (const std::exception& e) {
    return makeError(EINVAL, std::string("invalid port pair state: ") + e.what());
  }
}

}  // namespace vgate::control
