// vgatectl's command-line parsing and output formatting, in process.
#include "control/ctl/ctl_commands.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace vgate::control {
namespace {

using nlohmann::json;

Result<CtlInvocation> parse(std::vector<std::string> words, const char* environmentSocket = nullptr) {
  words.insert(words.begin(), "vgatectl");
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  return parseCtlCommandLine(static_cast<int>(argv.size()), argv.data(), environmentSocket);
}

struct GoodLine {
  std::vector<std::string> words;
  std::string verb;
  json args;
};

TEST(CtlCommandsTest, CommandLinesBecomeRequests) {
  const GoodLine cases[] = {
      {{"attach", "--netns", "/run/netns/a"}, "attach", {{"netns", "/run/netns/a"}, {"ifname", "eth0"}}},
      {{"attach", "--netns=/proc/1/ns/net", "--ifname", "eth1", "--name", "web"},
       "attach",
       {{"netns", "/proc/1/ns/net"}, {"ifname", "eth1"}, {"name", "web"}}},
      {{"attach", "--pid", "123", "--name=db"}, "attach", {{"pid", 123}, {"ifname", "eth0"}, {"name", "db"}}},
      {{"detach", "--netns", "/run/netns/a"}, "detach", {{"netns", "/run/netns/a"}}},
      {{"detach", "--pid=7"}, "detach", {{"pid", 7}}},
      {{"detach", "--all"}, "detach", {{"all", true}}},
      {{"status"}, "status", json::object()},
      {{"status", "--json"}, "status", json::object()},
  };
  for (const auto& line : cases) {
    auto parsed = parse(line.words);
    ASSERT_TRUE(parsed.ok()) << line.words[0] << ": " << parsed.error().message;
    EXPECT_EQ(parsed.value().verb, line.verb);
    EXPECT_EQ(parsed.value().args, line.args) << parsed.value().args.dump();
    EXPECT_EQ(parsed.value().socketPath, kDefaultControlSocket);
  }
  auto reopen = parse({"log", "reopen"});
  ASSERT_TRUE(reopen) << reopen.error().message;
  EXPECT_EQ(reopen.value().verb, "log-reopen");
  EXPECT_FALSE(parse({"log"}));
  EXPECT_FALSE(parse({"log", "rotate"}));
  EXPECT_TRUE(parse({"status", "--json"}).value().json);
  EXPECT_FALSE(parse({"status"}).value().json);
}

TEST(CtlCommandsTest, RelativeNetnsPathsAreMadeAbsolute) {
  auto parsed = parse({"attach", "--netns", "ns/a"});
  ASSERT_TRUE(parsed.ok());
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  EXPECT_EQ(parsed.value().args["netns"], std::string(cwd) + "/ns/a");
}

TEST(CtlCommandsTest, SocketComesFromOptionThenEnvironmentThenDefault) {
  EXPECT_EQ(parse({"status"}, "/env.sock").value().socketPath, "/env.sock");
  EXPECT_EQ(parse({"status"}, "").value().socketPath, kDefaultControlSocket);
  EXPECT_EQ(parse({"--socket", "/opt.sock", "status"}, "/env.sock").value().socketPath, "/opt.sock");
  EXPECT_EQ(parse({"--socket=/opt.sock", "status"}).value().socketPath, "/opt.sock");
  EXPECT_EQ(parse({"status", "--socket", "/late.sock"}).value().socketPath, "/late.sock");
}

TEST(CtlCommandsTest, HelpWherever) {
  EXPECT_TRUE(parse({"--help"}).value().help);
  EXPECT_TRUE(parse({"-h"}).value().help);
  EXPECT_TRUE(parse({"help"}).value().help);
  EXPECT_TRUE(parse({"attach", "--help"}).value().help);
}

struct BadLine {
  std::vector<std::string> words;
  std::string message;  // a part of the one-line error
};

TEST(CtlCommandsTest, BadCommandLinesSayWhatIsWrong) {
  const BadLine cases[] = {
      {{}, "no command given"},
      {{"--socket"}, "option --socket needs a value"},
      {{"--verbose", "status"}, "unknown option --verbose"},
      {{"frob"}, "unknown command 'frob'"},
      {{"attach"}, "attach needs --netns PATH or --pid PID"},
      {{"attach", "--netns", "/a", "--pid", "1"}, "not several"},
      {{"attach", "--pid", "abc"}, "option --pid must be a whole number from 1 to 4194304, not 'abc'"},
      {{"attach", "--pid", "0"}, "option --pid must be a whole number"},
      {{"attach", "--pid", "1", "--ifname", "a-name-that-is-too-long"}, "option --ifname must be"},
      {{"attach", "--pid", "1", "--ifname", "a/b"}, "option --ifname must be"},
      {{"attach", "--pid", "1", "--all"}, "unknown option --all for 'vgatectl attach'"},
      {{"attach", "--pid", "1", "extra"}, "unexpected argument 'extra' for 'vgatectl attach'"},
      {{"attach", "--pid", "1", "--pid", "2"}, "option --pid given twice"},
      {{"detach"}, "detach needs --netns PATH, --pid PID or --all"},
      {{"detach", "--all", "--pid", "3"}, "not several"},
      {{"detach", "--all=yes"}, "option --all takes no value"},
      {{"status", "--jsn"}, "unknown option --jsn for 'vgatectl status'"},
      {{"policy"}, "policy needs apply, get, validate, diff or history"},
      {{"policy", "remove"}, "unknown policy command 'remove'"},
      {{"policy", "apply"}, "policy apply needs one FILE"},
      {{"policy", "apply", "a.yaml", "b.yaml"}, "policy apply needs one FILE"},
      {{"policy", "apply", "a.yaml", "--json"}, "unknown option --json for 'vgatectl policy apply'"},
      {{"policy", "validate", "a.yaml", "--reevaluate"}, "unknown option --reevaluate"},
      {{"policy", "get", "a.yaml"}, "unexpected argument 'a.yaml' for 'vgatectl policy get'"},
      {{"policy", "history", "--all"}, "unknown option --all for 'vgatectl policy history'"},
      {{"policy", "apply", "a.yaml", "--reevaluate=yes"}, "option --reevaluate takes no value"},
      {{"--socket", "/a", "status", "--socket", "/b"}, "option --socket given twice"},
  };
  for (const auto& line : cases) {
    auto parsed = parse(line.words);
    ASSERT_FALSE(parsed.ok()) << line.message;
    EXPECT_NE(parsed.error().message.find(line.message), std::string::npos) << parsed.error().message;
    EXPECT_EQ(parsed.error().message.find('\n'), std::string::npos);
  }
}

TEST(CtlCommandsTest, AttachLine) {
  json result = {{"id", 1},          {"name", "web"},    {"netns", "/proc/123/ns/net"},
                 {"ifname", "eth0"}, {"inner", "vgi-1"}, {"outer", "vge-1"}};
  EXPECT_EQ(formatAttachResult(result, json::object()),
            "attached web: eth0 in /proc/123/ns/net (port 1, vge-1/vgi-1)\n");
  // What the result leaves out comes from the request.
  EXPECT_EQ(formatAttachResult({{"id", 2}}, {{"pid", 9}, {"ifname", "eth1"}}),
            "attached: eth1 in the namespace of pid 9 (port 2)\n");
}

TEST(CtlCommandsTest, DetachLine) {
  EXPECT_EQ(formatDetachResult({{"detached", 3}}), "detached 3 port(s)\n");
  EXPECT_EQ(formatDetachResult(json::object()), "detached 0 port(s)\n");
}

TEST(CtlCommandsTest, StatusText) {
  json result = json::parse(R"({"daemon":"0.1.0","failMode":"closed",
    "policy":{"name":"x","version":3,"mode":"enforce"},
    "workers":[{"id":0,"driver":"net_af_xdp","packets":10,"bytes":1500,"flows":2,"denied":1}],
    "ports":[{"id":1,"name":"web","netns":"/proc/123/ns/net","pid":123,"ifname":"eth0","hostIfname":"veth1a2b",
              "bridge":"docker0","inner":"vgi-1","outer":"vge-1"},
             {"id":12,"name":"db","netns":"/run/netns/db","ifname":"eth0"}],
    "fastPath":{"hits":5,"misses":6,"denied":0,"notFlow":1,"failClosedDrops":0,"failOpenPasses":0}})");
  std::string text = formatStatusText(result);
  EXPECT_EQ(text,
            "daemon 0.1.0, fail mode closed\n"
            "policy x version 3, mode enforce\n"
            "fast path: 5 hits, 6 misses, 0 denied, 1 not flow, 0 fail-closed drops, 0 fail-open passes\n"
            "workers: 1\n"
            "   ID  DRIVER      PACKETS  BYTES  FLOWS  DENIED\n"
            "    0  net_af_xdp       10   1500      2       1\n"
            "ports: 2\n"
            "   ID  NAME  PID  IFNAME  HOST IF   BRIDGE   OUTER  INNER  NETNS\n"
            "    1  web   123  eth0    veth1a2b  docker0  vge-1  vgi-1  /proc/123/ns/net\n"
            "   12  db      -  eth0    -         -        -      -      /run/netns/db\n");
}

