/* SPDX-License-Identifier: Apache-2.0
 *
 * The event ABI shared by the kernel programs (bpf/<hook>.bpf.c) and the agent (Swift, through the
 * CVigilABI module). Every record the kernel writes into the ring buffer starts with a
 * `struct vigil_header`; `kind` says which struct follows. Change a layout here and both sides
 * change with it; bump VIGIL_ABI_VERSION when a field moves.
 */
#ifndef VIGIL_ABI_H
#define VIGIL_ABI_H

#ifdef __bpf__
/* vigil_kernel.h (included first by the BPF side) provides the fixed-width types. */
#else
#include <linux/types.h>
#endif

#define VIGIL_ABI_VERSION 3

#define VIGIL_COMM_LEN 16
/* Paths and arguments are bounded so that the verifier can prove every copy stays in bounds.
 * Longer values are cut and flagged (VIGIL_FLAG_*_TRUNCATED), never silently shortened. */
#define VIGIL_PATH_LEN 512
#define VIGIL_ARGS_LEN 512

enum vigil_kind {
    VIGIL_KIND_EXEC = 1,
    VIGIL_KIND_FILE = 2,
    VIGIL_KIND_NET = 3,
    VIGIL_KIND_EXIT = 4,
    VIGIL_KIND_CGROUP = 5, /* a watched cgroup was made or removed (bookkeeping, never printed) */
    VIGIL_KIND_COUNT = 6,  /* one past the last kind; sizes the drop counters */
};

/* Where an event can be lost in the kernel. Each (stage, kind) pair has its own counter in the
 * `drops` map at index stage * VIGIL_KIND_COUNT + kind. */
enum vigil_drop_stage {
    VIGIL_DROP_RINGBUF_FULL = 0, /* the ring buffer had no room: userspace is behind */
    VIGIL_DROP_PENDING_FULL = 1, /* no room to remember a syscall between enter and exit */
    VIGIL_SUPPRESSED_KNOWN = 2,  /* not a loss: behaviour already in the workload's profile */
    VIGIL_DROP_STAGE_COUNT = 3,
};

#define VIGIL_DROP_SLOTS (VIGIL_DROP_STAGE_COUNT * VIGIL_KIND_COUNT)

enum vigil_file_op {
    VIGIL_FILE_OPEN_WRITE = 1, /* open for writing without O_CREAT or O_TRUNC */
    VIGIL_FILE_CREATE = 2,     /* creat(), or open with O_CREAT */
    VIGIL_FILE_TRUNCATE = 3,   /* open with O_TRUNC (no O_CREAT), or truncate() */
    VIGIL_FILE_RENAME = 4,
    VIGIL_FILE_UNLINK = 5,
    VIGIL_FILE_READ_MODEL = 6, /* opened for reading, under one of the container's model directories */
};

enum vigil_net_op {
    VIGIL_NET_CONNECT = 1,
    VIGIL_NET_SENDTO = 2,
    VIGIL_NET_SENDMSG = 3,
};

/* Flags in vigil_header.flags */
#define VIGIL_FLAG_ARGS_TRUNCATED (1u << 0)
#define VIGIL_FLAG_PATH_TRUNCATED (1u << 1) /* a kernel-resolved path hit VIGIL_PATH_LEN or the depth limit */
#define VIGIL_FLAG_DIR_UNRESOLVED (1u << 2) /* dirfd did not name an open directory */
#define VIGIL_FLAG_ENTRYPOINT (1u << 3)     /* exec: the container runtime's init became the workload */
#define VIGIL_FLAG_EXE_FILELESS (1u << 4)   /* exec: the binary has no path (memfd_create, O_TMPFILE, another mount
                                             * namespace): exe holds its name only, e.g. "memfd:payload" */
#define VIGIL_FLAG_EXE_DELETED (1u << 5)    /* exec: the binary's file has no links left (deleted, or fileless) */
#define VIGIL_FLAG_PARENT_FILELESS (1u << 6) /* exec: the same for the parent's binary */
#define VIGIL_FLAG_PATH_DETACHED (1u << 7)  /* a kernel-resolved path is not reachable from the process's root */
#define VIGIL_FLAG_INHERITED_FD (1u << 8)   /* READ_MODEL: not opened but held at exec, open since before it
                                             * (ret is the descriptor); target is the new executable */
#define VIGIL_FLAG_DENIED (1u << 9)         /* net: protect mode refused it (EPERM); nothing left the socket */
#define VIGIL_FLAG_KILLED (1u << 10)        /* exec: protect mode killed the process (SIGKILL) before the
                                             * new program ran an instruction */

