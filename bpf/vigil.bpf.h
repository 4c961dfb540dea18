/* SPDX-License-Identifier: GPL-2.0
 *
 * What every Vigil program shares: the maps, the watched-cgroup filter, the event header, drop
 * accounting and the kernel-side path resolution. Each hook lives in its own bpf/<hook>.bpf.c;
 * the build links them into one object (bpftool gen object), so the maps and globals here are
 * __weak: every file sees the declaration, the linker keeps one.
 */
#ifndef VIGIL_BPF_H
#define VIGIL_BPF_H

#include "vigil_kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "vigil_abi.h"

/* libbpf 1.1's BPF_CORE_READ declares its result with the const of the pointer it is given, which
 * PT_REGS_PARMn_CORE_SYSCALL gives it on arm64; newer clang warns, harmlessly: it is written at once. */
#if __has_warning("-Wdefault-const-init-var-unsafe")
#pragma clang diagnostic ignored "-Wdefault-const-init-var-unsafe"
#endif

/* Reading kernel objects on hot paths (an open file, its dentry, inode and mount). In the object
 * built with VIGIL_BTF_CASTS (Linux 6.2+), an address becomes a typed pointer (the bpf_rdonly_cast
 * kfunc, inlined by the verifier), whose fields are plain loads; elsewhere each field read is a
 * bpf_probe_read_kernel call (~30-50 ns each on this design's test VM). Either way a bad address
 * reads as zero. KERNEL_READ(p, a, b) is p->a->b; p must come from KERNEL_OBJECT or another
 * KERNEL_READ (the verifier refuses the load otherwise). A typed pointer is no number: hash, shift
 * or pass to a global function the address it came from, not the pointer. */
#ifdef VIGIL_BTF_CASTS
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define KERNEL_OBJECT(type, address) ((type *)bpf_rdonly_cast((const void *)(address), bpf_core_type_id_kernel(type)))
#define VIGIL_ARROW2(p, a) (p)->a
#define VIGIL_ARROW3(p, a, b) (p)->a->b
#define VIGIL_ARROW4(p, a, b, c) (p)->a->b->c
#define VIGIL_ARROW(_1, _2, _3, _4, name, ...) name
#define KERNEL_READ(...) VIGIL_ARROW(__VA_ARGS__, VIGIL_ARROW4, VIGIL_ARROW3, VIGIL_ARROW2, _)(__VA_ARGS__)
#else
#define KERNEL_OBJECT(type, address) ((type *)(address))
#define KERNEL_READ(...) BPF_CORE_READ(__VA_ARGS__)
#endif

/* How many directories a kernel-side path walk climbs before it gives up and flags truncation. */
#define VIGIL_PATH_DEPTH 48
#define VIGIL_MODEL_DEPTH 16 /* ancestors checked for a model directory */
#define VIGIL_NAME_MAX 255
#define VIGIL_MAX_WATCHED_CGROUPS 16384
#define VIGIL_MAX_PENDING 8192

/* 2^64 / golden ratio: Fibonacci hashing takes the top bits of a product with it (neighbouring
 * numbers spread over the slots); the checked slots mix their fields with it. */
#define VIGIL_GOLDEN_64 0x9E3779B97F4A7C15ULL

#define MSG_FASTOPEN 0x20000000
#define SOCK_DGRAM 2

/* Set by the agent before load (it rewrites .rodata), read-only to the programs. */
const volatile struct vigil_config vigil_config __weak = {};

/* Records to userspace. The agent may resize it before load (`--ring-buffer-size`). */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} events __weak SEC(".maps");

/* cgroup v2 ids whose processes are reported, with their profile and flags (written by the agent,
 * and by the kernel for a new cgroup). Descendants are added as they are created (see
 * cgroup_mkdir.bpf.c), so the hot path costs one lookup. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VIGIL_MAX_WATCHED_CGROUPS);
    __type(key, __u64);
    __type(value, struct vigil_cgroup_state);
} watched_cgroups __weak SEC(".maps");

/* The syscalls of each watched cgroup (vigil_abi.h says why apart): made at its first recorded
 * syscall, read by the agent, removed with the cgroup (cgroup_rmdir.bpf.c) or by the agent. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VIGIL_MAX_WATCHED_CGROUPS);
    __type(key, __u64);
    __type(value, struct vigil_cgroup_syscalls);
} cgroup_syscalls __weak SEC(".maps");

/* A process of the container runtime inside a watched cgroup. */
struct vigil_runtime_task {
    __u32 phase; /* enum vigil_runtime_phase */
    __u32 _pad;
    /* The inode of the binary of the runtime that moved it in (runc create's). runc's init re-executes
     * that binary before it sets the container up, from a read-only bind mount of it (runc 1.1's
     * try_bindfd: the same inode, linked) or from a memfd copy (no links): either is still the
     * runtime, whichever of the move and the re-exec comes first. */
    __u64 runtime_binary;
};

/* Processes of the container runtime inside watched cgroups, by tgid. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, struct vigil_runtime_task);
} runtime_tasks __weak SEC(".maps");

/* How many entries runtime_tasks holds: zero but while containers start, and then the hooks skip
 * their runtime_tasks lookup (one hash lookup less on every syscall of a watched process). Never
 * below the truth: raised before an insert, lowered after a delete that succeeded. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __s64);
} runtime_task_count __weak SEC(".maps");

static __always_inline void count_runtime_tasks(__s64 delta)
{
    __u32 zero = 0;
    __s64 *count = bpf_map_lookup_elem(&runtime_task_count, &zero);
    if (count)
        __sync_fetch_and_add(count, delta);
}

static __always_inline bool runtime_tasks_exist(void)
{
    __u32 zero = 0;
    __s64 *count = bpf_map_lookup_elem(&runtime_task_count, &zero);
    return !count || *count > 0;
}

/* Marks process tgid as the runtime's, or changes what is known of it. */
static __always_inline void add_runtime_task(__u32 tgid, const struct vigil_runtime_task *task, __u64 flags)
{
    count_runtime_tasks(1);
    if (bpf_map_update_elem(&runtime_tasks, &tgid, task, BPF_NOEXIST) == 0)
        return;
    count_runtime_tasks(-1);
    if (flags == BPF_ANY)
        bpf_map_update_elem(&runtime_tasks, &tgid, task, BPF_ANY); /* already there: a new phase */
}

/* Whether process tgid was the runtime's; it is not any more. */
static __always_inline bool remove_runtime_task(__u32 tgid)
{
    if (bpf_map_delete_elem(&runtime_tasks, &tgid) != 0)
        return false;
    count_runtime_tasks(-1);
    return true;
}

