// Flow log writer: see flow_log_writer.h.
#include "control/flowlog/flow_log_writer.h"

namespace vgate::control {

FlowLogWriter::FlowLogWriter(std::FILE* out, size_t maxPendingMetadata)
    : out_(out), maxPendingMetadata_(maxPendingMetadata) {}

void FlowLogWriter::setPolicyNames(PolicyNames names) {
  uint32_t version = names.version;
  policies_[version] = std::move(names);
}

void FlowLogWriter::onMetadata(const FlowMetadataRecord& metadata) {
  if (pending_.size() >= maxPendingMetadata_ && pending_.find(metadata.flowId) == pending_.end()) {
    ++counters_.metadataDropped;
    return;
  }
  pending_[metadata.flowId] = formatMetadata(metadata);
  counters_.metadataPending = pending_.size();
}

void FlowLogWriter::onEnd(const FlowEndRecord& record) {
  const nlohmann::ordered_json* metadata = nullptr;
  auto found = record.hasMetadata ? pending_.find(record.flowId) : pending_.end();
  if (found != pending_.end()) metadata = &found->second;
  static const PolicyNames kNoPolicy;
  auto names = policies_.find(record.policyVersion);
  auto port = record.portPair != 0 ? ports_.find(record.portPair) : ports_.end();
  std::string line = formatFlowRecord(record, metadata, names == policies_.end() ? kNoPolicy : names->second,
                                      port == ports_.end() ? nullptr : &port->second);
  line.push_back('\n');
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size()) {
    ++counters_.writeErrors;
  } else {
    ++counters_.recordsWritten;
  }
  if (found != pending_.end()) pending_.erase(found);
  counters_.metadataPending = pending_.size();
}

void FlowLogWriter::setPortIdentity(PortIdentity port) {
  uint16_t id = port.id;
  ports_[id] = std::move(port);
}

void FlowLogWriter::flush() {
  if (std::fflush(out_) != 0) ++counters_.writeErrors;
}

}  // namespace vgate::control
