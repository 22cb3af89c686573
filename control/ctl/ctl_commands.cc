// vgatectl's commands: see ctl_commands.h.
#include "control/ctl/ctl_commands.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <system_error>
#include <vector>

#include "control/command_line.h"
#include "control/socket/control_client.h"
#include "control/socket/control_protocol.h"

namespace vgate::control {

const char* const kVgatectlUsage =
    "usage: vgatectl [--socket PATH] <command> [options]\n"
    "\n"
    "Talks to vgated over its control socket: PATH, else $VGATE_SOCKET, else /run/vgate/vgated.sock.\n"
    "\n"
    "commands:\n"
    "  attach --netns PATH [--ifname IF] [--name NAME]\n"
    "  attach --pid PID [--ifname IF] [--name NAME]\n"
    "      Put vgate in front of interface IF (default eth0) of a network namespace, given by its path\n"
    "      (/proc/PID/ns/net, /run/netns/NAME) or by a process inside it. NAME labels the port.\n"
    "  detach --netns PATH | --pid PID | --all\n"
    "      Take vgate out of one namespace, or out of every attached one.\n"
    "  status [--json]\n"
    "      Fail mode, policy, workers, attached ports, then every counter (workers, inspection, packet\n"
    "      parsing, fast path, flow log, control socket) summed over workers; --json prints the daemon's\n"
    "      answer as JSON, with each worker's counters.\n"
    "  policy apply FILE [--reevaluate]\n"
    "      Validate and compile FILE in vgated and put it in force as the next version; new flows are\n"
    "      judged by it, open flows keep their verdict unless --reevaluate. A bad policy changes nothing:\n"
    "      each problem is printed as file:line:column: rule 'name': message, and the exit status is 1.\n"
    "  policy get [--json]\n"
    "      The policy in force, as YAML that can be applied again (--json: with its version, time, source).\n"
    "  policy validate FILE\n"
    "      Validate and compile FILE in vgated without applying it.\n"
    "  policy diff FILE [--json]\n"
    "      Rules FILE adds (+), removes (-) and changes (~) against the policy in force.\n"
    "  policy history [--json]\n"
    "      Every apply vgated kept: version, time, source, name, rule count and result.\n"
    "  log reopen\n"
    "      Make vgated reopen its flow log file (after logrotate moved it), as SIGHUP does.\n"
    "\n"
    "exit status: 0 done, 1 the daemon refused (its reason on stderr), 2 bad usage,\n"
    "3 the daemon cannot be reached\n";

namespace {

using Json = nlohmann::json;

// The kernel's PID_MAX_LIMIT.
constexpr uint64_t kMaxPid = 4194304;
// IFNAMSIZ less the terminating NUL.
constexpr size_t kMaxInterfaceName = 15;
// Attaching moves interfaces between namespaces; give the daemon more time than a round trip needs.
constexpr std::chrono::seconds kCallTimeout{30};

// command_line.cc names vgated in its messages; these are vgatectl's.
Error forVgatectl(Error error) {
  const std::string from = "'vgated ";
  for (size_t at = error.message.find(from); at != std::string::npos; at = error.message.find(from, at)) {
    error.message.replace(at, from.size(), "'vgatectl ");
    at += from.size();
  }
  return error;
}

Result<CommandArguments> parseFor(const CommandSpec& spec, int argc, char** argv, int first) {
  auto parsed = parseCommandArguments(spec, argc, argv, first);
  if (!parsed) return forVgatectl(parsed.error());
  return parsed;
}

// An absolute path, since the daemon does not share our working directory.
std::string absolutePath(const std::string& path) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.string();
}

// The one namespace selector of attach/detach: {"netns": PATH} or {"pid": PID}.
Result<Json> namespaceSelector(const CommandArguments& arguments, const std::string& command,
                               bool allAllowed) {
  int given = int{arguments.has("netns")} + int{arguments.has("pid")} + int{arguments.flags.count("all") > 0};
  std::string choices = allAllowed ? "--netns PATH, --pid PID or --all" : "--netns PATH or --pid PID";
  if (given == 0) return makeError(EINVAL, command + " needs " + choices);
  if (given > 1) return makeError(EINVAL, command + " takes one of " + choices + ", not several");
  Json args = Json::object();
  if (arguments.has("netns")) {
    args["netns"] = absolutePath(arguments.get("netns"));
  } else if (arguments.has("pid")) {
    auto pid = parseUnsigned(arguments.get("pid"), 1, kMaxPid, "pid");
    if (!pid) return pid.error();
    args["pid"] = pid.value();
  } else {
    args["all"] = true;
  }
  return args;
}

// policy <subcommand> [FILE] [options]: FILE is the one word that is not an option.
Result<void> parsePolicyCommand(CtlInvocation& invocation, int argc, char** argv, int first) {
  if (first >= argc) return makeError(EINVAL, "policy needs apply, get, validate, diff or history");
  std::string sub = argv[first];
  bool takesFile = sub == "apply" || sub == "validate" || sub == "diff";
  if (!takesFile && sub != "get" && sub != "history") {
    return makeError(EINVAL, "unknown policy command '" + sub + "' (apply, get, validate, diff, history)");
  }
  std::vector<char*> options = {argv[0]};
  std::vector<std::string> files;
  for (int i = first + 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.rfind("--", 0) == 0) {
      options.push_back(argv[i]);
      if (word == "--socket" && i + 1 < argc) options.push_back(argv[++i]);
    } else {
      files.push_back(word);
    }
  }
  std::set<std::string> flags;
  if (sub == "apply") flags = {"reevaluate"};
  if (sub == "get" || sub == "diff" || sub == "history") flags = {"json"};
  auto arguments =
      parseFor({"policy " + sub, {"socket"}, flags}, static_cast<int>(options.size()), options.data(), 1);
  if (!arguments) return arguments.error();
  if (takesFile && files.size() != 1) return makeError(EINVAL, "policy " + sub + " needs one FILE");
  if (!takesFile && !files.empty()) {
    return makeError(EINVAL, "unexpected argument '" + files[0] + "' for 'vgatectl policy " + sub + "'");
  }
  invocation.subcommand = sub;
  invocation.verb = "policy." + sub;
  invocation.json = arguments.value().flags.count("json") > 0;
  if (takesFile) {
    invocation.policyFile = files[0];
    invocation.args["fileName"] = files[0];
  }
  if (arguments.value().flags.count("reevaluate")) invocation.args["reevaluate"] = true;
  if (arguments.value().has("socket")) invocation.socketPath = arguments.value().get("socket");
  return {};
}

