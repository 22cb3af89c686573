/* What the headers under include/vgate/bpf need of the compiler. Their functions are inlined into the BPF
 * programs: a subprogram could not hand back pointers into the caller's stack (the verifier refuses it). */
#pragma once

#define VGATE_BPF_INLINE static inline __attribute__((always_inline))
