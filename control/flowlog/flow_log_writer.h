// Joins each flow's L7 metadata to its end record and writes one JSON line per flow, in batches (one write a
// batch). Runs off the hot path: vgated's flow-log thread (FlowLogPump) or the replay's main lcore, fed by
// the workers' record rings. The log is a FILE* it does not own, or a path it opens, reopens and rotates.
#pragma once

#include <cstdint>
#include <cstdio>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/flowlog/flow_log_format.h"
#include "vgate/counters.h"
#include "vgate/flow_record.h"
#include "vgate/result.h"

namespace vgate::control {

#define VGATE_FLOW_LOG_COUNTERS(X)                                                                           \
  X(recordsWritten, counter, "records", "flow records written to the log")                                   \
  X(recordsLostWrite, counter, "records",                                                                    \
    "flow records lost because the log did not take them (a failed write)")                                  \
  X(recordsLostShutdown, counter, "records", "flow records not written because the exit timeout had passed") \
  X(metadataPending, gauge, "records", "L7 metadata waiting for its flow's end record")                      \
  X(metadataDropped, counter, "records", "L7 metadata dropped, oldest first, because too many were pending") \
  X(metadataExpired, counter, "records", "L7 metadata dropped because its end record did not come in time")  \
  X(metadataMissing, counter, "records", "end records written without the metadata that had been dropped")   \
  X(writeErrors, counter, "writes", "failed writes, flushes, reopens and rotations of the log")              \
  X(bytesWritten, counter, "bytes", "bytes written to the log")                                              \
  X(writes, counter, "writes", "write calls to the log: one per batch of lines")                             \
  X(statsWritten, counter, "lines", "stats lines written to the log")                                        \
  X(reopens, counter, "files", "times the log file was reopened (SIGHUP, vgatectl log reopen)")              \
  X(rotations, counter, "files", "times the log file was rotated because it reached its size limit")

struct FlowLogCounters {
  VGATE_COUNTER_MEMBERS(FlowLogCounters, VGATE_FLOW_LOG_COUNTERS)
};

struct FlowLogOptions {
  // Metadata of at most this many flows is kept: vgated passes the flow tables' capacity, so that a full
  // map means some entries lost their end record, and the oldest, the likeliest of those, goes first.
  size_t maxPendingMetadata = 1u << 20;
  // Metadata whose end record has not come after this long is dropped. A flow that really lives longer is
  // then logged without its L7 fields (counted in metadataMissing).
  uint64_t metadataMaxAgeNs = 24ull * 3600 * 1'000'000'000;
  // A batch is written once it holds this many bytes, and at every flush().
  size_t batchBytes = 64 * 1024;
  // A path's log is rotated before a line would take it past maxFileBytes (0: never): PATH becomes PATH.1,
  // PATH.1 PATH.2, ..., and PATH.<maxFiles> is dropped.
  uint64_t maxFileBytes = 0;
  uint32_t maxFiles = 5;
  // CLOCK_MONOTONIC in nanoseconds, for the metadata's age and the exit deadline; tests give their own.
  uint64_t (*monotonicClock)() = nullptr;
};

class FlowLogWriter : public RecordSink {
 public:
  // `out` is not owned, and is never reopened or rotated.
  explicit FlowLogWriter(std::FILE* out, FlowLogOptions options = {});
  // Appends to `path` ("-": stdout, which is never reopened or rotated).
  static Result<std::unique_ptr<FlowLogWriter>> open(const std::string& path, FlowLogOptions options = {});
  ~FlowLogWriter() override;
  FlowLogWriter(const FlowLogWriter&) = delete;
  FlowLogWriter& operator=(const FlowLogWriter&) = delete;

  // Any thread. Names for one policy version: every version published stays known, so a flow judged before
  // a swap is still logged with the names of the policy that judged it.
  void setPolicyNames(PolicyNames names);
  // Any thread. The container behind a port pair, for live records; kept after a detach so that the flows
  // that were still open are logged with it.
  void setPortIdentity(PortIdentity port);

  // The rest: the one thread that drains the rings.
  void onMetadata(const FlowMetadataRecord& metadata) override;
  void onEnd(const FlowEndRecord& record) override;
  // Writes the lines batched so far.
  void flush();
  // Drops metadata older than metadataMaxAgeNs.
  void expireMetadata();
  // Writes one `event_type: "stats"` line (after the batch): this writer's counters under "flow_log" and
  // `upstream` (the workers' record counters) under "workers", as Suricata's stats events nest theirs.
  void writeStats(uint64_t uptimeSeconds, const std::vector<std::pair<std::string, uint64_t>>& upstream);
  // Writes the batch to the file open now, then opens the path again (logrotate moved it away). Nothing is
  // lost or written twice: records wait in the rings meanwhile. A failure keeps the old file.
  Result<void> reopen();
  // End records that come after `deadlineNs` (CLOCK_MONOTONIC) are counted in recordsLostShutdown instead of
  // being written, so that an exit with a slow log still ends in time.
  void discardAfter(uint64_t deadlineNs) { discardAfterNs_ = deadlineNs; }

  // Any thread: the counters as of the last flush, stats line or reopen.
  FlowLogCounters counters() const;
  const std::string& path() const { return path_; }

 private:
  FlowLogWriter(FlowLogOptions options, std::string path, int fd);

  struct Pending {
    std::string members;  // appendMetadataMembers' text
    uint64_t arrivedNs;
    std::list<uint64_t>::iterator order;
  };

  uint64_t now() const;
  void erasePending(std::unordered_map<uint64_t, Pending>::iterator found);
  void addLine();
  bool writeOut(const char* data, size_t size, size_t lines);
  Result<void> openPath(int& fd, uint64_t& size) const;
  void rotate();
  void publish();

  FlowLogOptions options_;
  std::FILE* file_ = nullptr;  // FILE* mode
  std::string path_;           // path mode: the file, by fd
  int fd_ = -1;
  uint64_t fileBytes_ = 0;  // the open file's size, for rotation
  uint64_t discardAfterNs_ = 0;

  std::string batch_;
  size_t batchLines_ = 0;
  std::string line_;

  mutable std::mutex namesMutex_;             // policies_ and ports_, set from other threads
  std::map<uint32_t, PolicyNames> policies_;  // by version
  std::map<uint16_t, PortIdentity> ports_;    // by pair id

  std::unordered_map<uint64_t, Pending> pending_;  // by flow id
  std::list<uint64_t> pendingOrder_;               // flow ids, oldest first

  FlowLogCounters counters_;
  mutable std::mutex publishedMutex_;
  FlowLogCounters published_;
};

}  // namespace vgate::control
