import CVigilABI
import Foundation
@testable import VigilCore
import VigilSeccomp
import VigilTestSupport
import XCTest

/// Recorded behaviour of a model server, as the kernel would report it: the records differ from
/// run to run the way real runs do (pids, containers, temporary names), the behaviour does not.
struct ModelServerRun {
    static let python = "/usr/bin/python3.11"
    static let runtime = "/usr/sbin/runc"
    var cgroup: UInt64
    var pid: UInt32
    var temporaryName: String

    var records: [[UInt8]] {
        var records: [[UInt8]] = [
            RecordBuilder.exec(pid: pid, exe: Self.python, parent: Self.runtime, args: ["python3", "server.py"], cgroup: cgroup),
        ]
        for request in 0..<20 {
            records.append(file(op: VIGIL_FILE_CREATE, "/cache", "last-request.json"))
            records.append(file(op: VIGIL_FILE_CREATE, "/tmp", "\(temporaryName)\(request % 3).json"))
            records.append(file(op: VIGIL_FILE_RENAME, "/tmp", "\(temporaryName)\(request % 3).json",
                                targetDir: "/cache", target: "results/\(request % 2).json"))
            records.append(RecordBuilder.network(pid: pid, family: 2, address: [10, 0, 0, 7], port: 5432))
            records.append(RecordBuilder.network(pid: pid, op: VIGIL_NET_SENDTO, family: 2, address: [10, 96, 0, 10],
                                                 port: 53, protocol: 17))
        }
        return records.map(inContainer)
    }

    private func inContainer(_ record: [UInt8]) -> [UInt8] {
        var record = record
        record.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: cgroup, toByteOffset: MemoryLayout<vigil_header>.offset(of: \vigil_header.cgroup_id)!, as: UInt64.self)
        }
        return record
    }

    private func file(op: vigil_file_op, _ dir: String, _ name: String, targetDir: String = "", target: String = "") -> [UInt8] {
        RecordBuilder.file(pid: pid, op: op, dir: dir, name: name, targetDir: targetDir, targetName: target)
    }

    static var syscalls: SyscallBitmap {
        var bitmap = SyscallBitmap()
        for number in [0, 1, 3, 9, 41, 42, 44, 45, 202, 257] { bitmap.insert(number, abi: .x86_64) }
        return bitmap
    }
}

