/* vigil-workload: exact, repeatable syscalls for Vigil's kernel tests and benchmarks.
 *
 *   vigil-workload ACTION...      actions run in order; the first failure exits 1
 *
 *   chdir:DIR            write:PATH (open O_WRONLY|O_CREAT|O_TRUNC, write, close)
 *   rename:OLD:NEW       unlink:PATH
 *   tcp4:PORT tcp6:PORT  connect to 127.0.0.1 / ::1 and close
 *   udp4:PORT udp6:PORT  sendto 127.0.0.1 / ::1 one datagram
 *   tfo4:PORT            TCP Fast Open to 127.0.0.1: the connect made by sendto(MSG_FASTOPEN)
 *   tcp-to:ADDRESS:PORT  connect to ADDRESS (IPv4 or IPv6, the port after the last colon) and close
 *   netns:new            move into a network namespace of its own (its loopback down): a connect
 *                        elsewhere then fails at once and nothing leaves the machine
 *   writes:N:PATH        N times write:PATH            (file-write flood / loop)
 *   paced-writes:RATE:SECONDS:PATH  write:PATH RATE times a second for SECONDS (paced each
 *                        millisecond: a steady event rate, not a flood); prints how many it did
 *   reads:N:PATH         N times open PATH read-only, read, close (read loop)
 *   openat2-read:PATH    open PATH read-only with openat2(2), read, close
 *   openat2-write:PATH   open PATH with openat2(2), O_WRONLY|O_CREAT, close
 *   serve:PORT           listen on 127.0.0.1:PORT and accept one connection (a server starts serving)
 *   connects:N:PORT      N times tcp4:PORT             (connect loop)
 *   execs:N:PROG         N times fork + exec PROG + wait (exec loop)
 *   distinct:N:DIR       N writes of files of distinct names, each in its own new directory
 *                        (DIR/<k in letters>/state: no digits, which learning would fold into
 *                        one pattern): the behaviour of a tenant that never repeats itself
 *   syscall:NR           make syscall NR with zero arguments (its result is ignored)
 *   sleep:MS             sleep MS milliseconds (a server that starts, then loads its model)
 *   exec:PROG[:ARG...]   replace this process with PROG (last action)
 *   memfd-exec:NAME:PROG[:ARG...]   copy PROG into a memfd named NAME and exec it from there
 *                        (a fileless binary, as a dropper runs its payload; last action)
 *   deleted-exec:COPY:PROG[:ARG...] copy PROG to COPY, open it, unlink it, exec the open file
 *                        (a binary whose file is gone; last action)
 *
 * An action written NAME?:ARG may fail (e.g. `unlink?:missing`, to observe a failed syscall).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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

static double monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* write_file(path) at `rate` a second for `seconds`: each millisecond, the writes due by then. */
static int paced_writes(long rate, double seconds, const char *path)
{
    double start = monotonic_seconds();
    long done = 0;
    for (;;) {
        double elapsed = monotonic_seconds() - start;
        if (elapsed >= seconds)
            break;
        long due = (long)(elapsed * (double)rate);
        for (; done < due; done++)
            if (write_file(path) != 0)
                return 1;
        usleep(1000);
    }
    printf("paced-writes: %ld in %.1f s\n", done, monotonic_seconds() - start);
    return 0;
}

static int read_file(const char *path)
{
    char buffer[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return fail("open", path);
    (void)!read(fd, buffer, sizeof(buffer));
    close(fd);
    return 0;
}

/* openat2-read reads a little of the file; openat2-write creates it (or opens it to write). */
static int openat2_open(const char *path, bool write)
{
    char buffer[64];
    struct open_how how = { .flags = write ? O_WRONLY | O_CREAT : O_RDONLY, .mode = write ? 0644 : 0 };
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
    if (fd < 0)
        return fail("openat2", path);
    if (!write)
        (void)!read(fd, buffer, sizeof(buffer));
    close(fd);
    return 0;
}

/* Connects (TCP) or sends one datagram (UDP) to the address, and closes. fastopen: a TCP connect
 * made by the first send (sendto with MSG_FASTOPEN, no connect). */
static int reach(const struct sockaddr_storage *ss, int type, bool fastopen)
{
    int fd = socket(ss->ss_family, type, 0);
    if (fd < 0)
        return fail("socket", "");
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int rc = type == SOCK_STREAM && !fastopen ? connect(fd, (const struct sockaddr *)ss, len)
                                              : (int)sendto(fd, "ping", 4, fastopen ? MSG_FASTOPEN : 0, (const struct sockaddr *)ss, len);
    int err = errno;
    close(fd);
    errno = err;
    return rc < 0 ? fail(type == SOCK_STREAM ? "connect" : "sendto", "") : 0;
}

static int net(int family, int type, int port, bool fastopen)
{
    struct sockaddr_storage ss = {0};
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = in6addr_loopback;
    }
    return reach(&ss, type, fastopen);
}

