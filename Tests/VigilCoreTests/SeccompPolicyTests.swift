import Foundation
import VigilCore
import VigilSeccomp
import XCTest

/// A seccomp filter is the workload's own syscalls, plus what its container runtime needs after
/// installing the filter, plus what any process may need asynchronously — whatever a learning
/// run happened to see.
final class SeccompPolicyTests: XCTestCase {
    let resolver = SeccompSyscallResolver()
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    private func bitmap(_ names: [String]) -> SyscallBitmap {
        var bitmap = SyscallBitmap()
        for name in names { bitmap.insert(try! XCTUnwrap(resolver.number(of: name, abi: .x86_64)), abi: .x86_64) }
        return bitmap
    }

    private func learned(workload names: [String], runtimeAfterFilter: [String] = []) -> Learner {
        var learner = Learner.start(workload: "w", modelPaths: [], minDuration: 0, quietPeriod: 0, now: start, resolver: resolver)
        learner.observeSyscalls(CgroupSyscalls(workload: bitmap(names), runtimeAfterFilter: bitmap(runtimeAfterFilter)), now: start)
        return learner
    }

    func testTheFilterIsTheWorkloadTheRuntimesAndTheBaselineEachCountedOnce() throws {
        let profile = learned(workload: ["read", "write", "capset", "accept4"]).snapshot()
        XCTAssertEqual(profile.syscalls.x86_64, ["accept4", "capset", "read", "write"], "only the workload's own calls")
        let parts = SeccompPolicy.composition(profile)
        XCTAssertEqual(parts.workload, ["accept4", "capset", "read", "write"])
        XCTAssertFalse(parts.runtime.contains("capset"), "the workload already needs it: counted once, as the workload's")
        XCTAssertTrue(parts.runtime.contains("setgroups") && parts.runtime.contains("fstatfs"), "runc's own, without no_new_privs")
        XCTAssertEqual(parts.baseline, ["exit", "exit_group", "restart_syscall"])
        for allowance in SeccompAllowances.runtimes {
            XCTAssertEqual(SeccompPolicy.missingRuntimeCalls(profile, for: ObservedRuntime(runtime: allowance.runtime,
                                                                                           noNewPrivileges: allowance.noNewPrivileges)), [])
        }
        XCTAssertNil(SeccompPolicy.missingRuntimeCalls(profile, for: ObservedRuntime(runtime: "youki", noNewPrivileges: false)),
                     "nothing was measured for it: nothing is promised")

        let oci = SeccompPolicy.oci(profile)
        XCTAssertEqual(oci.syscalls.map(\.names), [parts.workload, parts.runtime, parts.baseline, ["clone3"]])
        XCTAssertEqual(oci.syscalls.last?.errnoRet, 38, "clone3 unseen: ENOSYS, so glibc falls back to clone")
    }

    /// A profile written by hand (no seccomp section) still lets runc start the workload.
    func testAProfileWithoutASeccompSectionGetsTodaysAllowances() throws {
        var profile = learned(workload: ["read"]).snapshot()
        profile.seccomp = nil
        XCTAssertEqual(SeccompPolicy.missingRuntimeCalls(profile, for: ObservedRuntime(runtime: "runc", noNewPrivileges: false)), [])
        XCTAssertTrue(SeccompPolicy.oci(profile).names(withAction: "SCMP_ACT_ALLOW").contains("rt_sigreturn"))
        // One whose section lacks runc's calls (edited, or from an older allowance) does not.
        profile.seccomp = SeccompAdditions(runtimes: ["runc"], runtime: ["execve"], baseline: [])
        let missing = try XCTUnwrap(SeccompPolicy.missingRuntimeCalls(profile, for: ObservedRuntime(runtime: "runc", noNewPrivileges: true)))
        XCTAssertTrue(missing.contains("fstatfs"), "\(missing)")
    }

