// The control socket's wire contract: framing, request and reply validation, errno names, frame I/O.
#include "control/socket/control_protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

namespace vgate::control {
namespace {

using nlohmann::json;

TEST(ControlProtocolTest, FrameHeaderIsBigEndianLength) {
  std::string frame = encodeFrame("abc");
  ASSERT_EQ(frame.size(), 7u);
  EXPECT_EQ(frame.substr(0, 4), std::string("\0\0\0\3", 4));
  EXPECT_EQ(frame.substr(4), "abc");

  uint8_t header[4] = {0x04, 0x00, 0x00, 0x00};  // exactly 64 MiB
  auto size = decodeFrameLength(header);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size.value(), kControlMaxMessageBytes);
  uint8_t over[4] = {0x04, 0x00, 0x00, 0x01};
  auto tooBig = decodeFrameLength(over);
  ASSERT_FALSE(tooBig.ok());
  EXPECT_EQ(tooBig.error().code, EMSGSIZE);
  uint8_t text[4] = {'G', 'E', 'T', ' '};
  EXPECT_EQ(decodeFrameLength(text).error().code, EMSGSIZE);
}

TEST(ControlProtocolTest, RequestRoundTrip) {
  ControlRequest request;
  request.id = 42;
  request.verb = "attach";
  request.args = {{"netns", "/proc/1/ns/net"}, {"ifname", "eth0"}};
  std::string text = encodeRequest(request);
  EXPECT_EQ(
      json::parse(text),
      json::parse(
          R"({"version":1,"id":42,"verb":"attach","args":{"ifname":"eth0","netns":"/proc/1/ns/net"}})"));
  auto decoded = decodeRequest(text);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded.value().id, 42u);
  EXPECT_EQ(decoded.value().verb, "attach");
  EXPECT_EQ(decoded.value().args, request.args);
}

TEST(ControlProtocolTest, ArgsMayBeMissingOrNull) {
  for (const char* text :
       {R"({"version":1,"id":1,"verb":"status"})", R"({"version":1,"id":1,"verb":"status","args":null})",
        R"({"version":1,"id":1,"verb":"status","args":{},"extra":[1,2]})"}) {
    auto decoded = decodeRequest(text);
    ASSERT_TRUE(decoded.ok()) << text << ": " << decoded.error().message;
    EXPECT_EQ(decoded.value().args, json::object()) << text;
  }
}

struct BadRequest {
  const char* text;
  int code;
  bool idKnown;
};

TEST(ControlProtocolTest, MalformedRequestsAreRefusedWithTheRightCode) {
  const BadRequest cases[] = {
      {"", EINVAL, false},
      {"not json", EINVAL, false},
      {"[1,2,3]", EINVAL, false},
      {"\"version\"", EINVAL, false},
      {R"({"version":1,"id":1,"verb":"status")", EINVAL, false},  // truncated
      {R"({"id":7,"verb":"status"})", EINVAL, true},              // no version
      {R"({"version":"1","id":7,"verb":"status"})", EINVAL, true},
      {R"({"version":-1,"id":7,"verb":"status"})", EINVAL, true},
      {R"({"version":1.0,"id":7,"verb":"status"})", EINVAL, true},
      {R"({"version":2,"id":7,"verb":"status"})", EPROTO, true},
      {R"({"version":0,"id":7})", EPROTO, true},
      {R"({"version":1,"verb":"status"})", EINVAL, false},  // no id
      {R"({"version":1,"id":-3,"verb":"status"})", EINVAL, false},
      {R"({"version":1,"id":"3","verb":"status"})", EINVAL, false},
      {R"({"version":1,"id":7})", EINVAL, true},  // no verb
      {R"({"version":1,"id":7,"verb":""})", EINVAL, true},
      {R"({"version":1,"id":7,"verb":5})", EINVAL, true},
      {R"({"version":1,"id":7,"verb":"has space"})", EINVAL, true},
      {R"({"version":1,"id":7,"verb":"status\n"})", EINVAL, true},
      {R"({"version":1,"id":7,"verb":"status","args":[1]})", EINVAL, true},
      {R"({"version":1,"id":7,"verb":"status","args":"x"})", EINVAL, true},
      {"{\"version\":1,\"id\":7,\"verb\":\"status\",\"args\":{\"s\":\"\xff\xfe\"}}", EINVAL,
       false},  // bad UTF-8
  };
  for (const auto& bad : cases) {
    uint64_t id = 0;
    auto decoded = decodeRequest(bad.text, &id);
    ASSERT_FALSE(decoded.ok()) << bad.text;
    EXPECT_EQ(decoded.error().code, bad.code) << bad.text << ": " << decoded.error().message;
    EXPECT_FALSE(decoded.error().message.empty());
    EXPECT_EQ(decoded.error().message.find('\n'), std::string::npos);
    EXPECT_EQ(id, bad.idKnown ? 7u : 0u) << bad.text;
  }
  std::string longVerb(kControlMaxVerbLength + 1, 'a');
  EXPECT_EQ(decodeRequest(R"({"version":1,"id":7,"verb":")" + longVerb + "\"}").error().code, EINVAL);
}