/* What is known of process tgid as the runtime's, or NULL when it is the workload. */
static __always_inline struct vigil_runtime_task *runtime_task_of(__u32 tgid)
{
    if (!runtime_tasks_exist())
        return NULL;
    return bpf_map_lookup_elem(&runtime_tasks, &tgid);
}

/* The runtime phase of process tgid, or 0 when it is the workload. */
static __always_inline __u32 runtime_phase_of(__u32 tgid)
{
    struct vigil_runtime_task *task = runtime_task_of(tgid);
    return task ? task->phase : 0;
}

/* The current process's runtime phase, or 0 when it is the workload. */
static __always_inline __u32 runtime_phase(void)
{
    return runtime_phase_of(bpf_get_current_pid_tgid() >> 32);
}

/* Behaviour of stable profiles, dropped in the kernel (see vigil_abi.h for the keys). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct vigil_known_key);
    __type(value, __u8);
} known_behaviour __weak SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, struct vigil_known_destination);
    __type(value, __u8);
} known_destinations __weak SEC(".maps");

/* Protect mode (VIGIL_CGROUP_PROTECT_*): the egress rules (struct vigil_egress_key) of protected
 * profiles, and their exec and exact file-write rules (struct vigil_known_key, hashed as
 * known_behaviour's), startup-only ones included. */
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 16384);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct vigil_egress_key);
    __type(value, __u8);
} protect_egress __weak SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, struct vigil_known_key);
    __type(value, __u8);
} protect_rules __weak SEC(".maps");

static __always_inline bool protect_rule_allows(__u32 profile_id, __u32 kind, __u64 hash)
{
    struct vigil_known_key key = { .profile_id = profile_id, .kind = kind, .hash = hash };
    return bpf_map_lookup_elem(&protect_rules, &key) != NULL;
}

/* A refusal the egress guard reported itself, per thread (value: egress_mark of the destination):
 * the syscall's own exit then sends nothing more. Least recently used go first: a refusal with no
 * syscall exit after it (io_uring) only leaves a stale mark, matched by nothing else. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);
    __type(value, __u64);
} egress_refused __weak SEC(".maps");

static __always_inline __u64 egress_mark(__u16 family, __u16 port, const __u8 *addr)
{
    __u64 mark = ((__u64)family << 48) | ((__u64)port << 32);
    __u32 head = 0;
    __builtin_memcpy(&head, addr, 4);
    __u32 tail = 0;
    __builtin_memcpy(&tail, addr + 12, 4);
    return mark ^ head ^ ((__u64)tail << 7);
}

/* var = min(var, max), on the register that is then used. Written in C, clang may compare one
 * register and use a copy of it; verifiers before Linux 6.8 do not carry a bound over such a
 * 32-bit copy and refuse the helper call it sizes ("R2 unbounded memory access", seen on 6.1).
 * As bpf_clamp_umax in the kernel's selftests (bpf_misc.h). */
#define VIGIL_CLAMP(var, max) asm volatile("if %[v] <= %[m] goto +1\n\t%[v] = %[m]" : [v] "+r"(var) : [m] "i"(max))

/* Text that text_hash reads a word at a time. */
#define VIGIL_WORD_ALIGNED __attribute__((aligned(8)))

/* Exec and file events as the programs assemble them: each string in a field of its own, at a
 * fixed place the verifier can check every write against. They go out packed
 * (vigil_exec_record, vigil_file_record in vigil_abi.h): send_exec_event, send_file_event. */

struct vigil_exec_event {
    struct vigil_header hdr;
    __u32 exe_len;
    __u32 parent_exe_len;
    __u32 args_len;
    __u32 _pad;
    char exe[VIGIL_PATH_LEN] VIGIL_WORD_ALIGNED;
    char parent_exe[VIGIL_PATH_LEN] VIGIL_WORD_ALIGNED;
    char args[VIGIL_ARGS_LEN];
};

struct vigil_path {
    __u32 dir_len;
    __u32 name_len;
    char dir[VIGIL_PATH_LEN] VIGIL_WORD_ALIGNED;
    char name[VIGIL_PATH_LEN] VIGIL_WORD_ALIGNED;
};

struct vigil_file_event {
    struct vigil_header hdr;
    __u32 op;
    __u32 open_flags;
    __s64 ret;
    __u64 inode;
    __u32 device;
    __u32 _reserved;
    __u64 size;
    __u64 change_ns;
    struct vigil_path path;
    struct vigil_path target;
};

/* Room to pack a record: its fixed fields, then text at offsets masked to VIGIL_TEXT_SPAN (which
 * bounds them for the verifier), plus one more string's room past the last offset. */
#define VIGIL_TEXT_SPAN (4 * VIGIL_PATH_LEN)
_Static_assert(VIGIL_ARGS_LEN <= VIGIL_PATH_LEN, "pack_text bounds every string by VIGIL_PATH_LEN");
_Static_assert(2 * VIGIL_PATH_LEN + VIGIL_ARGS_LEN <= VIGIL_TEXT_SPAN, "an exec record's text fits the span");
struct vigil_packed_record {
    struct vigil_file_record fixed; /* the larger of the two fixed parts */
    char text[VIGIL_TEXT_SPAN + VIGIL_PATH_LEN];
};

/* Where an event is assembled before it is known whether it goes out (entry 0): behaviour in the
 * profile must cause no ring-buffer traffic at all, so the record is built here and copied to the
 * ring only when it is new; and where an exec or file event is packed on its way out (entry 1). */
union vigil_any_event {
    struct vigil_exec_event exec;
    struct vigil_file_event file;
    struct vigil_cgroup_event cgroup;
    struct vigil_packed_record packed;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, union vigil_any_event);
} event_scratch __weak SEC(".maps");

/* Events lost in the kernel, at index stage * VIGIL_KIND_COUNT + kind. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, VIGIL_DROP_SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} drops __weak SEC(".maps");

/* A syscall's arguments, remembered from its enter tracepoint until its exit gives the outcome. */
struct pending_syscall {
    __u32 kind; /* VIGIL_KIND_FILE or VIGIL_KIND_NET */
    __u32 profile_id;
    __u32 op;
    __u32 open_flags;
    __s32 dirfd;
    __s32 target_dirfd;
    __u16 family;
    __u16 port;
    __u64 name;        /* user pointer */
    __u64 target_name; /* user pointer (rename) */
    __u16 protocol;
    __u16 sock_type;
    __u32 _pad;
    __u8 addr[16];
};

