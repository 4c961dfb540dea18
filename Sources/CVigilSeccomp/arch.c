#define _GNU_SOURCE
#include <sys/mman.h>
#include "CVigilSeccomp.h"

uint32_t vigil_seccomp_arch(int abi)
{
    switch (abi) {
    case 0: return SCMP_ARCH_X86_64;
    case 1: return SCMP_ARCH_X32;
    case 2: return SCMP_ARCH_X86;
    default: return 0;
    }
}

int vigil_memfd(const char *name)
{
    return memfd_create(name, MFD_CLOEXEC);
}