TEST(ControlProtocolTest, DeepNestingIsRefusedBeforeItIsBuilt) {
  std::string deep(std::string(R"({"version":1,"id":7,"verb":"x","args":{"a":)") + std::string(100000, '[') +
                   std::string(100000, ']') + "}}");
  auto decoded = decodeRequest(deep);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, EINVAL);
  EXPECT_NE(decoded.error().message.find("deeper"), std::string::npos);

  std::string fine(std::string(R"({"version":1,"id":7,"verb":"x","args":{"a":)") + std::string(40, '[') +
                   std::string(40, ']') + "}}");
  EXPECT_TRUE(decodeRequest(fine).ok());
}

TEST(ControlProtocolTest, ReplyCarriesErrnoName) {
  ControlReply reply = ControlReply::failure(EEXIST, "port web exists");
  reply.id = 9;
  json document = json::parse(encodeReply(reply));
  EXPECT_EQ(document, json::parse(R"({"version":1,"id":9,"status":17,"errno":"EEXIST",
                                       "error":"port web exists","result":{}})"));
  auto decoded = decodeReply(encodeReply(reply));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded.value().status, EEXIST);
  EXPECT_EQ(decoded.value().error, "port web exists");
  EXPECT_EQ(decoded.value().id, 9u);

  ControlReply ok = ControlReply::success({{"detached", 2}});
  EXPECT_EQ(json::parse(encodeReply(ok))["errno"], "OK");
  EXPECT_EQ(decodeReply(encodeReply(ok)).value().result, json({{"detached", 2}}));
}

TEST(ControlProtocolTest, ReplyWithBadUtf8IsRepairedNotThrown) {
  ControlReply reply = ControlReply::failure(ENOENT, "no such netns \xff");
  std::string text;
  ASSERT_NO_THROW(text = encodeReply(reply));
  EXPECT_TRUE(decodeReply(text).ok());
}

TEST(ControlProtocolTest, MalformedRepliesAreRefused) {
  for (const char* text :
       {"", "{}", R"({"version":2,"id":1,"status":0})", R"({"version":1,"status":0})",
        R"({"version":1,"id":1})", R"({"version":1,"id":1,"status":-1})",
        R"({"version":1,"id":1,"status":99999})", R"({"version":1,"id":1,"status":0,"error":3})",
        R"({"version":1,"id":1,"status":0,"result":[]})"}) {
    EXPECT_FALSE(decodeReply(text).ok()) << text;
  }
}

TEST(ControlProtocolTest, ErrnoNames) {
  EXPECT_EQ(errnoName(0), "OK");
  EXPECT_EQ(errnoName(EINVAL), "EINVAL");
  EXPECT_EQ(errnoName(EPROTO), "EPROTO");
  EXPECT_EQ(errnoName(EOPNOTSUPP), "EOPNOTSUPP");
  EXPECT_EQ(errnoName(EMSGSIZE), "EMSGSIZE");
  EXPECT_EQ(errnoName(ETIMEDOUT), "ETIMEDOUT");
  EXPECT_EQ(errnoName(-5), "E-5");
  EXPECT_EQ(errnoName(4000), "E4000");
  EXPECT_EQ(errnoFromName("EEXIST"), EEXIST);
  EXPECT_EQ(errnoFromName("OK"), 0);
  EXPECT_EQ(errnoFromName("ENOTHING"), -1);
}

class FrameIoTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  void TearDown() override {
    ::close(fds_[0]);
    if (fds_[1] >= 0) ::close(fds_[1]);
  }
  static ControlDeadline in(int milliseconds) {
    return std::chrono::steady_clock::now() + std::chrono::milliseconds(milliseconds);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(FrameIoTest, WritesAndReadsWholeFrames) {
  std::string big(kControlMaxMessageBytes, 'x');
  std::thread writer([&] {
    ASSERT_TRUE(writeFrame(fds_[1], "hello", in(2000)).ok());
    ASSERT_TRUE(writeFrame(fds_[1], big, in(20000)).ok());  // 64 MiB: slow under ASan on a busy machine
  });
  auto first = readFrame(fds_[0], in(2000));
  auto second = readFrame(fds_[0], in(20000));
  writer.join();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.value(), "hello");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(), big);
  EXPECT_EQ(writeFrame(fds_[1], big + "x", in(100)).error().code, EMSGSIZE);
}

TEST_F(FrameIoTest, TimeoutEofAndTruncation) {
  EXPECT_EQ(readFrame(fds_[0], in(50)).error().code, ETIMEDOUT);
  std::string partial = encodeFrame("hello").substr(0, 6);
  ASSERT_EQ(::write(fds_[1], partial.data(), partial.size()), 6);
  EXPECT_EQ(readFrame(fds_[0], in(50)).error().code, ETIMEDOUT);
  // A frame cut short by the peer going away.
  ASSERT_EQ(::write(fds_[1], partial.data(), partial.size()), 6);
  ::close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(readFrame(fds_[0], in(50)).error().code, ECONNRESET);
}

TEST_F(FrameIoTest, CleanCloseIsNoData) {
  ::close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(readFrame(fds_[0], in(50)).error().code, ENODATA);
  EXPECT_EQ(writeFrame(fds_[0], "x", in(50)).error().code, EPIPE);
}

}  // namespace
}  // namespace vgate::control
