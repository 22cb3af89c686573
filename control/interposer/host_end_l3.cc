// Capture and replay of a host end's layer-3 state; see host_end_l3.h.
#include "control/interposer/host_end_l3.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/interposer/hex_text.h"

namespace vgate::control {

namespace {

// IFA_PROTO values (linux/if_addr.h of 6.3+; the build host's headers may predate them): who made an
// address. Anything but "unspecified" is the kernel's own (loopback, router advertisement, link-local).
constexpr uint8_t kIfaProtoUnspec = 0;

Error withContext(const Error& error, const std::string& context) {
  return makeError(error.code, context + ": " + error.message);
}

template <typename Header>
const Header* headerOf(const NetlinkObject& object) {
  return reinterpret_cast<const Header*>(object.body.data());
}

// Walks the attributes after the fixed header of a captured object.
template <typename Header, typename F>
void forEachObjectAttribute(const NetlinkObject& object, F&& visit) {
  const char* body = reinterpret_cast<const char*>(object.body.data());
  forEachAttributeIn(body + NLMSG_ALIGN(sizeof(Header)), body + object.body.size(), visit);
}

NetlinkObject objectOf(const nlmsghdr* message) {
  auto* payload = static_cast<const uint8_t*>(mnl_nlmsg_get_payload(message));
  return NetlinkObject{message->nlmsg_type, {payload, payload + mnl_nlmsg_get_payload_len(message)}};
}

template <typename Header>
Result<void> dump(NetlinkSocket& socket, uint16_t type, uint8_t family,
                  const NetlinkSocket::Handler& onMessage) {
  NetlinkMessage request(type, NLM_F_DUMP);
  // Every dump header (ifaddrmsg, rtmsg, ndmsg) starts with its family byte.
  *reinterpret_cast<uint8_t*>(request.putHeader<Header>()) = family;
  return socket.transact(request, onMessage);
}

std::string addressText(int family, const nlattr* attribute) {
  char text[INET6_ADDRSTRLEN] = "?";
  size_t length = mnl_attr_get_payload_len(attribute);
  if ((family == AF_INET && length == 4) || (family == AF_INET6 && length == 16)) {
    inet_ntop(family, mnl_attr_get_payload(attribute), text, sizeof(text));
  }
  return text;
}

// The EUI-64 link-local address the kernel derives from a 6-byte MAC.
bool isEui64LinkLocal(const uint8_t* address, const std::vector<uint8_t>& mac) {
  if (mac.size() != 6) return false;
  static constexpr uint8_t kPrefix[8] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0};
  const uint8_t interfaceId[8] = {
      static_cast<uint8_t>(mac[0] ^ 0x02), mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]};
  return std::memcmp(address, kPrefix, 8) == 0 && std::memcmp(address + 8, interfaceId, 8) == 0;
}

// Addresses the kernel makes by itself on this link: it makes them again on the new one.
bool isKernelMadeAddress(const NetlinkObject& object, const std::vector<uint8_t>& mac) {
  const auto* header = headerOf<ifaddrmsg>(object);
  if (header->ifa_family != AF_INET6) return false;
  uint32_t flags = header->ifa_flags;
  int proto = -1;
  const uint8_t* address = nullptr;
  forEachObjectAttribute<ifaddrmsg>(object, [&](const nlattr* attribute) {
    switch (mnl_attr_get_type(attribute)) {
      case IFA_FLAGS:
        flags = mnl_attr_get_u32(attribute);
        break;
      case IFA_PROTO:
        proto = mnl_attr_get_u8(attribute);
        break;
      case IFA_ADDRESS:
        if (mnl_attr_get_payload_len(attribute) == 16)
          address = static_cast<const uint8_t*>(mnl_attr_get_payload(attribute));
        break;
      default:
        break;
    }
  });
  if (flags & IFA_F_TEMPORARY) return true;  // privacy addresses, regenerated from their prefix
  if (proto >= 0) return proto != kIfaProtoUnspec;
  // Kernels before IFA_PROTO: the EUI-64 link-local is the one the kernel makes (same MAC, same address).
  return address != nullptr && isEui64LinkLocal(address, mac);
}

