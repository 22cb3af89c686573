// vgated's live mode: see daemon.h.
#include "control/daemon/daemon.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "control/daemon/control_verbs.h"
#include "control/daemon/policy_control.h"
#include "control/daemon/port_store.h"
#include "control/daemon/trunks.h"
#include "control/flowlog/flow_log_pump.h"
#include "control/flowlog/flow_log_writer.h"
#include "control/interposer/interposer.h"
#include "control/metrics/daemon_metrics.h"
#include "control/policy/policy_loader.h"
#include "control/socket/control_server.h"
#include "dataplane/eal/eal.h"
#include "dataplane/fastpath/fast_path.h"
#include "dataplane/inspect/inspector.h"
#include "dataplane/live/live_dataplane.h"
#include "dataplane/verdict/compiled_policy.h"
#include "dataplane/verdict/policy_registry.h"
#include "vgate/clock.h"

namespace vgate::control {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kHeartbeatInterval = std::chrono::milliseconds(200);
constexpr int kLoopWaitMs = 50;
// Fast path entries idle for longer than any flow timeout belong to no worker (a previous vgated's flows,
// or entries whose flow the worker lost track of): swept once a minute.
constexpr auto kOrphanSweepInterval = std::chrono::seconds(60);
// The longest flow timeout, plus a minute for the worker's own sweep to have run.
constexpr uint64_t kOrphanIdleNs = (dataplane::FlowTimeouts{}.tcpEstablishedUs + 60'000'000ull) * 1000ull;

void log(const std::string& message) { std::fprintf(stderr, "vgated: %s\n", message.c_str()); }

// The pinned maps need a bpffs: the node's /sys/fs/bpf when it is mounted (the DaemonSet mounts it from the
// host), else a bpffs of vgate's own on the directory, which outlives vgated until the node reboots.
Result<void> ensureBpffs(const std::string& directory) {
  struct statfs info {};
  if (statfs(directory.c_str(), &info) == 0 && static_cast<unsigned long>(info.f_type) == BPF_FS_MAGIC)
    return {};
  if (mount("bpf", directory.c_str(), "bpf", 0, "mode=0700") != 0) {
    return makeError(errno, "cannot mount a bpffs on " + directory + ": " + std::strerror(errno));
  }
  return {};
}

class Daemon {
 public:
  explicit Daemon(const DaemonOptions& options) : options_(options) {}
  int run();

 private:
  Result<void> start();
  void stop();
  Result<void> adoptPorts();
  Result<void> wirePort(const PortPair& pair);
  void unwirePort(const PortPair& pair);
  Result<void> savePorts();
  void reapVanishedPorts();
  // The ports as status lists them, rebuilt after every change under mutex_, so that status never waits for
  // an attach or a long detach.
  void snapshotPorts();

  // The heartbeat runs on its own thread, so that nothing the main loop or a verb waits for (a stalled disk
  // or stdout under the flow log, a long detach --all, a policy compile) can let it go stale and put the node
  // under the fail mode.
  void startHeartbeat();
  void stopHeartbeat();
  void beat();

  // SIGHUP's policy part: re-reads --policy on a thread of its own (a compile can take seconds).
  void reloadPolicyOnSighup();
  void stopPolicyReload();

  ControlReply attach(const Json& args);
  ControlReply detach(const Json& args);
  ControlReply status();
  ControlReply reopenFlowLog();
  void startFlowLog();
  void stopFlowLog();

  DaemonOptions options_;
  std::unique_ptr<Interposer> interposer_;
  std::unique_ptr<dataplane::EalSession> eal_;
  std::unique_ptr<dataplane::FastPath> fastPath_;
  std::unique_ptr<dataplane::PolicyRegistry> policies_;
  std::unique_ptr<dataplane::LiveDataplane> live_;
  std::unique_ptr<ControlServer> server_;
  dataplane::PortTable portTable_;
  std::vector<Trunk> trunks_;
  std::unique_ptr<PolicyControl> policyControl_;