final class LearningTests: XCTestCase {
    let resolver = SeccompSyscallResolver()
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func learnedProfile() throws -> Profile {
        var learner = Learner.start(workload: "ml/deployment/server/server", modelPaths: ["/models/**"],
                                    minDuration: 600, quietPeriod: 60, now: start, resolver: resolver,
                                    runtimeExes: [ModelServerRun.runtime])
        // Two replicas in two containers, with their own temporary names.
        for run in [ModelServerRun(cgroup: 101, pid: 10, temporaryName: "tmpa81kq"),
                    ModelServerRun(cgroup: 102, pid: 20, temporaryName: "tmpzz09x")] {
            for record in run.records {
                try record.withRawEvent { learner.observe($0, now: start.addingTimeInterval(1)) }
            }
        }
        learner.observeSyscalls(CgroupSyscalls(workload: ModelServerRun.syscalls), now: start.addingTimeInterval(1))
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(61)), .learning, "min duration not reached")
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(700)), .stable)
        return learner.profile
    }

    func testLearnsAGeneralisedProfileFromReplicas() throws {
        let profile = try learnedProfile()
        XCTAssertEqual(profile.state, .stable)
        XCTAssertEqual(profile.learning.containers, 2)
        XCTAssertEqual(profile.learning.events, 202)
        XCTAssertEqual(profile.execs, [ExecRule(exe: ModelServerRun.python, parent: "(runtime)")])
        XCTAssertEqual(profile.fileWrites, [
            FileWriteRule(path: "/cache/last-request.json", ops: ["create"]),
            FileWriteRule(path: "/cache/results/*.json", ops: ["rename"]),
            FileWriteRule(path: "/tmp/tmp*.json", ops: ["create"]),
        ])
        XCTAssertEqual(profile.egress, [EgressRule(address: "10.0.0.7", port: 5432, protocol: "tcp"),
                                        EgressRule(address: "10.96.0.10", port: 53, protocol: "udp")])
        XCTAssertEqual(profile.syscalls.x86_64, ["socket", "close", "connect", "mmap",
                                                 "openat", "read", "recvfrom", "sendto", "futex", "write"].sorted())
        XCTAssertEqual(profile.syscalls.i386, [])
    }

    func testNormalBehaviourReplayedAfterLearningYieldsNoAnomaly() throws {
        var detector = Detector(profile: try learnedProfile(), resolver: resolver, runtimeExes: [ModelServerRun.runtime])
        let replay = ModelServerRun(cgroup: 999, pid: 777, temporaryName: "tmpnew123q")
        var findings: [Finding] = []
        for record in replay.records {
            try record.withRawEvent { if let finding = detector.check($0) { findings.append(finding) } }
        }
        XCTAssertEqual(findings, [])
        XCTAssertTrue(detector.unexpectedSyscalls(ModelServerRun.syscalls).isEmpty)
    }

    func testEachAttackYieldsExactlyItsAnomaly() throws {
        var detector = Detector(profile: try learnedProfile(), resolver: resolver, runtimeExes: [ModelServerRun.runtime])
        func rule(_ record: [UInt8]) throws -> AnomalyRule? {
            try record.withRawEvent { detector.check($0)?.rule }
        }
        XCTAssertEqual(try rule(RecordBuilder.exec(exe: "/bin/sh", parent: ModelServerRun.python, args: ["sh"])), .unexpectedExec)
        XCTAssertEqual(try rule(RecordBuilder.exec(exe: ModelServerRun.python, parent: "/bin/sh", args: ["python3"])), .unexpectedExec,
                       "a known binary started by a different parent is new behaviour")
        XCTAssertEqual(try rule(RecordBuilder.file(op: VIGIL_FILE_TRUNCATE, dir: "", name: "/models/weights.bin")), .modelArtifactWrite)
        XCTAssertEqual(try rule(RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "/etc", name: "cron.d/job")), .unexpectedFileWrite)
        XCTAssertEqual(try rule(RecordBuilder.file(op: VIGIL_FILE_UNLINK, dir: "/cache", name: "last-request.json")), .unexpectedFileWrite,
                       "a known path with an operation never seen on it")
        XCTAssertEqual(try rule(RecordBuilder.network(family: 2, address: [203, 0, 113, 9], port: 4444)), .unexpectedEgress)
        XCTAssertEqual(try rule(RecordBuilder.network(family: 2, address: [10, 0, 0, 7], port: 22)), .unexpectedEgress,
                       "a known address on another port")
        var withPtrace = ModelServerRun.syscalls
        withPtrace.insert(101, abi: .x86_64)
        withPtrace.insert(26, abi: .i386) // i386 ptrace: its own table
        let unexpected = detector.unexpectedSyscalls(withPtrace).map { "\($0.abi.name):\(resolver.name(of: $0.number, abi: $0.abi)!)" }
        XCTAssertEqual(unexpected, ["x86_64:ptrace", "i386:ptrace"])
    }

    func testAStableProfileLearnsNothingMore() throws {
        var learner = Learner(profile: try learnedProfile(), resolver: resolver)
        let before = learner.profile
        try RecordBuilder.exec(exe: "/bin/sh", parent: ModelServerRun.python, args: ["sh"]).withRawEvent {
            XCTAssertFalse(learner.observe($0, now: start.addingTimeInterval(800)))
        }
        var more = ModelServerRun.syscalls
        more.insert(101, abi: .x86_64)
        XCTAssertFalse(learner.observeSyscalls(CgroupSyscalls(workload: more), now: start.addingTimeInterval(800)))
        XCTAssertEqual(learner.snapshot(), before)
    }

    func testSomethingNewRestartsTheQuietPeriod() throws {
        var learner = Learner.start(workload: "w", modelPaths: [], minDuration: 100, quietPeriod: 50, now: start, resolver: resolver)
        try RecordBuilder.exec(exe: "/bin/a", args: ["a"]).withRawEvent { XCTAssertTrue(learner.observe($0, now: start)) }
        try RecordBuilder.exec(exe: "/bin/a", args: ["a"]).withRawEvent {
            XCTAssertFalse(learner.observe($0, now: start.addingTimeInterval(90)), "a repeat is not new")
        }
        try RecordBuilder.exec(exe: "/bin/b", args: ["b"]).withRawEvent { XCTAssertTrue(learner.observe($0, now: start.addingTimeInterval(95))) }
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(120)), .learning, "only 25 s quiet")
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(146)), .stable)
        XCTAssertEqual(learner.profile.learning.stableSince, start.addingTimeInterval(146))
    }

    /// What the profile being learned already allows is not new: a random name a wildcard rule of
    /// its directory covers (`sem.*`, generalised from a name with digits), the ninth name of
    /// a directory folded at eight and the fourth scratch file of a directory folded at three, as
    /// a framework's workers make at each start, leave the quiet period running; an operation the wildcard lacks, or another directory, is still new. The
    /// stored profile is the one the snapshot's collapse made before.
    func testWhatAWildcardRuleAlreadyAllowsIsNotNew() throws {
        var learner = Learner.start(workload: "w", modelPaths: ["/models/**"], minDuration: 0, quietPeriod: 50, now: start, resolver: resolver)
        func write(_ op: vigil_file_op, _ dir: String, _ name: String, at second: Double) throws -> Bool {
            try RecordBuilder.file(op: op, dir: dir, name: name).withRawEvent { learner.observe($0, now: start.addingTimeInterval(second)) }
        }
        XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/dev/shm", "sem.Ab3dEf", at: 0), "sem.* is new")
        XCTAssertFalse(try write(VIGIL_FILE_CREATE, "/dev/shm", "sem.IjYcPa", at: 10), "a name sem.* allows")
        XCTAssertTrue(try write(VIGIL_FILE_UNLINK, "/dev/shm", "sem.IjYcPa", at: 11), "an operation sem.* lacks")
        XCTAssertTrue(try write(VIGIL_FILE_UNLINK, "/dev/shm", "sem.Gh7jKl", at: 12), "sem.* learns unlink")
        XCTAssertFalse(try write(VIGIL_FILE_UNLINK, "/dev/shm", "sem.QwErTy", at: 13), "sem.* now allows unlink too")
        for (i, name) in ["a", "b", "c", "d", "e", "f", "g", "h"].enumerated() {
            XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/cache/joblib", "probe-\(name).pkl", at: 20 + Double(i)), "name \(i + 1) of 8")
        }
        XCTAssertFalse(try write(VIGIL_FILE_CREATE, "/cache/joblib", "probe-zz.pkl", at: 30), "the ninth: /cache/joblib/*.pkl")
        XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/cache/joblib", "probe-zz.json", at: 31), "another extension is another shape")
        XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/cache", "probe-zz.pkl", at: 32), "another directory")
        for name in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
            XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/models", "w-\(name).pkl", at: 40), "a model artifact is kept as it is")
        }
        // Python's tempfile probes: created and removed, random names of no common shape.
        for (i, name) in ["ylqrznvb", "omxlxd_8", "k2_vq9ab"].enumerated() {
            XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/scratch", name, at: 50 + Double(i)), "probe \(i + 1) of 3 created")
            XCTAssertTrue(try write(VIGIL_FILE_UNLINK, "/scratch", name, at: 50 + Double(i)), "probe \(i + 1) of 3 removed")
        }
        XCTAssertFalse(try write(VIGIL_FILE_CREATE, "/scratch", "qwzpmnxc", at: 60), "the fourth: /scratch/*")
        XCTAssertFalse(try write(VIGIL_FILE_UNLINK, "/scratch", "qwzpmnxc", at: 60))
        // Semaphores of one family: three without a digit fold into what they share, sem.*,
        // as a name with a digit would have made it; not /run/shm/*.
        for name in ["sem.IjYcPa", "sem.QwErTy", "sem.ZxCvBn"] {
            XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/run/shm", name, at: 70))
            XCTAssertTrue(try write(VIGIL_FILE_UNLINK, "/run/shm", name, at: 70))
        }
        XCTAssertFalse(try write(VIGIL_FILE_CREATE, "/run/shm", "sem.Ab3dEf", at: 80), "sem.* is there already")
        XCTAssertTrue(try write(VIGIL_FILE_CREATE, "/run/shm", "other", at: 81), "another name of the directory is new")
        XCTAssertEqual(learner.profile.learning.lastNew, start.addingTimeInterval(81))
        XCTAssertEqual(learner.snapshot().fileWrites.map(\.path), [
            "/cache/joblib/*.pkl", "/cache/joblib/probe-zz.json", "/cache/probe-zz.pkl", "/dev/shm/sem.*",
        ] + ["a", "b", "c", "d", "e", "f", "g", "h", "i"].map { "/models/w-\($0).pkl" } + ["/run/shm/other", "/run/shm/sem.*", "/scratch/*"])
        XCTAssertEqual(learner.snapshot().fileWrites.first { $0.path == "/dev/shm/sem.*" }?.ops, ["create", "unlink"])
        XCTAssertEqual(learner.snapshot().fileWrites.first { $0.path == "/scratch/*" }?.ops, ["create", "unlink"])
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(130)), .learning)
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(131)), .stable)
    }

    /// Why a profile is still learning is in the profile: the newest things found, with when,
    /// at most ten (newest last), in the YAML `vigil profile show` prints.
    func testTheProfileSaysWhatWasNewAndWhen() throws {
        var learner = Learner.start(workload: "w", modelPaths: [], minDuration: 0, quietPeriod: 50, now: start, resolver: resolver)
        try RecordBuilder.exec(exe: "/bin/a", args: ["a"]).withRawEvent { learner.observe($0, now: start) }
        try RecordBuilder.exec(exe: "/bin/a", args: ["a"]).withRawEvent { learner.observe($0, now: start.addingTimeInterval(1)) }
        try RecordBuilder.file(op: VIGIL_FILE_CREATE, dir: "/tmp", name: "tmpab12cd").withRawEvent { learner.observe($0, now: start.addingTimeInterval(2)) }
        try RecordBuilder.network(family: 2, address: [10, 0, 0, 7], port: 5432).withRawEvent { learner.observe($0, now: start.addingTimeInterval(3)) }
        XCTAssertEqual(learner.snapshot().learning.recentlyNew, [
            NewBehaviour(at: start, kind: "exec", rule: "/bin/a"),
            NewBehaviour(at: start.addingTimeInterval(2), kind: "fileWrite", rule: "create /tmp/tmp*"),
            NewBehaviour(at: start.addingTimeInterval(3), kind: "egress", rule: "tcp 10.0.0.7:5432"),
        ], "a repeat is not new")
        for i in 0..<12 {
            try RecordBuilder.exec(exe: "/bin/p\(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"][i])", args: ["p"])
                .withRawEvent { learner.observe($0, now: start.addingTimeInterval(10 + Double(i))) }
        }
        let recent = try XCTUnwrap(learner.snapshot().learning.recentlyNew)
        XCTAssertEqual(recent.count, NewBehaviour.kept)
        XCTAssertEqual(recent.last?.rule, "/bin/pl")
        XCTAssertEqual(recent.first?.at, start.addingTimeInterval(12))
        XCTAssertEqual(learner.evaluate(now: start.addingTimeInterval(40)), .learning, "the last new one was 19 s ago")
    }

    func testProfileDiffNamesWhatChanged() throws {
        let a = try learnedProfile()
        var b = a
        b.version = 2
        b.execs.append(ExecRule(exe: "/bin/sh", parent: ModelServerRun.python))
        b.egress.removeAll { $0.port == 53 }
        b.syscalls.x86_64.append("ptrace")
        XCTAssertEqual(ProfileDiff(from: a, to: b).lines, [
            "~ version 1 -> 2",
            "+ exec /bin/sh (parent /usr/bin/python3.11)",
            "- egress udp 10.96.0.10 port 53",
            "+ syscall/x86_64 ptrace",
        ])
    }

    /// A model server's startup (its downloader, the registry, the weights written) is learned
    /// apart from its serving; once a container serves, the startup's rules are an anomaly of
    /// their own, naming the rule, and they stay out of the kernel's known behaviour.
    func testStartupAndServingAreLearnedApart() throws {
        let python = ModelServerRun.python, curl = "/usr/bin/curl"
        var learner = Learner.start(workload: "ml/deployment/server/server", modelPaths: ["/models/**"], minDuration: 0, quietPeriod: 0,
                                    now: start, resolver: resolver, runtimeExes: [ModelServerRun.runtime])
        func observe(_ record: [UInt8], serving: Bool) throws {
            try record.withUnsafeBytes { raw in _ = learner.observe(try RawEvent(decoding: raw), now: start, serving: serving) }
        }
        let server = RecordBuilder.exec(pid: 10, exe: python, parent: ModelServerRun.runtime, args: ["python3"])
        let download = RecordBuilder.exec(pid: 11, exe: curl, parent: python, args: ["curl", "http://registry/weights"])
        let registry = RecordBuilder.network(pid: 11, family: 2, address: [10, 0, 0, 9], port: 443)
        let weights = RecordBuilder.file(pid: 11, op: VIGIL_FILE_CREATE, dir: "", name: "/models/weights.bin")
        let database = RecordBuilder.network(pid: 10, family: 2, address: [10, 0, 0, 7], port: 5432)
        for record in [server, download, registry, weights, database] { try observe(record, serving: false) }
        try observe(RecordBuilder.file(pid: 10, op: VIGIL_FILE_CREATE, dir: "/tmp", name: "request123.json"), serving: false)
        XCTAssertNil(learner.snapshot().startupOnly, "no container served yet: one phase")

        learner.observeServing(now: start)
        try observe(database, serving: true)
        try observe(RecordBuilder.file(pid: 10, op: VIGIL_FILE_CREATE, dir: "/tmp", name: "request456.json"), serving: true)
        learner.stabilize(now: start)
        let profile = learner.profile
        let startup = try XCTUnwrap(profile.startupOnly)
        XCTAssertEqual(startup.execs, [ExecRule(exe: curl, parent: python), ExecRule(exe: python, parent: "(runtime)")])
        XCTAssertEqual(startup.egress, [EgressRule(address: "10.0.0.9", port: 443, protocol: "tcp")])
        XCTAssertEqual(startup.fileWrites, [FileWriteRule(path: "/models/weights.bin", ops: ["create"])],
                       "the temporary files were written while serving too (under one generalised rule)")

        var detector = Detector(profile: profile, resolver: resolver, runtimeExes: [ModelServerRun.runtime])
        func check(_ record: [UInt8], serving: Bool) throws -> Finding? {
            try record.withUnsafeBytes { raw in detector.check(try RawEvent(decoding: raw), serving: serving) }
        }
        XCTAssertNil(try check(download, serving: false), "a container starting up may download")
        XCTAssertEqual(try check(download, serving: true)?.rule, .startupOnlyBehaviour)
        XCTAssertEqual(try check(download, serving: true)?.startupRule, .exec(ExecRule(exe: curl, parent: python)))
        XCTAssertEqual(try check(registry, serving: true)?.startupRule, .egress(EgressRule(address: "10.0.0.9", port: 443, protocol: "tcp")))
        XCTAssertEqual(try check(weights, serving: true)?.startupRule, .fileWrite(FileWriteRule(path: "/models/weights.bin", ops: ["create"])))
        XCTAssertNil(try check(database, serving: true))
        XCTAssertEqual(try check(RecordBuilder.exec(pid: 12, exe: "/bin/sh", parent: python, args: ["sh"]), serving: true)?.rule,
                       .unexpectedExec, "behaviour the profile never had is still what it was")
        let known = detector.knownBehaviour
        XCTAssertFalse(known.execHashes.contains(BehaviourHash.exec(exe: curl, parent: python)), "judged here, never dropped in the kernel")
        XCTAssertFalse(known.destinations.isEmpty)
        XCTAssertEqual(known.files.count, 0, "the model write is startup-only; the temporary files are a pattern")
    }
}

