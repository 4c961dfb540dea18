/// What a container's seccomp filter must allow besides the workload's own syscalls, whatever was
/// learned: the calls the container runtime makes after it installed the filter (it installs it
/// in the container's init, before it execs the entrypoint), and the calls any process may need
/// at a moment no learning run is sure to see (a signal handler returning, an interrupted sleep
/// restarting, exit).
///
/// The runtime lists are measured, not guessed: `RuntimeAllowanceTests` runs the installed runtime
/// under a filter that logs every call (`SCMP_ACT_LOG`), in both no_new_privs modes, reads the
/// kernel's audit records and fails when a call the runtime made is missing here — so a runtime
/// upgrade that needs a new call breaks CI, not production. `provenance` says what was measured.
public struct RuntimeAllowance: Sendable, Equatable {
    /// The OCI runtime's name, as `ObservedRuntime.runtime` spells it.
    public var runtime: String
    /// Without no_new_privs runc installs the filter first and then drops privileges under it
    /// (capset, setgroups, setuid…); with it, the filter goes in last, just before execve.
    public var noNewPrivileges: Bool
    /// The build the list was measured on, and how.
    public var provenance: String
    /// x86_64 names, as libseccomp spells them.
    public var syscalls: Set<String>
}

public enum SeccompAllowances {
    /// Calls the Go runtime (runc is written in Go) makes on any of its threads at any moment —
    /// its scheduler (futex, nanosleep, sched_yield, epoll_pwait), garbage collector (mmap,
    /// munmap, madvise, mprotect), signal-based preemption (tgkill, rt_sigreturn, sigaltstack,
    /// rt_sigprocmask), timers and random numbers: whether one falls after the filter went in is
    /// a matter of timing (futex and rt_sigreturn were seen after it in 2 to 3 runs of 15).
    public static let goRuntime: Set<String> = [
        "futex", "nanosleep", "clock_nanosleep", "sched_yield", "madvise", "mmap", "munmap", "mprotect", "tgkill",
        "getpid", "gettid", "rt_sigreturn", "rt_sigprocmask", "sigaltstack", "epoll_pwait", "epoll_wait",
        "clock_gettime", "read", "write", "getrandom",
    ]

    static let runcMeasurement = "runc 1.1.5+ds1 (Debian 12, libseccomp 2.5.4), Linux 6.18, x86_64: 15 runs per mode under "
        + "SCMP_ACT_LOG, containerd 1.6.20 CRI and runc alone (RuntimeAllowanceTests)"
    static let crunMeasurement = "crun 1.8.1 (Debian 12), Linux 6.18, x86_64: 15 runs per mode under SCMP_ACT_LOG, "
        + "crun alone with --cgroup-manager=disabled (RuntimeAllowanceTests)"

    public static let runtimes: [RuntimeAllowance] = [
        // runc closes every inherited fd above 2 after checking /proc/self/fd is procfs (openat,
        // fstatfs, getdents64, close, epoll_ctl on its own poller, fcntl), then drops
        // privileges (without no_new_privs), checks the entrypoint (faccessat2, newfstatat) and
        // execs it; its parent learns the pid through the sync pipe (write).
        RuntimeAllowance(runtime: "runc", noNewPrivileges: false, provenance: runcMeasurement, syscalls: goRuntime.union([
            "read", "write", "close", "fstat", "getpid", "execve", "fcntl", "getcwd", "chdir", "setuid", "setgid",
            "getppid", "setgroups", "capget", "capset", "fstatfs", "prctl", "futex", "getdents64", "epoll_ctl",
            "openat", "newfstatat", "faccessat2",
        ])),
        RuntimeAllowance(runtime: "runc", noNewPrivileges: true, provenance: runcMeasurement, syscalls: goRuntime.union([
            "write", "close", "getpid", "execve", "fstatfs", "futex", "getdents64", "epoll_ctl", "openat",
        ])),
        // crun (C) installs the filter, then (without no_new_privs) sets its ids and
        // capabilities, resets its signal handlers, and execs.
        RuntimeAllowance(runtime: "crun", noNewPrivileges: false, provenance: crunMeasurement, syscalls: [
            "write", "close", "execve", "rt_sigaction", "rt_sigprocmask", "setresgid", "setresuid", "capset", "prctl",
        ]),
        RuntimeAllowance(runtime: "crun", noNewPrivileges: true, provenance: crunMeasurement, syscalls: [
            "close", "execve",
        ]),
        // `vigil seccomp run` and `verify`: vigil's own launcher installs the filter right before execve.
        RuntimeAllowance(runtime: "vigil", noNewPrivileges: true, provenance: "Sources/CVigilSys/spawn.c: confine() then execvp()",
                         syscalls: ["execve"]),
    ]

    /// The allowance measured for a runtime in a no_new_privs mode; nil when none was.
    public static func allowance(runtime: String, noNewPrivileges: Bool) -> RuntimeAllowance? {
        runtimes.first { $0.runtime == runtime && $0.noNewPrivileges == noNewPrivileges }
    }

    /// The runtimes every exported profile carries the allowance of, in both modes: a profile
    /// may be given to any of them, with either setting of allowPrivilegeEscalation.
    public static var runtimeNames: [String] {
        var names: [String] = []
        for allowance in runtimes where !names.contains(allowance.runtime) { names.append(allowance.runtime) }
        return names
    }

    /// The union of every runtime's allowance.
    public static var allRuntimeSyscalls: Set<String> {
        runtimes.reduce(into: Set<String>()) { $0.formUnion($1.syscalls) }
    }

    /// Calls any process may make asynchronously, so a learning run may never see them:
    /// returning from a signal handler (rt_sigreturn), restarting a sleep a signal interrupted
    /// (restart_syscall), signalling one of its own threads (tgkill: raise(), pthread_kill()),
    /// ending (exit, exit_group), and yielding the CPU (sched_yield: the back-off of a contended
    /// spin lock, as in gRPC's and abseil's, made only when two threads happen to collide — one
    /// of three KServe learning runs met it, after six minutes). A workload that handles
    /// SIGTERM only at shutdown would otherwise crash at every rollout (a denied rt_sigreturn
    /// returns into garbage: SIGSEGV).
    public static let asynchronousBaseline: Set<String> = [
        "rt_sigreturn", "restart_syscall", "tgkill", "exit", "exit_group", "sched_yield",
    ]

    /// The same for 32-bit (i386) processes, which also return from old-style handlers.
    public static let i386Baseline: Set<String> = asynchronousBaseline.union(["sigreturn"])

    /// The baseline of calls made with this ABI.
    public static func baseline(for abi: SyscallABI) -> Set<String> {
        abi == .i386 ? i386Baseline : asynchronousBaseline
    }
}

/// A container runtime as the agent saw it run a workload's container: which runtime (from its
/// state files) and whether no_new_privs was set (`allowPrivilegeEscalation: false`).
public struct ObservedRuntime: Codable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var runtime: String
    public var noNewPrivileges: Bool

    public init(runtime: String, noNewPrivileges: Bool) {
        self.runtime = runtime
        self.noNewPrivileges = noNewPrivileges
    }

    public static func < (a: ObservedRuntime, b: ObservedRuntime) -> Bool {
        (a.runtime, a.noNewPrivileges ? 1 : 0) < (b.runtime, b.noNewPrivileges ? 1 : 0)
    }

    public var description: String { "\(runtime) (no_new_privs \(noNewPrivileges ? "on" : "off"))" }
}
