/* The BPF fast path's wire contract: map keys and values shared by the TC program (xdp/fast_path.bpf.c) and its
 * loader (dataplane/fastpath). Written once, in C that both compilers read; sizes are checked on both sides. */
#pragma once

#include <linux/types.h>

#define VGATE_FP_ALLOW 0u
#define VGATE_FP_DENY 1u

/* A flow as seen on one port: the port the packet entered (ifindex) and the normalized 5-tuple, the lower
 * (address, port) endpoint first, IPv4 addresses IPv4-mapped, ports in network byte order. Both directions of a
 * flow enter on different ports, so each direction has its own entry with its own redirect target. */
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
  __u32 action;           /* VGATE_FP_ALLOW or VGATE_FP_DENY */
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
};

/* Per-CPU counters of the program itself, indexes of the stats array. */
enum vgate_fp_stat {
  VGATE_FP_STAT_HIT = 0,
  VGATE_FP_STAT_MISS = 1,      /* not in the map: passed on (to the slow path once it exists) */
  VGATE_FP_STAT_DENIED = 2,    /* dropped by a deny entry */
  VGATE_FP_STAT_NOT_FLOW = 3,  /* not IPv4/IPv6 TCP/UDP, fragments, extension headers: passed on */
  VGATE_FP_STAT_FAIL_CLOSED = 4, /* a miss while the dataplane is dead, fail-closed: dropped */
  VGATE_FP_STAT_FAIL_OPEN = 5,   /* a miss while the dataplane is dead, fail-open: sent to the port's partner */
  VGATE_FP_STAT_COUNT = 6,
};

#ifdef __cplusplus
static_assert(sizeof(struct vgate_fp_config) == 16, "vgate_fp_config layout is shared with BPF");
static_assert(sizeof(struct vgate_fp_key) == 44, "vgate_fp_key layout is shared with BPF");
static_assert(sizeof(struct vgate_fp_value) == 40, "vgate_fp_value layout is shared with BPF");
#else
_Static_assert(sizeof(struct vgate_fp_config) == 16, "vgate_fp_config layout is shared with C++");
_Static_assert(sizeof(struct vgate_fp_key) == 44, "vgate_fp_key layout is shared with C++");
_Static_assert(sizeof(struct vgate_fp_value) == 40, "vgate_fp_value layout is shared with C++");
#endif
