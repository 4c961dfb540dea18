// SPDX-License-Identifier: GPL-2.0
/* A program every verifier refuses (a helper's size it cannot bound), linked into a build of
 * Vigil's objects by LoaderFallbackTests: the loader must go on to the next build, or, when every
 * build has it, stop with each build's reason. */
#include "vigil.bpf.h"

SEC("tp/syscalls/sys_enter_getppid")
int vigil_fixture_unbounded(struct trace_event_raw_sys_enter *ctx)
{
    char buf[64];
    __u64 len = ctx->args[0];
    bpf_probe_read_kernel(buf, len, (const void *)ctx->args[1]);
    return buf[0];
}
