// `vgatectl policy apply` of a 10k-rule policy end to end through the control socket, as vgated serves it:
// the text framed and sent by ControlClient (what vgatectl uses), read by ControlServer, validated, compiled
// and published by PolicyControl to a registry with a live reader, then persisted in the state dir, the reply
// back. Baseline, in the same run: the same apply called in process (no socket, no framing, no JSON
// escaping). Cold (empty Hyperscan cache) and warm (cache hit, as on a re-apply or after `policy validate`).
// A thread that ticks every 200 ms, as vgated's heartbeat does, reports its longest gap during the applies.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "control/daemon/policy_control.h"
#include "control/socket/control_client.h"
#include "control/socket/control_server.h"
#include "dataplane/verdict/policy_registry.h"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using namespace vgate;

// policy_compile_bench's mix: 40% L3/L4, 30% SNI literals, 20% "*.suffix", 10% SNI regexes. `salt` makes a
// policy whose regexes are new (a cold compile).
std::string makePolicy(int rules, int salt) {
  std::mt19937 engine(static_cast<uint32_t>(rules));
  auto below = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(engine); };
  auto cidr = [&] {
    uint32_t address = 10u << 24 | below(1u << 24);
    int length = 16 + static_cast<int>(below(17));
    address &= length == 32 ? ~0u : ~((1u << (32 - length)) - 1);
    return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 255) + "." +
           std::to_string((address >> 8) & 255) + "." + std::to_string(address & 255) + "/" +
           std::to_string(length);
  };
  std::string text = "apiVersion: vgate.io/v1\nkind: Policy\nmetadata:\n  name: bench-" +
                     std::to_string(rules) + "\nspec:\n  mode: enforce\n  default: allow\n  rules:\n";
  for (int i = 0; i < rules; ++i) {
    int kind = i % 10;
    text += "    - name: r" + std::to_string(i) + "\n      action: " + (i % 3 == 0 ? "allow" : "deny") +
            "\n      match:\n";
    if (kind < 4) {
      text += std::string("        protocol: ") + (below(2) ? "tcp" : "udp") + "\n";
      text += "        source: {cidrs: [\"" + cidr() + "\"]}\n";
      text += "        destination: {cidrs: [\"" + cidr() + "\"], ports: [" +
              std::to_string(1 + below(10000)) + "]}\n";
      continue;
    }
    text += "        protocol: tcp\n        destination: {cidrs: [\"" + cidr() + "\"], ports: [443]}\n";
    if (kind < 7) {
      text += "        tls: {sni: [\"host" + std::to_string(i) + ".svc" + std::to_string(i % 97) +
              ".example\"]}\n";
    } else if (kind < 9) {
      text += "        tls: {sni: [\"*.zone" + std::to_string(i) + ".example\"]}\n";
    } else {
      text += "        tls: {sniRegex: [\"api" + std::to_string(i) + "s" + std::to_string(salt) +
              "-[0-9]+\\\\.svc[a-z]*\\\\.example\"]}\n";
    }
  }
  return text;
}

double millisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main() {
  bench::startEal(2048);
  constexpr int kRules = 10000;
  constexpr int kWarmRuns = 3;
  std::string dir =
      (std::filesystem::temp_directory_path() / ("vgate-applybench-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);

  auto registry = dataplane::PolicyRegistry::create(1).value();
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    if (!registry->registerWorker(0)) return;
    while (!stop.load(std::memory_order_relaxed)) {
      (void)registry->current();
      registry->quiescent(0);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    registry->unregisterWorker(0);
  });
  std::atomic<double> longestTickGapMs{0};
  std::thread ticker([&] {
    auto last = Clock::now();
    while (!stop.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      double gap = millisSince(last);
      last = Clock::now();
      if (gap > longestTickGapMs.load()) longestTickGapMs = gap;
    }
  });

  control::PolicyControlOptions options;
  options.stateDir = dir + "/state";
  options.workers = 1;
  options.compile.cacheDir = dir + "/cache";
  auto policy = control::PolicyControl::open(options, registry.get(), nullptr).value();
  control::ControlHandlers handlers;
  handlers["policy.apply"] = [&](const Json& args, const control::PeerCredentials& peer) {
    return policy->apply(args, peer);
  };
  std::string socket = dir + "/bench.sock";
  auto server = control::ControlServer::start(socket, std::move(handlers), {}).value();

  auto throughSocket = [&](const std::string& text) {
    auto started = Clock::now();
    auto client = control::ControlClient::connect(socket, std::chrono::seconds(120)).value();
    auto reply = client.call("policy.apply", {{"text", text}, {"fileName", "bench.yaml"}});
    double ms = millisSince(started);
    if (!reply || !reply.value().ok()) {
      std::fprintf(stderr, "apply failed: %s\n",
                   reply ? reply.value().error.c_str() : reply.error().message.c_str());
      std::exit(1);
    }
    return ms;
  };
  auto inProcess = [&](const std::string& text) {
    auto started = Clock::now();
    auto reply = policy->apply({{"text", text}, {"fileName", "bench.yaml"}}, control::PeerCredentials{});
    double ms = millisSince(started);
    if (!reply.ok()) {
      std::fprintf(stderr, "apply failed: %s\n", reply.error.c_str());
      std::exit(1);
    }
    return ms;
  };
  auto median = [](std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };

  std::string first = makePolicy(kRules, 1);
  std::string second = makePolicy(kRules, 2);
  std::printf("policy of %d rules: %.2f MB of YAML\n", kRules, first.size() / 1e6);
  // Cold: each text's regexes are new to the cache.
  double socketCold = throughSocket(first);
  double processCold = inProcess(second);
  std::vector<double> socketWarm, processWarm;
  for (int i = 0; i < kWarmRuns; ++i) {
    socketWarm.push_back(throughSocket(i % 2 ? first : second));
    processWarm.push_back(inProcess(i % 2 ? second : first));
  }
  stop = true;
  reader.join();
  ticker.join();
  server->stop();

  std::printf("\n%-52s %12s %12s %8s\n", "policy apply, 10k rules (ms)", "socket", "in process", "ratio");
  std::printf("%-52s %12.0f %12.0f %8.2f\n", "cold (empty Hyperscan cache)", socketCold, processCold,
              socketCold / processCold);
  std::printf("%-52s %12.0f %12.0f %8.2f\n", "warm (median of 3)", median(socketWarm), median(processWarm),
              median(socketWarm) / median(processWarm));
  std::printf("longest gap of a 200 ms ticker thread during the applies: %.0f ms\n", longestTickGapMs.load());
  std::filesystem::remove_all(dir);
  return 0;
}