  std::unique_ptr<FlowLogWriter> writer_;
  std::mutex writerMutex_;    // writer_'s names: a policy apply vs an attach (the writer is thread-safe too)
  std::mutex snapshotMutex_;  // portsSnapshot_, for status
  Json portsSnapshot_ = Json::array();
  std::unique_ptr<FlowLogPump> flowLogPump_;  // the flow-log thread: the rings to the writer
  std::unique_ptr<metrics::DaemonMetrics> metrics_;  // its sink() tees records to writer_

  int lockFd_ = -1;   // flock on the state dir, held for the daemon's life
  std::mutex mutex_;  // the ports and everything attach/detach touch: control handlers vs main loop
  std::map<uint16_t, PortPair> ports_;
  Clock::time_point lastOrphanSweep_ = Clock::now();

  std::thread heartbeat_;
  std::mutex heartbeatMutex_;  // only heartbeatStop_ and its wake-up: never held across a beat
  std::condition_variable heartbeatWake_;
  bool heartbeatStop_ = false;
  std::atomic<uint64_t> beats_{0};
  std::atomic<uint64_t> beatsSkipped_{0};  // a worker had not gone round its loop: no beat
  std::atomic<uint64_t> beatFailures_{0};
  std::atomic<int64_t> lastBeatNs_{0};  // steady clock
  uint64_t beatFailuresLogged_ = 0;     // main loop: failures already logged

  std::thread policyReload_;
  std::atomic<bool> reloadWanted_{false};
  std::atomic<bool> reloading_{false};
};

Result<void> Daemon::start() {
  std::error_code error;
  std::filesystem::create_directories(options_.stateDir, error);
  if (error)
    return makeError(error.value(), "cannot create state dir " + options_.stateDir + ": " + error.message());
  // One vgated per state dir: a second one must fail before it touches the trunks, maps or ports.
  std::string lockPath = options_.stateDir + "/vgated.lock";
  lockFd_ = open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockFd_ < 0) return makeError(errno, "cannot open " + lockPath + ": " + std::strerror(errno));
  if (flock(lockFd_, LOCK_EX | LOCK_NB) != 0) {
    int code = errno == EWOULDBLOCK ? EBUSY : errno;
    close(lockFd_);
    lockFd_ = -1;
    return makeError(code, "another vgated runs with state dir " + options_.stateDir);
  }
  std::filesystem::create_directories(options_.bpffsDir, error);
  if (error) return makeError(error.value(), "cannot create " + options_.bpffsDir + ": " + error.message());
  if (auto mounted = ensureBpffs(options_.bpffsDir); !mounted) return mounted.error();

  // A bad --policy stops the start before anything is touched (whether it is then applied or the persisted
  // policy wins, see PolicyControl::restore).
  if (!options_.policyPath.empty()) {
    policy::Policy policy;
    auto diagnostics = validatePolicyFile(options_.policyPath, &policy);
    if (!diagnostics) return diagnostics.error();
    if (hasPolicyErrors(diagnostics.value())) {
      for (const auto& diagnostic : diagnostics.value())
        std::fprintf(stderr, "%s\n", diagnostic.toString().c_str());
      return makeError(EINVAL, "policy " + options_.policyPath + " is invalid");
    }
  }

  FlowLogOptions flowLogOptions;
  // More metadata pending than the flow tables hold flows means end records were lost: the oldest goes.
  flowLogOptions.maxPendingMetadata = size_t{options_.flowsPerWorker} * options_.workers;
  flowLogOptions.maxFileBytes = options_.flowLogMaxBytes;
  flowLogOptions.maxFiles = options_.flowLogMaxFiles;
  auto writer = FlowLogWriter::open(options_.flowLog, flowLogOptions);
  if (!writer) return writer.error();
  writer_ = std::move(writer).value();
  metrics_ = std::make_unique<metrics::DaemonMetrics>(*writer_, VGATE_VERSION);

