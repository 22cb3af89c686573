// The control verbs' requests: every malformed argument is refused with EINVAL and a message naming it, and
// good ones come out typed. Status JSON carries every counter of the lists.
#include "control/daemon/control_verbs.h"

#include <gtest/gtest.h>

namespace vgate::control {
namespace {

using Json = nlohmann::json;

TEST(ControlVerbs, AttachTakesANetnsOrAPid) {
  auto byPath = parseAttachRequest({{"netns", "/run/netns/a"}, {"ifname", "eth1"}, {"name", "web"}});
  ASSERT_TRUE(byPath) << byPath.error().message;
  EXPECT_EQ(byPath.value().netnsPath, "/run/netns/a");
  EXPECT_EQ(byPath.value().pid, 0);
  EXPECT_EQ(byPath.value().ifname, "eth1");
  EXPECT_EQ(byPath.value().name, "web");
  auto byPid = parseAttachRequest({{"pid", 42}});
  ASSERT_TRUE(byPid);
  EXPECT_EQ(byPid.value().pid, 42);
  EXPECT_EQ(byPid.value().ifname, "eth0");
}

TEST(ControlVerbs, AttachRefusesBadArguments) {
  struct Case {
    Json args;
    const char* message;
  } cases[] = {
      {Json::object(), "exactly one of netns and pid"},
      {{{"netns", "/x"}, {"pid", 1}}, "exactly one of netns and pid"},
      {{{"netns", ""}}, "netns must be a path"},
      {{{"netns", 5}}, "netns must be a path"},
      {{{"pid", 0}}, "pid must be a positive integer"},
      {{{"pid", -3}}, "pid must be a positive integer"},
      {{{"pid", 4294967296ll}}, "pid must be a positive integer"},
      {{{"pid", "12"}}, "pid must be a positive integer"},
      {{{"pid", 1}, {"ifname", "a-very-long-interface"}}, "ifname must be an interface name"},
      {{{"pid", 1}, {"ifname", ""}}, "ifname must be an interface name"},
      {{{"pid", 1}, {"name", 3}}, "name must be a string"},
      {{{"pid", 1}, {"colour", "red"}}, "unknown argument 'colour'"},
  };
  for (const Case& c : cases) {
    auto parsed = parseAttachRequest(c.args);
    ASSERT_FALSE(parsed) << c.args.dump();
    EXPECT_EQ(parsed.error().code, EINVAL);
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos)
        << c.args.dump() << ": " << parsed.error().message;
  }
}

TEST(ControlVerbs, DetachTakesExactlyOneSelector) {
  EXPECT_TRUE(parseDetachRequest({{"all", true}}).value().all);
  EXPECT_EQ(parseDetachRequest({{"netns", "/run/netns/a"}}).value().netnsPath, "/run/netns/a");
  EXPECT_EQ(parseDetachRequest({{"pid", 9}}).value().pid, 9);
  struct Case {
    Json args;
    const char* message;
  } cases[] = {
      {Json::object(), "exactly one of netns, pid and all"},
      {{{"all", true}, {"pid", 3}}, "exactly one of netns, pid and all"},
      {{{"all", false}}, "all must be true"},
      {{{"all", "yes"}}, "all must be true"},
      {{{"netns", 1}}, "netns must be a path"},
      {{{"pid", 0}}, "pid must be a positive integer"},
      {{{"pid", 1}, {"force", true}}, "unknown argument 'force'"},
  };
  for (const Case& c : cases) {
    auto parsed = parseDetachRequest(c.args);
    ASSERT_FALSE(parsed) << c.args.dump();
    EXPECT_EQ(parsed.error().code, EINVAL);
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos)
        << c.args.dump() << ": " << parsed.error().message;
  }
}

TEST(ControlVerbs, WorkerStatusCarriesEveryCounter) {
  dataplane::LiveWorkerStatus worker;
  worker.id = 3;
  worker.driver = "net_af_xdp";
  worker.flows = 5;
  worker.counters.denied = 7;
  worker.counters.icmpErrorsRelated = 2;
  worker.counters.parseStatus[static_cast<int>(dataplane::ParseStatus::kFragment)] = 4;
  worker.inspection.windowExceeded = 1;
  worker.lane.txDropped = 9;
  Json status = workerStatus(worker);
  EXPECT_EQ(status["id"], 3);
  EXPECT_EQ(status["flows"], 5);
  EXPECT_EQ(status["denied"], 7);  // the key vgatectl and earlier scripts read
  EXPECT_EQ(status["icmpErrorsRelated"], 2);
  EXPECT_EQ(status["txDropped"], 9);
  EXPECT_EQ(status["parseStatus"][dataplane::parseStatusName(dataplane::ParseStatus::kFragment)], 4);
  EXPECT_EQ(status["inspection"]["windowExceeded"], 1);
  // Every counter of each list is there, zero or not.
  size_t workerCounters = 0;
  worker.counters.forEach([&](const CounterInfo& info, uint64_t value) {
    ++workerCounters;
    ASSERT_TRUE(status.contains(std::string(info.name))) << info.name;
    EXPECT_EQ(status[std::string(info.name)], value) << info.name;
    EXPECT_FALSE(info.help.empty()) << info.name;
  });
  EXPECT_GE(workerCounters, 20u);
  worker.inspection.forEach([&](const CounterInfo& info, uint64_t) {
    EXPECT_TRUE(status["inspection"].contains(std::string(info.name))) << info.name;
  });
  EXPECT_EQ(status["parseStatus"].size(), static_cast<size_t>(dataplane::kParseStatusCount));
}

TEST(ControlVerbs, FastPathCountersFollowTheBpfList) {
  dataplane::FastPathStats stats;
  stats.oversize = 11;
  Json json = countersJson(stats);
  EXPECT_EQ(json.size(), static_cast<size_t>(VGATE_FP_STAT_COUNT));
  EXPECT_EQ(json["oversize"], 11);
  for (const char* name : {"hits", "misses", "denied", "notFlow", "failClosedDrops", "failOpenPasses",
                           "toSlowPath", "fromSlowPath", "badTag", "oversize"}) {
    EXPECT_TRUE(json.contains(name)) << name;
  }
}

}  // namespace
}  // namespace vgate::control
