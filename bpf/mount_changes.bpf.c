// SPDX-License-Identifier: GPL-2.0
/* Changes of a mount tree, by any process: each can put a file below a model directory (or free
 * a mount a remembered verdict names) without an open, so they are counted in tree_changes and
 * the outside_models verdicts from before are not used. A mount created detached (fsmount,
 * open_tree) is only in a tree once move_mount attaches it. */
#include "vigil.bpf.h"

SEC("tp/syscalls/sys_exit_mount")
int vigil_mount_exit(struct trace_event_raw_sys_exit *ctx) { note_tree_change(ctx->ret); return 0; }

SEC("tp/syscalls/sys_exit_umount")
int vigil_umount_exit(struct trace_event_raw_sys_exit *ctx) { note_tree_change(ctx->ret); return 0; }

SEC("tp/syscalls/sys_exit_move_mount")
int vigil_move_mount_exit(struct trace_event_raw_sys_exit *ctx) { note_tree_change(ctx->ret); return 0; }

SEC("tp/syscalls/sys_exit_pivot_root")
int vigil_pivot_root_exit(struct trace_event_raw_sys_exit *ctx) { note_tree_change(ctx->ret); return 0; }
