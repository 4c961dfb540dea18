// SPDX-License-Identifier: GPL-2.0
/* Finds the container runtime's init in watched cgroups without trusting process names: it is
 * the process a runtime moves into the cgroup (runc writes its init's pid into cgroup.procs),
 * with the processes it forks, until they exec the entrypoint (process_exec.bpf.c). The runtime's
 * binary is remembered with it: its init re-executes it, and that is not the entrypoint.
 * Only a move made from outside the watched cgroups counts: a process that moves itself, or is
 * moved by the workload, is the workload — otherwise it could hide its file writes this way. */
#include "vigil.bpf.h"

SEC("tp_btf/cgroup_attach_task")
int vigil_cgroup_attach_task(unsigned long long *ctx)
{
    struct cgroup *dst = (struct cgroup *)ctx[0];
    struct task_struct *task = (struct task_struct *)ctx[2];
    if (BPF_CORE_READ(dst, root, hierarchy_id) != 0)
        return 0;
    __u64 id = BPF_CORE_READ(dst, kn, id);
    if (!bpf_map_lookup_elem(&watched_cgroups, &id))
        return 0;
    __u32 tgid = BPF_CORE_READ(task, tgid);
    if (tgid == (bpf_get_current_pid_tgid() >> 32))
        return 0; /* moved itself */
    __u64 mover_cgroup = current_cgroup_id();
    if (bpf_map_lookup_elem(&watched_cgroups, &mover_cgroup))
        return 0; /* moved by a watched process */
    struct task_struct *mover = (struct task_struct *)bpf_get_current_task();
    struct vigil_runtime_task runtime = {
        .phase = VIGIL_RUNTIME_BEFORE_FILTER,
        .runtime_binary = (__u64)BPF_CORE_READ(mover, mm, exe_file, f_inode),
    };
    add_runtime_task(tgid, &runtime, BPF_NOEXIST);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int vigil_process_fork(unsigned long long *ctx)
{
    struct task_struct *parent = (struct task_struct *)ctx[0];
    struct task_struct *child = (struct task_struct *)ctx[1];
    __u32 parent_tgid = BPF_CORE_READ(parent, tgid);
    __u32 child_tgid = BPF_CORE_READ(child, tgid);
    if (parent_tgid == child_tgid)
        return 0; /* a thread: it shares its process's entry */
    struct vigil_runtime_task *parent_runtime = runtime_task_of(parent_tgid);
    if (!parent_runtime)
        return 0;
    struct vigil_runtime_task runtime = *parent_runtime; /* copied: the entry may change under it */
    add_runtime_task(child_tgid, &runtime, BPF_ANY);
    return 0;
}
