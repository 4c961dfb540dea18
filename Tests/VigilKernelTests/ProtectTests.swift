import Foundation
import VigilAgent
import VigilBPF
import VigilCore
import VigilProfiles
import VigilRuntime
import VigilSeccomp
import VigilTestSupport
import XCTest

/// Protect mode against the real kernel: a workload learns its profile, then runs protected —
/// its learned behaviour untouched, a connect or datagram elsewhere refused with EPERM before
/// anything leaves the socket, an exec outside the profile killed before the program prints —
/// in every replica; monitor mode says the same as `would_action` and lets it happen; when the
/// agent's programs go, enforcement goes with them (fail open).
final class ProtectTests: XCTestCase {
    private let resolver = SeccompSyscallResolver()
    private let workload = "shop/deployment/web/server"

    private func registry(_ kernel: KernelProbes, store: DirectoryProfileStore, sink: MemorySink, opening: WorkloadRegistry.Opening,
                          protect: Bool, hierarchy: CgroupHierarchy) throws -> (WorkloadRegistry, EventPipeline, CommandDirectory) {
        var settings = WorkloadRegistry.Settings()
        settings.retireAfter = .infinity
        settings.protect = { _ in protect }
        let registry = WorkloadRegistry(kernel: kernel, sink: sink, node: "n", resolver: resolver,
                                        runtimeExes: [KernelTestSupport.realpath("/proc/self/exe")],
                                        settings: settings, writer: ProfileWriter(store: store)) { _ in (opening, []) }
        registry.workload(workload)
        let directory = CommandDirectory(hierarchy: hierarchy, workload: workload)
        let pipeline = try EventPipeline(kernel: kernel, directory: directory, consumer: registry, sink: sink, node: "n")
        return (registry, pipeline, directory)
    }

    /// Runs vigil-workload in the cgroup: how it ended, and what it wrote (stdout and stderr).
    private func run(_ hierarchy: CgroupHierarchy, _ cgroup: String, _ actions: [String]) throws -> (status: LaunchedProcess.Status, output: String) {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        let process = try LaunchedProcess.start([KernelTestSupport.workload] + actions, cgroupDirectory: hierarchy.directory(of: cgroup),
                                                stdout: ends[1], stderr: ends[1])
        close(ends[1])
        let output = FileHandle(fileDescriptor: ends[0], closeOnDealloc: true).readDataToEndOfFile()
        return (process.status(block: true), String(decoding: output, as: UTF8.self))
    }

