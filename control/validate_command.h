// `vgated validate FILE`: checks a policy document and prints every problem, one per line.
#pragma once

namespace vgate::control {

// Returns the process exit code: 0 valid, 2 invalid (or unreadable, or bad arguments).
int runValidateCommand(int argc, char** argv, int first);

}  // namespace vgate::control
