// The control server end to end on a temporary socket: verbs, refusals, framing errors, timeouts, peer uids
// and groups, slow clients and slow handlers beside quick ones, concurrency and the socket file's life cycle.
#include "control/socket/control_server.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "control/socket/control_client.h"

namespace vgate::control {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

ControlDeadline in(std::chrono::milliseconds timeout) { return std::chrono::steady_clock::now() + timeout; }

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-socket-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "run" / "vgated.sock").string();
    handlers_["echo"] = [this](const json& args, const PeerCredentials& peer) {
      ++calls_;
      lastPeer_ = peer;
      return ControlReply::success({{"args", args}});
    };
    handlers_["exists"] = [](const json&, const PeerCredentials&) {
      return ControlReply::failure(EEXIST, "port web is attached already");
    };
    handlers_["throw"] = [](const json&, const PeerCredentials&) -> ControlReply {
      throw std::runtime_error("boom");
    };
    handlers_["array"] = [](const json&, const PeerCredentials&) {
      return ControlReply::success(json::array());
    };
    options_.daemonVersion = "9.9.9";
    options_.receiveTimeout = 200ms;
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void startServer() {
    auto server = ControlServer::start(path_, handlers_, options_);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(server.value());
  }

  ControlClient connectClient() {
    auto client = ControlClient::connect(path_, 2s);
    EXPECT_TRUE(client.ok()) << client.error().message;
    return std::move(client.value());
  }

  // A bare connection, for sending what ControlClient would not.
  int connectRaw() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
        << std::strerror(errno);
    return fd;
  }

  static void sendRaw(int fd, const std::string& bytes) {
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }

  static ControlReply readReply(int fd) {
    auto frame = readFrame(fd, in(3s));
    EXPECT_TRUE(frame.ok()) << frame.error().message;
    if (!frame.ok()) return ControlReply::failure(-1, "no frame");
    auto reply = decodeReply(frame.value());
    EXPECT_TRUE(reply.ok()) << reply.error().message;
    return reply.ok() ? reply.value() : ControlReply::failure(-1, "bad reply");
  }

  // True when the server has closed `fd`: EOF, or a reset when it left our bytes unread.
  static bool closedByServer(int fd) {
    int code = readFrame(fd, in(1s)).error().code;
    return code == ENODATA || code == ECONNRESET;
  }

  std::filesystem::path dir_;
  std::string path_;
  ControlHandlers handlers_;
  ControlServerOptions options_;
  std::unique_ptr<ControlServer> server_;
  std::atomic<int> calls_{0};  // handlers run on threads of their own, several at once
  PeerCredentials lastPeer_;   // written by the echo handler, read after its reply came back
};

TEST_F(ControlServerTest, BuiltInVersion) {
  startServer();
  auto client = connectClient();
  auto reply = client.call("version");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().status, 0);
  EXPECT_EQ(reply.value().result, json({{"protocol", 1}, {"daemon", "9.9.9"}}));
}

TEST_F(ControlServerTest, HandlerGetsArgsAndPeerForSeveralRequestsOnOneConnection) {
  startServer();
  auto client = connectClient();
  for (int i = 0; i < 5; ++i) {
    json args = {{"netns", "/proc/1/ns/net"}, {"n", i}};
    auto reply = client.call("echo", args);
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_EQ(reply.value().id, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(reply.value().result["args"], args);
  }
  EXPECT_EQ(calls_, 5);
  EXPECT_EQ(lastPeer_.uid, ::geteuid());
  EXPECT_EQ(lastPeer_.pid, ::getpid());
}

TEST_F(ControlServerTest, HandlerErrorsReachTheCallerWithTheirErrnoName) {
  startServer();
  int fd = connectRaw();
  sendRaw(fd, encodeFrame(R"({"version":1,"id":77,"verb":"exists","args":{}})"));
  auto frame = readFrame(fd, in(2s));
  ASSERT_TRUE(frame.ok());
  json document = json::parse(frame.value());
  EXPECT_EQ(document["id"], 77);
  EXPECT_EQ(document["status"], EEXIST);
  EXPECT_EQ(document["errno"], "EEXIST");
  EXPECT_EQ(document["error"], "port web is attached already");
  ::close(fd);
}

TEST_F(ControlServerTest, UnknownVerbThenTheConnectionGoesOn) {
  startServer();
  auto client = connectClient();
  auto unknown = client.call("frobnicate");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown.value().status, EOPNOTSUPP);
  EXPECT_NE(unknown.value().error.find("frobnicate"), std::string::npos);
  auto next = client.call("echo", {{"a", 1}});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next.value().status, 0);
}

