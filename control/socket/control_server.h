// The daemon's end of the control socket: a unix stream socket whose peers are checked by SO_PEERCRED (root,
// the server's own uid, or a member of the socket's group), served by one poll loop with non-blocking I/O and
// a buffer per connection, and handlers run on a thread per request in flight, so that neither a slow client
// nor a slow verb holds up anyone else.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/socket/control_protocol.h"
#include "vgate/counters.h"
#include "vgate/result.h"

namespace vgate::control {

// Called on a thread of its own, one per request in flight: several handlers may run at once (one per
// connection at most), so a handler takes the locks its state needs. A handler that throws gets the caller an
// EIO reply.
using ControlHandler = std::function<ControlReply(const nlohmann::json& args, const PeerCredentials& peer)>;
using ControlHandlers = std::map<std::string, ControlHandler>;

struct ControlServerOptions {
  std::string daemonVersion;  // reported by the built-in verb "version"
  // Peers allowed to send requests; empty means root and the server's own effective uid.
  std::vector<uid_t> allowedUids;
  // --socket-group: the socket file is chowned to this group with mode 0660, and peers whose primary or
  // supplementary groups include it are allowed too. None: mode 0600, uids only.
  std::optional<gid_t> socketGroup;
  // Each request must arrive whole within this long after the connection opens or the previous reply.
  std::chrono::milliseconds receiveTimeout{5000};
  // A reply the client does not take within this long closes its connection.
  std::chrono::milliseconds sendTimeout{5000};
  // Connections beyond this wait in the listen backlog until one closes.
  size_t maxConnections = 16;
  // Frames announcing a larger payload are refused (EMSGSIZE) and the connection closed.
  size_t maxRequestBytes = kControlMaxMessageBytes;
};

#define VGATE_CONTROL_SOCKET_COUNTERS(X)                                                                    \
  X(connectionsAccepted, counter, "connections", "connections accepted from allowed peers")                 \
  X(connectionsRefused, counter, "connections",                                                             \
    "connections refused (EPERM): the peer is not root, the daemon's uid or in the socket's group")         \
  X(connectionsOpen, gauge, "connections", "connections open now")                                          \
  X(requests, counter, "requests", "requests answered, errors included")                                    \
  X(requestsFailed, counter, "requests", "requests answered with an error status")                          \
  X(requestsInFlight, gauge, "requests", "requests whose handler is running now")                           \
  X(requestsOversize, counter, "requests", "frames over the size limit: refused and the connection closed") \
  X(requestsTimedOut, counter, "connections",                                                               \
    "connections closed because a request did not arrive whole in time (half a request, or none)")          \
  X(repliesAbandoned, counter, "replies", "replies the client did not take in time: its connection closed")

struct ControlSocketCounters {
  VGATE_COUNTER_MEMBERS(ControlSocketCounters, VGATE_CONTROL_SOCKET_COUNTERS)
};

class ControlServer {
 public:
  // Creates the socket at `path` (mode 0600, or 0660 and the socket group; missing parent directories 0755),
  // replacing a stale socket file that nothing listens on, and starts serving. EADDRINUSE when a live server
  // owns `path`.
  static Result<std::unique_ptr<ControlServer>> start(const std::string& path, ControlHandlers handlers,
                                                      ControlServerOptions options = {});

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  // Stops serving, waits for the handlers that run, closes every connection and removes the socket file if it
  // is still ours. Idempotent; call it from the owning thread, never from a handler.
  void stop();

  const std::string& path() const { return path_; }
  ControlSocketCounters counters() const;

 private:
  struct Connection;
  struct Completion {
    Connection* connection;
    ControlReply reply;
  };

  ControlServer(std::string path, ControlHandlers handlers, ControlServerOptions options);
  void run();
  void accept();
  bool allowed(int fd, const PeerCredentials& peer) const;
  // Reads what is there; starts a handler once a frame is whole. False when the connection is to be closed.
  bool receive(Connection& connection);
  // Writes what the kernel takes. False on a failed send.
  bool send(Connection& connection);
  void queueReply(Connection& connection, const ControlReply& reply, bool thenClose);
  void finishCompletions();
  ControlReply dispatch(const std::string& payload, const PeerCredentials& peer);
  template <typename Change>
  void count(Change change);

  std::string path_;
  ControlHandlers handlers_;
  ControlServerOptions options_;
  int listenFd_ = -1;
  int stopFd_ = -1;  // eventfd: stop()
  int wakeFd_ = -1;  // eventfd: a handler finished
  dev_t socketDevice_ = 0;
  ino_t socketInode_ = 0;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::chrono::steady_clock::time_point acceptPausedUntil_;
  std::thread thread_;
  bool stopped_ = false;

  std::mutex completionsMutex_;  // handler threads -> the poll loop
  std::deque<Completion> completions_;
  mutable std::mutex countersMutex_;
  ControlSocketCounters counters_;
};

// The gid of group `name` (a name, or a number), for --socket-group.
Result<gid_t> groupId(const std::string& name);

}  // namespace vgate::control