struct vigil_header {
    __u32 kind;           /* enum vigil_kind */
    __u32 flags;          /* VIGIL_FLAG_* */
    __u64 boot_ns;        /* bpf_ktime_get_boot_ns() when the event happened */
    __u64 cgroup_id;      /* cgroup v2 id (the inode number of its directory) */
    __u64 start_boot_ns;  /* when the thread group leader started; with tgid, identifies the process */
    __u32 tgid;           /* process id */
    __u32 tid;            /* thread id */
    __u32 ppid;           /* parent's process id */
    __u32 uid;
    __u32 gid;
    __u32 _pad;
    char comm[VIGIL_COMM_LEN];
};

/* Records with text (exec, file) are packed: the fixed fields, then each string exactly as long as
 * its length field says (at most VIGIL_PATH_LEN; no NUL after it), back to back in the order the
 * lengths are listed. A record is as long as what it says: a file write is ~200 bytes, not the
 * 2 KiB its longest paths would take, so a small ring buffer holds many. The agent refuses a
 * record whose lengths do not fit in it. */

struct vigil_exec_record {
    struct vigil_header hdr;
    __u32 exe_len;        /* mm->exe_file walked to the process's root */
    __u32 parent_exe_len; /* the same for the parent process (0 for a kernel thread) */
    __u32 args_len;       /* argv, NUL-separated */
    __u32 _pad;
    /* then: exe, parent_exe, args */
};

/* A path as the syscall named it: `name` is the string the process passed; when it is relative,
 * `dir` is the directory it is relative to (the dirfd's, or the cwd), resolved by the kernel at the
 * time of the syscall. The agent joins the two. */
struct vigil_file_record {
    struct vigil_header hdr;
    __u32 op;       /* enum vigil_file_op */
    __u32 open_flags;
    __s64 ret;      /* the syscall's return: >= 0 success, < 0 is -errno */
    /* VIGIL_FILE_READ_MODEL only: the opened file's identity: inode and device (the kernel's dev_t,
     * MAJOR << 20 | MINOR), so the agent can check that what it hashes is what was opened, and its
     * size and ctime, which no process can set back (a write changes them), so a content the
     * agent verified is known by them (known_models). Its path is in `name`, resolved from
     * the open file (symlinks followed, as the process's root sees it). */
    __u64 inode;
    __u32 device;
    __u32 _reserved;
    __u64 size;
    __u64 change_ns; /* ctime, in ns since the epoch */
    __u32 dir_len;
    __u32 name_len;
    __u32 target_dir_len;  /* rename: the new name's; 0 otherwise */
    __u32 target_name_len; /* rename: the new name; READ_MODEL: the opening process's executable */
    /* then: dir, name, target dir, target name */
};

struct vigil_net_event {
    struct vigil_header hdr;
    __u32 op;        /* enum vigil_net_op */
    __u16 family;    /* VIGIL_AF_INET or VIGIL_AF_INET6 */
    __u16 port;      /* host byte order */
    __u16 protocol;  /* IPPROTO_TCP (6), IPPROTO_UDP (17), ... */
    __u16 sock_type; /* SOCK_STREAM (1), SOCK_DGRAM (2), ... */
    __u32 _pad;
    __s64 ret;
    __u8 addr[16];   /* IPv4 in the first 4 bytes, network order */
};

struct vigil_exit_event {
    struct vigil_header hdr;
    __s32 exit_code;
    __u32 _pad;
};

#define VIGIL_CGROUP_NAME_LEN 256

enum vigil_cgroup_op {
    VIGIL_CGROUP_MKDIR = 1, /* below a watched cgroup: now watched too */
    VIGIL_CGROUP_RMDIR = 2, /* a watched cgroup removed: no longer watched; its last syscalls follow */
    VIGIL_CGROUP_SERVING = 3, /* a process of this cgroup accepted its first connection: the container
                               * now serves (hdr is the accepting process's; no name; the record
                               * ends before the bitmaps) */
};

/* Syscalls seen, per cgroup, as one bitmap per syscall ABI: the native table (x86_64, or aarch64),
 * x32 numbers without __X32_SYSCALL_BIT (x86 only), and 32-bit compat calls (i386 numbers on x86,
 * AArch32 numbers on arm64). Filled by raw_syscalls/sys_enter in the kernel; never sent through
 * the ring buffer. */
