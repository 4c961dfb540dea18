import Foundation
import VigilCore
import VigilKubernetes
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// Three `vigil agent` processes on this machine stand for three nodes: each has its own cgroup
/// root (its kubepods), runc state root, profile store and seccomp root, loads its own BPF
/// programs, and all share one (stand-in) API server. A DaemonSet's replicas on the first two
/// nodes do different things; the nodes converge on one WorkloadProfile and install the same
/// seccomp JSON. The third node starts after learning ended: it installs the filter before any
/// replica runs there, and monitors its first replica against what the other nodes learned.
final class ClusterAgentsTests: XCTestCase {
    private static let workload = "ml/daemonset/llm/server"

    /// One node: an agent process and where it keeps things.
    private struct Node {
        let name: String
        let kubepods: String
        let work: String
        let port: Int
        let process = Process()

        var seccompFile: String { work + "/seccomp/" + SeccompExport.localhostProfile(workload: ClusterAgentsTests.workload) }
        var metrics: String { (try? HTTP.request("GET", "/metrics", port: port)) ?? "" }
        var events: [[String: Any]] {
            let text = (try? String(contentsOfFile: work + "/events.jsonl", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        var log: String { (try? String(contentsOfFile: work + "/agent.log", encoding: .utf8)) ?? "" }

        func waitForMetric(_ text: String, timeout: Double = 30) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if metrics.contains(text) { return true }
                usleep(200_000)
            }
            return false
        }
    }

    private var server: FakeAPIServer!
    private var hierarchy: CgroupHierarchy!

    private func startNode(_ name: String, index: Int) throws -> Node {
        let root = "/vigil-cluster-\(getpid())-\(name)"
        _ = try hierarchy.create(root)
        _ = try hierarchy.create(root + "/kubepods")
        let work = try KernelTestSupport.temporaryDirectory()
        let node = Node(name: name, kubepods: root + "/kubepods", work: work, port: 40000 + Int(getpid() % 9000) + index * 3)
        let (hierarchy, process) = (hierarchy!, node.process)
        addTeardownBlock {
            process.stop(with: SIGTERM, within: 30)
            try? hierarchy.remove(root)
            try? FileManager.default.removeItem(atPath: work)
        }
        try """
        node: \(name)
        cgroupRoots: [\(node.kubepods)]
        runtimeStateRoots: [\(work)/runc]
        profiles: \(work)/profiles
        seccompRoot: \(work)/seccomp
        learning: {minDuration: 0, quietPeriod: 3, checkpointInterval: 1}
        kubernetes:
          enabled: true
          tokenFile: \(server.tokenFile)
          caFile: \(server.caFile)
        cluster: {enabled: true, syncInterval: 1}
        metricsAddress: 127.0.0.1:\(node.port)
        eventsFile: \(work)/events.jsonl
        """.write(toFile: work + "/agent.yaml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: VigilBinary.path)
        process.arguments = ["agent", "--config", work + "/agent.yaml"]
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "\(server.port)"]) { $1 }
        _ = FileManager.default.createFile(atPath: work + "/agent.log", contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: work + "/agent.log")
        try process.run()
        var ready = false
        for _ in 0..<150 where !ready {
            usleep(100_000)
            ready = (try? HTTP.request("GET", "/readyz", port: node.port))?.hasPrefix("HTTP/1.1 200") ?? false
        }
        XCTAssertTrue(ready, "\(name) never became ready\n\(node.log)")
        return node
    }

    /// A replica of the DaemonSet on `node`, run to its end.
    private func runReplica(on node: Node, _ script: String) throws {
        let result = try replica(on: node, script).run()
        XCTAssertEqual(result.status, 0, result.output)
    }

    /// A replica of the DaemonSet on `node`, ready to run.
    private func replica(on node: Node, _ script: String) throws -> RuncContainer {
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let uid = UUID().uuidString.lowercased()
        let pod = "llm-" + String((0..<5).map { _ in Array("bcdfghjklmnpqrstvwxz2456789").randomElement()! })
        try server.addPod(namespace: "ml", name: pod, uid: uid, labels: ["app": "llm"], controller: ("DaemonSet", "llm"))
        // It lives a moment (as a served pod does): the agent names it from runc's state.
        let container = try RuncContainer(self, args: ["sh", "-c", script + "; sleep 0.5"], cgroupsPath: "\(node.kubepods)/besteffort/pod\(uid)/\(id)",
                                          noNewPrivileges: true, seccomp: RuncContainer.recordingFilter,
                                          annotations: ["io.kubernetes.cri.sandbox-namespace": "ml", "io.kubernetes.cri.sandbox-name": pod,
                                                        "io.kubernetes.cri.container-name": "server"],
                                          id: id, stateRoot: node.work + "/runc", writableRoot: true)
        return container
    }

