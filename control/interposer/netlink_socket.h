// A NETLINK_ROUTE socket (libmnl) and the few rtnetlink requests the interposer needs. A netlink socket stays
// bound to the network namespace it was created in, so the interposer keeps one per namespace it acts on.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/interposer/netns.h"
#include "vgate/result.h"

namespace vgate::control {

// libmnl's iteration macros assign void* and do not compile as C++; these do the same walk.
// The attributes laid out in [start, end): a message's, a nest's payload, or a stored object's after its
// fixed header.
template <typename F>
inline void forEachAttributeIn(const char* start, const char* end, F&& visit) {
  for (auto* attribute = reinterpret_cast<const nlattr*>(start);
       start <= end &&
       mnl_attr_ok(attribute, static_cast<int>(end - reinterpret_cast<const char*>(attribute)));
       attribute = mnl_attr_next(attribute)) {
    visit(attribute);
  }
}

// A message's attributes after its `offset` bytes of fixed header.
template <typename F>
inline void forEachAttribute(const nlmsghdr* message, size_t offset, F&& visit) {
  forEachAttributeIn(static_cast<const char*>(mnl_nlmsg_get_payload_offset(message, offset)),
                     static_cast<const char*>(mnl_nlmsg_get_payload_tail(message)), visit);
}

template <typename F>
inline void forEachNested(const nlattr* nest, F&& visit) {
  const char* start = static_cast<const char*>(mnl_attr_get_payload(nest));
  forEachAttributeIn(start, start + mnl_attr_get_payload_len(nest), visit);
}

inline std::string attributeString(const nlattr* attribute) {
  const char* data = static_cast<const char*>(mnl_attr_get_payload(attribute));
  return std::string(data, strnlen(data, mnl_attr_get_payload_len(attribute)));
}

// What RTM_GETLINK reports about one link (only the fields the interposer uses).
struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;       // IFLA_INFO_KIND: "veth", "bridge", ... ("" for none)
  std::string slaveKind;  // IFLA_INFO_SLAVE_KIND: "bridge" for a bridge port
  unsigned flags = 0;     // IFF_*
  uint32_t mtu = 0;
  uint32_t txqlen = 0;
  uint32_t numTxQueues = 0;
  uint32_t numRxQueues = 0;
  std::vector<uint8_t> mac;
  int link = 0;                        // IFLA_LINK: a veth's peer ifindex
  std::optional<int32_t> linkNetnsid;  // the peer's netns, as an id in this link's netns; none: same netns
  int master = 0;
  std::string alias;
  std::optional<int32_t> newNetnsid;  // on RTM_DELLINK: the link moved to another netns, not destroyed
};

// One IFLA_BRPORT_* attribute exactly as the kernel reported it.
struct BridgePortAttribute {
  uint16_t type = 0;
  std::vector<uint8_t> value;
  bool operator==(const BridgePortAttribute&) const = default;
};

// A request under construction, in a buffer large enough for every message the interposer sends.
class NetlinkMessage {
 public:
  NetlinkMessage(uint16_t type, uint16_t flags);
  nlmsghdr* header() { return header_; }
  ifinfomsg* putIfinfo(int index, unsigned char family = AF_UNSPEC);
  // The fixed header of a request other than a link's (ifaddrmsg, rtmsg, ndmsg), zeroed.
  template <typename Header>
  Header* putHeader() {
    return static_cast<Header*>(mnl_nlmsg_put_extra_header(header_, sizeof(Header)));
  }
  void putU32(uint16_t type, uint32_t value) { mnl_attr_put_u32(header_, type, value); }
  void putString(uint16_t type, const std::string& value) { mnl_attr_put_strz(header_, type, value.c_str()); }
  void putBytes(uint16_t type, const void* data, size_t length) { mnl_attr_put(header_, type, length, data); }
  nlattr* nestStart(uint16_t type) { return mnl_attr_nest_start(header_, type); }
  void nestEnd(nlattr* nest) { mnl_attr_nest_end(header_, nest); }

 private:
  alignas(nlmsghdr) std::array<char, 8192> buffer_{};
  nlmsghdr* header_;
};

class NetlinkSocket {
 public:
  using Handler = std::function<void(const nlmsghdr*)>;

  // Opened in the calling thread's netns; `groups` (RTMGRP_*) subscribes to notifications.
  static Result<NetlinkSocket> open(unsigned groups = 0);
  // Opened in `netns` (the calling thread switches there and back).
  static Result<NetlinkSocket> openIn(const Netns& netns, unsigned groups = 0);
  NetlinkSocket(NetlinkSocket&& other) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  int fd() const;
  // Sends `request` (NLM_F_ACK is added unless it is a dump) and hands every reply message to onReply until
  // the ack or the end of the dump. A kernel error becomes an Error with its errno and extended-ack message.
  Result<void> transact(NetlinkMessage& request, const Handler& onReply = {});
  // Reads the notifications queued on a subscribed socket without blocking. ENOBUFS: some were lost.
  Result<void> drain(const Handler& onMessage);

  // ENODEV if there is no such link.
  Result<LinkInfo> getLink(const std::string& name);
  Result<LinkInfo> getLink(int ifindex);
  // The IFLA_PROTINFO attributes of a bridge port (RTM_GETLINK dump, family AF_BRIDGE).
  Result<std::vector<BridgePortAttribute>> getBridgePort(int ifindex);
  // RTM_SETLINK family AF_BRIDGE with the given attributes nested in IFLA_PROTINFO.
  Result<void> setBridgePort(int ifindex, const std::vector<BridgePortAttribute>& attributes);
  Result<void> setLinkUp(const std::string& name, bool up);
  Result<void> setLinkUp(int ifindex, bool up);
  Result<void> deleteLink(int ifindex);
  // The id this socket's netns gives to `other` (RTM_GETNSID); -1 if it has none.
  Result<int32_t> nsidOf(const Netns& other);

  // Parses an RTM_NEWLINK/RTM_DELLINK message.
  static LinkInfo parseLink(const nlmsghdr* message);

 private:
  explicit NetlinkSocket(mnl_socket* socket) : socket_(socket) {}
  Result<void> receive(uint32_t seq, const Handler& onReply);
  mnl_socket* socket_ = nullptr;
  uint32_t seq_ = 0;
  std::vector<char> buffer_;
};

}  // namespace vgate::control
