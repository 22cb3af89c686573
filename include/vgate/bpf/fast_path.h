/* The BPF fast path's wire contract: map keys and values shared by the TC program (xdp/fast_path.bpf.c) and
 * its loader (dataplane/fastpath). Written once, in C that both compilers read; sizes are checked on both
 * sides. */
#pragma once

#include <linux/types.h>

#include "vgate/bpf/port_tag.h"

#define VGATE_FP_ALLOW 0u
#define VGATE_FP_DENY 1u
/* Allowed, still being inspected: frames the trunk carries go to the slow path (and are counted there),
 * larger ones (a jumbo-MTU peer's) go straight to the other side and are counted here. */
#define VGATE_FP_INSPECT 2u

/* A flow as seen on one port: the port the packet entered (ifindex) and the normalized 5-tuple, the lower
 * (address, port) endpoint first, IPv4 addresses IPv4-mapped, ports in network byte order. Both directions of
 * a flow enter on different ports, so each direction has its own entry with its own redirect target. */
struct vgate_fp_key {
  __u32 ifindex;
  __u8 addr_low[16];
  __u8 addr_high[16];
  __u16 port_low;
  __u16 port_high;
  __u8 protocol;
  __u8 pad[3];
};

/* What to do with the flow's packets on that port, and what was seen. */
struct vgate_fp_value {
  __u32 action;           /* VGATE_FP_ALLOW, VGATE_FP_DENY or VGATE_FP_INSPECT */
  __u32 redirect_ifindex; /* where allowed packets go: the flow's other port */
  __u64 packets;
  __u64 bytes;
  __u64 last_seen_ns; /* bpf_ktime_get_ns() of the last packet */
  __u8 tcp_flags;     /* OR of the TCP flags seen */
  __u8 pad[7];
};

#define VGATE_FP_FAIL_CLOSED 0u
#define VGATE_FP_FAIL_OPEN 1u

/* The one entry of vgate_fp_config: the dataplane's heartbeat and what to do without it. */
struct vgate_fp_config {
  __u64 heartbeat_ns;         /* CLOCK_MONOTONIC (bpf_ktime_get_ns) of the dataplane's last beat; 0: never */
  __u32 heartbeat_timeout_ms; /* older than this, the dataplane is taken as dead */
  __u32 fail_mode;            /* VGATE_FP_FAIL_CLOSED: new flows dropped; VGATE_FP_FAIL_OPEN: passed */
  __u32 trunk_count;          /* slow-path trunks in vgate_fp_trunks; 0: misses go up the port's own stack */
  __u32 trunk_max_frame; /* the largest frame (Ethernet header on, no tag) the trunks carry; 0: no limit */
};

#define VGATE_FP_MAX_TRUNKS 64

/* vgate_fp_ports[ifindex]: what the TC program knows of a port it sits on. */
struct vgate_fp_port {
  __u32 partner_ifindex; /* the pair's other side: where fail-open and not-flow packets go */
  __u16 pair_id;         /* 1..4094 */
  __u8 side;             /* VGATE_FP_SIDE_* */
  __u8 pad;
};

/* vgate_fp_pairs[pair_id]: where the trunk's return program sends a packet the dataplane hands back. */
struct vgate_fp_pair {
  __u32 inner_ifindex; /* 0: no such pair (the packet is dropped) */
  __u32 outer_ifindex;
};

/* Per-CPU counters of the program itself, indexes of the stats array: X(ID, name, help), one line each. The
 * enum (VGATE_FP_STAT_<ID>) and the user side's names (status keys, metric labels) come from this list. */
#define VGATE_FP_STATS(X)                                                                                   \
  X(HIT, hits, "packets of a known flow redirected to its other port")                                      \
  X(MISS, misses, "packets of no known flow passed up the port's stack: no trunk, or a port not wired")     \
  X(DENIED, denied, "packets dropped by a deny entry")                                                      \
  X(NOT_FLOW, notFlow, "ARP, neighbour discovery and MLD: passed to the partner unjudged")                  \
  X(FAIL_CLOSED, failClosedDrops, "misses dropped while the dataplane is dead, fail-closed")                \
  X(FAIL_OPEN, failOpenPasses, "misses sent to the port's partner while the dataplane is dead, fail-open")  \
  X(TO_SLOW_PATH, toSlowPath, "misses tagged and sent down a trunk to the dataplane")                       \
  X(FROM_SLOW_PATH, fromSlowPath, "packets handed back by the dataplane and sent to their port")            \
  X(BAD_TAG, badTag, "packets on a trunk without a valid tag or for an unknown pair: dropped")              \
  X(OVERSIZE, oversize, "misses whose frames are larger than the trunks carry: dropped")                    \
  X(FRAGMENT, fragments, "IP fragments sent to the slow path, which reassembles and judges them")           \
  X(IPV6_EXTENSIONS, ipv6ExtensionsWalked, "IPv6 packets whose extension headers were walked here")         \
  X(OTHER_PROTOCOL, otherProtocols, "packets of IP protocols other than TCP, UDP, ICMP: to the slow path")  \
  X(TCP_SYN, tcpSyns, "SYNs of a known TCP flow sent to the slow path, which judges a reused 5-tuple anew") \
  X(DROP_ROUTING, routingHeaderDrops, "IPv6 packets with a routing header left to process: dropped")        \
  X(DROP_ETHERTYPE, otherEthertypeDrops, "frames neither IP nor ARP (802.1Q, LLDP, LLC...): dropped")       \
  X(DROP_MALFORMED, malformedDrops, "IP packets with a bad version, header length or data offset: dropped")

#define VGATE_FP_STAT_ENUMERATOR(id, name, help) VGATE_FP_STAT_##id,
enum vgate_fp_stat { VGATE_FP_STATS(VGATE_FP_STAT_ENUMERATOR) VGATE_FP_STAT_COUNT };
#undef VGATE_FP_STAT_ENUMERATOR

#ifdef __cplusplus
static_assert(sizeof(struct vgate_fp_config) == 24, "vgate_fp_config layout is shared with BPF");
static_assert(sizeof(struct vgate_fp_key) == 44, "vgate_fp_key layout is shared with BPF");
static_assert(sizeof(struct vgate_fp_value) == 40, "vgate_fp_value layout is shared with BPF");
static_assert(sizeof(struct vgate_fp_port) == 8, "vgate_fp_port layout is shared with BPF");
static_assert(sizeof(struct vgate_fp_pair) == 8, "vgate_fp_pair layout is shared with BPF");
#else
_Static_assert(sizeof(struct vgate_fp_config) == 24, "vgate_fp_config layout is shared with C++");
_Static_assert(sizeof(struct vgate_fp_key) == 44, "vgate_fp_key layout is shared with C++");
_Static_assert(sizeof(struct vgate_fp_value) == 40, "vgate_fp_value layout is shared with C++");
_Static_assert(sizeof(struct vgate_fp_port) == 8, "vgate_fp_port layout is shared with C++");
_Static_assert(sizeof(struct vgate_fp_pair) == 8, "vgate_fp_pair layout is shared with C++");
#endif