  std::string netnsPath = options_.stateDir + "/netns";
  if (auto made = ensurePersistentNetns(netnsPath); !made) return made.error();
  auto interposer = Interposer::open(netnsPath);
  if (!interposer) return interposer.error();
  interposer_ = std::move(interposer).value();

  {
    // Trunks, the fast path's tc hooks and the DPDK ports live in vgate's netns: build them from there. EAL's
    // threads start there too; the sockets they open stay bound to it when this thread goes back.
    auto inside = EnterNetns::enter(interposer_->vgateNetns());
    if (!inside) return inside.error();
    auto trunks = createTrunks(options_.workers);
    if (!trunks) return trunks.error();
    trunks_ = std::move(trunks).value();

    dataplane::FastPathOptions fastPathOptions;
    fastPathOptions.maxFlows = options_.fastPathFlows;
    fastPathOptions.pinDir = options_.bpffsDir;
    fastPathOptions.keepAttached = true;  // a stop or a crash leaves interception to the fail mode
    auto fastPath = dataplane::FastPath::load(fastPathOptions);
    if (!fastPath) return fastPath.error();
    fastPath_ = std::move(fastPath).value();
    if (auto set = fastPath_->setFailMode(options_.failMode, options_.heartbeatTimeoutMs); !set)
      return set.error();
    std::vector<uint32_t> trunkIfindexes;
    for (const Trunk& trunk : trunks_) {
      if (auto attached = fastPath_->attachTrunkReturn(trunk.ifindex); !attached) return attached.error();
      trunkIfindexes.push_back(static_cast<uint32_t>(trunk.ifindex));
    }

    dataplane::EalOptions ealOptions;
    ealOptions.programName = "vgated";
    ealOptions.lcores = options_.workers + 1u;
    uint64_t perWorker = uint64_t{options_.flowsPerWorker} * 256 + (64u << 20) +
                         uint64_t{options_.inspectionSlots} * sizeof(dataplane::InspectionState) +
                         dataplane::liveRecordPoolSizes(options_.flowsPerWorker).bytesPerWorker();
    ealOptions.memoryMb = static_cast<uint32_t>((perWorker * options_.workers + (256u << 20)) >> 20);
    auto eal = dataplane::EalSession::start(ealOptions);
    if (!eal) return eal.error();
    eal_ = std::move(eal).value();

    // A registry even without a policy, so that workers are registered when one is applied later.
    auto registry = dataplane::PolicyRegistry::create(options_.workers);
    if (!registry) return registry.error();
    policies_ = std::move(registry).value();
    PolicyControlOptions policyOptions;
    policyOptions.stateDir = options_.stateDir;
    policyOptions.workers = options_.workers;
    policyOptions.compile.cacheDir = options_.stateDir + "/policy-cache";
    std::filesystem::create_directories(policyOptions.compile.cacheDir, error);
    metrics::DaemonMetrics* metrics = metrics_.get();
    policyOptions.onCompiled = [metrics](const policy::Policy* published, uint32_t version, double seconds) {
      metrics->flows().policyApplied(published != nullptr, seconds);
      if (published != nullptr) metrics->flows().setPolicy(*published, version);
    };
    auto control = PolicyControl::open(policyOptions, policies_.get(), [this](PolicyNames names) {
      std::lock_guard lock(writerMutex_);
      writer_->setPolicyNames(std::move(names));
    });
    if (!control) return control.error();
    policyControl_ = std::move(control).value();
    auto restored = policyControl_->restore(options_.policyPath);
    if (!restored) return restored.error();
    log(restored.value());

    dataplane::LiveOptions liveOptions;
    for (const Trunk& trunk : trunks_) liveOptions.trunkInterfaces.push_back(trunk.farName);
    liveOptions.driver = options_.driver;
    liveOptions.flowCapacity = options_.flowsPerWorker;
    liveOptions.inspectionSlots = options_.inspectionSlots;
    liveOptions.inspectionTimeoutUs = uint64_t{options_.inspectionTimeoutSeconds} * 1'000'000;
    liveOptions.exceptionPolicy = options_.exceptionPolicy == "drop"   ? dataplane::ExceptionPolicy::kDrop
                                  : options_.exceptionPolicy == "pass" ? dataplane::ExceptionPolicy::kPass
                                                                       : dataplane::ExceptionPolicy::kPolicy;
    liveOptions.policies = policies_.get();
    liveOptions.fastPath = fastPath_.get();
    liveOptions.ports = &portTable_;
    liveOptions.offload = options_.offload;
    liveOptions.ioForward = options_.ioForward;
    auto live = dataplane::LiveDataplane::start(liveOptions);
    if (!live) return live.error();
    live_ = std::move(live).value();
    startFlowLog();

    // Misses go down the trunks only now that workers read them.
    if (auto set = fastPath_->setTrunks(trunkIfindexes, kTrunkMaxFrame); !set) return set.error();
  }