final class AnomalyReporterTests: XCTestCase {
    private func lines(_ out: JSONLineWriter) throws -> [[String: Any]] {
        try out.bytes.split(separator: UInt8(ascii: "\n")).map { try JSONSerialization.jsonObject(with: Data($0)) as! [String: Any] }
    }

    private func profile() -> Profile {
        Profile(workload: "w", version: 3, state: .stable,
                learning: LearningEvidence(started: Date(), lastNew: Date(), minDuration: 0, quietPeriod: 0))
    }

    func testRepeatsFoldIntoOneLinePerWindow() throws {
        var settings = AnomalyReporter.Settings()
        settings.foldWindowNanoseconds = 10_000_000_000
        var reporter = AnomalyReporter(profile: profile(), node: "n", clock: BootClock(offsetNanoseconds: 0), settings: settings)
        var out = JSONLineWriter()
        let finding = Finding(rule: .unexpectedExec, key: 42)
        for second in 0..<5 {
            try RecordBuilder.exec(exe: "/bin/sh", args: ["sh"], boot: UInt64(second) * 1_000_000_000).withRawEvent {
                reporter.report(finding, event: $0, workload: WorkloadIdentity(cgroup: "/c"), processes: ProcessTable(), into: &out)
            }
        }
        var emitted = try lines(out)
        XCTAssertEqual(emitted.count, 1, "the first occurrence at once, the repeats held")
        XCTAssertEqual(emitted[0][path: "anomaly.count"] as? Int, 1)
        XCTAssertEqual(emitted[0][path: "anomaly.rule"] as? String, "unexpected-exec")
        XCTAssertEqual(emitted[0][path: "anomaly.severity"] as? String, "high")
        XCTAssertEqual(emitted[0][path: "anomaly.profile.version"] as? Int, 3)
        XCTAssertEqual(emitted[0][path: "event.process.exe"] as? String, "/bin/sh")
        XCTAssertEqual(emitted[0][path: "workload.cgroup"] as? String, "/c")

        out.removeAll()
        reporter.flush(now: 5_000_000_000, into: &out)
        XCTAssertEqual(try lines(out).count, 0, "the window has not passed")
        reporter.flush(now: 10_000_000_001, into: &out)
        emitted = try lines(out)
        XCTAssertEqual(emitted.count, 1)
        XCTAssertEqual(emitted[0][path: "anomaly.count"] as? Int, 5)
        XCTAssertEqual(emitted[0][path: "anomaly.first_seen"] as? String, "1970-01-01T00:00:00.000000000Z")
        XCTAssertEqual(emitted[0][path: "anomaly.last_seen"] as? String, "1970-01-01T00:00:04.000000000Z")
    }

