// The slow path's trunks: see trunks.h.
#include "control/daemon/trunks.h"

#include <linux/if_link.h>
#include <linux/veth.h>
#include <net/if.h>

#include <fstream>

#include "control/daemon/ethtool_features.h"
#include "control/interposer/netlink_socket.h"

namespace vgate::control {

namespace {

// Trunks take fixed high ifindexes (below the interposer's outer ports): a host end moved into vgate's netns
// keeps its ifindex only if no link there has it, and detach must give it back unchanged.
constexpr int kTrunkIfindexBase = 0x7fe00000;

Result<void> createVethPair(NetlinkSocket& socket, const std::string& name, const std::string& peer,
                            int ifindex) {
  NetlinkMessage request(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
  request.putIfinfo(ifindex);
  request.putString(IFLA_IFNAME, name);
  request.putU32(IFLA_MTU, kTrunkMtu);
  // One queue each way: the worker's AF_XDP socket binds queue 0, and a frame a multi-queue veth put on
  // another queue would miss it.
  request.putU32(IFLA_NUM_TX_QUEUES, 1);
  request.putU32(IFLA_NUM_RX_QUEUES, 1);
  nlattr* linkInfo = request.nestStart(IFLA_LINKINFO);
  request.putString(IFLA_INFO_KIND, "veth");
  nlattr* data = request.nestStart(IFLA_INFO_DATA);
  nlattr* peerInfo = request.nestStart(VETH_INFO_PEER);
  auto* peerHeader = static_cast<ifinfomsg*>(
      mnl_nlmsg_put_extra_header(request.header(), sizeof(ifinfomsg)));  // the peer's own ifinfomsg
  peerHeader->ifi_index = ifindex + 1;
  request.putString(IFLA_IFNAME, peer);
  request.putU32(IFLA_MTU, kTrunkMtu);
  request.putU32(IFLA_NUM_TX_QUEUES, 1);
  request.putU32(IFLA_NUM_RX_QUEUES, 1);
  request.nestEnd(peerInfo);
  request.nestEnd(data);
  request.nestEnd(linkInfo);
  return socket.transact(request);
}

}  // namespace

Result<std::vector<Trunk>> createTrunks(uint16_t count) {
  auto socket = NetlinkSocket::open();
  if (!socket) return socket.error();
  std::vector<Trunk> trunks;
  for (uint16_t i = 0; i < count; ++i) {
    Trunk trunk;
    trunk.name = "vgt" + std::to_string(i);
    trunk.farName = "vgx" + std::to_string(i);
    if (auto old = socket.value().getLink(trunk.name); old) {
      if (auto deleted = socket.value().deleteLink(old.value().index); !deleted) return deleted.error();
    }
    if (auto created = createVethPair(socket.value(), trunk.name, trunk.farName, kTrunkIfindexBase + 2 * i);
        !created) {
      return makeError(created.error().code,
                       "cannot create trunk " + trunk.name + ": " + created.error().message);
    }
    if (auto off = setNetdevFeatures(
            trunk.name,
            {"tx-checksum-ip-generic", "tx-scatter-gather", "tx-tcp-segmentation", "tx-tcp6-segmentation",
             "tx-generic-segmentation", "tx-vlan-hw-insert", "tx-vlan-stag-hw-insert"},
            false);
        !off) {
      return makeError(off.error().code,
                       "cannot turn the offloads of " + trunk.name + " off: " + off.error().message);
    }
    for (const std::string& name : {trunk.name, trunk.farName}) {
      // No IPv6 on the trunks: their own neighbour discovery would only be noise on the slow path.
      std::ofstream("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6") << "1\n";
      if (auto up = socket.value().setLinkUp(name, true); !up) return up.error();
    }
    trunk.ifindex = static_cast<int>(if_nametoindex(trunk.name.c_str()));
    trunk.farIfindex = static_cast<int>(if_nametoindex(trunk.farName.c_str()));
    trunks.push_back(trunk);
  }
  return trunks;
}

}  // namespace vgate::control
