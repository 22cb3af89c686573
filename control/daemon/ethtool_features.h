// Turns named netdev features (as `ethtool -k` lists them) on or off through the SIOCETHTOOL ioctl: the trunk
// needs its tx checksum, segmentation and VLAN insertion offloads off so that the kernel finishes every
// packet in software before the slow path sees it (DESIGN.md, measured fact 2).
#pragma once

#include <string>
#include <vector>

#include "vgate/result.h"

namespace vgate::control {

// Applies to `interface` in the calling thread's netns. ENOENT for a feature name the kernel does not know.
Result<void> setNetdevFeatures(const std::string& interface, const std::vector<std::string>& features,
                               bool on);
// The current state of one feature.
Result<bool> netdevFeature(const std::string& interface, const std::string& feature);

}  // namespace vgate::control
