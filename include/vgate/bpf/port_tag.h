/* The slow path's port tag, read and written by the TC programs (xdp/fast_path.bpf.c) and the live workers
 * (dataplane/live, dataplane/worker): an 802.1ad S-tag pushed on a miss before the packet goes down a trunk,
 * and read back when the dataplane returns it. The VID is the port pair (one rewired container interface);
 * PCP bit 0 (TCI bit 13) names the pair's side: on the way in, the side the packet entered; on the way back,
 * the side it must leave by. The pair id makes both directions of a flow one flow in the dataplane (its
 * zone). C that both compilers read. */
#pragma once

#include <linux/types.h>

#include "vgate/bpf/compiler.h"

#define VGATE_FP_TAG_PROTO 0x88a8
#define VGATE_FP_TAG_SIDE_BIT 0x2000
#define VGATE_FP_TAG_PAIR_MASK 0x0fff
#define VGATE_FP_MAX_PAIRS 4096

#define VGATE_FP_SIDE_INNER 0u /* the container's own veth end, moved into vgate's netns */
#define VGATE_FP_SIDE_OUTER 1u /* the new veth whose other end took the old host name on the bridge */

/* In a tagged frame: the TPID at bytes 12-13, then the TCI; the side bit lives in byte 14. */
#define VGATE_FP_TAG_TCI_OFFSET 14
#define VGATE_FP_TAG_SIDE_BYTE_BIT (VGATE_FP_TAG_SIDE_BIT >> 8)

/* The TCI of a pair's tag for a packet on `side`. */
VGATE_BPF_INLINE __u16 vgate_port_tag_tci(__u16 pair_id, __u8 side) {
  return (__u16)((pair_id & VGATE_FP_TAG_PAIR_MASK) | (side ? VGATE_FP_TAG_SIDE_BIT : 0));
}

VGATE_BPF_INLINE __u16 vgate_port_tag_pair(__u16 tci) { return (__u16)(tci & VGATE_FP_TAG_PAIR_MASK); }

/* The side a TCI names; a parser that keeps the PCP alone has the side in its bit 0. */
VGATE_BPF_INLINE __u8 vgate_port_tag_side(__u16 tci) {
  return (tci & VGATE_FP_TAG_SIDE_BIT) ? VGATE_FP_SIDE_OUTER : VGATE_FP_SIDE_INNER;
}
VGATE_BPF_INLINE __u8 vgate_port_tag_side_of_pcp(__u8 pcp) { return (__u8)(pcp & 1); }

/* Reads the tag of a frame that starts with its Ethernet header. Returns 1 when the frame carries vgate's
 * tag (`pair_id` and `side` set), 0 otherwise. */
VGATE_BPF_INLINE int vgate_port_tag_read(const __u8* frame, __u32 length, __u16* pair_id, __u8* side) {
  if (length < 18 || frame[12] != (VGATE_FP_TAG_PROTO >> 8) || frame[13] != (VGATE_FP_TAG_PROTO & 0xff))
    return 0;
  __u16 tci = (__u16)(frame[VGATE_FP_TAG_TCI_OFFSET] << 8 | frame[VGATE_FP_TAG_TCI_OFFSET + 1]);
  *pair_id = vgate_port_tag_pair(tci);
  *side = vgate_port_tag_side(tci);
  return 1;
}

/* Sends a tagged frame back by the pair's other side: flips the side bit in place. */
VGATE_BPF_INLINE void vgate_port_tag_flip_side(__u8* frame) {
  frame[VGATE_FP_TAG_TCI_OFFSET] ^= VGATE_FP_TAG_SIDE_BYTE_BIT;
}
