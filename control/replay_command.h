// `vgated replay`: a capture through the dataplane, one flow record per flow.
#pragma once

namespace vgate::control {

// Returns the process exit code: 0 done, 2 bad arguments or input, 1 an internal failure.
int runReplayCommand(int argc, char** argv, int first);

}  // namespace vgate::control