Result<std::vector<NetlinkObject>> captureAddresses(NetlinkSocket& socket, int ifindex,
                                                    const std::vector<uint8_t>& mac) {
  std::vector<NetlinkObject> addresses;
  auto dumped = dump<ifaddrmsg>(socket, RTM_GETADDR, AF_UNSPEC, [&](const nlmsghdr* message) {
    auto* header = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(message));
    if (message->nlmsg_type != RTM_NEWADDR || static_cast<int>(header->ifa_index) != ifindex) return;
    NetlinkObject object = objectOf(message);
    if (!isKernelMadeAddress(object, mac)) addresses.push_back(std::move(object));
  });
  if (!dumped) return withContext(dumped.error(), "address dump");
  return addresses;
}

Result<std::vector<NetlinkObject>> captureNeighbours(NetlinkSocket& socket, int ifindex) {
  std::vector<NetlinkObject> neighbours;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    auto dumped = dump<ndmsg>(socket, RTM_GETNEIGH, family, [&](const nlmsghdr* message) {
      auto* header = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(message));
      if (message->nlmsg_type != RTM_NEWNEIGH || header->ndm_ifindex != ifindex) return;
      if (!(header->ndm_state & NUD_PERMANENT) || (header->ndm_flags & NTF_PROXY)) return;
      neighbours.push_back(objectOf(message));
    });
    if (!dumped) return withContext(dumped.error(), "neighbour dump");
  }
  return neighbours;
}

Result<std::vector<NetlinkObject>> captureRoutes(NetlinkSocket& socket, int ifindex,
                                                 const std::string& name) {
  std::vector<NetlinkObject> routes;
  Result<void> unsupported;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    auto dumped = dump<rtmsg>(socket, RTM_GETROUTE, family, [&](const nlmsghdr* message) {
      auto* header = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(message));
      if (message->nlmsg_type != RTM_NEWROUTE || (header->rtm_flags & RTM_F_CLONED)) return;
      int oif = 0;
      bool nexthopObject = false;
      bool multipathThrough = false;
      forEachAttribute(message, sizeof(rtmsg), [&](const nlattr* attribute) {
        switch (mnl_attr_get_type(attribute)) {
          case RTA_OIF:
            oif = static_cast<int>(mnl_attr_get_u32(attribute));
            break;
          case RTA_NH_ID:
            nexthopObject = true;
            break;
          case RTA_MULTIPATH: {
            auto* hop = static_cast<const rtnexthop*>(mnl_attr_get_payload(attribute));
            size_t left = mnl_attr_get_payload_len(attribute);
            while (left >= sizeof(rtnexthop) && hop->rtnh_len >= sizeof(rtnexthop) && hop->rtnh_len <= left) {
              if (hop->rtnh_ifindex == ifindex) multipathThrough = true;
              auto step = static_cast<size_t>(RTNH_ALIGN(hop->rtnh_len));
              left -= step <= left ? step : left;
              hop = RTNH_NEXT(hop);
            }
            break;
          }
          default:
            break;
        }
      });
      if (oif != ifindex && !multipathThrough) return;
      // The kernel's own routes come back with the addresses (prefix and local routes) or the next router
      // advertisement.
      if (header->rtm_protocol == RTPROT_KERNEL || header->rtm_protocol == RTPROT_RA) return;
      NetlinkObject object = objectOf(message);
      if ((multipathThrough || nexthopObject) && unsupported) {
        unsupported =
            makeError(ENOTSUP, object.describe() + " goes through " + name +
                                   (multipathThrough ? " as one path of several" : " by a nexthop object") +
                                   ", which vgate cannot carry over");
      }
      routes.push_back(std::move(object));
    });
    if (!dumped) return withContext(dumped.error(), "route dump");
  }
  if (!unsupported) return unsupported.error();
  return routes;
}

Result<std::string> readSysctl(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return makeError(errno, path + ": " + std::strerror(errno));
  std::string value;
  char buffer[256];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) value.append(buffer, static_cast<size_t>(n));
  int readErrno = errno;
  ::close(fd);
  if (n < 0) return makeError(readErrno, path + ": " + std::strerror(readErrno));
  while (!value.empty() && value.back() == '\n') value.pop_back();
  return value;
}

