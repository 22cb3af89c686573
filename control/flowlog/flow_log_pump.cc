// The flow-log thread: see flow_log_pump.h.
#include "control/flowlog/flow_log_pump.h"

namespace vgate::control {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kExpireInterval = std::chrono::seconds(1);
// Write failures go to vgated's log at most this often (each one is counted in the stats line anyway).
constexpr auto kErrorLogInterval = std::chrono::seconds(10);

}  // namespace

FlowLogPump::FlowLogPump(FlowLogWriter& writer, RecordSink& sink, Drain drain, Upstream upstream, Log log,
                         FlowLogPumpOptions options)
    : writer_(writer),
      sink_(sink),
      drain_(std::move(drain)),
      upstream_(std::move(upstream)),
      log_(std::move(log)),
      options_(options) {}

FlowLogPump::~FlowLogPump() { stop(); }

void FlowLogPump::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void FlowLogPump::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  if (reopenDone_ != reopenRequested_) {
    reopenDone_ = reopenRequested_;
    lastReopen_ = makeError(ECANCELED, "vgated is stopping");
    done_.notify_all();
  }
}

void FlowLogPump::requestReopen() {
  {
    std::lock_guard lock(mutex_);
    ++reopenRequested_;
  }
  wake_.notify_all();
}

Result<void> FlowLogPump::reopen(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  uint64_t ticket = ++reopenRequested_;
  wake_.notify_all();
  if (!done_.wait_for(lock, timeout, [&] { return reopenDone_ >= ticket; })) {
    return makeError(ETIMEDOUT,
                     "the flow log thread has not reopened the log yet (it will): it may be "
                     "blocked writing");
  }
  return lastReopen_;
}

void FlowLogPump::writeStats() {
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
  writer_.writeStats(static_cast<uint64_t>(uptime),
                     upstream_ ? upstream_() : std::vector<std::pair<std::string, uint64_t>>{});
}

void FlowLogPump::writeFinalStats() { writeStats(); }

void FlowLogPump::run() {
  auto nextExpire = Clock::now() + kExpireInterval;
  auto nextStats = Clock::now() + std::chrono::seconds(options_.statsIntervalSeconds);
  auto nextErrorLog = Clock::now();
  auto nextFlush = Clock::now();
  uint64_t errorsLogged = 0;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    uint64_t reopenTicket = reopenRequested_;
    lock.unlock();
    // Records drained before a reopen go to the old file, later ones to the new: none is in both or neither.
    bool empty = drain_(sink_);
    auto now = Clock::now();
    // Full batches are written as they fill; the rest once the rings are empty, or after idleWait at most.
    if (empty || reopenTicket != reopenDone_ || now >= nextFlush) {
      writer_.flush();
      nextFlush = now + options_.idleWait;
    }
    if (reopenTicket != reopenDone_) {
      auto reopened = writer_.reopen();
      if (!reopened && log_) log_("flow log: " + reopened.error().message + "; still writing the old file");
      lock.lock();
      reopenDone_ = reopenTicket;
      lastReopen_ = reopened;
      done_.notify_all();
      lock.unlock();
    }
    if (now >= nextExpire) {
      writer_.expireMetadata();
      nextExpire = now + kExpireInterval;
      FlowLogCounters counters = writer_.counters();
      if (counters.writeErrors > errorsLogged && now >= nextErrorLog && log_) {
        log_("flow log: " + std::to_string(counters.writeErrors) + " failed writes so far, " +
             std::to_string(counters.recordsLostWrite) + " records lost to them");
        errorsLogged = counters.writeErrors;
        nextErrorLog = now + kErrorLogInterval;
      }
    }
    if (options_.statsIntervalSeconds > 0 && now >= nextStats) {
      writeStats();
      nextStats = now + std::chrono::seconds(options_.statsIntervalSeconds);
    }
    lock.lock();
    if (empty && !stopping_ && reopenRequested_ == reopenDone_) {
      wake_.wait_for(lock, options_.idleWait);
    }
  }
}

}  // namespace vgate::control