  startHeartbeat();
  if (auto adopted = adoptPorts(); !adopted) return adopted.error();

  ControlHandlers handlers;
  handlers["attach"] = [this](const Json& args, const PeerCredentials&) { return attach(args); };
  handlers["detach"] = [this](const Json& args, const PeerCredentials&) { return detach(args); };
  handlers["status"] = [this](const Json&, const PeerCredentials&) { return status(); };
  PolicyControl* policy = policyControl_.get();
  handlers["policy.apply"] = [policy](const Json& args, const PeerCredentials& peer) {
    return policy->apply(args, peer);
  };
  handlers["policy.validate"] = [policy](const Json& args, const PeerCredentials&) {
    return policy->validate(args);
  };
  handlers["policy.diff"] = [policy](const Json& args, const PeerCredentials&) { return policy->diff(args); };
  handlers["policy.get"] = [policy](const Json& args, const PeerCredentials&) { return policy->get(args); };
  handlers["policy.history"] = [policy](const Json& args, const PeerCredentials&) {
    return policy->history(args);
  };
  handlers["log-reopen"] = [this](const Json&, const PeerCredentials&) { return reopenFlowLog(); };
  metrics_->countRequests(handlers);
  ControlServerOptions serverOptions;
  serverOptions.daemonVersion = VGATE_VERSION;
  if (!options_.socketGroup.empty()) {
    auto group = groupId(options_.socketGroup);
    if (!group) return makeError(group.error().code, "--socket-group: " + group.error().message);
    serverOptions.socketGroup = group.value();
  }
  auto server = ControlServer::start(options_.socketPath, std::move(handlers), serverOptions);
  if (!server) return server.error();
  server_ = std::move(server).value();
  if (!options_.metricsAddress.empty()) {
    auto served = metrics_->serve(options_.metricsAddress, options_.bpffsDir, [this] {
      metrics::DataplaneSnapshot snapshot;
      snapshot.workers = live_->status();
      snapshot.fastPath = fastPath_->stats();
      std::lock_guard lock(mutex_);
      snapshot.flowLog = writer_->counters();
      for (const auto& [id, pair] : ports_) snapshot.attachedPorts.push_back(id);
      return snapshot;
    });
    if (!served) return served.error();
    log("serving metrics on http://" + options_.metricsAddress + "/metrics");
  }
  log("running: " + std::to_string(options_.workers) + " worker(s) on " + options_.driver + ", fail mode " +
      failModeName(options_.failMode) + ", " + std::to_string(ports_.size()) + " port(s) adopted, socket " +
      options_.socketPath);
  return {};
}

void Daemon::startHeartbeat() {
  beat();  // at once: the adoption and the socket that follow may take a while
  heartbeat_ = std::thread([this] {
    std::unique_lock lock(heartbeatMutex_);
    while (!heartbeatWake_.wait_for(lock, kHeartbeatInterval, [this] { return heartbeatStop_; })) {
      lock.unlock();
      beat();
      lock.lock();
    }
  });
}

