import Foundation
import VigilCore
import VigilKubernetes
import VigilProfiles
import VigilTestSupport
import XCTest

/// The cluster profile client against the stand-in API server's WorkloadProfile resources:
/// optimistic concurrency as the API server does it (resourceVersion, 409 Conflict), size
/// limits, names that map one to one.
final class WorkloadProfileClientTests: XCTestCase {
    private var server: FakeAPIServer!
    private let workload = "ml/deployment/llm-server/server"
    private let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    override func setUpWithError() throws {
        server = try FakeAPIServer()
    }

    override func tearDown() {
        server.stop()
    }

    private func client() throws -> WorkloadProfileClient {
        try WorkloadProfileClient(endpoint: .init(apiServer: server.url, tokenFile: server.tokenFile, caFile: server.caFile, timeout: 10))
    }

    private func local(execs: [String], writes: [String] = []) -> Profile {
        Self.local(workload: workload, started: t0, execs: execs, writes: writes)
    }

    private static func local(workload: String, started t0: Date, execs: [String], writes: [String] = []) -> Profile {
        Profile(workload: workload, state: .learning,
                learning: LearningEvidence(started: t0, lastNew: t0, events: execs.count, containers: 1, minDuration: 3600, quietPeriod: 600),
                execs: execs.map { ExecRule(exe: $0, parent: "(runtime)") },
                fileWrites: writes.map { FileWriteRule(path: $0, ops: ["create"]) })
    }

    func testAMergeCreatesTheObjectThatGetAndListReadBack() throws {
        let client = try client()
        let result = try client.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0)
        guard case let .written(stored, reasons, conflicts) = result else { return XCTFail("\(result)") }
        XCTAssertEqual(reasons, ["created"])
        XCTAssertEqual(conflicts, 0)
        XCTAssertEqual(stored.namespace, "ml")
        XCTAssertEqual(stored.name, "deployment.llm-server.server")
        XCTAssertNotNil(stored.resourceVersion)

