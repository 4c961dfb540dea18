/* vigil-workload: exact, repeatable syscalls for Vigil's kernel tests and benchmarks.
 *
 *   vigil-workload ACTION...      actions run in order; the first failure exits 1
 *
 *   chdir:DIR            write:PATH (open O_WRONLY|O_CREAT|O_TRUNC, write, close)
 *   rename:OLD:NEW       unlink:PATH
 *   tcp4:PORT tcp6:PORT  connect to 127.0.0.1 / ::1 and close
 *   udp4:PORT udp6:PORT  sendto 127.0.0.1 / ::1 one datagram
 *   writes:N:PATH        N times write:PATH            (file-write flood / loop)
 *   connects:N:PORT      N times tcp4:PORT             (connect loop)
 *   execs:N:PROG         N times fork + exec PROG + wait (exec loop)
 *   syscall:NR           make syscall NR with zero arguments (its result is ignored)
 *   exec:PROG[:ARG...]   replace this process with PROG (last action)
 *
 * An action written NAME?:ARG may fail (e.g. `unlink?:missing`, to observe a failed syscall).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what, const char *arg)
{
    fprintf(stderr, "vigil-workload: %s %s: %s\n", what, arg, strerror(errno));
    return 1;
}

static int write_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fail("open", path);
    (void)!write(fd, "hi\n", 3);
    close(fd);
    return 0;
}

static int net(int family, int type, int port)
{
    int fd = socket(family, type, 0);
    if (fd < 0)
        return fail("socket", "");
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = in6addr_loopback;
        len = sizeof(*sin6);
    }
    int rc = type == SOCK_STREAM ? connect(fd, (struct sockaddr *)&ss, len)
                                 : (int)sendto(fd, "ping", 4, 0, (struct sockaddr *)&ss, len);
    int err = errno;
    close(fd);
    errno = err;
    return rc < 0 ? fail(type == SOCK_STREAM ? "connect" : "sendto", "") : 0;
}

static int run_exec_loop(long n, char *prog)
{
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *argv[] = {prog, NULL};
            execv(prog, argv);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
            return fail("fork", prog);
    }
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *action = argv[i];
        char *arg = strchr(action, ':');
        if (!arg) {
            fprintf(stderr, "vigil-workload: bad action '%s' (expected NAME:ARG)\n", action);
            return 2;
        }
        *arg++ = 0;
        bool may_fail = arg - action >= 2 && arg[-2] == '?';
        if (may_fail)
            arg[-2] = 0;
        int rc = 0;
        if (!strcmp(action, "chdir")) {
            rc = chdir(arg) ? fail("chdir", arg) : 0;
        } else if (!strcmp(action, "write")) {
            rc = write_file(arg);
        } else if (!strcmp(action, "rename")) {
            char *to = strchr(arg, ':');
            if (!to)
                return 2;
            *to++ = 0;
            rc = rename(arg, to) ? fail("rename", arg) : 0;
        } else if (!strcmp(action, "unlink")) {
            rc = unlink(arg) ? fail("unlink", arg) : 0;
        } else if (!strcmp(action, "tcp4") || !strcmp(action, "tcp6") ||
                   !strcmp(action, "udp4") || !strcmp(action, "udp6")) {
            rc = net(action[3] == '4' ? AF_INET : AF_INET6, action[0] == 't' ? SOCK_STREAM : SOCK_DGRAM,
                     atoi(arg));
        } else if (!strcmp(action, "writes") || !strcmp(action, "connects") || !strcmp(action, "execs")) {
            char *rest = strchr(arg, ':');
            if (!rest)
                return 2;
            *rest++ = 0;
            long n = atol(arg);
            if (action[0] == 'e') {
                rc = run_exec_loop(n, rest);
            } else {
                for (long k = 0; k < n && rc == 0; k++)
                    rc = action[0] == 'w' ? write_file(rest) : net(AF_INET, SOCK_STREAM, atoi(rest));
            }
        } else if (!strcmp(action, "syscall")) {
            (void)syscall(atol(arg), 0, 0, 0, 0, 0, 0);
        } else if (!strcmp(action, "exec")) {
            char *args[64];
            int n = 0;
            for (char *p = arg; p && n < 63; n++) {
                args[n] = p;
                p = strchr(p, ':');
                if (p)
                    *p++ = 0;
            }
            args[n] = NULL;
            execv(args[0], args);
            return fail("exec", args[0]);
        } else {
            fprintf(stderr, "vigil-workload: unknown action '%s'\n", action);
            return 2;
        }
        if (rc && !may_fail)
            return rc;
    }
    return 0;
}
