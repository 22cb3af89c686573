// The control socket's wire contract: versioned JSON requests and replies, each framed by a 4-byte big-endian
// length, with an errno-style status. Decoders validate everything and never throw.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "vgate/result.h"

namespace vgate::control {

inline constexpr uint32_t kControlProtocolVersion = 1;
inline constexpr size_t kControlFrameHeaderBytes = 4;
// Payload only, without the header. A policy travels as text inside a request: the loader takes documents of
// up to 32 MiB, and JSON escaping (newlines, quotes) adds to that.
inline constexpr size_t kControlMaxMessageBytes = size_t{64} << 20;
inline constexpr size_t kControlMaxVerbLength = 64;
// Deeper JSON is refused before it is built, so no later recursive walk (dump, a handler) can blow the stack.
inline constexpr size_t kControlMaxJsonDepth = 64;

struct ControlRequest {
  uint32_t version = kControlProtocolVersion;
  uint64_t id = 0;
  std::string verb;
  nlohmann::json args = nlohmann::json::object();
};

struct ControlReply {
  uint32_t version = kControlProtocolVersion;
  uint64_t id = 0;
  int status = 0;  // an errno value, 0 for success
  std::string error;
  nlohmann::json result = nlohmann::json::object();

  bool ok() const { return status == 0; }
  static ControlReply success(nlohmann::json result = nlohmann::json::object());
  static ControlReply failure(int status, std::string error);
};

// Who is on the other end of a connection, from SO_PEERCRED.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// "EEXIST" for EEXIST; "E<number>" for a value this table does not know; "OK" for 0.
std::string errnoName(int code);
// The inverse of errnoName, or -1.
int errnoFromName(std::string_view name);

// The 4-byte big-endian length header followed by the payload.
std::string encodeFrame(std::string_view payload);
// The payload length a header announces; EMSGSIZE when it is over kControlMaxMessageBytes.
Result<uint32_t> decodeFrameLength(const uint8_t (&header)[kControlFrameHeaderBytes]);

std::string encodeRequest(const ControlRequest& request);
// EINVAL for anything malformed, EPROTO for a version other than kControlProtocolVersion. When the text is an
// object with a usable "id", it is stored in *id even on failure, so that the error reply can carry it.
Result<ControlRequest> decodeRequest(std::string_view text, uint64_t* id = nullptr);

// The reply's JSON, with "errno" (the status's symbolic name) added. Strings that are not valid UTF-8 are
// repaired rather than making the encoder fail.
std::string encodeReply(const ControlReply& reply);
Result<ControlReply> decodeReply(std::string_view text);

// Blocking frame I/O on a stream socket (blocking or not), bounded by `deadline`: ETIMEDOUT when it passes,
// EPIPE/ECONNRESET when the peer goes, ENODATA when it closes cleanly before the first byte of a frame.
using ControlDeadline = std::chrono::steady_clock::time_point;
Result<void> writeFrame(int fd, std::string_view payload, ControlDeadline deadline);
Result<std::string> readFrame(int fd, ControlDeadline deadline);

}  // namespace vgate::control