        let read = try XCTUnwrap(try client.get(namespace: "ml", name: "deployment.llm-server.server"))
        XCTAssertEqual(read, stored)
        XCTAssertEqual(read.cluster.profile.execs.map(\.exe), ["/usr/bin/python3"])
        XCTAssertEqual(read.cluster.nodes.map(\.node), ["node-a"])
        XCTAssertEqual(try client.list(namespace: "ml").profiles, [stored])
        XCTAssertEqual(try client.list().profiles, [stored])
        XCTAssertEqual(try client.list(namespace: "other").profiles, [])

        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: read.encoded()) as? [String: Any])
        XCTAssertEqual(object[path: "status.counts.execs"] as? Int, 1, "printer columns read counts")
        XCTAssertEqual(object[path: "status.state"] as? String, "learning")

        XCTAssertEqual(try client.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0), .unchanged(stored),
                       "nothing new: no write")
        XCTAssertEqual(server.requests.filter { $0.hasPrefix("PUT") || $0.hasPrefix("POST") }.count, 1)

        try client.delete(namespace: "ml", name: stored.name)
        XCTAssertNil(try client.get(namespace: "ml", name: stored.name))
    }

    /// The API server's optimistic concurrency, as the client meets it: a write from a stale
    /// read is refused, and a write without a version is invalid.
    func testAStaleWriteIsAConflict() throws {
        let client = try client()
        let first = try client.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0).resource
        _ = try client.merge(local(execs: ["/bin/sh"]), node: "node-b", now: t0)
        var stale = first
        stale.cluster.profile.execs.append(ExecRule(exe: "/usr/bin/curl", parent: "(runtime)"))
        XCTAssertThrowsError(try client.replace(stale)) { error in
            guard case KubernetesError.conflict = error else { return XCTFail("\(error)") }
        }
        stale.resourceVersion = nil
        XCTAssertThrowsError(try client.replace(stale)) { error in
            XCTAssertTrue("\(error)".contains("resourceVersion") && "\(error)".contains("must be specified"), "\(error)")
        }
        XCTAssertThrowsError(try client.create(first)) { error in
            guard case KubernetesError.conflict = error else { return XCTFail("\(error)") }
        }
        let read = try XCTUnwrap(try client.get(namespace: "ml", name: first.name))
        XCTAssertEqual(read.cluster.profile.execs.map(\.exe), ["/bin/sh", "/usr/bin/python3"], "neither refused write landed")
    }

    /// Another agent writes between this one's read and write: the write is refused, the merge
    /// redone from a fresh read, and both nodes' learning is in the object.
    func testAMergeThatLosesARaceIsRedoneAndLosesNothing() throws {
        let client = try client(), other = try self.client()
        _ = try client.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0)
        var interleaved = false
        let result = try client.merge(local(execs: ["/usr/bin/python3", "/usr/bin/nvidia-smi"]), node: "node-a", now: t0) {
            guard !interleaved else { return }
            interleaved = true
            _ = try other.merge(self.local(execs: ["/bin/sh"]), node: "node-b", now: self.t0)
        }
        guard case let .written(stored, _, conflicts) = result else { return XCTFail("\(result)") }
        XCTAssertEqual(conflicts, 1)
        XCTAssertEqual(stored.cluster.profile.execs.map(\.exe), ["/bin/sh", "/usr/bin/nvidia-smi", "/usr/bin/python3"])
        XCTAssertEqual(stored.cluster.nodes.map(\.node), ["node-a", "node-b"])
    }

    /// Six nodes merge eight rounds each at once into one object: every rule of every round is
    /// there at the end (a lost update would drop some).
    func testConcurrentWritersLoseNoUpdate() throws {
        let nodes = 6, rounds = 8
        let clients = try (0..<nodes).map { _ in try client() }
        let failures = LockedList(), conflicts = LockedList()
        let (workload, t0) = (workload, t0)
        DispatchQueue.concurrentPerform(iterations: nodes) { n in
            for round in 0..<rounds {
                let execs = (0...round).map { "/opt/node-\(n)/tool-\($0)" }
                do {
                    let profile = Self.local(workload: workload, started: t0, execs: execs)
                    if case let .written(_, _, lost) = try clients[n].merge(profile, node: "node-\(n)", now: t0) {
                        conflicts.append("\(lost)")
                    }
                } catch {
                    failures.append("node-\(n) round \(round): \(error)")
                }
            }
        }
        XCTAssertEqual(failures.items, [])
        let stored = try XCTUnwrap(try client().get(namespace: "ml", name: "deployment.llm-server.server"))
        XCTAssertEqual(stored.cluster.profile.execs.count, nodes * rounds)
        XCTAssertEqual(stored.cluster.nodes.count, nodes)
        print("concurrent writers: \(nodes * rounds) writes, conflicts redone: \(conflicts.items.compactMap { Int($0) }.reduce(0, +))")
    }

    /// A profile whose object would pass 1 MiB is refused before it is sent: nothing written,
    /// and the error says where the profile stays.
    func testAProfileTooLargeForTheAPIIsNotSent() throws {
        let client = try client()
        let writes = (0..<3000).map { "/var/lib/app/" + String(repeating: "d", count: 300) + "/file-\($0)" }
        XCTAssertThrowsError(try client.merge(local(execs: [], writes: writes), node: "node-a", now: t0)) { error in
            guard case KubernetesError.tooLarge(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("stays in the node's store"), text)
        }
        XCTAssertNil(try client.get(namespace: "ml", name: "deployment.llm-server.server"))
        XCTAssertFalse(server.requests.contains { $0.hasPrefix("POST") || $0.hasPrefix("PUT") })
    }

    /// A refresh reads one list of metadata, then only the objects that changed since the last
    /// refresh and are stable or asked for: polled every round by every node, it costs nothing
    /// more while nothing changes.
    func testRefreshReadsOnlyWhatChangedAndIsNeeded() throws {
        let client = try client(), writer = try self.client()
        let other = "ml/deployment/embedder/server"
        _ = try writer.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0)
        var learning = local(execs: ["/usr/bin/python3"])
        learning.workload = other
        _ = try writer.merge(learning, node: "node-a", now: t0)
        // Stable only once learning ends: a merge past minDuration and quietPeriod.
        _ = try writer.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0.addingTimeInterval(7200))
        func gets() -> Int { server.requests.filter { $0.hasPrefix("GET /apis/vigil.dev/v1alpha1/namespaces/") }.count }

        var before = gets()
        var result = try client.refresh()
        XCTAssertEqual(result.profiles.map(\.cluster.profile.workload), [workload], "the learning one is not read")
        XCTAssertEqual(result.workloads, [workload, other], "but known to exist")
        XCTAssertEqual(gets() - before, 1)

        before = gets()
        result = try client.refresh(including: [other])
        XCTAssertEqual(Set(result.profiles.map(\.cluster.profile.workload)), [workload, other])
        XCTAssertEqual(result.fetched, 1, "the stable one had not changed")
        XCTAssertEqual(gets() - before, 1)

        before = gets()
        result = try client.refresh(including: [other])
        XCTAssertEqual(result.fetched, 0)
        XCTAssertEqual(gets() - before, 0, "nothing changed: only the list")
        XCTAssertEqual(result.profiles.count, 2)

        try writer.delete(namespace: "ml", name: "deployment.embedder.server")
        result = try client.refresh(including: [other])
        XCTAssertEqual(result.profiles.map(\.cluster.profile.workload), [workload])
        XCTAssertEqual(result.workloads, [workload])
    }

    /// The watch of stable profiles, as the API server's watch cache serves it: an object that
    /// turns stable is ADDED, learning ones are not sent, a deletion is DELETED, bookmarks move the
    /// version on while nothing changes, a version older than the history is 410 Expired, and a
    /// watch ends at once when cancelled.
    func testTheWatchSeesStableProfilesComeAndGo() throws {
        let client = try client(), writer = try self.client()
        let other = "ml/deployment/embedder/server"
        _ = try writer.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0)
        let start = try XCTUnwrap(try client.refresh().resourceVersion)

        let changes = Changes()
        let ended = expectation(description: "the watch ended at its timeout")
        let outcome = Changes()
        DispatchQueue.global().async {
            do {
                let end = try client.watchStable(from: start, timeoutSeconds: 4) { changes.append($0) }
                if case .closed(let version) = end { outcome.version = version }
            } catch {
                outcome.error = "\(error)"
            }
            ended.fulfill()
        }
        var learning = local(execs: ["/usr/bin/python3"])
        learning.workload = other
        _ = try writer.merge(learning, node: "node-a", now: t0)
        _ = try writer.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0.addingTimeInterval(7200))
        let deleted = try XCTUnwrap(try writer.get(namespace: "ml", name: "deployment.llm-server.server"))
        XCTAssertEqual(deleted.cluster.profile.state, .stable)
        try writer.delete(namespace: "ml", name: "deployment.llm-server.server")
        wait(for: [ended], timeout: 15)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(changes.all.map { "\($0.type) \($0.namespace)/\($0.name) \($0.workload ?? "-")" },
                       ["ADDED ml/deployment.llm-server.server \(workload)", "DELETED ml/deployment.llm-server.server \(workload)"],
                       "the learning embedder is not sent")
        let end = try XCTUnwrap(outcome.version.flatMap { Int($0) })
        XCTAssertGreaterThan(end, try XCTUnwrap(Int(deleted.resourceVersion ?? "")), "bookmarks moved the version past the last change")

        // Watching on from where it ended is quiet; from before a compaction it is expired.
        XCTAssertEqual(try client.watchStable(from: "\(end)", timeoutSeconds: 1) { changes.append($0) }, .closed(resourceVersion: "\(end)"))
        XCTAssertEqual(changes.all.count, 2)
        server.compact()
        XCTAssertEqual(try client.watchStable(from: start, timeoutSeconds: 2) { changes.append($0) }, .expired)

        // Cancelled (the agent stops): the watch returns at once, and later ones are refused.
        let cancelled = expectation(description: "the watch returned when cancelled")
        let began = Date()
        let watchingOn = Changes()
        DispatchQueue.global().async {
            do {
                _ = try client.watchStable(from: "\(end)", timeoutSeconds: 60, changed: { _ in })
            } catch {
                watchingOn.error = "\(error)"
            }
            cancelled.fulfill()
        }
        usleep(500_000)
        client.cancelWatches()
        wait(for: [cancelled], timeout: 5)
        XCTAssertLessThan(Date().timeIntervalSince(began), 5)
        XCTAssertNotNil(watchingOn.error, "a cancelled watch is an error, not a quiet end")
        XCTAssertThrowsError(try client.watchStable(from: "\(end)", timeoutSeconds: 60) { _ in })

        // Refused by RBAC: a clear error, not an empty watch.
        server.forbid()
        XCTAssertThrowsError(try writer.watchStable(from: "\(end)", timeoutSeconds: 1) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("403"), "\(error)")
        }
    }

    /// Names map one to one: dotted owners read back, long ones are cut with a digest of the key,
    /// keys that are not an agent's are refused, and an object whose name does not match its
    /// workload is not taken for it.
    func testNamesMapOneToOne() throws {
        XCTAssertEqual(try WorkloadProfileResource.objectName(workload: "ml/deployment/llm.v2/server").name, "deployment.llm.v2.server")
        let owner = (0..<5).map { _ in String(repeating: "a", count: 48) }.joined(separator: ".") // 244 characters
        let long = "ml/deployment/\(owner)/server"
        let longer = "ml/deployment/\(owner)b/server"
        let (a, b) = (try WorkloadProfileResource.objectName(workload: long).name, try WorkloadProfileResource.objectName(workload: longer).name)
        XCTAssertLessThanOrEqual(a.utf8.count, 253)
        XCTAssertNotEqual(a, b)
        for bad in ["dropper", "ml/deployment/Web/server", "ml/deployment/web/ser.ver", "../deployment/web/server"] {
            XCTAssertThrowsError(try WorkloadProfileResource.objectName(workload: bad), bad)
        }

        let client = try client()
        let stored = try client.merge(local(execs: ["/usr/bin/python3"]), node: "node-a", now: t0).resource
        var impostor = stored
        impostor.name = "deployment.other.server"
        _ = try? client.create(impostor)
        XCTAssertThrowsError(try client.get(namespace: "ml", name: "deployment.other.server")) { error in
            XCTAssertTrue("\(error)".contains("names workload"), "\(error)")
        }
        let listed = try client.list(namespace: "ml")
        XCTAssertEqual(listed.profiles, [stored])
        XCTAssertEqual(listed.problems.count, 1)
    }
}

/// Strings appended from several threads.
private final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ item: String) { lock.withLock { list.append(item) } }
    var items: [String] { lock.withLock { list } }
}

/// What a watch reported, from its event-loop thread.
private final class Changes: @unchecked Sendable {
    private let lock = NSLock()
    private var changes: [WorkloadProfileClient.WatchChange] = []
    private var _version: String?
    private var _error: String?

    func append(_ change: WorkloadProfileClient.WatchChange) { lock.withLock { changes.append(change) } }
    var all: [WorkloadProfileClient.WatchChange] { lock.withLock { changes } }
    var version: String? {
        get { lock.withLock { _version } }
        set { lock.withLock { _version = newValue } }
    }
    var error: String? {
        get { lock.withLock { _error } }
        set { lock.withLock { _error = newValue } }
    }
}
