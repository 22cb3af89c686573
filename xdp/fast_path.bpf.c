// The fast path: a TC program on each port of a rewired container. A packet of a flow that already has its
// verdict (an entry in vgate_fp_flows for this port) is counted and redirected straight to the flow's other
// port, or dropped. bpf_redirect keeps the skb whole (GSO, checksum state): bulk traffic stays in the kernel
// at bridge speed (DESIGN.md, measured facts). A miss is tagged with its port pair and sent down a trunk
// veth to the DPDK dataplane, which judges it and hands it back through the trunk, where vgate_trunk_return
// sends it on.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

// libbpf's helpers need the kernel types above first.
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "vgate/bpf/fast_path.h"
#include "vgate/bpf/flow_order.h"
#include "vgate/bpf/port_tag.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 262144);  // the loader sizes it before load
  __type(key, struct vgate_fp_key);
  __type(value, struct vgate_fp_value);
} vgate_fp_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, VGATE_FP_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} vgate_fp_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vgate_fp_config);
} vgate_fp_config SEC(".maps");

// Each rewired port (by ifindex): its pair and fixed partner (a container's inner port <-> its outer port),
// where fail-open sends a flow the dataplane never judged and where ARP and neighbour discovery go.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 2 * VGATE_FP_MAX_PAIRS);
  __type(key, __u32);
  __type(value, struct vgate_fp_port);
} vgate_fp_ports SEC(".maps");

// Each pair's two ports, by pair id: where a packet the dataplane hands back goes.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, VGATE_FP_MAX_PAIRS);
  __type(key, __u32);
  __type(value, struct vgate_fp_pair);
} vgate_fp_pairs SEC(".maps");

// The trunks (vgate's ends, by ifindex) down which misses go; one per dataplane worker.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, VGATE_FP_MAX_TRUNKS);
  __type(key, __u32);
  __type(value, __u32);
} vgate_fp_trunks SEC(".maps");

static __always_inline void count(__u32 stat) {
  __u64* value = bpf_map_lookup_elem(&vgate_fp_stats, &stat);
  if (value) *value += 1;
}

static __always_inline void mapIpv4(__u8* out, __be32 address) {
  __builtin_memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  __builtin_memcpy(out + 12, &address, 4);
}

// A symmetric hash of the normalized key: both directions of a flow (and its crossings of other pairs) pick
// the same trunk, hence the same worker, which then owns the flow without sharing it.
static __always_inline __u32 flowHash(const struct vgate_fp_key* key) {
  __u32 hash = key->protocol;
  const __u32* words = (const __u32*)key->addr_low;
#pragma unroll
  for (int i = 0; i < 8; i++) hash = (hash ^ words[i]) * 0x9e3779b1u;
  hash = (hash ^ key->port_low ^ ((__u32)key->port_high << 16)) * 0x9e3779b1u;
  return hash ^ (hash >> 16);
}

// ICMP is steered by the addresses alone (an echo's identifier aside), except an error: it is about the
// packet it quotes, so it goes where that packet's flow goes, to the worker that holds the flow and judges
// the error by its verdict. A quote that names no TCP, UDP or echo flow (cut short, a later fragment, IPv6
// extension headers) falls back to the error's own addresses.
static __always_inline __u32 icmpHash(struct vgate_fp_key* key, __u8* icmp, void* end, __u8* src, __u8* dst) {
  __u8 type = icmp[0];
  int error = key->protocol == IPPROTO_ICMP
                  ? (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)
                  : (type >= 1 && type <= 4);
  struct vgate_fp_key quoted;
  __builtin_memset(&quoted, 0, sizeof(quoted));
  __u8 qsrc[16], qdst[16];
  __u16* ports = 0;
  if (error && key->protocol == IPPROTO_ICMP) {
    struct iphdr* inner = (void*)(icmp + 8);
    if ((void*)(inner + 1) > end || inner->version != 4 || (inner->frag_off & bpf_htons(0x1fff))) goto own;
    quoted.protocol = inner->protocol;
    mapIpv4(qsrc, inner->saddr);
    mapIpv4(qdst, inner->daddr);
    ports = (void*)inner + (inner->ihl & 0xf) * 4;
  } else if (error) {
    struct ipv6hdr* inner = (void*)(icmp + 8);
    if ((void*)(inner + 1) > end || inner->version != 6) goto own;
    quoted.protocol = inner->nexthdr;
    __builtin_memcpy(qsrc, &inner->saddr, 16);
    __builtin_memcpy(qdst, &inner->daddr, 16);
    ports = (void*)(inner + 1);
  } else {
    goto own;
  }
  if (quoted.protocol == IPPROTO_TCP || quoted.protocol == IPPROTO_UDP) {
    if ((void*)(ports + 2) > end) goto own;
    vgate_fp_key_normalize(&quoted, qsrc, qdst, ports[0], ports[1]);
    return flowHash(&quoted);
  }
  if (quoted.protocol == IPPROTO_ICMP || quoted.protocol == IPPROTO_ICMPV6) {
    vgate_fp_key_normalize(&quoted, qsrc, qdst, 0, 0);  // as the echo itself was steered
    return flowHash(&quoted);
  }
own:
  vgate_fp_key_normalize(key, src, dst, 0, 0);
  return flowHash(key);
}

