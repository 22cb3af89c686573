// Community ID v1 against the published vectors (the spec's baseline, as used by Elasticsearch's processor
// tests).
#include "control/flowlog/community_id.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <cstring>
#include <random>
#include <vector>

namespace vgate::control {
namespace {

struct Vector {
  const char* src;
  const char* dst;
  uint8_t protocol;
  uint16_t srcPort;
  uint16_t dstPort;
  const char* expected;
};

std::string compute(const Vector& v) {
  uint8_t src[16] = {}, dst[16] = {};
  bool v6 = std::string(v.src).find(':') != std::string::npos;
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, v.src, src), 1);
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, v.dst, dst), 1);
  return communityIdV1({static_cast<uint8_t>(v6 ? 6 : 4), v.protocol, src, dst, v.srcPort, v.dstPort});
}

TEST(CommunityId, PublishedVectors) {
  const Vector vectors[] = {
      {"128.232.110.120", "66.35.250.204", IPPROTO_TCP, 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
      {"66.35.250.204", "128.232.110.120", IPPROTO_TCP, 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
      {"192.168.1.52", "8.8.8.8", IPPROTO_UDP, 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="},
      {"8.8.8.8", "192.168.1.52", IPPROTO_UDP, 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="},
      {"192.168.170.8", "192.168.170.56", IPPROTO_SCTP, 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="},
      {"192.168.0.89", "192.168.0.1", IPPROTO_ICMP, 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="},
      {"fe80::260:97ff:fe07:69ea", "ff02::1", IPPROTO_ICMPV6, 134, 0, "1:pkvHqCL88/tg1k4cPigmZXUtL00="},
      {"2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", IPPROTO_TCP, 63943, 25,
       "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="},
  };
  for (const auto& v : vectors) EXPECT_EQ(compute(v), v.expected) << v.src << " -> " << v.dst;
}

TEST(CommunityId, EchoReplyJoinsItsRequest) {
  // The reply (type 0) maps to the request's counterpart, so both directions give one id.
  Vector request{"192.168.0.89", "192.168.0.1", IPPROTO_ICMP, 8, 0, ""};
  Vector reply{"192.168.0.1", "192.168.0.89", IPPROTO_ICMP, 0, 0, ""};
  EXPECT_EQ(compute(request), compute(reply));
}

}  // namespace
}  // namespace vgate::control

namespace vgate::control {
namespace {

// The flow log's own SHA-1 against OpenSSL's, on every length across the block boundaries.
TEST(CommunityId, Sha1MatchesOpenSsl) {
  std::mt19937_64 rng(5);
  for (size_t length = 0; length < 300; ++length) {
    for (int round = 0; round < 5; ++round) {
      std::vector<uint8_t> data(length);
      for (auto& byte : data) byte = static_cast<uint8_t>(rng());
      uint8_t mine[20];
      sha1(data.data(), data.size(), mine);
      unsigned char theirs[EVP_MAX_MD_SIZE];
      unsigned int theirLength = 0;
      ASSERT_EQ(EVP_Digest(data.data(), data.size(), theirs, &theirLength, EVP_sha1(), nullptr), 1);
      ASSERT_EQ(theirLength, 20u);
      ASSERT_EQ(std::memcmp(mine, theirs, 20), 0) << "length " << length;
    }
  }
}

}  // namespace
}  // namespace vgate::control
