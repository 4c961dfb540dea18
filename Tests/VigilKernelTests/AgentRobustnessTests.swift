import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilTestSupport
import XCTest

/// Pods as a node holds them, without a runtime: a pod's cgroup (`pod<uid>/<id>`) below a root
/// of the test's own, runc's state.json with the CRI annotations, and processes started in it.
/// What a hostile tenant controls is what these let a test do: run anything, as fast as it likes.
final class FakeNode {
    let hierarchy: CgroupHierarchy
    let root: String
    let work: String
    var kubepods: String { root + "/kubepods" }
    var stateRoot: String { work + "/runc" }

    init(_ test: XCTestCase) throws {
        try KernelTestSupport.requireRoot()
        hierarchy = try CgroupHierarchy.system()
        root = "/vigil-node-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        _ = try hierarchy.create(root)
        _ = try hierarchy.create(root + "/kubepods")
        work = try KernelTestSupport.temporaryDirectory()
        let (hierarchy, root, work) = (hierarchy, root, work)
        test.addTeardownBlock {
            try? hierarchy.remove(root)
            try? FileManager.default.removeItem(atPath: work)
        }
    }

    func configuration() -> AgentConfiguration {
        AgentConfiguration.testNode(kubepods: kubepods, stateRoot: stateRoot, work: work)
    }

    /// A container's cgroup and state for a pod; returns the cgroup's path.
    func container(namespace: String, pod: String, name: String = "server") throws -> String {
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let podCgroup = "\(kubepods)/besteffort/pod\(UUID().uuidString.lowercased())"
        _ = try hierarchy.create(kubepods + "/besteffort")
        _ = try hierarchy.create(podCgroup)
        _ = try hierarchy.create(podCgroup + "/" + id)
        let labels = ["io.kubernetes.cri.sandbox-namespace=\(namespace)", "io.kubernetes.cri.sandbox-name=\(pod)",
                      "io.kubernetes.cri.container-name=\(name)"]
        let state: [String: Any] = ["id": id, "init_process_pid": 1, "config": ["labels": labels]]
        try FileManager.default.createDirectory(atPath: "\(stateRoot)/\(id)", withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: "\(stateRoot)/\(id)/state.json"))
        return podCgroup + "/" + id
    }

    /// A node agent on freshly loaded programs, watching the root.
    func agent(_ configuration: AgentConfiguration) throws -> (agent: NodeAgent, sink: MemorySink) {
        let sink = MemorySink()
        let agent = try NodeAgent(configuration: configuration, kernel: try KernelProbes(), hierarchy: hierarchy, sink: sink, node: "n")
        try agent.start()
        return (agent, sink)
    }

    func start(_ actions: [String], in cgroup: String) throws -> LaunchedProcess {
        try LaunchedProcess.start([KernelTestSupport.workload] + actions, cgroupDirectory: hierarchy.directory(of: cgroup))
    }
}

/// One tenant's volume, a broken file, a full disk: the agent keeps every other tenant's
/// detection going, and its errors stay with the workload that has them.
final class AgentRobustnessTests: XCTestCase {
    /// A pod that writes 12,000 files of distinct names (each in a directory of its own, so
    /// nothing collapses) while another namespace's pod works: the other's events all arrive and
    /// are learned, nothing is dropped anywhere, and the noisy workload's learning ends at its
    /// limit instead of growing every checkpoint. (Before: encoding such a profile took seconds
    /// on the loop that empties the ring buffer, and 192,256 of the other namespace's events
    /// were dropped.)
    func testANoisyNeighbourCannotMakeAnotherWorkloadsEventsDrop() throws {
        let node = try FakeNode(self)
        var configuration = node.configuration()
        configuration.learning.minDuration = 3600
        configuration.learning.checkpointInterval = 0.2 // checkpoint as often as the test can
        let (agent, sink) = try node.agent(configuration)

        let noisy = try node.container(namespace: "tenant-a", pod: "noisy-7d9c8f6b5-x2k4p")
        let quiet = try node.container(namespace: "tenant-b", pod: "quiet-7d9c8f6b5-q8w7e")
        let files = node.work + "/noisy"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let quietActions = (0..<200).map { "write:\(node.work)/quiet-\($0).json" }
        let flood = try node.start(["distinct:12000:\(files)"], in: noisy)
        let steady = try node.start(quietActions, in: quiet)
        var lastTick = Date()
        while flood.status(block: false) == .running || steady.status(block: false) == .running {
            try agent.poll(timeoutMilliseconds: 20)
            if Date().timeIntervalSince(lastTick) > 0.2 {
                try agent.tick()
                lastTick = Date()
            }
        }
        try agent.settle()
        try agent.tick()
        agent.waitForWrites()

        let drops = agent.drops
        XCTAssertEqual(drops.total, 0, "nothing dropped anywhere: \(drops.nonZero)")
        let quietProfile = try XCTUnwrap(try DirectoryProfileStore(root: configuration.profiles).latest(workload: "tenant-b/deployment/quiet/server"))
        let rules = quietProfile.fileWrites.map { PathPattern($0.path) }
        for k in 0..<200 {
            XCTAssertTrue(rules.contains { $0.matches("\(node.work)/quiet-\(k).json") }, "the quiet workload's write \(k) was learned: \(quietProfile.fileWrites)")
        }
        let noisyProfile = try XCTUnwrap(try DirectoryProfileStore(root: configuration.profiles).latest(workload: "tenant-a/deployment/noisy/server"))
        XCTAssertEqual(noisyProfile.state, .stable, "learning ended at the limit")
        XCTAssertLessThanOrEqual(noisyProfile.fileWrites.count, Learner.Limits().fileWriteRules)
        let problems = try sink.objects.filter { $0["kind"] as? String == "profile.state" && $0[path: "profile.problem"] != nil }
        XCTAssertTrue(problems.contains { ($0[path: "profile.problem"] as? String)?.contains("reached its limit of file-write rules (4096)") ?? false },
                      "\(problems)")
    }

