/* SPDX-License-Identifier: GPL-2.0
 *
 * The few kernel types Vigil's programs read, declared with preserve_access_index so that libbpf
 * relocates every field access against the running kernel's BTF (CO-RE). Only the fields used
 * are listed; their offsets here do not matter, their names and types do. Keeping this subset
 * instead of a generated vmlinux.h makes the build independent of the build machine's kernel.
 */
#ifndef VIGIL_KERNEL_H
#define VIGIL_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

enum {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_PERCPU_ARRAY = 6,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_LPM_TRIE = 11,
    BPF_MAP_TYPE_RINGBUF = 27,
    BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum { BPF_LOCAL_STORAGE_GET_F_CREATE = 1 };
enum { BPF_ANY = 0, BPF_NOEXIST = 1 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 }; /* bpf_ringbuf_output/submit flags */
enum { BPF_RB_AVAIL_DATA = 0, BPF_RB_RING_SIZE = 1, BPF_RB_CONS_POS = 2, BPF_RB_PROD_POS = 3 }; /* bpf_ringbuf_query */
#define BPF_F_NO_PREALLOC (1U << 0)
#define EPERM 1
#define SIGKILL 9

/* The context of cgroup/connect4|6 and cgroup/sendmsg4|6 programs (UAPI: a fixed layout, the
 * verifier rewrites its loads; not relocated). Addresses and port in network byte order. */
struct bpf_sock_addr {
    __u32 user_family;
    __u32 user_ip4;
    __u32 user_ip6[4];
    __u32 user_port;
    __u32 family;
    __u32 type;
    __u32 protocol;
    __u32 msg_src_ip4;
    __u32 msg_src_ip6[4];
    __u64 sk;
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct qstr {
    union {
        struct {
            __u32 hash;
            __u32 len;
        };
        __u64 hash_len;
    };
    const unsigned char *name;
};

struct super_block {
    __u32 s_dev; /* dev_t */
};

struct inode;

struct dentry {
    struct dentry *d_parent;
    struct qstr d_name;
    struct inode *d_inode;
    struct super_block *d_sb;
};

struct vfsmount {
    struct dentry *mnt_root;
    struct super_block *mnt_sb;
};

struct mount {
    struct mount *mnt_parent;
    struct dentry *mnt_mountpoint;
    struct vfsmount mnt;
};

struct path {
    struct vfsmount *mnt;
    struct dentry *dentry;
};

struct inode {
    unsigned int __i_nlink;
    unsigned long i_ino;
    __s64 i_size;
    __s64 i_ctime_sec;  /* 6.11 and later; read only when the running kernel has it */
    __u32 i_ctime_nsec; /* since 6.13 bit 31 is I_CTIME_QUERIED, not time */
    __u32 i_generation;
};

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2

struct file {
    struct path f_path;
    struct inode *f_inode;
    unsigned int f_mode;
    unsigned int f_flags;
    void *private_data;
};

struct fs_struct {
    struct path root;
    struct path pwd;
};

struct fdtable {
    unsigned int max_fds;
    struct file **fd;
};

struct files_struct {
    struct fdtable *fdt;
};

/* Only for its first field, a struct file pointer: an fd array's slot is read as one (see
 * current_file_typed in model_files.bpf.c), so that the verifier types what it holds. */
struct kiocb {
    struct file *ki_filp;
};

struct mm_struct {
    unsigned long arg_start;
    unsigned long arg_end;
    struct file *exe_file;
};

struct thread_info {
    unsigned long flags; /* arm64: TIF_32BIT */
    __u32 status;        /* x86: TS_COMPAT */
};

struct cgroup;
struct css_set {
    struct cgroup *dfl_cgrp; /* the task's cgroup v2 */
};

struct task_struct {
    struct thread_info thread_info;
    struct css_set *cgroups;
    int pid;
    int tgid;
    struct task_struct *real_parent;
    struct task_struct *group_leader;
    struct mm_struct *mm;
    struct fs_struct *fs;
    struct files_struct *files;
    __u64 start_boottime;
    int exit_code;
};

struct sock_common {
    unsigned short skc_family;
};

struct sock {
    struct sock_common __sk_common;
    __u16 sk_protocol;
    __u16 sk_type;
};

struct socket {
    short type;
    struct sock *sk;
};

struct kernfs_node {
    const char *name;
    __u64 id;
};

struct cgroup_root {
    int hierarchy_id;
};

struct cgroup_subsys_state {
    struct cgroup *cgroup;
    struct cgroup_subsys_state *parent;
};

struct cgroup {
    struct cgroup_subsys_state self;
    struct kernfs_node *kn;
    struct cgroup_root *root;
};

/* Tracepoint contexts (their layout is what /sys/kernel/tracing/events/.../format shows). */
struct trace_entry {
    unsigned short type;
    unsigned char flags;
    unsigned char preempt_count;
    int pid;
};

struct trace_event_raw_sys_enter {
    struct trace_entry ent;
    long id;
    unsigned long args[6];
};

struct trace_event_raw_sys_exit {
    struct trace_entry ent;
    long id;
    long ret;
};

struct trace_event_raw_sched_process_template {
    struct trace_entry ent;
    char comm[16];
    int pid;
    int prio;
};

#pragma clang attribute pop

/* Userspace ABI constants (stable; from the uapi headers). */
#define AT_FDCWD -100
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_ACCMODE 03
#define PR_SET_SECCOMP 22
#define SECCOMP_MODE_FILTER 2
#define SECCOMP_SET_MODE_FILTER 1

struct sockaddr_in {
    __u16 sin_family;
    __be16 sin_port;
    __be32 sin_addr;
    __u8 zero[8];
};

struct sockaddr_in6 {
    __u16 sin6_family;
    __be16 sin6_port;
    __be32 sin6_flowinfo;
    __u8 sin6_addr[16];
    __u32 sin6_scope_id;
};

struct user_msghdr {
    void *msg_name;
    int msg_namelen;
};

struct open_how {
    __u64 flags;
    __u64 mode;
    __u64 resolve;
};

/* What differs per architecture, in one table: the registers a syscall's arguments arrive in
 * (read with bpf_tracing.h's PT_REGS_PARMn_CORE_SYSCALL, which relocates against the struct
 * below), the native syscall numbers the programs test, and how a 32-bit (compat) syscall is
 * told apart. bpf/build.sh sets __TARGET_ARCH_x86 or __TARGET_ARCH_arm64 (VIGIL_BPF_ARCH). */
#if defined(__TARGET_ARCH_x86)
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct pt_regs {
    unsigned long di;
    unsigned long si;
    unsigned long dx;
    unsigned long r10;
    unsigned long r8;
    unsigned long cx;
    unsigned long sp;
    unsigned long bp;
    unsigned long ax;
    unsigned long ip;
};
#pragma clang attribute pop
#define VIGIL_NR_prctl 157
#define VIGIL_NR_seccomp 317
#define VIGIL_X32_SYSCALL_BIT 0x40000000 /* x32 calls: x86_64 numbers with this bit */
#define VIGIL_TS_COMPAT 0x0002           /* thread_info.status: an i386 syscall is active */
#elif defined(__TARGET_ARCH_arm64)
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct user_pt_regs {
    __u64 regs[31];
    __u64 sp;
    __u64 pc;
    __u64 pstate;
};
#pragma clang attribute pop
struct pt_regs;
#define VIGIL_NR_prctl 167
#define VIGIL_NR_seccomp 277
#define VIGIL_TIF_32BIT 22 /* thread_info.flags: the task runs AArch32 code */
#else
#error "build Vigil's BPF programs for x86 or arm64: define __TARGET_ARCH_x86 or __TARGET_ARCH_arm64 (bpf/build.sh does)"
#endif
/* bpf_tracing.h names x86 registers as the kernel does (di, si) when it sees a vmlinux.h; this
 * header is Vigil's subset of one. */
#define __VMLINUX_H__

#endif /* VIGIL_KERNEL_H */