    func testProtectModeRefusesUnknownEgressAndKillsUnknownExecsInEveryReplica() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let root = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy) // the agent's watched root
        var replicas = 0
        func replica() throws -> (path: String, id: UInt64) {
            replicas += 1
            let path = root.path + "/replica\(replicas)"
            let id = try hierarchy.create(path)
            addTeardownBlock { try? hierarchy.remove(path) }
            return (path, id)
        }
        let store = DirectoryProfileStore(root: try KernelTestSupport.temporaryDirectory() + "/profiles")
        let service = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let metrics = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_DGRAM.rawValue))
        let elsewhere = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let elsewhereUDP = try LoopbackSocket(family: AF_INET6, type: Int32(SOCK_DGRAM.rawValue))
        // Letters only: a name with digits would be generalised into a pattern.
        let directory = "/tmp/vigil-protect-" + String((0..<10).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let models = directory + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        try "{}".write(toFile: models + "/config.json", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: directory + "/link", withDestinationPath: models + "/config.json")
        let normal = ["connects:3:\(service.port)", "udp4:\(metrics.port)", "execs:2:/bin/true", "write:\(models)/weights.bin"]

        // Learn.
        let profile: Profile = try {
            let probes = try KernelProbes()
            let learner = Learner.start(workload: workload, modelPaths: [models + "/**"], minDuration: 0, quietPeriod: 0, now: Date(),
                                        resolver: resolver, runtimeExes: [KernelTestSupport.realpath("/proc/self/exe")])
            let (learning, pipeline, _) = try registry(probes, store: store, sink: MemorySink(), opening: .learn(learner), protect: false,
                                                       hierarchy: hierarchy)
            let cgroup = try replica()
            try probes.watch(cgroupID: cgroup.id)
            XCTAssertEqual(try run(hierarchy, cgroup.path, normal).status, .exited(0))
            try pipeline.drain()
            learning.tick()
            learning.waitForWrites()
            return try XCTUnwrap(try store.latest(workload: workload))
        }()
        XCTAssertEqual(profile.state, .stable)
        _ = service.arrivals()
        _ = metrics.arrivals()

        // Protect, as `vigil monitor --protect` sets it up: the guard at the root, each replica
        // protected once named, before its command starts.
        var probes: KernelProbes? = try KernelProbes()
        let sink = MemorySink()
        let (protecting, pipeline, names) = try registry(probes!, store: store, sink: sink, opening: .monitor(profile), protect: true,
                                                             hierarchy: hierarchy)
        try probes!.guardEgress(cgroupDirectory: hierarchy.directory(of: root.path))
        let protected = protecting.workload(workload)
        func protectedReplica() throws -> (path: String, id: UInt64) {
            let cgroup = try replica()
            try probes!.watch(cgroupID: cgroup.id, profileID: protected.profileID)
            guard case .container(let container) = names.lookup(cgroup.id) else { throw TestSupportError(description: "not named") }
            protecting.containerNamed(cgroup.id, container: container)
            XCTAssertTrue(protected.protectedContainers.contains(cgroup.id))
            return cgroup
        }

        // What it learned runs as before: no refusal, no kill.
        let first = try protectedReplica()
        XCTAssertEqual(try run(hierarchy, first.path, normal).status, .exited(0))
        XCTAssertEqual(service.arrivals(), 3)
        XCTAssertEqual(metrics.arrivals(), 1)
        try pipeline.drain()
        protecting.tick()
        XCTAssertEqual(protecting.enforced, [:])
        XCTAssertEqual(try sink.objects.filter { $0["kind"] as? String == "anomaly" }.count, 0)

        // Elsewhere: refused with EPERM, and nothing reaches the listeners.
        let refused = try run(hierarchy, first.path, ["tcp4?:\(elsewhere.port)", "udp6?:\(elsewhereUDP.port)", "tfo4?:\(elsewhere.port)"])
        XCTAssertEqual(refused.status, .exited(0))
        XCTAssertEqual(refused.output.components(separatedBy: "Operation not permitted").count - 1, 3, "TCP, UDP, TCP Fast Open: \(refused.output)")
        XCTAssertEqual(elsewhere.arrivals(), 0, "no connection reached the listener")
        XCTAssertEqual(elsewhereUDP.arrivals(), 0, "no datagram reached the listener")

        // An exec outside the profile dies before its program runs: no output, SIGKILL.
        let killed = try run(hierarchy, first.path, ["exec:/bin/echo:pwned"])
        XCTAssertEqual(killed.status, .signaled(SIGKILL))
        XCTAssertEqual(killed.status.shellStatus, 137)
        XCTAssertEqual(killed.output, "", "the program never ran")

        // A write open below the model directory the profile lacks: killed at the open's exit,
        // before its first write. What the open itself did stays done: a new file exists (empty),
        // an existing one opened with O_TRUNC is empty. Through a symlink, the same (the kernel
        // judges the file opened, not the name).
        let created = try run(hierarchy, first.path, ["write:\(models)/other.bin"])
        XCTAssertEqual(created.status, .signaled(SIGKILL))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: models + "/other.bin")).count, 0, "created, nothing written")
        XCTAssertEqual(try run(hierarchy, first.path, ["write:\(directory)/link"]).status, .signaled(SIGKILL))
        XCTAssertEqual(try String(contentsOfFile: models + "/config.json", encoding: .utf8), "", "truncated by the open, nothing written")
        XCTAssertEqual(try run(hierarchy, first.path, ["write:\(models)/weights.bin", "write:\(directory)/scratch"]).status, .exited(0),
                       "the write it learned, and writes elsewhere, go on")
        // A rename into the model directory and an unlink in it are done when the syscall
        // returns (their names are judged by text): the process goes right after.
        let swapped = try run(hierarchy, first.path, ["rename:\(directory)/scratch:\(models)/swapped.bin", "write:\(directory)/after"])
        XCTAssertEqual(swapped.status, .signaled(SIGKILL))
        XCTAssertTrue(FileManager.default.fileExists(atPath: models + "/swapped.bin"), "the rename itself happened")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/after"), "nothing after it did")
        XCTAssertEqual(try run(hierarchy, first.path, ["unlink:\(models)/config.json"]).status, .signaled(SIGKILL))
        XCTAssertFalse(FileManager.default.fileExists(atPath: models + "/config.json"), "the unlink itself happened")

        // A second replica: the same, from its first exec.
        let second = try protectedReplica()
        XCTAssertEqual(try run(hierarchy, second.path, ["exec:/bin/echo:pwned"]).status, .signaled(SIGKILL))
        XCTAssertEqual(try run(hierarchy, second.path, normal).status, .exited(0))

        try pipeline.drain()
        protecting.tick()
        let anomalies = try sink.objects.filter { $0["kind"] as? String == "anomaly" }
        let egress = anomalies.filter { $0[path: "anomaly.rule"] as? String == "unexpected-egress" }
        XCTAssertEqual(Set(egress.compactMap { $0[path: "event.network.port"] as? Int }), [Int(elsewhere.port), Int(elsewhereUDP.port)], "\(anomalies)")
        XCTAssertTrue(egress.allSatisfy { $0[path: "anomaly.action"] as? String == "denied" }, "\(egress)")
        let execs = anomalies.filter { $0[path: "anomaly.rule"] as? String == "unexpected-exec" }
        XCTAssertEqual(execs.count, 1, "both kills fold into one anomaly: \(anomalies)")
        XCTAssertEqual(execs.first?[path: "anomaly.action"] as? String, "killed")
        XCTAssertEqual(execs.first?[path: "event.process.exe"] as? String, KernelTestSupport.realpath("/bin/echo"))
        XCTAssertEqual(protecting.enforced[.init(workload: workload, rule: .unexpectedEgress, action: .denied)], 3, "TCP, UDP, TCP Fast Open")
        XCTAssertEqual(protecting.enforced[.init(workload: workload, rule: .unexpectedExec, action: .killed)], 2)
        XCTAssertEqual(protecting.enforced[.init(workload: workload, rule: .modelArtifactWrite, action: .killed)], 4)
        let modelWrites = anomalies.filter { $0[path: "anomaly.rule"] as? String == "model-artifact-write" }
        XCTAssertEqual(Set(modelWrites.compactMap { $0[path: "anomaly.action"] as? String }), ["killed"], "\(modelWrites)")

        // The agent goes (its programs with it): enforcement fails open.
        probes = nil
        let after = try replica()
        XCTAssertEqual(try run(hierarchy, after.path, ["tcp4:\(elsewhere.port)", "exec:/bin/echo:ran"]).status, .exited(0))
        XCTAssertEqual(elsewhere.arrivals(), 1)
    }

    /// The first thing an intruder in a cloud pod asks is the metadata service for the node's
    /// role: a real connect to 169.254.169.254 and to AWS's IPv6 address (from a network
    /// namespace of the workload's own, so nothing leaves this machine) is
    /// `metadata-service-access`, critical, in monitor mode (`would_action: deny`) and refused
    /// with EPERM in protect mode — unless the profile learned it, as a cloud SDK's would.
    func testTheMetadataServiceIsCriticalAndRefusedUnlessLearned() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let store = DirectoryProfileStore(root: try KernelTestSupport.temporaryDirectory() + "/profiles")
        let learned = EgressRule(address: "169.254.169.254", port: 80, protocol: "tcp")
        let profile = Profile(workload: workload, state: .stable,
                              learning: LearningEvidence(started: Date(), lastNew: Date(), events: 1, containers: 1, minDuration: 0, quietPeriod: 0),
                              execs: [ExecRule(exe: KernelTestSupport.workload, parent: BehaviourKeys.runtimeParent)], egress: [learned])
        let attempts = ["netns:new", "tcp-to?:169.254.169.254:80", "tcp-to?:169.254.169.254:8080", "tcp-to?:fd00:ec2::254:80",
                        "tcp-to?:10.0.0.7:80"]

        for protect in [false, true] {
            let probes = try KernelProbes()
            let sink = MemorySink()
            let (registry, pipeline, names) = try self.registry(probes, store: store, sink: sink, opening: .monitor(profile),
                                                                protect: protect, hierarchy: hierarchy)
            let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
            if protect { try probes.guardEgress(cgroupDirectory: hierarchy.directory(of: cgroup.path)) }
            try probes.watch(cgroupID: cgroup.id, profileID: registry.workload(workload).profileID)
            if protect {
                guard case .container(let container) = names.lookup(cgroup.id) else { throw TestSupportError(description: "not named") }
                registry.containerNamed(cgroup.id, container: container)
            }
            let result = try run(hierarchy, cgroup.path, attempts)
            XCTAssertEqual(result.status, .exited(0), result.output)
            // In a namespace with no route, every connect fails; refused ones with EPERM.
            XCTAssertEqual(result.output.components(separatedBy: "Operation not permitted").count - 1, protect ? 3 : 0, result.output)
            try pipeline.drain()
            registry.tick()
            let anomalies = try sink.objects.filter { $0["kind"] as? String == "anomaly" }
            func destinations(_ rule: String) -> Set<String> {
                Set(anomalies.filter { $0[path: "anomaly.rule"] as? String == rule }.compactMap { anomaly in
                    (anomaly[path: "event.network.address"] as? String).map { "\($0):\(anomaly[path: "event.network.port"] ?? 0)" }
                })
            }
            XCTAssertEqual(destinations("metadata-service-access"), ["169.254.169.254:8080", "fd00:ec2::254:80"], "\(anomalies)")
            XCTAssertEqual(destinations("unexpected-egress"), ["10.0.0.7:80"], "\(anomalies)")
            for anomaly in anomalies where anomaly[path: "anomaly.rule"] as? String == "metadata-service-access" {
                XCTAssertEqual(anomaly[path: "anomaly.severity"] as? String, "critical")
                XCTAssertEqual(anomaly[path: protect ? "anomaly.action" : "anomaly.would_action"] as? String, protect ? "denied" : "deny")
                XCTAssertEqual(anomaly[path: "workload.id"] as? String, workload)
            }
            if protect {
                XCTAssertEqual(registry.enforced[.init(workload: workload, rule: .metadataServiceAccess, action: .denied)], 2)
            }
        }
    }

    /// Monitor mode is protect mode's dry run: the same attack happens, and each anomaly says what
    /// protect mode would have done.
    func testMonitorModeSaysWhatProtectModeWouldHaveDone() throws {
        try KernelTestSupport.requireRoot()
        let hierarchy = try CgroupHierarchy.system()
        let store = DirectoryProfileStore(root: try KernelTestSupport.temporaryDirectory() + "/profiles")
        let elsewhere = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let profile = Profile(workload: workload, state: .stable,
                              learning: LearningEvidence(started: Date(), lastNew: Date(), events: 1, containers: 1, minDuration: 0, quietPeriod: 0),
                              execs: [ExecRule(exe: KernelTestSupport.workload, parent: BehaviourKeys.runtimeParent)])
        let probes = try KernelProbes()
        let sink = MemorySink()
        let (monitoring, pipeline, _) = try registry(probes, store: store, sink: sink, opening: .monitor(profile), protect: false,
                                                     hierarchy: hierarchy)
        let cgroup = try KernelTestSupport.makeCgroup(self, hierarchy: hierarchy)
        try probes.watch(cgroupID: cgroup.id, profileID: monitoring.workload(workload).profileID)
        let result = try run(hierarchy, cgroup.path, ["tcp4:\(elsewhere.port)", "exec:/bin/echo:ran"])
        XCTAssertEqual(result.status, .exited(0))
        XCTAssertEqual(result.output, "ran\n")
        XCTAssertEqual(elsewhere.arrivals(), 1)
        try pipeline.drain()
        monitoring.tick()
        let anomalies = try sink.objects.filter { $0["kind"] as? String == "anomaly" }
        let egress = anomalies.first { $0[path: "anomaly.rule"] as? String == "unexpected-egress" }
        XCTAssertEqual(egress?[path: "anomaly.would_action"] as? String, "deny", "\(anomalies)")
        XCTAssertNil(egress?[path: "anomaly.action"])
        let exec = anomalies.first { $0[path: "anomaly.rule"] as? String == "unexpected-exec" }
        XCTAssertEqual(exec?[path: "anomaly.would_action"] as? String, "kill", "\(anomalies)")
        XCTAssertEqual(monitoring.enforced, [:])
    }
}