TEST_F(ControlServerTest, UnsupportedVersionGetsEprotoWithTheServersVersion) {
  startServer();
  int fd = connectRaw();
  sendRaw(fd, encodeFrame(R"({"version":2,"id":5,"verb":"echo","args":{}})"));
  ControlReply reply = readReply(fd);
  EXPECT_EQ(reply.status, EPROTO);
  EXPECT_EQ(reply.id, 5u);
  EXPECT_EQ(reply.version, kControlProtocolVersion);
  EXPECT_EQ(calls_, 0);
  ::close(fd);
}

TEST_F(ControlServerTest, MalformedJsonInAGoodFrameIsEinvalAndTheConnectionGoesOn) {
  startServer();
  int fd = connectRaw();
  sendRaw(fd, encodeFrame("{\"version\":1,\"id\":"));
  EXPECT_EQ(readReply(fd).status, EINVAL);
  sendRaw(fd, encodeFrame(""));
  EXPECT_EQ(readReply(fd).status, EINVAL);
  sendRaw(fd, encodeFrame(std::string("\0\1\2\3garbage", 11)));
  EXPECT_EQ(readReply(fd).status, EINVAL);
  sendRaw(fd, encodeFrame(R"({"version":1,"id":3,"verb":"echo"})"));
  ControlReply reply = readReply(fd);
  EXPECT_EQ(reply.status, 0);
  EXPECT_EQ(reply.id, 3u);
  ::close(fd);
}

TEST_F(ControlServerTest, PipelinedRequestsAreAnsweredInOrder) {
  startServer();
  int fd = connectRaw();
  sendRaw(fd, encodeFrame(R"({"version":1,"id":1,"verb":"echo"})") +
                  encodeFrame(R"({"version":1,"id":2,"verb":"version"})") +
                  encodeFrame(R"({"version":1,"id":3,"verb":"nope"})"));
  EXPECT_EQ(readReply(fd).id, 1u);
  EXPECT_EQ(readReply(fd).id, 2u);
  ControlReply third = readReply(fd);
  EXPECT_EQ(third.id, 3u);
  EXPECT_EQ(third.status, EOPNOTSUPP);
  ::close(fd);
}

TEST_F(ControlServerTest, GarbageBytesGetEmsgsizeAndClose) {
  startServer();
  int fd = connectRaw();
  sendRaw(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(readReply(fd).status, EMSGSIZE);
  EXPECT_TRUE(closedByServer(fd));
  ::close(fd);
}

TEST_F(ControlServerTest, OversizeFrameGetsEmsgsizeAndCloseButTheLimitItselfIsFine) {
  options_.maxRequestBytes = 64 * 1024;
  startServer();
  int fd = connectRaw();
  std::string prefix = R"({"version":1,"id":8,"verb":"echo","args":{"pad":")";
  std::string suffix = "\"}}";
  std::string padded =
      prefix + std::string(options_.maxRequestBytes - prefix.size() - suffix.size(), 'p') + suffix;
  ASSERT_TRUE(writeFrame(fd, padded, in(3s)).ok());
  ControlReply atLimit = readReply(fd);
  EXPECT_EQ(atLimit.id, 8u);
  EXPECT_EQ(atLimit.status, 0);
  EXPECT_EQ(atLimit.result["args"]["pad"].get<std::string>().size(), padded.size() - prefix.size() - 3);
  EXPECT_EQ(calls_, 1);

  uint32_t over = static_cast<uint32_t>(options_.maxRequestBytes + 1);
  std::string header = {static_cast<char>(over >> 24), static_cast<char>(over >> 16),
                        static_cast<char>(over >> 8), static_cast<char>(over)};
  sendRaw(fd, header + "{\"version\":1");
  ControlReply refused = readReply(fd);
  EXPECT_EQ(refused.status, EMSGSIZE);
  EXPECT_NE(refused.error.find("over the limit of 65536"), std::string::npos) << refused.error;
  EXPECT_TRUE(closedByServer(fd));
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(server_->counters().requestsOversize, 1u);
  ::close(fd);
}