    func testAgentsOnThreeNodesShareOneProfileAndALateNodeMonitorsAtOnce() throws {
        try KernelTestSupport.requireRoot()
        try RuncContainer.available()
        hierarchy = try CgroupHierarchy.system()
        server = try FakeAPIServer()
        addTeardownBlock { [server] in server?.stop() }

        let a = try startNode("node-a", index: 0)
        let b = try startNode("node-b", index: 1)
        // Each node's replica does something the other's does not; they run at once (as replicas
        // of a DaemonSet start), well within the quiet period of each other.
        let replicas = [try replica(on: a, "cat /etc/hostname; echo a > /tmp/weights-a.json"),
                        try replica(on: b, "cat /etc/hostname; echo b > /tmp/weights-b.json")]
        DispatchQueue.concurrentPerform(iterations: replicas.count) { i in
            do {
                let result = try replicas[i].run()
                XCTAssertEqual(result.status, 0, result.output)
            } catch {
                XCTFail("replica \(i) did not run: \(error)")
            }
        }
        for node in [a, b] {
            XCTAssertTrue(node.waitForMetric("vigil_profiles{state=\"stable\"} 1.0\n"), "\(node.name) never stable\n\(node.metrics)\n\(node.log)")
        }
        let client = try WorkloadProfileClient(endpoint: .init(apiServer: server.url, tokenFile: server.tokenFile, caFile: server.caFile, timeout: 5))
        let resource = try XCTUnwrap(try client.get(namespace: "ml", name: "daemonset.llm.server"))
        XCTAssertEqual(resource.cluster.profile.state, .stable)
        XCTAssertEqual(resource.cluster.nodes.map(\.node), ["node-a", "node-b"])
        let writes = Set(resource.cluster.profile.fileWrites.map(\.path))
        XCTAssertTrue(writes.isSuperset(of: ["/tmp/weights-a.json", "/tmp/weights-b.json"]), "both nodes' learning merged: \(writes)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: resource.encoded()) as? [String: Any])
        let digest = try XCTUnwrap(object[path: "status.seccompDigest"] as? String)
        // Each node installs it (its own learning ended with the cluster's) — the same bytes.
        for node in [a, b] {
            var installed: Data?
            for _ in 0..<50 where installed.map({ "sha256:" + $0.sha256Hex }) != digest {
                usleep(100_000)
                installed = try? Data(contentsOf: URL(fileURLWithPath: node.seccompFile))
            }
            XCTAssertEqual(installed.map { "sha256:" + $0.sha256Hex }, digest, "\(node.name) installs the filter the object names")
        }

        // node-c joins: the filter is there before any replica runs on it, and its first replica
        // is monitored against what node-a and node-b learned — their writes are known here,
        // the dropper is not.
        let c = try startNode("node-c", index: 2)
        let installed = try Data(contentsOf: URL(fileURLWithPath: c.seccompFile))
        XCTAssertEqual("sha256:" + installed.sha256Hex, digest, "installed at start")
        try runReplica(on: c, "cat /etc/hostname; echo a > /tmp/weights-a.json; echo b > /tmp/weights-b.json; "
            + "cp /bin/busybox /tmp/x; /tmp/x true")
        XCTAssertTrue(c.waitForMetric("vigil_anomalies_total{rule=\"unexpected-exec\"} 1"), "\(c.metrics)\n\(c.log)")
        let anomalies = c.events.filter { $0["kind"] as? String == "anomaly" && $0[path: "anomaly.rule"] as? String != "unexpected-syscall" }
        XCTAssertEqual(Set(anomalies.compactMap { "\($0[path: "anomaly.rule"] ?? "") \($0[path: "event.process.exe"] ?? $0[path: "event.file.path"] ?? "")" }),
                       ["unexpected-exec /tmp/x", "unexpected-file-write /tmp/x"], "\(anomalies)")
        XCTAssertTrue(c.metrics.contains("vigil_profiles{state=\"stable\"} 1.0\n"), "monitored, never learning: \(c.metrics)")
        XCTAssertFalse(c.metrics.contains("vigil_drops_total"), "nothing of the first replica was lost: \(c.metrics)")
        for node in [a, b, c] {
            XCTAssertTrue(node.process.stop(with: SIGTERM, within: 30), node.name)
            XCTAssertEqual(node.process.terminationStatus, 0, "\(node.name)\n\(node.log)")
        }
    }
}
