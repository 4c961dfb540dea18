#ifndef CVIGIL_ABI_H
#define CVIGIL_ABI_H
/* The one event layout, shared with the BPF programs. */
#include "../../../bpf/vigil_abi.h"

/* "ENOENT" for 2: the symbolic name of an errno value the kernel returned, or NULL. (glibc's
 * strerrorname_np, which Swift cannot see without _GNU_SOURCE.) */
const char *vigil_errno_name(int err);
#endif