TEST_F(ControlServerTest, AReplyOverTheProtocolLimitBecomesEmsgsize) {
  handlers_["huge"] = [](const json&, const PeerCredentials&) {
    return ControlReply::success({{"pad", std::string(kControlMaxMessageBytes, 'p')}});
  };
  startServer();
  auto client = ControlClient::connect(path_, 20s).value();  // 64 MiB of JSON is slow under ASan
  auto reply = client.call("huge");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().status, EMSGSIZE);
  EXPECT_EQ(client.call("echo").value().status, 0);
}

TEST_F(ControlServerTest, OverTheDefaultLimitIsRefusedBeforeAnythingIsRead) {
  startServer();
  int fd = connectRaw();
  uint32_t over = static_cast<uint32_t>(kControlMaxMessageBytes + 1);
  sendRaw(fd, std::string{static_cast<char>(over >> 24), static_cast<char>(over >> 16),
                          static_cast<char>(over >> 8), static_cast<char>(over)});
  EXPECT_EQ(readReply(fd).status, EMSGSIZE);
  EXPECT_TRUE(closedByServer(fd));
  ::close(fd);
}

TEST_F(ControlServerTest, TruncatedFrameTimesOutWithEtimedout) {
  startServer();
  int fd = connectRaw();
  std::string frame = encodeFrame(R"({"version":1,"id":4,"verb":"echo"})");
  auto started = std::chrono::steady_clock::now();
  sendRaw(fd, frame.substr(0, 10));
  ControlReply reply = readReply(fd);
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(reply.status, ETIMEDOUT);
  EXPECT_GE(waited, 150ms);
  EXPECT_TRUE(closedByServer(fd));
  EXPECT_EQ(calls_, 0);
  ::close(fd);
}

TEST_F(ControlServerTest, IdleConnectionTimesOut) {
  startServer();
  int fd = connectRaw();
  EXPECT_EQ(readReply(fd).status, ETIMEDOUT);
  EXPECT_TRUE(closedByServer(fd));
  ::close(fd);
}

TEST_F(ControlServerTest, PeerNotInAllowedUidsGetsEperm) {
  options_.allowedUids = {12345};
  startServer();
  auto client = connectClient();
  auto reply = client.call("echo", {{"a", 1}});
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().status, EPERM);
  EXPECT_NE(reply.value().error.find(std::to_string(::geteuid())), std::string::npos);
  EXPECT_EQ(calls_, 0);
}

// A child process with these credentials sends one echo request; its reply, decoded (status -1 when none
// came back). Root only.
ControlReply callAs(const std::string& path, uid_t uid, gid_t gid, std::vector<gid_t> groups) {
  int pipeFds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipeFds) != 0)
    return ControlReply::failure(-1, "");
  std::string request = encodeFrame(R"({"version":1,"id":1,"verb":"echo"})");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  pid_t child = ::fork();
  if (child == 0) {
    // Only raw system calls here: the parent has other threads.
    ::close(pipeFds[0]);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      ::_exit(10);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) ::_exit(11);
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buffer[4096];
    for (ssize_t got; (got = ::read(fd, buffer, sizeof(buffer))) > 0;) {
      if (::write(pipeFds[1], buffer, static_cast<size_t>(got)) != got) ::_exit(12);
      if (got >= 4) break;  // one small reply; an accepted connection stays open
    }
    ::_exit(0);
  }
  ::close(pipeFds[1]);
  auto reply = readFrame(pipeFds[0], in(5s));
  ::close(pipeFds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  if (!reply.ok()) return ControlReply::failure(-1, reply.error().message);
  auto decoded = decodeReply(reply.value());
  return decoded.ok() ? decoded.value() : ControlReply::failure(-1, "bad reply");
}

// Lets any uid reach the socket file, so that a refusal is the server's and not the file mode's.
void openUpTheWay(const std::filesystem::path& dir, const std::string& path) {
  std::filesystem::permissions(dir, std::filesystem::perms(0755));
  std::filesystem::permissions(dir / "run", std::filesystem::perms(0755));
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
}

TEST_F(ControlServerTest, UnprivilegedProcessGetsEperm) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to uid 65534";
  startServer();
  openUpTheWay(dir_, path_);
  ControlReply reply = callAs(path_, 65534, 65534, {});
  EXPECT_EQ(reply.status, EPERM) << reply.error;
  EXPECT_NE(reply.error.find("65534"), std::string::npos);
  EXPECT_NE(reply.error.find("--socket-group"), std::string::npos) << reply.error;
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(server_->counters().connectionsRefused, 1u);
}

