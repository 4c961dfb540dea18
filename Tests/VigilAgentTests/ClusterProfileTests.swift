import Foundation
import VigilAgent
import VigilCore
import VigilKubernetes
import VigilProfiles
import VigilTestSupport
import XCTest

/// Several simulated nodes, one stand-in API server: the nodes' agents merge what they learn into
/// one WorkloadProfile, learning ends for the cluster, and a node that never ran the workload
/// installs its seccomp filter and monitors its first replica at once.
final class ClusterProfileTests: XCTestCase {
    private var server: FakeAPIServer!
    private var nodes: [SimulatedNode] = []
    private let key = "shop/deployment/web/server"

    override func setUpWithError() throws {
        server = try FakeAPIServer()
    }

    override func tearDown() {
        server.stop()
        for node in nodes { node.remove() }
    }

    private func client(timeout: Double = 5) throws -> WorkloadProfileClient {
        try WorkloadProfileClient(endpoint: .init(apiServer: server.url, tokenFile: server.tokenFile, caFile: server.caFile, timeout: timeout))
    }

    private func node(_ name: String, timeout: Double = 5) throws -> (SimulatedNode, NodeAgent) {
        let node = try SimulatedNode()
        nodes.append(node)
        var configuration = node.configuration()
        configuration.learning.minDuration = 600
        configuration.learning.quietPeriod = 60
        return (node, try node.agent(configuration, node: name, clusterProfiles: try client(timeout: timeout)))
    }

    private func seccompFile(_ node: SimulatedNode) -> String {
        node.directory + "/seccomp/" + SeccompExport.localhostProfile(workload: key)
    }

