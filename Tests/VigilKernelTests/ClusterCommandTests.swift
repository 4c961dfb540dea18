import Foundation
import VigilCore
import VigilKubernetes
import VigilProfiles
import VigilTestSupport
import XCTest

/// `vigil profile list|show|diff|promote|relearn --cluster` against the stand-in API server, through a
/// kubeconfig, as a person runs them. (No root needed; the vigil binary is built beside the tests.)
final class ClusterCommandTests: XCTestCase {
    func testProfileCommandsWorkOnTheClustersProfiles() throws {
        let server = try FakeAPIServer()
        defer { server.stop() }
        let ca = try Data(contentsOf: URL(fileURLWithPath: server.caFile)).base64EncodedString()
        let kubeconfig = server.directory + "/kubeconfig"
        try """
        apiVersion: v1
        kind: Config
        current-context: test
        contexts: [{name: test, context: {cluster: c, user: u}}]
        clusters: [{name: c, cluster: {server: "\(server.url)", certificate-authority-data: \(ca)}}]
        users: [{name: u, user: {token: token-1}}]
        """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let workload = "ml/deployment/llm-server/server"
        let now = Date()
        let profile = Profile(workload: workload, state: .learning,
                              learning: LearningEvidence(started: now, lastNew: now, events: 3, containers: 1, minDuration: 3600, quietPeriod: 600),
                              execs: [ExecRule(exe: "/usr/bin/python3", parent: "(runtime)")])
        let client = try WorkloadProfileClient(endpoint: .init(apiServer: server.url, tokenFile: server.tokenFile, caFile: server.caFile))
        _ = try client.merge(profile, node: "node-a", now: now)
        let cluster = ["--cluster", "--kubeconfig", kubeconfig]

        var run = try VigilBinary.run(["profile", "list"] + cluster)
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertTrue(run.output.contains("\(workload)\t1\tlearning\t1\t0\t0\t0\t1"), run.output)

        run = try VigilBinary.run(["profile", "show", workload] + cluster)
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertTrue(run.output.contains("# node node-a: 3 events") && run.output.contains("exe: /usr/bin/python3"), run.output)

        // This node's copy has a shell the cluster's profile lacks (learned here, not merged yet).
        var local = profile
        local.execs.append(ExecRule(exe: "/bin/sh", parent: "/usr/bin/python3"))
        let localFile = server.directory + "/local.yaml"
        try ProfileCodec.encode(local).write(toFile: localFile, atomically: true, encoding: .utf8)
        run = try VigilBinary.run(["profile", "diff", localFile] + cluster)
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertEqual(run.output, "- exec /bin/sh (parent /usr/bin/python3)\n", "from this node's copy to the cluster's")
        run = try VigilBinary.run(["profile", "diff", localFile, localFile] + cluster)
        XCTAssertEqual(run.status, 64, "two profiles and --cluster: \(run.error)")
        XCTAssertTrue(run.error.contains("give one profile"), run.error)

        run = try VigilBinary.run(["profile", "promote", workload] + cluster)
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertEqual(try client.get(namespace: "ml", name: "deployment.llm-server.server")?.cluster.profile.state, .stable)

        run = try VigilBinary.run(["profile", "relearn", workload] + cluster)
        XCTAssertEqual(run.status, 0, run.error)
        let relearned = try XCTUnwrap(try client.get(namespace: "ml", name: "deployment.llm-server.server"))
        XCTAssertEqual(relearned.cluster.profile.version, 2)
        XCTAssertEqual(relearned.cluster.profile.state, .learning)
        XCTAssertEqual(relearned.cluster.profile.execs, [])

        run = try VigilBinary.run(["profile", "show", "ml/deployment/absent/server"] + cluster)
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.error.contains("no WorkloadProfile for ml/deployment/absent/server"), run.error)
        run = try VigilBinary.run(["profile", "list", "--cluster", "--kubeconfig", server.directory + "/none"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.error.contains("cannot be read"), run.error)
    }
}