#ifdef VIGIL_TASK_BTF
/* Per thread, in the thread itself (freed with it): a lookup without hashing, no table to fill. An
 * entry with kind 0 holds nothing. */
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct pending_syscall);
} pending __weak SEC(".maps");
#else
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VIGIL_MAX_PENDING);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct pending_syscall);
} pending __weak SEC(".maps");
#endif

/* Room to assemble a path from its leaf upwards; twice VIGIL_PATH_LEN so that a bounded write at
 * any offset below VIGIL_PATH_LEN stays inside. */
struct path_scratch {
    char buf[VIGIL_PATH_LEN * 2] VIGIL_WORD_ALIGNED;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct path_scratch);
} scratch __weak SEC(".maps");

/* Model directories per container (struct vigil_model_dir_key), filled by the agent. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct vigil_model_dir_key);
    __type(value, __u8);
} model_dirs __weak SEC(".maps");

/* The generation of the agent's model directories: 0 while no container has any (a read-only
 * open then returns without looking its cgroup up; an array lookup with a constant key compiles
 * to a load), and a new value each time the agent changes them (so what outside_models remembers
 * of the old ones is not used). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} model_switch __weak SEC(".maps");

static __always_inline __u32 model_generation(void)
{
    __u32 zero = 0;
    __u32 *generation = bpf_map_lookup_elem(&model_switch, &zero);
    return generation ? *generation : 0;
}

static __always_inline bool model_reads_watched(void) { return model_generation() != 0; }

/* How many renames, unlinks and mount-tree changes any process on the node made: each can put an
 * existing file below a model directory, or free the dentry and inode a remembered verdict names,
 * so outside_models entries from before one are not used. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} tree_changes __weak SEC(".maps");

static __always_inline __u64 tree_change_count(void)
{
    __u32 zero = 0;
    __u64 *count = bpf_map_lookup_elem(&tree_changes, &zero);
    return count ? *count : 0;
}

static __always_inline void note_tree_change(long ret)
{
    __u32 zero = 0;
    __u64 *count = bpf_map_lookup_elem(&tree_changes, &zero);
    if (ret == 0 && count)
        __sync_fetch_and_add(count, 1);
}

static __always_inline void count_drop(__u32 stage, __u32 kind)
{
    __u32 slot = stage * VIGIL_KIND_COUNT + kind;
    __u64 *counter = bpf_map_lookup_elem(&drops, &slot);
    if (counter)
        *counter += 1; /* per-CPU: no atomics needed */
}

/* The current task's cgroup v2 id, as bpf_get_current_cgroup_id() returns it. In the object
 * built with VIGIL_TASK_BTF (Linux 5.12+), in tracing programs (cgroup programs cannot call
 * bpf_get_current_task_btf: VIGIL_CGROUP_PROGRAM), through the task's BTF type:
 * four plain loads, where the helper call costs ~30 ns on every hook (measured on this design's
 * test VM, the largest part of what an unwatched process pays). */
#if defined(VIGIL_TASK_BTF) && !defined(VIGIL_CGROUP_PROGRAM)
static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
    return task->cgroups->dfl_cgrp->kn->id;
}
#endif

static __always_inline __u64 current_cgroup_id(void)
{
#if defined(VIGIL_TASK_BTF) && !defined(VIGIL_CGROUP_PROGRAM)
    return task_cgroup_id(bpf_get_current_task_btf());
#else
    return bpf_get_current_cgroup_id();
#endif
}

/* What a cgroup first seen starts from. In .rodata, not on the stack: the syscall bitmaps are over
 * 300 bytes, and every program that records one would carry that frame (see bpf/check-stack). */
const struct vigil_cgroup_state vigil_fresh_cgroup_state __weak = {};
const struct vigil_cgroup_syscalls vigil_fresh_cgroup_syscalls __weak = {};

/* The syscall bitmaps of a watched cgroup, made empty on its first recorded syscall; NULL only
 * when cgroup_syscalls is full. */
static __always_inline struct vigil_cgroup_syscalls *cgroup_syscalls_of(__u64 cgroup_id)
{
    struct vigil_cgroup_syscalls *syscalls = bpf_map_lookup_elem(&cgroup_syscalls, &cgroup_id);
    if (syscalls)
        return syscalls;
    bpf_map_update_elem(&cgroup_syscalls, &cgroup_id, &vigil_fresh_cgroup_syscalls, BPF_NOEXIST);
    return bpf_map_lookup_elem(&cgroup_syscalls, &cgroup_id);
}

/* The current process's cgroup state if it is watched, else NULL. With watch_all every cgroup
 * gets a state on first sight (but the agent's own process is never watched). */

static __always_inline struct vigil_cgroup_state *watched_state_of(__u64 cgroup_id)
{
    struct vigil_cgroup_state *state = bpf_map_lookup_elem(&watched_cgroups, &cgroup_id);
    if (state)
        return state->flags & VIGIL_CGROUP_QUIET ? NULL : state;
    if (!vigil_config.watch_all)
        return NULL;
    if ((bpf_get_current_pid_tgid() >> 32) == vigil_config.agent_tgid)
        return NULL;
    bpf_map_update_elem(&watched_cgroups, &cgroup_id, &vigil_fresh_cgroup_state, BPF_NOEXIST);
    return bpf_map_lookup_elem(&watched_cgroups, &cgroup_id);
}

static __always_inline struct vigil_cgroup_state *watched_state(void)
{
    return watched_state_of(current_cgroup_id());
}

/* Syscalls whose cgroup needs nothing more for them: the syscall's bit is already in its watched
 * cgroup's bitmap, or the cgroup is not watched. A syscall made again — nearly every one — then
 * costs a few loads instead of the watched_cgroups lookup (~20 ns of the ~30 vigil_syscall_enter
 * took on each syscall, measured with --program-stats; a per-CPU table cost ~7 ns more than this
 * shared one). Each slot is one 64-bit word, stored and loaded whole, so CPUs share the table
 * without a torn entry: the cgroup's number in its hierarchy (the low 32 bits of its id, unique
 * among live cgroups), 20 bits of generation, whether the cgroup is watched, the syscall's ABI
 * and number. A slot holds for the state_generation it was filled in; the agent moves that on
 * after each change it makes to watched_cgroups (a watch, an unwatch, or a read-modify-write of a
 * state, which may undo a bit set here meanwhile) and after each removal from known_behaviour
 * (known_writes, in file_open.bpf.c, shares the generation). The kernel's own
 * changes need none: a cgroup it adds (a child, or with watch_all) is new, and one it removes is
 * gone. The open exits read the watched bit too: an unwatched cgroup's open stops there. What is
 * left (docs/DESIGN.md): a slot untouched through 2^20 generations; on arm64, loads the CPU
 * reorders around the generation's — either would leave a syscall's bit unset, or a watched
 * cgroup's write opens unreported, until the next generation. */
