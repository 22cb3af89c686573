#pragma once

namespace vgate::control {

// `vgated run [--policy FILE] [--socket PATH] [--state-dir DIR] [--bpffs DIR] [--fail-mode open|closed]
// [--workers N] [--flow-log PATH|-] [--flow-log-max-size BYTES[K|M|G]] [--flow-log-max-files N]
// [--stats-interval SECONDS] [--metrics-address HOST:PORT] [--driver af_xdp|af_packet]`.
int runRunCommand(int argc, char** argv, int first);

}  // namespace vgate::control
