#define _GNU_SOURCE
#include "CVigilSys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(VIGIL_O_PATH == O_PATH, "VIGIL_O_PATH is O_PATH");

int vigil_open_in_root(int root_fd, const char *path, int flags)
{
    /* openat2 refuses O_PATH with anything but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC. */
    int extra = (flags & O_PATH) ? O_CLOEXEC : (O_CLOEXEC | O_NOCTTY);
    struct open_how how = {
        .flags = (unsigned long long)(flags | extra),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}