#define RECORDED_SYSCALL_SLOT_BITS 12
#define RECORDED_SYSCALL_WATCHED (1ULL << 11)

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1 << RECORDED_SYSCALL_SLOT_BITS);
    __type(key, __u32);
    __type(value, __u64);
} recorded_syscalls __weak SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} state_generation __weak SEC(".maps");

/* The generation the agent's state is at, or NULL (never, in practice: an array's one element). */
static __always_inline __u32 *current_state_generation(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&state_generation, &zero);
}

/* The slot of (cgroup, ABI, syscall) in recorded_syscalls, and the tag it holds when it is
 * remembered (without RECORDED_SYSCALL_WATCHED). The generation is read before the state is
 * looked up: a change in between stales the tag. The id's high 32 bits (how many times the
 * hierarchy's numbers wrapped) are added to it, so a cgroup numbered as a removed one (after
 * ~2^31 kernfs nodes) meets none of its tags. */
static __always_inline __u64 *syscall_memory(__u64 cgroup_id, __u32 abi, long id, __u32 generation, __u64 *tag)
{
    __u64 syscall = (cgroup_id << 32) | ((__u64)abi << 9) | (id & (VIGIL_SYSCALL_SLOTS - 1));
    *tag = syscall | ((__u64)((generation + (__u32)(cgroup_id >> 32)) & 0xfffff) << 12);
    __u32 slot = (syscall * VIGIL_GOLDEN_64) >> (64 - RECORDED_SYSCALL_SLOT_BITS);
    return bpf_map_lookup_elem(&recorded_syscalls, &slot);
}

/* Whether a slot's word holds the tag (the watched bit aside). */
static __always_inline bool syscall_remembered(__u64 held, __u64 tag)
{
    return (held & ~RECORDED_SYSCALL_WATCHED) == tag;
}

enum cgroup_memory { CGROUP_NOT_REMEMBERED, CGROUP_REMEMBERED_UNWATCHED, CGROUP_REMEMBERED_WATCHED };

/* What recorded_syscalls says of a cgroup, from one native syscall it made (the syscall
 * tracepoints fire for native syscalls only). */
static __always_inline enum cgroup_memory cgroup_remembered(__u64 cgroup_id, long id, __u32 generation)
{
    __u64 tag;
    __u64 *seen = syscall_memory(cgroup_id, VIGIL_SYSCALL_ABI_NATIVE, id, generation, &tag);
    if (!seen)
        return CGROUP_NOT_REMEMBERED;
    __u64 held = *seen;
    if (!syscall_remembered(held, tag))
        return CGROUP_NOT_REMEMBERED;
    return held & RECORDED_SYSCALL_WATCHED ? CGROUP_REMEMBERED_WATCHED : CGROUP_REMEMBERED_UNWATCHED;
}

static __always_inline void *event_buffer(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&event_scratch, &zero);
}

/* Whether the record about to go into the ring (size bytes, of kind) wakes the reader. Waking it
 * is an interrupt and a scheduler call on the CPU of the process that caused the record, costing
 * that process as much as the rest of the record together (measured: a reported exit took 15 us
 * with a wakeup). So the reader is woken once per batch of 1 << wakeup_shift bytes written into
 * the ring (by the record whose bytes cross a multiple of it), and its poll timeout collects a
 * batch that is not full. Positions only grow: a crossing that two CPUs racing both miss only
 * delays the wakeup to the next batch. Execs and cgroup records wake it at once: a container's
 * birth and naming, and its first program, are what the agent must act on before the container
 * goes further (its model directories, its protection), and they are few. */
