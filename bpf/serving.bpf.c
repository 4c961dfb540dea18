// SPDX-License-Identifier: GPL-2.0
/* A container starts serving when one of its processes first accepts a connection: what it did
 * before (download weights, compile, warm up) is its startup, learned apart. One record per
 * container, the first time; every later accept costs a lookup and a flag test. */
#include "vigil.bpf.h"

static __always_inline int accepted(long ret)
{
    if (ret < 0)
        return 0;
    struct vigil_cgroup_state *state = watched_state();
    if (!state || (state->flags & VIGIL_CGROUP_SERVED) || runtime_phase())
        return 0;
    /* Two threads may both pass the test: the agent takes the second record as a repeat. */
    __sync_fetch_and_or(&state->flags, VIGIL_CGROUP_SERVED);
    struct vigil_cgroup_event *event = event_buffer();
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_CGROUP);
    event->op = VIGIL_CGROUP_SERVING;
    event->name_len = 0;
    event->parent_id = 0;
    send_event(event, __builtin_offsetof(struct vigil_cgroup_event, syscalls), VIGIL_KIND_CGROUP);
    return 0;
}

SEC("tp/syscalls/sys_exit_accept")
int vigil_accept_exit(struct trace_event_raw_sys_exit *ctx) { return accepted(ctx->ret); }

SEC("tp/syscalls/sys_exit_accept4")
int vigil_accept4_exit(struct trace_event_raw_sys_exit *ctx) { return accepted(ctx->ret); }
