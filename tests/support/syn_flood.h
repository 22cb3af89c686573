// A TCP SYN flood for tests: prebuilt Ethernet/IPv4/TCP SYN frames with distinct spoofed source addresses and
// ports, sent through an AF_PACKET socket (qdisc bypassed) in batches with sendmmsg, from inside a netns.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace vgate::testing {

struct SynFloodOptions {
  std::string netnsPath;  // the namespace to send from
  std::string ifname = "eth0";
  std::array<uint8_t, 6> srcMac{};
  std::array<uint8_t, 6> dstMac{};
  uint32_t firstSource = 0;  // host order; flow i comes from firstSource + i
  uint32_t destination = 0;  // host order
  uint16_t destinationPort = 9;
  uint64_t count = 1000000;
};

struct SynFloodResult {
  uint64_t sent = 0;  // frames the kernel took
  double seconds = 0;
  std::string error;  // empty when the flood ran
};

inline bool parseMac(const std::string& text, std::array<uint8_t, 6>& mac) {
  unsigned b[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
    return false;
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(b[i]);
  return true;
}

namespace detail {

inline uint16_t checksumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

inline uint32_t checksumAdd(const uint8_t* data, size_t length, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < length; i += 2) sum += (uint32_t{data[i]} << 8) | data[i + 1];
  if (length & 1) sum += uint32_t{data[length - 1]} << 8;
  return sum;
}

constexpr size_t kFrameSize = 14 + 20 + 20;

// Frame i of the flood: its own source address and port, so that every frame is a new flow.
inline void buildSyn(uint8_t* frame, const SynFloodOptions& options, uint64_t i) {
  std::memset(frame, 0, kFrameSize);
  std::memcpy(frame, options.dstMac.data(), 6);
  std::memcpy(frame + 6, options.srcMac.data(), 6);
  frame[12] = 0x08;
  frame[13] = 0x00;
  uint8_t* ip = frame + 14;
  uint32_t source = htonl(options.firstSource + static_cast<uint32_t>(i));
  uint32_t destination = htonl(options.destination);
  ip[0] = 0x45;
  ip[3] = 40;  // total length
  ip[4] = static_cast<uint8_t>(i >> 8);
  ip[5] = static_cast<uint8_t>(i);
  ip[8] = 64;  // TTL
  ip[9] = IPPROTO_TCP;
  std::memcpy(ip + 12, &source, 4);
  std::memcpy(ip + 16, &destination, 4);
  uint16_t ipSum = checksumFold(checksumAdd(ip, 20));
  ip[10] = static_cast<uint8_t>(ipSum >> 8);
  ip[11] = static_cast<uint8_t>(ipSum);
  uint8_t* tcp = ip + 20;
  uint16_t sourcePort = static_cast<uint16_t>(1024 + i % 60000);
  tcp[0] = static_cast<uint8_t>(sourcePort >> 8);
  tcp[1] = static_cast<uint8_t>(sourcePort);
  tcp[2] = static_cast<uint8_t>(options.destinationPort >> 8);
  tcp[3] = static_cast<uint8_t>(options.destinationPort);
  uint32_t sequence = static_cast<uint32_t>(i * 2654435761u);
  tcp[4] = static_cast<uint8_t>(sequence >> 24);
  tcp[5] = static_cast<uint8_t>(sequence >> 16);
  tcp[6] = static_cast<uint8_t>(sequence >> 8);
  tcp[7] = static_cast<uint8_t>(sequence);
  tcp[12] = 5 << 4;  // data offset
  tcp[13] = 0x02;    // SYN
  tcp[14] = 0xff;    // window
  tcp[15] = 0xff;
  uint8_t pseudo[12];
  std::memcpy(pseudo, ip + 12, 8);
  pseudo[8] = 0;
  pseudo[9] = IPPROTO_TCP;
  pseudo[10] = 0;
  pseudo[11] = 20;
  uint16_t tcpSum = checksumFold(checksumAdd(tcp, 20, checksumAdd(pseudo, 12)));
  tcp[16] = static_cast<uint8_t>(tcpSum >> 8);
  tcp[17] = static_cast<uint8_t>(tcpSum);
}

inline void flood(const SynFloodOptions& options, SynFloodResult& result) {
  int target = open(options.netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    result.error = "open " + options.netnsPath + ": " + std::strerror(errno);
    return;
  }
  // This thread only: the test's other threads stay in their netns.
  if (setns(target, CLONE_NEWNET) != 0) {
    result.error = std::string("setns: ") + std::strerror(errno);
    close(target);
    return;
  }
  close(target);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: sends only, receives nothing
  if (fd < 0) {
    result.error = std::string("socket: ") + std::strerror(errno);
    return;
  }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_ifindex = static_cast<int>(if_nametoindex(options.ifname.c_str()));
  if (address.sll_ifindex == 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    result.error = "bind to " + options.ifname + ": " + std::strerror(errno);
    close(fd);
    return;
  }

  constexpr size_t kBatch = 512;
  std::vector<uint8_t> frames(kBatch * kFrameSize);
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> messages{};
  for (size_t j = 0; j < kBatch; ++j) {
    iov[j] = {frames.data() + j * kFrameSize, kFrameSize};
    messages[j].msg_hdr.msg_iov = &iov[j];
    messages[j].msg_hdr.msg_iovlen = 1;
  }
  auto start = std::chrono::steady_clock::now();
  uint64_t next = 0;
  int stalls = 0;
  while (next < options.count) {
    size_t batch = static_cast<size_t>(std::min<uint64_t>(kBatch, options.count - next));
    for (size_t j = 0; j < batch; ++j) buildSyn(frames.data() + j * kFrameSize, options, next + j);
    size_t done = 0;
    while (done < batch) {
      int n = sendmmsg(fd, messages.data() + done, static_cast<unsigned>(batch - done), 0);
      if (n < 0) {
        if ((errno == ENOBUFS || errno == EAGAIN || errno == EINTR) && ++stalls < 100000) {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
          continue;
        }
        result.error = std::string("sendmmsg: ") + std::strerror(errno);
        break;
      }
      done += static_cast<size_t>(n);
    }
    result.sent += done;
    next += batch;
    if (!result.error.empty()) break;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(fd);
}

}  // namespace detail

// Sends options.count SYNs from options.netnsPath; returns how many the kernel took and how long it took.
inline SynFloodResult synFlood(const SynFloodOptions& options) {
  SynFloodResult result;
  std::thread sender([&] { detail::flood(options, result); });
  sender.join();
  return result;
}

}  // namespace vgate::testing
