#define _GNU_SOURCE
#include "CVigilSys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* no_new_privs if asked, then the seccomp filter if any: 0 or an errno. Async-signal-safe (two
 * syscalls), so the forked child may call it. */
static int confine(const void *filter, size_t filter_size, int no_new_privs)
{
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return errno;
    if (!filter)
        return 0;
    struct sock_fprog program = {
        .len = (unsigned short)(filter_size / sizeof(struct sock_filter)),
        .filter = (struct sock_filter *)filter,
    };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0 ? errno : 0;
}

/* Finds argv[0] as execvp would (a name with a slash as given, else the first executable match
 * in PATH), before any filter is installed: after that, failing must not need anything the
 * filter could deny. 0, or the errno execvp would have reported. */
static int resolve_command(const char *name, char out[PATH_MAX])
{
    if (!name || !*name)
        return ENOENT;
    if (strchr(name, '/')) {
        if (strlen(name) >= PATH_MAX)
            return ENAMETOOLONG;
        strcpy(out, name);
        return access(out, X_OK) == 0 ? 0 : errno;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int found = ENOENT;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t length = end ? (size_t)(end - path) : strlen(path);
        if (length + 1 + strlen(name) < PATH_MAX) {
            memcpy(out, length ? path : ".", length ? length : 1);
            size_t at = length ? length : 1;
            out[at] = '/';
            strcpy(out + at + 1, name);
            if (access(out, X_OK) == 0)
                return 0;
            if (errno == EACCES)
                found = EACCES;
        }
        if (!end)
            break;
        path = end + 1;
    }
    return found;
}

/* The command starts as if from a shell: default dispositions (vigil ignores SIGPIPE and catches
 * its stop signals; an ignored signal would stay ignored across exec) and nothing blocked (the
 * calling thread may be one whose runtime blocks SIGTERM and friends; the mask survives exec too).
 * Async-signal-safe. */
static void default_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Between fork and exec only async-signal-safe calls: the child of a multi-threaded process
 * may not touch anything the other threads held (malloc, locks). The filter is compiled before
 * the fork for that reason. */
pid_t vigil_spawn(const struct vigil_spawn_options *options, char *const argv[])
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(report[0]);
        close(report[1]);
        return -err;
    }
    if (pid == 0) {
        int err = 0;
        /* If vigil dies (kill -9 included), the command goes too, rather than run on unwatched. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(127);
        default_signals();
        if (options->stdout_fd >= 0 && dup2(options->stdout_fd, STDOUT_FILENO) < 0)
            err = errno;
        if (!err && options->stderr_fd >= 0 && dup2(options->stderr_fd, STDERR_FILENO) < 0)
            err = errno;
        if (!err && options->procs_path) {
            int fd = open(options->procs_path, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, "0", 1) != 1)
                err = errno;
            if (fd >= 0)
                close(fd);
        }
        if (!err)
            err = confine(options->filter, options->filter_size, options->no_new_privs);
        if (!err) {
            execvp(argv[0], argv);
            err = errno;
        }
        (void)!write(report[1], &err, sizeof(err));
        _exit(127);
    }
    close(report[1]);
    int err = 0;
    ssize_t n;
    do {
        n = read(report[0], &err, sizeof(err));
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == sizeof(err) && err != 0) {
        waitpid(pid, NULL, 0);
        return -err;
    }
    return pid;
}

int vigil_exec_confined(const void *filter, size_t filter_size, char *const argv[])
{
    char path[PATH_MAX];
    int err = resolve_command(argv[0], path);
    if (err)
        return -err;
    default_signals();
    err = confine(filter, filter_size, 1);
    if (err)
        return -err;
    execv(path, argv);
    /* The filter is in place: nothing may return to Swift, whose runtime's calls it may deny. */
    static const char message[] = "vigil: the command could not be started under the seccomp filter\n";
    (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
    _exit(127);
}

int vigil_audit_multicast_socket(int receive_buffer)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    struct sockaddr_nl address = { .nl_family = AF_NETLINK, .nl_groups = AUDIT_NLGRP_READLOG };
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}
