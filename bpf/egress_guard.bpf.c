// SPDX-License-Identifier: GPL-2.0
/* Protect mode's egress guard: cgroup/connect4|6 (TCP and UDP connects, TCP Fast Open's first
 * send) and cgroup/sendmsg4|6 (datagrams to an explicit destination), attached at the cgroup roots
 * the agent watches. In a container with VIGIL_CGROUP_PROTECT_EGRESS, a destination outside its
 * profile's egress rules (protect_egress) is refused: the syscall fails with EPERM, nothing
 * leaves the socket, and the refusal is reported here (VIGIL_FLAG_DENIED), once. Everywhere else:
 * one lookup, allowed. */
#define VIGIL_CGROUP_PROGRAM /* bpf_get_current_task_btf() is for tracing programs only */
#include "vigil.bpf.h"

static __always_inline bool egress_rule_allows(struct vigil_egress_key *key)
{
    if (bpf_map_lookup_elem(&protect_egress, key))
        return true;
    key->port = 0; /* a rule for any port */
    return bpf_map_lookup_elem(&protect_egress, key) != NULL;
}

static __always_inline int guard_egress(struct bpf_sock_addr *ctx, __u32 op, __u16 family)
{
    struct vigil_cgroup_state *state = watched_state();
    if (!state || !(state->flags & VIGIL_CGROUP_PROTECT_EGRESS) || !state->profile_id)
        return 1;
    struct vigil_egress_key key = {
        .profile_id = state->profile_id,
        .family = (__u8)family,
        .protocol = (__u8)ctx->protocol,
        .port = __builtin_bswap16((__u16)ctx->user_port),
    };
    if (family == VIGIL_AF_INET) {
        __u32 ip4 = ctx->user_ip4;
        __builtin_memcpy(key.addr, &ip4, 4);
        key.prefixlen = VIGIL_EGRESS_FIXED_BITS + 32;
    } else {
        __u32 ip6[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
        __builtin_memcpy(key.addr, ip6, 16);
        key.prefixlen = VIGIL_EGRESS_FIXED_BITS + 128;
    }
    __u16 port = key.port;
    if (egress_rule_allows(&key))
        return 1;

    __u64 wakeup;
    struct vigil_net_event *event = reserve_event(sizeof(*event), VIGIL_KIND_NET, &wakeup);
    if (event) {
        fill_header(&event->hdr, VIGIL_KIND_NET);
        event->hdr.flags |= VIGIL_FLAG_DENIED;
        event->op = op;
        event->family = family;
        event->port = port;
        event->protocol = (__u16)ctx->protocol;
        event->sock_type = (__u16)ctx->type;
        event->_pad = 0;
        event->ret = -EPERM;
        __builtin_memcpy(event->addr, key.addr, sizeof(event->addr));
        bpf_ringbuf_submit(event, wakeup);
    }
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 mark = egress_mark(family, port, key.addr);
    bpf_map_update_elem(&egress_refused, &pid_tgid, &mark, BPF_ANY);
    return 0;
}

SEC("cgroup/connect4")
int vigil_guard_connect4(struct bpf_sock_addr *ctx) { return guard_egress(ctx, VIGIL_NET_CONNECT, VIGIL_AF_INET); }

SEC("cgroup/connect6")
int vigil_guard_connect6(struct bpf_sock_addr *ctx) { return guard_egress(ctx, VIGIL_NET_CONNECT, VIGIL_AF_INET6); }

SEC("cgroup/sendmsg4")
int vigil_guard_sendmsg4(struct bpf_sock_addr *ctx) { return guard_egress(ctx, VIGIL_NET_SENDMSG, VIGIL_AF_INET); }

SEC("cgroup/sendmsg6")
int vigil_guard_sendmsg6(struct bpf_sock_addr *ctx) { return guard_egress(ctx, VIGIL_NET_SENDMSG, VIGIL_AF_INET6); }