// The size of the frames a packet becomes on the way down a trunk (tx offloads off there): a GSO packet's are
// its headers and gso_size each.
static __always_inline __u32 frameSize(struct __sk_buff* skb, __u32 headers) {
  // Each field read on its own: a load from a computed context offset does not pass the verifier.
  __u32 length = skb->len;
  __u32 gsoSize = skb->gso_size;
  __u32 gsoSegments = skb->gso_segs;
  __asm__ volatile("" : "+r"(length), "+r"(gsoSize), "+r"(gsoSegments));
  return gsoSegments > 1 ? headers + gsoSize : length;
}

static __always_inline int fitsTrunk(const struct vgate_fp_config* config, __u32 frame) {
  return config->trunk_max_frame == 0 || frame <= config->trunk_max_frame;
}

static __always_inline int dataplaneAlive(const struct vgate_fp_config* config) {
  return config->heartbeat_ns != 0 &&
         bpf_ktime_get_ns() - config->heartbeat_ns <= (__u64)config->heartbeat_timeout_ms * 1000000ull;
}

// Tags the packet with its pair and side and sends it down the flow's trunk to the dataplane. The caller has
// checked that its frames fit the trunk.
static __always_inline int toSlowPath(struct __sk_buff* skb, const struct vgate_fp_config* config,
                                      const struct vgate_fp_port* port, __u32 hash) {
  __u32 slot = hash % config->trunk_count;
  __u32* trunk = bpf_map_lookup_elem(&vgate_fp_trunks, &slot);
  if (!trunk || *trunk == 0) return TC_ACT_SHOT;
  __u16 tci = vgate_port_tag_tci(port->pair_id, port->side);
  if (bpf_skb_vlan_push(skb, bpf_htons(VGATE_FP_TAG_PROTO), tci) != 0) return TC_ACT_SHOT;
  count(VGATE_FP_STAT_TO_SLOW_PATH);
  return bpf_redirect(*trunk, 0);
}

// A flow the fast path does not know: the dataplane's to judge while it is alive; when its heartbeat is
// stale, the fail mode decides. Flows that already had an allow entry never come here, so fail-closed keeps
// them.
static __always_inline int miss(struct __sk_buff* skb, __u32 hash, __u32 headers) {
  __u32 zero = 0;
  struct vgate_fp_config* config = bpf_map_lookup_elem(&vgate_fp_config, &zero);
  __u32 ifindex = skb->ingress_ifindex;
  struct vgate_fp_port* port = bpf_map_lookup_elem(&vgate_fp_ports, &ifindex);
  if (config && dataplaneAlive(config)) {
    if (port && config->trunk_count > 0) {
      if (!fitsTrunk(config, frameSize(skb, headers))) {
        count(VGATE_FP_STAT_OVERSIZE);
        return TC_ACT_SHOT;
      }
      return toSlowPath(skb, config, port, hash);
    }
    count(VGATE_FP_STAT_MISS);
    return TC_ACT_OK;
  }
  if (config && config->fail_mode == VGATE_FP_FAIL_OPEN) {
    count(VGATE_FP_STAT_FAIL_OPEN);
    return port ? bpf_redirect(port->partner_ifindex, 0) : TC_ACT_OK;
  }
  count(VGATE_FP_STAT_FAIL_CLOSED);
  return TC_ACT_SHOT;
}

// A packet of a flow still being inspected: to the slow path if the dataplane is alive and the trunk carries
// it (the worker counts it then), else -1: it passes here like an allowed flow's.
static __always_inline int inspectInSlowPath(struct __sk_buff* skb, __u32 hash, __u32 headers) {
  __u32 zero = 0;
  struct vgate_fp_config* config = bpf_map_lookup_elem(&vgate_fp_config, &zero);
  __u32 ifindex = skb->ingress_ifindex;
  struct vgate_fp_port* port = bpf_map_lookup_elem(&vgate_fp_ports, &ifindex);
  if (!config || !port || config->trunk_count == 0 || !dataplaneAlive(config)) return -1;
  if (!fitsTrunk(config, frameSize(skb, headers))) return -1;
  return toSlowPath(skb, config, port, hash);
}

