import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilRuntime
import VigilSeccomp
import XCTest

/// Seccomp profiles generated from what a containerised workload really called, proven by the
/// kernel: the workload runs under runc with the generated `linux.seccomp`, with and without
/// no_new_privs, and does what it did unconfined; a syscall it never made is refused.
final class SeccompTests: XCTestCase {
    let resolver = SeccompSyscallResolver()
    let workload = ["sh", "-c", "echo hello; cat /etc/hostname; ls /; id -u"]

    private func names(_ bitmap: SyscallBitmap) -> Set<String> {
        Set((0..<SyscallBitmap.slots).filter { bitmap.contains($0, abi: .x86_64) }.compactMap { resolver.name(of: $0, abi: .x86_64) })
    }

    /// Records the workload in a runc container; returns what the kernel saw and the output.
    private func record(noNewPrivileges: Bool) throws -> (CgroupSyscalls, RuncContainer.Result) {
        try RuncContainer.available()
        let traced = try TracedCgroup(self)
        let container = try RuncContainer(self, args: workload, cgroupsPath: traced.path + "/ctr", noNewPrivileges: noNewPrivileges,
                                          seccomp: RuncContainer.recordingFilter)
        let result = try container.run()
        XCTAssertEqual(result.status, 0, result.output)
        return (try traced.syscallsBelow(), result)
    }

    private func profile(from syscalls: CgroupSyscalls) -> Profile {
        var learner = Learner.start(workload: "busybox", modelPaths: [], minDuration: 0, quietPeriod: 0, now: Date(), resolver: resolver)
        learner.observeSyscalls(syscalls, now: Date())
        learner.stabilize(now: Date())
        return learner.profile
    }

    func testGeneratedProfileRunsTheWorkloadUnderRuncWithAndWithoutNoNewPrivs() throws {
        try KernelTestSupport.requireRoot()
        for noNewPrivileges in [true, false] {
            let (syscalls, recorded) = try record(noNewPrivileges: noNewPrivileges)
            XCTAssertEqual(recorded.output, "hello\nmodel-server\nbin\ndev\netc\nproc\nsys\ntmp\n0\n")
            let before = names(syscalls.runtimeBeforeFilter), after = names(syscalls.runtimeAfterFilter)
            // runc sets the container up before the filter: none of that is the workload's.
            XCTAssertTrue(before.isSuperset(of: ["pivot_root", "mount", "sethostname", "seccomp"]), "\(before.sorted())")
            XCTAssertFalse(names(syscalls.workload).contains("pivot_root"))
            if noNewPrivileges {
                // With no_new_privs runc installs the filter last: its credentials are set before.
                XCTAssertFalse(after.contains("capset"), "\(after.sorted())")
                XCTAssertTrue(before.contains("capset"))
            } else {
                // Without it the filter goes in first and runc drops privileges under it.
                XCTAssertTrue(after.contains("capset"), "\(after.sorted())")
            }

            let profile = profile(from: syscalls)
            let oci = SeccompPolicy.oci(profile, mode: .enforce)
            let allowed = oci.names(withAction: "SCMP_ACT_ALLOW")
            XCTAssertFalse(allowed.contains("pivot_root"), "what only runc calls before the filter is not allowed")
            XCTAssertFalse(allowed.contains("mount"))
            XCTAssertTrue(allowed.isSuperset(of: ["execve", "exit", "exit_group"]))
            if !allowed.contains("clone3") {
                XCTAssertEqual(oci.syscalls.first { $0.names == ["clone3"] }?.errnoRet, 38, "clone3 gets ENOSYS, not EPERM")
            }

            let confined = try RuncContainer(self, args: workload, cgroupsPath: "/vigil-seccomp-\(getpid())", noNewPrivileges: noNewPrivileges,
                                             seccomp: oci)
            XCTAssertEqual(try confined.run(), recorded, "no_new_privs=\(noNewPrivileges): same output and status under the profile")

            // A syscall the workload never made: refused with EPERM, or the process killed.
            let attack = ["sh", "-c", "echo hello; cat /etc/hostname; unshare -m true; echo status=$?"]
            let denied = try RuncContainer(self, args: attack, cgroupsPath: "/vigil-seccomp-\(getpid())", noNewPrivileges: noNewPrivileges,
                                           seccomp: oci).run()
            XCTAssertTrue(denied.output.hasSuffix("status=1\n"), denied.output)
            XCTAssertTrue(denied.output.contains("model-server\n"))
            let killed = try RuncContainer(self, args: attack, cgroupsPath: "/vigil-seccomp-\(getpid())", noNewPrivileges: noNewPrivileges,
                                           seccomp: SeccompPolicy.oci(profile, mode: .kill)).run()
            XCTAssertTrue(killed.output.hasSuffix("status=159\n"), "killed by SIGSYS (128 + 31): \(killed.output)")
        }
    }

