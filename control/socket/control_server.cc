// The daemon's end of the control socket: see control_server.h.
#include "control/socket/control_server.h"

#include <grp.h>
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
#include <utility>

namespace vgate::control {
namespace {

using Clock = std::chrono::steady_clock;

// What one recv() takes at most: a big request (a policy) arrives in pieces, and its buffer grows with what
// came rather than with what the header announced.
constexpr size_t kReceiveChunk = 64 * 1024;

int millisecondsUntil(Clock::time_point deadline, Clock::time_point now) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

void signalEventFd(int fd) {
  uint64_t one = 1;
  while (::write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void drainEventFd(int fd) {
  uint64_t value;
  while (::read(fd, &value, sizeof(value)) > 0) {
  }
}

// The peer's supplementary groups (SO_PEERGROUPS, as they were when it connected).
std::vector<gid_t> peerGroups(int fd) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
      groups.resize(size / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) break;
    groups.resize(size / sizeof(gid_t) + 1);
  }
  return {};
}

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

Result<gid_t> groupId(const std::string& name) {
  if (name.empty()) return makeError(EINVAL, "the socket group is empty");
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      name.size() < 10) {
    return static_cast<gid_t>(std::stoul(name));
  }
  group entry{};
  group* found = nullptr;
  std::vector<char> buffer(16384);
  int code = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (code != 0) return makeError(code, "cannot look up group '" + name + "': " + std::strerror(code));
  if (found == nullptr) return makeError(ENOENT, "no group named '" + name + "'");
  return entry.gr_gid;
}

struct ControlServer::Connection {
  explicit Connection(int socket) : fd(socket) {}
  ~Connection() { ::close(fd); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd;
  PeerCredentials peer;
  std::string input;        // the frame read so far: header, then payload
  size_t payloadBytes = 0;  // known once the header is complete
  std::string output;       // reply frames not yet taken by the kernel
  size_t outputSent = 0;
  // A handler runs for this connection's request: nothing more is read (the next pipelined request waits in
  // the kernel) and no deadline runs until its reply is queued.
  bool handling = false;
  std::thread handler;
  bool closeAfterOutput = false;
  bool closing = false;
  // While reading: when the request must be whole. While output is pending: when the client must have taken
  // it.
  Clock::time_point deadline;
};

ControlServer::ControlServer(std::string path, ControlHandlers handlers, ControlServerOptions options)
    : path_(std::move(path)), handlers_(std::move(handlers)), options_(std::move(options)) {
  if (options_.allowedUids.empty()) options_.allowedUids = {0, ::geteuid()};
  if (options_.maxConnections == 0) options_.maxConnections = 1;
  options_.maxRequestBytes = std::min(options_.maxRequestBytes, kControlMaxMessageBytes);
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
  // The file takes the socket inode's mode at bind time, so it never exists with a wider mode; the group
  // gets its access only once the file is its.
  if (::fchmod(server->listenFd_, 0600) != 0) return systemError("fchmod control socket");
  if (::bind(server->listenFd_, reinterpret_cast<const sockaddr*>(&address.value()), sizeof(sockaddr_un)) !=
      0) {
    return systemError("bind " + path);
  }
  auto undo = [&](Error error) {
    ::unlink(path.c_str());
    return error;
  };
  const auto& group = server->options_.socketGroup;
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return undo(systemError("chown " + path + " to group " + std::to_string(*group)));
  }
  struct stat info {};
  if (::chmod(path.c_str(), group ? 0660 : 0600) != 0 || ::stat(path.c_str(), &info) != 0) {
    return undo(systemError("chmod " + path));
  }
  server->socketDevice_ = info.st_dev;
  server->socketInode_ = info.st_ino;
  if (::listen(server->listenFd_, 64) != 0) return undo(systemError("listen " + path));
  server->stopFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  server->wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->stopFd_ < 0 || server->wakeFd_ < 0) return undo(systemError("eventfd"));
  server->thread_ = std::thread([raw = server.get()] { raw->run(); });
  return server;
}