#define VIGIL_SYSCALL_SLOTS 512
#define VIGIL_SYSCALL_WORDS (VIGIL_SYSCALL_SLOTS / 64)

enum vigil_syscall_abi {
    VIGIL_SYSCALL_ABI_NATIVE = 0, /* x86_64; aarch64 */
    VIGIL_SYSCALL_ABI_X32 = 1,    /* x86 only */
    VIGIL_SYSCALL_ABI_COMPAT = 2, /* i386 on x86; arm (AArch32) on arm64 */
    VIGIL_SYSCALL_ABI_COUNT = 3,
};

/* A cgroup made below a watched one, or a watched one removed. hdr.cgroup_id is that cgroup's id
 * (not the current task's): the agent learns of containers, and forgets them, from these, without
 * walking the hierarchy. A removed cgroup's map entry goes with it; its syscall bitmaps, read just
 * before, are in the record so nothing it did is lost. */
struct vigil_cgroup_event {
    struct vigil_header hdr;
    __u32 op;       /* enum vigil_cgroup_op */
    __u32 name_len;
    __u64 parent_id;
    char name[VIGIL_CGROUP_NAME_LEN]; /* the directory's name (not the path) */
    /* rmdir only (a mkdir record ends before them): the cgroup's last bitmaps. */
    __u64 syscalls[VIGIL_SYSCALL_ABI_COUNT][VIGIL_SYSCALL_WORDS];
    __u64 runtime_syscalls[2][VIGIL_SYSCALL_WORDS];
};

/* The container runtime's init (runc init, or vigil's own launcher) inside a watched cgroup:
 * the process the runtime moved into the cgroup (cgroup_attach_task) and its forks, until they
 * exec a real file (not the runtime's unlinked in-memory copy of itself). Its syscalls are kept
 * apart from the workload's, split at its seccomp(SET_MODE_FILTER): what it calls after that
 * call runs under the container's filter and must be allowed by it; what it calls before must
 * not be in the workload's profile. */
enum vigil_runtime_phase {
    VIGIL_RUNTIME_BEFORE_FILTER = 1,
    VIGIL_RUNTIME_AFTER_FILTER = 2,
};

/* A cgroup kept in the watch list only so that its removal is reported (a container the agent
 * does not watch: an excluded namespace, a pod sandbox): nothing else of it is. Inherited by the
 * cgroups made below it. */
#define VIGIL_CGROUP_QUIET (1u << 0)
/* The container has model directories (model_dirs): its read-only opens are checked against
 * them at exit; a cgroup without it drops them at exit at once. */
#define VIGIL_CGROUP_MODEL (1u << 1)
/* A process of the cgroup accepted a connection (the VIGIL_CGROUP_SERVING record was sent): later accepts
 * cost one lookup. Not inherited by cgroups made below it. */
#define VIGIL_CGROUP_SERVED (1u << 2)

/* Protect mode: connects and datagrams to destinations outside the profile's egress rules are
 * refused (protect_egress); execs outside its exec rules are killed (protect_rules). Set per
 * container by the agent, only with a stable profile (profile_id != 0). */
#define VIGIL_CGROUP_PROTECT_EGRESS (1u << 3)
#define VIGIL_CGROUP_PROTECT_EXEC (1u << 4)
/* Protect mode: a process opening a file below one of the container's model directories for
 * writing (create, truncate, write) kills itself unless the profile has that write (protect_rules). */
#define VIGIL_CGROUP_PROTECT_MODELS (1u << 5)

/* A model directory of one container, as its processes see it: the directory's inode. A file is
 * a model file when one of its ancestors (within VIGIL_MODEL_DEPTH, mounts crossed) is one.
 * inode 0: a filesystem that holds a model directory or is mounted below one; a file on no such
 * device is no model file, and its ancestors are not walked. */
struct vigil_model_dir_key {
    __u64 cgroup_id;
    __u64 inode;
    __u32 device;
    __u32 _pad;
};

/* A model directory of one container by the path its processes name it with (FNV-1a of the
 * path), for the syscalls that leave no open file to judge (rename, unlink, truncate(2)). */
struct vigil_model_path_key {
    __u64 cgroup_id;
    __u64 hash;
};

/* The value of the watched_cgroups map: what the kernel knows of one watched cgroup. */
struct vigil_cgroup_state {
    __u32 profile_id; /* 0: no stable profile: report everything; else keys of the known_* maps */
    __u32 flags;      /* VIGIL_CGROUP_QUIET */
};