    /// A corrupt newest version (v2 with a bad state) and an older stable v1: the agent monitors
    /// with v1, says what is wrong with v2, and writes over neither — at every restart.
    func testACorruptNewestVersionNeitherHidesNorReplacesTheStableOne() throws {
        let node = try FakeNode(self)
        let configuration = node.configuration()
        let store = DirectoryProfileStore(root: configuration.profiles)
        let workload = "ml/deployment/llm/server"
        let start = Date(timeIntervalSinceNow: -3600)
        var stable = Profile(workload: workload, version: 1, state: .stable,
                             learning: LearningEvidence(started: start, lastNew: start, stableSince: start, minDuration: 0, quietPeriod: 0))
        stable.execs = [ExecRule(exe: KernelTestSupport.workload, parent: "(runtime)")]
        try store.save(stable)
        let corrupt = store.path(workload: workload, version: 2)
        try "apiVersion: vigil.dev/v1alpha1\nkind: WorkloadProfile\nworkload: \(workload)\nversion: 2\nstate: sideways\n"
            .write(toFile: corrupt, atomically: true, encoding: .utf8)
        let v1 = try Data(contentsOf: URL(fileURLWithPath: store.path(workload: workload, version: 1)))
        let v2 = try Data(contentsOf: URL(fileURLWithPath: corrupt))

        for _ in 0..<2 { // a restart changes nothing
            let (agent, sink) = try node.agent(configuration)
            let cgroup = try node.container(namespace: "ml", pod: "llm-7d9c8f6b5-x2k4p")
            XCTAssertEqual(try node.start(["write:\(node.work)/new-file"], in: cgroup).status(block: true), .exited(0))
            try agent.settle()
            try agent.tick()
            agent.waitForWrites()
            XCTAssertEqual(agent.workloadStates, [workload: .stable], "monitored with v1")
            let problem = try XCTUnwrap(try sink.objects.first { $0[path: "profile.problem"] != nil }?[path: "profile.problem"] as? String)
            XCTAssertTrue(problem.contains("v2.yaml") && problem.contains("using v1"), problem)
            XCTAssertTrue(try sink.objects.contains { $0["kind"] as? String == "anomaly" }, "the unknown write is reported against v1")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: store.path(workload: workload, version: 1))), v1)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: corrupt)), v2)
    }

    /// A regular file where one workload's profile directory should be: that workload's
    /// checkpoints fail (a problem line, a metric), the agent goes on, and another workload learns.
    func testOneWorkloadsStoreErrorStaysWithIt() throws {
        let node = try FakeNode(self)
        var configuration = node.configuration()
        configuration.learning.checkpointInterval = 0
        try FileManager.default.createDirectory(atPath: configuration.profiles, withIntermediateDirectories: true)
        try "in the way\n".write(toFile: configuration.profiles + "/" + WorkloadFileName.encode("ml/deployment/broken/server"),
                                 atomically: true, encoding: .utf8)
        let (agent, sink) = try node.agent(configuration)
        for pod in ["broken-7d9c8f6b5-x2k4p", "fine-7d9c8f6b5-x2k4p"] {
            let cgroup = try node.container(namespace: "ml", pod: pod)
            XCTAssertEqual(try node.start(["write:\(node.work)/\(pod)"], in: cgroup).status(block: true), .exited(0))
        }
        try agent.settle()
        try agent.tick()
        agent.waitForWrites()
        try agent.tick()
        XCTAssertGreaterThan(agent.writeFailures, 0)
        let problem = try XCTUnwrap(try sink.objects.first { $0[path: "profile.problem"] != nil })
        XCTAssertEqual(problem[path: "profile.id"] as? String, "ml/deployment/broken/server")
        XCTAssertTrue((problem[path: "profile.problem"] as? String)?.contains("is not a directory") ?? false, "\(problem)")
        XCTAssertNotNil(try DirectoryProfileStore(root: configuration.profiles).latest(workload: "ml/deployment/fine/server"),
                        "the other workload's profile is saved")
    }
}
