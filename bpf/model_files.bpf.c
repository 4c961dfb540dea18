// SPDX-License-Identifier: GPL-2.0
/* Model files: whether a file a container opened is below one of its model directories (a walk of
 * its ancestors, remembered per CPU for files that are not), the report of a model file's open,
 * and protect mode's kill of a model file's writer. The only object that reads kernel objects
 * through bpf_rdonly_cast (VIGIL_BTF_CASTS): libbpf 1.1's linker refuses a kfunc declared in two. */
#include "vigil.bpf.h"

/* Whether (dentry, vfsmnt) is below one of the current container's model directories: its
 * ancestors, crossing mounts up to the top of the mount tree, looked up in model_dirs. Not up to
 * the process's root: the answer must not depend on who asks (outside_models remembers it for
 * the container, and a process chrooted below a model directory still reads model files). */
static __noinline int under_model_dir(struct dentry *dentry, struct vfsmount *vfsmnt, __u32 device)
{
    if (!dentry || !vfsmnt)
        return 0;
    dentry = KERNEL_OBJECT(struct dentry, dentry);
    struct mount *mnt = KERNEL_OBJECT(struct mount, (char *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
    vfsmnt = (struct vfsmount *)((char *)mnt + bpf_core_field_offset(struct mount, mnt)); /* one type throughout */
    struct vigil_model_dir_key key = { .cgroup_id = current_cgroup_id(), .device = device };
    for (int i = 0; i < VIGIL_MODEL_DEPTH; i++) {
        key.inode = KERNEL_READ(dentry, d_inode, i_ino);
        if (bpf_map_lookup_elem(&model_dirs, &key))
            return 1;
        struct dentry *parent = KERNEL_READ(dentry, d_parent);
        if (dentry == KERNEL_READ(vfsmnt, mnt_root)) {
            struct mount *up = KERNEL_READ(mnt, mnt_parent);
            if (up == mnt)
                return 0;
            dentry = KERNEL_READ(mnt, mnt_mountpoint);
            mnt = up;
            vfsmnt = (struct vfsmount *)((char *)mnt + bpf_core_field_offset(struct mount, mnt));
            key.device = KERNEL_READ(vfsmnt, mnt_sb, s_dev);
            continue;
        }
        if (dentry == parent)
            return 0;
        dentry = parent;
    }
    return 0;
}

/* Files a container opened that are not below any of its model directories (on another
 * filesystem, or outside them on theirs), remembered per CPU so that opening one again costs an
 * array slot, not a hash lookup and the ancestor walk.
 * An entry holds only while nothing could have changed the answer: the same dentry, mount and
 * inode (number and generation: a freed dentry or inode reused for another file does not match),
 * the same container, the same model directories, and no rename, unlink or mount anywhere since
 * (tree_changes). Only "not a model file" is remembered: a model file's open is always reported. */
#define VIGIL_OUTSIDE_MODELS_SLOTS 256

struct outside_models_entry {
    __u64 dentry;
    __u64 mnt;
    __u64 inode;
    __u64 inode_number;
    __u64 cgroup_id;
    __u64 tree_changes;
    __u32 generation;
    __u32 model_generation;
    __u64 check; /* of the fields above: a slot half-written by a preempted program never matches */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, VIGIL_OUTSIDE_MODELS_SLOTS);
    __type(key, __u32);
    __type(value, struct outside_models_entry);
} outside_models __weak SEC(".maps");

/* The open file being judged, described (report_read_only_open, then report_model_file): per CPU,
 * not on the stack, which the chain open exit -> report_read_only_open -> report_model_file ->
 * vigil_resolve_path shares within the verifier's 512 bytes (bpf/check-stack). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct outside_models_entry);
} judged_file __weak SEC(".maps");

static __always_inline struct outside_models_entry *judged_file_description(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&judged_file, &zero);
}

static __always_inline __u64 outside_models_check(const struct outside_models_entry *e)
{
    return (e->dentry ^ (e->mnt << 1) ^ (e->inode << 2) ^ e->inode_number ^ (e->cgroup_id << 3)
            ^ (e->tree_changes << 4) ^ ((__u64)e->generation << 32) ^ e->model_generation) + VIGIL_GOLDEN_64;
}

/* By inode number, a number in every build (the dentry's address may be a typed pointer). */
static __always_inline __u32 outside_models_slot(__u64 inode_number)
{
    return (__u32)(inode_number ^ (inode_number >> 8)) & (VIGIL_OUTSIDE_MODELS_SLOTS - 1);
}

static __always_inline bool outside_models_remembered(const struct outside_models_entry *wanted)
{
    __u32 slot = outside_models_slot(wanted->inode_number);
    struct outside_models_entry *e = bpf_map_lookup_elem(&outside_models, &slot);
    /* The check first, on what the slot holds: compared with the wanted entry's typed pointers
     * first, the compiler may hash those instead (equal values), which the verifier refuses. */
    if (!e || e->check != outside_models_check(e))
        return false;
    return e->dentry == wanted->dentry && e->mnt == wanted->mnt && e->inode == wanted->inode
        && e->inode_number == wanted->inode_number && e->generation == wanted->generation
        && e->cgroup_id == wanted->cgroup_id && e->tree_changes == wanted->tree_changes
        && e->model_generation == wanted->model_generation;
}

/* Written in place, the check last, computed from what the slot now holds (numbers, in every build). */
static __always_inline void remember_outside_models(const struct outside_models_entry *entry)
{
    __u32 slot = outside_models_slot(entry->inode_number);
    struct outside_models_entry *e = bpf_map_lookup_elem(&outside_models, &slot);
    if (!e)
        return;
    __builtin_memcpy(e, entry, sizeof(*e));
    asm volatile("" ::: "memory"); /* the check reads the slot back: numbers, not the pointers just stored */
    e->check = outside_models_check(e);
}

/* The current process's open file fd, as KERNEL_READ reads it. With VIGIL_BTF_CASTS, a plain load
 * from the fd table down: the array's address is a number to the verifier (an array of pointers
 * is not a type it follows), and the slot, cast to a struct kiocb whose first field is a struct
 * file pointer, gives the file as a typed pointer (current_file makes two helper reads instead).
 * A typed pointer is no address for a global function: report_model_file gets current_file's. */
static __always_inline struct file *current_file_typed(int fd)
{
#ifdef VIGIL_BTF_CASTS
    struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
    if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
        return NULL;
    __u64 slot = (__u64)fdt->fd + (__u64)(unsigned int)fd * sizeof(struct file *);
    return KERNEL_OBJECT(struct kiocb, slot)->ki_filp;
#else
    return current_file(fd);
#endif
}

/* The process opened a file for writing (descriptor fd): below a model directory, and not a write
 * its profile has, it is killed now — after the open (a create or O_TRUNC is done), before its
 * first write. Global: verified once. */
__noinline int kill_model_writer(__u32 profile_id, __u32 kind, __u64 hash, int fd, __u32 *flags)
{
    struct file *file = current_file_typed(fd);
    if (!file || !flags)
        return 0;
    struct dentry *dentry = KERNEL_READ(file, f_path.dentry);
    if (!under_model_dir(dentry, KERNEL_READ(file, f_path.mnt), KERNEL_READ(dentry, d_sb, s_dev))
        || protect_rule_allows(profile_id, kind, hash))
        return 0;
    bpf_send_signal(SIGKILL);
    *flags |= VIGIL_FLAG_KILLED;
    return 1;
}

/* Whether descriptor fd of the current process is open for writing: what an open made, whatever
 * its flags in the process's memory (openat2's) say by the time they are read. Global: verified
 * once. */
__noinline int open_for_writing(long fd)
{
    struct file *file = current_file_typed((int)fd);
    return file && (KERNEL_READ(file, f_mode) & FMODE_WRITE) != 0;
}

/* The inode's ctime in ns, or 0 when the kernel's inode has no i_ctime_sec (before 6.11): then no
 * model file is ever known and every open is reported. */
static __always_inline __u64 change_time(struct inode *inode)
{
    if (!bpf_core_field_exists(inode->i_ctime_sec))
        return 0;
    __u64 seconds = BPF_CORE_READ(inode, i_ctime_sec);
    __u32 nanoseconds = BPF_CORE_READ(inode, i_ctime_nsec) & 0x3fffffff;
    return seconds * 1000000000ULL + nanoseconds;
}

/* What outside_models remembers of an open file; read before any walk, so that a change during
 * the walk leaves the entry already out of date. */
static __always_inline void describe_open_file(struct file *file, struct outside_models_entry *seen)
{
    struct dentry *dentry = KERNEL_READ(file, f_path.dentry);
    struct inode *inode = KERNEL_READ(dentry, d_inode);
    seen->dentry = (__u64)dentry;
    seen->mnt = (__u64)KERNEL_READ(file, f_path.mnt);
    seen->inode = (__u64)inode;
    seen->inode_number = KERNEL_READ(inode, i_ino);
    seen->cgroup_id = current_cgroup_id();
    seen->tree_changes = tree_change_count();
    seen->generation = KERNEL_READ(inode, i_generation);
    seen->model_generation = model_generation();
    seen->check = 0;
}

/* A model file open in the current process (opened now, or held at exec): reported when it is
 * below one of the container's model directories, with its own path, identity and the process's
 * executable — unless both the file's content (known_models) and its reader (known_behaviour) are
 * in the workload's stable profile. */
__noinline int report_model_file(__u64 file_address, __u32 profile_id, __u32 open_flags, long ret, __u32 flags)
{
    if (!file_address)
        return 0;
    struct file *file = KERNEL_OBJECT(struct file, file_address);
    struct dentry *dentry = KERNEL_READ(file, f_path.dentry);
    struct vfsmount *mnt = KERNEL_READ(file, f_path.mnt);
    struct inode *inode = KERNEL_READ(dentry, d_inode);
    struct outside_models_entry *seen = judged_file_description();
    if (!seen)
        return 0;
    describe_open_file(file, seen);
    /* A file opened before (a read loop, a server's libraries) was judged then: one array slot.
     * Else, one lookup: is the file on a filesystem that holds a model directory, or is mounted
     * below one? Most reads of a server (its libraries, its config) are not, and stop there. */
    if (outside_models_remembered(seen))
        return 0;
    struct vigil_model_dir_key on_device = {
        .cgroup_id = seen->cgroup_id,
        .device = KERNEL_READ(dentry, d_sb, s_dev),
    };
    if (!bpf_map_lookup_elem(&model_dirs, &on_device) || !under_model_dir(dentry, mnt, on_device.device)) {
        remember_outside_models(seen);
        return 0;
    }
    struct vigil_file_event *event = event_buffer();
    if (!event)
        return 0;
    event->inode = seen->inode_number;
    event->device = on_device.device;
    event->_reserved = 0;
    event->size = BPF_CORE_READ(inode, i_size);
    event->change_ns = change_time(inode);
    bool content_known = false;
    if (profile_id) {
        struct vigil_known_model key = {
            .profile_id = profile_id,
            .device = event->device,
            .inode = event->inode,
            .size = event->size,
            .change_ns = event->change_ns,
        };
        content_known = key.change_ns && bpf_map_lookup_elem(&known_models, &key);
    }
    /* Who opened it: the process's executable, as the exec record would name it (its exec may
     * have been known behaviour, dropped in the kernel, so the agent cannot look it up). */
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    event->target.dir_len = 0;
    event->target.name_len = 0;
    struct file *exe = BPF_CORE_READ(task, mm, exe_file);
    if (exe) {
        __u32 exe_flags = 0;
        event->target.name_len = resolve_path(BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt),
                                              event->target.name, &exe_flags);
    }
    if (content_known && is_known(profile_id, VIGIL_KIND_FILE * 16 + VIGIL_FILE_READ_MODEL,
                                  text_hash(event->target.name, event->target.name_len, VIGIL_PATH_LEN))) {
        count_drop(VIGIL_SUPPRESSED_KNOWN, VIGIL_KIND_FILE);
        return 0;
    }
    fill_header(&event->hdr, VIGIL_KIND_FILE);
    event->hdr.flags |= flags;
    event->op = VIGIL_FILE_READ_MODEL;
    event->open_flags = open_flags;
    event->ret = ret;
    event->path.dir_len = 0;
    struct file *untyped = (struct file *)file_address; /* resolve_path takes addresses */
    event->path.name_len = resolve_path(BPF_CORE_READ(untyped, f_path.dentry), BPF_CORE_READ(untyped, f_path.mnt),
                                        event->path.name, &event->hdr.flags);
    send_file_event(event);
    return 0;
}

/* A read-only open that succeeded: in a container with model directories, the file it opened is
 * checked (report_model_file); anywhere else it costs the array load of model_switch. Nothing is
 * remembered at enter for reads (and in the btfCasts build there is no open enter at all): the
 * open file at exit says all (its mode, its flags), so a read pays no in-flight table. */
__noinline int report_read_only_open(long ret)
{
    if (ret < 0 || !model_reads_watched())
        return 0;
    struct vigil_cgroup_state *state = watched_state();
    if (!state || !(state->flags & VIGIL_CGROUP_MODEL) || runtime_phase())
        return 0;
    struct file *file = current_file_typed((int)ret);
    if (!file || (KERNEL_READ(file, f_mode) & (FMODE_READ | FMODE_WRITE)) != FMODE_READ)
        return 0;
    /* Most reads are of files judged before: answered here, from plain loads, without the file's
     * address, which only report_model_file needs (a global function takes no typed pointer). */
    struct outside_models_entry *seen = judged_file_description();
    if (!seen)
        return 0;
    describe_open_file(file, seen);
    if (outside_models_remembered(seen))
        return 0;
    return report_model_file((__u64)current_file((int)ret), state->profile_id, KERNEL_READ(file, f_flags), ret, 0);
}
