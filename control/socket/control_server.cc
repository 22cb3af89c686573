// The daemon's end of the control socket: see control_server.h.
#include "control/socket/control_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>

namespace vgate::control {
namespace {

using Clock = std::chrono::steady_clock;

Error systemError(const std::string& what) {
  int code = errno;
  return makeError(code, what + ": " + std::strerror(code));
}

Result<sockaddr_un> socketAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty()) return makeError(EINVAL, "control socket path is empty");
  if (path.size() >= sizeof(address.sun_path)) {
    return makeError(ENAMETOOLONG, "control socket path " + path + " is longer than " +
                                       std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

// Creates the missing directories above `path`, each 0755 whatever the umask.
Result<void> createParents(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return {};
  std::filesystem::path partial;
  for (const auto& part : parent) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0755) == 0) {
      if (::chmod(partial.c_str(), 0755) != 0) return systemError("chmod " + partial.string());
    } else if (errno != EEXIST) {
      return systemError("mkdir " + partial.string());
    }
  }
  return {};
}

// Removes a socket file left by a server that is gone; refuses to touch a live socket or another kind of
// file.
Result<void> removeStaleSocket(const std::string& path, const sockaddr_un& address) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return {};
    return systemError("stat " + path);
  }
  if (!S_ISSOCK(info.st_mode)) return makeError(EEXIST, path + " exists and is not a socket");
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return systemError("socket");
  int connected = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  int connectErrno = errno;
  ::close(probe);
  if (connected == 0) return makeError(EADDRINUSE, "a running server already listens on " + path);
  if (connectErrno != ECONNREFUSED) {
    return makeError(connectErrno,
                     "cannot tell whether " + path + " is in use: " + std::strerror(connectErrno));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return systemError("remove stale socket " + path);
  return {};
}

}  // namespace

struct ControlServer::Connection {
  explicit Connection(int socket) : fd(socket) {}
  ~Connection() { ::close(fd); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd;
  PeerCredentials peer;
  std::string buffer;       // the frame read so far: header, then payload
  size_t payloadBytes = 0;  // known once the header is complete
  Clock::time_point deadline;
  bool closing = false;
};

ControlServer::ControlServer(std::string path, ControlHandlers handlers, ControlServerOptions options)
    : path_(std::move(path)), handlers_(std::move(handlers)), options_(std::move(options)) {
  if (options_.allowedUids.empty()) options_.allowedUids = {0, ::geteuid()};
  if (options_.maxConnections == 0) options_.maxConnections = 1;
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(const std::string& path, ControlHandlers handlers,
                                                            ControlServerOptions options) {
  auto address = socketAddress(path);
  if (!address) return address.error();
  if (auto made = createParents(path); !made) return made.error();
  if (auto removed = removeStaleSocket(path, address.value()); !removed) return removed.error();

  std::unique_ptr<ControlServer> server(new ControlServer(path, std::move(handlers), std::move(options)));
  server->listenFd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (server->listenFd_ < 0) return systemError("socket");
  // The file takes the socket inode's mode at bind time, so it never exists with a wider mode.
  if (::fchmod(server->listenFd_, 0600) != 0) return systemError("fchmod control socket");
  if (::bind(server->listenFd_, reinterpret_cast<const sockaddr*>(&address.value()), sizeof(sockaddr_un)) !=
      0) {
    return systemError("bind " + path);
  }
  struct stat info {};
  if (::chmod(path.c_str(), 0600) != 0 || ::stat(path.c_str(), &info) != 0) {
    Error error = systemError("chmod " + path);
    ::unlink(path.c_str());
    return error;
  }
  server->socketDevice_ = info.st_dev;
  server->socketInode_ = info.st_ino;
  if (::listen(server->listenFd_, 64) != 0) {
    Error error = systemError("listen " + path);
    ::unlink(path.c_str());
    return error;
  }
  server->stopFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->stopFd_ < 0) {
    Error error = systemError("eventfd");
    ::unlink(path.c_str());
    return error;
  }
  server->thread_ = std::thread([raw = server.get()] { raw->run(); });
  return server;
}

ControlServer::~ControlServer() {
  stop();
  if (listenFd_ >= 0) ::close(listenFd_);
  if (stopFd_ >= 0) ::close(stopFd_);
}

void ControlServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    uint64_t one = 1;
    while (::write(stopFd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  if (listenFd_ >= 0) {
    ::close(listenFd_);
    listenFd_ = -1;
  }
  // Only our own file: a successor may have replaced it already.
  struct stat info {};
  if (socketInode_ != 0 && ::lstat(path_.c_str(), &info) == 0 && info.st_dev == socketDevice_ &&
      info.st_ino == socketInode_) {
    ::unlink(path_.c_str());
  }
}

bool ControlServer::allowed(uid_t uid) const {
  return std::find(options_.allowedUids.begin(), options_.allowedUids.end(), uid) !=
         options_.allowedUids.end();
}

void ControlServer::run() {
  std::vector<pollfd> fds;
  for (;;) {
    auto now = Clock::now();
    int timeout = -1;
    for (const auto& connection : connections_) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(connection->deadline - now).count();
      left = std::max<int64_t>(left, 0);
      timeout = timeout < 0 ? static_cast<int>(left) : std::min(timeout, static_cast<int>(left));
    }
    if (acceptPausedUntil_ > now) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(acceptPausedUntil_ - now).count();
      timeout = timeout < 0 ? static_cast<int>(left) : std::min(timeout, static_cast<int>(left));
    }
    bool listening = connections_.size() < options_.maxConnections && acceptPausedUntil_ <= now;
    fds.clear();
    fds.push_back({stopFd_, POLLIN, 0});
    fds.push_back({listening ? listenFd_ : -1, POLLIN, 0});
    for (const auto& connection : connections_) fds.push_back({connection->fd, POLLIN, 0});

    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;

    if (ready > 0) {
      // Connections first, by their place in `fds`; accept() below appends new ones.
      for (size_t i = 0; i + 2 < fds.size(); ++i) {
        if (fds[i + 2].revents != 0 && !receive(*connections_[i])) connections_[i]->closing = true;
      }
      if (listening && (fds[1].revents & POLLIN) != 0) accept();
    }

    now = Clock::now();
    for (auto& connection : connections_) {
      if (connection->closing || connection->deadline > now) continue;
      ControlReply reply = ControlReply::failure(
          ETIMEDOUT, "no whole request within " + std::to_string(options_.receiveTimeout.count()) + " ms");
      (void)writeFrame(connection->fd, encodeReply(reply), now + options_.receiveTimeout);
      connection->closing = true;
    }
    std::erase_if(connections_, [](const auto& connection) { return connection->closing; });
  }
  connections_.clear();
}

