import CVigilABI
import Foundation
import VigilCore
@testable import VigilProfiles
import VigilSeccomp
import VigilTestSupport
import XCTest

final class ProfileStoreTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "vigil-profiles-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func sample(workload: String = "ml/deployment/llm/server", version: Int = 1) -> Profile {
        let started = Date(timeIntervalSince1970: 1_800_000_000)
        return Profile(workload: workload, version: version, state: .stable,
                       learning: LearningEvidence(started: started, lastNew: started.addingTimeInterval(30),
                                                  stableSince: started.addingTimeInterval(700), events: 1234, containers: 2,
                                                  minDuration: 600, quietPeriod: 60),
                       modelPaths: ["/models/**"],
                       execs: [ExecRule(exe: "/usr/bin/python3.11", parent: "(runtime)")],
                       fileWrites: [FileWriteRule(path: "/tmp/tmp*.json", ops: ["create", "rename"])],
                       egress: [EgressRule(address: "10.0.0.0/24", port: 443, protocol: "tcp")],
                       syscalls: SyscallLists(x86_64: ["read", "write"]))
    }

    func testRoundTripsThroughYAMLFiles() throws {
        let store = DirectoryProfileStore(root: root)
        try store.save(sample())
        try store.save(sample(version: 2))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/ml.deployment.llm.server/v1.yaml"))
        XCTAssertEqual(store.versions(workload: "ml/deployment/llm/server"), [1, 2])
        XCTAssertEqual(try store.latest(workload: "ml/deployment/llm/server"), sample(version: 2))
        XCTAssertEqual(try store.load(workload: "ml/deployment/llm/server", version: 1), sample())
        XCTAssertNil(try store.latest(workload: "nobody"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: "\(root)/ml.deployment.llm.server")
        XCTAssertEqual(leftovers.sorted(), ["v1.yaml", "v2.yaml"], "no temporary file is left behind")
    }

    /// Broken files are refused with the file and the field named; the store's other profiles
    /// still load.
    func testRefusesBrokenProfilesAndLoadsTheOthers() throws {
        let store = DirectoryProfileStore(root: root)
        try store.save(sample(workload: "good"))
        let text = try ProfileCodec.encode(sample(workload: "x"))
        let broken: [(String, String, String)] = [
            ("bad-yaml", "apiVersion: vigil.dev/v1alpha1\nkind: [unclosed\n", "is not valid YAML"),
            ("wrong-type", text.replacingOccurrences(of: "events: 1234", with: "events: many"), "field 'learning.events': expected an integer"),
            ("unknown-version", text.replacingOccurrences(of: "vigil.dev/v1alpha1", with: "vigil.dev/v9"), "field 'apiVersion': unsupported version 'vigil.dev/v9'"),
            ("truncated-at-a-line", text.components(separatedBy: "\n").prefix(12).joined(separator: "\n"), "is missing"),
            ("truncated-mid-line", String(text.prefix(text.count / 2)), "is not valid YAML"),
            ("bad-op", text.replacingOccurrences(of: "- rename", with: "- chmod"), "field 'fileWrites[0].ops': unknown operation 'chmod'"),
            ("bad-address", text.replacingOccurrences(of: "10.0.0.0/24", with: "10.0.0.0/99"), "field 'egress[0].address'"),
            ("bad-state", text.replacingOccurrences(of: "state: stable", with: "state: sleeping"), "field 'state'"),
            ("empty", "", "is empty"),
        ]
        for (name, content, _) in broken {
            let file = "\(root)/\(name)/v1.yaml"
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            try content.write(toFile: file, atomically: true, encoding: .utf8)
        }
        let (profiles, errors) = store.loadAll()
        XCTAssertEqual(profiles.map(\.workload), ["good"])
        XCTAssertEqual(errors.count, broken.count)
        for (name, _, expected) in broken {
            let error = errors.first { $0.file.contains("/\(name)/") }
            XCTAssertNotNil(error, name)
            XCTAssertTrue(error?.description.contains(expected) ?? false, "\(name): \(error?.description ?? "no error")")
            XCTAssertTrue(error?.description.hasPrefix("\(root)/\(name)/v1.yaml") ?? false, "the error names the file")
        }
    }

    /// Learning resumed from a checkpoint keeps what was learned before the restart.
    func testALearnerRestartedFromItsCheckpointKeepsWhatItLearned() throws {
        let store = DirectoryProfileStore(root: root)
        let resolver = SeccompSyscallResolver()
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        var first = Learner.start(workload: "w", modelPaths: [], minDuration: 3600, quietPeriod: 600, now: start, resolver: resolver)
        try record(exe: "/usr/bin/python3.11").withRawEvent { first.observe($0, now: start) }
        var syscalls = SyscallBitmap()
        syscalls.insert(0, abi: .x86_64)
        first.observeSyscalls(CgroupSyscalls(workload: syscalls), now: start)
        try store.save(first.snapshot()) // the checkpoint; then the agent dies

        let checkpoint = try XCTUnwrap(try store.latest(workload: "w"))
        XCTAssertEqual(checkpoint.state, .learning)
        var second = Learner(profile: checkpoint, resolver: resolver)
        try record(exe: "/usr/bin/python3.11").withRawEvent {
            XCTAssertFalse(second.observe($0, now: start.addingTimeInterval(10)), "known from before the restart")
        }
        try record(exe: "/bin/sh").withRawEvent { XCTAssertTrue(second.observe($0, now: start.addingTimeInterval(10))) }
        let resumed = second.snapshot()
        XCTAssertEqual(resumed.execs.map(\.exe), ["/bin/sh", "/usr/bin/python3.11"])
        XCTAssertEqual(resumed.syscalls.x86_64, ["read"], "only what the workload made")
        XCTAssertEqual(resumed.seccomp, .current(), "what the filter adds is today's allowance")
        XCTAssertEqual(resumed.learning.started, start, "learning time counts from the first start")
    }

    private func record(exe: String) -> [UInt8] {
        RecordBuilder.exec(pid: 1, exe: exe, args: [exe])
    }
}
