// SPDX-License-Identifier: GPL-2.0
/* Opens with write intent (open, openat, openat2, creat) and truncate(). Read-only opens are
 * ignored at enter; at exit, in a container with model directories only, the opened file is
 * checked, and only the opens of files under a model directory reach userspace. */
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
    struct open_how how = {};
    if (bpf_probe_read_user(&how, sizeof(how.flags), (const void *)ctx->args[2]) != 0)
        return 0;
    return remember_open((int)ctx->args[0], ctx->args[1], how.flags);
}

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

SEC("tp/syscalls/sys_exit_open")
int vigil_open_exit(struct trace_event_raw_sys_exit *ctx) { return report_open(ctx->ret); }

SEC("tp/syscalls/sys_exit_openat")
int vigil_openat_exit(struct trace_event_raw_sys_exit *ctx) { return report_open(ctx->ret); }

SEC("tp/syscalls/sys_exit_openat2")
int vigil_openat2_exit(struct trace_event_raw_sys_exit *ctx) { return report_open(ctx->ret); }

SEC("tp/syscalls/sys_exit_creat")
int vigil_creat_exit(struct trace_event_raw_sys_exit *ctx) { return report_file_syscall(ctx->ret); }

SEC("tp/syscalls/sys_exit_truncate")
int vigil_truncate_exit(struct trace_event_raw_sys_exit *ctx) { return report_file_syscall(ctx->ret); }