Result<void> writeSysctl(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return makeError(errno, "write " + path + ": " + std::strerror(errno));
  std::string line = value + "\n";
  ssize_t written = ::write(fd, line.data(), line.size());
  int writeErrno = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) {
    return makeError(written < 0 ? writeErrno : EIO,
                     "write " + path + " = " + value + ": " + std::strerror(written < 0 ? writeErrno : EIO));
  }
  return {};
}

// "ipv4/conf/proxy_arp" of link `name` -> /proc/sys/net/ipv4/conf/<name>/proxy_arp.
std::string sysctlPath(const std::string& key, const std::string& name) {
  size_t last = key.rfind('/');
  return "/proc/sys/net/" + key.substr(0, last) + "/" + name + key.substr(last);
}

constexpr const char* kSysctlDirectories[] = {"ipv4/conf", "ipv4/neigh", "ipv6/conf", "ipv6/neigh"};

std::map<std::string, std::string> captureSysctls(const std::string& name) {
  std::map<std::string, std::string> sysctls;
  for (const char* directory : kSysctlDirectories) {
    std::string path = std::string("/proc/sys/net/") + directory + "/" + name;
    DIR* listing = opendir(path.c_str());
    if (listing == nullptr) continue;  // IPv6 disabled on the node: nothing to carry
    while (dirent* entry = readdir(listing)) {
      std::string file = path + "/" + entry->d_name;
      struct stat status {};
      if (entry->d_name[0] == '.' || stat(file.c_str(), &status) != 0 || !S_ISREG(status.st_mode)) continue;
      if (!(status.st_mode & S_IWUSR)) continue;  // read-only (mc_forwarding): not a setting
      // Unreadable ones (stable_secret while unset) have no value to carry.
      if (auto value = readSysctl(file))
        sysctls[std::string(directory) + "/" + entry->d_name] = value.value();
    }
    closedir(listing);
  }
  return sysctls;
}

// Attributes a replay may carry; the rest are the kernel's state (cache info, statistics) or are rewritten.
bool isReplayedAttribute(uint16_t objectType, uint16_t attributeType) {
  switch (objectType) {
    case RTM_NEWADDR:
      return attributeType == IFA_ADDRESS || attributeType == IFA_LOCAL || attributeType == IFA_LABEL ||
             attributeType == IFA_BROADCAST || attributeType == IFA_ANYCAST || attributeType == IFA_FLAGS ||
             attributeType == IFA_CACHEINFO || attributeType == IFA_RT_PRIORITY;
    case RTM_NEWNEIGH:
      return attributeType == NDA_DST || attributeType == NDA_LLADDR || attributeType == NDA_PROTOCOL;
    case RTM_NEWROUTE:
      return attributeType == RTA_DST || attributeType == RTA_SRC || attributeType == RTA_GATEWAY ||
             attributeType == RTA_PRIORITY || attributeType == RTA_PREFSRC || attributeType == RTA_METRICS ||
             attributeType == RTA_FLOW || attributeType == RTA_TABLE || attributeType == RTA_PREF ||
             attributeType == RTA_ENCAP_TYPE || attributeType == RTA_ENCAP || attributeType == RTA_VIA ||
             attributeType == RTA_EXPIRES;
    default:
      return false;
  }
}

template <typename Header>
Result<void> replay(NetlinkSocket& socket, const NetlinkObject& object, uint16_t flags,
                    void (*adjust)(Header&, int), int ifindex, bool withOif) {
  if (object.body.size() < sizeof(Header)) return makeError(EINVAL, "truncated " + object.describe());
  NetlinkMessage request(object.type, flags);
  Header* header = request.putHeader<Header>();
  std::memcpy(header, object.body.data(), sizeof(Header));
  adjust(*header, ifindex);
  forEachObjectAttribute<Header>(object, [&](const nlattr* attribute) {
    uint16_t type = mnl_attr_get_type(attribute);
    if (!isReplayedAttribute(object.type, type)) return;
    // The full type keeps NLA_F_NESTED on nested attributes (metrics, encapsulation).
    request.putBytes(attribute->nla_type, mnl_attr_get_payload(attribute),
                     mnl_attr_get_payload_len(attribute));
  });
  if (withOif) request.putU32(RTA_OIF, static_cast<uint32_t>(ifindex));
  auto added = socket.transact(request);
  if (!added && added.error().code != EEXIST) return withContext(added.error(), "add " + object.describe());
  return {};
}

