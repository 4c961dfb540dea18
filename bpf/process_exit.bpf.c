// SPDX-License-Identifier: GPL-2.0
/* A watched process ended: lets the agent forget it (its process table stays bounded). */
#include "vigil.bpf.h"

SEC("tp/sched/sched_process_exit")
int vigil_process_exit(void *ctx)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    /* A thread killed inside a syscall never reaches its exit tracepoint: forget what its enter
     * remembered, so the pending table cannot fill up over time. */
    bpf_map_delete_elem(&pending, &pid_tgid);
    if ((__u32)pid_tgid != (pid_tgid >> 32))
        return 0; /* a thread, not the process */
    if (!watched_state())
        return 0;
    __u32 tgid = pid_tgid >> 32;
    /* The runtime's own helpers (runc's nsexec stages) end before the container has a name:
     * not the workload, so nothing to report or to count. */
    if (bpf_map_delete_elem(&runtime_tasks, &tgid) == 0)
        return 0;
    struct vigil_exit_event *event = reserve_event(sizeof(*event), VIGIL_KIND_EXIT);
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_EXIT);
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    event->exit_code = BPF_CORE_READ(task, exit_code);
    event->_pad = 0;
    bpf_ringbuf_submit(event, 0);
    return 0;
}