Result<void> parseCommand(CtlInvocation& invocation, int argc, char** argv, int first) {
  const std::string& command = invocation.command;
  if (command == "attach") {
    auto arguments =
        parseFor({"attach", {"netns", "pid", "ifname", "name", "socket"}, {}}, argc, argv, first);
    if (!arguments) return arguments.error();
    auto args = namespaceSelector(arguments.value(), command, false);
    if (!args) return args.error();
    std::string ifname = arguments.value().get("ifname", "eth0");
    if (ifname.size() > kMaxInterfaceName || ifname == "." || ifname == ".." ||
        ifname.find_first_of("/: \t\n") != std::string::npos) {
      return makeError(EINVAL,
                       "option --ifname must be an interface name of 1 to 15 characters without '/', "
                       "':' or spaces, not '" +
                           ifname + "'");
    }
    args.value()["ifname"] = ifname;
    if (arguments.value().has("name")) args.value()["name"] = arguments.value().get("name");
    invocation.verb = "attach";
    invocation.args = std::move(args.value());
    if (arguments.value().has("socket")) invocation.socketPath = arguments.value().get("socket");
    return {};
  }
  if (command == "detach") {
    auto arguments = parseFor({"detach", {"netns", "pid", "socket"}, {"all"}}, argc, argv, first);
    if (!arguments) return arguments.error();
    auto args = namespaceSelector(arguments.value(), command, true);
    if (!args) return args.error();
    invocation.verb = "detach";
    invocation.args = std::move(args.value());
    if (arguments.value().has("socket")) invocation.socketPath = arguments.value().get("socket");
    return {};
  }
  if (command == "status") {
    auto arguments = parseFor({"status", {"socket"}, {"json"}}, argc, argv, first);
    if (!arguments) return arguments.error();
    invocation.verb = "status";
    invocation.json = arguments.value().flags.count("json") > 0;
    if (arguments.value().has("socket")) invocation.socketPath = arguments.value().get("socket");
    return {};
  }
  if (command == "policy") return parsePolicyCommand(invocation, argc, argv, first);
  if (command == "log") {
    if (first >= argc || std::string(argv[first]) != "reopen")
      return makeError(EINVAL, "log needs a subcommand: log reopen");
    auto arguments = parseFor({"log reopen", {"socket"}, {}}, argc, argv, first + 1);
    if (!arguments) return arguments.error();
    invocation.verb = "log-reopen";
    if (arguments.value().has("socket")) invocation.socketPath = arguments.value().get("socket");
    return {};
  }
  return makeError(EINVAL, "unknown command '" + command + "'");
}

