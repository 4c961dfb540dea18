// SPDX-License-Identifier: GPL-2.0
/* unlink and unlinkat (which also removes directories with AT_REMOVEDIR); rmdir only counts as a
 * tree change (see tree_changes). */
#include "vigil.bpf.h"

SEC("tp/syscalls/sys_enter_unlink")
int vigil_unlink_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_UNLINK, 0, AT_FDCWD, ctx->args[0], 0, 0);
}

SEC("tp/syscalls/sys_enter_unlinkat")
int vigil_unlinkat_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_UNLINK, (__u32)ctx->args[2], (int)ctx->args[0],
                                 ctx->args[1], 0, 0);
}

SEC("tp/syscalls/sys_exit_unlink")
int vigil_unlink_exit(struct trace_event_raw_sys_exit *ctx)
{
    note_tree_change(ctx->ret); /* any process's: see tree_changes */
    return report_file_syscall(ctx->ret);
}

SEC("tp/syscalls/sys_exit_unlinkat")
int vigil_unlinkat_exit(struct trace_event_raw_sys_exit *ctx)
{
    note_tree_change(ctx->ret); /* any process's: see tree_changes */
    return report_file_syscall(ctx->ret);
}

SEC("tp/syscalls/sys_exit_rmdir")
int vigil_rmdir_exit(struct trace_event_raw_sys_exit *ctx)
{
    note_tree_change(ctx->ret);
    return 0;
}