// ARP, neighbour discovery and MLD cross a pair untouched, whatever the dataplane's state: established flows
// need their neighbours. Nothing else does (DESIGN.md, "Enforcement integrity").
static __always_inline int notFlow(struct __sk_buff* skb) {
  count(VGATE_FP_STAT_NOT_FLOW);
  __u32 ifindex = skb->ingress_ifindex;
  struct vgate_fp_port* port = bpf_map_lookup_elem(&vgate_fp_ports, &ifindex);
  return port ? bpf_redirect(port->partner_ifindex, 0) : TC_ACT_OK;
}

static __always_inline int dropCounted(__u32 stat) {
  count(stat);
  return TC_ACT_SHOT;
}

// ICMPv6 that neighbour discovery and multicast listeners need, with the hop limit RFC 4861 and RFC 3810
// require of it (255 for router/neighbour solicitation and advertisement and redirect, 1 for MLD): link-local
// by construction, so never a flow to judge. Any other ICMPv6 is judged.
static __always_inline int isNeighbourIcmpv6(__u8 type, __u8 hopLimit) {
  if (type >= 133 && type <= 137) return hopLimit == 255;
  if ((type >= 130 && type <= 132) || type == 143) return hopLimit == 1;
  return 0;
}

// A packet whose flow the fast path cannot name by its ports (a fragment, another IP protocol, IPv6 extension
// headers past the walk's bound): to the slow path, steered by its addresses alone so that every fragment of
// a datagram reaches the same worker.
static __always_inline int missByAddresses(struct __sk_buff* skb, struct vgate_fp_key* key, __u8* src,
                                           __u8* dst, __u32 stat) {
  count(stat);
  vgate_fp_key_normalize(key, src, dst, 0, 0);
  return miss(skb, flowHash(key), 0);
}

#define VGATE_FP_IPV6_HEADERS_WALKED 4

SEC("tc")
int vgate_fast_path(struct __sk_buff* skb) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
  struct vgate_fp_key key;
  __builtin_memset(&key, 0, sizeof(key));
  key.ifindex = skb->ingress_ifindex;
  __u8 src[16], dst[16];
  __u8 hopLimit = 0;
  void* l4;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    if (ip->version != 4 || ip->ihl < 5) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    key.protocol = ip->protocol;
    mapIpv4(src, ip->saddr);
    mapIpv4(dst, ip->daddr);
    // Every fragment, the first included: the slow path reassembles the datagram and judges it whole.
    if (ip->frag_off & bpf_htons(0x3fff)) return missByAddresses(skb, &key, src, dst, VGATE_FP_STAT_FRAGMENT);
    l4 = (void*)ip + ip->ihl * 4;
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    if (ip6->version != 6) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    __builtin_memcpy(src, &ip6->saddr, 16);
    __builtin_memcpy(dst, &ip6->daddr, 16);
    hopLimit = ip6->hop_limit;
    __u8 next = ip6->nexthdr;
    __u8* header = (__u8*)(ip6 + 1);
    int walked = 0;
    // Hop-by-hop, destination options, routing and AH headers are walked to the transport header, a bounded
    // number of them; a fragment header, or more headers than that, go to the slow path, which walks them all
    // (up to its own bound) and reassembles.
