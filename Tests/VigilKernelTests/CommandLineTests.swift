import Foundation
import VigilCore
import VigilProfiles
import Yams
import XCTest

/// The vigil binary built beside the tests, run as a user runs it.
enum VigilBinary {
    /// The vigil built beside the tests, or $VIGIL_BINARY (scripts/learn-agent-profile points it at a release build).
    static var path: String {
        ProcessInfo.processInfo.environment["VIGIL_BINARY"] ?? (KernelTestSupport.workload as NSString).deletingLastPathComponent + "/vigil"
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }
}

/// The vigil binary as a user runs it.
final class CommandLineTests: XCTestCase {
    private var vigil: String { VigilBinary.path }
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) { try VigilBinary.run(arguments) }

    func testFlagsAreValidatedWithAClearError() throws {
        var result = try run(["trace"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.error.contains("give exactly one of: -- COMMAND, --cgroup PATH, --all"), result.error)
        result = try run(["trace", "--all", "--", "true"])
        XCTAssertTrue(result.error.contains("give exactly one of"), result.error)
        result = try run(["trace", "--ring-buffer-size", "1000", "--", "true"])
        XCTAssertTrue(result.error.contains("must be a power of two"), result.error)
        result = try run(["learn", "--workload", "w", "--min-duration", "soon", "--", "true"])
        XCTAssertTrue(result.error.contains("min-duration"), result.error)
        result = try run(["monitor", "--workload", "nobody", "--profiles", NSTemporaryDirectory() + "none", "--", "true"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("no profile for nobody"), result.error)
        XCTAssertTrue(result.error.contains("vigil learn --workload nobody"), result.error)
    }

    /// `vigil trace --cgroup PATH` watches an existing cgroup until it is told to stop.
    func testTraceWatchesAnExistingCgroupUntilInterrupted() throws {
        try KernelTestSupport.requireRoot()
        let traced = try TracedCgroup(self) // only for the cgroup and the workload
        let directory = try KernelTestSupport.temporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vigil)
        process.arguments = ["trace", "--cgroup", traced.hierarchy.directory(of: traced.path), "--node", "cli"]
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Loading and verifying the programs takes seconds (more on a busy machine): a write a
        // second until vigil has had 20 s, so one lands once it watches.
        for attempt in 0..<20 {
            sleep(1)
            try traced.run(["write:\(directory)/probe\(attempt)"])
        }
        usleep(500_000)
        process.interrupt()
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, errors)
        XCTAssertTrue(lines.contains("\"path\":\"\(directory)/probe19\""), lines)
        XCTAssertTrue(lines.contains("\"node\":\"cli\""))
    }
}

