// Command-line parsing for vgated's subcommands: "--name value" or "--name=value", each option at most once,
// and a one-line error naming the problem for anything else.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "vgate/result.h"

namespace vgate::control {

struct CommandSpec {
  std::string name;                    // "replay"
  std::set<std::string> valueOptions;  // "pcap", "workers", ...
  std::set<std::string> flagOptions;   // options that take no value
};

struct CommandArguments {
  std::map<std::string, std::string> values;
  std::set<std::string> flags;

  bool has(const std::string& option) const { return values.count(option) > 0; }
  std::string get(const std::string& option, const std::string& fallback = "") const {
    auto found = values.find(option);
    return found == values.end() ? fallback : found->second;
  }
};

// Parses argv[first..argc) against `spec`.
Result<CommandArguments> parseCommandArguments(const CommandSpec& spec, int argc, char** argv, int first);

// A whole decimal number in [min, max], for option `option` (named in the error).
Result<uint64_t> parseUnsigned(const std::string& text, uint64_t min, uint64_t max,
                               const std::string& option);

}  // namespace vgate::control