TEST_F(ControlServerTest, SocketGroupMembersAreServedAndOthersRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch uids and chown the socket";
  constexpr gid_t kGroup = 47123;
  options_.socketGroup = kGroup;
  startServer();
  struct stat info {};
  ASSERT_EQ(::stat(path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0660u);
  EXPECT_EQ(info.st_gid, kGroup);
  std::filesystem::permissions(dir_, std::filesystem::perms(0755));
  std::filesystem::permissions(dir_ / "run", std::filesystem::perms(0755));

  // The file's group mode lets members in; the server checks again from the peer's credentials.
  ControlReply supplementary = callAs(path_, 65534, 65534, {kGroup});
  EXPECT_EQ(supplementary.status, 0) << supplementary.error;
  ControlReply primary = callAs(path_, 65534, kGroup, {});
  EXPECT_EQ(primary.status, 0) << primary.error;
  EXPECT_EQ(calls_, 2);

  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);
  ControlReply outsider = callAs(path_, 65534, 65534, {65534});
  EXPECT_EQ(outsider.status, EPERM);
  EXPECT_NE(outsider.error.find("group 47123"), std::string::npos) << outsider.error;
  EXPECT_EQ(calls_, 2);
  auto counters = server_->counters();
  EXPECT_EQ(counters.connectionsRefused, 1u);
  EXPECT_GE(counters.connectionsAccepted, 2u);
}

TEST(ControlServerGroup, GroupIdsByNameOrNumber) {
  auto root = groupId("root");
  ASSERT_TRUE(root.ok()) << root.error().message;
  EXPECT_EQ(root.value(), 0u);
  EXPECT_EQ(groupId("4242").value(), 4242u);
  EXPECT_EQ(groupId("no-such-group-vgate").error().code, ENOENT);
  EXPECT_EQ(groupId("").error().code, EINVAL);
}

TEST_F(ControlServerTest, HalfARequestStallsWithoutHoldingUpAnotherClient) {
  options_.receiveTimeout = 1500ms;
  startServer();
  int stalled = connectRaw();
  std::string frame = encodeFrame(R"({"version":1,"id":4,"verb":"echo"})");
  auto started = std::chrono::steady_clock::now();
  sendRaw(stalled, frame.substr(0, 12));
  std::this_thread::sleep_for(50ms);
  auto client = connectClient();
  for (int i = 0; i < 20; ++i) {
    auto reply = client.call("echo", {{"i", i}});
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_EQ(reply.value().status, 0);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1000ms)
      << "the quick client waited for the stalled one";
  EXPECT_EQ(readReply(stalled).status, ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1400ms);
  EXPECT_TRUE(closedByServer(stalled));
  EXPECT_EQ(server_->counters().requestsTimedOut, 1u);
  ::close(stalled);
}

TEST_F(ControlServerTest, AClientThatNeverReadsItsRepliesHoldsUpNoOne) {
  handlers_["big"] = [](const json&, const PeerCredentials&) {
    return ControlReply::success({{"pad", std::string(4 << 20, 'b')}});
  };
  options_.sendTimeout = 800ms;
  startServer();
  int hog = connectRaw();
  sendRaw(hog, encodeFrame(R"({"version":1,"id":1,"verb":"big"})"));
  std::this_thread::sleep_for(100ms);  // its reply now fills the socket buffer and waits
  auto started = std::chrono::steady_clock::now();
  auto client = connectClient();
  auto reply = client.call("echo");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms);
  // Past the send timeout the hog's connection goes, its reply untaken.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(server_->counters().repliesAbandoned, 1u);
  ::close(hog);
}

TEST_F(ControlServerTest, ASlowHandlerHoldsUpNoOtherClient) {
  std::atomic<bool> release{false};
  handlers_["slow"] = [&](const json&, const PeerCredentials&) {
    while (!release) std::this_thread::sleep_for(5ms);
    return ControlReply::success({{"slow", true}});
  };
  startServer();
  std::thread slowCaller([&] {
    auto client = ControlClient::connect(path_, 5s);
    ASSERT_TRUE(client.ok());
    auto reply = client.value().call("slow");
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_EQ(reply.value().result["slow"], true);
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server_->counters().requestsInFlight, 1u);
  auto client = connectClient();
  auto started = std::chrono::steady_clock::now();
  auto reply = client.call("echo");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 300ms);
  release = true;
  slowCaller.join();
  EXPECT_EQ(server_->counters().requestsInFlight, 0u);
}

