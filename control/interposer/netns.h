// Network namespace handles for the interposer: an fd wrapper, a scoped per-thread switch, and the persistent
// namespace (bind-mounted like `ip netns add` does) that holds vgate's inner and outer ports.
#pragma once

#include <sys/types.h>

#include <string>

#include "vgate/result.h"

namespace vgate::control {

// An open namespace file (/run/netns/x, /proc/PID/ns/net, ...). Owns its fd.
class Netns {
 public:
  Netns() = default;
  Netns(Netns&& other) noexcept;
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  // ENOENT if `path` does not exist, EINVAL if it is not a network namespace.
  static Result<Netns> open(const std::string& path);
  // The namespace of process `pid`: ENOENT if there is no such process.
  static Result<Netns> ofPid(int pid);
  // The calling thread's namespace (netns membership is per thread).
  static Result<Netns> current();

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Whether both handles name the same namespace (same nsfs inode).
  bool sameAs(const Netns& other) const;
  void close();

 private:
  explicit Netns(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Moves the calling thread into a namespace and back to the previous one when destroyed. Not for use across
// threads: the thread that entered is the one that must destroy it.
class EnterNetns {
 public:
  static Result<EnterNetns> enter(const Netns& target);
  EnterNetns(EnterNetns&& other) noexcept = default;
  EnterNetns& operator=(EnterNetns&&) = delete;
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;
  ~EnterNetns();

 private:
  explicit EnterNetns(Netns previous) : previous_(std::move(previous)) {}
  Netns previous_;
};

// Makes `path` a persistent network namespace: kept as is if it already is an nsfs mount, else a new
// namespace (with `lo` up) is bind-mounted onto it, creating the file and its parent directories as needed.
Result<void> ensurePersistentNetns(const std::string& path);
// Unmounts and unlinks a namespace made by ensurePersistentNetns (the namespace dies with its last user).
Result<void> removePersistentNetns(const std::string& path);

}  // namespace vgate::control
