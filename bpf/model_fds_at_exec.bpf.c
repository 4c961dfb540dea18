// SPDX-License-Identifier: GPL-2.0
/* A process of a container with model directories exec'd: the model files it holds open from
 * before the exec (a shell's `exec 3< weights` then `cat <&3`, a server handing its fd to a
 * helper) are read by the new program without any open, so they are reported here, as opens by
 * the new executable (VIGIL_FLAG_INHERITED_FD). At this tracepoint the exec is past the point of
 * no return and close-on-exec descriptors are already closed. */
#include "vigil.bpf.h"

/* Descriptors looked at: a program handed a model file gets it among its first few. */
#define VIGIL_INHERITED_FDS 64

struct fd_scan {
    struct file **fds;
    __u32 max_fds;
    __u32 profile_id;
};

static long check_fd(__u32 fd, struct fd_scan *scan)
{
    if (fd >= scan->max_fds)
        return 1;
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &scan->fds[fd]);
    if (!file || !(BPF_CORE_READ(file, f_mode) & FMODE_READ))
        return 0;
    report_model_file((__u64)file, scan->profile_id, BPF_CORE_READ(file, f_flags), fd, VIGIL_FLAG_INHERITED_FD);
    return 0;
}

SEC("tp/sched/sched_process_exec")
int vigil_model_fds_at_exec(void *ctx)
{
    if (!model_reads_watched())
        return 0;
    struct vigil_cgroup_state *state = watched_state();
    if (!state || !(state->flags & VIGIL_CGROUP_MODEL))
        return 0;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    struct fd_scan scan = {
        .fds = BPF_CORE_READ(fdt, fd),
        .max_fds = BPF_CORE_READ(fdt, max_fds),
        .profile_id = state->profile_id,
    };
    bpf_loop(VIGIL_INHERITED_FDS, check_fd, &scan, 0);
    return 0;
}