TEST(CtlCommandsTest, StatusTextToleratesMissingFields) {
  EXPECT_EQ(formatStatusText(json::object()),
            "daemon -, fail mode -\npolicy: none\nworkers: none\nports: none\n");
  EXPECT_EQ(formatStatusText({{"ports", "oops"}, {"workers", {1, 2}}, {"policy", 5}}),
            "daemon -, fail mode -\npolicy: none\nworkers: 2\n"
            "   ID  DRIVER  PACKETS  BYTES  FLOWS  DENIED\n"
            "    -  -             -      -      -       -\n"
            "    -  -             -      -      -       -\n"
            "ports: none\n");
}

TEST(CtlCommandsTest, StatusTextShowsEveryCounterSummedOverWorkers) {
  json result = json::parse(R"({"daemon":"0.1.0","failMode":"open","policy":null,
    "workers":[{"id":0,"driver":"net_af_xdp","packets":10,"bytes":1500,"flows":2,"denied":1,"fragments":4,
                "inspection":{"started":3,"windowExceeded":1},"parseStatus":{"ok":9,"fragment":1}},
               {"id":1,"driver":"net_af_xdp","packets":5,"bytes":500,"flows":0,"denied":0,"fragments":0,
                "inspection":{"started":1,"windowExceeded":0},"parseStatus":{"ok":5,"fragment":0}}],
    "ports":[],
    "fastPath":{"hits":5,"misses":6,"badTag":2},
    "flowLog":{"recordsWritten":7,"writeErrors":0}})");
  std::string text = formatStatusText(result);
  EXPECT_NE(text.find("counters, summed over 2 worker(s):\n"
                      "  worker: bytes 2000 denied 1 flows 2 fragments 4 packets 15\n"
                      "  inspection: started 4 windowExceeded 1\n"
                      "  parse: fragment 1 ok 14\n"
                      "  fast path: badTag 2 hits 5 misses 6\n"
                      "  flow log: recordsWritten 7 writeErrors 0\n"),
            std::string::npos)
      << text;
}