static __always_inline __u64 wakeup_flag(__u64 size, __u32 kind)
{
    __u32 shift = vigil_config.wakeup_shift;
    if (!shift)
        return 0; /* the kernel's default: a wakeup for each record that finds the reader idle */
    if (kind == VIGIL_KIND_EXEC || kind == VIGIL_KIND_CGROUP)
        return BPF_RB_FORCE_WAKEUP;
    __u64 start = bpf_ringbuf_query(&events, BPF_RB_PROD_POS);
    __u64 end = start + ((size + 8 /* record header */ + 7) & ~7ULL);
    return (start >> shift) != (end >> shift) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Sends an assembled event, or counts it as dropped when the ring buffer is full. */
static __always_inline void send_event(void *event, __u64 size, __u32 kind)
{
    if (bpf_ringbuf_output(&events, event, size, wakeup_flag(size, kind)) != 0)
        count_drop(VIGIL_DROP_RINGBUF_FULL, kind);
}

static __always_inline struct vigil_packed_record *packing_buffer(void)
{
    __u32 one = 1;
    return bpf_map_lookup_elem(&event_scratch, &one);
}

/* Appends len bytes of a string to a record's text at offset at; returns the offset after it. */
static __always_inline __u32 pack_text(char *text, __u32 at, const char *from, __u32 len)
{
    VIGIL_CLAMP(len, VIGIL_PATH_LEN);
    if (len)
        bpf_probe_read_kernel(&text[at & (VIGIL_TEXT_SPAN - 1)], len, from);
    return at + len;
}

/* Sends an exec event packed (struct vigil_exec_record), or counts it as dropped. */
static __always_inline void send_exec_event(struct vigil_exec_event *event)
{
    struct vigil_packed_record *out = packing_buffer();
    if (!out) {
        count_drop(VIGIL_DROP_RINGBUF_FULL, VIGIL_KIND_EXEC);
        return;
    }
    struct vigil_exec_record *record = (struct vigil_exec_record *)&out->fixed;
    char *text = (char *)(record + 1);
    record->hdr = event->hdr;
    record->exe_len = event->exe_len < VIGIL_PATH_LEN ? event->exe_len : VIGIL_PATH_LEN;
    record->parent_exe_len = event->parent_exe_len < VIGIL_PATH_LEN ? event->parent_exe_len : VIGIL_PATH_LEN;
    record->args_len = event->args_len < VIGIL_ARGS_LEN ? event->args_len : VIGIL_ARGS_LEN;
    record->_pad = 0;
    __u32 at = pack_text(text, 0, event->exe, record->exe_len);
    at = pack_text(text, at, event->parent_exe, record->parent_exe_len);
    at = pack_text(text, at, event->args, record->args_len);
    VIGIL_CLAMP(at, VIGIL_TEXT_SPAN);
    send_event(record, sizeof(*record) + at, VIGIL_KIND_EXEC);
}

/* Sends a file event packed (struct vigil_file_record), or counts it as dropped. */
static __always_inline void send_file_event(struct vigil_file_event *event)
{
    struct vigil_packed_record *out = packing_buffer();
    if (!out) {
        count_drop(VIGIL_DROP_RINGBUF_FULL, VIGIL_KIND_FILE);
        return;
    }
    struct vigil_file_record *record = &out->fixed;
    char *text = out->text;
    record->hdr = event->hdr;
    record->op = event->op;
    record->open_flags = event->open_flags;
    record->ret = event->ret;
    record->inode = event->inode;
    record->device = event->device;
    record->_reserved = 0;
    record->size = event->size;
    record->change_ns = event->change_ns;
    record->dir_len = event->path.dir_len < VIGIL_PATH_LEN ? event->path.dir_len : VIGIL_PATH_LEN;
    record->name_len = event->path.name_len < VIGIL_PATH_LEN ? event->path.name_len : VIGIL_PATH_LEN;
    record->target_dir_len = event->target.dir_len < VIGIL_PATH_LEN ? event->target.dir_len : VIGIL_PATH_LEN;
    record->target_name_len = event->target.name_len < VIGIL_PATH_LEN ? event->target.name_len : VIGIL_PATH_LEN;
    __u32 at = pack_text(text, 0, event->path.dir, record->dir_len);
    at = pack_text(text, at, event->path.name, record->name_len);
    at = pack_text(text, at, event->target.dir, record->target_dir_len);
    at = pack_text(text, at, event->target.name, record->target_name_len);
    VIGIL_CLAMP(at, VIGIL_TEXT_SPAN);
    send_event(record, sizeof(*record) + at, VIGIL_KIND_FILE);
}

/* Callers check profile_id first, to skip hashing for cgroups without a stable profile. */
static __always_inline bool is_known(__u32 profile_id, __u32 kind, __u64 hash)
{
    struct vigil_known_key key = { .profile_id = profile_id, .kind = kind, .hash = hash };
    return bpf_map_lookup_elem(&known_behaviour, &key) != NULL;
}

/* The agent's random key for text_hash, written into .rodata before load. */
const volatile __u64 vigil_text_hash_key[VIGIL_TEXT_HASH_WORDS] __weak = {};

/* One word of text_hash (vigil_abi.h): the product of its halves, each added to its key's. */
static __always_inline __u64 text_hash_word(__u64 word, __u64 key)
{
    __u64 low = (__u32)((__u32)word + (__u32)key);
    __u64 high = (__u32)((__u32)(word >> 32) + (__u32)(key >> 32));
    return low * high;
}

/* The hash that keys known behaviour. The words are read in place: bytes must be 8-byte aligned
 * in a buffer of capacity bytes (a power of two, at most VIGIL_TEXT_HASH_WORDS words), inside
 * which the read of the last word, past len, stays. */
static __always_inline __u64 text_hash(const char *bytes, __u32 len, const __u32 capacity)
{
    if (len > capacity)
        len = capacity;
    __u32 words = len / 8;
    __u64 hash = len;
    for (__u32 i = 0; i < capacity / 8; i++) {
        if (i >= words)
            break;
        hash += text_hash_word(*(const __u64 *)(bytes + i * 8), vigil_text_hash_key[i]);
    }
    __u32 rest = len % 8;
    if (rest) { /* then words < capacity / 8 */
        __u32 last = words & (capacity / 8 - 1);
        hash += text_hash_word(*(const __u64 *)(bytes + last * 8) & ((1ULL << (rest * 8)) - 1),
                               vigil_text_hash_key[last]);
    }
    return hash;
}

/* The hash of the absolute path a vigil_path names, as userspace hashes a clean path: a relative
 * name is joined to its directory ("dir/name") in the path scratch buffer first, which
 * vigil_resolve_path is done with by now. */
static __always_inline __u64 path_hash(const struct vigil_path *path)
{
    if (path->dir_len == 0)
        return text_hash(path->name, path->name_len, VIGIL_PATH_LEN);
    __u32 name_len = path->name_len;
    VIGIL_CLAMP(name_len, VIGIL_PATH_LEN - 1);
    __u32 zero = 0;
    struct path_scratch *joined = bpf_map_lookup_elem(&scratch, &zero);
    if (!joined)
        return 0;
    __u32 at = path->dir_len;
    VIGIL_CLAMP(at, VIGIL_PATH_LEN);
    bpf_probe_read_kernel(joined->buf, at, path->dir);
    if (at > 1) /* the root is "/" already */
        joined->buf[at++] = '/';
    bpf_probe_read_kernel(&joined->buf[at], name_len, path->name);
    return text_hash(joined->buf, at + name_len, sizeof(joined->buf));
}

/* A record written in place: submitted with the wakeup flag chosen here (the producer position is
 * read before the reservation, as send_event reads it before its copy). */
static __always_inline void *reserve_event(__u64 size, __u32 kind, __u64 *wakeup)
{
    *wakeup = wakeup_flag(size, kind);
    void *event = bpf_ringbuf_reserve(&events, size, 0);
    if (!event)
        count_drop(VIGIL_DROP_RINGBUF_FULL, kind);
    return event;
}

static __always_inline void fill_header(struct vigil_header *hdr, __u32 kind)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();

    hdr->kind = kind;
    hdr->flags = 0;
    hdr->boot_ns = bpf_ktime_get_boot_ns();
    hdr->cgroup_id = current_cgroup_id();
    hdr->start_boot_ns = BPF_CORE_READ(task, group_leader, start_boottime);
    hdr->tgid = pid_tgid >> 32;
    hdr->tid = (__u32)pid_tgid;
    hdr->ppid = BPF_CORE_READ(task, real_parent, tgid);
    hdr->uid = (__u32)uid_gid;
    hdr->gid = uid_gid >> 32;
    hdr->_pad = 0;
    bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
}

