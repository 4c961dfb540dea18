// SPDX-License-Identifier: GPL-2.0
/* Every syscall of a watched cgroup sets its bit in the cgroup's bitmap: the syscall set a
 * profile (and a seccomp filter) is made of, with no per-syscall ring-buffer traffic. A raw
 * tracepoint, because it runs on every syscall of the host: a syscall its cgroup made before
 * costs a few loads (recorded_syscalls), watched or not. */
#include "vigil.bpf.h"

/* Which syscall table `*id` is a number of (enum vigil_syscall_abi); `*id` becomes its number
 * there. The architecture table is in vigil_kernel.h. */
static __always_inline __u32 syscall_abi(struct task_struct *task, long *id)
{
#ifdef VIGIL_TASK_BTF
#define THREAD_INFO(field) (task->thread_info.field) /* a plain load per field */
#else
#define THREAD_INFO(field) BPF_CORE_READ(task, thread_info.field)
#endif
#if defined(__TARGET_ARCH_x86)
    if (*id & VIGIL_X32_SYSCALL_BIT) {
        *id &= ~(long)VIGIL_X32_SYSCALL_BIT;
        return VIGIL_SYSCALL_ABI_X32;
    }
    if (THREAD_INFO(status) & VIGIL_TS_COMPAT)
        return VIGIL_SYSCALL_ABI_COMPAT; /* numbers from the i386 table, not the x86_64 one */
#elif defined(__TARGET_ARCH_arm64)
    if (THREAD_INFO(flags) & (1UL << VIGIL_TIF_32BIT))
        return VIGIL_SYSCALL_ABI_COMPAT; /* numbers from the AArch32 table */
#endif
#undef THREAD_INFO
    return VIGIL_SYSCALL_ABI_NATIVE;
}

/* seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) or prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
 * prog) with a program: libseccomp (in runc) first probes which flags the kernel supports with
 * the same call and a NULL program, which installs nothing. */
static __always_inline bool is_filter_install(unsigned long long *ctx, long id)
{
    if (id != VIGIL_NR_seccomp && id != VIGIL_NR_prctl)
        return false;
    struct pt_regs *regs = (struct pt_regs *)ctx[0];
    unsigned long arg0 = PT_REGS_PARM1_CORE_SYSCALL(regs);
    unsigned long arg1 = PT_REGS_PARM2_CORE_SYSCALL(regs);
    unsigned long arg2 = PT_REGS_PARM3_CORE_SYSCALL(regs);
    if (id == VIGIL_NR_seccomp)
        return arg0 == SECCOMP_SET_MODE_FILTER && arg2 != 0;
    return arg0 == PR_SET_SECCOMP && arg1 == SECCOMP_MODE_FILTER && arg2 != 0;
}

/* Sets the syscall's bit in the cgroup's bitmap (the runtime's own rows for its processes).
 * Returns whether the cgroup needs nothing more for this syscall: not watched, or the bit set in
 * the workload's row (a runtime process's row says nothing of the workload's). */
static __always_inline bool record_syscall(unsigned long long *ctx, __u64 cgroup_id, struct vigil_cgroup_state *state, long id,
                                           __u32 abi)
{
    if (!state)
        return true;
    struct vigil_cgroup_syscalls *syscalls = cgroup_syscalls_of(cgroup_id);
    if (!syscalls)
        return false; /* cgroup_syscalls is full: not remembered, tried again next time */
    __u64 bit = 1ULL << (id & 63);
    __u64 *word = &syscalls->syscalls[abi][(id >> 6) & (VIGIL_SYSCALL_WORDS - 1)];

    struct vigil_runtime_task *runtime = runtime_task_of(bpf_get_current_pid_tgid() >> 32);
    if (runtime && abi == VIGIL_SYSCALL_ABI_NATIVE) {
        __u32 row = runtime->phase == VIGIL_RUNTIME_AFTER_FILTER ? 1 : 0;
        word = &syscalls->runtime_syscalls[row][(id >> 6) & (VIGIL_SYSCALL_WORDS - 1)];
        if (runtime->phase == VIGIL_RUNTIME_BEFORE_FILTER && is_filter_install(ctx, id))
            runtime->phase = VIGIL_RUNTIME_AFTER_FILTER; /* this call installs it; the next ones run under it */
    }
    if (!(*word & bit))
        __sync_fetch_and_or(word, bit);
    return !runtime || abi != VIGIL_SYSCALL_ABI_NATIVE;
}

SEC("raw_tp/sys_enter")
int vigil_syscall_enter(unsigned long long *ctx)
{
    /* The task once: fetching it is a helper call. */
#ifdef VIGIL_TASK_BTF
    struct task_struct *task = bpf_get_current_task_btf();
    __u64 cgroup_id = task_cgroup_id(task);
#else
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    __u64 cgroup_id = bpf_get_current_cgroup_id();
#endif
    long id = (long)ctx[1];
    __u32 abi = syscall_abi(task, &id);
    if (id < 0 || id >= VIGIL_SYSCALL_SLOTS)
        return 0;
    __u32 *generation = current_state_generation();
    /* The runtime setting a container up (rare: runtime_tasks is empty otherwise) is recorded
     * apart from its workload, by process: not remembered by cgroup. With watch_all, whether a
     * process is watched depends on the process (the agent's is not). */
    if (!generation || runtime_tasks_exist() || vigil_config.watch_all) {
        record_syscall(ctx, cgroup_id, watched_state_of(cgroup_id), id, abi);
        return 0;
    }
    __u64 tag;
    __u64 *seen = syscall_memory(cgroup_id, abi, id, *generation, &tag);
    if (seen && syscall_remembered(*seen, tag))
        return 0;
    struct vigil_cgroup_state *state = watched_state_of(cgroup_id);
    if (record_syscall(ctx, cgroup_id, state, id, abi) && seen)
        *seen = state ? tag | RECORDED_SYSCALL_WATCHED : tag;
    return 0;
}
