// SPDX-License-Identifier: GPL-2.0
/* Opens with write intent (open, openat, openat2, creat) and truncate(). Read-only opens are
 * ignored; at exit, in a container with model directories only, the opened file is checked, and
 * only the opens of files under a model directory reach userspace. Where the kernel has
 * bpf_task_pt_regs (the btfCasts build), open, openat and openat2 have no enter program: the
 * exit reads the arguments from the registers the syscall was made with, and decides a known
 * write from one array slot (known_writes) before any hash table. */
#include "vigil.bpf.h"

static __always_inline __u32 write_op(__u64 flags)
{
    if (flags & O_CREAT)
        return VIGIL_FILE_CREATE;
    if (flags & O_TRUNC)
        return VIGIL_FILE_TRUNCATE;
    if (flags & (O_WRONLY | O_RDWR))
        return VIGIL_FILE_OPEN_WRITE;
    return 0;
}

/* openat2's flags, from its struct open_how in the process's memory (0, a read, when unreadable). */
static __always_inline __u64 openat2_flags(__u64 how_address)
{
    struct open_how how = {};
    bpf_probe_read_user(&how, sizeof(how.flags), (const void *)how_address);
    return how.flags;
}

#ifdef VIGIL_BTF_CASTS
/* Known writes recently seen: (cgroup, kind, path hash) found in the cgroup's profile's
 * known_behaviour at a state_generation, which the agent moves on when it changes a watched
 * cgroup's state or removes known behaviour (only known answers are remembered: behaviour added
 * cannot make one wrong). A write open of a workload is nearly always one it made before, and then
 * costs one slot here instead of a watched_cgroups and a known_behaviour lookup (~20 ns each).
 * Slots are shared between CPUs and written without a lock: the check is a mix of all the
 * fields, so a slot read while another CPU writes it (fields of two entries, and either's check)
 * fails it and reads as a miss, in whatever order the stores land. The path hash is keyed
 * (text_hash): a workload can neither aim at a slot nor forge a check. */
#define KNOWN_WRITE_SLOT_BITS 10

struct known_write {
    __u64 cgroup_id;
    __u64 hash;
    __u32 kind;
    __u32 generation;
    __u64 check;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1 << KNOWN_WRITE_SLOT_BITS);
    __type(key, __u32);
    __type(value, struct known_write);
} known_writes SEC(".maps");

static __always_inline __u64 known_write_check(__u64 cgroup_id, __u64 hash, __u32 kind, __u32 generation)
{
    return (cgroup_id * VIGIL_GOLDEN_64) ^ hash ^ ((((__u64)kind << 32) | generation) * 0xC2B2AE3D27D4EB4FULL)
           ^ 0x5bd1e9955bd1e995ULL; /* so that a slot never written (all zeros) fails it */
}

static __always_inline struct known_write *known_write_slot(__u64 cgroup_id, __u32 kind, __u64 hash)
{
    __u32 slot = (hash ^ ((cgroup_id ^ ((__u64)kind << 56)) * VIGIL_GOLDEN_64)) >> (64 - KNOWN_WRITE_SLOT_BITS);
    return bpf_map_lookup_elem(&known_writes, &slot);
}

static __always_inline bool known_write_remembered(__u64 cgroup_id, __u32 kind, __u64 hash, __u32 generation)
{
    struct known_write *w = known_write_slot(cgroup_id, kind, hash);
    if (!w)
        return false;
    struct known_write seen = *w;
    return seen.cgroup_id == cgroup_id && seen.hash == hash && seen.kind == kind && seen.generation == generation
           && seen.check == known_write_check(cgroup_id, hash, kind, generation);
}

static __always_inline void remember_known_write(__u64 cgroup_id, __u32 kind, __u64 hash, __u32 generation)
{
    struct known_write *w = known_write_slot(cgroup_id, kind, hash);
    if (!w)
        return;
    w->cgroup_id = cgroup_id;
    w->hash = hash;
    w->kind = kind;
    w->generation = generation;
    w->check = known_write_check(cgroup_id, hash, kind, generation);
}

/* The registers the current syscall was made with: the task's saved user registers, which the
 * syscall leaves as they were (its result goes to another), so its exit reads its arguments. */