// A field as table text: "-" when absent or null.
std::string field(const Json& object, const char* name) {
  if (!object.is_object()) return "-";
  auto found = object.find(name);
  if (found == object.end() || found->is_null()) return "-";
  if (found->is_string()) return found->get<std::string>();
  if (found->is_boolean()) return found->get<bool>() ? "yes" : "no";
  return found->dump(-1, ' ', false, Json::error_handler_t::replace);
}

struct Column {
  const char* title;
  const char* key;
  bool number;  // right-aligned
};

// Rows of `items` under a header, columns two spaces apart, each as wide as its widest cell.
std::string table(const Json& items, const std::vector<Column>& columns) {
  std::vector<std::vector<std::string>> rows;
  rows.emplace_back();
  for (const auto& column : columns) rows.back().push_back(column.title);
  for (const auto& item : items) {
    rows.emplace_back();
    for (const auto& column : columns) rows.back().push_back(field(item, column.key));
  }
  std::vector<size_t> widths(columns.size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string text;
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t i = 0; i < row.size(); ++i) {
      std::string pad(widths[i] - row[i].size(), ' ');
      line += "  ";
      line += columns[i].number ? pad + row[i] : row[i] + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    text += line + "\n";
  }
  return text;
}

}  // namespace

Result<CtlInvocation> parseCtlCommandLine(int argc, char** argv, const char* environmentSocket) {
  CtlInvocation invocation;
  invocation.socketPath =
      environmentSocket != nullptr && *environmentSocket != '\0' ? environmentSocket : kDefaultControlSocket;
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word == "--help" || word == "-h") {
      invocation.help = true;
      return invocation;
    }
  }
  bool socketGiven = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string word = argv[i];
    if (word.empty() || word[0] != '-') break;
    if (word == "--socket" || word.rfind("--socket=", 0) == 0) {
      if (socketGiven) return makeError(EINVAL, "option --socket given twice");
      std::string value;
      if (word == "--socket") {
        if (i + 1 >= argc) return makeError(EINVAL, "option --socket needs a value");
        value = argv[++i];
      } else {
        value = word.substr(sizeof("--socket=") - 1);
      }
      if (value.empty()) return makeError(EINVAL, "option --socket needs a non-empty value");
      invocation.socketPath = value;
      socketGiven = true;
      continue;
    }
    return makeError(EINVAL, "unknown option " + word);
  }
  if (i >= argc) return makeError(EINVAL, "no command given");
  invocation.command = argv[i];
  if (invocation.command == "help") {
    invocation.help = true;
    return invocation;
  }
  std::string globalSocket = invocation.socketPath;
  if (auto parsed = parseCommand(invocation, argc, argv, i + 1); !parsed) return parsed.error();
  if (socketGiven && invocation.socketPath != globalSocket) {
    return makeError(EINVAL, "option --socket given twice");
  }
  return invocation;
}

std::string formatAttachResult(const Json& result, const Json& requestArgs) {
  auto pick = [&](const char* name) {
    std::string value = field(result, name);
    return value != "-" ? value : field(requestArgs, name);
  };
  std::string name = pick("name");
  std::string netns = pick("netns");
  if (netns == "-" && requestArgs.contains("pid"))
    netns = "the namespace of pid " + field(requestArgs, "pid");
  std::string line = "attached";
  if (name != "-") line += " " + name;
  line += ": " + pick("ifname") + " in " + netns;
  std::string port = field(result, "id");
  std::string outer = field(result, "outer");
  std::string inner = field(result, "inner");
  line += " (port " + port;
  if (outer != "-" || inner != "-") line += ", " + outer + "/" + inner;
  return line + ")\n";
}

