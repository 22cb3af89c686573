// Flow log writer: see flow_log_writer.h.
#include "control/flowlog/flow_log_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vgate/clock.h"

namespace vgate::control {

namespace {

// "recordsLostWrite" -> "records_lost_write": EVE's member names from the counter list's.
void appendSnakeCase(std::string& out, std::string_view name) {
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') {
      out.push_back('_');
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

FlowLogWriter::FlowLogWriter(std::FILE* out, FlowLogOptions options) : options_(options), file_(out) {
  batch_.reserve(options_.batchBytes + 4096);
}

FlowLogWriter::FlowLogWriter(FlowLogOptions options, std::string path, int fd)
    : options_(options), path_(std::move(path)), fd_(fd) {
  batch_.reserve(options_.batchBytes + 4096);
}

Result<std::unique_ptr<FlowLogWriter>> FlowLogWriter::open(const std::string& path, FlowLogOptions options) {
  if (path == "-") return std::make_unique<FlowLogWriter>(stdout, options);
  if (options.maxFileBytes > 0 && options.maxFiles == 0)
    return makeError(EINVAL, "a rotated flow log keeps at least one old file");
  std::unique_ptr<FlowLogWriter> writer(new FlowLogWriter(options, path, -1));
  if (auto opened = writer->openPath(writer->fd_, writer->fileBytes_); !opened) return opened.error();
  return writer;
}

FlowLogWriter::~FlowLogWriter() {
  flush();
  if (fd_ >= 0) close(fd_);
}

Result<void> FlowLogWriter::openPath(int& fd, uint64_t& size) const {
  // An audit log is appended to, never truncated.
  fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return makeError(errno, "cannot open flow log " + path_ + ": " + std::strerror(errno));
  struct stat info {};
  size = fstat(fd, &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
  return {};
}

uint64_t FlowLogWriter::now() const {
  return options_.monotonicClock != nullptr ? options_.monotonicClock() : monotonicNs();
}

void FlowLogWriter::setPolicyNames(PolicyNames names) {
  std::lock_guard lock(namesMutex_);
  uint32_t version = names.version;
  policies_[version] = std::move(names);
}

void FlowLogWriter::setPortIdentity(PortIdentity port) {
  std::lock_guard lock(namesMutex_);
  uint16_t id = port.id;
  ports_[id] = std::move(port);
}

void FlowLogWriter::erasePending(std::unordered_map<uint64_t, Pending>::iterator found) {
  pendingOrder_.erase(found->second.order);
  pending_.erase(found);
  counters_.metadataPending = pending_.size();
}

void FlowLogWriter::onMetadata(const FlowMetadataRecord& metadata) {
  if (auto found = pending_.find(metadata.flowId); found != pending_.end()) erasePending(found);
  if (options_.maxPendingMetadata == 0) {
    ++counters_.metadataDropped;
    return;
  }
  while (pending_.size() >= options_.maxPendingMetadata) {
    erasePending(pending_.find(pendingOrder_.front()));
    ++counters_.metadataDropped;
  }
  pendingOrder_.push_back(metadata.flowId);
  Pending& entry = pending_[metadata.flowId];
  entry.arrivedNs = now();
  entry.order = std::prev(pendingOrder_.end());
  appendMetadataMembers(entry.members, metadata);
  counters_.metadataPending = pending_.size();
}

void FlowLogWriter::expireMetadata() {
  uint64_t nowNs = now();
  while (!pendingOrder_.empty()) {
    auto found = pending_.find(pendingOrder_.front());
    if (nowNs - found->second.arrivedNs < options_.metadataMaxAgeNs) break;
    erasePending(found);
    ++counters_.metadataExpired;
  }
}

void FlowLogWriter::onEnd(const FlowEndRecord& record) {
  auto found = record.hasMetadata ? pending_.find(record.flowId) : pending_.end();
  if (discardAfterNs_ != 0 && now() >= discardAfterNs_) {
    ++counters_.recordsLostShutdown;
    if (found != pending_.end()) erasePending(found);
    return;
  }
  if (record.hasMetadata && found == pending_.end()) ++counters_.metadataMissing;
  std::string_view members = found != pending_.end() ? std::string_view(found->second.members) : "";
  line_.clear();
  {
    std::lock_guard lock(namesMutex_);
    static const PolicyNames kNoPolicy;
    auto names = policies_.find(record.policyVersion);
    auto port = record.portPair != 0 ? ports_.find(record.portPair) : ports_.end();
    appendFlowRecord(line_, record, members, names == policies_.end() ? kNoPolicy : names->second,
                     port == ports_.end() ? nullptr : &port->second);
  }
  line_.push_back('\n');
  if (found != pending_.end()) erasePending(found);
  addLine();
}

void FlowLogWriter::addLine() {
  // Rotation happens between lines, so that no file ends in half a line and no line is in two files.
  if (options_.maxFileBytes > 0 && fd_ >= 0 && fileBytes_ + batch_.size() > 0 &&
      fileBytes_ + batch_.size() + line_.size() > options_.maxFileBytes) {
    flush();
    rotate();
  }
  batch_.append(line_);
  ++batchLines_;
  if (batch_.size() >= options_.batchBytes) flush();
}

// One write of `size` bytes holding `lines` lines (flow records; 0 for a stats line). On failure the lines
// that did not get through whole are counted lost, and a torn last line is cut off the file.
bool FlowLogWriter::writeOut(const char* data, size_t size, size_t lines) {
  size_t done = 0;
  ++counters_.writes;
  if (file_ != nullptr) {
    done = std::fwrite(data, 1, size, file_);
  } else {
    while (done < size) {
      ssize_t n = ::write(fd_, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
  }
  if (done == size) {
    fileBytes_ += size;
    counters_.bytesWritten += size;
    counters_.recordsWritten += lines;
    return true;
  }
  ++counters_.writeErrors;
  size_t whole = 0;
  size_t wholeLines = 0;
  for (size_t i = 0; i < done; ++i) {
    if (data[i] == '\n') {
      whole = i + 1;
      ++wholeLines;
    }
  }
  if (whole < done && fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(fileBytes_ + whole)) != 0) {
    whole = done;  // not a regular file: the torn line stays
  }
  fileBytes_ += whole;
  counters_.bytesWritten += whole;
  if (lines > 0) {
    counters_.recordsWritten += wholeLines;
    counters_.recordsLostWrite += lines - wholeLines;
  }
  return false;
}

void FlowLogWriter::flush() {
  if (!batch_.empty()) writeOut(batch_.data(), batch_.size(), batchLines_);
  batch_.clear();
  batchLines_ = 0;
  if (file_ != nullptr && std::fflush(file_) != 0) ++counters_.writeErrors;
  publish();
}

void FlowLogWriter::rotate() {
  if (fd_ < 0) return;
  // PATH.<n-1> -> PATH.<n> replaces the oldest; a missing one (fewer rotations so far) is no error.
  for (uint32_t i = options_.maxFiles; i > 1; --i) {
    std::string from = path_ + "." + std::to_string(i - 1);
    std::string to = path_ + "." + std::to_string(i);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) ++counters_.writeErrors;
  }
  if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0) {
    ++counters_.writeErrors;  // the file stays as it is and keeps growing
    return;
  }
  int fd = -1;
  uint64_t size = 0;
  if (!openPath(fd, size)) {
    ++counters_.writeErrors;  // keep writing to the renamed file rather than lose records
    return;
  }
  close(fd_);
  fd_ = fd;
  fileBytes_ = size;
  ++counters_.rotations;
}

Result<void> FlowLogWriter::reopen() {
  flush();
  if (fd_ < 0) return {};  // stdout or a FILE* someone else owns
  int fd = -1;
  uint64_t size = 0;
  if (auto opened = openPath(fd, size); !opened) {
    ++counters_.writeErrors;
    publish();
    return opened.error();
  }
  close(fd_);
  fd_ = fd;
  fileBytes_ = size;
  ++counters_.reopens;
  publish();
  return {};
}

void FlowLogWriter::writeStats(uint64_t uptimeSeconds,
                               const std::vector<std::pair<std::string, uint64_t>>& upstream) {
  flush();
  ++counters_.statsWritten;  // counted in its own line
  counters_.metadataPending = pending_.size();
  line_.clear();
  line_.append("{\"timestamp\":\"");
  appendEveTimestamp(line_, clockNs(CLOCK_REALTIME) / 1000);
  line_.append("\",\"event_type\":\"stats\",\"stats\":{\"uptime\":");
  line_.append(std::to_string(uptimeSeconds));
  line_.append(",\"flow_log\":{");
  bool first = true;
  counters_.forEach([&](const CounterInfo& info, uint64_t value) {
    if (!first) line_.push_back(',');
    first = false;
    line_.push_back('"');
    appendSnakeCase(line_, info.name);
    line_.append("\":");
    line_.append(std::to_string(value));
  });
  line_.append("},\"workers\":{");
  first = true;
  for (const auto& [name, value] : upstream) {
    if (!first) line_.push_back(',');
    first = false;
    line_.push_back('"');
    appendSnakeCase(line_, name);
    line_.append("\":");
    line_.append(std::to_string(value));
  }
  line_.append("}}}\n");
  if (options_.maxFileBytes > 0 && fd_ >= 0 && fileBytes_ > 0 &&
      fileBytes_ + line_.size() > options_.maxFileBytes) {
    rotate();
  }
  if (!writeOut(line_.data(), line_.size(), 0)) --counters_.statsWritten;
  if (file_ != nullptr && std::fflush(file_) != 0) ++counters_.writeErrors;
  publish();
}

void FlowLogWriter::publish() {
  std::lock_guard lock(publishedMutex_);
  published_ = counters_;
}

FlowLogCounters FlowLogWriter::counters() const {
  std::lock_guard lock(publishedMutex_);
  return published_;
}

}  // namespace vgate::control
