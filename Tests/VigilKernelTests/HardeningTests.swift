import Crypto
import Foundation
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// What a hostile tester and a careless user found, each turned into a test: fileless binaries,
/// workloads that escape, output lost silently, traps, and errors nobody could act on.
final class HardeningTests: XCTestCase {
    private var workloadBinary: String { KernelTestSupport.workload }

    private func sha256(_ path: String) throws -> String {
        "sha256:" + SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: path))).map { String(format: "%02x", $0) }.joined()
    }

    /// Runs vigil with a deadline; a process still running at it is killed and reported.
    private func vigil(_ arguments: [String], stdout: FileHandle? = nil, seconds: Double = 20) throws -> (status: Int32, error: String, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: VigilBinary.path)
        process.arguments = arguments
        let error = Pipe(), output = Pipe()
        process.standardError = error
        process.standardOutput = stdout ?? output
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTFail("vigil \(arguments) still ran after \(seconds) s")
        }
        process.waitUntilExit()
        let out = stdout == nil ? String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) : ""
        return (process.terminationStatus, String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), out)
    }

    private func lines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    // MARK: fileless binaries

    /// A binary exec'd from memfd_create is reported as what it is (`memfd:NAME`, fileless, with
    /// its content's digest); one exec'd from a deleted file carries the flag. (Before: `exe: "/"`
    /// for every fileless binary, so once one payload was learned, any other passed.)
    /// The payloads live 0.3 s: the digest is read from /proc while the process runs, and one
    /// that exits first has none (the detector then matches no learned fileless binary).
    func testFilelessAndDeletedBinariesAreReportedAsSuch() throws {
        try KernelTestSupport.requireRoot()
        let busybox = KernelTestSupport.realpath("/bin/busybox")
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let result = try vigil(["trace", "--", workloadBinary, "memfd-exec:payload:\(busybox):sleep:0.3"])
        XCTAssertEqual(result.status, 0, result.error)
        let memfd = try XCTUnwrap(lines(result.output).first { $0["kind"] as? String == "process.exec" && $0[path: "process.exe_fileless"] != nil })
        XCTAssertEqual(memfd[path: "process.exe"] as? String, "memfd:payload")
        XCTAssertEqual(memfd[path: "process.exe_sha256"] as? String, try sha256(busybox))
        XCTAssertEqual(memfd[path: "process.exe_deleted"] as? Bool, true)

        let deleted = try vigil(["trace", "--", workloadBinary, "deleted-exec:\(work)/dropped:\(busybox):sleep:0.3"])
        XCTAssertEqual(deleted.status, 0, deleted.error)
        let exec = try XCTUnwrap(lines(deleted.output).first { $0[path: "process.exe_deleted"] as? Bool == true })
        XCTAssertEqual(exec[path: "process.exe"] as? String, "\(work)/dropped")
        XCTAssertNil(exec[path: "process.exe_fileless"], "it had a path")
        XCTAssertEqual(exec[path: "process.exe_sha256"] as? String, try sha256(busybox))
    }

    /// A fileless exec is an anomaly of its own unless the profile learned exactly that
    /// binary — name and content: a different payload under the same memfd name is caught.
    func testAFilelessPayloadMatchesOnlyTheExactBinaryLearned() throws {
        try KernelTestSupport.requireRoot()
        let busybox = KernelTestSupport.realpath("/bin/busybox"), other = KernelTestSupport.realpath("/bin/sleep")
        let profiles = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: profiles) }
        let learned = try vigil(["learn", "--workload", "dropper", "--profiles", profiles, "--min-duration", "1h", "--",
                                 workloadBinary, "memfd-exec:payload:\(busybox):sleep:0.3"])
        XCTAssertEqual(learned.status, 0, learned.error)
        XCTAssertEqual(try vigil(["profile", "promote", "dropper", "--profiles", profiles]).status, 0)
        let profile = try XCTUnwrap(try DirectoryProfileStore(root: profiles).latest(workload: "dropper"))
        XCTAssertTrue(profile.execs.contains { $0.exe == "fileless:memfd:payload@\((try? sha256(busybox)) ?? "")" }, "\(profile.execs)")

        let same = try vigil(["monitor", "--workload", "dropper", "--profiles", profiles, "--", workloadBinary, "memfd-exec:payload:\(busybox):sleep:0.3"])
        XCTAssertFalse(lines(same.output).contains { $0[path: "anomaly.rule"] as? String == "fileless-exec" }, same.output)
        let swapped = try vigil(["monitor", "--workload", "dropper", "--profiles", profiles, "--", workloadBinary, "memfd-exec:payload:\(other):0.3"])
        let anomaly = try XCTUnwrap(lines(swapped.output).first { $0[path: "anomaly.rule"] as? String == "fileless-exec" }, swapped.output)
        XCTAssertEqual(anomaly[path: "anomaly.severity"] as? String, "high")
        XCTAssertEqual(anomaly[path: "event.process.exe_sha256"] as? String, try sha256(other))
    }

    // MARK: workloads that escape, output lost

    /// `vigil seccomp run -- /nonexistent` exits at once with the reason. (Before: the failed
    /// exec returned to Swift with the filter in place, and vigil spun at 100 % CPU.)
    func testSeccompRunOfAMissingCommandFailsAtOnce() throws {
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let profile = OCISeccomp(defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1, architectures: ["SCMP_ARCH_X86_64"],
                                 syscalls: [.init(names: ["read", "write", "execve", "exit_group"], action: "SCMP_ACT_ALLOW")])
        try profile.json().write(to: URL(fileURLWithPath: work + "/p.json"))
        var result = try vigil(["seccomp", "run", "--profile", work + "/p.json", "--", "/nonexistent"], seconds: 5)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("No such file or directory"), result.error)
        // Found, but the exec fails under the filter (a file that is not a program): exit 127, now.
        try "not a program\n".write(toFile: work + "/text", atomically: true, encoding: .utf8)
        chmod(work + "/text", 0o755)
        result = try vigil(["seccomp", "run", "--profile", work + "/p.json", "--", work + "/text"], seconds: 5)
        XCTAssertEqual(result.status, 127, result.error)
    }

    /// vigil killed with SIGKILL: its command dies with it (not left running unwatched), and the
    /// next vigil removes the cgroup it left.
    func testAKilledVigilTakesItsCommandWithItAndItsCgroupIsRemovedLater() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let marker = "\(UInt32.random(in: 100_000...999_999))" // seconds to sleep: a unique argument
        let process = Process()
        process.executableURL = URL(fileURLWithPath: VigilBinary.path)
        process.arguments = ["trace", "--", "/bin/busybox", "sleep", marker]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let cgroup = "/vigil-\(process.processIdentifier)"
        var sleeper: Int32?
        for _ in 0..<600 where sleeper == nil { // vigil starts its command once its programs are loaded
            usleep(50_000)
            sleeper = Self.pid(withArgument: marker)
        }
        XCTAssertNotNil(sleeper, "the command started")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // Gone from /proc's command lines (its memory released) is not yet out of its cgroup: the
        // next vigil removes a cgroup that holds no process, so wait for the kernel to say so.
        let events = hierarchy.directory(of: cgroup) + "/cgroup.events"
        func populated() -> Bool { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("populated 1") }
        for _ in 0..<100 where Self.pid(withArgument: marker) != nil || populated() { usleep(50_000) }
        XCTAssertNil(Self.pid(withArgument: marker), "the command died with vigil (PDEATHSIG)")
        XCTAssertFalse(populated(), "the command left its cgroup")
        XCTAssertTrue(FileManager.default.fileExists(atPath: hierarchy.directory(of: cgroup)), "a SIGKILLed vigil cannot clean up")
        XCTAssertEqual(try vigil(["trace", "--", "true"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: hierarchy.directory(of: cgroup)), "the next vigil removed it")
        // And a command that cannot start leaves no cgroup either.
        let before = try FileManager.default.contentsOfDirectory(atPath: hierarchy.mountPoint).filter { $0.hasPrefix("vigil-") }
        let missing = try vigil(["trace", "--", "/nonexistent"])
        XCTAssertEqual(missing.status, 2, missing.error)
        XCTAssertTrue(missing.error.contains("cannot start /nonexistent"), missing.error)
        let after = try FileManager.default.contentsOfDirectory(atPath: hierarchy.mountPoint).filter { $0.hasPrefix("vigil-") }
        XCTAssertEqual(Set(after).subtracting(before), [])
    }

    /// A process whose command line has this argument (its program, or one of its arguments).
    static func pid(withArgument argument: String) -> Int32? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != getpid(), let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                  let name = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8), !name.hasPrefix("vigil") else { continue }
            if cmdline.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == argument }) { return pid }
        }
        return nil
    }

    /// The reader of vigil's output goes away (`vigil trace -- … | head -c 1`): vigil stops,
    /// says why, and its command goes too. (Before: SIGPIPE killed vigil and left the command
    /// running, unwatched.)
    func testAClosedOutputStopsTheCaptureAndItsCommand() throws {
        try KernelTestSupport.requireRoot()
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let pipe = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: VigilBinary.path)
        process.arguments = ["trace", "--", workloadBinary, "writes:100000000:\(work)/f"]
        process.standardOutput = pipe
        let error = Pipe()
        process.standardError = error
        try process.run()
        _ = pipe.fileHandleForReading.readData(ofLength: 1)
        try pipe.fileHandleForReading.close()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(process.isRunning, "vigil stopped")
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, "not killed by SIGPIPE")
        XCTAssertEqual(process.terminationStatus, 2)
        let message = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(message.contains("standard output: the reader went away"), message)
        XCTAssertNil(Self.pid(withArgument: workloadBinary), "the command was stopped too")
    }

    /// Output that cannot be written is an error, with how many event lines were lost.
    /// (Before: stdout or --record on a full device exited 0.)
    func testAFullDeviceIsAnErrorNotASilentLoss() throws {
        try KernelTestSupport.requireRoot()
        let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
        var result = try vigil(["trace", "--", workloadBinary, "write:/tmp/vigil-full-\(getpid())"], stdout: full)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("No space left on device") && result.error.contains("event lines lost"), result.error)
        result = try vigil(["trace", "--record", "/dev/full", "--", workloadBinary, "write:/tmp/vigil-full-\(getpid())"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("--record /dev/full: No space left on device"), result.error)
        unlink("/tmp/vigil-full-\(getpid())")
    }

    /// A file name that is not UTF-8 keeps its bytes: the JSON string shows replacement
    /// characters, and `path_base64` holds the name as it is.
    func testANameThatIsNotUTF8StaysRecoverable() throws {
        try KernelTestSupport.requireRoot()
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let name = Array("\(work)/bad-".utf8) + [0xff, 0xfe] + Array(".txt".utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: VigilBinary.path)
        let target = String(decoding: name, as: UTF8.self)
        _ = target
        // The argument must carry the raw bytes: run through a shell with printf.
        process.arguments = ["trace", "--", "/bin/busybox", "sh", "-c", "echo x > \"$(printf '\(work)/bad-\\377\\376.txt')\""]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let write = try XCTUnwrap(lines(String(decoding: data, as: UTF8.self)).first { $0["kind"] as? String == "file.write" })
        let base64 = try XCTUnwrap(write[path: "file.path_base64"] as? String, "\(write)")
        XCTAssertEqual(Data(base64Encoded: base64), Data(name))
        XCTAssertTrue((write[path: "file.path"] as? String)?.contains("\u{FFFD}") ?? false)
    }

    // MARK: traps and errors a person can act on

    func testTrapsAndRawErrorsAreGone() throws {
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let profiles = work + "/profiles"
        let start = Date()
        let highest = Profile(workload: "top", version: ProfileCodec.maximumVersion, state: .stable,
                              learning: LearningEvidence(started: start, lastNew: start, minDuration: 0, quietPeriod: 0))
        try DirectoryProfileStore(root: profiles).save(highest)
        try "x\n".write(toFile: work + "/a-file", atomically: true, encoding: .utf8)
        try Data([0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: work + "/binary.log"))
        let cases: [(arguments: [String], expected: String)] = [
            (["profile", "show", ""], "give a workload name"),
            (["seccomp", "install", "--workload", "@", "--profiles", profiles, "--seccomp-root", work + "/s"], "no profile for @"),
            (["seccomp", "export", "--workload", "top@9223372036854775807", "--profiles", profiles], "a version is a number from 1 to"),
            (["learn", "--workload", "top", "--profiles", profiles, "--relearn", "--", "true"], "highest version"),
            (["seccomp", "absorb-log", "--workload", "top", "--profiles", profiles, "--log", work + "/missing.log"],
             "--log \(work)/missing.log: cannot read: No such file or directory"),
            (["seccomp", "export", "--workload", "top", "--profiles", work + "/a-file"], "is a file, not a directory"),
            (["learn", "--workload", String(repeating: "w", count: 600), "--", "true"], "a workload name has at most 512"),
            (["learn", "--workload", "a//b", "--", "true"], "single slashes"),
            (["trace", "--cgroup", ""], "--cgroup must name a cgroup"),
            (["learn", "--workload", "w", "--min-duration", "inf", "--", "true"], "min-duration"),
            (["learn", "--workload", "w", "--min-duration", "nans", "--", "true"], "min-duration"),
            (["learn", "--workload", "w", "--quiet-period", "99999999999999999999d", "--", "true"], "quiet-period"),
            (["monitor", "--workload", "w", "--rate-limit", "nan", "--", "true"], "--rate-limit"),
        ]
        for (arguments, expected) in cases {
            let result = try vigil(arguments)
            XCTAssertTrue(result.status == 1 || result.status == 2 || result.status == 64, "\(arguments): status \(result.status)")
            XCTAssertTrue(result.error.contains(expected), "\(arguments): \(result.error)")
            XCTAssertFalse(result.error.contains("NSCocoaErrorDomain") || result.error.contains("Fatal error"), "\(arguments): \(result.error)")
        }
        // A log that is not UTF-8 is read (audit records are ASCII), not refused with a raw error.
        let binary = try vigil(["seccomp", "absorb-log", "--workload", "top", "--profiles", profiles, "--log", work + "/binary.log"])
        XCTAssertEqual(binary.status, 0, binary.error)
        XCTAssertTrue(binary.error.contains("no logged syscall is missing"), binary.error)
        // The --relearn refusal and absorb-log left the highest version alone.
        XCTAssertEqual(DirectoryProfileStore(root: profiles).versions(workload: "top"), [ProfileCodec.maximumVersion])
        // A relative --out works; a long workload name gets a file of its own.
        let exported = try vigil(["seccomp", "export", "--workload", "top", "--profiles", profiles, "--out", "bare-\(getpid()).json"])
        XCTAssertEqual(exported.status, 0, exported.error)
        XCTAssertTrue(FileManager.default.fileExists(atPath: FileManager.default.currentDirectoryPath + "/bare-\(getpid()).json"))
        unlink(FileManager.default.currentDirectoryPath + "/bare-\(getpid()).json")
        // /dev/stdin as --log.
        let stdin = Process()
        stdin.executableURL = URL(fileURLWithPath: VigilBinary.path)
        stdin.arguments = ["seccomp", "absorb-log", "--workload", "top", "--profiles", profiles, "--log", "/dev/stdin"]
        let input = Pipe(), error = Pipe()
        stdin.standardInput = input
        stdin.standardError = error
        try stdin.run()
        input.fileHandleForWriting.write(Data("nothing here\n".utf8))
        try input.fileHandleForWriting.close()
        stdin.waitUntilExit()
        XCTAssertEqual(stdin.terminationStatus, 0)
        XCTAssertTrue(String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("read /dev/stdin: 0 seccomp records"))
    }

    func testCgroupFlagsSayWhatWasLookedFor() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        var result = try vigil(["trace", "--cgroup", "/no-such-cgroup-\(getpid())"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("no such cgroup (looked for the directory \(hierarchy.mountPoint)/no-such-cgroup-"), result.error)
        result = try vigil(["trace", "--cgroup", hierarchy.mountPoint + "/cgroup.procs"])
        XCTAssertTrue(result.error.contains("is not a cgroup directory"), result.error)
        if hierarchy.mountPoint != "/sys/fs/cgroup" {
            result = try vigil(["trace", "--cgroup", "/sys/fs/cgroup/memory/x"])
            XCTAssertTrue(result.error.contains("is not in the cgroup v2 hierarchy"), result.error)
        }
    }

    /// The metrics port in use: the error names the setting to change.
    func testAnAgentWhosePortIsTakenNamesMetricsAddress() throws {
        try KernelTestSupport.requireRoot()
        let work = try KernelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let taken = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        listen(taken.fd, 1)
        try "cgroupRoots: [/vigil-none-\(getpid())]\nprofiles: \(work)/p\nseccompRoot: \(work)/s\nmetricsAddress: 127.0.0.1:\(taken.port)\n"
            .write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
        let result = try vigil(["agent", "--config", work + "/agent.yaml"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("metricsAddress 127.0.0.1:\(taken.port): cannot listen"), result.error)
        // And a profile store that cannot be written is said at start, not an hour later.
        try "x".write(toFile: work + "/file", atomically: true, encoding: .utf8)
        try "profiles: \(work)/file\nseccompRoot: \(work)/s\nmetricsAddress: 127.0.0.1:0\n".write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
        let store = try vigil(["agent", "--config", work + "/agent.yaml"])
        XCTAssertEqual(store.status, 2)
        XCTAssertTrue(store.error.contains("is a file, not a directory"), store.error)
    }
}
