// The control client against a hand-driven listening socket: connect failures, id matching, a server that
// hangs up.
#include "control/socket/control_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

namespace vgate::control {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class ControlClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgate-client-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "s.sock").string();
  }
  void TearDown() override {
    if (listenFd_ >= 0) ::close(listenFd_);
    std::filesystem::remove_all(dir_);
  }

  void listenHere() {
    listenFd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(listenFd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(::listen(listenFd_, 4), 0);
  }

  // Accepts one connection, reads one request and answers with `answer(request)`, or hangs up when it is
  // empty.
  std::thread serveOnce(std::function<std::string(const ControlRequest&)> answer) {
    return std::thread([this, answer] {
      int fd = ::accept(listenFd_, nullptr, nullptr);
      auto deadline = std::chrono::steady_clock::now() + 2s;
      auto frame = readFrame(fd, deadline);
      if (frame.ok()) {
        auto request = decodeRequest(frame.value());
        std::string reply = request.ok() ? answer(request.value()) : "";
        if (!reply.empty()) (void)writeFrame(fd, reply, deadline);
      }
      ::close(fd);
    });
  }

  std::filesystem::path dir_;
  std::string path_;
  int listenFd_ = -1;
};

TEST_F(ControlClientTest, ConnectFailuresNameThePathAndTheReason) {
  auto missing = ControlClient::connect(path_, 1s);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_EQ(missing.error().message, "cannot connect to " + path_ + ": No such file or directory");
  EXPECT_EQ(ControlClient::connect("", 1s).error().code, ENAMETOOLONG);
}

TEST_F(ControlClientTest, SendsAVersionedRequestAndMatchesTheReply) {
  listenHere();
  ControlRequest seen;
  auto server = serveOnce([&](const ControlRequest& request) {
    seen = request;
    ControlReply reply = ControlReply::success({{"ok", true}});
    reply.id = request.id;
    return encodeReply(reply);
  });
  auto client = ControlClient::connect(path_, 2s);
  ASSERT_TRUE(client.ok());
  auto reply = client.value().call("attach", {{"pid", 1}});
  server.join();
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply.value().result, json({{"ok", true}}));
  EXPECT_EQ(seen.verb, "attach");
  EXPECT_EQ(seen.args, json({{"pid", 1}}));
  EXPECT_EQ(seen.version, kControlProtocolVersion);
}

TEST_F(ControlClientTest, AReplyForAnotherIdIsRefused) {
  listenHere();
  auto server = serveOnce([](const ControlRequest& request) {
    ControlReply reply = ControlReply::success();
    reply.id = request.id + 1;
    return encodeReply(reply);
  });
  auto client = ControlClient::connect(path_, 2s);
  ASSERT_TRUE(client.ok());
  auto reply = client.value().call("status");
  server.join();
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, EPROTO);
}

TEST_F(ControlClientTest, AServerThatHangsUpIsAnError) {
  listenHere();
  auto server = serveOnce([](const ControlRequest&) { return std::string(); });
  auto client = ControlClient::connect(path_, 2s);
  ASSERT_TRUE(client.ok());
  auto reply = client.value().call("status");
  server.join();
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, ECONNRESET);
}

TEST_F(ControlClientTest, ASilentServerTimesOut) {
  listenHere();  // never accepts: the connect succeeds through the backlog, the reply never comes
  auto client = ControlClient::connect(path_, 200ms);
  ASSERT_TRUE(client.ok());
  auto reply = client.value().call("status");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, ETIMEDOUT);
}

TEST_F(ControlClientTest, MovedFromClientIsNotConnected) {
  listenHere();
  auto client = ControlClient::connect(path_, 1s);
  ASSERT_TRUE(client.ok());
  ControlClient moved = std::move(client.value());
  EXPECT_GE(moved.fd(), 0);
  EXPECT_EQ(client.value().call("status").error().code, ENOTCONN);  // NOLINT(bugprone-use-after-move)
}

}  // namespace
}  // namespace vgate::control
