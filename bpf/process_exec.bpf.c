// SPDX-License-Identifier: GPL-2.0
/* A process exec'd a new program: who, which binary (resolved in the kernel), with what argv. */
#include "vigil.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp/sched/sched_process_exec")
int vigil_process_exec(void *ctx)
{
    if (!is_watched())
        return 0;
    struct vigil_exec_event *event = reserve_event(sizeof(*event), VIGIL_KIND_EXEC);
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_EXEC);

    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct mm_struct *mm = BPF_CORE_READ(task, mm);
    struct file *exe = BPF_CORE_READ(mm, exe_file);
    event->exe_len = resolve_path(BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt),
                                  event->exe, &event->hdr.flags);

    unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
    unsigned long arg_end = BPF_CORE_READ(mm, arg_end);
    __u64 len = arg_end > arg_start ? arg_end - arg_start : 0;
    if (len > VIGIL_ARGS_LEN) {
        len = VIGIL_ARGS_LEN;
        event->hdr.flags |= VIGIL_FLAG_ARGS_TRUNCATED;
    }
    if (len > 0 && bpf_probe_read_user(event->args, len, (const void *)arg_start) != 0)
        len = 0;
    event->args_len = len;
    bpf_ringbuf_submit(event, 0);
    return 0;
}