TEST(CtlCommandsTest, CounterLinesWrapAtTheLineWidth) {
  json workers = json::array();
  json worker = {{"id", 0}};
  for (int i = 0; i < 30; ++i) worker["counterNumber" + std::to_string(i)] = 123456789u;
  workers.push_back(worker);
  std::string text = formatStatusText({{"workers", workers}, {"flowLog", {{"recordsWritten", 1}}}});
  size_t start = text.find("counters");
  ASSERT_NE(start, std::string::npos) << text;
  size_t lines = 0;
  for (size_t at = start, next; at < text.size(); at = next + 1) {
    next = text.find('\n', at);
    EXPECT_LE(next - at, 110u) << text.substr(at, next - at);
    ++lines;
  }
  EXPECT_GT(lines, 5u) << text;
  for (int i = 0; i < 30; ++i)
    EXPECT_NE(text.find(" counterNumber" + std::to_string(i) + " 123456789"), std::string::npos) << i;
}

TEST(CtlCommandsTest, PolicyCommandLinesBecomeRequests) {
  auto apply = parse({"policy", "apply", "p.yaml", "--reevaluate"});
  ASSERT_TRUE(apply.ok()) << apply.error().message;
  EXPECT_EQ(apply.value().verb, "policy.apply");
  EXPECT_EQ(apply.value().policyFile, "p.yaml");
  EXPECT_EQ(apply.value().args, json({{"fileName", "p.yaml"}, {"reevaluate", true}}));
  EXPECT_EQ(parse({"policy", "apply", "p.yaml"}).value().args, json({{"fileName", "p.yaml"}}));
  auto validate = parse({"policy", "validate", "/etc/p.yaml", "--socket", "/s"});
  ASSERT_TRUE(validate.ok()) << validate.error().message;
  EXPECT_EQ(validate.value().verb, "policy.validate");
  EXPECT_EQ(validate.value().socketPath, "/s");
  EXPECT_EQ(parse({"policy", "diff", "p.yaml"}).value().verb, "policy.diff");
  auto get = parse({"policy", "get", "--json"});
  EXPECT_EQ(get.value().verb, "policy.get");
  EXPECT_TRUE(get.value().json);
  EXPECT_EQ(get.value().args, json::object());
  EXPECT_TRUE(get.value().policyFile.empty());
  EXPECT_EQ(parse({"policy", "history"}).value().verb, "policy.history");
}