bool hasGateway(const NetlinkObject& route) {
  bool gateway = false;
  forEachObjectAttribute<rtmsg>(route, [&](const nlattr* attribute) {
    uint16_t type = mnl_attr_get_type(attribute);
    if (type == RTA_GATEWAY || type == RTA_VIA) gateway = true;
  });
  return gateway;
}

nlohmann::json objectsToJson(const std::vector<NetlinkObject>& objects) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& object : objects) {
    array.push_back({{"type", object.type}, {"body", toHex(object.body)}, {"text", object.describe()}});
  }
  return array;
}

std::vector<NetlinkObject> objectsFromJson(const nlohmann::json& array, uint16_t type, size_t headerSize) {
  std::vector<NetlinkObject> objects;
  for (const auto& entry : array) {
    NetlinkObject object{entry.at("type").get<uint16_t>(), fromHex(entry.at("body").get<std::string>())};
    if (object.type != type || object.body.size() < headerSize) {
      throw std::invalid_argument("object of type " + std::to_string(object.type) + " is malformed");
    }
    objects.push_back(std::move(object));
  }
  return objects;
}

}  // namespace

std::string NetlinkObject::describe() const {
  std::string text;
  switch (type) {
    case RTM_NEWADDR: {
      if (body.size() < sizeof(ifaddrmsg)) return "address (truncated)";
      const auto* header = headerOf<ifaddrmsg>(*this);
      text = "address";
      forEachObjectAttribute<ifaddrmsg>(*this, [&](const nlattr* attribute) {
        uint16_t kind = mnl_attr_get_type(attribute);
        if (kind == IFA_LOCAL || (kind == IFA_ADDRESS && header->ifa_family == AF_INET6)) {
          text += " " + addressText(header->ifa_family, attribute);
        }
      });
      return text + "/" + std::to_string(header->ifa_prefixlen);
    }
    case RTM_NEWNEIGH: {
      if (body.size() < sizeof(ndmsg)) return "neighbour (truncated)";
      const auto* header = headerOf<ndmsg>(*this);
      text = "neighbour";
      forEachObjectAttribute<ndmsg>(*this, [&](const nlattr* attribute) {
        if (mnl_attr_get_type(attribute) == NDA_DST) text += " " + addressText(header->ndm_family, attribute);
      });
      return text;
    }
    case RTM_NEWROUTE: {
      if (body.size() < sizeof(rtmsg)) return "route (truncated)";
      const auto* header = headerOf<rtmsg>(*this);
      std::string destination = header->rtm_family == AF_INET6 ? "::" : "0.0.0.0";
      uint32_t table = header->rtm_table;
      std::string via;
      forEachObjectAttribute<rtmsg>(*this, [&](const nlattr* attribute) {
        switch (mnl_attr_get_type(attribute)) {
          case RTA_DST:
            destination = addressText(header->rtm_family, attribute);
            break;
          case RTA_GATEWAY:
            via = " via " + addressText(header->rtm_family, attribute);
            break;
          case RTA_TABLE:
            table = mnl_attr_get_u32(attribute);
            break;
          default:
            break;
        }
      });
      return "route " + destination + "/" + std::to_string(header->rtm_dst_len) + via + " table " +
             std::to_string(table);
    }
    default:
      return "netlink object of type " + std::to_string(type);
  }
}

nlohmann::json HostEndL3::toJson() const {
  return {{"addresses", objectsToJson(addresses)},
          {"neighbours", objectsToJson(neighbours)},
          {"routes", objectsToJson(routes)},
          {"sysctls", sysctls}};
}

