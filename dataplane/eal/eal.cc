// EAL start-up: see eal.h.
#include "dataplane/eal/eal.h"

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace vgate::dataplane {

namespace {

std::atomic<bool> ealStarted{false};

// "0,1,3": the CPUs this process may run on, in EAL's cpuset syntax.
std::string allowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "0";
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    if (!cpus.empty()) cpus += ',';
    cpus += std::to_string(cpu);
  }
  return cpus.empty() ? "0" : cpus;
}

}  // namespace

Result<std::unique_ptr<EalSession>> EalSession::start(const EalOptions& options) {
  if (ealStarted.exchange(true)) return makeError(EALREADY, "DPDK's EAL is already running in this process");
  // EAL logs to stdout by default; stdout may be the flow log (--flow-log -), so DPDK speaks on stderr only.
  rte_openlog_stream(stderr);
  std::string lcores;
  std::string cpus = allowedCpus();
  for (uint32_t lcore = 0; lcore < options.lcores; ++lcore) {
    if (!lcores.empty()) lcores += ',';
    lcores += std::to_string(lcore) + (options.floatingLcores ? "@(" + cpus + ")" : "");
  }
  std::vector<std::string> args = {options.programName,
                                   "--no-huge",
                                   "-m",
                                   std::to_string(options.memoryMb),
                                   "--no-shconf",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--log-level=" + options.logLevel,
                                   "--lcores=" + lcores};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    return makeError(rte_errno, std::string("cannot start DPDK's EAL: ") + rte_strerror(rte_errno));
  }
  return std::unique_ptr<EalSession>(new EalSession());
}

EalSession::~EalSession() {
  for (const auto& name : probed_) {
    uint16_t port = 0;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port) == 0) {
      rte_eth_dev_stop(port);
      rte_eth_dev_close(port);
    }
  }
  rte_eal_cleanup();
}

Result<uint16_t> EalSession::probeVirtualDevice(const std::string& devargs) {
  std::string name = devargs.substr(0, devargs.find(','));
  if (rte_dev_probe(devargs.c_str()) != 0) {
    return makeError(EINVAL, "cannot create DPDK device " + devargs);
  }
  uint16_t port = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port) != 0) {
    return makeError(ENODEV, "DPDK device " + name + " was probed but has no ethdev port");
  }
  probed_.push_back(name);
  return port;
}

}  // namespace vgate::dataplane
