// rtnetlink over libmnl for the interposer; see netlink_socket.h.
#include "control/interposer/netlink_socket.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace vgate::control {

namespace {

Error errnoError(int code, const std::string& what) {
  return makeError(code, what + ": " + std::strerror(code));
}

// The kernel's extended-ack text ("Invalid argument" alone rarely says which attribute was wrong).
std::string extAckMessage(const nlmsghdr* message) {
  if (!(message->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(message));
  size_t offset = sizeof(nlmsgerr);
  if (!(message->nlmsg_flags & NLM_F_CAPPED)) offset += error->msg.nlmsg_len - sizeof(nlmsghdr);
  std::string text;
  forEachAttribute(message, offset, [&](const nlattr* attribute) {
    if (mnl_attr_get_type(attribute) == NLMSGERR_ATTR_MSG) text = attributeString(attribute);
  });
  return text;
}

}  // namespace

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags)
    : header_(mnl_nlmsg_put_header(buffer_.data())) {
  header_->nlmsg_type = type;
  header_->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
}

ifinfomsg* NetlinkMessage::putIfinfo(int index, unsigned char family) {
  auto* info = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(header_, sizeof(ifinfomsg)));
  info->ifi_family = family;
  info->ifi_index = index;
  return info;
}

Result<NetlinkSocket> NetlinkSocket::open(unsigned groups) {
  mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (socket == nullptr) return errnoError(errno, "netlink socket");
  NetlinkSocket result(socket);
  if (mnl_socket_bind(socket, groups, MNL_SOCKET_AUTOPID) != 0) return errnoError(errno, "netlink bind");
  int on = 1;
  // Extended acks carry the kernel's reason; capped acks keep them from echoing the whole request.
  setsockopt(mnl_socket_get_fd(socket), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));
  setsockopt(mnl_socket_get_fd(socket), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on));
  // Link dumps and notifications can be large (one message per link, nested attributes): 64 KiB holds any.
  result.buffer_.resize(64 * 1024);
  return result;
}

Result<NetlinkSocket> NetlinkSocket::openIn(const Netns& netns, unsigned groups) {
  auto entered = EnterNetns::enter(netns);
  if (!entered) return entered.error();
  return open(groups);
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : socket_(other.socket_), seq_(other.seq_), buffer_(std::move(other.buffer_)) {
  other.socket_ = nullptr;
}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    if (socket_ != nullptr) mnl_socket_close(socket_);
    socket_ = other.socket_;
    seq_ = other.seq_;
    buffer_ = std::move(other.buffer_);
    other.socket_ = nullptr;
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (socket_ != nullptr) mnl_socket_close(socket_);
}

int NetlinkSocket::fd() const { return mnl_socket_get_fd(socket_); }

Result<void> NetlinkSocket::transact(NetlinkMessage& request, const Handler& onReply) {
  nlmsghdr* header = request.header();
  bool dump = (header->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!dump) header->nlmsg_flags |= NLM_F_ACK;
  header->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(socket_, header, header->nlmsg_len) < 0) return errnoError(errno, "netlink send");
  return receive(header->nlmsg_seq, onReply);
}

Result<void> NetlinkSocket::receive(uint32_t seq, const Handler& onReply) {
  uint32_t portId = mnl_socket_get_portid(socket_);
  for (;;) {
    ssize_t received = mnl_socket_recvfrom(socket_, buffer_.data(), buffer_.size());
    if (received < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno, "netlink receive");
    }
    int remaining = static_cast<int>(received);
    for (auto* message = reinterpret_cast<const nlmsghdr*>(buffer_.data()); mnl_nlmsg_ok(message, remaining);
         message = mnl_nlmsg_next(message, &remaining)) {
      if (message->nlmsg_seq != seq || message->nlmsg_pid != portId) continue;  // a late reply to another
      if (message->nlmsg_type == NLMSG_DONE) {
        int status = 0;
        if (mnl_nlmsg_get_payload_len(message) >= sizeof(int)) {
          std::memcpy(&status, mnl_nlmsg_get_payload(message), sizeof(int));
        }
        if (status < 0) return errnoError(-status, "netlink dump");
        return {};
      }
      if (message->nlmsg_type == NLMSG_ERROR) {
        auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(message));
        if (error->error == 0) return {};
        int code = -error->error;
        std::string detail = extAckMessage(message);
        return makeError(code,
                         std::string(std::strerror(code)) + (detail.empty() ? "" : " (" + detail + ")"));
      }
      if (message->nlmsg_type < NLMSG_MIN_TYPE) continue;
      if (onReply) onReply(message);
    }
  }
}

