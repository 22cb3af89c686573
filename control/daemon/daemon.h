// vgated's live mode: rewires containers' veths through vgate's netns on request (control socket), keeps the
// BPF fast path and the DPDK slow path running, writes the flow log, and leaves interception in place under
// the fail mode when it stops. State (port pairs) lives in the state dir so that the next vgated adopts it.
#pragma once

#include <cstdint>
#include <string>

#include "vgate/bpf/fast_path.h"

namespace vgate::control {

struct DaemonOptions {
  std::string policyPath;  // empty: every flow allowed, nothing named
  std::string socketPath = "/run/vgate/vgated.sock";
  // A group (name or number) whose members may use the socket besides root: the file is chowned to it, 0660.
  std::string socketGroup;
  std::string stateDir = "/run/vgate";
  std::string bpffsDir = "/sys/fs/bpf/vgate";
  uint32_t failMode = VGATE_FP_FAIL_CLOSED;
  uint16_t workers = 1;
  std::string flowLog = "-";
  uint64_t flowLogMaxBytes = 0;        // rotate the flow log at this size (0: never; logrotate and SIGHUP)
  uint32_t flowLogMaxFiles = 5;        // rotated files kept: PATH.1 .. PATH.N
  uint32_t statsIntervalSeconds = 60;  // a stats line in the flow log this often (0: only at exit)
  // At exit, records of the flows still open are written for at most this long; the rest are counted.
  uint32_t flowLogExitTimeoutMs = 10000;
  std::string metricsAddress = "127.0.0.1:9477";  // HOST:PORT of the Prometheus exposer; empty: none
  std::string driver = "net_af_xdp";
  uint32_t heartbeatTimeoutMs = 1000;
  uint32_t flowsPerWorker = 1u << 18;
  uint32_t fastPathFlows = 1u << 20;
  // Handshakes inspected at once per worker, how long one may take, and what a flow gets without its L7
  // facts (DESIGN.md, "Enforcement integrity").
  uint32_t inspectionSlots = 2048;
  uint32_t inspectionTimeoutSeconds = 5;
  std::string exceptionPolicy = "policy";
  // Benchmarks only: never offload flows (the slow path carries everything), or forward without judging.
  bool offload = true;
  bool ioForward = false;
};

// Runs until SIGTERM or SIGINT; SIGHUP re-reads --policy. Returns the process exit status (0 clean stop, 1
// failure to start; the reason is printed on stderr).
int runDaemon(const DaemonOptions& options);

}  // namespace vgate::control
