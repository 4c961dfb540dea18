// SPDX-License-Identifier: GPL-2.0
/* rename, renameat, renameat2: both names, each resolved against its own dirfd. */
#include "vigil.bpf.h"

SEC("tp/syscalls/sys_enter_rename")
int vigil_rename_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_RENAME, 0, AT_FDCWD, ctx->args[0], AT_FDCWD, ctx->args[1]);
}

SEC("tp/syscalls/sys_enter_renameat")
int vigil_renameat_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_RENAME, 0, (int)ctx->args[0], ctx->args[1],
                                 (int)ctx->args[2], ctx->args[3]);
}

SEC("tp/syscalls/sys_enter_renameat2")
int vigil_renameat2_enter(struct trace_event_raw_sys_enter *ctx)
{
    return remember_file_syscall(VIGIL_FILE_RENAME, 0, (int)ctx->args[0], ctx->args[1],
                                 (int)ctx->args[2], ctx->args[3]);
}

SEC("tp/syscalls/sys_exit_rename")
int vigil_rename_exit(struct trace_event_raw_sys_exit *ctx)
{
    note_tree_change(ctx->ret); /* any process's: see tree_changes */
    return report_file_syscall(ctx->ret);
}

SEC("tp/syscalls/sys_exit_renameat")
int vigil_renameat_exit(struct trace_event_raw_sys_exit *ctx)
{
    note_tree_change(ctx->ret); /* any process's: see tree_changes */
    return report_file_syscall(ctx->ret);
}

SEC("tp/syscalls/sys_exit_renameat2")
int vigil_renameat2_exit(struct trace_event_raw_sys_exit *ctx)
{
    note_tree_change(ctx->ret); /* any process's: see tree_changes */
    return report_file_syscall(ctx->ret);
}