/* tcp-to:ADDRESS:PORT */
static int tcp_to(char *spec)
{
    char *colon = strrchr(spec, ':');
    if (!colon)
        return 2;
    *colon = 0;
    int port = atoi(colon + 1);
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, spec, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, spec, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
    } else {
        fprintf(stderr, "vigil-workload: '%s' is not an IPv4 or IPv6 address\n", spec);
        return 2;
    }
    return reach(&ss, SOCK_STREAM, false);
}

static int serve(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket", "");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 1) != 0)
        return fail("listen", "");
    int client = accept(fd, NULL, NULL);
    if (client < 0)
        return fail("accept", "");
    close(client);
    close(fd);
    return 0;
}

/* Splits "PROG:ARG:ARG" in place into a NULL-terminated argv. */
static void split_argv(char *arg, char *args[64])
{
    int n = 0;
    for (char *p = arg; p && n < 63; n++) {
        args[n] = p;
        p = strchr(p, ':');
        if (p)
            *p++ = 0;
    }
    args[n] = NULL;
}

/* Copies the file at `from` into the open fd `to`. */
static int copy_into(const char *from, int to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail("open", from);
    char buffer[1 << 16];
    ssize_t n;
    while ((n = read(in, buffer, sizeof(buffer))) > 0) {
        if (write(to, buffer, (size_t)n) != n) {
            close(in);
            return fail("write copy of", from);
        }
    }
    close(in);
    return n < 0 ? fail("read", from) : 0;
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
        } else if (!strcmp(action, "serve")) {
            rc = serve(atoi(arg));
        } else if (!strcmp(action, "openat2-read") || !strcmp(action, "openat2-write")) {
            rc = openat2_open(arg, action[8] == 'w');
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
                     atoi(arg), false);
        } else if (!strcmp(action, "tcp-to")) {
            rc = tcp_to(arg);
        } else if (!strcmp(action, "netns")) {
            rc = unshare(CLONE_NEWNET) ? fail("unshare", "CLONE_NEWNET") : 0;
        } else if (!strcmp(action, "tfo4")) {
            rc = net(AF_INET, SOCK_STREAM, atoi(arg), true);
        } else if (!strcmp(action, "writes") || !strcmp(action, "reads") || !strcmp(action, "connects") || !strcmp(action, "execs")) {
            char *rest = strchr(arg, ':');
            if (!rest)
                return 2;
            *rest++ = 0;
            long n = atol(arg);
            if (action[0] == 'e') {
                rc = run_exec_loop(n, rest);
            } else {
                for (long k = 0; k < n && rc == 0; k++)
                    rc = action[0] == 'w' ? write_file(rest) : action[0] == 'r' ? read_file(rest)
                                                              : net(AF_INET, SOCK_STREAM, atoi(rest), false);
            }
        } else if (!strcmp(action, "paced-writes")) {
            char *seconds = strchr(arg, ':');
            char *path = seconds ? strchr(seconds + 1, ':') : NULL;
            if (!path)
                return 2;
            *seconds++ = 0;
            *path++ = 0;
            rc = paced_writes(atol(arg), atof(seconds), path);
        } else if (!strcmp(action, "distinct")) {
            char *dir = strchr(arg, ':');
            if (!dir)
                return 2;
            *dir++ = 0;
            long n = atol(arg);
            char path[4096], name[16];
            for (long k = 0; k < n && rc == 0; k++) {
                int at = 0;
                for (long v = k + 26 * 26; v > 0 && at < 15; v /= 26)
                    name[at++] = (char)('a' + v % 26);
                name[at] = 0;
                snprintf(path, sizeof(path), "%s/%s", dir, name);
                if (mkdir(path, 0755) != 0 && errno != EEXIST)
                    rc = fail("mkdir", path);
                snprintf(path, sizeof(path), "%s/%s/state", dir, name);
                if (rc == 0)
                    rc = write_file(path);
            }
        } else if (!strcmp(action, "memfd-exec") || !strcmp(action, "deleted-exec")) {
            char *prog = strchr(arg, ':');
            if (!prog)
                return 2;
            *prog++ = 0;
            char *args[64];
            split_argv(prog, args);
            int fd;
            if (action[0] == 'm') {
                fd = memfd_create(arg, 0);
                if (fd < 0)
                    return fail("memfd_create", arg);
                if (copy_into(args[0], fd))
                    return 1;
            } else {
                int copy = open(arg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
                if (copy < 0 || copy_into(args[0], copy))
                    return fail("copy", arg);
                close(copy);
                fd = open(arg, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || unlink(arg) != 0)
                    return fail("open and unlink", arg);
            }
            fexecve(fd, args, environ);
            return fail("fexecve", args[0]);
        } else if (!strcmp(action, "syscall")) {
            (void)syscall(atol(arg), 0, 0, 0, 0, 0, 0);
        } else if (!strcmp(action, "sleep")) {
            long ms = atol(arg);
            struct timespec pause = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
            while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
            }
        } else if (!strcmp(action, "exec")) {
            char *args[64];
            split_argv(arg, args);
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
