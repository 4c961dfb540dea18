#define _GNU_SOURCE
#include "CVigilABI.h"

#include <stddef.h>
#include <string.h>

/* The BPF side compiles the same header for a 64-bit little-endian target; these make a layout
 * that would differ between the two sides fail the build instead of misreading events. */
_Static_assert(sizeof(struct vigil_header) == 72, "vigil_header layout changed");
_Static_assert(sizeof(struct vigil_net_event) % 8 == 0, "vigil_net_event must stay 8-byte aligned");
_Static_assert(sizeof(struct vigil_file_record) % 8 == 0, "vigil_file_record must stay 8-byte aligned");
_Static_assert(sizeof(struct vigil_exec_record) % 8 == 0, "vigil_exec_record must stay 8-byte aligned");
/* RawEvent reads a packed record's text lengths as consecutive UInt32s, in the order of its strings. */
_Static_assert(offsetof(struct vigil_exec_record, parent_exe_len) == offsetof(struct vigil_exec_record, exe_len) + 4 &&
               offsetof(struct vigil_exec_record, args_len) == offsetof(struct vigil_exec_record, exe_len) + 8,
               "exec record text lengths must be consecutive");
_Static_assert(offsetof(struct vigil_file_record, name_len) == offsetof(struct vigil_file_record, dir_len) + 4 &&
               offsetof(struct vigil_file_record, target_dir_len) == offsetof(struct vigil_file_record, dir_len) + 8 &&
               offsetof(struct vigil_file_record, target_name_len) == offsetof(struct vigil_file_record, dir_len) + 12,
               "file record text lengths must be consecutive");

const char *vigil_errno_name(int err)
{
    return strerrorname_np(err);
}