void Daemon::stopHeartbeat() {
  if (!heartbeat_.joinable()) return;
  {
    std::lock_guard lock(heartbeatMutex_);
    heartbeatStop_ = true;
  }
  heartbeatWake_.notify_all();
  heartbeat_.join();
}

// The heartbeat thread's only work: two atomic reads per worker and one map write. It logs nothing itself (a
// stalled stderr would stall it): the main loop reports failures.
void Daemon::beat() {
  // Only a dataplane whose workers all turn round keeps the fast path sending it new flows.
  if (!live_->workersAlive(options_.heartbeatTimeoutMs / 2)) {
    ++beatsSkipped_;
    return;
  }
  if (auto ok = fastPath_->beat(); !ok) {
    ++beatFailures_;
    return;
  }
  ++beats_;
  lastBeatNs_ = Clock::now().time_since_epoch().count();
}

void Daemon::reloadPolicyOnSighup() {
  if (options_.policyPath.empty()) {
    log("SIGHUP: vgated runs without --policy, there is no policy file to read again");
    return;
  }
  reloadWanted_ = true;
  if (reloading_.exchange(true)) return;               // the reload that runs takes this one too
  if (policyReload_.joinable()) policyReload_.join();  // finished: reloading_ was false
  policyReload_ = std::thread([this] {
    do {
      while (reloadWanted_.exchange(false)) {
        auto reloaded = policyControl_->reloadFile(options_.policyPath);
        log(reloaded ? "SIGHUP: " + reloaded.value()
                     : "SIGHUP: " + reloaded.error().message + "\nthe policy in force is unchanged");
      }
      reloading_ = false;
      // A SIGHUP that came after the last check and saw reloading_ still true is taken here.
    } while (reloadWanted_ && !reloading_.exchange(true));
  });
}

void Daemon::stopPolicyReload() {
  if (policyReload_.joinable()) policyReload_.join();
}

Result<void> Daemon::wirePort(const PortPair& pair) {
  auto inside = EnterNetns::enter(interposer_->vgateNetns());
  if (!inside) return inside.error();
  auto inner = static_cast<uint32_t>(pair.innerIfindex);
  auto outer = static_cast<uint32_t>(pair.outerIfindex);
  // The maps first, then the programs: a packet the program sees finds its port known.
  for (auto step : {fastPath_->setPort(inner, outer, pair.id, VGATE_FP_SIDE_INNER),
                    fastPath_->setPort(outer, inner, pair.id, VGATE_FP_SIDE_OUTER),
                    fastPath_->setPair(pair.id, inner, outer)}) {
    if (!step) return step.error();
  }
  portTable_.set(pair.id, {inner, outer});
  if (auto attached = fastPath_->attachIngress(pair.outerIfindex); !attached) return attached.error();
  if (auto attached = fastPath_->attachIngress(pair.innerIfindex); !attached) return attached.error();
  {
    std::lock_guard lock(writerMutex_);
    writer_->setPortIdentity({pair.id, pair.name, pair.containerIfname, pair.hostIfname});
  }
  metrics_->flows().setPortName(pair.id, pair.name.empty() ? pair.hostIfname : pair.name);
  return {};
}

void Daemon::unwirePort(const PortPair& pair) {
  auto inside = EnterNetns::enter(interposer_->vgateNetns());
  (void)fastPath_->detachIngress(pair.innerIfindex);  // gone with a dead container's netns: nothing to detach
  (void)fastPath_->detachIngress(pair.outerIfindex);
  portTable_.clear(pair.id);
  (void)fastPath_->setPair(pair.id, 0, 0);
  (void)fastPath_->removePort(static_cast<uint32_t>(pair.innerIfindex));
  (void)fastPath_->removePort(static_cast<uint32_t>(pair.outerIfindex));
  fastPath_->removeFlowsOf(static_cast<uint32_t>(pair.innerIfindex));
  fastPath_->removeFlowsOf(static_cast<uint32_t>(pair.outerIfindex));
}

Result<void> Daemon::savePorts() { return PortStore(options_.stateDir).save(ports_); }