/// `vigil seccomp export/install/absorb-log` on a stored profile.
final class SeccompCommandLineTests: XCTestCase {
    private var vigil: String { VigilBinary.path }
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) { try VigilBinary.run(arguments) }

    private func store() throws -> String {
        let root = NSTemporaryDirectory() + "vigil-cli-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: root) }
        let profile = Profile(workload: "ml/deployment/llm/server", state: .stable,
                              learning: LearningEvidence(started: Date(), lastNew: Date(), minDuration: 0, quietPeriod: 0),
                              execs: [ExecRule(exe: "/usr/bin/python3.11", parent: "(runtime)")],
                              syscalls: SyscallLists(x86_64: ["read", "write", "openat", "clone3"]))
        try DirectoryProfileStore(root: root).save(profile)
        return root
    }

    func testInstallWritesTheOCIProfileWhereTheKubeletReadsIt() throws {
        let profiles = try store()
        let seccompRoot = profiles + "/kubelet-seccomp"
        let result = try run(["seccomp", "install", "--workload", "ml/deployment/llm/server", "--profiles", profiles,
                              "--seccomp-root", seccompRoot])
        XCTAssertEqual(result.status, 0, result.error)
        let file = seccompRoot + "/vigil/ml.deployment.llm.server.json"
        let oci = try JSONDecoder().decode(OCISeccomp.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        XCTAssertEqual(oci.defaultAction, "SCMP_ACT_ERRNO")
        // One rule per origin: the workload's calls, what only the runtimes need, the baseline.
        XCTAssertEqual(oci.syscalls.map(\.action), ["SCMP_ACT_ALLOW", "SCMP_ACT_ALLOW", "SCMP_ACT_ALLOW"])
        XCTAssertEqual(oci.syscalls[0].names, ["clone3", "openat", "read", "write"])
        XCTAssertTrue(Set(oci.syscalls[1].names).isSuperset(of: ["capset", "setgroups", "fstatfs", "execve", "futex"]), "\(oci.syscalls[1].names)")
        XCTAssertEqual(oci.syscalls[2].names, ["exit", "exit_group", "restart_syscall"], "rt_sigreturn and tgkill are among runc's calls already")
        XCTAssertNil(oci.syscalls.first { $0.action == "SCMP_ACT_ERRNO" }, "clone3 was observed: no ENOSYS rule")
        XCTAssertTrue(result.output.contains("type: Localhost"))
        XCTAssertTrue(result.output.contains("localhostProfile: vigil/ml.deployment.llm.server.json"))
    }

    func testSPOExportIsASeccompProfileResource() throws {
        let profiles = try store()
        let result = try run(["seccomp", "export", "--workload", "ml/deployment/llm/server", "--profiles", profiles,
                              "--format", "spo", "--namespace", "ml"])
        XCTAssertEqual(result.status, 0, result.error)
        let resource = try XCTUnwrap(try Yams.load(yaml: result.output) as? [String: Any])
        XCTAssertEqual(resource["apiVersion"] as? String, "security-profiles-operator.x-k8s.io/v1beta1")
        XCTAssertEqual(resource["kind"] as? String, "SeccompProfile")
        let metadata = try XCTUnwrap(resource["metadata"] as? [String: Any])
        let name = try XCTUnwrap(metadata["name"] as? String)
        XCTAssertTrue(name.hasPrefix("ml-deployment-llm-server-") && name.count == "ml-deployment-llm-server-".count + 10, name)
        XCTAssertEqual(metadata["namespace"] as? String, "ml")
        let spec = try XCTUnwrap(resource["spec"] as? [String: Any])
        XCTAssertEqual(spec["defaultAction"] as? String, "SCMP_ACT_ERRNO")
        let allowed = SeccompPolicy.oci(try XCTUnwrap(try DirectoryProfileStore(root: profiles).latest(workload: "ml/deployment/llm/server")))
            .names(withAction: "SCMP_ACT_ALLOW").count
        XCTAssertTrue(result.error.contains("allows \(allowed) of the 368 x86_64 syscalls: 4 the workload made;"), result.error)
    }

    func testAbsorbLogAddsWhatAComplainRunLoggedAsANewVersion() throws {
        let profiles = try store()
        let log = profiles + "/kmsg.txt"
        try """
        6,1234,5678,-;audit: type=1326 audit(1.2:3): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=42 comm="python3" exe="/usr/bin/python3.11" sig=0 arch=c000003e syscall=272 compat=0 ip=0x7f code=0x7ffc0000
        6,1235,5679,-;audit: type=1326 audit(1.2:4): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=43 comm="sh" exe="/bin/sh" sig=0 arch=c000003e syscall=101 compat=0 ip=0x7f code=0x7ffc0000
        6,1236,5680,-;audit: type=1326 audit(1.2:5): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=42 comm="python3" exe="/usr/bin/python3.11" sig=0 arch=40000003 syscall=26 compat=1 ip=0x7f code=0x7ffc0000
        """.write(toFile: log, atomically: true, encoding: .utf8)
        let result = try run(["seccomp", "absorb-log", "--workload", "ml/deployment/llm/server", "--profiles", profiles, "--log", log])
        XCTAssertEqual(result.status, 0, result.error)
        let updated = try XCTUnwrap(try DirectoryProfileStore(root: profiles).latest(workload: "ml/deployment/llm/server"))
        XCTAssertEqual(updated.version, 2)
        XCTAssertTrue(updated.syscalls.x86_64.contains("unshare"), "syscall 272 on x86_64")
        XCTAssertFalse(updated.syscalls.x86_64.contains("ptrace"), "logged for /bin/sh, not one of the profile's binaries")
        XCTAssertEqual(updated.syscalls.i386, ["ptrace"], "i386 26 is ptrace, named through the i386 table")
    }
}
