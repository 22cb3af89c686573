// The interposer's rewiring over rtnetlink; see interposer.h.
#include "control/interposer/interposer.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/veth.h>

#include <cerrno>
#include <functional>

namespace vgate::control {

namespace {

// IFLA_BRPORT_* values newer than the build host's linux/if_link.h (kernel ABI, never renumbered).
constexpr uint16_t kBrportMab = 40;
constexpr uint16_t kBrportMcastMaxGroups = 42;
constexpr uint16_t kBrportNeighVlanSuppress = 43;
constexpr uint16_t kBrportBackupNhid = 44;

Error withContext(const Error& error, const std::string& context) {
  return makeError(error.code, context + ": " + error.message);
}

// Undo steps of a multi-step change, run in reverse unless dismissed.
class Rollback {
 public:
  ~Rollback() {
    for (auto step = steps_.rbegin(); step != steps_.rend(); ++step) (*step)();
  }
  void add(std::function<void()> step) { steps_.push_back(std::move(step)); }
  void dismiss() { steps_.clear(); }

 private:
  std::vector<std::function<void()>> steps_;
};

Result<void> moveLink(NetlinkSocket& socket, int ifindex, const Netns& target, const std::string& newName) {
  NetlinkMessage request(RTM_SETLINK, 0);
  request.putIfinfo(ifindex);
  request.putU32(IFLA_NET_NS_FD, static_cast<uint32_t>(target.fd()));
  request.putString(IFLA_IFNAME, newName);
  return socket.transact(request);
}

std::vector<BridgePortAttribute> writable(const std::vector<BridgePortAttribute>& attributes) {
  std::vector<BridgePortAttribute> result;
  for (const auto& attribute : attributes) {
    if (isWritableBridgePortAttribute(attribute.type)) result.push_back(attribute);
  }
  return result;
}

std::string innerName(uint16_t id) { return "vgi-" + std::to_string(id); }
std::string outerName(uint16_t id) { return "vge-" + std::to_string(id); }

}  // namespace

bool isWritableBridgePortAttribute(uint16_t type) {
  switch (type) {
    case IFLA_BRPORT_PRIORITY:
    case IFLA_BRPORT_COST:
    case IFLA_BRPORT_MODE:
    case IFLA_BRPORT_GUARD:
    case IFLA_BRPORT_PROTECT:
    case IFLA_BRPORT_FAST_LEAVE:
    case IFLA_BRPORT_LEARNING:
    case IFLA_BRPORT_UNICAST_FLOOD:
    case IFLA_BRPORT_PROXYARP:
    case IFLA_BRPORT_LEARNING_SYNC:
    case IFLA_BRPORT_PROXYARP_WIFI:
    case IFLA_BRPORT_MULTICAST_ROUTER:
    case IFLA_BRPORT_MCAST_FLOOD:
    case IFLA_BRPORT_MCAST_TO_UCAST:
    case IFLA_BRPORT_VLAN_TUNNEL:
    case IFLA_BRPORT_BCAST_FLOOD:
    case IFLA_BRPORT_GROUP_FWD_MASK:
    case IFLA_BRPORT_NEIGH_SUPPRESS:
    case IFLA_BRPORT_ISOLATED:
    case IFLA_BRPORT_BACKUP_PORT:
    case IFLA_BRPORT_MCAST_EHT_HOSTS_LIMIT:
    case IFLA_BRPORT_LOCKED:
    case kBrportMab:
    case kBrportMcastMaxGroups:
    case kBrportNeighVlanSuppress:
    case kBrportBackupNhid:
      return true;
    default:
      // STATE follows the link and STP; ids, timers, counters and MRP flags are read-only; unknown newer
      // attributes may be read-only too, and the kernel validates those strictly.
      return false;
  }
}

Result<std::unique_ptr<Interposer>> Interposer::open(const std::string& vgateNetnsPath) {
  auto host = Netns::current();
  if (!host) return host.error();
  auto vgate = Netns::open(vgateNetnsPath);
  if (!vgate) return vgate.error();
  if (vgate.value().sameAs(host.value())) {
    return makeError(EINVAL, vgateNetnsPath + " is the calling thread's own netns, not a separate one");
  }
  auto hostSocket = NetlinkSocket::open();
  if (!hostSocket) return hostSocket.error();
  auto vgateSocket = NetlinkSocket::openIn(vgate.value());
  if (!vgateSocket) return vgateSocket.error();
  auto watch = NetlinkSocket::openIn(vgate.value(), RTMGRP_LINK);
  if (!watch) return watch.error();
  return std::unique_ptr<Interposer>(
      new Interposer(std::move(host).value(), std::move(vgate).value(), std::move(hostSocket).value(),
                     std::move(vgateSocket).value(), std::move(watch).value()));
}

Result<PortPair> Interposer::attach(const AttachRequest& request, uint16_t id) {
  if (id < 1 || id > 4094) return makeError(EINVAL, "port id " + std::to_string(id) + " is outside 1..4094");
  std::string path = request.netnsPath;
  Result<Netns> opened = makeError(EINVAL, "attach needs a netns path or a pid");
  if (!path.empty()) {
    opened = Netns::open(path);
  } else if (request.pid > 0) {
    path = "/proc/" + std::to_string(request.pid) + "/ns/net";
    opened = Netns::ofPid(request.pid);
  }
  if (!opened) return opened.error();
  const Netns& container = opened.value();
  if (container.sameAs(host_) || container.sameAs(vgate_)) {
    return makeError(EINVAL, path + " is the host's or vgate's own netns, not a container's");
  }

  // What the container sees.
  auto containerSocket = NetlinkSocket::openIn(container);
  if (!containerSocket) return containerSocket.error();
  auto containerLink = containerSocket.value().getLink(request.ifname);
  if (!containerLink) {
    if (containerLink.error().code == ENODEV) {
      return makeError(ENOENT, request.ifname + " not found in " + path);
    }
    return containerLink.error();
  }
  const LinkInfo& eth = containerLink.value();
  if (eth.kind != "veth") return makeError(EINVAL, request.ifname + " in " + path + " is not a veth");
  if (!eth.linkNetnsid) {
    return makeError(ENOTSUP, "the peer of " + request.ifname + " in " + path + " is in the same netns");
  }
  // Which netns holds the peer: compare the container's ids for the host's and vgate's netns.
  auto vgateNsid = containerSocket.value().nsidOf(vgate_);
  if (!vgateNsid) return vgateNsid.error();
  auto hostNsid = containerSocket.value().nsidOf(host_);
  if (!hostNsid) return hostNsid.error();
  if (*eth.linkNetnsid == vgateNsid.value()) {
    return makeError(EEXIST,
                     request.ifname + " in " + path + " is already attached (its peer is in vgate's netns)");
  }
  if (*eth.linkNetnsid != hostNsid.value()) {
    return makeError(ENOTSUP, "the peer of " + request.ifname + " in " + path + " is not in the host netns");
  }

  // The host end, its bridge and its port settings.
  auto hostLink = hostSocket_.getLink(eth.link);
  if (!hostLink) return withContext(hostLink.error(), "peer of " + request.ifname + " in " + path);
  const LinkInfo& hostEnd = hostLink.value();
  if (hostEnd.kind != "veth" || hostEnd.link != eth.index) {
    return makeError(ENOENT, "peer of " + request.ifname + " in " + path + " not found in the host netns");
  }
  // On a bridge, or routed (no master: the host routes to the container through the host end).
  LinkInfo bridge;
  std::vector<BridgePortAttribute> bridgePort;
  if (hostEnd.master != 0) {
    auto bridgeLink = hostSocket_.getLink(hostEnd.master);
    if (!bridgeLink) return withContext(bridgeLink.error(), "master of " + hostEnd.name);
    if (bridgeLink.value().kind != "bridge") {
      return makeError(ENOTSUP, "host end " + hostEnd.name + " is enslaved to " + bridgeLink.value().name +
                                    ", a " + bridgeLink.value().kind + ", not a bridge");
    }
    bridge = std::move(bridgeLink).value();
    auto port = hostSocket_.getBridgePort(hostEnd.index);
    if (!port) return port.error();
    bridgePort = std::move(port).value();
  }
  // What the kernel drops when the host end leaves the host netns. Sysctls are read through /proc of the
  // calling thread's netns: make sure it is the host's.
  auto inHost = EnterNetns::enter(host_);
  if (!inHost) return inHost.error();
  auto l3 = captureHostEndL3(hostSocket_, hostEnd.index, hostEnd.name, hostEnd.mac);
  if (!l3) return withContext(l3.error(), "host end " + hostEnd.name);

  PortPair pair;
  pair.id = id;
  pair.name = request.name;
  pair.netnsPath = path;
  pair.pid = request.netnsPath.empty() ? request.pid : 0;
  pair.containerIfname = request.ifname;
  pair.containerIfindex = eth.index;
  pair.hostIfname = hostEnd.name;
  pair.bridgeName = bridge.name;
  pair.bridgeIfindex = bridge.index;
  pair.innerName = innerName(id);
  pair.outerName = outerName(id);
  HostEndSettings& original = pair.original;
  original.name = hostEnd.name;
  original.ifindex = hostEnd.index;
  original.mac = hostEnd.mac;
  original.mtu = hostEnd.mtu;
  original.txqlen = hostEnd.txqlen;
  original.numTxQueues = hostEnd.numTxQueues;
  original.numRxQueues = hostEnd.numRxQueues;
  original.up = (hostEnd.flags & IFF_UP) != 0;
  original.alias = hostEnd.alias;
  original.bridgeName = pair.bridgeName;
  original.bridgeIfindex = pair.bridgeIfindex;
  original.bridgePort = std::move(bridgePort);
  original.l3 = std::move(l3).value();

  // The kernel renames a moved link only after moving it, and only if its old name is taken in the target:
  // a taken vgi-<id> would leave the link in vgate's netns under its old name. Check first.
  if (auto taken = vgateSocket_.getLink(pair.innerName); taken || taken.error().code != ENODEV) {
    return taken ? makeError(EEXIST, pair.innerName + " already exists in vgate's netns") : taken.error();
  }

  Rollback rollback;
  // 1. The host end becomes vgi-<id> in vgate's netns (leaving the bridge as it leaves the host netns).
  if (auto moved = moveLink(hostSocket_, hostEnd.index, vgate_, pair.innerName); !moved) {
    // If it moved but was not renamed (a race on the name), it is in vgate's netns under its old name.
    if (auto stray = vgateSocket_.getLink(hostEnd.name); stray && stray.value().kind == "veth") {
      (void)restoreHostEnd(stray.value().index, original);
    }
    return withContext(moved.error(), "move " + hostEnd.name + " into vgate's netns as " + pair.innerName);
  }
  auto inner = vgateSocket_.getLink(pair.innerName);
  if (!inner) return withContext(inner.error(), "after moving " + hostEnd.name);
  pair.innerIfindex = inner.value().index;
  rollback.add([this, index = pair.innerIfindex, &original] { (void)restoreHostEnd(index, original); });

  // 2. The new pair: vge-<id> in vgate's netns, its peer in the host netns with the host end's identity.
  {
    NetlinkMessage create(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    create.putIfinfo(kOuterIfindexBase + id);
    create.putString(IFLA_IFNAME, pair.outerName);
    create.putU32(IFLA_MTU, original.mtu);
    nlattr* linkInfo = create.nestStart(IFLA_LINKINFO);
    create.putString(IFLA_INFO_KIND, "veth");
    nlattr* data = create.nestStart(IFLA_INFO_DATA);
    nlattr* peer = create.nestStart(VETH_INFO_PEER);
    create.putIfinfo(0);
    create.putString(IFLA_IFNAME, original.name);
    create.putBytes(IFLA_ADDRESS, original.mac.data(), original.mac.size());
    create.putU32(IFLA_MTU, original.mtu);
    create.putU32(IFLA_TXQLEN, original.txqlen);
    if (original.numTxQueues > 0) create.putU32(IFLA_NUM_TX_QUEUES, original.numTxQueues);
    if (original.numRxQueues > 0) create.putU32(IFLA_NUM_RX_QUEUES, original.numRxQueues);
    create.putU32(IFLA_NET_NS_FD, static_cast<uint32_t>(host_.fd()));
    create.nestEnd(peer);
    create.nestEnd(data);
    create.nestEnd(linkInfo);
    if (auto created = vgateSocket_.transact(create); !created) {
      return withContext(created.error(), "create veth " + pair.outerName + " / " + original.name);
    }
  }
  auto outer = vgateSocket_.getLink(pair.outerName);
  if (!outer) return withContext(outer.error(), "after creating " + pair.outerName);
  pair.outerIfindex = outer.value().index;
  // Deleting either end deletes both, so this also removes the new host end.
  rollback.add([this, index = pair.outerIfindex] { (void)vgateSocket_.deleteLink(index); });
  auto newHost = hostSocket_.getLink(original.name);
  if (!newHost) return withContext(newHost.error(), "after creating " + pair.outerName);
  pair.hostIfindex = newHost.value().index;

  // 3. The new host end takes the old one's place: on the bridge, with its sysctls, addresses, neighbours
  // and routes. Routes through the old host end went with it in step 1: until they are back, the host has
  // no route to the container (a few milliseconds).
  {
    NetlinkMessage set(RTM_SETLINK, 0);
    set.putIfinfo(pair.hostIfindex);
    if (!original.routed()) set.putU32(IFLA_MASTER, static_cast<uint32_t>(pair.bridgeIfindex));
    if (!original.alias.empty()) set.putBytes(IFLA_IFALIAS, original.alias.data(), original.alias.size());
    if (auto enslaved = hostSocket_.transact(set); !enslaved) {
      return withContext(enslaved.error(), original.routed()
                                               ? "set alias of " + original.name
                                               : "enslave " + original.name + " to " + pair.bridgeName);
    }
  }
  if (auto port = hostSocket_.setBridgePort(pair.hostIfindex, writable(original.bridgePort)); !port) {
    return withContext(port.error(), "bridge port settings of " + original.name);
  }
  if (auto sysctls = applyHostEndSysctls(original.name, original.l3); !sysctls) {
    return withContext(sysctls.error(), "sysctls of " + original.name);
  }
  if (original.up) {
    if (auto up = hostSocket_.setLinkUp(pair.hostIfindex, true); !up) {
      return withContext(up.error(), "set " + original.name + " up");
    }
  }
  if (auto objects = applyHostEndObjects(hostSocket_, pair.hostIfindex, original.l3); !objects) {
    return withContext(objects.error(), original.name);
  }

  // 4. Both of vgate's ports up: the container's carrier comes back.
  for (int index : {pair.innerIfindex, pair.outerIfindex}) {
    if (auto up = vgateSocket_.setLinkUp(index, true); !up)
      return withContext(up.error(), "set vgate port up");
  }
  rollback.dismiss();
  return pair;
}

Result<void> Interposer::restoreHostEnd(int innerIfindex, const HostEndSettings& original) {
  // As in attach: a taken name would leave the link in the host netns under its vgi- name.
  if (auto taken = hostSocket_.getLink(original.name); taken || taken.error().code != ENODEV) {
    return taken ? makeError(EEXIST, original.name + " already exists in the host netns") : taken.error();
  }
  if (auto moved = moveLink(vgateSocket_, innerIfindex, host_, original.name); !moved) {
    return withContext(moved.error(),
                       "move ifindex " + std::to_string(innerIfindex) + " back as " + original.name);
  }
  auto link = hostSocket_.getLink(original.name);
  if (!link) return withContext(link.error(), "after moving " + original.name + " back");
  int index = link.value().index;

  // Best effort from here: a failed step does not stop the next ones; the first error is returned.
  Result<void> first;
  auto keep = [&first](Result<void> result, const std::string& what) {
    if (!result && first) first = withContext(result.error(), what);
  };

  NetlinkMessage set(RTM_SETLINK, 0);
  set.putIfinfo(index);
  if (!original.mac.empty() && link.value().mac != original.mac) {
    set.putBytes(IFLA_ADDRESS, original.mac.data(), original.mac.size());
  }
  set.putU32(IFLA_MTU, original.mtu);
  set.putU32(IFLA_TXQLEN, original.txqlen);
  // A zero-length alias clears one the link might have been given meanwhile.
  if (link.value().alias != original.alias) {
    set.putBytes(IFLA_IFALIAS, original.alias.data(), original.alias.size());
  }
  keep(hostSocket_.transact(set), "restore MAC/MTU/txqlen/alias of " + original.name);

  // The bridge by its old ifindex if it is still the same bridge, else by name (recreated meanwhile).
  Result<LinkInfo> bridge = makeError(ENODEV, "routed");
  if (!original.routed()) {
    bridge = hostSocket_.getLink(original.bridgeIfindex);
    if (!bridge || bridge.value().name != original.bridgeName || bridge.value().kind != "bridge") {
      bridge = hostSocket_.getLink(original.bridgeName);
    }
    if (!bridge) keep(bridge.error(), "bridge " + original.bridgeName);
  }
  if (bridge) {
    NetlinkMessage enslave(RTM_SETLINK, 0);
    enslave.putIfinfo(index);
    enslave.putU32(IFLA_MASTER, static_cast<uint32_t>(bridge.value().index));
    Result<void> enslaved = hostSocket_.transact(enslave);
    keep(enslaved, "enslave " + original.name + " to " + original.bridgeName);
    if (enslaved) {
      keep(hostSocket_.setBridgePort(index, writable(original.bridgePort)),
           "bridge port settings of " + original.name);
    }
  }
  if (auto inHost = EnterNetns::enter(host_); !inHost) {
    keep(inHost.error(), "sysctls of " + original.name);
  } else {
    keep(applyHostEndSysctls(original.name, original.l3), "sysctls of " + original.name);
  }
  if (original.up) keep(hostSocket_.setLinkUp(index, true), "set " + original.name + " up");
  keep(applyHostEndObjects(hostSocket_, index, original.l3), original.name);
  return first;
}

Result<void> Interposer::detach(const PortPair& pair) {
  // The host end's layer-3 state as it is now (a CNI may have added a route for a new address since
  // attach), read before deleting the new host end takes it away; the state recorded at attach if it
  // cannot be read.
  HostEndSettings original = pair.original;
  if (auto hostEnd = hostSocket_.getLink(pair.hostIfindex);
      hostEnd && hostEnd.value().name == pair.hostIfname) {
    auto inHost = EnterNetns::enter(host_);
    auto current = inHost ? captureHostEndL3(hostSocket_, pair.hostIfindex, pair.hostIfname, original.mac)
                          : Result<HostEndL3>(inHost.error());
    if (current) original.l3 = std::move(current).value();
  }
  auto outer = vgateSocket_.getLink(pair.outerName);
  if (outer) {
    if (auto deleted = vgateSocket_.deleteLink(outer.value().index); !deleted) {
      return withContext(deleted.error(), "delete " + pair.outerName);
    }
  } else if (outer.error().code != ENODEV) {
    return outer.error();
  }
  auto inner = vgateSocket_.getLink(pair.innerName);
  if (!inner) {
    if (inner.error().code == ENODEV) {
      return makeError(ENOENT, pair.innerName + " is gone (its container died); its outer pair was removed");
    }
    return inner.error();
  }
  return restoreHostEnd(inner.value().index, original);
}

Result<void> Interposer::cleanup(const PortPair& pair) {
  auto inner = vgateSocket_.getLink(pair.innerName);
  if (inner) return makeError(EBUSY, pair.innerName + " still exists (its container is alive): detach it");
  if (inner.error().code != ENODEV) return inner.error();
  auto outer = vgateSocket_.getLink(pair.outerName);
  if (!outer) return outer.error().code == ENODEV ? Result<void>() : Result<void>(outer.error());
  if (auto deleted = vgateSocket_.deleteLink(outer.value().index); !deleted) {
    return withContext(deleted.error(), "delete " + pair.outerName);
  }
  return {};
}

Result<std::vector<uint16_t>> Interposer::takeVanishedPorts() {
  std::vector<uint16_t> ids;
  auto drained = watch_.drain([&ids](const nlmsghdr* message) {
    if (message->nlmsg_type != RTM_DELLINK) return;
    LinkInfo link = NetlinkSocket::parseLink(message);
    if (link.newNetnsid) return;  // moved out (detach), not destroyed
    if (link.name.size() < 5 || link.name.compare(0, 4, "vgi-") != 0) return;
    unsigned id = 0;
    for (size_t i = 4; i < link.name.size(); ++i) {
      if (link.name[i] < '0' || link.name[i] > '9' || id > 4094) return;
      id = id * 10 + static_cast<unsigned>(link.name[i] - '0');
    }
    if (id >= 1 && id <= 4094) ids.push_back(static_cast<uint16_t>(id));
  });
  if (!drained) return drained.error();
  return ids;
}

Result<bool> Interposer::innerExists(const PortPair& pair) {
  auto inner = vgateSocket_.getLink(pair.innerName);
  if (inner) return true;
  if (inner.error().code == ENODEV) return false;
  return inner.error();
}

}  // namespace vgate::control