// The pairs a previous vgated left: wired again into this fast path, or cleaned up when their container died
// meanwhile.
Result<void> Daemon::adoptPorts() {
  auto stored = PortStore(options_.stateDir).load();
  if (!stored) return stored.error();
  std::lock_guard lock(mutex_);
  for (const PortPair& pair : stored.value()) {
    auto exists = interposer_->innerExists(pair);
    if (!exists) return exists.error();
    if (!exists.value()) {
      log("port " + std::to_string(pair.id) + " (" + pair.name +
          ") lost its container while vgated was down: cleaning up");
      unwirePort(pair);
      (void)interposer_->cleanup(pair);
      continue;
    }
    if (auto wired = wirePort(pair); !wired) return wired.error();
    ports_[pair.id] = pair;
  }
  snapshotPorts();
  return savePorts();
}

void Daemon::snapshotPorts() {
  Json ports = Json::array();
  for (const auto& [id, pair] : ports_) ports.push_back(portSummary(pair));
  std::lock_guard lock(snapshotMutex_);
  portsSnapshot_ = std::move(ports);
}

void Daemon::reapVanishedPorts() {
  auto vanished = interposer_->takeVanishedPorts();
  std::lock_guard lock(mutex_);
  std::vector<uint16_t> ids;
  if (vanished) {
    ids = vanished.value();
  } else {
    // Notifications were lost: look at every pair.
    for (const auto& [id, pair] : ports_) {
      auto exists = interposer_->innerExists(pair);
      if (exists && !exists.value()) ids.push_back(id);
    }
  }
  bool changed = false;
  for (uint16_t id : ids) {
    auto found = ports_.find(id);
    if (found == ports_.end()) continue;
    log("port " + std::to_string(id) + " (" + found->second.name + "): container gone, cleaning up");
    unwirePort(found->second);
    if (auto cleaned = interposer_->cleanup(found->second); !cleaned)
      log("cleanup: " + cleaned.error().message);
    ports_.erase(found);
    changed = true;
  }
  if (changed) {
    snapshotPorts();
    if (auto saved = savePorts(); !saved) log(saved.error().message);
  }
}

ControlReply Daemon::attach(const Json& args) {
  auto parsed = parseAttachRequest(args);
  if (!parsed) return ControlReply::failure(parsed.error().code, parsed.error().message);
  const AttachRequest& request = parsed.value();
  std::lock_guard lock(mutex_);
  uint16_t id = 1;
  while (id < VGATE_FP_MAX_PAIRS - 1 && ports_.count(id)) ++id;
  if (id >= VGATE_FP_MAX_PAIRS - 1) return ControlReply::failure(ENOSPC, "every port id is in use");
  auto pair = interposer_->attach(request, id);
  if (!pair) return ControlReply::failure(pair.error().code, pair.error().message);
  if (auto wired = wirePort(pair.value()); !wired) {
    unwirePort(pair.value());
    (void)interposer_->detach(pair.value());  // back as it was
    return ControlReply::failure(wired.error().code, "cannot wire the fast path: " + wired.error().message);
  }
  ports_[id] = pair.value();
  snapshotPorts();
  if (auto saved = savePorts(); !saved) log(saved.error().message);
  log("attached " + pair.value().name + ": " + pair.value().containerIfname + " in " +
      pair.value().netnsPath + " as port " + std::to_string(id));
  return ControlReply::success(portSummary(pair.value()));
}