    /// `vigil seccomp verify`'s runner: libseccomp compiles the profile, the child sets
    /// no_new_privs and installs it before exec.
    func testVerifierRunsACommandUnderTheProfile() throws {
        let (syscalls, _) = try record(noNewPrivileges: true)
        let oci = SeccompPolicy.oci(profile(from: syscalls), mode: .enforce)
        let same = try SeccompVerifier.verify(oci, command: ["/bin/busybox", "echo", "hello"])
        XCTAssertEqual(same.unconfined, same.confined)
        XCTAssertEqual(String(decoding: same.confined.output, as: UTF8.self), "hello\n")
        let differs = try SeccompVerifier.verify(oci, command: ["/bin/busybox", "unshare", "-m", "true"])
        XCTAssertEqual(differs.unconfined.status, .exited(0))
        XCTAssertEqual(differs.confined.status, .exited(1), "unshare(2) refused with EPERM under the profile")
    }

    /// Complain mode: what the profile would have denied is logged by the kernel (audit type
    /// 1326) and read back wherever the node sends it — the kernel log without auditd, auditd's
    /// log with it. Both are tried: the machine as it is, then the other way where the test can
    /// arrange it without disturbing the machine (its own auditd, stopped after, when none runs).
    func testComplainModeRecordsAreFoundWithAuditdAndWithout() throws {
        try KernelTestSupport.requireRoot()
        let (syscalls, _) = try record(noNewPrivileges: true)
        let profile = profile(from: syscalls)
        XCTAssertFalse(profile.syscalls.x86_64.contains("unshare"))
        let complain = try SeccompFilter(SeccompPolicy.oci(profile, mode: .complain))
        XCTAssertEqual(SeccompPolicy.oci(profile, mode: .complain).defaultAction, "SCMP_ACT_LOG")

        /// Runs the trial until the kernel's record of unshare is found, and returns the source
        /// lines of the reading that found it. Without auditd the kernel prints at most 10
        /// records per 5 s, so after a noisy test a record can be lost: the trial is run again
        /// once the window has passed.
        func trial() throws -> [String] {
            for attempt in 0..<3 {
                if attempt > 0 { usleep(5_500_000) }
                let run = try SeccompVerifier.run(["/bin/busybox", "unshare", "-m", "true"], filter: complain)
                XCTAssertEqual(run.status, .exited(0), "complain mode denies nothing")
                for _ in 0..<30 { // auditd writes its log asynchronously
                    let reading = SeccompLogSources.readAll()
                    let logged = reading.records.filter { $0.isLogAction && ($0.exe == "/usr/bin/busybox" || $0.exe == "/bin/busybox") }
                    if logged.contains(where: { resolver.name(of: $0.syscall, abi: $0.abi) == "unshare" }) { return reading.sources }
                    usleep(100_000)
                }
            }
            XCTFail("the record of unshare was found in no source: \(SeccompLogSources.readAll().sources)")
            return []
        }

        let auditdRuns = SeccompLogSources.readAll().sources.contains { $0.hasPrefix("auditd's log") }
        let sources = try trial()
        XCTAssertTrue(sources.contains { $0.hasPrefix(auditdRuns ? "auditd's log" : "the kernel log") && !$0.hasSuffix(": 0 records") },
                      "\(sources)")
        guard !auditdRuns else {
            print("auditd runs on this machine: the test read its log; it does not stop it to try the kernel log")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/auditd") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("auditd is missing: scripts/setup installs it") }
            throw XCTSkip("the case with auditd needs auditd installed (scripts/setup installs it)")
        }
        let auditd = try PrivateAuditd(self)
        defer { auditd.stop() }
        let withAuditd = try trial()
        XCTAssertTrue(withAuditd.contains { $0.hasPrefix("auditd's log \(auditd.logFile)") && !$0.hasSuffix(": 0 records") }, "\(withAuditd)")
    }
}

/// An auditd of the test's own (its configuration and log in a temporary directory), for a
/// machine that runs none: the kernel then sends its audit records there instead of its log.
/// Stopped, and the kernel's audit switch put back as it was, when the test ends.
final class PrivateAuditd {
    let directory: String
    var logFile: String { directory + "/audit.log" }
    private let process = Process()
    private let wasEnabled: Bool

    init(_ test: XCTestCase) throws {
        directory = try KernelTestSupport.temporaryDirectory()
        wasEnabled = (try? Self.auditctl(["-s"]))?.contains("enabled 1") ?? false
        var config = (try? String(contentsOfFile: "/etc/audit/auditd.conf", encoding: .utf8)) ?? ""
        config = config.split(separator: "\n").filter { !$0.hasPrefix("log_file") }.joined(separator: "\n")
        try (config + "\nlog_file = \(logFile)\n").write(toFile: directory + "/auditd.conf", atomically: true, encoding: .utf8)
        chmod(directory + "/auditd.conf", 0o640)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/auditd")
        process.arguments = ["-n", "-c", directory]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<50 where !((try? Self.auditctl(["-s"]))?.contains("pid \(process.processIdentifier)") ?? false) { usleep(100_000) }
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if !wasEnabled { _ = try? Self.auditctl(["-e", "0"]) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func auditctl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/auditctl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
