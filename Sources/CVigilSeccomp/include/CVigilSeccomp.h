#ifndef CVIGIL_SECCOMP_H
#define CVIGIL_SECCOMP_H
#include <seccomp.h>
#include <stdint.h>

/* libseccomp's architecture token for Vigil's syscall ABI index (0 x86_64, 1 x32, 2 i386). The
 * tokens are macros built from AUDIT_ARCH_* that Swift cannot import. */
uint32_t vigil_seccomp_arch(int abi);

/* An anonymous in-memory file (memfd_create, hidden from Swift without _GNU_SOURCE). */
int vigil_memfd(const char *name);
#endif