Result<void> NetlinkSocket::drain(const Handler& onMessage) {
  for (;;) {
    ssize_t received = recv(fd(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      return errnoError(errno, "netlink receive");
    }
    int remaining = static_cast<int>(received);
    for (auto* message = reinterpret_cast<const nlmsghdr*>(buffer_.data()); mnl_nlmsg_ok(message, remaining);
         message = mnl_nlmsg_next(message, &remaining)) {
      if (message->nlmsg_type >= NLMSG_MIN_TYPE) onMessage(message);
    }
  }
}

LinkInfo NetlinkSocket::parseLink(const nlmsghdr* message) {
  LinkInfo link;
  auto* info = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(message));
  link.index = info->ifi_index;
  link.flags = info->ifi_flags;
  forEachAttribute(message, sizeof(ifinfomsg), [&](const nlattr* attribute) {
    switch (mnl_attr_get_type(attribute)) {
      case IFLA_IFNAME:
        link.name = attributeString(attribute);
        break;
      case IFLA_MTU:
        link.mtu = mnl_attr_get_u32(attribute);
        break;
      case IFLA_TXQLEN:
        link.txqlen = mnl_attr_get_u32(attribute);
        break;
      case IFLA_NUM_TX_QUEUES:
        link.numTxQueues = mnl_attr_get_u32(attribute);
        break;
      case IFLA_NUM_RX_QUEUES:
        link.numRxQueues = mnl_attr_get_u32(attribute);
        break;
      case IFLA_ADDRESS: {
        auto* bytes = static_cast<const uint8_t*>(mnl_attr_get_payload(attribute));
        link.mac.assign(bytes, bytes + mnl_attr_get_payload_len(attribute));
        break;
      }
      case IFLA_LINK:
        link.link = static_cast<int>(mnl_attr_get_u32(attribute));
        break;
      case IFLA_LINK_NETNSID:
        link.linkNetnsid = static_cast<int32_t>(mnl_attr_get_u32(attribute));
        break;
      case IFLA_MASTER:
        link.master = static_cast<int>(mnl_attr_get_u32(attribute));
        break;
      case IFLA_NEW_NETNSID:
        link.newNetnsid = static_cast<int32_t>(mnl_attr_get_u32(attribute));
        break;
      case IFLA_IFALIAS:
        link.alias = attributeString(attribute);
        break;
      case IFLA_LINKINFO:
        forEachNested(attribute, [&](const nlattr* nested) {
          if (mnl_attr_get_type(nested) == IFLA_INFO_KIND) link.kind = attributeString(nested);
          if (mnl_attr_get_type(nested) == IFLA_INFO_SLAVE_KIND) link.slaveKind = attributeString(nested);
        });
        break;
      default:
        break;
    }
  });
  return link;
}

Result<LinkInfo> NetlinkSocket::getLink(const std::string& name) {
  NetlinkMessage request(RTM_GETLINK, 0);
  request.putIfinfo(0);
  request.putString(IFLA_IFNAME, name);
  request.putU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  LinkInfo link;
  auto result = transact(request, [&](const nlmsghdr* message) {
    if (message->nlmsg_type == RTM_NEWLINK) link = parseLink(message);
  });
  if (!result) {
    if (result.error().code == ENODEV) return makeError(ENODEV, "no link named " + name);
    return makeError(result.error().code, "get link " + name + ": " + result.error().message);
  }
  return link;
}

Result<LinkInfo> NetlinkSocket::getLink(int ifindex) {
  NetlinkMessage request(RTM_GETLINK, 0);
  request.putIfinfo(ifindex);
  request.putU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  LinkInfo link;
  auto result = transact(request, [&](const nlmsghdr* message) {
    if (message->nlmsg_type == RTM_NEWLINK) link = parseLink(message);
  });
  if (!result) {
    if (result.error().code == ENODEV)
      return makeError(ENODEV, "no link with ifindex " + std::to_string(ifindex));
    return makeError(result.error().code,
                     "get link " + std::to_string(ifindex) + ": " + result.error().message);
  }
  return link;
}

