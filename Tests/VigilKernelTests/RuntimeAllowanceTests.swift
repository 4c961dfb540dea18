import Foundation
import VigilAgent
import VigilCore
import VigilRuntime
import VigilSeccomp
import VigilTestSupport
import XCTest

/// The runtime allowances (`SeccompAllowances.runtimes`) are measurements, and this is the
/// measuring instrument: the installed runtime starts a container under a filter that allows and
/// logs everything (`SCMP_ACT_LOG`), in both no_new_privs modes; the kernel's audit records (read
/// from its audit multicast group, whether auditd runs or not, without the kernel log's rate
/// limit) name every call the runtime made after the filter went in, before the entrypoint ran.
/// A call the allowance lacks fails the test: a runtime upgrade that needs one breaks CI, not
/// the pods of the nodes that upgrade.
final class RuntimeAllowanceTests: XCTestCase {
    private let resolver = SeccompSyscallResolver()
    private let logEverything = OCISeccomp(defaultAction: "SCMP_ACT_LOG", architectures: ["SCMP_ARCH_X86_64"], syscalls: [])
    /// The entrypoint: after its exec the records are busybox's (comm "busybox"), before they
    /// were the runtime's.
    private let entrypoint = ["/bin/busybox", "true"]

    private func runtimeCalls(in records: [SeccompAuditRecord]) -> Set<String> {
        Set(records.filter { $0.isLogAction && $0.comm != "busybox" && $0.abi == .x86_64 }
            .compactMap { resolver.name(of: $0.syscall, abi: .x86_64) })
    }

    /// Runs `start` `runs` times per no_new_privs mode; checks what the runtime called against its allowance.
    private func measure(runtime: String, runs: Int, file: StaticString = #filePath, line: UInt = #line,
                         _ start: (_ noNewPrivileges: Bool) throws -> Void) throws {
        for noNewPrivileges in [false, true] {
            let allowance = try XCTUnwrap(SeccompAllowances.allowance(runtime: runtime, noNewPrivileges: noNewPrivileges))
            var seen: Set<String> = []
            for _ in 0..<runs {
                let listener = try AuditListener()
                try start(noNewPrivileges)
                seen.formUnion(runtimeCalls(in: listener.seccompRecords()))
            }
            print("measured \(runtime) no_new_privs=\(noNewPrivileges) (\(runs) runs): \(seen.sorted().joined(separator: " "))")
            XCTAssertTrue(seen.contains("execve"), "the measurement saw \(runtime) exec the entrypoint under the filter", file: file, line: line)
            XCTAssertEqual(seen.subtracting(allowance.syscalls).sorted(), [],
                           "\(runtime) (no_new_privs \(noNewPrivileges)) called these after installing the filter; "
                               + "add them to SeccompAllowances with the version measured", file: file, line: line)
        }
    }

    func testRuncNeedsNothingBeyondItsAllowance() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        try measure(runtime: "runc", runs: 5) { noNewPrivileges in
            let container = try RuncContainer(self, args: entrypoint, cgroupsPath: "/vigil-allowance-\(getpid())",
                                              noNewPrivileges: noNewPrivileges, seccomp: logEverything)
            XCTAssertEqual(try container.run().status, 0)
        }
    }

    /// The same runc as containerd's runc v2 shim drives it for a pod with a Localhost profile.
    func testRuncUnderContainerdNeedsNothingBeyondItsAllowance() throws {
        try KernelTestSupport.requireRoot()
        if let reason = Containerd.unavailableReason() {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        let work = try KernelTestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: work) }
        try logEverything.json().write(to: URL(fileURLWithPath: work + "/log.json"))
        let containerd = try Containerd(cgroupMount: try CgroupHierarchy.system().mountPoint)
        defer { containerd.stop() }
        try measure(runtime: "runc", runs: 3) { noNewPrivileges in
            var request = Containerd.PodRequest(name: "allowance-7d9c8f6b5-x2k4p", command: entrypoint)
            request.seccomp = .localhost(work + "/log.json")
            request.noNewPrivileges = noNewPrivileges
            let pod = try containerd.runPod(request)
            for _ in 0..<50 where try containerd.status(pod).state != "CONTAINER_EXITED" { usleep(50_000) }
            XCTAssertEqual(try containerd.status(pod).exitCode, 0)
            containerd.removePod(pod)
        }
    }

    func testCrunNeedsNothingBeyondItsAllowance() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        guard RuncContainer.crunAvailable else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("crun is missing: scripts/setup installs it") }
            throw XCTSkip("needs crun (scripts/setup installs it)")
        }
        try measure(runtime: "crun", runs: 5) { noNewPrivileges in
            let container = try RuncContainer(self, args: entrypoint, cgroupsPath: "/vigil-allowance-\(getpid())",
                                              noNewPrivileges: noNewPrivileges, seccomp: logEverything)
            XCTAssertEqual(try container.runWithCrun().status, 0)
        }
    }
}