ControlServer::~ControlServer() {
  stop();
  if (listenFd_ >= 0) ::close(listenFd_);
  if (stopFd_ >= 0) ::close(stopFd_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void ControlServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    signalEventFd(stopFd_);
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

ControlSocketCounters ControlServer::counters() const {
  std::lock_guard lock(countersMutex_);
  return counters_;
}

template <typename Change>
void ControlServer::count(Change change) {
  std::lock_guard lock(countersMutex_);
  change(counters_);
}

bool ControlServer::allowed(int fd, const PeerCredentials& peer) const {
  if (std::find(options_.allowedUids.begin(), options_.allowedUids.end(), peer.uid) !=
      options_.allowedUids.end()) {
    return true;
  }
  if (!options_.socketGroup) return false;
  gid_t group = *options_.socketGroup;
  if (peer.gid == group) return true;
  std::vector<gid_t> groups = peerGroups(fd);
  return std::find(groups.begin(), groups.end(), group) != groups.end();
}

void ControlServer::run() {
  std::vector<pollfd> fds;
  std::vector<Connection*> polled;
  for (;;) {
    auto now = Clock::now();
    int timeout = -1;
    auto sooner = [&](Clock::time_point deadline) {
      int left = millisecondsUntil(deadline, now);
      timeout = timeout < 0 ? left : std::min(timeout, left);
    };
    for (const auto& connection : connections_) {
      if (!connection->handling) sooner(connection->deadline);
    }
    if (acceptPausedUntil_ > now) sooner(acceptPausedUntil_);
    bool listening = connections_.size() < options_.maxConnections && acceptPausedUntil_ <= now;
    fds.clear();
    polled.clear();
    fds.push_back({stopFd_, POLLIN, 0});
    fds.push_back({wakeFd_, POLLIN, 0});
    fds.push_back({listening ? listenFd_ : -1, POLLIN, 0});
    for (const auto& connection : connections_) {
      // While its handler runs a connection is not polled at all: a hang-up would wake poll every time.
      short events = connection->output.size() > connection->outputSent ? POLLOUT : POLLIN;
      fds.push_back({connection->handling ? -1 : connection->fd, events, 0});
      polled.push_back(connection.get());
    }

    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;

    if (ready > 0) {
      if (fds[1].revents != 0) {
        drainEventFd(wakeFd_);
        finishCompletions();
      }
      for (size_t i = 0; i < polled.size(); ++i) {
        Connection& connection = *polled[i];
        short revents = fds[i + 3].revents;
        if (revents == 0 || connection.handling || connection.closing) continue;
        bool ok = (revents & POLLOUT) ? send(connection) : receive(connection);
        if (!ok) connection.closing = true;
      }
      if (listening && (fds[2].revents & POLLIN) != 0) accept();
    }

    now = Clock::now();
    for (auto& connection : connections_) {
      if (connection->closing || connection->handling || connection->deadline > now) continue;
      if (connection->output.size() > connection->outputSent) {
        count([](ControlSocketCounters& c) { ++c.repliesAbandoned; });
        connection->closing = true;
        continue;
      }
      count([](ControlSocketCounters& c) { ++c.requestsTimedOut; });
      queueReply(
          *connection,
          ControlReply::failure(ETIMEDOUT, "no whole request within " +
                                               std::to_string(options_.receiveTimeout.count()) + " ms"),
          true);
    }
    size_t before = connections_.size();
    std::erase_if(connections_, [](const auto& connection) { return connection->closing; });
    if (connections_.size() != before) {
      count([&](ControlSocketCounters& c) { c.connectionsOpen = connections_.size(); });
    }
  }
  // Handlers still running hold their connection: wait for them before the connections go.
  for (auto& connection : connections_) {
    if (connection->handler.joinable()) connection->handler.join();
  }
  connections_.clear();
  std::lock_guard lock(completionsMutex_);
  completions_.clear();
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
    if (!allowed(fd, connection->peer)) {
      count([](ControlSocketCounters& c) { ++c.connectionsRefused; });
      // Refused before anything of theirs is read. The reply goes into an empty socket buffer, so one
      // non-blocking send takes it whole.
      std::string why = "uid " + std::to_string(credentials.uid) + " is not allowed to use this socket (" +
                        (options_.socketGroup
                             ? "root or members of group " + std::to_string(*options_.socketGroup) + " only"
                             : std::string("root only: see vgated run --socket-group")) +
                        ")";
      std::string frame = encodeFrame(encodeReply(ControlReply::failure(EPERM, why)));
      (void)::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    connection->deadline = Clock::now() + options_.receiveTimeout;
    connections_.push_back(std::move(connection));
    count([&](ControlSocketCounters& c) {
      ++c.connectionsAccepted;
      c.connectionsOpen = connections_.size();
    });
  }
}

bool ControlServer::receive(Connection& connection) {
  char chunk[kReceiveChunk];
  for (;;) {
    size_t wanted = connection.input.size() < kControlFrameHeaderBytes
                        ? kControlFrameHeaderBytes
                        : kControlFrameHeaderBytes + connection.payloadBytes;
    if (connection.input.size() < wanted) {
      // Never past this frame: a pipelined next request stays in the kernel until this one is answered.
      size_t room = std::min(wanted - connection.input.size(), sizeof(chunk));
      ssize_t got = ::recv(connection.fd, chunk, room, MSG_DONTWAIT);
      if (got == 0) return false;  // the peer is done (or gave up mid-frame): nothing to answer
      if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      connection.input.append(chunk, static_cast<size_t>(got));
      if (connection.input.size() < wanted) continue;
    }
    if (wanted == kControlFrameHeaderBytes) {
      uint8_t header[kControlFrameHeaderBytes];
      std::memcpy(header, connection.input.data(), sizeof(header));
      auto size = decodeFrameLength(header);
      std::optional<Error> refusal;
      if (!size) {
        refusal = size.error();
      } else if (size.value() > options_.maxRequestBytes) {
        refusal = makeError(EMSGSIZE, "request of " + std::to_string(size.value()) +
                                          " bytes is over the limit of " +
                                          std::to_string(options_.maxRequestBytes));
      }
      if (refusal) {
        // The rest of the stream cannot be framed any more: answer, then close.
        count([](ControlSocketCounters& c) { ++c.requestsOversize; });
        queueReply(connection, ControlReply::failure(refusal->code, refusal->message), true);
        return true;
      }
      connection.payloadBytes = size.value();
      if (connection.payloadBytes > 0) continue;
    }
    std::string payload = connection.input.substr(kControlFrameHeaderBytes);
    connection.input.clear();
    connection.input.shrink_to_fit();
    connection.payloadBytes = 0;
    connection.handling = true;
    count([](ControlSocketCounters& c) { ++c.requestsInFlight; });
    connection.handler = std::thread([this, raw = &connection, payload = std::move(payload)] {
      ControlReply reply = dispatch(payload, raw->peer);
      {
        std::lock_guard lock(completionsMutex_);
        completions_.push_back({raw, std::move(reply)});
      }
      signalEventFd(wakeFd_);
    });
    return true;
  }
}

void ControlServer::finishCompletions() {
  std::deque<Completion> done;
  {
    std::lock_guard lock(completionsMutex_);
    done.swap(completions_);
  }
  for (Completion& completion : done) {
    Connection& connection = *completion.connection;
    connection.handler.join();
    connection.handling = false;
    bool failed = !completion.reply.ok();
    count([&](ControlSocketCounters& c) {
      --c.requestsInFlight;
      ++c.requests;
      if (failed) ++c.requestsFailed;
    });
    queueReply(connection, completion.reply, false);
  }
}

void ControlServer::queueReply(Connection& connection, const ControlReply& reply, bool thenClose) {
  std::string encoded = encodeReply(reply);
  if (encoded.size() > kControlMaxMessageBytes) {
    ControlReply tooBig = ControlReply::failure(
        EMSGSIZE, "reply of " + std::to_string(encoded.size()) + " bytes is over the limit");
    tooBig.id = reply.id;
    encoded = encodeReply(tooBig);
  }
  if (connection.outputSent == connection.output.size()) {
    connection.output.clear();
    connection.outputSent = 0;
  }
  connection.output += encodeFrame(encoded);
  connection.closeAfterOutput = connection.closeAfterOutput || thenClose;
  connection.deadline = Clock::now() + options_.sendTimeout;
  if (!send(connection)) connection.closing = true;
}

bool ControlServer::send(Connection& connection) {
  while (connection.outputSent < connection.output.size()) {
    ssize_t sent = ::send(connection.fd, connection.output.data() + connection.outputSent,
                          connection.output.size() - connection.outputSent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0) {
      connection.outputSent += static_cast<size_t>(sent);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return true;  // poll says when the client takes more
    } else if (errno != EINTR) {
      return false;
    }
  }
  connection.output.clear();
  connection.output.shrink_to_fit();
  connection.outputSent = 0;
  if (connection.closeAfterOutput) {
    connection.closing = true;
  } else {
    connection.deadline = Clock::now() + options_.receiveTimeout;
  }
  return true;
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
