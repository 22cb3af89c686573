// vgated: the vgate daemon's entrypoint. Subcommands: run (live), replay (offline) and validate.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "control/daemon/run_command.h"
#include "control/replay_command.h"
#include "control/validate_command.h"

// Sanitizer builds: libxdp keeps an 80-byte umem record that DPDK's af_xdp driver never frees when the port
// closes; it is theirs, once per port, not ours to chase at exit.
extern "C" const char* __lsan_default_suppressions() { return "leak:xsk_umem__create\n"; }

namespace {

constexpr const char* kUsage =
    "usage: vgated <command> [options]\n"
    "\n"
    "commands:\n"
    "  replay --pcap FILE [--policy FILE] [--flow-log PATH|-] [--workers N] [--flows N]\n"
    "      Feed a capture through the dataplane and write one JSON flow record per flow\n"
    "      (to stdout with '-', the default). --flows is the flow table size per worker.\n"
    "      With --policy, each flow carries the verdict, rule, policy and mode that judged it.\n"
    "  run [--policy FILE] [--socket PATH] [--socket-group GROUP] [--state-dir DIR] [--bpffs DIR]\n"
    "      [--fail-mode open|closed] [--workers N] [--flow-log PATH|-] [--flow-log-max-size BYTES]\n"
    "      [--flow-log-max-files N] [--stats-interval SECONDS] [--metrics-address HOST:PORT]\n"
    "      [--driver af_xdp|af_packet] [--inspection-slots N] [--inspection-timeout SECONDS]\n"
    "      [--exception-policy policy|drop|pass]\n"
    "      Protect containers on this node in the foreground: vgatectl attaches them through --socket\n"
    "      (default /run/vgate/vgated.sock; root only, and members of GROUP with --socket-group). State in\n"
    "      --state-dir (default /run/vgate): the policy last applied is kept there and used again at the\n"
    "      next start unless --policy's file changed since it was last applied. SIGHUP re-reads --policy\n"
    "      and reopens the flow log. BPF maps pinned in --bpffs (default /sys/fs/bpf/vgate). SIGTERM stops\n"
    "      it; interception stays in place and --fail-mode (default closed) decides new flows until a\n"
    "      vgated runs again. The flow log (default stdout) is appended to and reopened on SIGHUP or\n"
    "      'vgatectl log reopen'; with --flow-log-max-size (K, M, G suffixes) it rotates to PATH.1 ..\n"
    "      PATH.N (--flow-log-max-files, default 5). A stats line goes to it every --stats-interval\n"
    "      seconds (default 60, 0: off) and at exit.\n"
    "  validate FILE\n"
    "      Check a policy document; print each problem as file:line:column: rule 'name': message.\n"
    "\n"
    "exit status: 0 done, 2 bad arguments or input, 1 internal failure\n";

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    std::string command = argv[1];
    if (command == "--help" || command == "-h" || command == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (command == "--version") {
      std::puts("vgated " VGATE_VERSION);
      return 0;
    }
    if (command == "replay") return vgate::control::runReplayCommand(argc, argv, 2);
    if (command == "validate") return vgate::control::runValidateCommand(argc, argv, 2);
    if (command == "run") return vgate::control::runRunCommand(argc, argv, 2);
    std::fprintf(stderr, "vgated: unknown command '%s' (try 'vgated --help')\n", command.c_str());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vgated: internal error: %s\n", error.what());
    return 1;
  }
}
