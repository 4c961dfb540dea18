// SPDX-License-Identifier: GPL-2.0
/* connect() to an IPv4 or IPv6 destination, TCP or UDP, with its outcome (-EINPROGRESS for a
 * non-blocking connect still under way). */
#include "vigil.bpf.h"

SEC("tp/syscalls/sys_enter_connect")
int vigil_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_net_syscall(VIGIL_NET_CONNECT, (int)ctx->args[0], ctx->args[1], false);
}

SEC("tp/syscalls/sys_exit_connect")
int vigil_connect_exit(struct trace_event_raw_sys_exit *ctx) { return report_net_syscall(ctx->ret); }
