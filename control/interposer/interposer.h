// The interposer rewires a container's veth so that vgate sits in its path (DESIGN.md, the design): the
// container's host-side end moves into vgate's netns as vgi-<id>, and a new veth pair takes its place on the
// bridge (same name, MAC, MTU, txqlen, alias, bridge port settings) with vge-<id> as its other end in vgate's
// netns. detach restores the original exactly. All through rtnetlink (libmnl), never by running `ip`.
//
// Errors are vgate::Error with an errno-style code: ENOENT (no such netns, pid or link), EEXIST (already
// attached, or a name in vgate's netns taken), EINVAL (not a veth, bad id), ENOTSUP (host end not on a
// bridge, or its peer in a third netns), EBUSY (cleanup of a pair whose container is still there), else the
// kernel's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/interposer/netlink_socket.h"
#include "control/interposer/netns.h"
#include "control/interposer/port_pair.h"
#include "vgate/result.h"

namespace vgate::control {

struct AttachRequest {
  std::string netnsPath;  // a netns file (/run/netns/x, /proc/PID/ns/net); or empty and pid set
  int pid = 0;
  std::string ifname = "eth0";
  std::string name;  // recorded in the PortPair, informational
};

class Interposer {
 public:
  // vge-<id> ifindexes are taken from this range (in vgate's netns) rather than from the kernel's counter:
  // host-side ifindexes never come near it, so a vgi- moved in always keeps its ifindex and the container's
  // `eth0@ifN` does not change.
  static constexpr int kOuterIfindexBase = 0x7ff00000;

  // The host side is the calling thread's netns at the time of this call; vgateNetnsPath is a persistent
  // netns (see ensurePersistentNetns). Holds a netlink socket in each, and a link watch on vgate's.
  static Result<std::unique_ptr<Interposer>> open(const std::string& vgateNetnsPath);

  // Interposes on request.ifname in the container's netns; `id` (1..4094, chosen by the caller) names the
  // ports vgi-<id> and vge-<id>. On failure, every step already taken is undone.
  Result<PortPair> attach(const AttachRequest& request, uint16_t id);
  // Deletes the vge- pair and puts the original host end back with its name, settings and bridge port.
  // If the container is gone (no vgi-<id>), removes the orphaned pair and returns ENOENT.
  Result<void> detach(const PortPair& pair);
  // After the container died (vgi-<id> gone with it): deletes the orphaned vge- pair, which also takes the
  // new host end off the bridge. Idempotent. EBUSY if vgi-<id> still exists (use detach).
  Result<void> cleanup(const PortPair& pair);

  // Readable (poll) when links in vgate's netns changed.
  int watchFd() const { return watch_.fd(); }
  // The ids whose vgi- link was destroyed since the last call (links moved out by detach are not reported).
  // ENOBUFS: notifications were lost; check each pair with innerExists.
  Result<std::vector<uint16_t>> takeVanishedPorts();
  Result<bool> innerExists(const PortPair& pair);

  const Netns& hostNetns() const { return host_; }
  const Netns& vgateNetns() const { return vgate_; }

 private:
  Interposer(Netns host, Netns vgate, NetlinkSocket hostSocket, NetlinkSocket vgateSocket,
             NetlinkSocket watch)
      : host_(std::move(host)),
        vgate_(std::move(vgate)),
        hostSocket_(std::move(hostSocket)),
        vgateSocket_(std::move(vgateSocket)),
        watch_(std::move(watch)) {}
  // Moves link `innerIfindex` (in vgate's netns) back to the host netns and restores `original` on it.
  Result<void> restoreHostEnd(int innerIfindex, const HostEndSettings& original);

  Netns host_;
  Netns vgate_;
  NetlinkSocket hostSocket_;
  NetlinkSocket vgateSocket_;
  NetlinkSocket watch_;
};

// The IFLA_BRPORT_* attributes that can be written back (state, ids, timers and counters are read-only).
bool isWritableBridgePortAttribute(uint16_t type);

}  // namespace vgate::control
