// SPDX-License-Identifier: GPL-2.0
/* Call chains for BPFStackCheckTests, each frame FRAME bytes (-DFRAME=...): a program, a global
 * function it calls, a static one that calls, and a bpf_loop callback. With FRAME=160 the chain
 * through the callback is 4 frames of 160 (+ rounding): over 512, which only the callback puts
 * over; with FRAME=64 it fits. */
#include "vigil_kernel.h"
#include <bpf/bpf_helpers.h>

#ifndef FRAME
#define FRAME 160
#endif

/* Every word written and one read back: the compiler keeps the whole frame. */
static __always_inline int fill(volatile __u64 *buf, __u64 seed)
{
    for (int i = 0; i < FRAME / 8; i++)
        buf[i] = seed + i;
    return buf[0] + buf[FRAME / 8 - 1];
}

static long fixture_callback(__u64 index, void *ctx)
{
    volatile __u64 buf[FRAME / 8];
    fill(buf, index);
    return 0;
}

static __noinline int fixture_static(__u64 seed)
{
    volatile __u64 buf[FRAME / 8];
    bpf_loop(2, fixture_callback, NULL, 0);
    return fill(buf, seed);
}

__noinline int fixture_global(__u64 seed)
{
    volatile __u64 buf[FRAME / 8];
    return fill(buf, seed) + fixture_static(seed + 1);
}

SEC("tp/syscalls/sys_enter_getppid")
int fixture_program(void *ctx)
{
    volatile __u64 buf[FRAME / 8];
    return fill(buf, bpf_get_prandom_u32()) + fixture_global(bpf_get_prandom_u32());
}

/* Weak: KernelCompatibilityTests also links this file into a build of the real programs. */
char LICENSE[] SEC("license") __weak = "GPL";
