import Foundation
import VigilBPF
import VigilCore
import VigilRuntime
import VigilTestSupport
import XCTest

/// The agent rewrites a watched cgroup's state (its profile, its flags) while the cgroup's
/// processes run: at naming, every container does, just as it starts. A syscall the kernel
/// records meanwhile must not be lost — a call made once at startup and missing from a profile
/// becomes a seccomp filter that refuses it at the next start.
final class CgroupStateTests: XCTestCase {
    /// Harmless with zero arguments on x86_64 (most fail with EFAULT or EINVAL, which is enough
    /// for the kernel to see them): getpid, getppid, getuid, getgid, geteuid, getegid, gettid,
    /// getpgrp, getpgid, getsid, sched_yield, times, time, uname, alarm, getcwd, sysinfo,
    /// getrlimit, getrusage, getgroups, getresuid, getresgid, capget, getpriority,
    /// sched_getparam, sched_getscheduler, sched_get_priority_max and _min, sched_getaffinity,
    /// clock_gettime, clock_getres, gettimeofday, getrandom, prlimit64, ioprio_get, access, stat,
    /// lstat, readlink, statfs, lseek, ioctl.
    static let oneShotCalls = [39, 110, 102, 104, 107, 108, 186, 111, 121, 124, 24, 100, 201, 63, 37, 79, 99, 97, 98, 115, 118,
                               120, 125, 140, 143, 145, 146, 147, 204, 228, 229, 96, 318, 302, 252, 21, 4, 6, 89, 137, 8, 16]

    func testSyscallsAreNotLostWhileTheAgentRewritesTheCgroupsState() throws {
        #if !arch(x86_64)
        throw XCTSkip("the syscall numbers above are x86_64's")
        #else
        let traced = try TracedCgroup(self)
        var lost: [Int: Int] = [:]
        let rounds = 8
        for round in 0..<rounds {
            // A fresh cgroup each round (watched from its mkdir, as a container's is): a bit
            // lost in one would be set again by the next round's call in the same cgroup.
            let path = traced.path + "/round\(round)"
            let id = try traced.hierarchy.create(path)
            addTeardownBlock { try? traced.hierarchy.remove(path) }
            let rewriting = StopFlag()
            // What naming does (watch with the workload's profile), as fast as it can, on the other CPU.
            let probes = Shared(traced.probes)
            let rewriter = Thread {
                while !rewriting.isSet { try? probes.value.watch(cgroupID: id, profileID: 0) }
            }
            rewriter.start()
            try traced.run(Self.oneShotCalls.map { "syscall:\($0)" }, in: path)
            rewriting.set()
            while !rewriter.isFinished { usleep(1000) }
            let recorded = try XCTUnwrap(traced.probes.syscallBitmaps()[id]).workload
            for number in Self.oneShotCalls where !recorded.contains(number, abi: .x86_64) { lost[number, default: 0] += 1 }
        }
        XCTAssertEqual(lost, [:], "syscalls made in a cgroup and missing from its bitmap (number: rounds of \(rounds))")
        #endif
    }
}

/// Set once, read from another thread.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// The probes, handed to the rewriting thread (the test waits for it before it reads them).
private final class Shared<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
