// SPDX-License-Identifier: GPL-2.0
/* A watched process ended: lets the agent forget it (its process table stays bounded). */
#include "vigil.bpf.h"

SEC("tp/sched/sched_process_exit")
int vigil_process_exit(void *ctx)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    forget_pending();
    if ((__u32)pid_tgid != (pid_tgid >> 32))
        return 0; /* a thread, not the process */
    /* The runtime's own helpers (runc's nsexec stages) end before the container has a name:
     * not the workload, so nothing to report or to count. Forgotten first, wherever it ends
     * (its cgroup may no longer be watched): runtime_task_count goes back to zero. */
    if (remove_runtime_task(pid_tgid >> 32))
        return 0;
    if (!watched_state())
        return 0;
    __u64 wakeup;
    struct vigil_exit_event *event = reserve_event(sizeof(*event), VIGIL_KIND_EXIT, &wakeup);
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_EXIT);
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    event->exit_code = BPF_CORE_READ(task, exit_code);
    event->_pad = 0;
    bpf_ringbuf_submit(event, wakeup);
    return 0;
}