void ControlServer::accept() {
  while (connections_.size() < options_.maxConnections) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // Out of descriptors or memory, the pending connection stays readable: back off rather than spin.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        acceptPausedUntil_ = Clock::now() + std::chrono::milliseconds(100);
      }
      return;  // otherwise EAGAIN, or an aborted connection: nothing to serve either way
    }
    auto connection = std::make_unique<Connection>(fd);
    ucred credentials{};
    socklen_t size = sizeof(credentials);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) continue;
    connection->peer = {credentials.pid, credentials.uid, credentials.gid};
    if (!allowed(credentials.uid)) {
      // Refused before anything of theirs is parsed; the reply is small enough never to block.
      ControlReply reply = ControlReply::failure(
          EPERM, "uid " + std::to_string(credentials.uid) + " is not allowed to use this socket");
      (void)writeFrame(fd, encodeReply(reply), Clock::now() + std::chrono::milliseconds(100));
      continue;
    }
    connection->deadline = Clock::now() + options_.receiveTimeout;
    connections_.push_back(std::move(connection));
  }
}

bool ControlServer::receive(Connection& connection) {
  for (;;) {
    size_t wanted = connection.buffer.size() < kControlFrameHeaderBytes
                        ? kControlFrameHeaderBytes
                        : kControlFrameHeaderBytes + connection.payloadBytes;
    if (connection.buffer.size() < wanted) {
      size_t had = connection.buffer.size();
      connection.buffer.resize(wanted);
      ssize_t got = ::recv(connection.fd, connection.buffer.data() + had, wanted - had, MSG_DONTWAIT);
      connection.buffer.resize(had + static_cast<size_t>(std::max<ssize_t>(got, 0)));
      if (got == 0) return false;  // the peer is done (or gave up mid-frame): nothing to answer
      if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      if (connection.buffer.size() < wanted) continue;
    }
    if (wanted == kControlFrameHeaderBytes) {
      uint8_t header[kControlFrameHeaderBytes];
      std::memcpy(header, connection.buffer.data(), sizeof(header));
      auto size = decodeFrameLength(header);
      if (!size) {
        // The rest of the stream cannot be framed any more: answer, then close.
        (void)writeFrame(connection.fd,
                         encodeReply(ControlReply::failure(size.error().code, size.error().message)),
                         Clock::now() + options_.receiveTimeout);
        return false;
      }
      connection.payloadBytes = size.value();
      if (connection.payloadBytes > 0) continue;
    }
    ControlReply reply = dispatch(connection.buffer.substr(kControlFrameHeaderBytes), connection.peer);
    std::string encoded = encodeReply(reply);
    if (encoded.size() > kControlMaxMessageBytes) {
      ControlReply tooBig = ControlReply::failure(
          EMSGSIZE, "reply of " + std::to_string(encoded.size()) + " bytes is over the limit");
      tooBig.id = reply.id;
      encoded = encodeReply(tooBig);
    }
    if (!writeFrame(connection.fd, encoded, Clock::now() + options_.receiveTimeout)) return false;
    connection.buffer.clear();
    connection.payloadBytes = 0;
    connection.deadline = Clock::now() + options_.receiveTimeout;
    // One request per wakeup, so that a busy client cannot starve the others; poll reports the rest.
    return true;
  }
}

ControlReply ControlServer::dispatch(const std::string& payload, const PeerCredentials& peer) {
  uint64_t id = 0;
  auto request = decodeRequest(payload, &id);
  ControlReply reply;
  if (!request) {
    reply = ControlReply::failure(request.error().code, request.error().message);
  } else if (request.value().verb == "version") {
    reply =
        ControlReply::success({{"protocol", kControlProtocolVersion}, {"daemon", options_.daemonVersion}});
  } else if (auto handler = handlers_.find(request.value().verb); handler == handlers_.end()) {
    reply = ControlReply::failure(EOPNOTSUPP, "unknown verb '" + request.value().verb + "'");
  } else {
    try {
      reply = handler->second(request.value().args, peer);
      if (!reply.result.is_null() && !reply.result.is_object()) {
        reply = ControlReply::failure(
            EIO, "internal error: '" + request.value().verb + "' returned a result that is not an object");
      } else if (reply.status < 0 || reply.status > 4095) {
        reply = ControlReply::failure(EIO, "internal error: '" + request.value().verb + "' returned status " +
                                               std::to_string(reply.status));
      }
    } catch (const std::exception& error) {
      reply = ControlReply::failure(EIO, std::string("internal error: ") + error.what());
    } catch (...) {
      reply = ControlReply::failure(EIO, "internal error: unknown exception");
    }
  }
  reply.version = kControlProtocolVersion;
  reply.id = id;
  return reply;
}

}  // namespace vgate::control
