// The slow path's trunks: one veth pair per worker inside vgate's netns. The fast path sends misses down
// vgate's end (vgt<i>, TC return program on its ingress); the worker's DPDK port sits on the far end
// (vgx<i>). Tx checksum, segmentation and VLAN insertion offloads are off on vgt<i>, so that the kernel
// segments and checksums in software on the way and the port tag is in the frame the worker reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vgate/result.h"

namespace vgate::control {

struct Trunk {
  std::string name;     // vgt<i>
  std::string farName;  // vgx<i>: the DPDK port's interface
  int ifindex = 0;
  int farIfindex = 0;
};

// The largest frame the trunks carry: an AF_XDP frame is a 4 KiB page less the mempool object header, the
// mbuf and the XDP headroom (dataplane/live/live_dataplane.cc); measured, tagged frames of 3446 bytes cross
// and 3486 do not. The fast path drops larger misses and counts them (oversize).
inline constexpr uint32_t kTrunkMtu = 3420;
inline constexpr uint32_t kTrunkMaxFrame = kTrunkMtu + 14;  // untagged, Ethernet header included

// Creates (or re-creates: a previous vgated's trunks carry nothing worth keeping) `count` trunks in the
// calling thread's netns.
Result<std::vector<Trunk>> createTrunks(uint16_t count);

}  // namespace vgate::control