static __always_inline void save_pending(struct pending_syscall *args)
{
#ifdef VIGIL_TASK_BTF
    struct pending_syscall *slot = bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (slot)
        __builtin_memcpy(slot, args, sizeof(*slot));
    else
        count_drop(VIGIL_DROP_PENDING_FULL, args->kind);
#else
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if (bpf_map_update_elem(&pending, &pid_tgid, args, BPF_ANY) != 0)
        count_drop(VIGIL_DROP_PENDING_FULL, args->kind);
#endif
}

/* Takes the pending arguments of the current thread's syscall, if it saved any at enter. */
static __always_inline bool take_pending(struct pending_syscall *out)
{
#ifdef VIGIL_TASK_BTF
    struct pending_syscall *args = bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0, 0);
    if (!args || !args->kind)
        return false;
    __builtin_memcpy(out, args, sizeof(*out));
    args->kind = 0;
    return true;
#else
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    struct pending_syscall *args = bpf_map_lookup_elem(&pending, &pid_tgid);
    if (!args)
        return false;
    __builtin_memcpy(out, args, sizeof(*out));
    bpf_map_delete_elem(&pending, &pid_tgid);
    return true;
#endif
}

/* A thread killed inside a syscall never reaches its exit tracepoint: what its enter remembered
 * is forgotten when it ends, so the table cannot fill up over time (task storage goes with the
 * task by itself). */
static __always_inline void forget_pending(void)
{
#ifndef VIGIL_TASK_BTF
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    bpf_map_delete_elem(&pending, &pid_tgid);
#endif
}

/* The address of the current process's open file fd, or NULL: a number, which a global function
 * takes. (The fd array and its slot are read with helpers here; model_files.bpf.c's
 * current_file_typed reads them as plain loads where bpf_rdonly_cast exists.) */
static __always_inline struct file *current_file(int fd)
{
#if defined(VIGIL_TASK_BTF) && !defined(VIGIL_CGROUP_PROGRAM)
    struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
    unsigned int max_fds = fdt->max_fds;
#else
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
#endif
    if (fd < 0 || (unsigned int)fd >= max_fds)
        return NULL;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    return file;
}

/* Writes the absolute path of (dentry, vfsmnt) as the current process sees it, stopping at its
 * root (so a container's process sees container paths), like the kernel's d_path. Components
 * are written leaf first from the end of the scratch buffer, then copied out in one read.
 * Returns the length written to out (no NUL), setting VIGIL_FLAG_PATH_TRUNCATED when the path
 * did not fit or was deeper than VIGIL_PATH_DEPTH. */
struct vigil_path_text {
    char bytes[VIGIL_PATH_LEN];
};

/* A global function, so that the verifier checks its loop once per program rather than at every
 * call site (a file-syscall exit resolves up to four paths): its arguments are scalars and
 * pointers to memory of a known size. Callers use resolve_path(). */