    /// A behaviour reported in full and idle for `forgetIdleNanoseconds` leaves memory; one with
    /// repeats still to report, or seen lately, stays. Its next occurrence is a new line from 1.
    func testIdleBehavioursAreForgotten() throws {
        var reporter = AnomalyReporter(profile: profile(), node: "n", clock: BootClock(offsetNanoseconds: 0))
        var out = JSONLineWriter()
        let second: UInt64 = 1_000_000_000
        func see(_ key: UInt64, at time: UInt64) throws {
            try RecordBuilder.exec(exe: "/bin/x\(key)", args: ["x"], boot: time).withRawEvent {
                reporter.report(Finding(rule: .unexpectedExec, key: key), event: $0, workload: nil, processes: ProcessTable(), into: &out)
            }
        }
        try see(1, at: 1 * second)           // reported at once, never again
        try see(2, at: 1 * second)
        try see(2, at: 2 * second)           // a repeat, reported at the next window
        reporter.flush(now: 12 * second, into: &out)
        try see(3, at: 50 * second)          // seen lately
        XCTAssertEqual(reporter.foldCount, 3)
        reporter.flush(now: 61 * second, into: &out)
        XCTAssertEqual(reporter.foldCount, 2, "1 was idle for 60 s; 2 was last seen at 2 s, so it stays until 62 s")
        reporter.flush(now: 62 * second, into: &out)
        XCTAssertEqual(reporter.foldCount, 1, "only 3 is left")
        out.removeAll()
        try see(1, at: 70 * second)
        let again = try lines(out)
        XCTAssertEqual(again.count, 1)
        XCTAssertEqual(again[0][path: "anomaly.count"] as? Int, 1)
    }