Result<HostEndL3> HostEndL3::fromJson(const nlohmann::json& json) {
  // Edge of control/: nlohmann and fromHex report errors by exception, turned into an Error here.
  try {
    HostEndL3 state;
    state.addresses = objectsFromJson(json.at("addresses"), RTM_NEWADDR, sizeof(ifaddrmsg));
    state.neighbours = objectsFromJson(json.at("neighbours"), RTM_NEWNEIGH, sizeof(ndmsg));
    state.routes = objectsFromJson(json.at("routes"), RTM_NEWROUTE, sizeof(rtmsg));
    state.sysctls = json.at("sysctls").get<std::map<std::string, std::string>>();
    for (const auto& [key, value] : state.sysctls) {
      // Keys become paths under /proc/sys/net: nothing that could climb out of a link's directory.
      bool known = false;
      for (const char* directory : kSysctlDirectories) {
        std::string prefix = std::string(directory) + "/";
        known |= key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
                 key.find('/', prefix.size()) == std::string::npos &&
                 key.compare(prefix.size(), 2, "..") != 0;
      }
      if (!known) throw std::invalid_argument("sysctl key '" + key + "' is not a per-link setting");
    }
    return state;
  } catch (const std::exception& e) {
    return makeError(EINVAL, std::string("invalid host end layer-3 state: ") + e.what());
  }
}

Result<HostEndL3> captureHostEndL3(NetlinkSocket& socket, int ifindex, const std::string& name,
                                   const std::vector<uint8_t>& mac) {
  HostEndL3 state;
  auto addresses = captureAddresses(socket, ifindex, mac);
  if (!addresses) return addresses.error();
  state.addresses = std::move(addresses).value();
  auto neighbours = captureNeighbours(socket, ifindex);
  if (!neighbours) return neighbours.error();
  state.neighbours = std::move(neighbours).value();
  auto routes = captureRoutes(socket, ifindex, name);
  if (!routes) return routes.error();
  state.routes = std::move(routes).value();
  state.sysctls = captureSysctls(name);
  return state;
}

Result<void> applyHostEndSysctls(const std::string& name, const HostEndL3& state) {
  Result<void> first;
  for (const auto& [key, value] : state.sysctls) {
    std::string path = sysctlPath(key, name);
    auto current = readSysctl(path);
    // Absent here (IPv6 off since): nothing to set. Equal: leave it, so that it keeps following the
    // netns's default.
    if (!current && current.error().code == ENOENT) continue;
    if (current && current.value() == value) continue;
    if (auto written = writeSysctl(path, value); !written && first) first = written.error();
  }
  return first;
}

Result<void> applyHostEndObjects(NetlinkSocket& socket, int ifindex, const HostEndL3& state) {
  Result<void> first;
  auto keep = [&first](Result<void> result) {
    if (!result && first) first = result.error();
  };
  constexpr uint16_t kCreate = NLM_F_CREATE | NLM_F_EXCL;
  for (const auto& address : state.addresses) {
    keep(replay<ifaddrmsg>(
        socket, address, kCreate,
        +[](ifaddrmsg& header, int index) { header.ifa_index = static_cast<uint32_t>(index); }, ifindex,
        false));
  }
  for (const auto& neighbour : state.neighbours) {
    keep(replay<ndmsg>(
        socket, neighbour, NLM_F_CREATE | NLM_F_REPLACE,
        +[](ndmsg& header, int index) {
          header.ndm_ifindex = index;
          header.ndm_state = NUD_PERMANENT;
          header.ndm_flags &= NTF_ROUTER;
        },
        ifindex, false));
  }
  // Routes via a gateway need the gateway reachable, often by one of the link routes.
  for (bool gateways : {false, true}) {
    for (const auto& route : state.routes) {
      if (hasGateway(route) != gateways) continue;
      // Only ONLINK is a request; LINKDOWN, DEAD and OFFLOAD are reported state the kernel refuses.
      keep(replay<rtmsg>(
          socket, route, kCreate, +[](rtmsg& header, int) { header.rtm_flags &= RTNH_F_ONLINK; }, ifindex,
          true));
    }
  }
  return first;
}

}  // namespace vgate::control