std::string formatDetachResult(const Json& result) {
  return "detached " + (field(result, "detached") == "-" ? "0" : field(result, "detached")) + " port(s)\n";
}

namespace {

constexpr size_t kCounterLineWidth = 110;

// A counter's value: a whole number, not negative.
bool isCount(const Json& value) {
  return value.is_number_unsigned() || (value.is_number_integer() && value >= 0);
}

// "name value" pairs of every count in `counters`, wrapped under an indented title.
std::string counterLines(const std::string& title, const Json& counters) {
  std::string text = "  " + title + ":";
  size_t width = text.size();
  for (const auto& [name, value] : counters.items()) {
    if (!isCount(value)) continue;
    std::string pair = " " + name + " " + std::to_string(value.get<uint64_t>());
    if (width + pair.size() > kCounterLineWidth) {
      text += "\n   ";
      width = 3;
    }
    text += pair;
    width += pair.size();
  }
  return text + "\n";
}

// The counts of every worker's object (or of its `group` member), summed by name.
Json sumOverWorkers(const Json& workers, const char* group) {
  Json sum = Json::object();
  for (const auto& worker : workers) {
    const Json* counters = &worker;
    if (group != nullptr) {
      auto found = worker.find(group);
      if (found == worker.end()) continue;
      counters = &*found;
    }
    if (!counters->is_object()) continue;
    for (const auto& [name, value] : counters->items()) {
      if (!isCount(value) || (group == nullptr && name == "id")) continue;
      sum[name] = sum.value(name, uint64_t{0}) + value.get<uint64_t>();
    }
  }
  return sum;
}

// Every counter the daemon reports, summed over workers: shown when the reply carries the counter groups
// (a daemon that reports only the summary fields gets the summary alone).
std::string countersText(const Json& result) {
  auto workers = result.find("workers");
  bool detailed =
      result.contains("flowLog") || (workers != result.end() && workers->is_array() && !workers->empty() &&
                                     (*workers)[0].is_object() && (*workers)[0].contains("inspection"));
  if (!detailed) return "";
  std::string text = "counters";
  if (workers != result.end() && workers->is_array()) {
    text += ", summed over " + std::to_string(workers->size()) + " worker(s):\n";
    text += counterLines("worker", sumOverWorkers(*workers, nullptr));
    text += counterLines("inspection", sumOverWorkers(*workers, "inspection"));
    text += counterLines("parse", sumOverWorkers(*workers, "parseStatus"));
  } else {
    text += ":\n";
  }
  if (auto fastPath = result.find("fastPath"); fastPath != result.end() && fastPath->is_object())
    text += counterLines("fast path", *fastPath);
  if (auto flowLog = result.find("flowLog"); flowLog != result.end() && flowLog->is_object())
    text += counterLines("flow log", *flowLog);
  if (auto socket = result.find("controlSocket"); socket != result.end() && socket->is_object())
    text += counterLines("control socket", *socket);
  if (auto heartbeat = result.find("heartbeat"); heartbeat != result.end() && heartbeat->is_object())
    text += counterLines("heartbeat", *heartbeat);
  return text;
}

}  // namespace

