// SPDX-License-Identifier: GPL-2.0
/* A process exec'd a new program: who, which binary (resolved in the kernel), with what argv. */
#include "vigil.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp/sched/sched_process_exec")
int vigil_process_exec(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct mm_struct *mm = BPF_CORE_READ(task, mm);
    struct file *exe = BPF_CORE_READ(mm, exe_file);
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    /* The runtime's init becomes the workload when it execs a binary that is not the runtime's:
     * runc re-executes itself (from a bind mount of its binary, or an unlinked memfd copy) before
     * it sets the container up, and that is still the runtime. Decided before the cgroup's watch
     * is looked at: a quiet cgroup's entry (a pod sandbox's) would otherwise stay as long as its
     * process, and with it every hook's runtime_tasks lookup. */
    bool entrypoint = false;
    struct vigil_runtime_task *runtime = runtime_task_of(tgid);
    if (runtime) {
        struct inode *inode = BPF_CORE_READ(exe, f_inode);
        if (BPF_CORE_READ(inode, __i_nlink) == 0 || (__u64)inode == runtime->runtime_binary)
            return 0;
        remove_runtime_task(tgid);
        entrypoint = true;
    }
    struct vigil_cgroup_state *state = watched_state();
    if (!state)
        return 0;
    __u32 profile_id = state->profile_id;

    struct vigil_exec_event *event = event_buffer();
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_EXEC);
    if (entrypoint)
        event->hdr.flags |= VIGIL_FLAG_ENTRYPOINT;

    __u32 exe_flags = 0, parent_flags = 0;
    event->exe_len = resolve_path(BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt), event->exe, &exe_flags);
    if (exe_flags & VIGIL_FLAG_PATH_DETACHED)
        event->hdr.flags |= VIGIL_FLAG_EXE_FILELESS;
    if (BPF_CORE_READ(exe, f_inode, __i_nlink) == 0)
        event->hdr.flags |= VIGIL_FLAG_EXE_DELETED;
    event->parent_exe_len = 0;
    event->_pad = 0;
    struct file *parent_exe = BPF_CORE_READ(task, real_parent, mm, exe_file);
    if (parent_exe)
        event->parent_exe_len = resolve_path(BPF_CORE_READ(parent_exe, f_path.dentry),
                                             BPF_CORE_READ(parent_exe, f_path.mnt), event->parent_exe, &parent_flags);
    if (parent_flags & VIGIL_FLAG_PATH_DETACHED)
        event->hdr.flags |= VIGIL_FLAG_PARENT_FILELESS;
    event->hdr.flags |= (exe_flags | parent_flags) & VIGIL_FLAG_PATH_TRUNCATED;
    /* A binary without a file is never "known": its name says nothing of what it runs. */
    bool fileless = event->hdr.flags & (VIGIL_FLAG_EXE_FILELESS | VIGIL_FLAG_EXE_DELETED);
    if (profile_id) {
        __u64 hash = text_hash(event->exe, event->exe_len, VIGIL_PATH_LEN) ^
                     (text_hash(event->parent_exe, event->parent_exe_len, VIGIL_PATH_LEN) * VIGIL_PARENT_MIX);
        if (!fileless && is_known(profile_id, VIGIL_KIND_EXEC, hash)) {
            count_drop(VIGIL_SUPPRESSED_KNOWN, VIGIL_KIND_EXEC);
            return 0;
        }
        /* Protect mode: a program outside the profile's exec rules dies here, before its first
         * instruction (the signal is taken on the way back to user mode). Not the entrypoint: the
         * image's own command, which the runtime's exec names differently from start to start. */
        if ((state->flags & VIGIL_CGROUP_PROTECT_EXEC) && !entrypoint
            && (fileless || !protect_rule_allows(profile_id, VIGIL_KIND_EXEC, hash))) {
            bpf_send_signal(SIGKILL);
            event->hdr.flags |= VIGIL_FLAG_KILLED;
        }
    }

    unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
    unsigned long arg_end = BPF_CORE_READ(mm, arg_end);
    __u64 len = arg_end > arg_start ? arg_end - arg_start : 0;
    if (len > VIGIL_ARGS_LEN) {
        len = VIGIL_ARGS_LEN;
        event->hdr.flags |= VIGIL_FLAG_ARGS_TRUNCATED;
    }
    VIGIL_CLAMP(len, VIGIL_ARGS_LEN); /* for the verifier: see VIGIL_CLAMP */
    if (len > 0 && bpf_probe_read_user(event->args, len, (const void *)arg_start) != 0)
        len = 0;
    event->args_len = len;
    send_exec_event(event);
    return 0;
}
