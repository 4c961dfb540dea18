#ifndef CVIGIL_SYS_H
#define CVIGIL_SYS_H
#include <sys/types.h>

/* Starts argv[0] (searched in PATH) as a child that first moves itself into the cgroup whose
 * cgroup.procs file is procs_path (NULL: stay in ours), so that the exec and everything after it
 * happen inside that cgroup. Signals are unblocked and reset to their defaults in the child.
 * Returns the child's pid, or -errno if the child could not be set up or could not exec. */
pid_t vigil_spawn_in_cgroup(const char *procs_path, char *const argv[]);

#endif