std::string formatStatusText(const Json& result) {
  if (!result.is_object()) return result.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  std::string text = "daemon " + field(result, "daemon") + ", fail mode " + field(result, "failMode") + "\n";

  auto policy = result.find("policy");
  if (policy == result.end() || !policy->is_object()) {
    text += "policy: none\n";
  } else {
    text += "policy " + field(*policy, "name") + " version " + field(*policy, "version") + ", mode " +
            field(*policy, "mode");
    if (policy->contains("rules")) text += ", " + field(*policy, "rules") + " rules";
    if (policy->contains("source"))
      text += ", applied " + field(*policy, "time") + " from " + field(*policy, "source");
    text += "\n";
  }

  if (auto fastPath = result.find("fastPath"); fastPath != result.end() && fastPath->is_object()) {
    text += "fast path: " + field(*fastPath, "hits") + " hits, " + field(*fastPath, "misses") + " misses, " +
            field(*fastPath, "denied") + " denied, " + field(*fastPath, "notFlow") + " not flow, " +
            field(*fastPath, "failClosedDrops") + " fail-closed drops, " +
            field(*fastPath, "failOpenPasses") + " fail-open passes\n";
  }

  auto workers = result.find("workers");
  if (workers == result.end() || !workers->is_array() || workers->empty()) {
    text += "workers: none\n";
  } else {
    text += "workers: " + std::to_string(workers->size()) + "\n";
    text += table(*workers, {{"ID", "id", true},
                             {"DRIVER", "driver", false},
                             {"PACKETS", "packets", true},
                             {"BYTES", "bytes", true},
                             {"FLOWS", "flows", true},
                             {"DENIED", "denied", true}});
  }

  auto ports = result.find("ports");
  if (ports == result.end() || !ports->is_array() || ports->empty()) {
    text += "ports: none\n";
  } else {
    text += "ports: " + std::to_string(ports->size()) + "\n";
    text += table(*ports, {{"ID", "id", true},
                           {"NAME", "name", false},
                           {"PID", "pid", true},
                           {"IFNAME", "ifname", false},
                           {"HOST IF", "hostIfname", false},
                           {"BRIDGE", "bridge", false},
                           {"OUTER", "outer", false},
                           {"INNER", "inner", false},
                           {"NETNS", "netns", false}});
  }
  return text + countersText(result);
}

std::string formatPolicyApplyResult(const Json& result) {
  std::string line = "applied policy '" + field(result, "name") + "' version " + field(result, "version") +
                     " (" + field(result, "rules") + " rules, mode " + field(result, "mode");
  std::string previous = field(result, "previousVersion");
  line += previous == "-" ? ", the first policy" : ", replaces version " + previous;
  line += ")";
  if (result.is_object() && result.contains("applyMillis") && result["applyMillis"].is_number()) {
    line += " in " + std::to_string(static_cast<int64_t>(result["applyMillis"].get<double>())) + " ms";
  }
  line += "\n";
  if (result.is_object() && result.value("reevaluate", false)) {
    line += result.value("openFlowsJudgedAgain", false)
                ? "open flows were judged again under it\n"
                : "note: --reevaluate was passed to the workers, but they do not judge open flows again yet: "
                  "open flows keep their verdict, new flows get the new one\n";
  }
  if (result.is_object() && result.value("persisted", true) == false) {
    line += "warning: not saved in the state dir (" + field(result, "persistError") +
            "): a restart would go back to the previous policy\n";
  }
  return line;
}

std::string formatPolicyValidateResult(const Json& result) {
  return field(result, "fileName") + ": policy '" + field(result, "name") +
         "' is valid: " + field(result, "rules") + " rules, mode " + field(result, "mode") + "\n";
}

std::string formatPolicyGetResult(const Json& result) {
  std::string text = "# vgate policy '" + field(result, "name") + "' version " + field(result, "version") +
                     ", applied " + field(result, "time") + " from " + field(result, "source") + "\n";
  std::string body = result.is_object() ? result.value("text", std::string()) : std::string();
  text += body;
  if (!body.empty() && body.back() != '\n') text += "\n";
  return text;
}

std::string formatPolicyDiffResult(const Json& result) {
  std::string text;
  auto from = result.find("from");
  std::string against = from == result.end() || !from->is_object()
                            ? std::string("no policy in force")
                            : "policy '" + field(*from, "name") + "' version " + field(*from, "version");
  text += against + " -> " + field(result.value("to", Json::object()), "fileName") + "\n";
  for (const auto& setting : result.value("settings", Json::array())) {
    text +=
        "~ " + field(setting, "field") + ": " + field(setting, "from") + " -> " + field(setting, "to") + "\n";
  }
  for (const auto& name : result.value("removed", Json::array())) {
    text += "- rule '" + (name.is_string() ? name.get<std::string>() : name.dump()) + "'\n";
  }
  for (const auto& name : result.value("added", Json::array())) {
    text += "+ rule '" + (name.is_string() ? name.get<std::string>() : name.dump()) + "'\n";
  }
  for (const auto& change : result.value("changed", Json::array())) {
    std::string fields;
    for (const auto& path : change.value("fields", Json::array())) {
      fields += (fields.empty() ? "" : ", ") + (path.is_string() ? path.get<std::string>() : path.dump());
    }
    text += "~ rule '" + field(change, "rule") + "': " + fields + "\n";
  }
  if (result.value("orderChanged", false)) text += "~ the rules both have are in another order\n";
  if (result.value("identical", false)) text += "no differences\n";
  return text;
}

