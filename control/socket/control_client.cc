// The caller's end of the control socket: see control_client.h.
#include "control/socket/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace vgate::control {

Result<ControlClient> ControlClient::connect(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return makeError(ENAMETOOLONG, "cannot connect to " + path + ": " + std::strerror(ENAMETOOLONG));
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return makeError(errno, std::string("socket: ") + std::strerror(errno));
  ControlClient client(fd, timeout);
  // A unix connect blocks only while the server's backlog is full, and honours SO_SNDTIMEO while it does.
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timeval limit{static_cast<time_t>(seconds.count()),
                static_cast<suseconds_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds).count())};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
  int connected;
  do {
    connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  } while (connected != 0 && errno == EINTR);
  if (connected != 0) {
    int code = errno == EAGAIN ? ETIMEDOUT : errno;
    return makeError(code, "cannot connect to " + path + ": " + std::strerror(code));
  }
  return client;
}

ControlClient::ControlClient(ControlClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), timeout_(other.timeout_), nextId_(other.nextId_) {}

ControlClient& ControlClient::operator=(ControlClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    timeout_ = other.timeout_;
    nextId_ = other.nextId_;
  }
  return *this;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<ControlReply> ControlClient::call(const std::string& verb, const nlohmann::json& args) {
  ControlRequest request;
  request.id = nextId_++;
  request.verb = verb;
  request.args = args;
  auto reply = exchange(encodeRequest(request));
  if (!reply) return reply;
  // Id 0 with an error is the server refusing the connection itself (EPERM, EMSGSIZE, ETIMEDOUT).
  if (reply.value().id != request.id && !(reply.value().id == 0 && !reply.value().ok())) {
    return makeError(EPROTO, "reply id " + std::to_string(reply.value().id) + " does not match request id " +
                                 std::to_string(request.id));
  }
  return reply;
}

Result<ControlReply> ControlClient::exchange(const std::string& payload) {
  if (fd_ < 0) return makeError(ENOTCONN, "not connected");
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  auto written = writeFrame(fd_, payload, deadline);
  if (!written && written.error().code != EPIPE && written.error().code != ECONNRESET) return written.error();
  // Even when the write failed because the server hung up, it may have said why before it did.
  auto frame = readFrame(fd_, deadline);
  if (!frame) {
    if (!written) return written.error();
    if (frame.error().code == ENODATA) return makeError(ECONNRESET, "the server closed the connection");
    return frame.error();
  }
  return decodeReply(frame.value());
}

}  // namespace vgate::control
