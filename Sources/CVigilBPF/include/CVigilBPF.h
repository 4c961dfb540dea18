#ifndef CVIGIL_BPF_H
#define CVIGIL_BPF_H

#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include "../../CVigilABI/include/CVigilABI.h"

/* Routes libbpf's messages into a buffer the agent reads after a failure, so an error can quote
 * the kernel's reason (the verifier log) instead of spilling it to stderr. */
void vigil_bpf_capture_log(void);
/* Copies the captured log's tail into buf (NUL-terminated) and clears it. Returns bytes copied. */
size_t vigil_bpf_take_log(char *buf, size_t size);

/* Writes a variable of the object's .rodata (the agent's settings, the text hash's key) before
 * load; value_size must be the variable's. Returns 0 or -errno. */
int vigil_bpf_set_rodata(struct bpf_object *obj, const char *variable, const void *value, size_t value_size);

/* The floor of the design, for benchmarks: an empty program (return 0) attached to the tracepoint
 * category/name (a raw tracepoint when category is NULL). Returns the descriptor that holds the
 * attachment (close it to detach), or -errno; on success *program is the program's own
 * descriptor (for its run-time statistics; close it too). */
int vigil_bpf_attach_empty(const char *category, const char *name, int *program);

/* Whether tracing programs on this kernel may call bpf_get_current_task_btf() (Linux 5.11+) and
 * use task storage (5.12+): the choice of vigil-task-btf.bpf.o over vigil-compat.bpf.o (bpf/build.sh). */
bool vigil_bpf_kernel_has_task_btf(void);

/* Whether the kernel's BTF has the kfunc bpf_rdonly_cast (Linux 6.2+, every program type) and
 * tracepoint programs may call bpf_task_pt_regs (5.15+; the open exits read their syscall's
 * arguments with it): the choice of vigil.bpf.o over vigil-task-btf.bpf.o. */
bool vigil_bpf_kernel_has_btf_casts(void);

#endif
