// Command-line parsing: see command_line.h.
#include "control/command_line.h"

#include <cerrno>
#include <cstdlib>

namespace vgate::control {

Result<CommandArguments> parseCommandArguments(const CommandSpec& spec, int argc, char** argv, int first) {
  CommandArguments arguments;
  for (int i = first; i < argc; ++i) {
    std::string word = argv[i];
    if (word.rfind("--", 0) != 0 || word.size() == 2) {
      return makeError(EINVAL, "unexpected argument '" + word + "' for 'vgated " + spec.name + "'");
    }
    std::string name = word.substr(2);
    std::string value;
    bool inlineValue = false;
    if (auto equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
      inlineValue = true;
    }
    if (spec.flagOptions.count(name)) {
      if (inlineValue) return makeError(EINVAL, "option --" + name + " takes no value");
      arguments.flags.insert(name);
      continue;
    }
    if (!spec.valueOptions.count(name)) {
      return makeError(EINVAL, "unknown option --" + name + " for 'vgated " + spec.name + "'");
    }
    if (arguments.values.count(name)) return makeError(EINVAL, "option --" + name + " given twice");
    if (!inlineValue) {
      if (i + 1 >= argc) return makeError(EINVAL, "option --" + name + " needs a value");
      value = argv[++i];
    }
    if (value.empty()) return makeError(EINVAL, "option --" + name + " needs a non-empty value");
    arguments.values[name] = value;
  }
  return arguments;
}

Result<uint64_t> parseUnsigned(const std::string& text, uint64_t min, uint64_t max,
                               const std::string& option) {
  bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  uint64_t value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE || value < min || value > max) {
    return makeError(EINVAL, "option --" + option + " must be a whole number from " + std::to_string(min) +
                                 " to " + std::to_string(max) + ", not '" + text + "'");
  }
  return value;
}

}  // namespace vgate::control
