// vgated: the vgate daemon's entrypoint. Subcommands: replay (offline), and later run (live) and validate.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "control/replay_command.h"
#include "control/validate_command.h"

namespace {

constexpr const char* kUsage =
    "usage: vgated <command> [options]\n"
    "\n"
    "commands:\n"
    "  replay --pcap FILE [--policy FILE] [--flow-log PATH|-] [--workers N] [--flows N]\n"
    "      Feed a capture through the dataplane and write one JSON flow record per flow\n"
    "      (to stdout with '-', the default). --flows is the flow table size per worker.\n"
    "      With --policy, each flow carries the verdict, rule, policy and mode that judged it.\n"
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
    std::fprintf(stderr, "vgated: unknown command '%s' (try 'vgated --help')\n", command.c_str());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vgated: internal error: %s\n", error.what());
    return 1;
  }
}