TEST_F(ControlServerTest, StopWaitsForAHandlerThatRuns) {
  std::atomic<bool> finished{false};
  handlers_["slow"] = [&](const json&, const PeerCredentials&) {
    std::this_thread::sleep_for(300ms);
    finished = true;
    return ControlReply::success();
  };
  startServer();
  int fd = connectRaw();
  sendRaw(fd, encodeFrame(R"({"version":1,"id":1,"verb":"slow"})"));
  std::this_thread::sleep_for(50ms);
  server_->stop();
  EXPECT_TRUE(finished);
  ::close(fd);
}

TEST_F(ControlServerTest, ThrowingHandlerGetsEioAndTheServerGoesOn) {
  startServer();
  auto client = connectClient();
  auto thrown = client.call("throw");
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown.value().status, EIO);
  EXPECT_EQ(thrown.value().error, "internal error: boom");
  auto array = client.call("array");
  ASSERT_TRUE(array.ok());
  EXPECT_EQ(array.value().status, EIO);
  auto next = client.call("echo");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next.value().status, 0);
}

TEST_F(ControlServerTest, ConcurrentClientsBeyondTheConnectionLimitAllGetAnswers) {
  options_.receiveTimeout = 2s;
  startServer();
  constexpr int kClients = 40;
  constexpr int kCalls = 10;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto client = ControlClient::connect(path_, 10s);
      if (!client.ok()) return;
      for (int i = 0; i < kCalls; ++i) {
        auto reply = client.value().call("echo", {{"client", c}, {"call", i}});
        if (reply.ok() && reply.value().ok() && reply.value().result["args"]["client"] == c &&
            reply.value().result["args"]["call"] == i) {
          ++good;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(good.load(), kClients * kCalls);
  EXPECT_EQ(calls_, kClients * kCalls);
}

TEST_F(ControlServerTest, AConnectionBeyondTheLimitWaitsForAFreeSlot) {
  options_.maxConnections = 2;
  options_.receiveTimeout = 300ms;
  startServer();
  int idle1 = connectRaw();
  int idle2 = connectRaw();
  auto started = std::chrono::steady_clock::now();
  auto client = connectClient();  // queued in the backlog
  auto reply = client.call("echo");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().status, 0);
  // Served only once the idle ones had timed out.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
  ::close(idle1);
  ::close(idle2);
}

TEST_F(ControlServerTest, SocketFileModeParentsAndRemovalOnStop) {
  startServer();
  struct stat info {};
  ASSERT_EQ(::stat(path_.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir_ / "run").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0755u);

  auto client = connectClient();
  server_->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  server_->stop();  // idempotent
  EXPECT_FALSE(client.call("echo").ok());
  EXPECT_EQ(ControlClient::connect(path_, 1s).error().code, ENOENT);
}

TEST_F(ControlServerTest, StaleSocketFileIsReplaced) {
  std::filesystem::create_directories(dir_ / "run");
  int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(stale);  // the file stays, nothing listens
  ASSERT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(ControlClient::connect(path_, 1s).error().code, ECONNREFUSED);

  startServer();
  auto client = connectClient();
  auto reply = client.call("version");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.value().status, 0);
}

TEST_F(ControlServerTest, ALiveSocketIsNotStolen) {
  startServer();
  auto second = ControlServer::start(path_, handlers_, options_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EADDRINUSE);
  auto client = connectClient();
  auto reply = client.call("version");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply.value().status, 0);
}

TEST_F(ControlServerTest, AFileThatIsNotASocketIsLeftAlone) {
  std::filesystem::create_directories(dir_ / "run");
  std::ofstream(path_) << "keep me";
  auto server = ControlServer::start(path_, handlers_, options_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code, EEXIST);
  std::ifstream in(path_);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "keep me");
}

TEST_F(ControlServerTest, StopLeavesASuccessorsSocketAlone) {
  startServer();
  std::filesystem::rename(path_, dir_ / "moved.sock");
  auto successor = ControlServer::start(path_, handlers_, options_);
  ASSERT_TRUE(successor.ok()) << successor.error().message;
  server_->stop();
  EXPECT_TRUE(std::filesystem::exists(path_));
  successor.value()->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(ControlServerTest, PathTooLongIsRefused) {
  auto server = ControlServer::start("/tmp/" + std::string(200, 'x'), handlers_, options_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code, ENAMETOOLONG);
}

}  // namespace
}  // namespace vgate::control
