// vgatectl: the command-line client of vgated's control socket (attach, detach, status).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>

#include "control/ctl/ctl_commands.h"

int main(int argc, char** argv) {
  try {
    if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
      std::puts("vgatectl " VGATE_VERSION);
      return 0;
    }
    return vgate::control::runVgatectl(argc, argv, std::getenv("VGATE_SOCKET"), std::cout, std::cerr);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vgatectl: internal error: %s\n", error.what());
    return 1;
  }
}
