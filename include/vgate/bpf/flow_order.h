/* The flow key's ordering, one definition for the TC program (xdp/fast_path.bpf.c) and the dataplane's flow
 * key builder (dataplane/flow): the numerically lower (address, port) endpoint goes first, addresses as 16
 * bytes (IPv4 IPv4-mapped) compared as big-endian numbers, ports compared in host order. Both sides must
 * agree, or a flow's fast path entry is written under a key its packets never look up.
 * C that both compilers read. */
#pragma once

#include <linux/types.h>

#include "vgate/bpf/compiler.h"

#include "vgate/bpf/fast_path.h"

/* Network to host order for a port, without libc or libbpf: the BPF program and C++ read the same code. */
VGATE_BPF_INLINE __u16 vgate_flow_ntohs(__be16 port) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return (__u16)(((__u16)port >> 8) | ((__u16)port << 8));
#else
  return (__u16)port;
#endif
}

/* 1 when (src, sport) is the lower endpoint, that is when the source goes first in the key. Ports in host
 * order. Equal endpoints (a flow to itself) put the source first. */
VGATE_BPF_INLINE int vgate_flow_src_is_low(const __u8* src, const __u8* dst, __u16 sport, __u16 dport) {
  int order = 0;
#ifdef __bpf__
#pragma unroll
#endif
  for (int i = 0; i < 16; i++) {
    if (order == 0 && src[i] != dst[i]) order = src[i] < dst[i] ? -1 : 1;
  }
  return order < 0 || (order == 0 && sport <= dport);
}

/* Fills the fast path key's endpoints from a packet's: the lower endpoint first. Ports in network order, as
 * the key holds them. */
VGATE_BPF_INLINE void vgate_fp_key_normalize(struct vgate_fp_key* key, const __u8* src, const __u8* dst,
                                             __be16 sport, __be16 dport) {
  if (vgate_flow_src_is_low(src, dst, vgate_flow_ntohs(sport), vgate_flow_ntohs(dport))) {
    __builtin_memcpy(key->addr_low, src, 16);
    __builtin_memcpy(key->addr_high, dst, 16);
    key->port_low = sport;
    key->port_high = dport;
  } else {
    __builtin_memcpy(key->addr_low, dst, 16);
    __builtin_memcpy(key->addr_high, src, 16);
    key->port_low = dport;
    key->port_high = sport;
  }
}