ControlReply Daemon::detach(const Json& args) {
  auto parsed = parseDetachRequest(args);
  if (!parsed) return ControlReply::failure(parsed.error().code, parsed.error().message);
  const DetachRequest& request = parsed.value();
  std::lock_guard lock(mutex_);
  std::vector<uint16_t> chosen;
  if (request.all) {
    for (const auto& [id, pair] : ports_) chosen.push_back(id);
  } else {
    Result<Netns> target = request.pid != 0 ? Netns::ofPid(request.pid) : Netns::open(request.netnsPath);
    if (!target) return ControlReply::failure(target.error().code, target.error().message);
    for (const auto& [id, pair] : ports_) {
      auto netns = pair.pid != 0 ? Netns::ofPid(pair.pid) : Netns::open(pair.netnsPath);
      if (netns && netns.value().sameAs(target.value())) chosen.push_back(id);
    }
    if (chosen.empty()) return ControlReply::failure(ENOENT, "no port of that namespace is attached");
  }
  size_t detached = 0;
  std::string failures;
  for (uint16_t id : chosen) {
    PortPair pair = ports_[id];
    unwirePort(pair);
    auto restored = interposer_->detach(pair);
    if (!restored && restored.error().code != ENOENT) {
      failures += (failures.empty() ? "" : "; ") + pair.name + ": " + restored.error().message;
      (void)wirePort(pair);  // still interposed: keep it served
      continue;
    }
    ports_.erase(id);
    ++detached;
    snapshotPorts();
    log("detached port " + std::to_string(id) + " (" + pair.name + ")");
  }
  if (auto saved = savePorts(); !saved) log(saved.error().message);
  if (!failures.empty()) return ControlReply::failure(EIO, "detach failed for " + failures);
  return ControlReply::success(Json{{"detached", detached}});
}

// Takes none of the locks attach, detach or the flow log hold: it reads snapshots and counters.
ControlReply Daemon::status() {
  Json result;
  result["daemon"] = VGATE_VERSION;
  result["failMode"] = failModeName(options_.failMode);
  result["policy"] = policyControl_->summary();
  Json workers = Json::array();
  for (const auto& worker : live_->status()) workers.push_back(workerStatus(worker));
  result["workers"] = std::move(workers);
  {
    std::lock_guard lock(snapshotMutex_);
    result["ports"] = portsSnapshot_;
  }
  result["flowLog"] = countersJson(writer_->counters());  // a snapshot: never waits on the log's I/O
  result["fastPath"] = countersJson(fastPath_->stats());
  result["controlSocket"] = countersJson(server_->counters());
  int64_t lastBeat = lastBeatNs_.load();
  result["heartbeat"] = {
      {"beats", beats_.load()},
      {"skipped", beatsSkipped_.load()},
      {"failures", beatFailures_.load()},
      {"ageMs", lastBeat == 0 ? Json(nullptr)
                              : Json((Clock::now().time_since_epoch().count() - lastBeat) / 1'000'000)}};
  return ControlReply::success(std::move(result));
}

// The workers' record counters, summed, for the flow log's stats line.
std::vector<std::pair<std::string, uint64_t>> workerRecordCounters(const dataplane::LiveDataplane& live) {
  dataplane::WorkerCounters sum;
  for (const auto& worker : live.status()) sum.add(worker.counters);
  return {{"flowsCreated", sum.flowsCreated},
          {"flowsEnded", sum.flowsEnded},
          {"recordsLost", sum.recordsLost},
          {"recordsLostNoRecord", sum.recordsLostNoRecord},
          {"recordsLostRingFull", sum.recordsLostRingFull},
          {"metadataLost", sum.metadataLost},
          {"metadataLostNoRecord", sum.metadataLostNoRecord},
          {"metadataLostRingFull", sum.metadataLostRingFull}};
}

void Daemon::startFlowLog() {
  FlowLogPumpOptions pumpOptions;
  pumpOptions.statsIntervalSeconds = options_.statsIntervalSeconds;
  dataplane::LiveDataplane* live = live_.get();
  flowLogPump_ = std::make_unique<FlowLogPump>(
      *writer_, metrics_->sink(), [live](RecordSink& sink) { return live->drainRecords(sink); },
      [live] { return workerRecordCounters(*live); }, [](const std::string& line) { log(line); },
      pumpOptions);
  flowLogPump_->start();
}

