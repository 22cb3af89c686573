// Network namespace handles and the persistent namespace; see netns.h.
#include "control/interposer/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "control/interposer/netlink_socket.h"

namespace vgate::control {

namespace {

Error errnoError(int code, const std::string& what) {
  return makeError(code, what + ": " + std::strerror(code));
}

}  // namespace

Netns::Netns(Netns&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Netns::~Netns() { close(); }

void Netns::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Netns> Netns::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int code = errno;
    if (code == ENOENT) return makeError(ENOENT, "netns " + path + " does not exist");
    return errnoError(code, "cannot open netns " + path);
  }
  Netns netns(fd);
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0 || fs.f_type != NSFS_MAGIC || ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
    return makeError(EINVAL, path + " is not a network namespace");
  }
  return netns;
}

Result<Netns> Netns::ofPid(int pid) {
  if (pid <= 0) return makeError(EINVAL, "invalid pid " + std::to_string(pid));
  auto netns = open("/proc/" + std::to_string(pid) + "/ns/net");
  if (!netns && netns.error().code == ENOENT) {
    return makeError(ENOENT, "no process " + std::to_string(pid) + " (its netns does not exist)");
  }
  return netns;
}

Result<Netns> Netns::current() { return open("/proc/thread-self/ns/net"); }

bool Netns::sameAs(const Netns& other) const {
  struct stat a {
  }, b{};
  if (fstat(fd_, &a) != 0 || fstat(other.fd_, &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<EnterNetns> EnterNetns::enter(const Netns& target) {
  auto previous = Netns::current();
  if (!previous) return previous.error();
  if (setns(target.fd(), CLONE_NEWNET) != 0) return errnoError(errno, "setns");
  return EnterNetns(std::move(previous).value());
}

EnterNetns::~EnterNetns() {
  if (!previous_.valid()) return;
  // A thread left in the wrong namespace would silently act on the wrong links: not recoverable.
  if (setns(previous_.fd(), CLONE_NEWNET) != 0) std::abort();
}

Result<void> ensurePersistentNetns(const std::string& path) {
  struct statfs fs {};
  if (statfs(path.c_str(), &fs) == 0 && fs.f_type == NSFS_MAGIC) {
    auto existing = Netns::open(path);
    if (!existing) return existing.error();
    return {};
  }
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return makeError(ec.value(), "cannot create " + parent.string() + ": " + ec.message());
  int file = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
  if (file < 0) return errnoError(errno, "cannot create " + path);
  ::close(file);

  // unshare() moves only the calling thread: a helper thread makes the namespace, pins it by the bind mount
  // and exits, so the caller's thread never changes namespace.
  Result<void> result;
  std::thread helper([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      result = errnoError(errno, "unshare(CLONE_NEWNET)");
      return;
    }
    std::string self = "/proc/self/task/" + std::to_string(gettid()) + "/ns/net";
    if (mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
      result = errnoError(errno, "cannot bind-mount a new netns on " + path);
      return;
    }
    auto socket = NetlinkSocket::open();
    Result<void> up = socket ? socket.value().setLinkUp("lo", true) : Result<void>(socket.error());
    if (!up) {
      umount2(path.c_str(), MNT_DETACH);
      result = up;
    }
  });
  helper.join();
  if (!result) unlink(path.c_str());
  return result;
}

Result<void> removePersistentNetns(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) return errnoError(errno, "umount " + path);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return errnoError(errno, "unlink " + path);
  return {};
}

}  // namespace vgate::control