static __always_inline struct pt_regs *syscall_registers(void)
{
    return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* An open, at its exit: a read-only one is judged by the file it opened (report_read_only_open);
 * a write, by the path it named. Whether the cgroup is watched comes from recorded_syscalls,
 * which this syscall's enter has just gone through (a lookup only when it does not say), so an
 * unwatched process's path is never read; a known write stops at its known_writes slot. */
static __always_inline int report_open_at_exit(struct trace_event_raw_sys_exit *ctx, int dirfd, __u64 name, __u64 flags)
{
    __u32 op = write_op(flags);
    if (!op)
        return report_read_only_open(ctx->ret);
    __u64 cgroup_id = current_cgroup_id();
    /* Read before any state is looked up, as for recorded_syscalls. Without it (never: an array's
     * one element), nothing is remembered or recalled: generation 0 with no memory. */
    __u32 *generation_now = current_state_generation();
    __u32 generation = generation_now ? *generation_now : 0;
    enum cgroup_memory memory = generation_now ? cgroup_remembered(cgroup_id, ctx->id, generation) : CGROUP_NOT_REMEMBERED;
    struct vigil_cgroup_state *state = NULL;
    if (memory == CGROUP_REMEMBERED_UNWATCHED)
        return 0;
    if (memory == CGROUP_NOT_REMEMBERED) {
        state = watched_state_of(cgroup_id);
        if (!state)
            return 0;
    }
    if (runtime_phase())
        return 0; /* the runtime setting the container up is not the workload */
    struct vigil_file_event *event = event_buffer();
    if (!event)
        return 0;
    __u32 path_flags = 0;
    read_syscall_path(&event->path, dirfd, name, &path_flags);
    event->target.dir_len = 0;
    event->target.name_len = 0;
    __u32 kind = VIGIL_KIND_FILE * 16 + op;
    __u64 hash = path_hash(&event->path);
    if (generation_now && known_write_remembered(cgroup_id, kind, hash, generation))
        return drop_known_file();
    if (!state)
        state = watched_state_of(cgroup_id);
    if (!state)
        return 0;
    __u32 profile_id = state->profile_id;
    if (profile_id && is_known(profile_id, kind, hash)) {
        if (generation_now)
            remember_known_write(cgroup_id, kind, hash, generation);
        return drop_known_file();
    }
    return send_file_syscall(event, path_flags, op, (__u32)flags, ctx->ret, profile_id, profile_id ? hash : 0);
}

SEC("tp/syscalls/sys_exit_open")
int vigil_open_exit(struct trace_event_raw_sys_exit *ctx)
{
    struct pt_regs *regs = syscall_registers();
    return report_open_at_exit(ctx, AT_FDCWD, PT_REGS_PARM1_SYSCALL(regs), PT_REGS_PARM2_SYSCALL(regs));
}

SEC("tp/syscalls/sys_exit_openat")
int vigil_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
    struct pt_regs *regs = syscall_registers();
    return report_open_at_exit(ctx, (int)PT_REGS_PARM1_SYSCALL(regs), PT_REGS_PARM2_SYSCALL(regs),
                               PT_REGS_PARM3_SYSCALL(regs));
}

SEC("tp/syscalls/sys_exit_openat2")
int vigil_openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
    struct pt_regs *regs = syscall_registers();
    __u64 flags = openat2_flags(PT_REGS_PARM3_SYSCALL(regs));
    /* The flags are in the process's memory, which the kernel copied at entry and another thread
     * may have rewritten since (the enter read them as racily): a descriptor open for writing
     * is a write, whatever they say now. */
    if (!write_op(flags) && ctx->ret >= 0 && open_for_writing(ctx->ret))
        flags |= O_WRONLY;
    return report_open_at_exit(ctx, (int)PT_REGS_PARM1_SYSCALL(regs), PT_REGS_PARM2_SYSCALL(regs), flags);
}
#else
static __always_inline int remember_open(int dirfd, __u64 name, __u64 flags)
{
    __u32 op = write_op(flags);
    if (!op)
        return 0; /* a read: judged at exit by the file it opened (report_read_only_open) */
    return remember_file_syscall(op, (__u32)flags, dirfd, name, 0, 0);
}

SEC("tp/syscalls/sys_enter_open")
int vigil_open_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_open(AT_FDCWD, ctx->args[0], ctx->args[1]);
}

SEC("tp/syscalls/sys_enter_openat")
int vigil_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_open((int)ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tp/syscalls/sys_enter_openat2")
int vigil_openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_open((int)ctx->args[0], ctx->args[1], openat2_flags(ctx->args[2]));
}


SEC("tp/syscalls/sys_exit_open")
int vigil_open_exit(struct trace_event_raw_sys_exit *ctx) { return report_open(ctx->ret); }

SEC("tp/syscalls/sys_exit_openat")
int vigil_openat_exit(struct trace_event_raw_sys_exit *ctx) { return report_open(ctx->ret); }

SEC("tp/syscalls/sys_exit_openat2")
int vigil_openat2_exit(struct trace_event_raw_sys_exit *ctx) { return report_open(ctx->ret); }
#endif

SEC("tp/syscalls/sys_enter_creat")
int vigil_creat_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_CREATE, O_CREAT | O_WRONLY | O_TRUNC, AT_FDCWD,
                                 ctx->args[0], 0, 0);
}

SEC("tp/syscalls/sys_enter_truncate")
int vigil_truncate_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_TRUNCATE, 0, AT_FDCWD, ctx->args[0], 0, 0);
}

SEC("tp/syscalls/sys_exit_creat")
int vigil_creat_exit(struct trace_event_raw_sys_exit *ctx) { return report_file_syscall(ctx->ret); }

SEC("tp/syscalls/sys_exit_truncate")
int vigil_truncate_exit(struct trace_event_raw_sys_exit *ctx) { return report_file_syscall(ctx->ret); }