Result<std::vector<BridgePortAttribute>> NetlinkSocket::getBridgePort(int ifindex) {
  // A single-link AF_BRIDGE request falls back to the generic reply without IFLA_PROTINFO: dump and pick.
  NetlinkMessage request(RTM_GETLINK, NLM_F_DUMP);
  request.putIfinfo(0, AF_BRIDGE);
  std::vector<BridgePortAttribute> attributes;
  bool found = false;
  auto result = transact(request, [&](const nlmsghdr* message) {
    auto* info = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(message));
    if (message->nlmsg_type != RTM_NEWLINK || info->ifi_index != ifindex) return;
    forEachAttribute(message, sizeof(ifinfomsg), [&](const nlattr* attribute) {
      if (mnl_attr_get_type(attribute) != IFLA_PROTINFO) return;
      found = true;
      forEachNested(attribute, [&](const nlattr* nested) {
        auto* bytes = static_cast<const uint8_t*>(mnl_attr_get_payload(nested));
        attributes.push_back(BridgePortAttribute{mnl_attr_get_type(nested),
                                                 {bytes, bytes + mnl_attr_get_payload_len(nested)}});
      });
    });
  });
  if (!result) return makeError(result.error().code, "bridge port dump: " + result.error().message);
  if (!found) return makeError(ENOTSUP, "ifindex " + std::to_string(ifindex) + " is not a bridge port");
  return attributes;
}

Result<void> NetlinkSocket::setBridgePort(int ifindex, const std::vector<BridgePortAttribute>& attributes) {
  if (attributes.empty()) return {};
  NetlinkMessage request(RTM_SETLINK, 0);
  request.putIfinfo(ifindex, AF_BRIDGE);
  nlattr* nest = request.nestStart(IFLA_PROTINFO);
  for (const auto& attribute : attributes) {
    request.putBytes(attribute.type, attribute.value.data(), attribute.value.size());
  }
  request.nestEnd(nest);
  return transact(request);
}

Result<void> NetlinkSocket::setLinkUp(const std::string& name, bool up) {
  NetlinkMessage request(RTM_SETLINK, 0);
  ifinfomsg* info = request.putIfinfo(0);
  info->ifi_change = IFF_UP;
  info->ifi_flags = up ? IFF_UP : 0;
  request.putString(IFLA_IFNAME, name);
  auto result = transact(request);
  if (!result) return makeError(result.error().code, "set " + name + " up: " + result.error().message);
  return {};
}

Result<void> NetlinkSocket::setLinkUp(int ifindex, bool up) {
  NetlinkMessage request(RTM_SETLINK, 0);
  ifinfomsg* info = request.putIfinfo(ifindex);
  info->ifi_change = IFF_UP;
  info->ifi_flags = up ? IFF_UP : 0;
  return transact(request);
}

Result<void> NetlinkSocket::deleteLink(int ifindex) {
  NetlinkMessage request(RTM_DELLINK, 0);
  request.putIfinfo(ifindex);
  return transact(request);
}

Result<int32_t> NetlinkSocket::nsidOf(const Netns& other) {
  NetlinkMessage request(RTM_GETNSID, 0);
  auto* family = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(request.header(), sizeof(rtgenmsg)));
  family->rtgen_family = AF_UNSPEC;
  request.putU32(NETNSA_FD, static_cast<uint32_t>(other.fd()));
  int32_t nsid = -1;
  auto result = transact(request, [&](const nlmsghdr* message) {
    forEachAttribute(message, sizeof(rtgenmsg), [&](const nlattr* attribute) {
      if (mnl_attr_get_type(attribute) == NETNSA_NSID)
        nsid = static_cast<int32_t>(mnl_attr_get_u32(attribute));
    });
  });
  if (!result) return makeError(result.error().code, "get nsid: " + result.error().message);
  return nsid;
}

}  // namespace vgate::control
