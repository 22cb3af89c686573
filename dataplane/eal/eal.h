// Starts and stops DPDK's EAL the way vgate runs it: no hugepages, no shared files, no PCI scan, logs on
// stderr.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vgate/result.h"

namespace vgate::dataplane {

struct EalOptions {
  std::string programName = "vgated";
  uint32_t memoryMb = 512;
  uint32_t lcores = 2;  // the main lcore plus one per worker
  // Each lcore may run on any CPU this process is allowed: right for replay and tests on small machines,
  // where there are more lcores than cores. Live workers are pinned instead (later).
  bool floatingLcores = true;
  std::string logLevel = "error";  // DPDK's own messages; vgated's are separate
};

class EalSession {
 public:
  // rte_eal_init can run once per process: a second start fails with EALREADY.
  static Result<std::unique_ptr<EalSession>> start(const EalOptions& options);
  ~EalSession();
  EalSession(const EalSession&) = delete;
  EalSession& operator=(const EalSession&) = delete;

  // Creates a virtual device ("net_pcap0,rx_pcap=/x.pcap") and returns its port id.
  Result<uint16_t> probeVirtualDevice(const std::string& devargs);

 private:
  EalSession() = default;
  std::vector<std::string> probed_;
};

}  // namespace vgate::dataplane
