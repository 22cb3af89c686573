// The caller's end of the control socket: one connection, requests sent one at a time, each reply matched to
// its request by id.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "control/socket/control_protocol.h"
#include "vgate/result.h"

namespace vgate::control {

class ControlClient {
 public:
  // Connects to the server at `path`; `timeout` bounds the connect and, later, each call.
  static Result<ControlClient> connect(const std::string& path,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

  ControlClient(ControlClient&& other) noexcept;
  ControlClient& operator=(ControlClient&& other) noexcept;
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  // Sends one request and waits for its reply. An error here means no usable reply (the transport failed or
  // the reply was malformed); a reply with a non-zero status is still a value.
  Result<ControlReply> call(const std::string& verb, const nlohmann::json& args = nlohmann::json::object());

  // The raw variant, for tests and tools that need to send what call() would not: one framed payload out,
  // one decoded reply back.
  Result<ControlReply> exchange(const std::string& payload);

  int fd() const { return fd_; }

 private:
  ControlClient(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  uint64_t nextId_ = 1;
};

}  // namespace vgate::control