    func testRateLimitingSaysWhenItStartsAndEnds() throws {
        var settings = AnomalyReporter.Settings()
        settings.burst = 3
        settings.perSecond = 1
        var reporter = AnomalyReporter(profile: profile(), node: "n", clock: BootClock(offsetNanoseconds: 0), settings: settings)
        var out = JSONLineWriter()
        for key in 0..<10 {
            try RecordBuilder.exec(exe: "/bin/x\(key)", args: ["x"], boot: 1_000).withRawEvent {
                reporter.report(Finding(rule: .unexpectedExec, key: UInt64(key)), event: $0, workload: nil,
                                processes: ProcessTable(), into: &out)
            }
        }
        var emitted = try lines(out)
        XCTAssertEqual(emitted.filter { $0["kind"] as? String == "anomaly" }.count, 3)
        XCTAssertEqual(emitted.filter { $0["kind"] as? String == "agent.throttle" }.map { $0[path: "throttle.state"] as? String }, ["started"])
        XCTAssertEqual(reporter.suppressedLines, 7)

        out.removeAll()
        reporter.flush(now: 1_000 + 3_000_000_000, into: &out)
        emitted = try lines(out)
        let end = emitted.first { $0["kind"] as? String == "agent.throttle" }
        XCTAssertEqual(end?[path: "throttle.state"] as? String, "ended")
        XCTAssertEqual(end?[path: "throttle.suppressed"] as? Int, 7)
    }
}

extension Dictionary where Key == String, Value == Any {
    subscript(path path: String) -> Any? {
        var current: Any? = self
        for part in path.split(separator: ".") { current = (current as? [String: Any])?[String(part)] }
        return current
    }
}
