// vgated's flow-log thread: drains the workers' record rings into the writer, writes the batches, ages
// pending metadata, writes the periodic stats line and carries out reopen requests, so that no other thread
// (the main loop, the heartbeat, the control socket) ever waits on the log's I/O.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "control/flowlog/flow_log_writer.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

namespace vgate::control {

struct FlowLogPumpOptions {
  uint32_t statsIntervalSeconds = 60;  // 0: no periodic stats line (the one at exit stays)
  // How long the thread sleeps when the rings were empty: records wait at most this long plus a batch.
  std::chrono::milliseconds idleWait{10};
};

class FlowLogPump {
 public:
  // Moves waiting records into the sink; true when none is left (it may stop early to come back).
  using Drain = std::function<bool(RecordSink&)>;
  // The counters upstream of the writer (the workers' records lost, by cause), for the stats line.
  using Upstream = std::function<std::vector<std::pair<std::string, uint64_t>>()>;
  using Log = std::function<void(const std::string&)>;

  // `sink` is what the records are drained into: the writer, or a sink that passes them on to it.
  FlowLogPump(FlowLogWriter& writer, RecordSink& sink, Drain drain, Upstream upstream, Log log,
              FlowLogPumpOptions options = {});
  ~FlowLogPump();
  FlowLogPump(const FlowLogPump&) = delete;
  FlowLogPump& operator=(const FlowLogPump&) = delete;

  void start();
  // Stops and joins the thread; the writer is the caller's again (the exit's last drain, the last stats).
  void stop();
  // Any thread, never blocks (SIGHUP): the thread reopens the log at its next turn.
  void requestReopen();
  // Any thread: the same, then waits up to `timeout` for the outcome (ETIMEDOUT: still queued).
  Result<void> reopen(std::chrono::milliseconds timeout);
  // The caller's thread, after stop(): the stats line at exit.
  void writeFinalStats();

 private:
  void run();
  void writeStats();

  FlowLogWriter& writer_;
  RecordSink& sink_;
  Drain drain_;
  Upstream upstream_;
  Log log_;
  FlowLogPumpOptions options_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex mutex_;
  std::condition_variable wake_;  // the thread: stop or reopen
  std::condition_variable done_;  // reopen() callers
  bool stopping_ = false;
  uint64_t reopenRequested_ = 0;
  uint64_t reopenDone_ = 0;
  Result<void> lastReopen_;
  std::thread thread_;
};

}  // namespace vgate::control
