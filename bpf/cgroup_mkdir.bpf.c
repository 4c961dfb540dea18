// SPDX-License-Identifier: GPL-2.0
/* A cgroup was created. If its parent is watched, watch it too, before any process can enter it:
 * this is what makes "a watched cgroup and its descendants" cost one map lookup per event. The
 * agent is told (parent id and name), so it knows the new cgroup's path without looking. */
#include "vigil.bpf.h"

SEC("tp_btf/cgroup_mkdir")
int vigil_cgroup_mkdir(unsigned long long *ctx)
{
    struct cgroup *cgrp = (struct cgroup *)ctx[0];
    if (vigil_config.watch_all)
        return 0;
    if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
        return 0; /* a cgroup v1 hierarchy: ids there are not what bpf_get_current_cgroup_id() sees */
    __u64 parent_id = BPF_CORE_READ(cgrp, self.parent, cgroup, kn, id);
    struct vigil_cgroup_state *parent = bpf_map_lookup_elem(&watched_cgroups, &parent_id);
    if (!parent)
        return 0;
    /* The child belongs to the parent's workload and profile (quiet if it is); its syscalls
     * start empty (cgroup_syscalls_of). Made from the empty state and then named: no task is in
     * a cgroup before its mkdir returns, so none sees it half made. */
    __u64 id = BPF_CORE_READ(cgrp, kn, id);
    if (bpf_map_update_elem(&watched_cgroups, &id, &vigil_fresh_cgroup_state, BPF_NOEXIST) == 0) {
        struct vigil_cgroup_state *child = bpf_map_lookup_elem(&watched_cgroups, &id);
        if (child) {
            child->profile_id = parent->profile_id;
            child->flags = parent->flags & ~VIGIL_CGROUP_SERVED;
        }
    }

    struct vigil_cgroup_event *event = event_buffer();
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_CGROUP);
    event->hdr.cgroup_id = id;
    event->op = VIGIL_CGROUP_MKDIR;
    event->parent_id = parent_id;
    long n = bpf_probe_read_kernel_str(event->name, sizeof(event->name), BPF_CORE_READ(cgrp, kn, name));
    event->name_len = n > 0 ? n - 1 : 0;
    /* Up to the name: the bitmaps of a new cgroup are empty. */
    send_event(event, __builtin_offsetof(struct vigil_cgroup_event, syscalls), VIGIL_KIND_CGROUP);
    return 0;
}
