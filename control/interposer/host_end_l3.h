// The layer-3 state a host-side veth end carries, which the kernel discards when the link leaves its netns:
// addresses, permanent neighbour entries, the routes through it and its per-link sysctls (proxy_arp,
// forwarding, proxy_ndp, neigh proxy_delay, ...). A routed host end (Calico style: no bridge, a /32 route and
// proxy ARP per container) depends on all of it. The interposer captures it before it moves the host end into
// vgate's netns, replays it on the link that takes the host end's place, and replays it on the original
// link when detach brings it back.
//
// Objects are kept as the kernel dumped them (fixed header and attributes, raw) so that a replay carries
// every attribute a route can have (metrics, table, preference, encapsulation) without a field per attribute.
// What the kernel makes by itself is not captured: prefix and local routes of an address (proto kernel),
// routes and addresses learnt from router advertisements, and the EUI-64 IPv6 link-local address, which the
// new link, having the same MAC, gets by itself.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/interposer/netlink_socket.h"
#include "vgate/result.h"

namespace vgate::control {

// One address, neighbour or route: its fixed header (ifaddrmsg, ndmsg, rtmsg) and attributes, as dumped.
struct NetlinkObject {
  uint16_t type = 0;  // RTM_NEWADDR, RTM_NEWNEIGH or RTM_NEWROUTE
  std::vector<uint8_t> body;
  bool operator==(const NetlinkObject&) const = default;
  // One line for logs and errors ("route 10.88.0.2/32 table 254"), derived from the body.
  std::string describe() const;
};

struct HostEndL3 {
  std::vector<NetlinkObject> addresses;
  std::vector<NetlinkObject> neighbours;  // NUD_PERMANENT entries only: the rest are learnt again
  std::vector<NetlinkObject> routes;      // single-path routes whose output device is the link
  // Every writable per-link sysctl, keyed "ipv4/conf/proxy_arp", "ipv6/neigh/proxy_delay", ...
  std::map<std::string, std::string> sysctls;
  bool operator==(const HostEndL3&) const = default;

  nlohmann::json toJson() const;
  static Result<HostEndL3> fromJson(const nlohmann::json& json);
};

// Captures the state of link `ifindex` (named `name`, with MAC `mac`) in the socket's netns, whose sysctls
// are read through /proc/sys/net of the calling thread's netns (the same one). ENOTSUP for state that cannot
// be carried over faithfully: a multipath route through the link, or a route using a nexthop object.
Result<HostEndL3> captureHostEndL3(NetlinkSocket& socket, int ifindex, const std::string& name,
                                   const std::vector<uint8_t>& mac);

// Writes the sysctls of link `name` that differ from `state` (before the link goes up, so that disable_ipv6
// and addr_gen_mode apply before the kernel configures it). Best effort: every one is tried, the first
// failure is returned.
Result<void> applyHostEndSysctls(const std::string& name, const HostEndL3& state);

// Adds the addresses, neighbours and routes of `state` to link `ifindex`: addresses first (routes may use
// them as source), then neighbours, then routes without a gateway before routes via one. One that exists
// already counts as done. Best effort: every one is tried, the first failure is returned.
Result<void> applyHostEndObjects(NetlinkSocket& socket, int ifindex, const HostEndL3& state);

}  // namespace vgate::control