TEST(CtlCommandsTest, PolicyResultsAsText) {
  EXPECT_EQ(formatPolicyApplyResult({{"name", "p"},
                                     {"version", 4},
                                     {"previousVersion", 3},
                                     {"rules", 12},
                                     {"mode", "enforce"},
                                     {"applyMillis", 25.7},
                                     {"persisted", true}}),
            "applied policy 'p' version 4 (12 rules, mode enforce, replaces version 3) in 25 ms\n");
  EXPECT_NE(formatPolicyApplyResult({{"version", 1}, {"persisted", false}, {"persistError", "EROFS"}})
                .find("a restart would go back"),
            std::string::npos);
  EXPECT_EQ(formatPolicyGetResult({{"name", "p"},
                                   {"version", 2},
                                   {"time", "T"},
                                   {"source", "vgatectl (uid 0, pid 1)"},
                                   {"text", "spec: {}"}}),
            "# vgate policy 'p' version 2, applied T from vgatectl (uid 0, pid 1)\nspec: {}\n");
  json diff = {{"from", {{"name", "p"}, {"version", 2}}},
               {"to", {{"fileName", "n.yaml"}}},
               {"added", {"new"}},
               {"removed", {"old"}},
               {"changed", {{{"rule", "edit"}, {"fields", {"action", "match.destination.ports"}}}}},
               {"settings", {{{"field", "mode"}, {"from", "enforce"}, {"to", "audit"}}}},
               {"orderChanged", true},
               {"identical", false}};
  EXPECT_EQ(formatPolicyDiffResult(diff),
            "policy 'p' version 2 -> n.yaml\n~ mode: enforce -> audit\n- rule 'old'\n+ rule 'new'\n"
            "~ rule 'edit': action, match.destination.ports\n~ the rules both have are in another order\n");
  EXPECT_EQ(
      formatPolicyDiffResult({{"from", nullptr}, {"to", {{"fileName", "n.yaml"}}}, {"identical", true}}),
      "no policy in force -> n.yaml\nno differences\n");
  std::string history = formatPolicyHistoryResult({{"inForce", 2},
                                                   {"history",
                                                    {{{"version", 1},
                                                      {"time", "T1"},
                                                      {"source", "s"},
                                                      {"name", "a"},
                                                      {"rules", 3},
                                                      {"result", "applied"}},
                                                     {{"version", 0},
                                                      {"time", "T2"},
                                                      {"source", "s"},
                                                      {"name", "b"},
                                                      {"rules", 0},
                                                      {"result", "invalid"}},
                                                     {{"version", 2},
                                                      {"time", "T3"},
                                                      {"source", "s"},
                                                      {"name", "c"},
                                                      {"rules", 4},
                                                      {"result", "applied"}}}}});
  EXPECT_NE(history.find("VERSION"), std::string::npos) << history;
  EXPECT_NE(history.find("*        2  T3"), std::string::npos) << history;
  EXPECT_NE(history.find("-  T2"), std::string::npos) << history;
  EXPECT_EQ(formatPolicyHistoryResult({{"history", json::array()}}), "no policy was ever applied\n");
}

}  // namespace
}  // namespace vgate::control
