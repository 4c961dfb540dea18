import Foundation
import VigilCore
import XCTest

private struct NoChange: Error {}

/// Merging what each node learned into the cluster's one profile, and when learning ends for
/// the whole cluster.
final class ProfileMergeTests: XCTestCase {
    private let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    private let workload = "ml/deployment/llm/server"

    private func local(started: Date, lastNew: Date, execs: [String] = [], writes: [(String, String)] = [],
                       syscalls: [String] = [], version: Int = 1, events: Int = 10) -> Profile {
        Profile(workload: workload, version: version, state: .learning,
                learning: LearningEvidence(started: started, lastNew: lastNew, events: events, containers: 1, minDuration: 3600, quietPeriod: 600),
                execs: execs.map { ExecRule(exe: $0, parent: "(runtime)") },
                fileWrites: writes.map { FileWriteRule(path: $0.0, ops: [$0.1]) },
                syscalls: SyscallLists(x86_64: syscalls))
    }

    private func changed(_ outcome: ProfileMerge.Outcome, file: StaticString = #filePath, line: UInt = #line) throws -> (ClusterProfile, [String]) {
        guard case let .changed(cluster, reasons) = outcome else {
            XCTFail("expected a change", file: file, line: line)
            throw NoChange()
        }
        return (cluster, reasons)
    }

    func testNodesUnionTheirRulesAndKeepTheirOwnEvidence() throws {
        let a = local(started: t0, lastNew: t0.addingTimeInterval(60), execs: ["/usr/bin/python3"], writes: [("/tmp/a", "create")],
                      syscalls: ["read", "write"])
        var (cluster, reasons) = try changed(ProfileMerge.merge(a, from: "node-a", into: nil, now: t0.addingTimeInterval(100)))
        XCTAssertEqual(reasons, ["created"])
        let b = local(started: t0.addingTimeInterval(1800), lastNew: t0.addingTimeInterval(1900), execs: ["/usr/bin/python3", "/bin/sh"],
                      writes: [("/tmp/a", "truncate"), ("/tmp/b", "create")], syscalls: ["read", "openat"], events: 5)
        (cluster, reasons) = try changed(ProfileMerge.merge(b, from: "node-b", into: cluster, now: t0.addingTimeInterval(2000)))
        XCTAssertEqual(reasons, ["new behaviour", "node node-b joined"])
        XCTAssertEqual(cluster.profile.execs.map(\.exe), ["/bin/sh", "/usr/bin/python3"])
        XCTAssertEqual(cluster.profile.fileWrites, [FileWriteRule(path: "/tmp/a", ops: ["create", "truncate"]), FileWriteRule(path: "/tmp/b", ops: ["create"])])
        XCTAssertEqual(cluster.profile.syscalls.x86_64, ["openat", "read", "write"])
        XCTAssertEqual(cluster.nodes.map(\.node), ["node-a", "node-b"])
        XCTAssertEqual(cluster.profile.learning.started, t0, "learning began when the first node began")
        XCTAssertEqual(cluster.profile.learning.lastNew, t0.addingTimeInterval(1900))
        XCTAssertEqual(cluster.profile.learning.events, 15)
        XCTAssertEqual(cluster.profile.learning.containers, 2)

        // node-a again, with nothing the cluster lacks: no write, even though its counts moved.
        var again = a
        again.learning.events = 500
        XCTAssertEqual(ProfileMerge.merge(again, from: "node-a", into: cluster, now: t0.addingTimeInterval(2100)), .unchanged)
    }

