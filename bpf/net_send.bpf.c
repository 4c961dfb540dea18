// SPDX-License-Identifier: GPL-2.0
/* Datagrams sent to an explicit destination: sendto(addr) and sendmsg(msg_name). Sends on a
 * connected socket carry no destination; its connect() was reported already. */
#include "vigil.bpf.h"

SEC("tp/syscalls/sys_enter_sendto")
int vigil_sendto_enter(struct trace_event_raw_sys_enter *ctx)
{
    bool fastopen = ctx->args[3] & MSG_FASTOPEN;
    return remember_net_syscall(VIGIL_NET_SENDTO, (int)ctx->args[0], ctx->args[4], !fastopen);
}

SEC("tp/syscalls/sys_enter_sendmsg")
int vigil_sendmsg_enter(struct trace_event_raw_sys_enter *ctx)
{
    struct user_msghdr msg = {};
    if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)ctx->args[1]) != 0)
        return 0;
    bool fastopen = ctx->args[2] & MSG_FASTOPEN;
    return remember_net_syscall(VIGIL_NET_SENDMSG, (int)ctx->args[0], (__u64)msg.msg_name, !fastopen);
}

SEC("tp/syscalls/sys_exit_sendto")
int vigil_sendto_exit(struct trace_event_raw_sys_exit *ctx) { return report_net_syscall(ctx->ret); }

SEC("tp/syscalls/sys_exit_sendmsg")
int vigil_sendmsg_exit(struct trace_event_raw_sys_exit *ctx) { return report_net_syscall(ctx->ret); }