#pragma unroll
    for (int i = 0; i < VGATE_FP_IPV6_HEADERS_WALKED; i++) {
      if (next != IPPROTO_HOPOPTS && next != IPPROTO_DSTOPTS && next != IPPROTO_ROUTING && next != IPPROTO_AH)
        break;
      if ((void*)(header + 8) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
      // Hop-by-hop options come first or not at all (RFC 8200 4.3).
      if (next == IPPROTO_HOPOPTS && i != 0) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
      // A routing header with segments left would send the packet on to an address the policy never saw.
      if (next == IPPROTO_ROUTING && header[3] != 0) return dropCounted(VGATE_FP_STAT_DROP_ROUTING);
      __u32 length = next == IPPROTO_AH ? ((__u32)header[1] + 2) * 4 : ((__u32)header[1] + 1) * 8;
      next = header[0];
      header += length;
      walked = 1;
    }
    key.protocol = next;
    if (walked) count(VGATE_FP_STAT_IPV6_EXTENSIONS);
    if (next == IPPROTO_FRAGMENT) return missByAddresses(skb, &key, src, dst, VGATE_FP_STAT_FRAGMENT);
    l4 = header;
  } else if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
    return notFlow(skb);
  } else {
    return dropCounted(VGATE_FP_STAT_DROP_ETHERTYPE);
  }
  __u8 tcpFlags = 0;
  __u32 l4Header = 0;
  __be16 sport, dport;
  if (key.protocol == IPPROTO_ICMP || key.protocol == IPPROTO_ICMPV6) {
    // Echo and errors are the dataplane's to judge, one packet at a time: they never get a fast path entry.
    __u8* icmp = l4;
    if ((void*)(icmp + 1) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    if (key.protocol == IPPROTO_ICMPV6 && isNeighbourIcmpv6(icmp[0], hopLimit)) return notFlow(skb);
    return miss(skb, icmpHash(&key, icmp, end, src, dst), 0);
  } else if (key.protocol == IPPROTO_TCP) {
    struct tcphdr* tcp = l4;
    if ((void*)(tcp + 1) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    if (tcp->doff < 5) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    sport = tcp->source;
    dport = tcp->dest;
    tcpFlags = ((__u8*)tcp)[13];
    l4Header = tcp->doff * 4;
  } else if (key.protocol == IPPROTO_UDP) {
    struct udphdr* udp = l4;
    if ((void*)(udp + 1) > end) return dropCounted(VGATE_FP_STAT_DROP_MALFORMED);
    sport = udp->source;
    dport = udp->dest;
    l4Header = sizeof(*udp);
  } else {
    return missByAddresses(skb, &key, src, dst, VGATE_FP_STAT_OTHER_PROTOCOL);
  }
  vgate_fp_key_normalize(&key, src, dst, sport, dport);
  __u32 headers = (__u32)((char*)l4 - (char*)data) + l4Header;
  // A SYN opens a connection: on a 5-tuple the fast path knows, it may be a new connection reusing it (after
  // a RST, a FIN or a timeout the worker has not swept yet), which must get its own verdict, not the last
  // one's. The slow path tells a retransmission from a new connection.
  if ((tcpFlags & 0x12) == 0x02) {
    struct vgate_fp_value* known = bpf_map_lookup_elem(&vgate_fp_flows, &key);
    if (known) count(VGATE_FP_STAT_TCP_SYN);
    return miss(skb, flowHash(&key), headers);
  }
  struct vgate_fp_value* flow = bpf_map_lookup_elem(&vgate_fp_flows, &key);
  if (!flow) return miss(skb, flowHash(&key), headers);
  if (flow->action == VGATE_FP_INSPECT) {
    int sent = inspectInSlowPath(skb, flowHash(&key), headers);
    if (sent >= 0) return sent;
  }
  // A GSO packet is counted as the frames it becomes on the wire: each carries its own copy of the headers.
  __u32 segments = skb->gso_segs > 1 ? skb->gso_segs : 1;
  __sync_fetch_and_add(&flow->packets, segments);
  __sync_fetch_and_add(&flow->bytes, skb->len + (__u64)(segments - 1) * headers);
  flow->last_seen_ns = bpf_ktime_get_ns();
  flow->tcp_flags |= tcpFlags;
  if (flow->action == VGATE_FP_DENY) {
    count(VGATE_FP_STAT_DENIED);
    return TC_ACT_SHOT;
  }
  count(VGATE_FP_STAT_HIT);
  return bpf_redirect(flow->redirect_ifindex, 0);
}

// On vgate's end of each trunk (ingress): a packet the dataplane hands back, tagged with its pair and the
// side it must leave by. The kernel has already moved the S-tag into the skb's metadata on receive.
SEC("tc")
int vgate_trunk_return(struct __sk_buff* skb) {
  __u16 tci;
  if (skb->vlan_present && skb->vlan_proto == bpf_htons(VGATE_FP_TAG_PROTO)) {
    tci = (__u16)skb->vlan_tci;
  } else {
    count(VGATE_FP_STAT_BAD_TAG);
    return TC_ACT_SHOT;
  }
  __u32 pairId = vgate_port_tag_pair(tci);
  struct vgate_fp_pair* pair = bpf_map_lookup_elem(&vgate_fp_pairs, &pairId);
  if (!pair || pair->inner_ifindex == 0) {
    count(VGATE_FP_STAT_BAD_TAG);
    return TC_ACT_SHOT;
  }
  __u32 target = vgate_port_tag_side(tci) == VGATE_FP_SIDE_OUTER ? pair->outer_ifindex : pair->inner_ifindex;
  if (bpf_skb_vlan_pop(skb) != 0) return TC_ACT_SHOT;
  count(VGATE_FP_STAT_FROM_SLOW_PATH);
  return bpf_redirect(target, 0);
}

char LICENSE[] SEC("license") = "GPL";
