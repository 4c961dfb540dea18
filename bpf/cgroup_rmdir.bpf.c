// SPDX-License-Identifier: GPL-2.0
/* A watched cgroup was removed (a container stopped, a pod deleted): it leaves the watch list here,
 * in the kernel, and the agent is told, with the syscalls the cgroup made since the agent last read
 * them — so nothing is lost, and no one has to poll for removed cgroups. (Tetragon's
 * bpf/cgroup/bpf_cgroup_rmdir.c does the same for its cgroup tracking.) */
#include "vigil.bpf.h"

SEC("tp_btf/cgroup_rmdir")
int vigil_cgroup_rmdir(unsigned long long *ctx)
{
    struct cgroup *cgrp = (struct cgroup *)ctx[0];
    if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
        return 0;
    __u64 id = BPF_CORE_READ(cgrp, kn, id);
    struct vigil_cgroup_state *state = bpf_map_lookup_elem(&watched_cgroups, &id);
    if (!state)
        return 0;
    struct vigil_cgroup_event *event = event_buffer();
    if (event) {
        fill_header(&event->hdr, VIGIL_KIND_CGROUP);
        event->hdr.cgroup_id = id;
        event->op = VIGIL_CGROUP_RMDIR;
        event->parent_id = BPF_CORE_READ(cgrp, self.parent, cgroup, kn, id);
        struct vigil_cgroup_syscalls *syscalls = bpf_map_lookup_elem(&cgroup_syscalls, &id);
        if (syscalls) {
            __builtin_memcpy(event->syscalls, syscalls->syscalls, sizeof(event->syscalls));
            __builtin_memcpy(event->runtime_syscalls, syscalls->runtime_syscalls, sizeof(event->runtime_syscalls));
        } else {
            __builtin_memset(event->syscalls, 0, sizeof(event->syscalls));
            __builtin_memset(event->runtime_syscalls, 0, sizeof(event->runtime_syscalls));
        }
        long n = bpf_probe_read_kernel_str(event->name, sizeof(event->name), BPF_CORE_READ(cgrp, kn, name));
        event->name_len = n > 0 ? n - 1 : 0;
        send_event(event, sizeof(*event), VIGIL_KIND_CGROUP);
    }
    bpf_map_delete_elem(&watched_cgroups, &id);
    bpf_map_delete_elem(&cgroup_syscalls, &id);
    return 0;
}