// The flows still open end with reason shutdown; their records are written within the exit timeout, then
// the stats line at exit.
void Daemon::stopFlowLog() {
  if (flowLogPump_) flowLogPump_->stop();  // the writer is this thread's from here
  if (!live_ || !writer_) return;
  writer_->discardAfter(monotonicNs() + uint64_t{options_.flowLogExitTimeoutMs} * 1'000'000);
  live_->stop(*writer_);
  writer_->flush();
  if (uint64_t late = writer_->counters().recordsLostShutdown; late > 0) {
    log("flow log: the exit timeout (" + std::to_string(options_.flowLogExitTimeoutMs) + " ms) passed; " +
        std::to_string(late) + " records of flows open at exit were not written");
  }
  if (flowLogPump_) flowLogPump_->writeFinalStats();
}

ControlReply Daemon::reopenFlowLog() {
  if (!flowLogPump_) return ControlReply::failure(EAGAIN, "the flow log is not running");
  auto reopened = flowLogPump_->reopen(std::chrono::seconds(5));
  if (!reopened) return ControlReply::failure(reopened.error().code, reopened.error().message);
  return ControlReply::success(Json{{"path", writer_->path().empty() ? "-" : writer_->path()},
                                    {"reopens", writer_->counters().reopens}});
}

void Daemon::stop() {
  // The server first: it waits for the handlers that run (an apply in the middle of a compile).
  if (server_) server_->stop();
  stopPolicyReload();
  if (metrics_) metrics_->stop();  // no scrape reads the dataplane once it goes
  std::lock_guard lock(mutex_);
  bool wasRunning = live_ != nullptr;
  // From here no beat: the fail mode takes over once the timeout passes, as it will after the exit anyway.
  stopHeartbeat();
  stopFlowLog();
  live_.reset();
  policyControl_.reset();
  // The fast path's programs and maps stay (keepAttached): until the next vgated beats, the fail mode rules.
  fastPath_.reset();
  policies_.reset();
  eal_.reset();
  if (lockFd_ >= 0) close(lockFd_);
  lockFd_ = -1;
  if (wasRunning)
    log("stopped; interception stays in place under fail mode " + failModeName(options_.failMode));
}

int Daemon::run() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // re-read --policy, and reopen the flow log (logrotate's postrotate)
  // Blocked before any thread starts, so that every thread inherits the mask and the signalfd gets them.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signalFd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd < 0) {
    log(std::string("cannot create a signalfd: ") + std::strerror(errno));
    return 1;
  }
  if (auto started = start(); !started) {
    log(started.error().message);
    stop();
    close(signalFd);
    return 1;
  }
  // The flow log has its own thread (startFlowLog): nothing here waits on its I/O.
  for (;;) {
    pollfd fds[2] = {{signalFd, POLLIN, 0}, {interposer_->watchFd(), POLLIN, 0}};
    poll(fds, 2, kLoopWaitMs);
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (read(signalFd, &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGHUP) {
          log("got SIGHUP: re-reading the policy and reopening the flow log");
          reloadPolicyOnSighup();
          flowLogPump_->requestReopen();
        } else {
          log(std::string("got ") + strsignal(static_cast<int>(info.ssi_signo)) + ", stopping");
          break;
        }
      }
    }
    if (fds[1].revents & POLLIN) reapVanishedPorts();
    if (uint64_t failures = beatFailures_.load(); failures != beatFailuresLogged_) {
      log("heartbeat: " + std::to_string(failures - beatFailuresLogged_) +
          " write(s) to the fast path's config map failed");
      beatFailuresLogged_ = failures;
    }
    if (Clock::now() - lastOrphanSweep_ >= kOrphanSweepInterval) {
      lastOrphanSweep_ = Clock::now();
      if (size_t removed = fastPath_->removeFlowsIdleFor(kOrphanIdleNs); removed > 0) {
        log("removed " + std::to_string(removed) + " idle fast path entries no worker owns");
      }
    }
  }
  stop();
  close(signalFd);
  return 0;
}

}  // namespace

int runDaemon(const DaemonOptions& options) {
  Daemon daemon(options);
  return daemon.run();
}

}  // namespace vgate::control