    func testNodesShareOneProfileAndALateNodeMonitorsAtOnce() throws {
        let (nodeA, a) = try node("node-a")
        let (nodeB, b) = try node("node-b")
        let webA = try nodeA.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        nodeA.exec(webA, exe: "/usr/bin/python3")
        try nodeA.settle(a)
        let webB = try nodeB.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-k8p2q")
        nodeB.exec(webB, exe: "/usr/bin/python3")
        nodeB.connect(webB, to: [10, 0, 0, 5], port: 5432)
        try nodeB.settle(b)

        let start = Date()
        a.cluster!.runRound(learners: a.registry.learners, now: start)
        b.cluster!.runRound(learners: b.registry.learners, now: start)
        let shared = try XCTUnwrap(try client().get(namespace: "shop", name: "deployment.web.server"))
        XCTAssertEqual(shared.cluster.nodes.map(\.node), ["node-a", "node-b"])
        XCTAssertTrue(shared.cluster.profile.execs.contains { $0.exe == "/usr/bin/python3" })
        XCTAssertEqual(shared.cluster.profile.egress.map(\.address), ["10.0.0.5"], "node-b's destination is everyone's")
        XCTAssertEqual(shared.cluster.profile.state, .learning)

        // Past minDuration and quietPeriod a node alone would end its learning at this tick; with
        // the cluster deciding, it waits for the round, which ends learning for the cluster, and
        // both nodes monitor against the one profile.
        let later = start.addingTimeInterval(700)
        try a.tick(now: later)
        XCTAssertEqual(a.workloadStates[key], .learning)
        for agent in [a, b] {
            agent.cluster!.runRound(learners: agent.registry.learners, now: later)
            try agent.tick(now: later)
            XCTAssertEqual(agent.workloadStates[key], .stable)
            XCTAssertEqual(agent.registry.workload(key).profile?.egress.map(\.address), ["10.0.0.5"])
        }
        XCTAssertEqual(try client().get(namespace: "shop", name: "deployment.web.server")?.cluster.profile.state, .stable)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: try XCTUnwrap(try client().get(namespace: "shop", name: "deployment.web.server")).encoded()) as? [String: Any])
        let digest = try XCTUnwrap(object[path: "status.seccompDigest"] as? String)
        XCTAssertEqual(object[path: "status.seccompProfile"] as? String, SeccompExport.localhostProfile(workload: key))
        for node in [nodeA, nodeB] {
            let installed = try Data(contentsOf: URL(fileURLWithPath: seccompFile(node)))
            XCTAssertEqual("sha256:" + installed.sha256Hex, digest, "every node installs the one filter the object names")
        }

        // node-c joins: before its first replica it has the filter, and the first replica is monitored.
        let (nodeC, c) = try node("node-c")
        XCTAssertEqual(try "sha256:" + Data(contentsOf: URL(fileURLWithPath: seccompFile(nodeC))).sha256Hex, digest,
                       "installed at start, no replica yet, the same filter")
        XCTAssertEqual(c.cluster!.counts.installs, 1)
        let webC = try nodeC.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-m4n5b")
        nodeC.exec(webC, exe: "/usr/bin/python3")
        nodeC.connect(webC, to: [10, 0, 0, 5], port: 5432)
        nodeC.exec(webC, pid: 101, exe: "/bin/sh")
        try nodeC.settle(c)
        XCTAssertEqual(c.workloadStates[key], .stable)
        let anomalies = try nodeC.sink.objects(kind: "anomaly")
        XCTAssertEqual(anomalies.map { $0[path: "anomaly.rule"] as? String }, ["unexpected-exec"], "only the shell: \(anomalies)")
        XCTAssertEqual(anomalies.first?[path: "event.process.exe"] as? String, "/bin/sh")

        // The WorkloadProfile is deleted: the filter this node installed from it goes.
        try client().delete(namespace: "shop", name: "deployment.web.server")
        c.cluster!.runRound()
        XCTAssertFalse(FileManager.default.fileExists(atPath: seccompFile(nodeC)))
        XCTAssertEqual(c.cluster!.counts.removals, 1)
    }

    /// The API server refuses (or is down): rounds fail and are counted, the node keeps learning
    /// from its own store, and the next round after it returns brings everything in.
    func testAnUnreachableAPIServerLosesNothing() throws {
        let (node, agent) = try node("node-a", timeout: 1)
        server.forbid()
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        node.exec(web, exe: "/usr/bin/python3")
        try node.settle(agent)
        agent.cluster!.runRound(learners: agent.registry.learners)
        XCTAssertEqual(agent.cluster!.counts.failures, 2, "the merge and the read")
        XCTAssertEqual(agent.cluster!.counts.writes, 0)
        XCTAssertEqual(agent.workloadStates[key], .learning)
        node.write(web, path: "/var/cache/web/index")
        try node.settle(agent)

        server.allow()
        agent.cluster!.runRound(learners: agent.registry.learners)
        XCTAssertEqual(agent.cluster!.counts.writes, 1)
        let shared = try XCTUnwrap(try client().get(namespace: "shop", name: "deployment.web.server"))
        XCTAssertTrue(shared.cluster.profile.execs.contains { $0.exe == "/usr/bin/python3" })
        XCTAssertFalse(shared.cluster.profile.fileWrites.isEmpty, "what was learned during the outage is there")

        // A partition: the API server does not answer at all. Requests time out, the round fails
        // and is counted, the node learns on; what it learned reaches the cluster when it heals.
        server.partition()
        node.connect(web, to: [10, 0, 0, 7], port: 6379)
        try node.settle(agent)
        let cut = Date()
        agent.cluster!.runRound(learners: agent.registry.learners)
        XCTAssertLessThan(Date().timeIntervalSince(cut), 10, "a round is bounded by the request timeout")
        XCTAssertEqual(agent.cluster!.counts.failures, 4)
        XCTAssertEqual(agent.workloadStates[key], .learning)
        server.heal()
        agent.cluster!.runRound(learners: agent.registry.learners)
        XCTAssertEqual(agent.cluster!.counts.writes, 2)
        XCTAssertEqual(try client().get(namespace: "shop", name: "deployment.web.server")?.cluster.profile.egress.map(\.address), ["10.0.0.7"])
    }

    /// A node that never ran the workload watches the stable profiles: when learning ends on
    /// another node, its filter is installed here within about a second — not at this node's next
    /// round — and removed as soon as the object is deleted.
    func testTheWatchBringsEveryStableProfileToEveryNodeAtOnce() throws {
        let (nodeA, a) = try node("node-a")
        let (nodeB, b) = try node("node-b")
        let web = try nodeA.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        nodeA.exec(web, exe: "/usr/bin/python3")
        try nodeA.settle(a)
        let start = Date()
        a.cluster!.runRound(learners: a.registry.learners, now: start)
        // node-b last listed at its start; the history since is compacted away: its watch from
        // that version is expired (410), and it lists again and watches from there.
        server.compact()
        b.cluster!.startWatching()
        addTeardownBlock { b.cluster!.stopWatching() }
        for _ in 0..<30 where b.cluster!.counts.watchExpiries == 0 { usleep(100_000) }
        XCTAssertEqual(b.cluster!.counts.watchExpiries, 1)
        usleep(1_000_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: seccompFile(nodeB)), "learning: nothing to install")
        XCTAssertEqual(b.cluster!.counts.watchEvents, 0, "a learning profile is not sent to the watch")

        let roundsBefore = b.cluster!.counts.rounds
        a.cluster!.runRound(learners: a.registry.learners, now: start.addingTimeInterval(700))
        XCTAssertEqual(try client().get(namespace: "shop", name: "deployment.web.server")?.cluster.profile.state, .stable)
        for _ in 0..<50 where b.cluster!.counts.installs == 0 { usleep(100_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: seccompFile(nodeB)), "installed on node-b without a round of its own")
        XCTAssertEqual(b.cluster!.counts.installs, 1)
        XCTAssertEqual(b.cluster!.counts.rounds, roundsBefore + 1, "one read for the change")
        XCTAssertEqual(b.cluster!.counts.watchEvents, 1)

        // With the watch working, the rounds between resyncs do not list.
        func lists() -> Int { server.requests.filter { $0.hasPrefix("GET /apis/vigil.dev/v1alpha1/workloadprofiles?resourceVersion=0") }.count }
        let listsBefore = lists()
        for _ in 0..<3 {
            let rounds = b.cluster!.counts.rounds
            b.cluster!.startRound(learners: b.registry.learners)
            for _ in 0..<50 where b.cluster!.counts.rounds == rounds { usleep(20_000) }
        }
        XCTAssertEqual(lists(), listsBefore, "three rounds, no list")

        try client().delete(namespace: "shop", name: "deployment.web.server")
        for _ in 0..<50 where b.cluster!.counts.removals == 0 { usleep(100_000) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: seccompFile(nodeB)), "removed on node-b once the object is deleted")
        XCTAssertEqual(b.cluster!.counts.removals, 1)
        XCTAssertEqual(b.cluster!.counts.failures, 0)
        XCTAssertEqual(b.cluster!.counts.watchExpiries, 1)
    }

    /// Writes are batched: one merge per workload per round, a write only when the node brings
    /// something new — however many events came between rounds.
    func testWritesAreBatchedAndOnlyForWhatIsNew() throws {
        let (node, agent) = try node("node-a")
        let pods = ["web-7d4b9c6f5-x2x9z", "api-6c8d7b5f4-k2k2k", "cache-5b7c6d4e3-p9p9p"]
        let containers = try pods.map { try node.startContainer(namespace: "shop", pod: $0) }
        func writes() -> Int { server.requests.filter { $0.hasPrefix("PUT ") || $0.hasPrefix("POST ") }.count }
        func busyRound(newPath: String? = nil) throws {
            for (i, container) in containers.enumerated() {
                for n in 0..<200 { node.exec(container, pid: UInt32(100 + n), exe: "/usr/bin/app\(i)") }
                node.connect(container, to: [10, 0, 0, UInt8(i)], port: 443)
            }
            if let newPath { node.write(containers[0], path: newPath) }
            try node.settle(agent)
            agent.cluster!.runRound(learners: agent.registry.learners)
        }
        try busyRound()
        XCTAssertEqual(writes(), 3, "one object per workload")
        for _ in 0..<4 { try busyRound() }
        XCTAssertEqual(writes(), 3, "four rounds of 600 events each, nothing new: no write")
        try busyRound(newPath: "/var/lib/web/new-state")
        XCTAssertEqual(writes(), 4, "something new in one workload: one write")
        XCTAssertEqual(agent.cluster!.counts.writes, 4)
    }

    /// A person relearns the workload in the cluster (`vigil profile relearn --cluster`): a node
    /// monitoring it learns the new version at its next round — its known behaviour out of the
    /// kernel, its containers' events learned again — and its seccomp filter stays installed.
    func testARelearnInTheClusterTurnsMonitoringNodesBackToLearning() throws {
        let (node, agent) = try node("node-a")
        let web = try node.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        node.exec(web, exe: "/usr/bin/python3")
        try node.settle(agent)
        let start = Date()
        agent.cluster!.runRound(learners: agent.registry.learners, now: start)
        _ = try client().update(workload: key) { ProfileMerge.promote(&$0, now: start) }
        agent.cluster!.runRound(learners: agent.registry.learners, workloads: [key], now: start)
        try agent.tick()
        XCTAssertEqual(agent.workloadStates[key], .stable)
        XCTAssertGreaterThan(node.kernel.knownEntries, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: seccompFile(node)))

        let relearned = try client().update(workload: key) { ProfileMerge.relearn(&$0, now: Date()) }
        XCTAssertEqual(relearned.cluster.profile.version, 2)
        XCTAssertEqual(relearned.cluster.profile.execs, [])
        agent.cluster!.runRound(workloads: [key])
        try agent.tick()
        XCTAssertEqual(agent.workloadStates[key], .learning)
        XCTAssertEqual(agent.registry.workload(key).profile?.version, 2)
        XCTAssertEqual(node.kernel.knownEntries, 0, "its known behaviour left the kernel")
        XCTAssertTrue(FileManager.default.fileExists(atPath: seccompFile(node)), "the filter stays while it relearns")
        node.exec(web, pid: 102, exe: "/usr/bin/python3.12")
        try node.settle(agent)
        agent.cluster!.runRound(learners: agent.registry.learners, workloads: [key])
        let shared = try XCTUnwrap(try client().get(namespace: "shop", name: "deployment.web.server"))
        XCTAssertEqual(shared.cluster.profile.version, 2)
        XCTAssertEqual(shared.cluster.profile.execs.map(\.exe), ["/usr/bin/python3.12"], "v2 learned anew, nothing of v1")

        // The same by hand: a person sets spec.relearn on the stable object (kubectl patch). Two
        // nodes read it; the first starts v3 and clears the field, the second finds it done.
        _ = try client().update(workload: key) { ProfileMerge.promote(&$0, now: Date()) }
        var patched = try XCTUnwrap(try client().get(namespace: "shop", name: "deployment.web.server"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: patched.encoded()) as? [String: Any])
        XCTAssertNil(json[path: "spec.relearn"], "absent unless asked for")
        patched.cluster.relearnRequested = true
        let written = try client().replace(patched)
        let writtenJSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: written.encoded()) as? [String: Any])
        XCTAssertEqual(writtenJSON[path: "spec.relearn"] as? Bool, true)
        let (_, other) = try self.node("node-b")
        for reader in [agent, other] { reader.cluster!.runRound(learners: reader.registry.learners, workloads: [key]) }
        let v3 = try XCTUnwrap(try client().get(namespace: "shop", name: "deployment.web.server"))
        XCTAssertEqual(v3.cluster.profile.version, 3, "one relearn, however many nodes read the request")
        XCTAssertEqual(v3.cluster.profile.state, .learning)
        XCTAssertFalse(v3.cluster.relearnRequested)
        try agent.tick()
        XCTAssertEqual(agent.registry.workload(key).profile?.version, 3)
    }

    /// `cluster` in the agent's configuration: read, and refused without the API server.
    func testTheConfigurationTurnsClusterProfilesOn() throws {
        let node = try SimulatedNode()
        nodes.append(node)
        let file = node.directory + "/agent.yaml"
        try "kubernetes: {enabled: true}\ncluster: {enabled: true, syncInterval: 45}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try AgentConfiguration.load(file: file)
        XCTAssertEqual(configuration.cluster.enabled, true)
        XCTAssertEqual(configuration.cluster.syncInterval, 45)
        for (text, field) in [("cluster: {enabled: true}\n", "cluster.enabled"),
                              ("kubernetes: {enabled: true}\ncluster: {enabled: true, syncInterval: 0}\n", "cluster.syncInterval"),
                              ("cluster: {enable: true}\n", "cluster.enable")] {
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try AgentConfiguration.load(file: file), text) { error in
                XCTAssertTrue("\(error)".contains(field), "\(error)")
            }
        }
    }

    /// An agent restarted with an empty store (a new node, a lost disk) resumes the workload's
    /// learning from the cluster, not from zero: its first round brings in what the others learned.
    func testARestartedAgentResumesFromTheCluster() throws {
        let (nodeA, a) = try node("node-a")
        let web = try nodeA.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-x2x9z")
        nodeA.exec(web, exe: "/usr/bin/python3")
        try nodeA.settle(a)
        a.cluster!.runRound(learners: a.registry.learners)

        let (nodeB, b) = try node("node-b")
        let other = try nodeB.startContainer(namespace: "shop", pod: "web-7d4b9c6f5-q2w3e")
        nodeB.exec(other, exe: "/usr/bin/nginx")
        try nodeB.settle(b)
        XCTAssertFalse(try XCTUnwrap(b.registry.workload(key).snapshot).execs.contains { $0.exe == "/usr/bin/python3" })
        b.cluster!.runRound(learners: b.registry.learners)
        try b.tick()
        let learned = try XCTUnwrap(b.registry.workload(key).snapshot)
        XCTAssertTrue(learned.execs.contains { $0.exe == "/usr/bin/python3" }, "node-a's learning, taken from the cluster: \(learned.execs)")
        XCTAssertTrue(learned.execs.contains { $0.exe == "/usr/bin/nginx" })
    }
}