/* What a watched cgroup's processes called, in its own map (cgroup_syscalls), written by the
 * kernel alone: the agent writes cgroup states (profile, flags) while their processes run, and a
 * map update replaces the whole value — bits set meanwhile in a shared value were lost. */
struct vigil_cgroup_syscalls {
    __u64 syscalls[VIGIL_SYSCALL_ABI_COUNT][VIGIL_SYSCALL_WORDS]; /* the workload's */
    __u64 runtime_syscalls[2][VIGIL_SYSCALL_WORDS]; /* native ABI: [0] before the filter, [1] after */
};

/* Behaviour already in a stable profile, dropped in the kernel (VIGIL_SUPPRESSED_KNOWN), keyed by
 * text hashes of paths (text_hash in vigil.bpf.h; VigilCore/BehaviourHash.swift computes the same):
 *   exec: hash(exe) ^ (hash(parent_exe) * VIGIL_PARENT_MIX)
 *   file: hash(absolute path) — a relative name hashes as dir, "/", name — for the op's key;
 *         for rename, the new name. */
struct vigil_known_key {
    __u32 profile_id;
    __u32 kind; /* VIGIL_KIND_EXEC, or VIGIL_KIND_FILE * 16 + enum vigil_file_op */
    __u64 hash;
};

/* A model file whose content the agent hashed and found in the profile (and among the declared
 * digests, if any): with a known reader (known_behaviour, kind VIGIL_KIND_FILE * 16 +
 * VIGIL_FILE_READ_MODEL, hash(reader's executable)), its opens are dropped in the kernel. Any
 * write to it changes its change_ns (or size, or inode), so the next open is reported again. */
struct vigil_known_model {
    __u32 profile_id;
    __u32 device;
    __u64 inode;
    __u64 size;
    __u64 change_ns;
};

struct vigil_known_destination {
    __u32 profile_id;
    __u16 family;
    __u16 protocol;
    __u16 port;
    __u16 _pad[3];
    __u8 addr[16];
};

/* An egress rule of a protected profile, in the protect_egress LPM trie. The data after prefixlen
 * is compared as bytes, most significant first: profile id, family, protocol and port always match
 * whole (64 bits), then `prefixlen - 64` bits of the address (an IPv4 address in addr[0..3]). A
 * rule for any port is stored with port 0; a destination is looked up with its port, then 0. */
struct vigil_egress_key {
    __u32 prefixlen;
    __u32 profile_id;
    __u8 family;
    __u8 protocol;
    __u16 port; /* host byte order, as in events */
    __u8 addr[16];
};
#define VIGIL_EGRESS_FIXED_BITS 64

/* Address families as records carry them: Linux's values, the same on every architecture. */
#define VIGIL_AF_INET 2
#define VIGIL_AF_INET6 10

/* FNV-1a 64: model directory prefixes (vigil_model_path_key), a byte at a time as the kernel
 * scans a name for them. */
#define VIGIL_FNV_OFFSET 0xcbf29ce484222325ULL
#define VIGIL_FNV_PRIME 0x100000001b3ULL
/* The text hash of known behaviour (vigil_known_key): NH, the universal hash of UMAC, keyed with
 * VIGIL_TEXT_HASH_WORDS random 64-bit words k[i] the agent draws when it starts (.rodata's
 * vigil_text_hash_key). The text's bytes are read as little-endian 64-bit words w[i], the last
 * padded with zeros; with lo/hi the low and high 32 bits, every sum of two halves mod 2^32:
 *   hash = length + sum over i of (lo(w[i]) + lo(k[i])) * (hi(w[i]) + hi(k[i]))   (mod 2^64)
 * Two different texts of a length collide for at most 1 key in 2^32, and a workload does not know
 * the key: it cannot choose a path that passes for a known one (FNV-1a, unkeyed, let it find one
 * in ~2^32 steps of its own). Texts are at most VIGIL_TEXT_HASH_WORDS words long in the kernel; in
 * userspace word i takes key i mod VIGIL_TEXT_HASH_WORDS. */
#define VIGIL_TEXT_HASH_WORDS 128
#define VIGIL_PARENT_MIX 0x9E3779B97F4A7C15ULL

/* Set by the agent in .rodata before the programs load. */
struct vigil_config {
    __u32 watch_all;   /* 1: every process is watched (but the agent itself) */
    __u32 agent_tgid;  /* the agent's own process, never reported */
    __u32 wakeup_shift; /* the reader is woken each 1 << wakeup_shift bytes of records; 0: for each record it has not seen */
    __u32 _pad;
};

#endif /* VIGIL_ABI_H */