__weak __noinline __u32 vigil_resolve_path(__u64 dentry_address, __u64 vfsmnt_address, struct vigil_path_text *text,
                                           __u32 *flags)
{
    __u32 zero = 0;
    struct path_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
    struct dentry *dentry = (struct dentry *)dentry_address;
    struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_address;
    if (!s || !dentry || !vfsmnt || !text || !flags)
        return 0;
    char *out = text->bytes;

    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct dentry *root_dentry = BPF_CORE_READ(task, fs, root.dentry);
    struct vfsmount *root_mnt = BPF_CORE_READ(task, fs, root.mnt);
    struct mount *mnt = (struct mount *)((char *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
    struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

    __u32 pos = VIGIL_PATH_LEN;
    bool complete = false;
    for (int i = 0; i < VIGIL_PATH_DEPTH; i++) {
        if (dentry == root_dentry && vfsmnt == root_mnt) {
            complete = true;
            break;
        }
        struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
        struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
        if (dentry == parent && dentry != mnt_root && pos == VIGIL_PATH_LEN) {
            /* A file with no place in any tree (memfd_create, an unlinked O_TMPFILE): its name
             * ("memfd:payload") is all there is; written without a leading slash, and flagged. */
            __u32 len = BPF_CORE_READ(dentry, d_name.len);
            const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
            if (len > VIGIL_NAME_MAX)
                len = VIGIL_NAME_MAX;
            pos -= len;
            pos &= VIGIL_PATH_LEN - 1;
            bpf_probe_read_kernel(&s->buf[pos], len & VIGIL_NAME_MAX, name);
            *flags |= VIGIL_FLAG_PATH_DETACHED;
            complete = true;
            break;
        }
        if (dentry == mnt_root || dentry == parent) {
            if (dentry != mnt_root || mnt == mnt_parent) {
                /* The top of a detached tree, or of a mount namespace that is not the process's
                 * root: the process could not open this path. */
                *flags |= VIGIL_FLAG_PATH_DETACHED;
                complete = true;
                break;
            }
            dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
            mnt = mnt_parent;
            mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
            vfsmnt = (struct vfsmount *)((char *)mnt + bpf_core_field_offset(struct mount, mnt));
            continue;
        }
        __u32 len = BPF_CORE_READ(dentry, d_name.len);
        const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
        if (len > VIGIL_NAME_MAX)
            len = VIGIL_NAME_MAX;
        if (len + 1 > pos)
            break; /* does not fit: keep the deepest components, flag the rest as cut */
        pos -= len + 1;
        pos &= VIGIL_PATH_LEN - 1;
        s->buf[pos] = '/';
        bpf_probe_read_kernel(&s->buf[pos + 1], len & VIGIL_NAME_MAX, name);
        dentry = parent;
    }
    if (!complete)
        *flags |= VIGIL_FLAG_PATH_TRUNCATED;

    __u32 size = VIGIL_PATH_LEN - pos;
    if (size == 0) {
        out[0] = '/';
        return 1;
    }
    VIGIL_CLAMP(size, VIGIL_PATH_LEN);
    bpf_probe_read_kernel(out, size, &s->buf[pos & (VIGIL_PATH_LEN - 1)]);
    return size;
}

static __always_inline __u32 resolve_path(struct dentry *dentry, struct vfsmount *vfsmnt, char *out, __u32 *flags)
{
    return vigil_resolve_path((__u64)dentry, (__u64)vfsmnt, (struct vigil_path_text *)out, flags);
}

/* Fills a vigil_path from a syscall's (dirfd, user string). The string is read as passed; when it
 * is relative, the directory it is relative to is resolved now, in the kernel, so a later chdir
 * or close cannot change the answer. */
static __always_inline void read_syscall_path(struct vigil_path *out, int dirfd, __u64 name,
                                              __u32 *flags)
{
    long n = bpf_probe_read_user_str(out->name, sizeof(out->name), (const void *)name);
    out->name_len = n > 0 ? n - 1 : 0;
    if (n >= (long)sizeof(out->name))
        *flags |= VIGIL_FLAG_PATH_TRUNCATED;
    out->dir_len = 0;
    if (n > 1 && out->name[0] == '/')
        return;

    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct dentry *dentry;
    struct vfsmount *mnt;
    if (dirfd == AT_FDCWD) {
        dentry = BPF_CORE_READ(task, fs, pwd.dentry);
        mnt = BPF_CORE_READ(task, fs, pwd.mnt);
    } else {
        struct file *dir = current_file(dirfd);
        if (!dir) {
            *flags |= VIGIL_FLAG_DIR_UNRESOLVED;
            return;
        }
        dentry = BPF_CORE_READ(dir, f_path.dentry);
        mnt = BPF_CORE_READ(dir, f_path.mnt);
    }
    out->dir_len = resolve_path(dentry, mnt, out->dir, flags);
}

/* Model directories by path (struct vigil_model_path_key), filled by the agent with model_dirs. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, struct vigil_model_path_key);
    __type(value, __u8);
} model_dir_paths __weak SEC(".maps");

struct prefix_scan {
    const char *bytes;
    __u32 len;
    bool below;
    bool joined; /* the name follows a directory: a '/' at its start ends a prefix */
    __u64 hash;
    __u64 cgroup_id;
};

static __always_inline bool is_model_dir_path(__u64 cgroup_id, __u64 hash)
{
    struct vigil_model_path_key key = { .cgroup_id = cgroup_id, .hash = hash };
    return bpf_map_lookup_elem(&model_dir_paths, &key) != NULL;
}

/* One byte of a name: at each '/', is what came before it a model directory? */
static long prefix_step(__u64 index, struct prefix_scan *scan)
{
    if (index >= VIGIL_PATH_LEN || index >= scan->len)
        return 1;
    char c = scan->bytes[index];
    if (c == '/' && (index > 0 || scan->joined) && is_model_dir_path(scan->cgroup_id, scan->hash)) {
        scan->below = true;
        return 1;
    }
    scan->hash ^= (__u8)c;
    scan->hash *= VIGIL_FNV_PRIME;
    return 0;
}

/* Whether a name a syscall was given (its directory joined as path_hash joins it) is a model
 * directory or below one, by text: as the process wrote it, without resolving "..", or a
 * symlinked directory on the way — what a rename or unlink leaves to judge once it is done.
 * Global: verified once, not in each file-syscall program. */
__weak __noinline int named_below_model_dir(struct vigil_path *path)
{
    if (!path)
        return 0;
    struct prefix_scan scan = { .hash = VIGIL_FNV_OFFSET, .cgroup_id = current_cgroup_id() };
    if (path->dir_len > 0) {
        scan.bytes = path->dir;
        scan.len = path->dir_len;
        bpf_loop(VIGIL_PATH_LEN, prefix_step, &scan, 0);
        if (scan.below)
            return 1;
        if (path->dir_len > 1) {
            if (is_model_dir_path(scan.cgroup_id, scan.hash))
                return 1;
            scan.hash ^= '/';
            scan.hash *= VIGIL_FNV_PRIME;
        }
    }
    scan.bytes = path->name;
    scan.len = path->name_len;
    scan.joined = path->dir_len > 0;
    bpf_loop(VIGIL_PATH_LEN, prefix_step, &scan, 0);
    return scan.below || is_model_dir_path(scan.cgroup_id, scan.hash);
}

/* Model files (model_files.bpf.c, the only object that calls the bpf_rdonly_cast kfunc: libbpf
 * 1.1's linker fails on a kfunc declared in two objects). Global functions, verified once. */
int kill_model_writer(__u32 profile_id, __u32 kind, __u64 hash, int fd, __u32 *flags);
int report_model_file(__u64 file_address, __u32 profile_id, __u32 open_flags, long ret, __u32 flags);
int report_read_only_open(long ret);
int open_for_writing(long fd);

/* Protect mode for model files: whether the current container's writes below its model
 * directories are enforced. */
static __always_inline bool kills_model_writes(void)
{
    struct vigil_cgroup_state *state = watched_state();
    return state && (state->flags & VIGIL_CGROUP_PROTECT_MODELS) && (state->flags & VIGIL_CGROUP_MODEL);
}

/* Protect mode for model files, after a file syscall that succeeded and that the profile does
 * not have as known behaviour. An open for writing (open_flags set; truncate(2) has none): ret
 * is its descriptor, whose file says where it really is (symlinks, bind mounts and ".."
 * resolved). A rename (into or out of a model directory), unlink or truncate(2): judged by the
 * names it was given; done by now, the process goes before it does more. Global: verified once. */
__weak __noinline int protect_model_files(struct vigil_file_event *event, __u32 profile_id, __u64 hash)
{
    if (!event || event->ret < 0 || !kills_model_writes())
        return 0;
    __u32 op = event->op;
    __u32 kind = VIGIL_KIND_FILE * 16 + op;
    if (event->open_flags)
        return kill_model_writer(profile_id, kind, hash, (int)event->ret, &event->hdr.flags);
    if (event->ret != 0 || protect_rule_allows(profile_id, kind, hash))
        return 0;
    if (!named_below_model_dir(op == VIGIL_FILE_RENAME ? &event->target : &event->path)
        && !(op == VIGIL_FILE_RENAME && named_below_model_dir(&event->path)))
        return 0;
    bpf_send_signal(SIGKILL);
    event->hdr.flags |= VIGIL_FLAG_KILLED;
    return 1;
}

/* File syscalls: enter remembers the arguments, exit reports them with the outcome. */
static __always_inline int remember_file_syscall(__u32 op, __u32 open_flags, int dirfd, __u64 name,
                                                 int target_dirfd, __u64 target_name)
{
    struct vigil_cgroup_state *state = watched_state();
    if (!state || runtime_phase())
        return 0; /* the runtime setting the container up is not the workload */
    struct pending_syscall args = {
        .kind = VIGIL_KIND_FILE,
        .profile_id = state->profile_id,
        .op = op,
        .open_flags = open_flags,
        .dirfd = dirfd,
        .name = name,
        .target_dirfd = target_dirfd,
        .target_name = target_name,
    };
    save_pending(&args);
    return 0;
}

/* Model files whose content the agent verified (struct vigil_known_model); least recently used
 * go first, which only means their next open is reported and verified again. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, struct vigil_known_model);
    __type(value, __u8);
} known_models __weak SEC(".maps");

/* A file syscall the profile has: dropped, and counted as suppressed. */
static __always_inline int drop_known_file(void)
{
    count_drop(VIGIL_SUPPRESSED_KNOWN, VIGIL_KIND_FILE);
    return 0;
}

/* A file event whose paths are read and hashed, and which no known behaviour drops: the header
 * (a dozen reads of the task, so only for a record that is sent), protect mode, the ring. */
static __always_inline int send_file_syscall(struct vigil_file_event *event, __u32 path_flags, __u32 op,
                                             __u32 open_flags, long ret, __u32 profile_id, __u64 hash)
{
    fill_header(&event->hdr, VIGIL_KIND_FILE);
    event->hdr.flags = path_flags;
    event->op = op;
    event->open_flags = open_flags;
    event->ret = ret;
    event->inode = 0;
    event->device = 0;
    event->_reserved = 0;
    event->size = 0;
    event->change_ns = 0;
    if (profile_id)
        protect_model_files(event, profile_id, hash);
    send_file_event(event);
    return 0;
}

/* A file syscall remembered at enter, with its outcome. */
static __always_inline int report_file_event(struct pending_syscall args, long ret)
{
    struct vigil_file_event *event = event_buffer();
    if (!event)
        return 0;
    /* The paths first: most of a monitored workload's file syscalls are known and go no further. */
    __u32 path_flags = 0;
    read_syscall_path(&event->path, args.dirfd, args.name, &path_flags);
    if (args.op == VIGIL_FILE_RENAME) {
        read_syscall_path(&event->target, args.target_dirfd, args.target_name, &path_flags);
    } else {
        event->target.dir_len = 0;
        event->target.name_len = 0;
    }
    __u64 hash = 0;
    if (args.profile_id) {
        const struct vigil_path *named = args.op == VIGIL_FILE_RENAME ? &event->target : &event->path;
        hash = path_hash(named);
        if (is_known(args.profile_id, VIGIL_KIND_FILE * 16 + args.op, hash))
            return drop_known_file();
    }
    return send_file_syscall(event, path_flags, args.op, args.open_flags, ret, args.profile_id, hash);
}

static __always_inline int report_file_syscall(long ret)
{
    struct pending_syscall args;
    if (!take_pending(&args) || args.kind != VIGIL_KIND_FILE)
        return 0;
    return report_file_event(args, ret);
}

/* open, openat, openat2 in the builds before btfCasts (file_open.bpf.c decides them at exit alone
 * there): a write open was remembered at enter; a read-only one was not. */
static __always_inline int report_open(long ret)
{
    struct pending_syscall args;
    if (!take_pending(&args))
        return report_read_only_open(ret);
    return args.kind == VIGIL_KIND_FILE ? report_file_event(args, ret) : 0;
}

/* Network syscalls: enter copies the destination (IPv4/IPv6 only) and the socket's protocol,
 * exit reports them with the outcome. */
static __always_inline int remember_net_syscall(__u32 op, int fd, __u64 uaddr, bool datagram_only)
{
    if (!uaddr)
        return 0;
    struct vigil_cgroup_state *state = watched_state();
    if (!state || runtime_phase())
        return 0;
    struct pending_syscall args = { .kind = VIGIL_KIND_NET, .op = op, .profile_id = state->profile_id };
    __u16 family = 0;
    if (bpf_probe_read_user(&family, sizeof(family), (const void *)uaddr) != 0)
        return 0;
    if (family == VIGIL_AF_INET) {
        struct sockaddr_in sin = {};
        if (bpf_probe_read_user(&sin, sizeof(sin), (const void *)uaddr) != 0)
            return 0;
        args.port = __builtin_bswap16(sin.sin_port);
        __builtin_memcpy(args.addr, &sin.sin_addr, 4);
    } else if (family == VIGIL_AF_INET6) {
        struct sockaddr_in6 sin6 = {};
        if (bpf_probe_read_user(&sin6, sizeof(sin6), (const void *)uaddr) != 0)
            return 0;
        args.port = __builtin_bswap16(sin6.sin6_port);
        __builtin_memcpy(args.addr, sin6.sin6_addr, 16);
    } else {
        return 0; /* unix sockets, netlink, ...: not egress */
    }
    args.family = family;

    struct file *file = current_file(fd);
    struct socket *sock = file ? BPF_CORE_READ(file, private_data) : NULL;
    struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
    if (sk) {
        args.protocol = BPF_CORE_READ(sk, sk_protocol);
        args.sock_type = BPF_CORE_READ(sk, sk_type);
    }
    if (datagram_only && args.sock_type != SOCK_DGRAM)
        return 0; /* a destination on a connected stream is ignored by the kernel */
    if (args.profile_id) {
        struct vigil_known_destination key = {
            .profile_id = args.profile_id,
            .family = args.family,
            .protocol = args.protocol,
            .port = args.port,
        };
        __builtin_memcpy(key.addr, args.addr, sizeof(key.addr));
        if (bpf_map_lookup_elem(&known_destinations, &key)) {
            count_drop(VIGIL_SUPPRESSED_KNOWN, VIGIL_KIND_NET);
            return 0;
        }
    }
    save_pending(&args);
    return 0;
}

static __always_inline int report_net_syscall(long ret)
{
    struct pending_syscall args;
    if (!take_pending(&args) || args.kind != VIGIL_KIND_NET)
        return 0;
    if (ret == -EPERM) {
        /* refused by the egress guard, which reported it with the action taken */
        __u64 pid_tgid = bpf_get_current_pid_tgid();
        __u64 *mark = bpf_map_lookup_elem(&egress_refused, &pid_tgid);
        if (mark && *mark == egress_mark(args.family, args.port, args.addr)) {
            bpf_map_delete_elem(&egress_refused, &pid_tgid);
            return 0;
        }
    }
    __u64 wakeup;
    struct vigil_net_event *event = reserve_event(sizeof(*event), VIGIL_KIND_NET, &wakeup);
    if (!event)
        return 0;
    fill_header(&event->hdr, VIGIL_KIND_NET);
    event->op = args.op;
    event->family = args.family;
    event->port = args.port;
    event->protocol = args.protocol;
    event->sock_type = args.sock_type;
    event->_pad = 0;
    event->ret = ret;
    __builtin_memcpy(event->addr, args.addr, sizeof(event->addr));
    bpf_ringbuf_submit(event, wakeup);
    return 0;
}

#endif /* VIGIL_BPF_H */
