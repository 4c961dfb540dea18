// SPDX-License-Identifier: GPL-2.0
/* A cgroup was created. If its parent is watched, watch it too, before any process can enter it:
 * this is what makes "a watched cgroup and its descendants" cost one map lookup per event. */
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
    /* The child belongs to the parent's workload and profile; its syscalls start empty. */
    struct vigil_cgroup_state child = { .profile_id = parent->profile_id };
    __u64 id = BPF_CORE_READ(cgrp, kn, id);
    bpf_map_update_elem(&watched_cgroups, &id, &child, BPF_NOEXIST);
    return 0;
}