    /// What the kernel saw a runtime call after the filter, beyond every measured allowance, is
    /// new (learning goes on), kept in the profile's runtime part, and reported.
    func testRuntimeCallsBeyondTheAllowanceAreLearnedAsTheRuntimes() throws {
        var learner = learned(workload: ["read"], runtimeAfterFilter: ["capset", "close"])
        XCTAssertEqual(learner.runtimeCallsBeyondAllowance, [], "both are in runc's allowance")
        XCTAssertFalse(learner.observeSyscalls(CgroupSyscalls(workload: bitmap(["read"]), runtimeAfterFilter: bitmap(["capset"])),
                                               now: start.addingTimeInterval(5)))
        XCTAssertTrue(learner.observeSyscalls(CgroupSyscalls(workload: bitmap(["read"]), runtimeAfterFilter: bitmap(["close_range"])),
                                              now: start.addingTimeInterval(10)), "a call no allowance lists is new")
        XCTAssertEqual(learner.runtimeCallsBeyondAllowance, ["close_range"])
        let profile = learner.snapshot()
        XCTAssertEqual(profile.syscalls.x86_64, ["read"])
        XCTAssertTrue(try XCTUnwrap(profile.seccomp).runtime.contains("close_range"))
        // A restarted learner keeps it.
        XCTAssertEqual(Learner(profile: profile, resolver: resolver).runtimeCallsBeyondAllowance, ["close_range"])
    }

    /// Learning does not either: a contended spin lock's sched_yield first seen after minutes is
    /// kept in the profile, but the quiet period does not start again for it (every filter allows
    /// it anyway); a call outside the baseline still does.
    func testABaselineCallSeenLateDoesNotRestartLearning() throws {
        var learner = learned(workload: ["read"], runtimeAfterFilter: [])
        let lastNew = learner.snapshot().learning.lastNew
        XCTAssertFalse(learner.observeSyscalls(CgroupSyscalls(workload: bitmap(["read", "sched_yield", "exit_group"])),
                                               now: start.addingTimeInterval(300)))
        XCTAssertEqual(learner.snapshot().learning.lastNew, lastNew)
        XCTAssertEqual(learner.snapshot().syscalls.x86_64, ["exit_group", "read", "sched_yield"])
        XCTAssertTrue(learner.observeSyscalls(CgroupSyscalls(workload: bitmap(["read", "sched_yield", "mremap"])),
                                              now: start.addingTimeInterval(400)))
        XCTAssertEqual(learner.snapshot().learning.lastNew, start.addingTimeInterval(400))
    }

    /// Monitoring does not call the asynchronous baseline new: a sleep restarted after a signal
    /// is timing, not an attack.
    func testTheDetectorExpectsTheBaseline() throws {
        var learner = learned(workload: ["read", "nanosleep"])
        learner.stabilize(now: start)
        let detector = Detector(profile: learner.profile, resolver: resolver)
        XCTAssertEqual(detector.unexpectedSyscalls(bitmap(["read", "restart_syscall", "rt_sigreturn", "exit_group"])).count, 0)
        XCTAssertEqual(detector.unexpectedSyscalls(bitmap(["read", "ptrace"])).map(\.number), [resolver.number(of: "ptrace", abi: .x86_64)!])
    }

    func testObservedRuntimesAndStopsAreLearningEvidence() throws {
        var learner = learned(workload: ["read"])
        learner.observeRuntime(ObservedRuntime(runtime: "runc", noNewPrivileges: true))
        learner.observeRuntime(ObservedRuntime(runtime: "runc", noNewPrivileges: false))
        learner.observeRuntime(ObservedRuntime(runtime: "runc", noNewPrivileges: true))
        learner.observeContainerStop()
        let profile = learner.snapshot()
        XCTAssertEqual(profile.learning.runtimes, [ObservedRuntime(runtime: "runc", noNewPrivileges: false),
                                                   ObservedRuntime(runtime: "runc", noNewPrivileges: true)])
        XCTAssertEqual(profile.learning.stoppedContainers, 1)
    }
}
