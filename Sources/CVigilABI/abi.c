#define _GNU_SOURCE
#include "CVigilABI.h"

#include <string.h>

/* The BPF side compiles the same header for a 64-bit little-endian target; these make a layout
 * that would differ between the two sides fail the build instead of misreading events. */
_Static_assert(sizeof(struct vigil_header) == 72, "vigil_header layout changed");
_Static_assert(sizeof(struct vigil_net_event) % 8 == 0, "vigil_net_event must stay 8-byte aligned");
_Static_assert(sizeof(struct vigil_file_event) % 8 == 0, "vigil_file_event must stay 8-byte aligned");

const char *vigil_errno_name(int err)
{
    return strerrorname_np(err);
}
