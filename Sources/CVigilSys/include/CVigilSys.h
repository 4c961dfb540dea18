#ifndef CVIGIL_SYS_H
#define CVIGIL_SYS_H
#include <stddef.h>
#include <sys/types.h>

struct vigil_spawn_options {
    /* Move the child into the cgroup whose cgroup.procs file this is, before it execs (NULL: stay). */
    const char *procs_path;
    /* A classic-BPF seccomp program (struct sock_filter[]) to install right before exec, and its
     * size in bytes (NULL/0: none). */
    const void *filter;
    size_t filter_size;
    /* Set no_new_privs before installing the filter (required for an unprivileged install). */
    int no_new_privs;
    /* File descriptors for the child's stdout and stderr (-1: inherit). */
    int stdout_fd;
    int stderr_fd;
};

/* Starts argv[0] (searched in PATH) as a child set up as the options say; signals are
 * unblocked and reset to their defaults in the child, which is killed if the caller dies.
 * Returns the child's pid, or -errno if it could not be set up or could not exec. */
pid_t vigil_spawn(const struct vigil_spawn_options *options, char *const argv[]);

/* Replaces this process with argv[0] (searched in PATH) under a seccomp filter, after setting
 * no_new_privs. Returns -errno when the command cannot be found or the filter not installed;
 * once the filter is in, it never returns (an exec that fails then exits with status 127). */
int vigil_exec_confined(const void *filter, size_t filter_size, char *const argv[]);

/* A netlink socket joined to the kernel's audit multicast group (AUDIT_NLGRP_READLOG), with a
 * receive buffer of `receive_buffer` bytes. Returns the fd, or -errno (EPERM without
 * CAP_AUDIT_READ). */
int vigil_audit_multicast_socket(int receive_buffer);

/* SIGINT, SIGTERM and SIGHUP, on whichever thread they land, are kept for
 * vigil_take_stop_signal() instead of ending the process (a capture drains the ring buffer and
 * saves its profile first). Handlers do not survive exec: commands vigil starts get the defaults. */
int vigil_catch_stop_signals(void);

/* The stop signal caught since the last call, or 0. */
int vigil_take_stop_signal(void);

/* Opens `path` as if `root_fd` (a container's /proc/<pid>/root) were "/": symlinks, "..", and
 * absolute names are resolved inside it (openat2 RESOLVE_IN_ROOT), never on the host, and
 * /proc magic links are refused. Returns the fd, or -errno. */
int vigil_open_in_root(int root_fd, const char *path, int flags);

/* O_PATH (a GNU extension Swift's Glibc module does not export); the same on x86_64 and arm64. */
#define VIGIL_O_PATH 0x200000

#endif
