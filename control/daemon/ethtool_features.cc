// Netdev features by name: see ethtool_features.h.
#include "control/daemon/ethtool_features.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace vgate::control {

namespace {

class Socket {
 public:
  Socket() : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

Result<void> ethtool(const Socket& socket, const std::string& interface, void* command) {
  ifreq request{};
  if (interface.size() >= IFNAMSIZ) return makeError(EINVAL, "interface name too long: " + interface);
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  request.ifr_data = static_cast<char*>(command);
  if (ioctl(socket.fd(), SIOCETHTOOL, &request) != 0) {
    int code = errno;
    return makeError(code, "ethtool on " + interface + ": " + std::strerror(code));
  }
  return {};
}

// The kernel's feature names, in bit order.
Result<std::vector<std::string>> featureNames(const Socket& socket, const std::string& interface) {
  // ethtool_sset_info ends in a flexible array: one entry follows for the one set asked for.
  alignas(ethtool_sset_info) uint8_t setsBuffer[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
  auto* sets = reinterpret_cast<ethtool_sset_info*>(setsBuffer);
  sets->cmd = ETHTOOL_GSSET_INFO;
  sets->sset_mask = 1ull << ETH_SS_FEATURES;
  if (auto ok = ethtool(socket, interface, sets); !ok) return ok.error();
  uint32_t count = sets->sset_mask ? sets->data[0] : 0;
  std::vector<uint8_t> buffer(sizeof(ethtool_gstrings) + size_t{count} * ETH_GSTRING_LEN);
  auto* strings = reinterpret_cast<ethtool_gstrings*>(buffer.data());
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = ETH_SS_FEATURES;
  strings->len = count;
  if (auto ok = ethtool(socket, interface, strings); !ok) return ok.error();
  std::vector<std::string> names;
  for (uint32_t i = 0; i < count; ++i) {
    const char* name = reinterpret_cast<const char*>(strings->data + size_t{i} * ETH_GSTRING_LEN);
    names.emplace_back(name, strnlen(name, ETH_GSTRING_LEN));
  }
  return names;
}

Result<int> featureBit(const std::vector<std::string>& names, const std::string& feature) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == feature) return static_cast<int>(i);
  }
  return makeError(ENOENT, "unknown netdev feature '" + feature + "'");
}

}  // namespace

Result<void> setNetdevFeatures(const std::string& interface, const std::vector<std::string>& features,
                               bool on) {
  Socket socket;
  if (socket.fd() < 0) return makeError(errno, "cannot open a socket for ethtool");
  auto names = featureNames(socket, interface);
  if (!names) return names.error();
  uint32_t blocks = static_cast<uint32_t>((names.value().size() + 31) / 32);
  std::vector<uint8_t> buffer(sizeof(ethtool_sfeatures) + blocks * sizeof(ethtool_set_features_block));
  auto* command = reinterpret_cast<ethtool_sfeatures*>(buffer.data());
  command->cmd = ETHTOOL_SFEATURES;
  command->size = blocks;
  for (const std::string& feature : features) {
    auto bit = featureBit(names.value(), feature);
    if (!bit) return bit.error();
    ethtool_set_features_block& block = command->features[bit.value() / 32];
    block.valid |= 1u << (bit.value() % 32);
    if (on) block.requested |= 1u << (bit.value() % 32);
  }
  // The kernel answers a positive "some changes were not applied exactly" status; it is checked by reading
  // back below rather than trusted.
  if (auto ok = ethtool(socket, interface, command); !ok) return ok.error();
  for (const std::string& feature : features) {
    auto state = netdevFeature(interface, feature);
    if (!state) return state.error();
    if (state.value() != on) {
      return makeError(EOPNOTSUPP, interface + ": cannot turn " + feature + (on ? " on" : " off"));
    }
  }
  return {};
}

Result<bool> netdevFeature(const std::string& interface, const std::string& feature) {
  Socket socket;
  if (socket.fd() < 0) return makeError(errno, "cannot open a socket for ethtool");
  auto names = featureNames(socket, interface);
  if (!names) return names.error();
  auto bit = featureBit(names.value(), feature);
  if (!bit) return bit.error();
  uint32_t blocks = static_cast<uint32_t>((names.value().size() + 31) / 32);
  std::vector<uint8_t> buffer(sizeof(ethtool_gfeatures) + blocks * sizeof(ethtool_get_features_block));
  auto* command = reinterpret_cast<ethtool_gfeatures*>(buffer.data());
  command->cmd = ETHTOOL_GFEATURES;
  command->size = blocks;
  if (auto ok = ethtool(socket, interface, command); !ok) return ok.error();
  return (command->features[bit.value() / 32].active >> (bit.value() % 32) & 1u) != 0;
}

}  // namespace vgate::control