std::string formatPolicyHistoryResult(const Json& result) {
  const Json& entries = result.is_object() ? result.value("history", Json::array()) : Json::array();
  if (entries.empty()) return "no policy was ever applied\n";
  std::string inForce = field(result, "inForce");
  Json rows = Json::array();
  for (const auto& entry : entries) {
    Json row = entry;
    std::string version = field(entry, "version");
    row["version"] = version == "0" ? "-" : version;
    row["current"] = version == inForce ? "*" : "";
    rows.push_back(std::move(row));
  }
  return table(rows, {{"", "current", false},
                      {"VERSION", "version", true},
                      {"TIME", "time", false},
                      {"SOURCE", "source", false},
                      {"NAME", "name", false},
                      {"RULES", "rules", true},
                      {"RESULT", "result", false}});
}

int runVgatectl(int argc, char** argv, const char* environmentSocket, std::ostream& out, std::ostream& err) {
  auto invocation = parseCtlCommandLine(argc, argv, environmentSocket);
  if (!invocation) {
    err << "vgatectl: " << invocation.error().message << " (try 'vgatectl --help')\n";
    return kCtlUsage;
  }
  if (invocation.value().help) {
    out << kVgatectlUsage;
    return kCtlOk;
  }
  CtlInvocation& request = invocation.value();
  if (!request.policyFile.empty()) {
    // The daemon gets the text, not the path: it may not see our files (another mount namespace).
    std::ifstream in(request.policyFile, std::ios::binary);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    if (!in || in.bad()) {
      err << "vgatectl: cannot read " << request.policyFile << ": " << std::strerror(errno ? errno : EIO)
          << "\n";
      return kCtlUsage;
    }
    request.args["text"] = text.str();
  }

  auto client = ControlClient::connect(request.socketPath, kCallTimeout);
  if (!client) {
    err << "vgatectl: " << client.error().message << "\n";
    return kCtlUnreachable;
  }
  auto reply = client.value().call(request.verb, request.args);
  if (!reply) {
    err << "vgatectl: no usable reply from " << request.socketPath << ": " << reply.error().message << "\n";
    return kCtlUnreachable;
  }
  const Json& result = reply.value().result;
  // A policy's problems, each on its own line as editors read them (errors, or warnings of a good one).
  for (const char* list : {"diagnostics", "warnings"}) {
    auto lines = result.find(list);
    if (request.command != "policy" || lines == result.end() || !lines->is_array()) continue;
    for (const auto& line : *lines) {
      if (line.is_string()) err << line.get<std::string>() << "\n";
    }
  }
  if (!reply.value().ok()) {
    std::string message = reply.value().error.empty() ? "(no message)" : reply.value().error;
    err << "vgatectl: " << errnoName(reply.value().status) << ": " << message << "\n";
    return kCtlDaemonError;
  }

  if (request.command == "policy") {
    if (request.json) {
      out << result.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    } else if (request.subcommand == "apply") {
      out << formatPolicyApplyResult(result);
    } else if (request.subcommand == "validate") {
      out << formatPolicyValidateResult(result);
    } else if (request.subcommand == "get") {
      out << formatPolicyGetResult(result);
    } else if (request.subcommand == "diff") {
      out << formatPolicyDiffResult(result);
    } else {
      out << formatPolicyHistoryResult(result);
    }
  } else if (request.command == "attach") {
    out << formatAttachResult(result, request.args);
  } else if (request.command == "detach") {
    out << formatDetachResult(result);
  } else if (request.command == "log") {
    out << "reopened flow log " << (result.contains("path") ? result["path"].get<std::string>() : "-")
        << "\n";
  } else if (request.json) {
    out << result.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    out << formatStatusText(result);
  }
  return kCtlOk;
}

}  // namespace vgate::control