    /// Learning ends for the cluster: minDuration since the first node began, and no node brought
    /// anything new for quietPeriod — a node that only repeats what another learned does not
    /// hold it back, and once stable it stays stable.
    func testLearningEndsClusterWide() throws {
        let a = local(started: t0, lastNew: t0.addingTimeInterval(100), execs: ["/usr/bin/python3"])
        var (cluster, _) = try changed(ProfileMerge.merge(a, from: "node-a", into: nil, now: t0.addingTimeInterval(200)))
        XCTAssertEqual(ProfileMerge.settle(cluster, now: t0.addingTimeInterval(3599)), .unchanged, "minDuration not reached")

        // node-b starts late and sees the same exec, newly for itself: not new for the cluster.
        let b = local(started: t0.addingTimeInterval(3000), lastNew: t0.addingTimeInterval(3500), execs: ["/usr/bin/python3"])
        var reasons: [String]
        (cluster, reasons) = try changed(ProfileMerge.merge(b, from: "node-b", into: cluster, now: t0.addingTimeInterval(3550)))
        XCTAssertEqual(reasons, ["node node-b joined"])
        XCTAssertEqual(cluster.profile.learning.lastNew, t0.addingTimeInterval(100))
        XCTAssertEqual(cluster.profile.state, .learning)

        (cluster, reasons) = try changed(ProfileMerge.settle(cluster, now: t0.addingTimeInterval(3600)))
        XCTAssertEqual(reasons, ["stable"])
        XCTAssertEqual(cluster.profile.state, .stable)
        XCTAssertEqual(cluster.profile.learning.stableSince, t0.addingTimeInterval(3600))

        // Something new from a node after the quiet period restarts it: here, 10 s before the end.
        var quiet = try changed(ProfileMerge.merge(a, from: "node-a", into: nil, now: t0)).0
        let late = local(started: t0, lastNew: t0.addingTimeInterval(3590), execs: ["/bin/sh"])
        quiet = try changed(ProfileMerge.merge(late, from: "node-a", into: quiet, now: t0.addingTimeInterval(3595))).0
        XCTAssertEqual(ProfileMerge.settle(quiet, now: t0.addingTimeInterval(3600)), .unchanged, "something new 10 s ago")
        XCTAssertEqual(try changed(ProfileMerge.settle(quiet, now: t0.addingTimeInterval(4190))).0.profile.state, .stable)
    }

    /// A relearn (version 2) from one node starts the cluster's new version; a node still on
    /// version 1 merges nothing into it.
    func testVersionsDoNotMix() throws {
        let v1 = local(started: t0, lastNew: t0, execs: ["/usr/bin/python3"])
        let cluster = try changed(ProfileMerge.merge(v1, from: "node-a", into: nil, now: t0)).0
        let v2 = local(started: t0.addingTimeInterval(10), lastNew: t0.addingTimeInterval(10), execs: ["/usr/bin/python3.12"], version: 2)
        let (relearned, reasons) = try changed(ProfileMerge.merge(v2, from: "node-b", into: cluster, now: t0.addingTimeInterval(20)))
        XCTAssertEqual(reasons, ["version 2"])
        XCTAssertEqual(relearned.profile.version, 2)
        XCTAssertEqual(relearned.profile.execs.map(\.exe), ["/usr/bin/python3.12"])
        XCTAssertEqual(relearned.nodes.map(\.node), ["node-b"])
        XCTAssertEqual(ProfileMerge.merge(v1, from: "node-a", into: relearned, now: t0.addingTimeInterval(30)), .unchanged)
    }

    /// A rule is startup-only in the cluster's profile when no node saw a serving container
    /// follow it; a node whose containers never served counts as serving throughout.
    func testStartupOnlyIsWhatNoNodeSawServing() throws {
        let curl = ExecRule(exe: "/usr/bin/curl", parent: "(runtime)"), shell = ExecRule(exe: "/bin/sh", parent: "(runtime)")
        var a = local(started: t0, lastNew: t0, execs: ["/usr/bin/python3", "/usr/bin/curl"])
        a.startupOnly = StartupRules(execs: [curl])
        var b = local(started: t0, lastNew: t0.addingTimeInterval(10), execs: ["/usr/bin/python3", "/usr/bin/curl", "/bin/sh"])
        b.startupOnly = StartupRules(execs: [curl, shell])
        var (cluster, _) = try changed(ProfileMerge.merge(a, from: "node-a", into: nil, now: t0))
        XCTAssertEqual(cluster.profile.startupOnly, StartupRules(execs: [curl]))
        (cluster, _) = try changed(ProfileMerge.merge(b, from: "node-b", into: cluster, now: t0))
        XCTAssertEqual(cluster.profile.startupOnly, StartupRules(execs: [shell, curl].sorted()))
        let c = local(started: t0, lastNew: t0.addingTimeInterval(20), execs: ["/usr/bin/curl"])
        var reasons: [String]
        (cluster, reasons) = try changed(ProfileMerge.merge(c, from: "node-c", into: cluster, now: t0))
        XCTAssertEqual(cluster.profile.startupOnly, StartupRules(execs: [shell]), "node-c ran curl and has no phases")
        XCTAssertTrue(reasons.contains("new behaviour"), "\(reasons)")
        XCTAssertNil(try changed(ProfileMerge.merge(local(started: t0, lastNew: t0, execs: ["/bin/true"]), from: "node-d", into: nil, now: t0))
            .0.profile.startupOnly, "no node served: no phases")
    }
}
