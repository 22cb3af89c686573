// The daemon's end of the control socket: a unix stream socket served by one thread that checks each peer's
// uid, reads framed requests, calls the handler registered for the verb and writes the reply.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "control/socket/control_protocol.h"
#include "vgate/result.h"

namespace vgate::control {

// Called on the server thread; keep it quick. A handler that throws gets the caller an EIO reply.
using ControlHandler = std::function<ControlReply(const nlohmann::json& args, const PeerCredentials& peer)>;
using ControlHandlers = std::map<std::string, ControlHandler>;

struct ControlServerOptions {
  std::string daemonVersion;  // reported by the built-in verb "version"
  // Peers allowed to send requests; empty means root and the server's own effective uid.
  std::vector<uid_t> allowedUids;
  // Each request must arrive whole within this long after the connection opens or the previous reply.
  std::chrono::milliseconds receiveTimeout{5000};
  // Connections beyond this wait in the listen backlog until one closes.
  size_t maxConnections = 16;
};

class ControlServer {
 public:
  // Creates the socket at `path` (mode 0600; missing parent directories 0755), replacing a stale socket file
  // that nothing listens on, and starts serving. EADDRINUSE when a live server owns `path`.
  static Result<std::unique_ptr<ControlServer>> start(const std::string& path, ControlHandlers handlers,
                                                      ControlServerOptions options = {});

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  // Stops serving, closes every connection and removes the socket file if it is still ours. Idempotent; call
  // it from the owning thread, never from a handler.
  void stop();

  const std::string& path() const { return path_; }

 private:
  struct Connection;

  ControlServer(std::string path, ControlHandlers handlers, ControlServerOptions options);
  void run();
  void accept();
  // False when the connection is to be closed.
  bool receive(Connection& connection);
  ControlReply dispatch(const std::string& payload, const PeerCredentials& peer);
  bool allowed(uid_t uid) const;

  std::string path_;
  ControlHandlers handlers_;
  ControlServerOptions options_;
  int listenFd_ = -1;
  int stopFd_ = -1;  // eventfd
  dev_t socketDevice_ = 0;
  ino_t socketInode_ = 0;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::chrono::steady_clock::time_point acceptPausedUntil_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace vgate::control
